"""Version floors in the keyspace and the anti-entropy range digests, as
units (no I/O): what is recorded when, what is refused, retirement, the
memory bound, and that digests agree exactly when summaries agree."""

from __future__ import annotations

from repram_resp.cluster import antientropy as ae
from repram_resp.cluster import messages as m
from repram_resp.keyspace import FLOOR_OVERHEAD_BYTES, Keyspace

NOW = 1_700_000_000_000
V = NOW << 16


def ks_with_floors(retention_ms=10_000, max_bytes=0) -> Keyspace:
    ks = Keyspace()
    ks.floor_retention_ms = retention_ms
    ks.floor_max_bytes = max_bytes
    return ks


def test_expiry_records_a_floor_and_an_overwrite_does_not():
    ks = ks_with_floors()
    ks.put(b"a", b"1", NOW + 100, V, NOW)
    ks.put(b"a", b"2", NOW + 100, V + 1, NOW)        # overwrite: nothing recorded
    assert not ks.floors and ks.floors_recorded == 0
    ks.reclaim(NOW + 200, 100)
    assert ks.floors == {b"a": V + 1} and list(ks.floor_index) == [b"a"]
    assert ks.floor_bytes == 1 + FLOOR_OVERHEAD_BYTES
    assert ks.used_bytes == ks.floor_bytes           # floors count in used_memory


def test_a_single_node_records_no_floors():
    ks = Keyspace()                                  # floor_retention_ms 0
    ks.put(b"a", b"1", NOW + 100, V, NOW)
    ks.reclaim(NOW + 200, 100)
    assert not ks.floors and ks.used_bytes == 0


def test_apply_remote_refuses_at_or_below_the_floor_and_an_expired_entry():
    ks = ks_with_floors()
    ks.put(b"a", b"new", NOW + 100, V + 10, NOW)
    t = NOW + 150                                    # expired, not reclaimed yet
    assert not ks.apply_remote(b"a", b"old", t + 5000, V + 5, t)
    ks.reclaim(t + 100, 100)
    t += 100
    assert not ks.apply_remote(b"a", b"old", t + 5000, V + 5, t)
    assert not ks.apply_remote(b"a", b"same", t + 5000, V + 10, t)
    assert ks.lookup(b"a", t) is None
    assert ks.apply_remote(b"a", b"newer", t + 5000, V + 11, t)
    assert ks.get(b"a", t) == b"newer"


def test_a_floor_from_a_peer_drops_an_older_value_as_an_expiry():
    ks = ks_with_floors()
    expired = []
    ks.on_expired = expired.append
    ks.put(b"a", b"old", NOW + 60_000, V, NOW)
    assert not ks.apply_floor(b"a", V - 1, NOW)      # older floor: no effect
    assert ks.get(b"a", NOW) == b"old"
    assert ks.apply_floor(b"a", V + 1, NOW)
    assert ks.get(b"a", NOW) is None and expired == [b"a"]
    assert ks.floors[b"a"] == V + 1
    assert ks.next_deadline() is None                # unfiled from its bucket
    assert ks.used_bytes == 1 + FLOOR_OVERHEAD_BYTES


def test_floors_retire_at_version_time_plus_retention_and_old_ones_are_not_taken():
    ks = ks_with_floors(retention_ms=1000)
    ks.apply_floor(b"a", V, NOW)
    assert ks.floor_of(b"a", NOW + 999) == V
    assert ks.floor_of(b"a", NOW + 1000) == 0
    ks.reclaim(NOW + 1000, 100)
    assert not ks.floors and not ks.floor_index and ks.floor_bytes == 0 and ks.used_bytes == 0
    ks.apply_floor(b"b", V, NOW + 1000)              # already past its retire time
    assert not ks.floors


def test_the_memory_bound_retires_the_earliest_floors_early_and_keeps_them_out():
    per = 2 + FLOOR_OVERHEAD_BYTES
    ks = ks_with_floors(retention_ms=10_000, max_bytes=3 * per)
    for i in range(5):
        ks.apply_floor(b"k%d" % i, V + (i << 16), NOW)   # later versions retire later
    assert sorted(ks.floors) == [b"k2", b"k3", b"k4"]
    assert ks.floors_retired_early == 2 and ks.floor_bytes == 3 * per
    assert ks.floor_horizon_ms == NOW + 1 + 10_000
    ks.apply_floor(b"k1", V + (1 << 16), NOW)        # bounced back by a peer: refused
    assert b"k1" not in ks.floors


def test_floors_frame_round_trip():
    data = m.encode_floors([(b"a", 1), (b"\x00b", 2 ** 80)])
    [f] = m.FrameReader(1 << 20).feed(data)
    assert f[0] == m.FLOORS and m.decode_floors(f) == [(b"a", 1), (b"\x00b", 2 ** 80)]
    data = m.encode_ae(7, True, 5 << 16, [(b"", b"m", b"d" * 16), (b"m", None, b"e" * 16)])
    [f] = m.FrameReader(1 << 20).feed(data)
    assert m.decode_ae(f) == (7, True, 5 << 16, [(b"", b"m", b"d" * 16), (b"m", None, b"e" * 16)])


