"""Listing: SCAN / KEYS / DBSIZE (SPEC §2-§3, reference §4.3).

* Wire format and errors checked byte for byte over a raw socket: the cursor
  is a bulk string of decimal digits below 2^53, COUNT defaults to 10,
  ``COUNT 0`` is a syntax error, a non-numeric cursor is ``ERR invalid cursor``.
* Guarantees over the network with a fake clock: a key present for the whole
  iteration is returned although others expire, are added or overwritten
  mid-iteration; an expired key is never returned (SCAN, KEYS, DBSIZE).
* Cost of a literal prefix: the number of SCAN calls (a behaviour, not a
  timing) is bounded by the matches, not by the keyspace.
* Real clients on a million keys: redis-py ``scan_iter`` (RESP2 and RESP3)
  and ``redis-cli --scan --pattern``.
"""

from __future__ import annotations

import subprocess

import pytest

from conftest import ThreadedServer
from rawresp import Raw
from repram_resp.keyspace import Keyspace

HOUR_MS = 3_600_000




def scan_all(r, match=None, count=None, type_=None, max_calls=10_000_000):
    """Run one full SCAN iteration; returns (keys in order, number of calls)."""
    cursor, keys, calls = 0, [], 0
    while True:
        kw = {}
        if match is not None:
            kw["match"] = match
        if count is not None:
            kw["count"] = count
        if type_ is not None:
            kw["_type"] = type_
        cursor, page = r.scan(cursor, **kw)
        calls += 1
        keys += page
        assert 0 <= cursor < 1 << 53
        if cursor == 0 or calls >= max_calls:
            return keys, calls


# -- wire format and errors ----------------------------------------------------------

@pytest.mark.parametrize("resp", [2, 3])
def test_scan_reply_is_cursor_bulk_string_then_keys(server, resp):
    r = server.client()
    for i in range(25):
        r.set("k%02d" % i, "v", ex=100)
    c = Raw(server.port)
    if resp == 3:
        assert c.call("HELLO", "3").startswith(b"%")
    reply = c.call("SCAN", "0")
    assert reply.startswith(b"*2\r\n$")
    head, rest = reply[4:].split(b"\r\n", 1)
    digits, rest = rest.split(b"\r\n", 1)
    assert int(head[1:]) == len(digits) and digits.isdigit()
    cursor = int(digits)
    assert 0 < cursor < 1 << 53
    # COUNT defaults to 10.
    assert rest == b"*10\r\n" + b"".join(b"$3\r\nk%02d\r\n" % i for i in range(10))
    # Continue with the cursor as given: next 10, then the last 5 and cursor "0".
    reply = c.call("SCAN", digits)
    cursor2 = int(reply.split(b"\r\n")[2])
    assert reply.endswith(b"*10\r\n" + b"".join(b"$3\r\nk%02d\r\n" % i for i in range(10, 20)))
    assert c.call("SCAN", str(cursor2)) == (b"*2\r\n$1\r\n0\r\n*5\r\n"
                                            + b"".join(b"$3\r\nk%02d\r\n" % i for i in range(20, 25)))
    c.close()


def test_scan_errors_are_redis_exact_and_connection_survives(server):
    r = server.client()
    r.set("a", "1", ex=100)
    c = Raw(server.port)
    assert c.call("SCAN", "abc") == b"-ERR invalid cursor\r\n"
    assert c.call("SCAN", "1x") == b"-ERR invalid cursor\r\n"
    assert c.call("SCAN", "0", "COUNT", "0") == b"-ERR syntax error\r\n"
    assert c.call("SCAN", "0", "COUNT", "-5") == b"-ERR syntax error\r\n"
    assert c.call("SCAN", "0", "COUNT", "ten") == b"-ERR value is not an integer or out of range\r\n"
    assert c.call("SCAN", "0", "MATCH") == b"-ERR syntax error\r\n"
    assert c.call("SCAN", "0", "BOGUS", "1") == b"-ERR syntax error\r\n"
    assert c.call("SCAN") == b"-ERR wrong number of arguments for 'scan' command\r\n"
    # A numeric cursor this server never issued: an error (or any reply), never a crash.
    assert c.call("SCAN", "123456789").startswith((b"-", b"*2\r\n"))
    assert c.call("SCAN", "18446744073709551616").startswith((b"-", b"*2\r\n"))
    assert c.call("SCAN", "0", "match", "a", "count", "5") == b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\na\r\n"
    assert c.call("PING") == b"+PONG\r\n"
    c.close()


def test_scan_empty_keyspace(server):
    c = Raw(server.port)
    assert c.call("SCAN", "0") == b"*2\r\n$1\r\n0\r\n*0\r\n"
    assert c.call("KEYS", "*") == b"*0\r\n"
    assert c.call("DBSIZE") == b":0\r\n"
    c.close()


