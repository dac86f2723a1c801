"""Anti-entropy: periodic range-digest repair between the nodes of an enclave.

The write stream and catch-up deliver almost everything; this closes what
they cannot see -- a write that reached only some peers before its origin
died, a stream the receiver lost while both ends stayed up, a node that
answered a catch-up before it had caught up itself.  It does not depend on a
link going down and up.

What is compared.  Each node's *summary* of a key is its top version: the
version of its entry (live, or expired but not reclaimed) or, without a
newer entry, of its version floor (keyspace.py) -- a floor whose retire time
has passed counts as nothing.  Expiry does not change a summary (an entry
that expires becomes a floor of the same version), so two nodes that agree
keep agreeing as keys die, and neither values nor deadlines are compared
(the version decides; deadlines only differ by the clock conversion).

Ledger rounds (normally; issue 11).  Every node keeps a digest ledger
(ledger.py): 2,048 bucket digests of its keys' top versions, kept up to date
by every write and snapshotted as of past instants.  A round sends the
snapshot of one quantum before the settled one (``AED``: 16 KiB, cutoff
~0.63-0.76 s ago); the peer compares it with its own snapshot at the same
cutoff and, for the buckets that differ, walks its index and sends the
summaries of its keys there (``AES``), then ``AEEND`` -- the same summaries,
fetches and pacing as below.  Two nodes that received the same writes up to
the cutoff have equal snapshots whatever they received since, so a write
load no longer makes rounds differ.  A peer without that snapshot (its
clock far off, ``LEDGER_AHEAD_MS``) answers ``differing = -1`` and the next
round with it, soon, is a range round; so is a node's first round.

Range rounds (the fallback).  On the link that carries the peer's stream to
us (we are its receiver, as for SYNC):

* Every ``cluster-anti-entropy-interval-ms`` (and soon after each catch-up
  completes, i.e. on every (re)connect) the node runs one *round*: it walks
  its merged sorted index (keys of entries and of floors) in groups of
  ``RANGE_KEYS`` keys; group i covers ``[lo_i, lo_{i+1})`` (the first starts
  at the empty key, the last has no upper bound), and its digest is BLAKE2b
  over the keys in it, their lengths and their top versions -- leaving out
  keys whose top version is newer than the round's *cutoff*, chosen once by
  the node (its clock SETTLE_MS ago) and carried in every frame, so both
  sides cut at the same version.  Ranges go out in ``AE``
  frames of up to ``RANGES_PER_FRAME``, the same frames to every peer taking
  part (one walk serves them all); the last frame says so.
* The peer computes its own digest of each range and, where they differ,
  sends the range's *summary*: ``(key, top version)`` of every key it has
  there (``AES``).  After the last frame it answers ``AEEND``.
* The node asks (``AEGET``) for the keys whose version in the summary is
  newer than its own and not newer than the cutoff (a newer one is in
  flight on the stream); the peer sends them -- live entries as ``CU 0``
  entries, the rest (floors, expired entries) as ``FL`` floors -- and they
  are applied as always: last writer wins, floors drop older values.  So a
  spurious difference (a key written between the two walks: under a heavy
  write load nearly every range differs by some in-flight write) costs a
  summary, not the range's values.
* The node repairs itself from its peers; its peers, running their own
  rounds, repair themselves from it.  A difference present when a round
  starts is therefore repaired by the end of that round, so divergence
  between live, connected nodes lasts at most one interval plus one round.

Work per loop turn is bounded on both sides: at most ``CHUNK_KEYS`` keys are
hashed or sent before yielding, and sending waits for the link to drain.
A round starts only when the previous one was answered by every peer taking
part (or timed out), and rounds are paced so that the rounds a node starts
use at most about ``1 / PACE_FACTOR`` of one CPU, wherever it is spent: the
next round waits at least ``PACE_FACTOR`` times the CPU they cost since the
previous round began -- our walk, reading summaries, applying fetched
entries and floors, and the peers' CPU answering (digests, summaries,
fetches; each peer reports it in ``AEEND``).  Big keyspaces get a longer
effective interval (measured: ~0.8 us per key walked, so with 2 peers the
interval stays at its 2 s default up to ~80,000 keys; INFO shows the last
walk and round durations).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sys
import time
from array import array
from collections import deque
from itertools import islice

from . import ledger as lg
from . import messages as m
from .replicator import CATCHUP_CHUNK_BYTES

log = logging.getLogger("repram.cluster")

RANGE_KEYS = 128            # keys summarised by one digest
RANGES_PER_FRAME = 32       # digests per AE frame
CHUNK_KEYS = 2000           # keys hashed or sent per loop turn, at most
PACE_FACTOR = 20            # anti-entropy uses at most ~1/PACE_FACTOR of the CPU
ROUND_TIMEOUT_S = 30.0      # a peer that never answers a round no longer holds the next
QUEUE_FRAMES_MAX = 100_000  # AE / AEGET frames a peer may have queued with us
FETCH_KEYS = 1000           # keys per AEGET frame
SETTLE_MS = 500             # versions younger than this are in flight: left out of digests
LEDGER_LAG_QUANTA = 1       # a ledger round compares the snapshot one quantum before the settled one
LEDGER_AHEAD_MS = 1000      # a peer's snapshot is taken on demand up to this far ahead of our clock


def _chunk(ks, lo: bytes, lo_inclusive: bool, hi, n: int):
    """Up to about n keys of the merged index (entries and floors) in
    [lo, hi) (lo exclusive when not lo_inclusive), sorted, no duplicates.
    Returns (keys, complete): complete = nothing more in the range."""
    inc = (lo_inclusive, False)
    a = list(islice(ks.index.irange(lo, hi, inclusive=inc), n))
    if not ks.floor_index:
        return a, len(a) < n
    b = list(islice(ks.floor_index.irange(lo, hi, inclusive=inc), n))
    cut = None
    if len(a) == n:
        cut = a[-1]
    if len(b) == n and (cut is None or b[-1] < cut):
        cut = b[-1]
    keys = sorted(set(a).union(b))
    if cut is not None:
        keys = keys[:_bisect_right(keys, cut)]
        return keys, False
    return keys, True


def _bisect_right(keys: list, x: bytes) -> int:
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if x < keys[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


def default_cutoff(now: int) -> int:
    return (now - SETTLE_MS) << 16


def top_versions(ks, keys, now: int, cutoff: int):
    """(keys, versions): each key's top version, for the keys that have one
    at or below cutoff (a key whose top version is newer is left out)."""
    data = ks.data
    floors = ks.floors
    if floors:
        get, floor_of = data.get, ks.floor_of
        vs = []
        for k in keys:
            e = get(k)
            f = floor_of(k, now) if k in floors else 0
            vs.append(e[2] if e is not None and e[2] > f else f)
        if 0 in vs:
            pairs = [(k, v) for k, v in zip(keys, vs) if v]
            keys, vs = [k for k, _ in pairs], [v for _, v in pairs]
    else:
        vs = [data[k][2] for k in keys]
    if vs and max(vs) > cutoff:
        pairs = [(k, v) for k, v in zip(keys, vs) if v <= cutoff]
        keys, vs = [k for k, _ in pairs], [v for _, v in pairs]
    return keys, vs


def summary_bytes(ks, keys, now: int, cutoff: int | None = None) -> bytes:
    """The bytes a range digest hashes for these keys (in order): the keys,
    their lengths and their top versions.  Left out: keys whose only floor
    retired, and keys whose top version is newer than the round's cutoff
    (chosen once by the round's initiator, SETTLE_MS before its clock, and
    used by both sides): a write that recent is normally still on its way
    to the peer, and counting it would make nearly every range differ under
    a write load (it is compared in a later round).  Versions fit 64 bits
    until the year 10889; a bigger one (a wild peer clock) falls back to
    decimal text."""
    if cutoff is None:
        cutoff = default_cutoff(now)
    keys, vs = top_versions(ks, keys, now, cutoff)
    try:
        tail = array("Q", vs).tobytes()
    except OverflowError:
        tail = b",".join(b"%d" % v for v in vs)
    return b"".join(keys) + array("Q", map(len, keys)).tobytes() + tail


def _wire(snapshot: bytes) -> bytes:
    """A ledger snapshot (native 64-bit words) as sent (little-endian), and back."""
    if sys.byteorder == "little":
        return snapshot
    a = array("Q", snapshot)
    a.byteswap()
    return a.tobytes()


def new_digest():
    return hashlib.blake2b(digest_size=16)


def digest_keys(ks, keys, now: int, cutoff: int | None = None) -> bytes:
    h = new_digest()
    h.update(summary_bytes(ks, keys, now, cutoff))
    return h.digest()


def build_ranges(ks, start: bytes, first: bool, now: int, max_keys: int,
                 cutoff: int | None = None):
    """Ranges from ``start`` on, covering up to max_keys keys: returns
    ([(lo, hi or None, digest)], next start or None when the walk is done).
    The first range of a walk starts at b'' (inclusive)."""
    if cutoff is None:
        cutoff = default_cutoff(now)
    out = []
    lo = b"" if first else start
    done = 0
    while done < max_keys:
        keys, complete = _chunk(ks, lo, True, None, RANGE_KEYS + 1)
        if len(keys) <= RANGE_KEYS:
            out.append((lo, None, digest_keys(ks, keys, now, cutoff)))
            return out, None
        group, hi = keys[:RANGE_KEYS], keys[RANGE_KEYS]
        out.append((lo, hi, digest_keys(ks, group, now, cutoff)))
        done += RANGE_KEYS
        lo = hi
    return out, lo


class AntiEntropy:
    def __init__(self, cluster):
        self.cluster = cluster
        self.server = cluster.server
        self.round_id = 0
        self.task = None
        self.pending: dict = {}          # link -> round id not yet answered
        self.round_started = 0.0
        self.next_at = 0.0               # monotonic: earliest next round
        self.stats = dict.fromkeys((
            "rounds", "ranges_sent", "ranges_differing_served", "keys_sent", "floors_sent",
            "ranges_repaired_here", "floors_received", "floors_applied", "summary_keys_sent",
            "summary_keys_received", "keys_fetched", "ledger_rounds", "range_rounds",
            "ledger_buckets_differing", "ledger_no_snapshot", "ledger_refused"), 0)
        self.last_walk_ms = 0.0
        self.last_round_ms = 0.0
        self.last_links = 0
        self.busy_s = 0.0                # CPU our rounds cost (here and, as reported, at the peers)
        self.cutoffs: dict = {}          # round id -> its version cutoff (the last few rounds)
        self.last_busy_ms = 0.0
        self.range_next: set = set()     # links to compare by range walk next round (no snapshot)
        # Peers (node id, run id) that dropped the link on an AED: a build
        # from before the ledger (it refuses the unknown frame).  Their
        # rounds walk ranges from then on.
        self.no_ledger: set = set()
        self.aed_rounds: dict = {}       # link -> the ledger round it was sent

    # -- receiver: rounds -----------------------------------------------------

    def interval_s(self) -> float:
        return self.server.config.cluster_anti_entropy_interval_ms / 1000.0

    def eligible(self) -> list:
        c = self.cluster
        return [p.inn for p in c.peers.values()
                if p.inn is not None and p.inn.state == "ready" and p.enclave == c.enclave
                and p.inn.sync_completed]

    def kick(self) -> None:
        """Run a round soon (after a catch-up: every (re)connect)."""
        self.next_at = 0.0

    def advance_ledger(self) -> None:
        """Take the ledger's snapshots up to SETTLE_MS ago (every tick,
        anti-entropy on or off: that is what keeps its pending changes few)."""
        led = self.server.keyspace.ledger
        if led is not None:
            led.advance(lg.quantum_of_ms(self.server.clock() - SETTLE_MS))

    def tick(self, now: float) -> None:
        self.advance_ledger()
        if self.interval_s() <= 0 or self.task is not None:
            return
        if self.pending:
            for lk in list(self.pending):
                if lk.state != "ready" or now - self.round_started > ROUND_TIMEOUT_S:
                    if lk.state != "ready" and self.aed_rounds.get(lk) == self.pending[lk]:
                        self._ledger_refused(lk)
                    del self.pending[lk]
            if self.pending:
                return
            self._round_over(now)
        if now < self.next_at:
            return
        links = self.eligible()
        if links:
            self.task = asyncio.ensure_future(self._round(links))

    def _round_over(self, now: float) -> None:
        self.last_round_ms = (now - self.round_started) * 1000.0
        # Everything our rounds cost since the last round began -- the walk,
        # reading the peers' summaries, applying what we fetched, and the
        # peers' CPU answering them (reported in AEEND) -- sets the pace.
        pace = self.busy_s * PACE_FACTOR
        self.last_busy_ms = self.busy_s * 1000.0
        self.busy_s = 0.0
        self.next_at = now + max(self.interval_s(), pace)
        if self.range_next:
            self.next_at = now                 # a peer could not compare our snapshot

    def _ledger_refused(self, link) -> None:
        r = link.remote
        if r is None or (r.node_id, r.run_id) in self.no_ledger:
            return
        self.no_ledger.add((r.node_id, r.run_id))
        self.stats["ledger_refused"] += 1
        log.warning("peer %s closed the link on an anti-entropy ledger round (a build without "
                    "it?): comparing with it by range walks from now on", link.describe())

    def _ledger_round(self, rid: int, links) -> list:
        """Send the ledger's snapshot to the links that take it; returns the
        links left for a range walk (none normally)."""
        led = self.server.keyspace.ledger
        self.aed_rounds = {lk: r for lk, r in self.aed_rounds.items() if lk.state == "ready"}
        walk = [lk for lk in links if lk in self.range_next
                or (lk.remote is not None and (lk.remote.node_id, lk.remote.run_id) in self.no_ledger)]
        self.range_next.difference_update(walk)
        rest = [lk for lk in links if lk not in walk]
        if led is None or not rest:
            return links
        # From our clock, not the ledger's newest snapshot: a peer whose
        # clock is ahead may have had us take later ones (_serve_ledger).
        j = lg.quantum_of_ms(self.server.clock() - SETTLE_MS) - LEDGER_LAG_QUANTA
        snap = led.snapshot(j)
        if snap is None:
            return links
        cutoff = lg.cutoff_of(j)
        self.cutoffs[rid] = cutoff
        data = m.encode_aed(rid, cutoff, _wire(snap))
        for lk in rest:
            lk.write(data)
            self.pending[lk] = rid
            self.aed_rounds[lk] = rid
        self.stats["ledger_rounds"] += 1
        return walk

    async def _round(self, links) -> None:
        ks = self.server.keyspace
        clock = self.server.clock
        self.round_id += 1
        rid = self.round_id
        for old in [r for r in self.cutoffs if r < rid - 4]:
            del self.cutoffs[old]
        self.round_started = time.monotonic()
        self.last_links = len(links)
        self.stats["rounds"] += 1
        walk_s = 0.0
        try:
            t = time.thread_time()
            links = self._ledger_round(rid, links)
            walk_s += time.thread_time() - t
            if not links:
                return
            self.stats["range_rounds"] += 1
            # One cutoff for the whole round, on both sides: a range that saw no
            # write since (cutoff + in-flight time) digests the same everywhere.
            # (A ledger round to other links has its own: this walk is
            # answered by these links alone, and they read it from the AE frames.)
            cutoff = self.cutoffs.setdefault(rid, default_cutoff(clock()))
            start, first = b"", True
            batch: list = []
            live = list(links)
            while True:
                # CPU time, not wall time: on a busy host a preempted walk
                # must not stretch the pacing.
                t = time.thread_time()
                ranges, start = build_ranges(ks, start, first, clock(), CHUNK_KEYS, cutoff)
                first = False
                batch += ranges
                walk_s += time.thread_time() - t
                done = start is None
                while len(batch) >= RANGES_PER_FRAME or (done and batch):
                    part, batch = batch[:RANGES_PER_FRAME], batch[RANGES_PER_FRAME:]
                    last = done and not batch
                    data = m.encode_ae(rid, last, cutoff, part)
                    self.stats["ranges_sent"] += len(part)
                    live = [lk for lk in live if lk.state == "ready"]
                    for lk in live:
                        lk.write(data)
                if done:
                    break
                await asyncio.sleep(0)
                for lk in live:
                    if lk.state == "ready" and lk.paused:
                        await lk.drained()
            for lk in live:
                if lk.state == "ready":
                    self.pending[lk] = rid
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("anti-entropy round failed")
        finally:
            self.last_walk_ms = walk_s * 1000.0
            self.busy_s += walk_s
            self.task = None
            if not self.pending:
                self._round_over(time.monotonic())

    def on_aeend(self, link, rid: int, differing: int, keys: int, floors: int,
                 cpu_us: int = 0) -> None:
        # The peer's CPU answering our rounds (digests, summaries, fetches)
        # counts toward our pace: it is work our rounds caused.
        self.busy_s += min(max(cpu_us, 0), 60_000_000) / 1e6
        if differing < 0:
            # A ledger round the peer could not compare (no such snapshot:
            # clocks far apart): the next round walks ranges with it, soon.
            differing = 0
            self.stats["ledger_no_snapshot"] += 1
            if self.pending.get(link) == rid:
                self.range_next.add(link)      # _round_over: the next round soon
        if self.pending.get(link) == rid:
            del self.pending[link]
            self.stats["ranges_repaired_here"] += differing
            if differing and log.isEnabledFor(logging.INFO):
                log.info("anti-entropy with %s: %d range%s or bucket%s differed; "
                         "%d entries, %d floors received", link.describe(), differing,
                         *(("", "") if differing == 1 else ("s", "s")), keys, floors)
            if not self.pending and self.task is None:
                self._round_over(time.monotonic())

    def on_floors(self, link, f: list) -> None:
        """FL: floors from the peer (catch-up or repair)."""
        t = time.thread_time()
        pairs = m.decode_floors(f)
        if link.peer is None or link.peer.enclave != self.cluster.enclave:
            return                      # nothing crosses enclaves, floors included
        ks = self.server.keyspace
        now = self.server.clock()
        hlc = self.server.hlc
        applied = 0
        for key, version in pairs:
            hlc.observe(version)
            if ks.apply_floor(key, version, now):     # the drop is notified as an expiry
                applied += 1
        self.stats["floors_received"] += len(pairs)
        self.stats["floors_applied"] += applied
        self.busy_s += time.thread_time() - t

    # -- sender: answering a peer's round ---------------------------------------

    def on_ae(self, link, f: list) -> None:
        t = time.thread_time()
        rid, last, cutoff, ranges = m.decode_ae(f)
        link.ae_cpu += time.thread_time() - t
        c = self.cluster
        if link.peer is None or link.peer.enclave != c.enclave:
            if last:
                link.write(m.frame(m.AEEND, rid, 0, 0, 0, 0))
            return
        q = link.ae_queue
        if q is None:
            q = link.ae_queue = deque()
        if len(q) >= QUEUE_FRAMES_MAX:
            raise m.MessageError("AE: more than %d frames queued" % QUEUE_FRAMES_MAX)
        q.append((rid, last, cutoff, ranges))
        if link.ae_task is None:
            link.ae_task = asyncio.ensure_future(self._serve(link))

    def on_aed(self, link, f: list) -> None:
        """AED: a peer's ledger snapshot, compared in _serve."""
        rid, cutoff, dig = m.decode_aed(f, lg.BUCKETS * 8)
        c = self.cluster
        if link.peer is None or link.peer.enclave != c.enclave:
            link.write(m.frame(m.AEEND, rid, 0, 0, 0, 0))
            return
        q = link.ae_queue
        if q is None:
            q = link.ae_queue = deque()
        if len(q) >= QUEUE_FRAMES_MAX:
            raise m.MessageError("AED: more than %d frames queued" % QUEUE_FRAMES_MAX)
        q.append((rid, True, cutoff, dig))
        if link.ae_task is None:
            link.ae_task = asyncio.ensure_future(self._serve(link))

    def on_aeget(self, link, f: list) -> None:
        keys = m.decode_aeget(f)
        if link.peer is None or link.peer.enclave != self.cluster.enclave or not keys:
            return
        q = link.ae_queue
        if q is None:
            q = link.ae_queue = deque()
        if len(q) >= QUEUE_FRAMES_MAX:
            raise m.MessageError("AEGET: more than %d frames queued" % QUEUE_FRAMES_MAX)
        q.append((None, False, 0, keys))
        if link.ae_task is None:
            link.ae_task = asyncio.ensure_future(self._serve(link))

    def on_summary(self, link, f: list) -> None:
        """AES: the peer's (key, version) for a range that differs; fetch
        what it has newer than we do -- but not a version newer than the
        round's cutoff: that write is still in flight on the stream."""
        t = time.thread_time()
        rid, pairs = m.decode_summary(f)
        if link.peer is None or link.peer.enclave != self.cluster.enclave:
            return
        cutoff = self.cutoffs.get(rid)
        if cutoff is None:
            cutoff = default_cutoff(self.server.clock())
        top = self.server.keyspace.top_version
        want = [k for k, v in pairs if cutoff >= v > top(k)]
        self.busy_s += time.thread_time() - t
        self.stats["summary_keys_received"] += len(pairs)
        for i in range(0, len(want), FETCH_KEYS):
            link.write(m.encode_aeget(want[i:i + FETCH_KEYS]))
        self.stats["keys_fetched"] += len(want)

    async def _serve(self, link) -> None:
        q = link.ae_queue
        # Counts since the last AEEND, kept on the link: this task ends
        # whenever the queue runs dry, mid-round.
        cnt = link.ae_counts
        try:
            while q and link.state == "ready":
                rid, last, cutoff, ranges = q.popleft()
                if rid is None:                 # AEGET: the keys themselves
                    t = time.thread_time()
                    k, fl = self._send_keys(link, ranges)
                    link.ae_cpu += time.thread_time() - t
                    cnt[1] += k
                    cnt[2] += fl
                    if link.paused:
                        await link.drained()
                    else:
                        await asyncio.sleep(0)
                    continue
                if ranges.__class__ is bytes:     # AED: a ledger snapshot
                    n = await self._serve_ledger(link, rid, cutoff, ranges)
                    if n < 0:
                        cnt[0] = -1
                    else:
                        cnt[0] += n
                    ranges = ()
                for j, (lo, hi, dig) in enumerate(ranges):
                    if await self._digest(link, lo, hi, cutoff) != dig:
                        cnt[0] += 1
                        await self._send_summary(link, rid, lo, hi, cutoff)
                    if j % 8 == 7:
                        # ~1,000 keys per turn: a frame's ranges, or a queue
                        # of frames, must not run in one loop turn.
                        if link.paused:
                            await link.drained()
                        else:
                            await asyncio.sleep(0)
                await asyncio.sleep(0)
                if last:
                    cpu_us = int(link.ae_cpu * 1e6)
                    link.ae_cpu = 0.0
                    link.write(m.frame(m.AEEND, rid, cnt[0], cnt[1], cnt[2], cpu_us))
                    self.stats["ranges_differing_served"] += max(cnt[0], 0)
                    cnt[:] = [0, 0, 0]
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("anti-entropy answer to %s failed", link.describe())
            link.abort("anti-entropy failed")
        finally:
            link.ae_task = None

    async def _serve_ledger(self, link, rid: int, cutoff: int, theirs: bytes) -> int:
        """Compare a peer's ledger snapshot with ours; summarise (AES) our
        keys in the buckets that differ.  Returns how many differ, -1 if we
        have no snapshot at that cutoff.  The keys of a bucket are found by
        walking the index (a difference is rare: a write lost or late, a
        conflict, a floor retired early), CHUNK_KEYS a turn."""
        t = time.thread_time()
        led = self.server.keyspace.ledger
        j = (cutoff + 1) >> lg.VERSION_QUANTUM_SHIFT
        # A snapshot ahead of ours is taken now, if the peer's clock is not
        # far ahead of ours (the writes it holds may not all have come yet).
        ok = (led is not None and lg.cutoff_of(j) == cutoff
              and j <= lg.quantum_of_ms(self.server.clock() + LEDGER_AHEAD_MS))
        mine = led.snapshot(j) if ok else None
        if mine is None:
            return -1
        theirs = _wire(theirs)       # to native order (a no-op on little-endian)
        if mine == theirs:
            link.ae_cpu += time.thread_time() - t
            return 0
        buckets = set(lg.differing_buckets(mine, theirs))
        link.ae_cpu += time.thread_time() - t
        self.stats["ledger_buckets_differing"] += len(buckets)
        await self._send_summary(link, rid, b"", None, cutoff, buckets)
        return len(buckets)

    async def _digest(self, link, lo: bytes, hi, cutoff: int) -> bytes:
        ks = self.server.keyspace
        h = new_digest()
        cur, inclusive = lo, True
        while True:
            t = time.thread_time()
            keys, complete = _chunk(ks, cur, inclusive, hi, CHUNK_KEYS)
            h.update(summary_bytes(ks, keys, self.server.clock(), cutoff))
            link.ae_cpu += time.thread_time() - t
            if complete or not keys:
                return h.digest()
            cur, inclusive = keys[-1], False
            await asyncio.sleep(0)

    async def _send_summary(self, link, rid: int, lo: bytes, hi, cutoff: int,
                            buckets: set | None = None) -> None:
        """AES frames of our keys in [lo, hi) -- only those in the given
        ledger buckets, if any are given."""
        ks = self.server.keyspace
        cur, inclusive = lo, True
        while link.state == "ready":
            t = time.thread_time()
            keys, complete = _chunk(ks, cur, inclusive, hi, CHUNK_KEYS)
            sel = keys if buckets is None else lg.select_keys(keys, buckets)
            sk, vs = top_versions(ks, sel, self.server.clock(), cutoff)
            if sk:
                floor_entry = m.floor_entry
                link.write(m.summary_head(rid, len(sk))
                           + b"".join([floor_entry(k, v) for k, v in zip(sk, vs)]))
                self.stats["summary_keys_sent"] += len(sk)
            link.ae_cpu += time.thread_time() - t
            if complete or not keys:
                return
            cur, inclusive = keys[-1], False
            if link.paused:
                await link.drained()
            else:
                await asyncio.sleep(0)

    def _send_keys(self, link, keys: list):
        """Entries (live) and floors (the rest) of the keys a peer asked for
        (at most FETCH_KEYS: one loop turn's worth)."""
        ks = self.server.keyspace
        now = self.server.clock()
        limit = link.remote_max_bulk
        chunk_bytes = min(CATCHUP_CHUNK_BYTES,
                          self.server.config.cluster_peer_queue_limit_bytes // 4)
        sent_keys = sent_floors = 0
        data, floors = ks.data, ks.floors
        entries, fls = [], []
        nbytes = 0
        for k in keys[:FETCH_KEYS]:
            e = data.get(k)
            f = ks.floor_of(k, now) if k in floors else 0
            if e is not None and e[2] > f:
                if now <= e[1]:
                    v = e[0]
                    if len(v) > limit or len(k) > limit:
                        continue
                    entries.append(m.entry(k, v, e[1], e[2]))
                    nbytes += len(k) + len(v)
                    if nbytes >= chunk_bytes:
                        link.write(m.cu_head(0, len(entries)) + b"".join(entries))
                        sent_keys += len(entries)
                        entries, nbytes = [], 0
                    continue
                f = e[2]
            if f:
                fls.append(m.floor_entry(k, f))
        if entries:
            link.write(m.cu_head(0, len(entries)) + b"".join(entries))
            sent_keys += len(entries)
        if fls:
            link.write(m.floors_head(len(fls)) + b"".join(fls))
            sent_floors += len(fls)
        self.stats["keys_sent"] += sent_keys
        self.stats["floors_sent"] += sent_floors
        return sent_keys, sent_floors

    def info_fields(self) -> list:
        ks = self.server.keyspace
        led = ks.ledger
        st = self.stats
        return [
            ("repl_anti_entropy_interval_ms", self.server.config.cluster_anti_entropy_interval_ms),
            ("repl_anti_entropy_rounds", st["rounds"]),
            ("repl_anti_entropy_last_round_ms", "%.1f" % self.last_round_ms),
            ("repl_anti_entropy_last_walk_ms", "%.1f" % self.last_walk_ms),
            ("repl_anti_entropy_last_cpu_ms", "%.1f" % self.last_busy_ms),
            ("repl_anti_entropy_ranges_sent", st["ranges_sent"]),
            ("repl_anti_entropy_ranges_repaired", st["ranges_repaired_here"]),
            ("repl_anti_entropy_ranges_served", st["ranges_differing_served"]),
            ("repl_anti_entropy_keys_sent", st["keys_sent"]),
            ("repl_anti_entropy_floors_sent", st["floors_sent"]),
            ("repl_anti_entropy_summary_keys_sent", st["summary_keys_sent"]),
            ("repl_anti_entropy_summary_keys_received", st["summary_keys_received"]),
            ("repl_anti_entropy_keys_fetched", st["keys_fetched"]),
            ("repl_anti_entropy_ledger_rounds", st["ledger_rounds"]),
            ("repl_anti_entropy_range_rounds", st["range_rounds"]),
            ("repl_anti_entropy_buckets_differing", st["ledger_buckets_differing"]),
            ("repl_anti_entropy_no_snapshot", st["ledger_no_snapshot"]),
            ("repl_anti_entropy_ledger_refused", st["ledger_refused"]),
            ("ledger_changes", led.changes if led is not None else 0),
            ("ledger_pending", led.npending if led is not None else 0),
            ("ledger_folded_early", led.folded_early if led is not None else 0),
            ("repl_floors_received", st["floors_received"]),
            ("repl_floors_applied", st["floors_applied"]),
            ("version_floors", len(ks.floors)),
            ("version_floor_bytes", ks.floor_bytes),
            ("version_floors_recorded", ks.floors_recorded),
            ("version_floors_retired", ks.floors_retired),
            ("version_floors_retired_early", ks.floors_retired_early),
        ]
