"""The digest ledger: what anti-entropy compares, kept up to date by every write.

Why.  A range walk (antientropy.py) hashes every key's version on both
sides.  Under a write load the two sides walk at different moments, so a
key overwritten in between makes its range differ; nearly every range did,
every round (issue 11: 1,344 of 1,348 ranges after 1M SETs), and the walks
themselves cost ~1 us a key on each node.  The ledger replaces both with a
digest every node keeps as it goes and can state *as of a past instant*.

What it holds.  A key's *state* is the version of its entry (live, or
expired but not reclaimed) or, with no entry, of its version floor; a key
with neither has none.  Its *contribution* is ``mix(H(key) ^ version)``, 64
bits (``H``: CRC-32 and Adler-32 of the key, both zlib's; ``mix``: the
128-bit product with an odd constant, high half XOR low half), 0 without a
state.  The key's *bucket* is the top
``BUCKET_BITS`` bits of its CRC-32.  A bucket's digest is the XOR of its
keys' contributions, so a change of state is one XOR of
``contribution(old) ^ contribution(new)`` into one bucket -- no walk.

As of a past instant.  Every change carries a *tag* in version units: a
write's own version; an entry that vanishes without leaving a floor of its
version, its deadline; a floor that retires, its retire time.  Time is cut
into quanta of ``2**QUANTUM_SHIFT`` ms; snapshot ``j`` is the digests with
every change whose tag falls before quantum ``j`` and none after, so it is
the same on two nodes that received the same writes up to then, whatever
arrived later and in whatever order.  Changes whose quantum has not been
snapshotted wait (``pending``, per quantum); ``advance(j)`` folds them in
quantum by quantum and keeps the last ``SNAPSHOTS_KEPT`` snapshots.  A change
arriving after its quantum was snapshotted (a write delayed past the settle
time) goes straight into the digests: only later snapshots see it, and the
difference it makes to earlier ones is what anti-entropy is for.

Bounds.  Memory: ``BUCKETS`` * 8 bytes a snapshot, and one pending change
(~24 bytes in C) per write of the last ``SETTLE_MS`` + a quantum.  A tag more
than ``FUTURE_QUANTA_MAX`` quanta ahead (a wild clock) is folded in at once,
and past ``PENDING_MAX`` pending changes the oldest quantum is folded early.
Either only puts a change into snapshots earlier than its tag says: the two
sides then differ where they agree, anti-entropy compares those buckets key
by key and finds nothing to fetch.  A difference is never hidden.

Two implementations with one output: ``_lane.Ledger`` (C, called by the
fast lane without a Python call) and ``PyLedger`` below, the specification;
tests compare them, and a node with the extension and one without agree.
"""

from __future__ import annotations

from array import array
from zlib import adler32, crc32


BUCKET_BITS = 11
BUCKETS = 1 << BUCKET_BITS           # digests compared per round (8 bytes each)
QUANTUM_SHIFT = 7                    # snapshots every 128 ms of version time
VERSION_QUANTUM_SHIFT = QUANTUM_SHIFT + 16   # version >> this = quantum (LOGICAL_BITS = 16)
SNAPSHOTS_KEPT = 32                  # ~4 s of snapshots
FUTURE_QUANTA_MAX = 1024             # ~2 min: a tag further ahead is folded in at once
PENDING_MAX = 4_000_000              # pending changes, at most
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def key_hash(key: bytes) -> int:
    return (crc32(key) << 32) | adler32(key)


def bucket_of(key: bytes) -> int:
    return crc32(key) >> (32 - BUCKET_BITS)


def contribution(h: int, version: int) -> int:
    """The 128-bit product of (h ^ version) and an odd constant, folded to 64
    bits (high half ^ low half); 0 for no version.  One multiplication."""
    version &= M64
    if not version:
        return 0
    p = (h ^ version) * GOLDEN
    return (p >> 64) ^ (p & M64)


def cutoff_of(j: int) -> int:
    """The newest version snapshot j includes."""
    return (j << VERSION_QUANTUM_SHIFT) - 1


def quantum_of_ms(ms: int) -> int:
    return ms >> QUANTUM_SHIFT


