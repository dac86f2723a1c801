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

Protocol (on the link that carries the peer's stream to us; we are its
receiver, as for SYNC):

* Every ``cluster-anti-entropy-interval-ms`` (and soon after each catch-up
  completes, i.e. on every (re)connect) the node runs one *round*: it walks
  its merged sorted index (keys of entries and of floors) in groups of
  ``RANGE_KEYS`` keys; group i covers ``[lo_i, lo_{i+1})`` (the first starts
  at the empty key, the last has no upper bound), and its digest is BLAKE2b
  over the keys in it, their lengths and their top versions.  Ranges go out in ``AE``
  frames of up to ``RANGES_PER_FRAME``, the same frames to every peer taking
  part (one walk serves them all); the last frame says so.
* The peer computes its own digest of each range and, where they differ,
  sends every key it has in the range: live entries as ``CU 0`` entries,
  the rest (floors, expired entries) as ``FL`` floors.  The receiver applies
  them as always -- last writer wins, floors drop older values -- so a
  spurious difference (a key written between the two walks) costs a few
  bytes and changes nothing.  After the last frame it answers ``AEEND``.
* The node repairs itself from its peers; its peers, running their own
  rounds, repair themselves from it.  A difference present when a round
  starts is therefore repaired by the end of that round, so divergence
  between live, connected nodes lasts at most one interval plus one round.

Work per loop turn is bounded on both sides: at most ``CHUNK_KEYS`` keys are
hashed or sent before yielding, and sending waits for the link to drain.
A round starts only when the previous one was answered by every peer taking
part (or timed out), and rounds are paced so that walking the keyspace --
our walk plus each peer's walk of our keys for its own rounds -- uses at most
about ``1 / PACE_FACTOR`` of the loop: the next round waits at least
``PACE_FACTOR * (1 + peers) * last walk``.  Big keyspaces get a longer
effective interval (measured: ~0.8 us per key walked, so with 2 peers the
interval stays at its 2 s default up to ~80,000 keys; INFO shows the last
walk and round durations).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from array import array
from collections import deque
from itertools import islice

from . import messages as m
from .replicator import CATCHUP_CHUNK_BYTES

log = logging.getLogger("repram.cluster")

RANGE_KEYS = 128            # keys summarised by one digest
RANGES_PER_FRAME = 32       # digests per AE frame
CHUNK_KEYS = 2000           # keys hashed or sent per loop turn, at most
PACE_FACTOR = 10            # a round's walk uses at most ~1/PACE_FACTOR of the time
ROUND_TIMEOUT_S = 30.0      # a peer that never answers a round no longer holds the next
QUEUE_FRAMES_MAX = 100_000  # AE frames a peer may have queued with us


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


def summary_bytes(ks, keys, now: int) -> bytes:
    """The bytes a range digest hashes for these keys (in order): the keys,
    their lengths and their top versions (keys whose only floor retired are
    left out).  Versions fit 64 bits until the year 10889; a bigger one (a
    wild peer clock) falls back to decimal text."""
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
    try:
        tail = array("Q", vs).tobytes()
    except OverflowError:
        tail = b",".join(b"%d" % v for v in vs)
    return b"".join(keys) + array("Q", map(len, keys)).tobytes() + tail


def new_digest():
    return hashlib.blake2b(digest_size=16)


def digest_keys(ks, keys, now: int) -> bytes:
    h = new_digest()
    h.update(summary_bytes(ks, keys, now))
    return h.digest()