def test_scan_type_filter(server):
    r = server.client()
    for i in range(30):
        r.set("t%02d" % i, "v", ex=100)
    keys, _ = scan_all(r, type_="string", count=7)
    assert sorted(keys) == [b"t%02d" % i for i in range(30)]
    keys, calls = scan_all(r, type_="hash", count=7)
    assert keys == [] and calls >= 1
    assert sorted(scan_all(r, type_="STRING", count=100)[0]) == [b"t%02d" % i for i in range(30)]


def test_keys_uses_redis_glob(server):
    r = server.client()
    names = [b"hello", b"hallo", b"hbllo", b"a*b", b"axb", b"h!llo", b"y"]
    for k in names:
        r.set(k, "v", ex=100)
    cases = {
        b"h[^e]llo": {b"h!llo", b"hallo", b"hbllo"},
        b"h[!e]llo": {b"h!llo", b"hello"},
        b"a\\*b": {b"a*b"},
        b"[z-x]": {b"y"},
        b"a*b": {b"a*b", b"axb"},
        b"h?llo": {b"hello", b"hallo", b"hbllo", b"h!llo"},
        b"*": set(names),
    }
    for pattern, want in cases.items():
        assert set(r.keys(pattern)) == want, pattern
        assert set(scan_all(r, match=pattern, count=3)[0]) == want, pattern


def test_scan_prefix_with_escaped_wildcard(server):
    r = server.client()
    for k in (b"a*1", b"a*2", b"ab", b"a?c", b"a[x"):
        r.set(k, "v", ex=100)
    assert sorted(scan_all(r, match=b"a\\**", count=2)[0]) == [b"a*1", b"a*2"]
    assert sorted(scan_all(r, match=b"a\\?*", count=2)[0]) == [b"a?c"]
    assert sorted(scan_all(r, match=b"a\\[*", count=2)[0]) == [b"a[x"]
    assert sorted(r.keys(b"a\\**")) == [b"a*1", b"a*2"]


# -- expiry and concurrent change (fake clock) ----------------------------------------

