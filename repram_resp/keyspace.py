"""The keyspace: live keys, their deadlines, a sorted index and memory accounting.

Invariants:
* Every key has an absolute deadline in Unix milliseconds (REPRAM: TTL is
  mandatory).  A key is expired once ``now > deadline`` (Redis's rule) and from
  that instant no read path returns it, whether or not it has been reclaimed.
* ``data[key] = (value, deadline_ms, version, filed_ms)``.  ``version`` is the
  write's hybrid-logical-clock stamp (replication orders concurrent writes by
  it); ``filed_ms`` is the start of the expiry bucket the key is filed in,
  one int object shared by every key of that bucket.  Since a key is never
  filed after its deadline, ``now < filed_ms`` proves it alive without
  touching its own deadline object: reads check the shared, cache-hot int
  first (a GET of a live key then skips one memory load; ~6% measured).
* ``index`` holds exactly the keys of ``data``, sorted bytewise, so a pattern
  with a literal prefix is answered in O(log N + keys under the prefix).
* Deadlines live in buckets of ``BUCKET_MS`` (a coarse timer wheel).  A
  bucket is a *list* of filings (keys); a filing of key k in bucket b is
  *live* when ``data[k][3]`` is b's start, *stale* otherwise.  Every key has
  at least one live filing, in a bucket no later than its deadline's; at
  most one unless the rare case below.  (Lists, not sets: 8 bytes a key
  instead of ~44, measured -- the price is stale filings, kept bounded.)
  An overwrite that shortens the deadline files the key again in the earlier
  bucket and leaves the old filing stale; one that extends it leaves it
  filed early and the reclaimer re-files it when that bucket comes due.  The
  reclaimer skips stale filings (counting them as work); a bucket whose
  stale filings pass half of it (and 32), or may be all of it, is compacted
  at once (an empty one dropped), so a bucket holds at most about twice its
  live filings.  A re-filing can land in a
  bucket that still holds a stale filing of the same key, which then is live
  again (two live filings): harmless, as the first visit deletes or re-files
  the key and the second then finds it stale.  A heap orders bucket ids.
  The background reclaimer (server.py) drains due buckets in bounded batches
  and reports each expiry through ``on_expired`` (keyspace notifications).
* ``used_bytes`` = sum over keys of len(key) + len(value) + ENTRY_OVERHEAD_BYTES.
  ``maxmemory`` is enforced before a write is applied (noeviction only); a
  refused write changes nothing.  Version floors (below) count in it too.

The digest ledger (replication; ``ledger`` None until the cluster layer
sets one): every change of a key's *state* -- its entry's version, else its
floor's -- is noted there (``put``, ``_delete``, ``add_floor``,
``_pop_floor``), tagged with the instant it happened; cluster/ledger.py.

Version floors (replication; off until the cluster layer sets
``floor_retention_ms``):
* When a live entry *disappears* -- reclaimed on expiry, or superseded by a
  floor from a peer -- its ``(key, version)`` is kept in ``floors`` (key ->
  version), ``floor_index`` (sorted keys) and ``_floor_heap`` (retire time,
  key, version).  An overwrite records nothing: the live entry's newer
  version already dominates, so the SET hot path is unchanged.
* ``apply_remote`` refuses a version at or below the key's entry in ``data``
  (live *or* expired-but-unreclaimed) and, without an entry, at or below its
  floor.  So a superseded write that arrives late (stream replay, catch-up,
  anti-entropy) can never come back after its overwrite expired.
* A floor retires at ``version_ms + floor_retention_ms`` (max-ttl + clock
  slack): by then every write older than it has expired everywhere.  The
  retire time depends only on the version, so every node retires a floor at
  the same instant (give or take clock skew).
* A floor may outlive the reappearance of its key: a newer entry then
  dominates it; its memory is returned when it retires.
* ``floor_max_bytes`` bounds floor memory; past it the earliest-retiring
  floors go early (``floors_retired_early``; floors at or before
  ``floor_horizon_ms`` are then no longer accepted from peers, so they do not
  bounce back).  The cost: an older write to such a key, still alive on a
  partitioned node, could reappear on repair.
"""