def build_ranges(ks, start: bytes, first: bool, now: int, max_keys: int):
    """Ranges from ``start`` on, covering up to max_keys keys: returns
    ([(lo, hi or None, digest)], next start or None when the walk is done).
    The first range of a walk starts at b'' (inclusive)."""
    out = []
    lo = b"" if first else start
    done = 0
    while done < max_keys:
        keys, complete = _chunk(ks, lo, True, None, RANGE_KEYS + 1)
        if len(keys) <= RANGE_KEYS:
            out.append((lo, None, digest_keys(ks, keys, now)))
            return out, None
        group, hi = keys[:RANGE_KEYS], keys[RANGE_KEYS]
        out.append((lo, hi, digest_keys(ks, group, now)))
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
            "ranges_repaired_here", "floors_received", "floors_applied"), 0)
        self.last_walk_ms = 0.0
        self.last_round_ms = 0.0
        self.last_links = 0

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

    def tick(self, now: float) -> None:
        if self.interval_s() <= 0 or self.task is not None:
            return
        if self.pending:
            for lk in list(self.pending):
                if lk.state != "ready" or now - self.round_started > ROUND_TIMEOUT_S:
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
        # Each peer walks our keys once per round of its own, as we do: the
        # whole cost of a round here is about (1 + peers) walks.
        pace = self.last_walk_ms / 1000.0 * PACE_FACTOR * (1 + self.last_links)
        self.next_at = now + max(self.interval_s(), pace)

    async def _round(self, links) -> None:
        ks = self.server.keyspace
        clock = self.server.clock
        self.round_id += 1
        rid = self.round_id
        self.round_started = time.monotonic()
        self.last_links = len(links)
        self.stats["rounds"] += 1
        walk_s = 0.0
        try:
            start, first = b"", True
            batch: list = []
            live = list(links)
            while True:
                # CPU time, not wall time: on a busy host a preempted walk
                # must not stretch the pacing.
                t = time.thread_time()
                ranges, start = build_ranges(ks, start, first, clock(), CHUNK_KEYS)
                first = False
                batch += ranges
                walk_s += time.thread_time() - t
                done = start is None
                while len(batch) >= RANGES_PER_FRAME or (done and batch):
                    part, batch = batch[:RANGES_PER_FRAME], batch[RANGES_PER_FRAME:]
                    last = done and not batch
                    data = m.encode_ae(rid, last, part)
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
            self.task = None
            if not self.pending:
                self._round_over(time.monotonic())

    def on_aeend(self, link, rid: int, differing: int, keys: int, floors: int) -> None:
        if self.pending.get(link) == rid:
            del self.pending[link]
            self.stats["ranges_repaired_here"] += differing
            if differing and log.isEnabledFor(logging.INFO):
                log.info("anti-entropy with %s: %d range%s differed; %d entries, %d floors received",
                         link.describe(), differing, "" if differing == 1 else "s", keys, floors)
            if not self.pending and self.task is None:
                self._round_over(time.monotonic())

    def on_floors(self, link, f: list) -> None:
        """FL: floors from the peer (catch-up or repair)."""
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

    # -- sender: answering a peer's round ---------------------------------------

    def on_ae(self, link, f: list) -> None:
        rid, last, ranges = m.decode_ae(f)
        c = self.cluster
        if link.peer is None or link.peer.enclave != c.enclave:
            if last:
                link.write(m.frame(m.AEEND, rid, 0, 0, 0))
            return
        q = link.ae_queue
        if q is None:
            q = link.ae_queue = deque()
        if len(q) >= QUEUE_FRAMES_MAX:
            raise m.MessageError("AE: more than %d frames queued" % QUEUE_FRAMES_MAX)
        q.append((rid, last, ranges))
        if link.ae_task is None:
            link.ae_task = asyncio.ensure_future(self._serve(link))

    async def _serve(self, link) -> None:
        q = link.ae_queue
        differing = keys = floors = 0
        try:
            while q and link.state == "ready":
                rid, last, ranges = q.popleft()
                for lo, hi, dig in ranges:
                    if await self._digest(lo, hi) != dig:
                        differing += 1
                        k, fl = await self._send_range(link, lo, hi)
                        keys += k
                        floors += fl
                if last:
                    link.write(m.frame(m.AEEND, rid, differing, keys, floors))
                    self.stats["ranges_differing_served"] += differing
                    differing = keys = floors = 0
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("anti-entropy answer to %s failed", link.describe())
            link.abort("anti-entropy failed")
        finally:
            link.ae_task = None

    async def _digest(self, lo: bytes, hi) -> bytes:
        ks = self.server.keyspace
        h = new_digest()
        cur, inclusive = lo, True
        while True:
            keys, complete = _chunk(ks, cur, inclusive, hi, CHUNK_KEYS)
            h.update(summary_bytes(ks, keys, self.server.clock()))
            if complete or not keys:
                return h.digest()
            cur, inclusive = keys[-1], False
            await asyncio.sleep(0)

    async def _send_range(self, link, lo: bytes, hi):
        ks = self.server.keyspace
        limit = link.remote_max_bulk
        chunk_bytes = min(CATCHUP_CHUNK_BYTES,
                          self.server.config.cluster_peer_queue_limit_bytes // 4)
        cur, inclusive = lo, True
        sent_keys = sent_floors = 0
        while link.state == "ready":
            keys, complete = _chunk(ks, cur, inclusive, hi, CHUNK_KEYS)
            now = self.server.clock()
            data = ks.data
            entries, fls = [], []
            nbytes = 0
            for k in keys:
                e = data.get(k)
                f = ks.floor_of(k, now) if k in ks.floors else 0
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
            if complete or not keys:
                break
            cur, inclusive = keys[-1], False
            if link.paused:
                await link.drained()
            else:
                await asyncio.sleep(0)
        self.stats["keys_sent"] += sent_keys
        self.stats["floors_sent"] += sent_floors
        return sent_keys, sent_floors

    def info_fields(self) -> list:
        ks = self.server.keyspace
        st = self.stats
        return [
            ("repl_anti_entropy_interval_ms", self.server.config.cluster_anti_entropy_interval_ms),
            ("repl_anti_entropy_rounds", st["rounds"]),
            ("repl_anti_entropy_last_round_ms", "%.1f" % self.last_round_ms),
            ("repl_anti_entropy_last_walk_ms", "%.1f" % self.last_walk_ms),
            ("repl_anti_entropy_ranges_sent", st["ranges_sent"]),
            ("repl_anti_entropy_ranges_repaired", st["ranges_repaired_here"]),
            ("repl_anti_entropy_ranges_served", st["ranges_differing_served"]),
            ("repl_anti_entropy_keys_sent", st["keys_sent"]),
            ("repl_anti_entropy_floors_sent", st["floors_sent"]),
            ("repl_floors_received", st["floors_received"]),
            ("repl_floors_applied", st["floors_applied"]),
            ("version_floors", len(ks.floors)),
            ("version_floor_bytes", ks.floor_bytes),
            ("version_floors_recorded", ks.floors_recorded),
            ("version_floors_retired", ks.floors_retired),
            ("version_floors_retired_early", ks.floors_retired_early),
        ]
