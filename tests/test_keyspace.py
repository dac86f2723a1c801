"""The keyspace engine on its own (no network, explicit ``now`` in ms).

* Unit tests: expiry instant, memory accounting, maxmemory refusals that
  change nothing, the reclaimer's budget and its "due buckets only" rule,
  re-filing of keys whose deadline was extended, bounded bucket bookkeeping
  under heavy overwriting.
* A hypothesis state machine (``KeyspaceMachine``) drives random puts,
  clock advances, small-budget reclaims, DBSIZE/KEYS and several interleaved
  SCAN iterations against a plain-dict model, and checks the structural
  invariants after every step (see ``check_structure``).
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from repram_resp.glob import compile_glob
from repram_resp.keyspace import (BUCKET_MS, BUCKET_SHIFT, ENTRY_OVERHEAD_BYTES, Keyspace, OutOfMemory)

T0 = 1_700_000_000_000
O = ENTRY_OVERHEAD_BYTES


def entry_cost(key: bytes, value: bytes) -> int:
    return len(key) + len(value) + O


def check_structure(ks: Keyspace) -> None:
    """The invariants stated in keyspace.py's header, recomputed from scratch."""
    data = ks.data
    index = list(ks.index)
    assert len(ks.index) == len(data)
    assert index == sorted(data), "index is not the sorted list of data keys"
    assert ks.used_bytes == sum(entry_cost(k, e[0]) for k, e in data.items())
    # Buckets are lists of filings; a filing is live when the entry's e[3]
    # is its bucket's start (keyspace.py header).  Every key has a live
    # filing no later than its deadline's bucket; stale ones stay bounded.
    live: dict[bytes, int] = {}
    for b, keys in ks._buckets.items():
        assert keys, "empty bucket %d left behind" % b
        start = b << BUCKET_SHIFT
        stale = 0
        for k in keys:
            e = data.get(k)
            if e is not None and e[3] == start:
                live[k] = live.get(k, 0) + 1
            else:
                stale += 1
        assert stale <= max(32, len(keys) // 2) + 1, "bucket %d: %d of %d filings stale" % (b, stale, len(keys))
        assert ks._stale.get(b, 0) >= stale, "bucket %d: more stale filings than counted" % b
        # DBSIZE counts a bucket's live keys as len - stale count: exact.
        here = {k for k in keys if (e := data.get(k)) is not None and e[3] == start}
        assert len(keys) - ks._stale.get(b, 0) == len(here), "bucket %d: stale count off" % b
    assert set(live) == set(data), "keys with no live filing: %r" % (set(data) - set(live))
    for k, e in data.items():
        assert e[3] <= e[1], "%r filed after its deadline's bucket" % k
        assert e[3] & (BUCKET_MS - 1) == 0 and e[3] >> BUCKET_SHIFT in ks._buckets
    # A bucket missing from the heap would never be reclaimed.
    assert set(ks._buckets) <= set(ks._bucket_heap)
    # _ext (DBSIZE's count of keys extended past their bucket) is exact.
    ext = {}
    filed = {k: e[3] >> BUCKET_SHIFT for k, e in data.items()}
    for k, b in filed.items():
        if data[k][1] >> BUCKET_SHIFT > b:
            ext.setdefault(b, set()).add(k)
    assert ks._ext == ext


def snapshot(ks: Keyspace):
    return (dict(ks.data), list(ks.index), ks.used_bytes,
            {b: set(s) for b, s in ks._buckets.items()}, ks.expired_keys)


# -- unit tests ----------------------------------------------------------------

def test_key_is_live_through_its_deadline_and_gone_one_ms_later():
    ks = Keyspace()
    ks.put(b"k", b"v", T0 + 100, 1, T0)
    assert ks.get(b"k", T0 + 100) == b"v"
    assert ks.lookup(b"k", T0 + 100) is not None
    assert ks.get(b"k", T0 + 101) is None
    assert ks.lookup(b"k", T0 + 101) is None
    assert ks.keys(b"*", T0 + 101) == []
    assert ks.scan(0, None, 10, T0 + 101) == (0, [])
    assert ks.dbsize(T0 + 101) == 0
    check_structure(ks)


def test_memory_accounting_new_overwrite_expire():
    ks = Keyspace()
    ks.put(b"a", b"12345", T0 + 50, 1, T0)
    assert ks.used_bytes == 1 + 5 + O
    ks.put(b"a", b"1", T0 + 60, 2, T0)
    assert ks.used_bytes == 1 + 1 + O
    ks.put(b"bb", b"", T0 + 60, 3, T0)
    assert ks.used_bytes == (1 + 1 + O) + (2 + O)
    check_structure(ks)
    ks.reclaim(T0 + 10_000, 100)
    assert ks.used_bytes == 0 and not ks.data and not ks._buckets
    assert ks.expired_keys == 2
    check_structure(ks)


def test_maxmemory_refusal_changes_nothing():
    ks = Keyspace(maxmemory_bytes=3 * (1 + 10 + O))
    for k in (b"a", b"b", b"c"):
        ks.put(k, b"x" * 10, T0 + 1000, 1, T0)
    assert ks.used_bytes == ks.maxmemory_bytes
    before = snapshot(ks)
    with pytest.raises(OutOfMemory):
        ks.put(b"d", b"", T0 + 1000, 2, T0)           # a new key
    with pytest.raises(OutOfMemory):
        ks.put(b"a", b"x" * 11, T0 + 5, 2, T0)         # a growing overwrite
    assert snapshot(ks) == before
    # Shrinking and same-size overwrites still fit when full.
    ks.put(b"a", b"y" * 10, T0 + 2000, 3, T0)
    ks.put(b"b", b"y", T0 + 2000, 3, T0)
    assert ks.get(b"a", T0) == b"y" * 10 and ks.get(b"b", T0) == b"y"
    assert ks.used_bytes == ks.maxmemory_bytes - 9
    check_structure(ks)


def test_refused_overwrite_of_expired_key_reports_nothing():
    # The OOM check comes before anything happens, including the "expired"
    # report for an expired-but-unreclaimed key that the write would replace.
    seen = []
    ks = Keyspace(maxmemory_bytes=1 + 1 + O)
    ks.on_expired = seen.append
    ks.put(b"a", b"x", T0 + 10, 1, T0)
    with pytest.raises(OutOfMemory):
        ks.put(b"a", b"xx", T0 + 100, 2, T0 + 50)
    assert seen == [] and ks.expired_keys == 0
    ks.put(b"a", b"y", T0 + 100, 2, T0 + 50)           # fits: reports the old life
    assert seen == [b"a"] and ks.expired_keys == 1
    check_structure(ks)


def test_reclaim_honours_budget_and_touches_only_wholly_past_buckets():
    ks = Keyspace()
    seen = []
    ks.on_expired = seen.append
    base = (T0 >> BUCKET_SHIFT) << BUCKET_SHIFT          # a bucket boundary
    for i in range(20):
        ks.put(b"old%02d" % i, b"v", base + 1 + i % 8, 1, base)   # bucket base>>S
    for i in range(5):
        ks.put(b"cur%d" % i, b"v", base + 16 + i, 1, base)         # next bucket
    for i in range(5):
        ks.put(b"new%d" % i, b"v", base + 1000 + i, 1, base)
    check_structure(ks)
    now = base + 16 + 10         # inside the second bucket: cur0..cur4 are expired by now,
    # but their bucket is not wholly in the past yet, so reclaim leaves them.
    assert ks.reclaim(now, 7) == 7
    assert len(seen) == 7 and all(k.startswith(b"old") for k in seen)
    check_structure(ks)
    assert ks.reclaim(now, 7) == 7
    assert ks.reclaim(now, 7) == 6                      # < budget: nothing more is due
    assert len(seen) == 20 and len(set(seen)) == 20
    assert ks.reclaim(now, 7) == 0
    assert sorted(ks.data) == [b"cur%d" % i for i in range(5)] + [b"new%d" % i for i in range(5)]
    # Reads never show the expired-but-unreclaimed keys.
    assert ks.keys(b"*", now) == [b"new%d" % i for i in range(5)]
    # next_deadline is the instant the earliest bucket becomes wholly due.
    assert ks.next_deadline() == base + 32
    assert ks.reclaim(base + 32, 100) == 5
    assert sorted(ks.data) == [b"new%d" % i for i in range(5)]
    assert ks.expired_keys == 25
    check_structure(ks)


def test_expire_all_due_also_clears_the_current_bucket():
    ks = Keyspace()
    base = (T0 >> BUCKET_SHIFT) << BUCKET_SHIFT
    ks.put(b"a", b"v", base + 2, 1, base)
    ks.put(b"b", b"v", base + 9, 1, base)
    assert ks.dbsize(base + 5) == 1                     # a expired, same bucket as now
    assert len(ks.data) == 2                            # counted, not reclaimed (issue 7)
    ks.expire_all_due(base + 5)
    assert list(ks.data) == [b"b"]
    check_structure(ks)


def test_dbsize_counts_without_reclaiming_extended_and_moved_keys():
    # Issue 7: DBSIZE is a count, not a reclaim pass; keys extended past
    # their bucket by an overwrite are alive when the bucket comes due.
    ks = Keyspace()
    base = (T0 >> BUCKET_SHIFT) << BUCKET_SHIFT
    for i in range(50):
        ks.put(b"k%d" % i, b"v", base + 3, None, base)
    for i in range(10):
        ks.put(b"k%d" % i, b"w", base + 10_000, None, base)     # extended
    for i in range(10, 15):
        ks.put(b"k%d" % i, b"w", base + 1, None, base)          # moved earlier, same bucket
    ks.put(b"k0", b"x", base + 2, None, base)                   # shortened back: no longer extended
    assert ks.dbsize(base + 3) == 44                    # k10-k14 and k0 are due
    assert ks.dbsize(base + 4) == 9
    assert ks.dbsize(base + 100) == 9
    assert len(ks.data) == 50
    assert ks.reclaim(base + 100, 1000) == 50
    assert ks.dbsize(base + 100) == len(ks.data) == 9
    assert not ks._ext
    check_structure(ks)


def test_extended_key_is_refiled_not_deleted():
    ks = Keyspace()
    seen = []
    ks.on_expired = seen.append
    ks.put(b"k", b"v1", T0 + 100, 1, T0)
    ks.put(b"k", b"v2", T0 + 5000, 2, T0 + 50)          # later deadline: stays filed early
    check_structure(ks)
    assert ks.reclaim(T0 + 1000, 100) == 1              # processed (re-filed) ...
    assert ks.get(b"k", T0 + 1000) == b"v2"             # ... not deleted
    assert seen == [] and ks.expired_keys == 0
    assert ks.data[b"k"][3] >> BUCKET_SHIFT == (T0 + 5000) >> BUCKET_SHIFT
    check_structure(ks)
    ks.reclaim(T0 + 5100, 100)
    assert not ks.data and seen == [b"k"]
    check_structure(ks)


def test_shortened_deadline_files_the_key_again_earlier():
    ks = Keyspace()
    ks.put(b"k", b"v", T0 + 5000, 1, T0)
    ks.put(b"k", b"v", T0 + 100, 2, T0)
    check_structure(ks)
    # The live filing is in the earlier bucket; the old bucket held nothing
    # else live, so it is gone at once.
    assert ks.data[b"k"][3] >> BUCKET_SHIFT == (T0 + 100) >> BUCKET_SHIFT
    assert list(ks._buckets) == [(T0 + 100) >> BUCKET_SHIFT]
    ks.put(b"j", b"v", T0 + 5000, 3, T0)
    ks.put(b"j2", b"v", T0 + 5000, 4, T0)
    ks.put(b"j", b"v", T0 + 100, 5, T0)          # a bucket with a live filing left keeps a stale one
    assert len(ks._buckets[(T0 + 5000) >> BUCKET_SHIFT]) == 2
    check_structure(ks)
    ks.reclaim(T0 + 200, 10)
    assert set(ks.data) == {b"j2"}
    check_structure(ks)
    ks.reclaim(T0 + 5100, 10)                    # the stale filing goes when its bucket is due
    assert not ks._buckets and not ks._stale and not ks.data
    check_structure(ks)


def test_stale_filings_are_compacted_when_over_half_a_bucket():
    ks = Keyspace()
    keys = [b"k%d" % i for i in range(200)]
    for k in keys:
        ks.put(k, b"v", T0 + 5000, None, T0)
    far = (T0 + 5000) >> BUCKET_SHIFT
    for i, k in enumerate(keys[:150]):
        ks.put(k, b"v", T0 + 1000, None, T0)     # moves: stale filings in the far bucket
        check_structure(ks) if i % 25 == 0 else None
        assert len(ks._buckets[far]) - (200 - i - 1) <= max(32, len(ks._buckets[far]) // 2) + 1
    check_structure(ks)
    assert len(ks._buckets[far]) < 200
    ks.reclaim(T0 + 6000, 1 << 20)
    assert not ks.data and not ks._buckets and not ks._stale and ks.used_bytes == 0


def test_overwrite_of_expired_unreclaimed_key_reports_one_expiry():
    ks = Keyspace()
    seen = []
    ks.on_expired = seen.append
    ks.put(b"k", b"v", T0 + 10, 1, T0)
    ks.put(b"k", b"w", T0 + 1000, 2, T0 + 20)           # old life expired at T0+11
    assert seen == [b"k"] and ks.expired_keys == 1
    ks.reclaim(T0 + 500, 100)                           # re-files, reports nothing
    assert seen == [b"k"] and ks.get(b"k", T0 + 500) == b"w"
    ks.reclaim(T0 + 2000, 100)
    assert seen == [b"k", b"k"] and ks.expired_keys == 2
    check_structure(ks)


@pytest.mark.parametrize("mode", ["later", "alternating"])
def test_bucket_bookkeeping_stays_bounded_under_overwrites(mode):
    """100k overwrites of 100 keys, with the reclaimer running as the server
    would: the buckets and the heap stay proportional to the live keys."""
    ks = Keyspace()
    now = T0
    max_buckets = max_heap = 0
    for i in range(100_000):
        if i % 100 == 0:
            now += 3
            ks.reclaim(now, 2000)
            max_buckets = max(max_buckets, len(ks._buckets))
            max_heap = max(max_heap, len(ks._bucket_heap))
        ttl = 1000 + (i % 7) * 40
        if mode == "alternating" and i % 2:
            ttl = 50 + (i % 13) * 16                     # earlier deadline: the key moves
        ks.put(b"k%d" % (i % 100), b"v%d" % i, now + ttl, i, now)
    check_structure(ks)
    assert len(ks.data) == 100
    filings = sum(len(s) for s in ks._buckets.values())
    assert 100 <= filings <= 2 * 100 + 33 * len(ks._buckets), filings   # stale ones bounded
    assert max_buckets <= 100
    assert max_heap <= 4 * 100 + 4096 + 1, max_heap
    ks.reclaim(now + 10_000, 1 << 30)
    assert not ks.data and not ks._buckets and ks.used_bytes == 0
    assert ks.next_deadline() is None and not ks._bucket_heap


def test_scan_prefix_seek_and_cursor_bounds():
    ks = Keyspace()
    for i in range(30):
        ks.put(b"a:%02d" % i, b"v", T0 + 1000, 1, T0)
        ks.put(b"b:%02d" % i, b"v", T0 + 1000, 1, T0)
    got, cursor, calls = [], 0, 0
    while True:
        cursor, keys = ks.scan(cursor, b"b:*", 7, T0)
        calls += 1
        got += keys
        assert 0 <= cursor < 1 << 53
        if cursor == 0:
            break
    assert got == [b"b:%02d" % i for i in range(30)]
    assert calls == 5                                   # 30 matches / 7 per call, no a:* visited


def test_same_cursor_can_be_replayed():
    # A client that retries a SCAN call (e.g. after a timeout) gets the same page.
    ks = Keyspace()
    for i in range(30):
        ks.put(b"k%02d" % i, b"v", T0 + 1000, 1, T0)
    c1, first = ks.scan(0, None, 10, T0)
    c2, page = ks.scan(c1, None, 10, T0)
    c3, again = ks.scan(c1, None, 10, T0)
    assert page == again == [b"k%02d" % i for i in range(10, 20)]


# -- the state machine -----------------------------------------------------------

KEY = st.builds(lambda p, i: p + b"%d" % i,
                st.sampled_from([b"", b"a:", b"ab:", b"b:", b"hb:", b"\xff"]),
                st.integers(0, 9))
PATTERNS = [None, b"*", b"a:*", b"hb:*", b"a*", b"*1", b"?b:*", b"hb:[0-4]*", b"\xff*", b"b:3"]


def pattern_matcher(pattern):
    if pattern is None or pattern == b"*":
        return lambda k: True
    return compile_glob(pattern)


class KeyspaceMachine(RuleBasedStateMachine):
    """Model: ``self.model[key] = [value, deadline, life, reported]``; a life
    starts when a key is written while absent or expired.  Iterations record
    the keys live and matching when they started and drop a key the moment
    it expires; when an iteration finishes every remaining one must have
    been returned."""

    @initialize(maxmem=st.sampled_from([0, 0, 0, 6 * (4 + O), 12 * (4 + O)]))
    def init(self, maxmem):
        self.ks = Keyspace(maxmemory_bytes=maxmem)
        self.ks.on_expired = self._on_expired
        self.now = T0
        self.model: dict[bytes, list] = {}
        self.lives = 0
        self.reported = 0
        self.iterations: list[dict] = []
        self.completed = 0
        self.in_put = None

    def _live(self, key) -> bool:
        m = self.model.get(key)
        return m is not None and self.now <= m[1]

    def _on_expired(self, key):
        m = self.model.get(key)
        assert m is not None, "expiry reported for a key never written: %r" % key
        assert self.now > m[1], "expiry of %r reported before its deadline" % key
        assert not m[3], "expiry of %r (life %d) reported twice" % (key, m[2])
        m[3] = True
        self.reported += 1

    # -- rules -------------------------------------------------------------

    @rule(key=KEY, value=st.binary(max_size=12), ttl=st.one_of(st.integers(0, 40), st.integers(0, 300)))
    def put(self, key, value, ttl):
        ks = self.ks
        deadline = self.now + ttl
        old = ks.data.get(key)
        delta = entry_cost(key, value) if old is None else len(value) - len(old[0])
        used = sum(entry_cost(k, e[0]) for k, e in ks.data.items())
        refuse = bool(ks.maxmemory_bytes) and delta > 0 and used + delta > ks.maxmemory_bytes
        before = snapshot(ks) if refuse else None
        try:
            ks.put(key, value, deadline, self.lives, self.now)
        except OutOfMemory:
            assert refuse, "refused a write that fits"
            assert snapshot(ks) == before, "a refused write changed the keyspace"
            return
        assert not refuse, "accepted a write beyond maxmemory"
        m = self.model.get(key)
        if m is not None and self.now > m[1]:
            assert m[3], "overwriting expired %r did not report its expiry" % key
        if m is None or self.now > m[1]:
            self.lives += 1
            self.model[key] = [value, deadline, self.lives, False]
        else:
            m[0], m[1] = value, deadline
        assert ks.get(key, self.now) == value

    @rule(ms=st.one_of(st.just(1), st.integers(0, 40), st.integers(0, 400)))
    def advance(self, ms):
        self.now += ms
        for it in self.iterations:
            it["must"] = {k for k in it["must"] if self._live(k)}

    @rule(budget=st.integers(1, 5))
    def reclaim(self, budget):
        ks = self.ks
        limit = self.now >> BUCKET_SHIFT
        before = {k: e for k, e in ks.data.items()}
        n = ks.reclaim(self.now, budget)
        assert 0 <= n <= budget
        gone = set(before) - set(ks.data)
        assert len(gone) <= n
        for k in gone:
            assert self.now > before[k][1], "reclaimed live key %r" % k
            assert before[k][3] >> BUCKET_SHIFT < limit, "reclaimed %r from a bucket not yet due" % k
        for k, e in before.items():
            if e[3] >> BUCKET_SHIFT >= limit:
                assert ks.data.get(k) == e, "touched %r, filed in a bucket not yet due" % k
        if n < budget:
            assert all(b >= limit for b in ks._buckets), "reclaim stopped with due buckets left"

    @rule()
    def dbsize(self):
        live = sum(1 for k in self.model if self._live(k))
        before = len(self.ks.data)
        assert self.ks.dbsize(self.now) == live
        assert len(self.ks.data) == before      # a count, never a reclaim pass (issue 7)

    @rule(pattern=st.sampled_from([p for p in PATTERNS if p is not None]))
    def keys(self, pattern):
        match = pattern_matcher(pattern)
        want = sorted(k for k in self.model if self._live(k) and match(k))
        assert sorted(self.ks.keys(pattern, self.now)) == want

    def _scan_call(self, it, count):
        cursor, keys = self.ks.scan(it["cursor"], it["pattern"], count, self.now)
        assert isinstance(cursor, int) and 0 <= cursor < 1 << 53
        match = pattern_matcher(it["pattern"])
        for k in keys:
            assert self._live(k), "SCAN returned %r, expired at the time of the call" % k
            assert match(k), "SCAN MATCH %r returned %r" % (it["pattern"], k)
        it["returned"].update(keys)
        it["calls"] += 1
        if cursor == 0:
            missing = it["must"] - it["returned"]
            assert not missing, "iteration (MATCH %r) missed keys live throughout: %r" % (
                it["pattern"], sorted(missing))
            self.iterations.remove(it)
            self.completed += 1
        else:
            it["cursor"] = cursor

    @rule(pattern=st.sampled_from(PATTERNS), count=st.integers(1, 20), which=st.integers(0, 3))
    def start_scan(self, pattern, count, which):
        if len(self.iterations) >= 4:       # enough open iterations: advance one instead
            self._scan_call(self.iterations[which % 4], count)
            return
        match = pattern_matcher(pattern)
        it = {"cursor": 0, "pattern": pattern, "returned": set(), "calls": 0,
              "must": {k for k in self.model if self._live(k) and match(k)}}
        self.iterations.append(it)
        self._scan_call(it, count)

    @rule(which=st.integers(0, 3), count=st.integers(1, 20))
    def scan_step(self, which, count):
        if self.iterations:
            self._scan_call(self.iterations[which % len(self.iterations)], count)

    # -- invariants ----------------------------------------------------------

    @invariant()
    def structure(self):
        check_structure(self.ks)

    @invariant()
    def agrees_with_model(self):
        ks = self.ks
        for k, e in ks.data.items():
            m = self.model.get(k)
            assert m is not None and (e[0], e[1]) == (m[0], m[1])
        for k, m in self.model.items():
            if self._live(k):
                assert ks.lookup(k, self.now) is not None, "live key %r lost" % k
            elif k not in ks.data:
                assert m[3], "%r was reclaimed without its expiry being reported" % k
        assert ks.expired_keys == self.reported

    def teardown(self):
        # Finish every open iteration so its guarantee is checked too.
        for it in list(getattr(self, "iterations", [])):
            for _ in range(10_000):
                if it not in self.iterations:
                    break
                self._scan_call(it, 5)
            assert it not in self.iterations, "SCAN iteration did not terminate"


KeyspaceMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=80, deadline=None,
    suppress_health_check=[HealthCheck.too_slow])
test_keyspace_state_machine = KeyspaceMachine.TestCase