def _fill(ks, n, skip=(), bump=()):
    for i in range(n):
        k = b"key:%05d" % i
        if i in skip:
            continue
        ks.put(k, b"v", NOW + 60_000, V + i + (1000 if i in bump else 0), NOW)


SETTLED = NOW + 1000     # digests leave out versions younger than 500 ms


def _walk(ks, now=SETTLED):
    out, start, first = [], b"", True
    while True:
        ranges, start = ae.build_ranges(ks, start, first, now, 300)
        first = False
        out += ranges
        if start is None:
            return out


def _digest(ks, lo, hi, now=SETTLED):
    keys, _ = ae._chunk(ks, lo, True, hi, 10 ** 9)
    return ae.digest_keys(ks, keys, now)


def test_ranges_cover_every_key_and_match_exactly_when_summaries_match():
    a, b = ks_with_floors(), ks_with_floors()
    _fill(a, 1000)
    _fill(b, 1000)
    ranges = _walk(a)
    assert ranges[0][0] == b"" and ranges[-1][1] is None
    assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert len(ranges) == 8                          # 1000 keys / 128
    assert all(_digest(b, lo, hi) == d for lo, hi, d in ranges)
    c = ks_with_floors()
    _fill(c, 1000, skip={500}, bump={900})
    diff = [i for i, (lo, hi, d) in enumerate(ranges) if _digest(c, lo, hi) != d]
    assert diff == [500 // 128, 900 // 128]


def test_expiry_does_not_change_a_digest_but_retirement_does():
    a, b = ks_with_floors(retention_ms=100_000), ks_with_floors(retention_ms=100_000)
    for ks in (a, b):
        ks.put(b"x", b"v", NOW + 10, V, NOW)
        ks.put(b"y", b"v", NOW + 60_000, V, NOW)
    b.reclaim(NOW + 50, 100)                         # x is a floor on b, an entry on a
    assert b"x" in b.floors and b"x" in a.data
    [(lo, hi, d)] = _walk(a)
    assert _digest(b, lo, hi) == d
    far = NOW + 200_000                              # x's floor retired on b
    assert _digest(b, b"", None, far) != _digest(a, b"", None)


def test_versions_still_in_flight_are_left_out_of_digests():
    a, b = ks_with_floors(), ks_with_floors()
    _fill(a, 200)
    _fill(b, 200)
    a.put(b"new", b"v", NOW + 60_000, (NOW + 900) << 16, NOW + 900)   # 100 ms old at SETTLED
    assert _digest(a, b"", None) == _digest(b, b"", None)
    assert _digest(a, b"", None, NOW + 1400) != _digest(b, b"", None, NOW + 1400)


def test_a_round_cutoff_makes_nodes_agree_whatever_their_walk_times():
    # The initiator walks at one time, the peer digests later: with each side
    # cutting at its own clock, a write between the two cut points made the
    # range differ; with the round's cutoff both leave it out.
    a, b = ks_with_floors(), ks_with_floors()
    _fill(a, 200)
    _fill(b, 200)
    for ks in (a, b):
        ks.put(b"mid", b"v", NOW + 60_000, (NOW + 700) << 16, NOW + 700)
    cutoff = ae.default_cutoff(NOW + 1000)           # 500 ms before the initiator's walk
    ranges, _ = ae.build_ranges(a, b"", True, NOW + 1000, 300, cutoff)
    lo, hi, d = next(r for r in ranges if r[0] <= b"mid" and (r[1] is None or b"mid" < r[1]))
    keys, _ = ae._chunk(b, lo, True, hi, 10 ** 9)
    assert ae.digest_keys(b, keys, NOW + 1400, cutoff) == d          # peer 400 ms later
    assert ae.digest_keys(b, keys, NOW + 1400) != d                  # its own cut point
    # A version newer than the cutoff is left out wherever it has arrived.
    b.put(b"key:00007", b"w", NOW + 60_000, (NOW + 900) << 16, NOW + 900)
    assert ae.top_versions(b, [b"key:00006", b"key:00007"], NOW + 1400, cutoff)[0] == [b"key:00006"]


def test_merged_chunks_of_entries_and_floors_are_sorted_and_complete():
    ks = ks_with_floors()
    ks.apply_floor(b"k000", V - 5, NOW)              # then a newer entry: a key in both
    for i in range(0, 50, 2):
        ks.put(b"k%03d" % i, b"v", NOW + 60_000, V, NOW)
    for i in range(1, 50, 2):
        ks.apply_floor(b"k%03d" % i, V, NOW)
    assert b"k000" in ks.floors and b"k000" in ks.data
    got, cur, inc = [], b"", True
    while True:
        keys, complete = ae._chunk(ks, cur, inc, None, 7)
        got += keys
        if complete or not keys:
            break
        cur, inc = keys[-1], False
    assert got == [b"k%03d" % i for i in range(50)]