def test_expired_keys_never_listed_and_dbsize_counts_live(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    for i in range(20):
        r.set("short:%02d" % i, "v", px=1500)
        r.set("long:%02d" % i, "v", ex=100)
    assert r.dbsize() == 40
    fake_clock.advance(1500)                        # deadline reached: still live
    assert r.dbsize() == 40
    assert len(r.keys("short:*")) == 20
    fake_clock.advance(1)                           # one ms past: gone everywhere
    assert r.keys("short:*") == []
    assert sorted(r.keys("*")) == [b"long:%02d" % i for i in range(20)]
    for count in (1, 3, 10, 1000):
        assert sorted(scan_all(r, count=count)[0]) == [b"long:%02d" % i for i in range(20)]
        assert scan_all(r, match="short:*", count=count)[0] == []
    assert r.dbsize() == 20
    info = r.info("keyspace")
    assert info["db0"]["keys"] == 20


def test_iteration_survives_expiry_insertion_and_overwrite_midway(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    stable = [b"k:%03d" % i for i in range(100)]
    doomed = [b"x:%03d" % i for i in range(30)]      # sort after k:*, expire midway
    for k in stable:
        r.set(k, "v", ex=100)
    for k in doomed:
        r.set(k, "v", px=2000)
    cursor, page = r.scan(0, count=7)
    got = list(page)
    assert all(k.startswith(b"k:") for k in got)
    fake_clock.advance(2001)                         # every x:* has now expired
    for i in range(0, 100, 3):
        r.set(b"a:%03d" % i, "new", ex=100)          # inserted before the cursor
        r.set(b"m:%03d" % i, "new", ex=100)          # inserted after it
        r.set(stable[i], "overwritten", ex=50)        # overwrite keeps the key present
    calls = 1
    while cursor != 0:
        cursor, page = r.scan(cursor, count=7)
        got += page
        calls += 1
        assert calls < 1000
    assert set(stable) <= set(got)
    assert not set(doomed) & set(got)
    assert set(got) <= set(stable) | {b"a:%03d" % i for i in range(0, 100, 3)} | \
        {b"m:%03d" % i for i in range(0, 100, 3)}


def test_match_iteration_midway_changes(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    for i in range(60):
        r.set(b"hb:%03d" % i, "v", ex=100 if i % 2 == 0 else 5)
        r.set(b"other:%03d" % i, "v", ex=100)
    present = {b"hb:%03d" % i for i in range(0, 60, 2)}
    cursor, got = r.scan(0, match="hb:*", count=4)
    got = list(got)
    first = len(got)
    fake_clock.advance(5001)                          # odd hb:* keys expire
    while cursor:
        cursor, page = r.scan(cursor, match="hb:*", count=4)
        got += page
    assert present <= set(got)
    assert all(k.startswith(b"hb:") for k in got)
    late = [k for k in got[first:] if int(k[3:]) % 2]
    assert late == [], "expired keys returned after their deadline: %r" % late


def test_cursors_stay_below_2_53_across_wraparound(server):
    r = server.client()
    for i in range(50):
        r.set("w%02d" % i, "v", ex=100)
    ks = server.server.keyspace
    server.call(setattr, ks, "_next_cursor", (1 << 53) - 3)
    cursor, got, seen = 0, [], []
    while True:
        cursor, page = r.scan(cursor, count=5)
        got += page
        seen.append(cursor)
        if cursor == 0:
            break
    assert all(0 <= c < 1 << 53 for c in seen)
    assert (1 << 53) - 1 in seen and 1 in seen
    assert sorted(got) == [b"w%02d" % i for i in range(50)]


def test_replayed_cursor_returns_the_same_page(server):
    # A retried call (after a timeout, say) or another connection continuing
    # the iteration gets the same page: cursors are not tied to a connection.
    r = server.client()
    other = server.client(protocol=3)
    for i in range(30):
        r.set("r%02d" % i, "v", ex=100)
    c1, _ = r.scan(0, count=10)
    a = r.scan(c1, count=10)[1]
    b = r.scan(c1, count=10)[1]
    c = other.scan(c1, count=10)[1]
    assert a == b == c == [b"r%02d" % i for i in range(10, 20)]


# -- prefix cost -------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_keyspace():
    """200k keys, of which 50 start with ``rare:`` (sorting in the middle)."""
    ks = Keyspace()
    now = 1_700_000_000_000
    for i in range(100_000):
        ks.put(b"a:%06d" % i, b"v", now + HOUR_MS, 1, now)
    for i in range(50):
        ks.put(b"rare:%02d" % i, b"v", now + HOUR_MS, 1, now)
    for i in range(99_950):
        ks.put(b"z:%06d" % i, b"v", now + HOUR_MS, 1, now)
    return ks, now


def _iterate(ks, now, pattern, count):
    cursor, got, calls = 0, [], 0
    while True:
        cursor, keys = ks.scan(cursor, pattern, count, now)
        got += keys
        calls += 1
        if cursor == 0:
            return got, calls


def test_literal_prefix_scan_costs_matches_not_keyspace(big_keyspace):
    ks, now = big_keyspace
    assert len(ks.data) == 200_000
    got, calls = _iterate(ks, now, b"rare:*", 100)
    assert sorted(got) == [b"rare:%02d" % i for i in range(50)]
    assert calls <= 3
    got, calls = _iterate(ks, now, b"rare:[0-1]*", 5)      # prefix + a matcher
    assert sorted(got) == [b"rare:%02d" % i for i in range(20)]
    assert calls <= 50 // 5 + 2
    assert sorted(ks.keys(b"rare:*", now)) == [b"rare:%02d" % i for i in range(50)]


def test_infix_pattern_scan_walks_the_whole_keyspace(big_keyspace):
    ks, now = big_keyspace
    got, calls = _iterate(ks, now, b"*rare*", 100)
    assert sorted(got) == [b"rare:%02d" % i for i in range(50)]
    assert 1900 <= calls <= 2100


# -- a million keys, real clients ---------------------------------------------------

N_O, N_P, N_Q = 450_000, 100_000, 450_000


@pytest.fixture(scope="module")
def million():
    s = ThreadedServer()
    try:
        ks = s.server.keyspace

        def load(fmt, lo, hi):
            now = s.server.clock()
            put = ks.put
            for i in range(lo, hi):
                put(fmt % i, b"v", now + HOUR_MS, 1, now)

        for fmt, n in ((b"o:%06d", N_O), (b"p:%06d", N_P), (b"q:%06d", N_Q)):
            for lo in range(0, n, 100_000):
                s.call(load, fmt, lo, min(n, lo + 100_000))
        assert s.call(lambda: len(ks.data)) == 1_000_000
        yield s
    finally:
        s.stop()


P_KEYS = {b"p:%06d" % i for i in range(N_P)}


@pytest.mark.parametrize("protocol", [2, 3])
def test_scan_iter_prefix_on_a_million_keys(million, protocol):
    r = million.client(protocol=protocol)
    got = list(r.scan_iter(match="p*", count=1000))
    assert len(got) == N_P and set(got) == P_KEYS
    assert r.dbsize() == 1_000_000


def test_scan_iter_everything_on_a_million_keys(million):
    r = million.client(protocol=3)
    n = 0
    seen_p = set()
    for k in r.scan_iter(count=20_000):
        n += 1
        if k[:1] == b"p":
            seen_p.add(k)
    assert n == 1_000_000 and seen_p == P_KEYS


def test_prefix_scan_single_call_on_a_million_keys(million):
    r = million.client()
    for i in range(3):
        r.set("rare:%d" % i, "v", ex=100)
    cursor, keys = r.scan(0, match="rare:*", count=100)
    assert cursor == 0 and sorted(keys) == [b"rare:0", b"rare:1", b"rare:2"]
    assert sorted(r.keys("rare:*")) == [b"rare:0", b"rare:1", b"rare:2"]


def test_redis_cli_scan_pattern_on_a_million_keys(million):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(million.port), "--scan",
                          "--pattern", "p*"], capture_output=True, timeout=120, check=True)
    lines = out.stdout.split(b"\n")
    assert lines[-1] == b""
    lines = lines[:-1]
    assert len(lines) == N_P and set(lines) == P_KEYS