class PyLedger:
    def __init__(self) -> None:
        self.digests = array("Q", bytes(8 * BUCKETS))
        self.settled = -1            # snapshot quanta < this are taken; -1: none yet
        self.pending: dict = {}      # quantum -> [bucket, delta, bucket, delta, ...]
        self.npending = 0
        self.snapshots: dict = {}    # quantum -> bytes (the digests, native byte order)
        self.changes = 0
        self.folded_early = 0

    def note(self, key: bytes, old: int, new: int, tag: int,
             _crc=crc32, _adler=adler32, _m=M64, _g=GOLDEN) -> None:
        """key's state changed from version old to new (0: none) at tag
        (all three taken modulo 2**64, as the C ledger takes them).
        ``contribution`` twice, written out: this runs on every write of a
        clustered node without the extension."""
        old &= _m
        new &= _m
        if old == new:
            return
        c = _crc(key)
        h = (c << 32) | _adler(key)
        d = 0
        if old:
            z = (h ^ old) * _g
            d = (z >> 64) ^ (z & _m)
        if new:
            z = (h ^ new) * _g
            d ^= (z >> 64) ^ (z & _m)
        b = c >> (32 - BUCKET_BITS)
        self.changes += 1
        q = (tag & _m) >> VERSION_QUANTUM_SHIFT
        s = self.settled
        if s < 0 or q < s or q - s > FUTURE_QUANTA_MAX:
            self.digests[b] ^= d
            return
        lst = self.pending.get(q)
        if lst is None:
            self.pending[q] = [b, d]
        else:
            lst.append(b)
            lst.append(d)
        self.npending += 1
        if self.npending > PENDING_MAX:
            self._fold_oldest()

    def _fold(self, q: int) -> None:
        lst = self.pending.pop(q, None)
        if lst:
            dg = self.digests
            for i in range(0, len(lst), 2):
                dg[lst[i]] ^= lst[i + 1]
            self.npending -= len(lst) // 2

    def _fold_oldest(self) -> None:
        q = min(self.pending)
        self.folded_early += len(self.pending[q]) // 2
        self._fold(q)

    def advance(self, j: int) -> None:
        """Take the snapshots up to quantum j (each: every change before it)."""
        s = self.settled
        if s < 0:
            # The first snapshot: everything so far is before it.
            for q in list(self.pending):
                self._fold(q)
            self.settled = j
            self.snapshots[j] = self.digests.tobytes()
            return
        if j <= s:
            return
        if j - s > SNAPSHOTS_KEPT:
            # Only the last SNAPSHOTS_KEPT are kept: fold the rest in one go.
            for q in [q for q in self.pending if q < j - SNAPSHOTS_KEPT]:
                self._fold(q)
            s = j - SNAPSHOTS_KEPT
        while s < j:
            self._fold(s)
            s += 1
            self.snapshots[s] = self.digests.tobytes()
        self.settled = j
        for old in [q for q in self.snapshots if q <= j - SNAPSHOTS_KEPT]:
            del self.snapshots[old]

    def snapshot(self, j: int):
        """Snapshot j's digests (bytes), advancing to it if it is ahead;
        None if it is older than the ones kept."""
        if j > self.settled:
            self.advance(j)
        return self.snapshots.get(j)

    def latest(self) -> int:
        return self.settled


def new_ledger():
    """The C ledger when the extension is loaded, else the Python one."""
    from ..lane import _lane      # here: the lane imports the keyspace, which the cluster imports
    if _lane is not None:
        return _lane.Ledger()
    return PyLedger()


def seeded(ks):
    """A new ledger holding keyspace ks's current state."""
    led = new_ledger()
    data, floors = ks.data, ks.floors
    for k, e in data.items():
        led.note(k, 0, e[2], 0)
    for k, f in floors.items():
        if k not in data:
            led.note(k, 0, f, 0)
    return led


def recompute(ks) -> bytes:
    """The digests of keyspace ks's current state computed from scratch
    (what a ledger holds once every change is folded in): for tests and
    ``DEBUG``-style checks, O(keys)."""
    dg = array("Q", bytes(8 * BUCKETS))
    data, floors = ks.data, ks.floors
    for k in set(data).union(floors):
        e = data.get(k)
        v = e[2] if e is not None else floors[k]
        dg[bucket_of(k)] ^= contribution(key_hash(k), v)
    return dg.tobytes()


def differing_buckets(mine: bytes, theirs: bytes) -> list:
    """Bucket numbers whose digests differ (both snapshots, same length)."""
    a = array("Q", mine)
    b = array("Q", theirs)
    return [i for i in range(len(a)) if a[i] != b[i]]


def select_keys(keys, buckets) -> list:
    """The keys that fall in the given set of buckets."""
    shift = 32 - BUCKET_BITS
    return [k for k in keys if crc32(k) >> shift in buckets]