from __future__ import annotations

import heapq
import random
from typing import Callable

from sortedcontainers import SortedList

from .clock import HLC, LOGICAL_BITS
from .glob import CACHE_PATTERN_MAX_BYTES, compile_glob, is_match_all, literal_prefix

BUCKET_SHIFT = 4                     # 16 ms buckets: well inside the 50 ms reclaim target
BUCKET_MS = 1 << BUCKET_SHIFT

# Per-entry bookkeeping beyond the key and value bytes: what the process
# really spends per key, measured (benchmarks/memory_per_key.py: 1,000,000
# keys of 16 + 64 bytes cost 415 bytes of RSS each with bucket lists, so 335
# beyond key+value; 476 / 396 with bucket sets).
# It covers two bytes objects (headers, pymalloc rounding), the entry tuple,
# the deadline and version ints, the dict slot at its load factor, the
# sorted-index slot and the expiry-bucket list slot.  Counting less would let
# real memory run past maxmemory.
ENTRY_OVERHEAD_BYTES = 336
# One version floor beyond its key's bytes: the dict slot, the sorted-index
# slot, the heap tuple and its ints (benchmarks/floor_memory.py measures it).
FLOOR_OVERHEAD_BYTES = 240


class OutOfMemory(Exception):
    pass


class InvalidCursor(Exception):
    pass


class Keyspace:
    def __init__(self, maxmemory_bytes: int = 0, cursor_max_entries: int = 100_000,
                 hlc: HLC | None = None):
        self.data: dict[bytes, tuple] = {}
        self.hlc = hlc if hlc is not None else HLC()   # stamps local writes
        self.index = SortedList()
        self._buckets: dict[int, list] = {}
        self._starts: dict[int, int] = {}   # bucket id -> its start ms (the shared int)
        self._stale: dict[int, int] = {}    # bucket id -> stale filings in it (moves out)
        self._bucket_heap: list[int] = []
        # Issue 7 (DBSIZE/INFO without a reclaim pass): bucket id -> the keys
        # filed in it that an overwrite extended past it.  Every other key of
        # a due bucket is expired, so DBSIZE counts them without looking.
        self._ext: dict[int, set] = {}
        self.used_bytes = 0
        self.maxmemory_bytes = maxmemory_bytes
        self.expired_keys = 0
        self.hits = 0
        self.misses = 0
        self.on_expired: Callable[[bytes], None] | None = None
        # After every stored write, local or replicated -- the one place every
        # write passes -- write_hook(key, created) is called if key is ``in``
        # on_write: for client-side caching invalidation and the 'new'
        # keyspace event.  on_write is None (one attribute check per write)
        # while nobody needs it; with only default-mode trackers it is the
        # tracking table itself (a plain dict), so a write of a key nobody
        # cached costs one lookup and no call.
        self.on_write = None
        self.write_hook: Callable[[bytes, bool], None] | None = None
        # Called with a new bucket's deadline (ms) so the reclaimer can wake
        # earlier than it planned.
        self.on_new_bucket: Callable[[int], None] | None = None
        # SCAN continuation: cursor id -> last key returned.  Ids start at a
        # random point so a cursor from before a restart is not mistaken.
        self._cursors: dict[int, bytes] = {}
        # Issue 7 (soak): cursor -> the cursor it continued.  Once a client
        # continues from cursor c, the one before c is dropped, so a finished
        # iteration leaves one cursor behind instead of one per step.
        self._cursor_parent: dict[int, int] = {}
        self._cursor_max = cursor_max_entries
        self._next_cursor = random.randrange(1 << 32, 1 << 44)
        self._glob_cache: dict[bytes, Callable] = {}
        # Version floors (module header).
        self.floors: dict[bytes, int] = {}
        self.floor_index = SortedList()
        self._floor_heap: list = []
        self.floor_retention_ms = 0      # 0: floors off (a node without peers)
        self.floor_max_bytes = 0         # 0: unbounded
        self.floor_bytes = 0
        self.floor_horizon_ms = 0
        self.floors_recorded = 0
        self.floors_retired = 0
        self.floors_retired_early = 0
        # The digest ledger (cluster/ledger.py), set by the cluster layer:
        # every change of a key's state (the version of its entry, else of
        # its floor) is noted in it, tagged with the instant it happened.
        self.ledger = None

    # -- reads ---------------------------------------------------------------

    def lookup(self, key: bytes, now: int):
        """The live entry of key, or None."""
        e = self.data.get(key)
        if e is None or (now >= e[3] and now > e[1]):
            return None
        return e

    def get(self, key: bytes, now: int):
        e = self.data.get(key)
        if e is None or (now >= e[3] and now > e[1]):
            self.misses += 1
            return None
        self.hits += 1
        return e[0]

    # -- writes --------------------------------------------------------------

    def fits(self, delta: int) -> bool:
        return not self.maxmemory_bytes or self.used_bytes + delta <= self.maxmemory_bytes

    def size_delta(self, key: bytes, value: bytes) -> int:
        old = self.data.get(key)
        if old is None:
            return len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        return len(value) - len(old[0])

    def put(self, key: bytes, value: bytes, deadline: int, version: int | None, now: int) -> None:
        """Store (key, value) until deadline.  Raises OutOfMemory (no change).
        ``version`` None means a local write: it is stamped with the next HLC
        version here.  (The fast lane mirrors this for an overwrite that
        stays in its bucket: lane.py.)"""
        if version is None:
            version = self.hlc.tick(now)
        data = self.data
        old = data.get(key)
        nb = deadline >> BUCKET_SHIFT
        if old is None:
            size = len(key) + len(value) + ENTRY_OVERHEAD_BYTES
            if self.maxmemory_bytes and self.used_bytes + size > self.maxmemory_bytes:
                raise OutOfMemory()
            self.used_bytes += size
            data[key] = (value, deadline, version, self._schedule(key, nb))
            self.index.add(key)
            if self.ledger is not None:
                self.ledger.note(key, self.floors.get(key, 0) if self.floors else 0, version, version)
            w = self.on_write
            if w is not None and key in w:
                self.write_hook(key, True)
            return
        delta = len(value) - len(old[0])
        if delta > 0 and self.maxmemory_bytes and self.used_bytes + delta > self.maxmemory_bytes:
            raise OutOfMemory()
        sched = old[3]
        created = False
        if now >= sched and now > old[1]:
            # Overwriting a key that expired but was not reclaimed yet: it
            # expired first, as far as anyone watching is concerned.
            self.expired_keys += 1
            created = True
            if self.on_expired is not None:
                self.on_expired(key)
        if delta:
            self.used_bytes += delta
        ob = sched >> BUCKET_SHIFT
        was_ext = (old[1] >> BUCKET_SHIFT) > ob     # issue 7: the _ext count
        if deadline < sched:
            # An earlier deadline files the key in an earlier bucket, leaving
            # the old filing stale; a later one leaves it where it is (the
            # reclaimer re-files it when that bucket comes due), so the usual
            # overwrite touches no bucket.
            if was_ext:
                self._ext_drop(ob, key)
            data[key] = (value, deadline, version, self._schedule(key, nb))
            self._left(ob)
        else:
            if (nb > ob) != was_ext:
                if was_ext:
                    self._ext_drop(ob, key)
                else:
                    self._ext_add(ob, key)
            data[key] = (value, deadline, version, sched)
        if self.ledger is not None:
            self.ledger.note(key, old[2], version, version)
        w = self.on_write
        if w is not None and key in w:
            self.write_hook(key, created)

    def _ext_add(self, b: int, key: bytes) -> None:
        x = self._ext.get(b)
        if x is None:
            self._ext[b] = {key}
        else:
            x.add(key)

    def _ext_drop(self, b: int, key: bytes) -> None:
        x = self._ext.get(b)
        if x is not None:
            x.discard(key)
            if not x:
                del self._ext[b]

    def _left(self, b: int, gone: bytes | None = None) -> None:
        """A key's live filing in bucket b went stale (it moved, or ``gone``
        is about to be deleted): count it, and compact the bucket once stale
        filings are over half of it."""
        s = self._buckets.get(b)
        if s is None:
            return
        n = self._stale.get(b, 0) + 1
        if n < len(s) and (n <= 32 or 2 * n <= len(s)):
            self._stale[b] = n
            return
        # Over half stale, or maybe nothing live left: keep exactly the live
        # filings, one per key (so len(s) - _stale[b] stays the number of
        # keys filed live here, which dbsize relies on).
        start = self._starts[b]
        data = self.data
        live = list(dict.fromkeys(k for k in s if k != gone and (e := data.get(k)) is not None
                                  and e[3] == start))
        self._stale.pop(b, None)
        if live:
            s[:] = live
        else:
            del self._buckets[b]
            del self._starts[b]
            self._ext.pop(b, None)

    def apply_remote(self, key: bytes, value: bytes, deadline: int, version: int, now: int) -> bool:
        """Apply a replicated write by last-writer-wins.  Returns True if it
        became the key's value.  Order: (version, value, deadline), so every
        node picks the same winner whatever the arrival order, and a
        duplicate delivery changes nothing.  Raises OutOfMemory (no change).
        A write whose deadline has passed is dropped."""
        if now > deadline:
            return False
        old = self.data.get(key)
        if old is not None:
            # Live or expired-but-unreclaimed: either way it was written.
            if (version, value, deadline) <= (old[2], old[0], old[1]):
                return False
        elif self.floors:
            f = self.floors.get(key)
            if f is not None and version <= f:
                return False
        self.put(key, value, deadline, version, now)
        return True

    # -- version floors ------------------------------------------------------

    def top_version(self, key: bytes) -> int:
        """The newest version this node knows for key (entry or floor), 0 if none."""
        e = self.data.get(key)
        f = self.floors.get(key, 0)
        if e is not None and e[2] > f:
            return e[2]
        return f

    def apply_floor(self, key: bytes, version: int, now: int) -> bool:
        """A peer says ``version`` of key was written and has expired.  An
        older entry here is dropped (as an expiry); the floor is kept.
        Returns True if a value was dropped."""
        if not self.floor_retention_ms:
            return False
        e = self.data.get(key)
        dropped = False
        if e is not None:
            if e[2] >= version:
                return False
            self._unfile(key, e[3])
            self._delete(key, e)
            dropped = True
        self.add_floor(key, version, now)
        return dropped

    def add_floor(self, key: bytes, version: int, now: int) -> None:
        led = self.ledger
        if led is None or key in self.data:
            self._add_floor(key, version, now)
            return
        old = self.floors.get(key, 0)
        self._add_floor(key, version, now)
        new = self.floors.get(key, 0)
        if new != old:
            led.note(key, old, new, new)      # tagged as the write it stands for

    def _add_floor(self, key: bytes, version: int, now: int) -> None:
        retire = (version >> LOGICAL_BITS) + self.floor_retention_ms
        if retire <= now or retire <= self.floor_horizon_ms:
            return
        floors = self.floors
        old = floors.get(key)
        if old is not None and old >= version:
            return
        if old is None:
            self.floor_index.add(key)
        floors[key] = version
        heapq.heappush(self._floor_heap, (retire, key, version))
        size = len(key) + FLOOR_OVERHEAD_BYTES
        self.floor_bytes += size
        self.used_bytes += size
        self.floors_recorded += 1
        if self.floor_max_bytes and self.floor_bytes > self.floor_max_bytes:
            while self._floor_heap and self.floor_bytes > self.floor_max_bytes:
                r = self._pop_floor(key)
                if r is not None:
                    self.floors_retired_early += 1
                    if r > self.floor_horizon_ms:
                        self.floor_horizon_ms = r

    def _pop_floor(self, busy: bytes | None = None):
        """Retire the earliest heap entry; its retire time if it was current.
        ``busy``: the key whose floor is being set (``_add_floor``) -- its
        caller notes that key's change in the ledger as a whole."""
        retire, key, version = heapq.heappop(self._floor_heap)
        size = len(key) + FLOOR_OVERHEAD_BYTES
        self.floor_bytes -= size
        self.used_bytes -= size
        if self.floors.get(key) == version:
            del self.floors[key]
            self.floor_index.remove(key)
            if self.ledger is not None and key != busy and key not in self.data:
                # at its retire time, even when retired early: that is when
                # every other node drops it
                self.ledger.note(key, version, 0, retire << LOGICAL_BITS)
            return retire
        return None

    def retire_floors(self, now: int, budget: int) -> int:
        heap = self._floor_heap
        n = 0
        while heap and heap[0][0] <= now and n < budget:
            if self._pop_floor() is not None:
                self.floors_retired += 1
            n += 1
        return n

    def floor_of(self, key: bytes, now: int) -> int:
        """The key's floor if it has not reached its retire time, else 0."""
        f = self.floors.get(key)
        if f is None or (f >> LOGICAL_BITS) + self.floor_retention_ms <= now:
            return 0
        return f

    def extend_deadline(self, key: bytes, version: int, deadline: int, now: int) -> bool:
        """Move the deadline of the entry of exactly this version later
        (a replica deadline re-converted with a better clock sample).  The
        key stays filed where it is: early, which the reclaimer handles.
        An entry already expired stays expired (nothing read as gone comes back)."""
        e = self.data.get(key)
        if e is None or e[2] != version or deadline <= e[1] or now > e[1]:
            return False
        self.data[key] = (e[0], deadline, version, e[3])
        return True

    def _unfile(self, key: bytes, sched: int) -> None:
        # The caller deletes the entry next: its filing goes stale (header).
        b = sched >> BUCKET_SHIFT
        self._ext_drop(b, key)
        self._left(b, key)

    def _schedule(self, key: bytes, b: int) -> int:
        """File key in bucket b; returns the bucket's shared start-ms int."""
        s = self._buckets.get(b)
        if s is None:
            start = self._starts[b] = b << BUCKET_SHIFT
            self._buckets[b] = [key]
            heapq.heappush(self._bucket_heap, b)
            if len(self._bucket_heap) > 4 * len(self._buckets) + 4096:
                # Ids of buckets emptied by moves linger in the heap;
                # rebuilding from the live buckets keeps it proportional.
                self._bucket_heap = list(self._buckets)
                heapq.heapify(self._bucket_heap)
            if self.on_new_bucket is not None:
                self.on_new_bucket((b + 1) << BUCKET_SHIFT)
            return start
        s.append(key)
        return self._starts[b]

    # -- expiry --------------------------------------------------------------

    def next_deadline(self) -> int | None:
        """The instant (ms) at which the earliest bucket becomes fully due."""
        heap = self._bucket_heap
        while heap and heap[0] not in self._buckets:
            heapq.heappop(heap)
        if not heap:
            return None
        return (heap[0] + 1) << BUCKET_SHIFT

    def reclaim(self, now: int, budget: int) -> int:
        """Process up to ``budget`` keys from buckets wholly in the past:
        delete the expired ones, re-file the ones extended since.  Returns how
        many were processed (== budget means more may be due)."""
        heap, buckets, data = self._bucket_heap, self._buckets, self.data
        done = 0
        limit = now >> BUCKET_SHIFT     # buckets < limit end before now
        while heap and heap[0] < limit and done < budget:
            b = heap[0]
            s = buckets.get(b)
            if s is None:
                heapq.heappop(heap)
                continue
            start = b << BUCKET_SHIFT
            while s and done < budget:
                key = s.pop()
                done += 1
                e = data.get(key)
                if e is None or e[3] != start:    # a stale filing
                    st = self._stale.get(b)
                    if st:
                        self._stale[b] = st - 1
                    continue
                if now > e[1]:
                    if e[1] >> BUCKET_SHIFT > b:
                        self._ext_drop(b, key)  # extended, and that deadline passed too
                    self._delete(key, e)
                else:
                    # Extended by an overwrite since it was filed: re-file it.
                    self._ext_drop(b, key)
                    data[key] = (e[0], e[1], e[2], self._schedule(key, e[1] >> BUCKET_SHIFT))
            if not s:
                del buckets[b]
                del self._starts[b]
                self._stale.pop(b, None)
                self._ext.pop(b, None)
                heapq.heappop(heap)
        if self._floor_heap and self._floor_heap[0][0] <= now and done < budget:
            done += self.retire_floors(now, budget - done)
        return done

    def _delete(self, key: bytes, e: tuple) -> None:
        del self.data[key]
        self.index.remove(key)
        self.used_bytes -= len(key) + len(e[0]) + ENTRY_OVERHEAD_BYTES
        self.expired_keys += 1
        if self.floor_retention_ms:
            self._add_floor(key, e[2], e[1])
        if self.ledger is not None:
            # Normally a floor of the same version: no change.  Without one,
            # the key's state ends at its deadline.
            self.ledger.note(key, e[2], self.floors.get(key, 0), e[1] << LOGICAL_BITS)
        if self.on_expired is not None:
            self.on_expired(key)

    def expire_all_due(self, now: int) -> None:
        """Reclaim everything already expired (used before counting keys)."""
        self.reclaim(now, 1 << 62)
        b = now >> BUCKET_SHIFT
        s = self._buckets.get(b)
        if s:
            data = self.data
            start = b << BUCKET_SHIFT
            keep = []
            for key in s:
                e = data.get(key)
                if e is None or e[3] != start:
                    continue                      # stale: dropped
                if now > e[1]:
                    self._delete(key, e)
                else:
                    keep.append(key)
            self._stale.pop(b, None)
            if keep:
                s[:] = dict.fromkeys(keep)    # one filing per key (dbsize counts them)
            else:
                del self._buckets[b]
                del self._starts[b]
                self._ext.pop(b, None)

    def dbsize(self, now: int) -> int:
        """Live keys, without reclaiming anything (issue 7: an expiry wave
        must not make DBSIZE / INFO cost its size): every key minus the
        expired ones still filed in buckets wholly in the past, counted per
        bucket.  The work is one step per due bucket (the reclaimer keeps
        them few) plus the keys filed in the current 16 ms bucket."""
        heap, buckets, ext = self._bucket_heap, self._buckets, self._ext
        limit = now >> BUCKET_SHIFT
        due = 0
        n = len(heap)
        stack = [0] if n and heap[0] < limit else []
        seen = set()
        while stack:
            i = stack.pop()
            b = heap[i]
            if b not in seen:
                seen.add(b)
                s = buckets.get(b)
                if s:
                    x = ext.get(b)
                    due += len(s) - self._stale.get(b, 0)   # keys filed live here
                    if x:   # extended keys: alive unless that deadline passed too
                        data = self.data
                        due -= sum(1 for k in x if now <= data[k][1])
            # heap order: children are >= their parent, so only the due part
            # of the tree is walked
            j = 2 * i + 1
            if j < n and heap[j] < limit:
                stack.append(j)
            if j + 1 < n and heap[j + 1] < limit:
                stack.append(j + 1)
        # The bucket now is in: only keys due within its 16 ms are looked at
        # (an expiry wave of one instant costs one pass while it is current).
        s = buckets.get(limit)
        if s:
            data = self.data
            start = limit << BUCKET_SHIFT
            due += len({k for k in s if (e := data.get(k)) is not None and e[3] == start
                        and now > e[1]})
        return len(self.data) - due

    # -- listing -------------------------------------------------------------

    def _matcher(self, pattern: bytes):
        if len(pattern) > CACHE_PATTERN_MAX_BYTES:
            return compile_glob(pattern)    # issue 7: caches stay bounded in bytes
        m = self._glob_cache.get(pattern)
        if m is None:
            if len(self._glob_cache) > 256:
                self._glob_cache.clear()
            m = self._glob_cache[pattern] = compile_glob(pattern)
        return m

    def keys(self, pattern: bytes, now: int) -> list[bytes]:
        out: list = []
        self.keys_step(*self.keys_plan(pattern), None, 0, now, out)
        return out

    def keys_plan(self, pattern: bytes):
        """(prefix, matcher or None) for KEYS: compiled once, then used by
        every keys_step of the same KEYS."""
        prefix = literal_prefix(pattern)
        match = None if is_match_all(pattern) or pattern == prefix + b"*" else self._matcher(pattern)
        return prefix, match

    def keys_step(self, prefix: bytes, match, after, limit: int, now: int, out: list):
        """Append to ``out`` the live matching keys after ``after`` (None:
        from the start), visiting at most ``limit`` keys (0: all).  Returns
        the last key visited if there may be more, else None.  KEYS over a
        large keyspace runs in such steps across loop turns (issue 7)."""
        data = self.data
        index = self.index
        if after is None:
            it = index.irange(minimum=prefix) if prefix else iter(index)
        else:
            it = index.irange(minimum=after, inclusive=(False, True))
        n = 0
        for k in it:
            if not k.startswith(prefix):
                return None
            if limit:
                n += 1
                if n > limit:
                    return after
                after = k
            if now > data[k][1]:
                continue
            if match is None or match(k):
                out.append(k)
        return None

    def scan(self, cursor: int, pattern: bytes | None, count: int, now: int):
        """One SCAN step: (next cursor, keys).  Keys are visited in sorted
        order after the last key the cursor returned, so every key present for
        the whole iteration is returned, whatever expires or is added."""
        if cursor == 0:
            after = None
        else:
            after = self._cursors.get(cursor)
            if after is None:
                raise InvalidCursor()
            parent = self._cursor_parent.pop(cursor, None)
            if parent is not None:
                self._cursors.pop(parent, None)
        index, data = self.index, self.data
        prefix = literal_prefix(pattern) if pattern else b""
        if pattern is None or is_match_all(pattern) or pattern == prefix + b"*":
            match = None
        else:
            match = self._matcher(pattern)
        start = 0 if after is None else index.bisect_right(after)
        if prefix:
            start = max(start, index.bisect_left(prefix))
        chunk = list(index.islice(start, start + count))
        out = []
        finished = len(chunk) < count
        for k in chunk:
            if prefix and not k.startswith(prefix):
                finished = True
                break
            if now > data[k][1]:
                continue
            if match is None or match(k):
                out.append(k)
        if finished or not chunk or start + count >= len(index):
            return 0, out
        return self._remember(chunk[-1], cursor), out

    def _remember(self, last: bytes, parent: int = 0) -> int:
        cid = self._next_cursor
        self._next_cursor += 1
        if self._next_cursor >= 1 << 53:
            self._next_cursor = 1
        cursors = self._cursors
        cursors[cid] = last
        if parent:
            self._cursor_parent[cid] = parent
        while len(cursors) > self._cursor_max:
            old = next(iter(cursors))
            del cursors[old]
            self._cursor_parent.pop(old, None)
        return cid

    # -- stats ---------------------------------------------------------------

    def avg_ttl_ms(self, now: int, sample: int = 64) -> int:
        data = self.data
        if not data:
            return 0
        idx = self.index
        n = len(idx)
        picks = [idx[random.randrange(n)] for _ in range(min(sample, n))]
        ttls = [data[k][1] - now for k in picks if data[k][1] >= now]
        return int(sum(ttls) / len(ttls)) if ttls else 0
