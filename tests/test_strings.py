"""The SET family, the GET family and key inspection, through real clients.

* REPRAM rules (SPEC §2): every key expires (default-ttl, or "TTL required"),
  TTLs outside min-ttl..max-ttl are refused naming the bound (never clamped),
  an overwrite resets the TTL, expired data is invisible from the millisecond
  after its deadline, deletion / TTL change / value interpretation commands
  are disabled with ``ERR <NAME> is disabled:`` and the connection survives.
* Everything else is Redis 7: where REPRAM does not deliberately differ, the
  exact reply bytes are compared with a throwaway real ``redis-server``
  (differential tests; skipped only when redis-server is not installed).
* Time-sensitive tests use the fake clock: no sleeping, exact milliseconds.
"""

from __future__ import annotations

import time

import pytest
import redis

from rawresp import Raw

START_MS = 1_700_000_000_000     # FakeClock's default "now"


def err(reply: bytes) -> str:
    assert reply.startswith(b"-"), reply
    return reply[1:-2].decode()


# --- differential: Redis's own error texts ------------------------------------

SET_ERRORS = [
    # invalid expire time: non-positive or overflowing
    ("SET", "k", "v", "EX", "0"),
    ("SET", "k", "v", "EX", "-1"),
    ("SET", "k", "v", "PX", "0"),
    ("SET", "k", "v", "PX", "-100"),
    ("SET", "k", "v", "EX", "9999999999999999"),
    ("SET", "k", "v", "PX", "9223372036854775807"),
    ("SET", "k", "v", "EX", "9223372036854775"),
    ("SET", "k", "v", "EXAT", "9223372036854775807"),
    ("SET", "k", "v", "EXAT", "0"),
    ("SET", "k", "v", "PXAT", "0"),
    ("SET", "k", "v", "PXAT", "-1"),
    # not an integer
    ("SET", "k", "v", "EX", "abc"),
    ("SET", "k", "v", "EX", "1.5"),
    ("SET", "k", "v", "PX", "10.0"),
    ("SET", "k", "v", "EX", ""),
    ("SET", "k", "v", "EX", " 10"),
    ("SET", "k", "v", "EX", "+10"),
    ("SET", "k", "v", "EX", "99999999999999999999"),
    # syntax: conflicts, unknown tokens, missing values
    ("SET", "k", "v", "NX", "XX", "EX", "10"),
    ("SET", "k", "v", "XX", "EX", "10", "NX"),
    ("SET", "k", "v", "EX", "10", "PX", "100"),
    ("SET", "k", "v", "PX", "100", "EX", "10"),
    ("SET", "k", "v", "EXAT", "1", "PXAT", "1"),
    ("SET", "k", "v", "KEEPTTL", "EX", "10"),
    ("SET", "k", "v", "EX", "10", "KEEPTTL"),
    ("SET", "k", "v", "PXAT", "1", "KEEPTTL"),
    ("SET", "k", "v", "EX"),
    ("SET", "k", "v", "px"),
    ("SET", "k", "v", "EXAT"),
    ("SET", "k", "v", "NX", "PXAT"),
    ("SET", "k", "v", "FOO"),
    ("SET", "k", "v", "EX", "10", "FOO"),
    ("SET", "k", "v", "EX", "10", "10"),
    ("SET", "k", "v", "EX", "abc", "XX", "NX"),   # syntax is checked before the value
    # the other expiring writers, with their own names in the text
    ("SETEX", "k", "0", "v"),
    ("SETEX", "k", "-1", "v"),
    ("SETEX", "k", "abc", "v"),
    ("SETEX", "k", "9999999999999999", "v"),
    ("PSETEX", "k", "0", "v"),
    ("PSETEX", "k", "9223372036854775807", "v"),
    ("PSETEX", "k", "1.5", "v"),
]


@pytest.mark.parametrize("argv", SET_ERRORS, ids=" ".join)
def test_set_errors_match_redis(both, argv):
    ours, theirs = both
    expected = theirs.cmd(*argv)
    assert expected.startswith(b"-ERR ")
    assert ours.cmd(*argv) == expected
    assert ours.cmd("EXISTS", "k") == b":0\r\n"     # nothing was written
    assert ours.cmd("PING") == b"+PONG\r\n"


def test_invalid_expire_texts_are_exact(server):
    c = Raw(server.port)
    assert c.cmd("SET", "k", "v", "EX", "0") == b"-ERR invalid expire time in 'set' command\r\n"
    assert c.cmd("SETEX", "k", "0", "v") == b"-ERR invalid expire time in 'setex' command\r\n"
    assert c.cmd("PSETEX", "k", "-5", "v") == b"-ERR invalid expire time in 'psetex' command\r\n"
    assert c.cmd("SET", "k", "v", "EX", "x") == b"-ERR value is not an integer or out of range\r\n"
    assert c.cmd("SET", "k", "v", "EX") == b"-ERR syntax error\r\n"


def test_repeated_expire_option_matches_redis(both):
    # Redis 7.0 accepts the same option twice (the last value wins): its
    # parser only rejects *different* expire options together.
    ours, theirs = both
    for argv in (("SET", "k", "v", "EX", "10", "EX", "20"), ("SET", "k", "v", "PX", "5000", "PX", "6000"),
                 ("SET", "k", "v", "NX", "NX", "EX", "10"), ("SET", "k", "v", "GET", "GET", "EX", "10")):
        assert ours.cmd(*argv) == theirs.cmd(*argv), argv
    assert ours.cmd("SET", "t", "v", "EX", "10", "EX", "20") == theirs.cmd("SET", "t", "v", "EX", "10", "EX", "20")
    assert ours.cmd("TTL", "t") == theirs.cmd("TTL", "t") == b":20\r\n"     # the last one wins


ARITY_ERRORS = [
    ("GET",), ("GET", "a", "b"), ("SET", "k"), ("SET",), ("SETEX", "k", "10"), ("PSETEX", "k", "10"),
    ("SETNX", "k"), ("MSET", "a"), ("MSET", "a", "b", "c"), ("MSETNX", "a"), ("MSETNX", "a", "b", "c"),
    ("GETSET", "a"), ("MGET",), ("EXISTS",), ("TTL",), ("TTL", "a", "b"), ("PTTL",), ("EXPIRETIME",),
    ("PEXPIRETIME", "a", "b"), ("TYPE",), ("STRLEN",), ("STRLEN", "a", "b"), ("DBSIZE", "x"),
    ("GETRANGE", "k", "0"), ("KEYS",), ("KEYS", "a", "b"), ("GETEX",), ("get",), ("Set", "k"),
]


@pytest.mark.parametrize("argv", ARITY_ERRORS, ids=" ".join)
def test_arity_errors_match_redis(both, argv):
    ours, theirs = both
    expected = theirs.cmd(*argv)
    assert expected.startswith(b"-ERR wrong number of arguments for '")
    assert ours.cmd(*argv) == expected
    assert ours.cmd("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("argv", [
    ("FOOBAR",), ("FOOBAR", "a", "b", "c"), ("foobar", "a"), ("FooBar", "x" * 200),
    ("FOOBAR", "a" * 100, "b" * 100, "c"), ("FOOBAR", "a\r\nb"), ("FOOBAR", ""), ("F" * 200,),
], ids=lambda a: " ".join(x[:12] for x in a))
def test_unknown_command_text_matches_redis(both, argv):
    ours, theirs = both
    expected = theirs.cmd(*argv)
    assert expected.startswith(b"-ERR unknown command '")
    assert ours.cmd(*argv) == expected
    assert ours.cmd("PING") == b"+PONG\r\n"


def test_getrange_matches_redis(both):
    ours, theirs = both
    for c in (ours, theirs):
        assert c.cmd("SET", "gr", "0123456789", "EX", "100") == b"+OK\r\n"
        assert c.cmd("SET", "gr_empty", "", "EX", "100") == b"+OK\r\n"
    ranges = [(0, -1), (2, 4), (-3, -1), (-1, -3), (5, 100), (100, 200), (0, -100), (-100, -1),
              (3, 2), (0, 0), (-1, -1), (9, 9), (10, 10), (-10, -10), (-11, 0)]
    for key in ("gr", "gr_empty", "gr_missing"):
        for a, b in ranges:
            assert ours.cmd("GETRANGE", key, a, b) == theirs.cmd("GETRANGE", key, a, b), (key, a, b)
    for bad in (("GETRANGE", "gr", "a", "1"), ("GETRANGE", "gr", "0", "1.5")):
        assert ours.cmd(*bad) == theirs.cmd(*bad)


def test_string_replies_match_redis_byte_for_byte(both):
    """The same TTL'd session on both servers gives the same bytes (RESP2, then RESP3)."""
    ours, theirs = both
    session = [
        ("SET", "a", "1", "EX", "100"), ("SET", "a", "2", "EX", "100", "GET"),
        ("SET", "a", "3", "NX", "EX", "100"), ("SET", "a", "4", "NX", "GET", "EX", "100"),
        ("SET", "b", "x", "XX", "EX", "100"), ("SET", "b", "x", "XX", "GET", "EX", "100"),
        ("SET", "c", "", "PX", "100000"), ("GET", "c"), ("STRLEN", "c"), ("GET", "a"),
        ("GET", "missing"), ("MGET", "a", "missing", "c", "a"), ("EXISTS", "a", "a", "missing", "c"),
        ("EXISTS", "missing"), ("TYPE", "a"), ("TYPE", "missing"), ("STRLEN", "a"),
        ("STRLEN", "missing"), ("TTL", "missing"), ("PTTL", "missing"), ("EXPIRETIME", "missing"),
        ("PEXPIRETIME", "missing"), ("TTL", "a"), ("SETEX", "d", "100", "v"), ("TTL", "d"),
        ("GETEX", "a"), ("GETEX", "missing"), ("SET", "e", b"\x00\xff\r\n", "EX", "100"),
        ("GET", "e"), ("MGET", "e"),
    ]
    for proto in ("2", "3"):
        if proto == "3":
            assert ours.cmd("HELLO", "3").startswith(b"%")
            assert theirs.cmd("HELLO", "3").startswith(b"%")
        for argv in session:
            assert ours.cmd(*argv) == theirs.cmd(*argv), (proto, argv)


# --- SET grammar ------------------------------------------------------------------

@pytest.fixture
def clocked(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    return s, fake_clock


@pytest.mark.parametrize("protocol", [2, 3])
def test_set_options_any_order_and_case(server, protocol):
    c = Raw(server.port)
    if protocol == 3:
        assert c.cmd("HELLO", "3").startswith(b"%")
    nil = b"$-1\r\n" if protocol == 2 else b"_\r\n"
    now_s, now_ms = int(time.time()), int(time.time() * 1000)
    assert c.cmd("SET", "k1", "v", "nx", "ex", "100") == b"+OK\r\n"
    assert c.cmd("set", "k2", "v", "Ex", "100", "nX") == b"+OK\r\n"
    assert c.cmd("SET", "k3", "v", "px", "100000", "NX", "get") == nil        # was absent
    assert c.cmd("SET", "k3", "w", "GET", "xx", "PX", "100000") == b"$1\r\nv\r\n"
    assert c.cmd("SET", "k3", "x", "eXaT", str(now_s + 100), "Xx") == b"+OK\r\n"
    assert c.cmd("SET", "k3", "y", "pxat", str(now_ms + 100_000)) == b"+OK\r\n"
    assert c.cmd("SET", "k3", "z", "keepttl", "XX", "gEt") == b"$1\r\ny\r\n"
    assert c.cmd("SET", "k4", "v", "GET", "NX", "PX", "100000") == nil
    assert c.cmd("MGET", "k1", "k2", "k3", "k4") == b"*4\r\n" + b"$1\r\nv\r\n" * 2 + b"$1\r\nz\r\n$1\r\nv\r\n"
    ttl = int(c.cmd("TTL", "k3")[1:-2])
    assert 98 <= ttl <= 100


def test_nx_xx_get(server):
    r = server.client()
    assert r.set("k", "v1", ex=100, nx=True) is True
    assert r.set("k", "v2", ex=100, nx=True) is None          # exists: not set
    assert r.get("k") == b"v1"
    assert r.set("missing", "v", ex=100, xx=True) is None     # XX on a missing key
    assert r.exists("missing") == 0
    assert r.set("k", "v3", ex=100, xx=True) is True
    assert r.get("k") == b"v3"
    # GET returns the old value (or nil) and still writes
    assert r.set("k", "v4", ex=100, get=True) == b"v3"
    assert r.set("new", "n", ex=100, get=True) is None
    assert r.get("new") == b"n"
    # NX + GET (Redis 7): old value back, nothing written when the key exists
    assert r.set("k", "v5", ex=100, nx=True, get=True) == b"v4"
    assert r.get("k") == b"v4"
    assert r.set("fresh", "f", ex=100, nx=True, get=True) is None
    assert r.get("fresh") == b"f"
    # XX + GET on a missing key: nil, nothing created
    assert r.set("nope", "x", ex=100, xx=True, get=True) is None
    assert r.exists("nope") == 0


def test_keepttl(clocked):
    s, clock = clocked
    r = s.client()
    assert r.set("k", "v", ex=100)
    clock.advance(30_000)
    assert r.set("k", "w", keepttl=True)
    assert r.get("k") == b"w"
    assert r.pttl("k") == 70_000                          # deadline kept exactly
    # KEEPTTL on an absent key uses the default TTL (3600 s)
    assert r.set("absent", "v", keepttl=True)
    assert r.pttl("absent") == 3_600_000
    # ... and on a key that has just expired, too
    assert r.set("short", "v", px=1000)
    clock.advance(1001)
    assert r.set("short", "again", keepttl=True)
    assert r.pttl("short") == 3_600_000


def test_default_ttl_applies_to_every_ttl_less_write(clocked):
    s, _ = clocked
    r = s.client()
    assert r.set("a", "v")
    assert r.setnx("b", "v") is True
    assert r.mset({"c": "v", "d": "v"})
    assert r.msetnx({"e": "v", "f": "v"})
    assert r.getset("g", "v") is None
    assert r.set("h", "v", nx=True)
    assert r.set("i", "v", get=True) is None
    for k in "abcdefghi":
        assert r.pttl(k) == 3_600_000, k
        assert r.ttl(k) == 3600, k


def test_default_ttl_directive(make_server, fake_clock):
    s = make_server("--default-ttl", "60", clock=fake_clock)
    r = s.client()
    r.set("k", "v")
    assert r.pttl("k") == 60_000
    r.mset({"m": "1"})
    assert r.pttl("m") == 60_000


TTL_REQUIRED = b"-ERR TTL required: REPRAM keys always expire; use SET key value EX seconds\r\n"


def test_default_ttl_zero_refuses_ttl_less_writes(make_server):
    s = make_server("--default-ttl", "0")
    c = Raw(s.port)
    for argv in (("SET", "k", "v"), ("SET", "k", "v", "NX"), ("SET", "k", "v", "XX"),
                 ("SET", "k", "v", "GET"), ("SET", "k", "v", "KEEPTTL"), ("SETNX", "k", "v"),
                 ("MSET", "k", "v"), ("MSET", "k", "v", "k2", "v2"), ("MSETNX", "k", "v"),
                 ("GETSET", "k", "v")):
        assert c.cmd(*argv) == TTL_REQUIRED, argv
        assert c.cmd("DBSIZE") == b":0\r\n", argv         # nothing written
    # with a TTL everything works, and KEEPTTL on a live key keeps it
    assert c.cmd("SET", "k", "v", "EX", "100") == b"+OK\r\n"
    assert c.cmd("SET", "k", "w", "KEEPTTL") == b"+OK\r\n"
    assert c.cmd("GET", "k") == b"$1\r\nw\r\n"
    assert c.cmd("TTL", "k") == b":100\r\n"
    assert c.cmd("SETEX", "s", "10", "v") == b"+OK\r\n"
    assert c.cmd("PSETEX", "p", "10000", "v") == b"+OK\r\n"
    # redis-py sees an ordinary ResponseError
    r = s.client()
    with pytest.raises(redis.ResponseError, match=r"^TTL required: REPRAM keys always expire"):
        r.set("x", "v")
    assert r.ping()


def test_ttl_bounds_refused_never_clamped(make_server, fake_clock):
    s = make_server("--min-ttl", "5", "--max-ttl", "100", "--default-ttl", "50", clock=fake_clock)
    c = Raw(s.port)
    now_s = START_MS // 1000
    low = [("SET", "k", "v", "EX", "4"), ("SET", "k", "v", "PX", "4999"), ("SETEX", "k", "4", "v"),
           ("PSETEX", "k", "4999", "v"), ("SET", "k", "v", "EXAT", str(now_s + 4)),
           ("SET", "k", "v", "PXAT", str(START_MS + 4999)), ("SET", "k", "v", "NX", "EX", "1")]
    high = [("SET", "k", "v", "EX", "101"), ("SET", "k", "v", "PX", "100001"),
            ("SETEX", "k", "101", "v"), ("PSETEX", "k", "100001", "v"),
            ("SET", "k", "v", "EXAT", str(now_s + 101)), ("SET", "k", "v", "PXAT", str(START_MS + 100_001)),
            ("SET", "k", "v", "GET", "EX", "86400")]
    for argv in low:
        e = err(c.cmd(*argv))
        assert e.startswith("ERR ") and "min-ttl" in e, (argv, e)
        assert "'%s'" % argv[0].lower() in e, (argv, e)
        assert c.cmd("EXISTS", "k") == b":0\r\n", argv      # refused, not clamped
    for argv in high:
        e = err(c.cmd(*argv))
        assert e.startswith("ERR ") and "max-ttl" in e, (argv, e)
        assert c.cmd("EXISTS", "k") == b":0\r\n", argv
    # the bounds themselves are allowed
    assert c.cmd("SET", "a", "v", "EX", "5") == b"+OK\r\n"
    assert c.cmd("SET", "b", "v", "PX", "100000") == b"+OK\r\n"
    assert c.cmd("SET", "c", "v", "EXAT", str(now_s + 100)) == b"+OK\r\n"
    assert c.cmd("PTTL", "a") == b":5000\r\n"
    assert c.cmd("PTTL", "b") == b":100000\r\n"
    # an overwrite that is out of bounds leaves the old value and TTL alone
    assert c.cmd("SET", "a", "new", "EX", "1000").startswith(b"-ERR ")
    assert c.cmd("GET", "a") == b"$1\r\nv\r\n"
    assert c.cmd("PTTL", "a") == b":5000\r\n"


def test_default_max_ttl_is_one_day_and_min_ttl_any_positive(server):
    c = Raw(server.port)
    assert c.cmd("SET", "k", "v", "EX", "86400") == b"+OK\r\n"
    e = err(c.cmd("SET", "k2", "v", "EX", "86401"))
    assert "max-ttl" in e and e.startswith("ERR ")
    assert c.cmd("EXISTS", "k2") == b":0\r\n"
    # min-ttl 0 by default: any positive TTL, millisecond precision.
    assert c.cmd("SET", "k3", "v", "PX", "1") == b"+OK\r\n"
    assert c.cmd("SET", "k4", "v", "PX", "500", "NX") == b"+OK\r\n"
    assert c.cmd("PSETEX", "k5", "250", "v") == b"+OK\r\n"
    assert 0 < int(c.cmd("PTTL", "k4")[1:-2]) <= 500
    assert err(c.cmd("SET", "k6", "v", "PX", "0")) == "ERR invalid expire time in 'set' command"


def test_sub_second_lock_from_redis_py(server):
    r = server.client()
    lock = r.lock("lock:sub", timeout=0.5)
    assert lock.acquire(blocking=False)
    assert 0 < r.pttl("lock:sub") <= 500


def test_exat_in_the_past_is_refused_by_min_ttl(server):
    # Redis would accept it and the key would vanish at once; REPRAM refuses
    # a TTL below min-ttl, and a deadline in the past is such a TTL.
    c = Raw(server.port)
    for argv in (("SET", "k", "v", "EXAT", "1"), ("SET", "k", "v", "PXAT", "1"),
                 ("SET", "k", "v", "EXAT", str(int(time.time()) - 10))):
        e = err(c.cmd(*argv))
        assert e.startswith("ERR ") and "min-ttl" in e, e
    assert c.cmd("EXISTS", "k") == b":0\r\n"


def test_setex_psetex(clocked):
    s, _ = clocked
    r = s.client()
    assert r.execute_command("SETEX", "k", 10, "v") is True   # redis-py 8 deprecates .setex()
    assert r.pttl("k") == 10_000
    assert r.psetex("p", 1500, "v") is True
    assert r.pttl("p") == 1500
    assert r.ttl("p") == 2                      # (1500 + 500) // 1000
    assert r.execute_command("SETEX", "k", 20, "w")
    assert r.get("k") == b"w" and r.pttl("k") == 20_000


def test_setnx(clocked):
    s, clock = clocked
    r = s.client()
    assert r.setnx("k", "1") is True
    assert r.setnx("k", "2") is False
    assert r.get("k") == b"1"
    assert r.pttl("k") == 3_600_000
    clock.advance(3_600_001)
    assert r.setnx("k", "3") is True          # the old one expired
    assert r.get("k") == b"3"


def test_mset_msetnx(clocked):
    s, _ = clocked
    r = s.client()
    assert r.execute_command("MSET", "a", "1", "b", "2", "a", "3") is True
    assert r.mget("a", "b") == [b"3", b"2"]       # last value of a repeated key wins
    assert r.msetnx({"c": "1", "d": "2"}) is True
    assert r.msetnx({"d": "x", "e": "y"}) is False
    assert r.get("d") == b"2" and r.exists("e") == 0   # all or nothing
    assert r.pttl("c") == 3_600_000


def test_getset(clocked):
    s, clock = clocked
    r = s.client()
    assert r.getset("k", "1") is None
    assert r.set("k", "2", ex=10)
    clock.advance(5000)
    assert r.getset("k", "3") == b"2"
    assert r.get("k") == b"3"
    assert r.pttl("k") == 3_600_000               # overwrite resets the TTL


@pytest.mark.parametrize("protocol", [2, 3])
def test_get_mget_exists_type_strlen(server, protocol):
    r = server.client(protocol=protocol)
    r.set("a", "hello", ex=100)
    r.set("b", "", ex=100)
    assert r.get("a") == b"hello"
    assert r.get("missing") is None
    assert r.mget("a", "missing", "b", "a") == [b"hello", None, b"", b"hello"]
    assert r.exists("a") == 1
    assert r.exists("a", "a", "a") == 3           # duplicates are counted
    assert r.exists("a", "missing", "b", "missing") == 2
    assert r.type("a") == b"string"
    assert r.type("missing") == b"none"
    assert r.strlen("a") == 5 and r.strlen("b") == 0 and r.strlen("missing") == 0
    assert r.dbsize() == 2
    assert r.getrange("a", 1, 3) == b"ell"
    assert r.getrange("missing", 0, -1) == b""


def test_ttl_family(clocked):
    s, clock = clocked
    r = s.client()
    assert r.ttl("missing") == -2 and r.pttl("missing") == -2
    assert r.expiretime("missing") == -2 and r.pexpiretime("missing") == -2
    for ms, ttl in ((1000, 1), (1499, 1), (1500, 2), (2499, 2), (2500, 3), (100_000, 100)):
        r.set("k", "v", px=ms)
        assert r.pttl("k") == ms
        assert r.ttl("k") == ttl, ms              # Redis rounds (ms + 500) / 1000
    r.set("abs", "v", pxat=START_MS + 10_600)
    assert r.pexpiretime("abs") == START_MS + 10_600
    assert r.expiretime("abs") == (START_MS + 10_600 + 500) // 1000
    r.set("abs2", "v", exat=START_MS // 1000 + 50)
    assert r.expiretime("abs2") == START_MS // 1000 + 50
    assert r.pexpiretime("abs2") == START_MS + 50_000
    clock.advance(600)
    assert r.pttl("abs") == 10_000 and r.ttl("abs") == 10
    # a key never has "no TTL": -1 does not exist in REPRAM
    r.set("plain", "v")
    assert r.ttl("plain") == 3600


def test_empty_value_is_not_nil(server):
    r = server.client()
    assert r.set("e", "", ex=100)
    assert r.get("e") == b""
    assert r.mget("e") == [b""]
    assert r.exists("e") == 1
    assert r.strlen("e") == 0
    assert r.set("e", "x", ex=100, get=True) == b""
    c = Raw(server.port)
    c.cmd("SET", "e2", "", "EX", "100")
    assert c.cmd("GET", "e2") == b"$0\r\n\r\n"
    assert c.cmd("MGET", "e2", "missing") == b"*2\r\n$0\r\n\r\n$-1\r\n"
    assert c.cmd("SET", "e2", "", "EX", "100", "GET") == b"$0\r\n\r\n"
    assert c.cmd("HELLO", "3").startswith(b"%")
    assert c.cmd("GET", "e2") == b"$0\r\n\r\n"
    assert c.cmd("GET", "missing") == b"_\r\n"


@pytest.mark.parametrize("protocol", [2, 3])
def test_binary_keys_and_values(server, protocol):
    r = server.client(protocol=protocol)
    key = b"\x00bin \r\nkey\xff"
    value = bytes(range(256)) * 4
    assert r.set(key, value, ex=100)
    assert r.get(key) == value
    assert r.mget(key, b"\x00") == [value, None]
    assert r.strlen(key) == 1024
    assert r.exists(key) == 1
    assert r.keys(b"\x00bin*") == [key]
    assert list(r.scan_iter(match=b"\x00*")) == [key]
    assert r.getrange(key, 0, 3) == b"\x00\x01\x02\x03"
    big = b"\xab" * (1 << 20)
    assert r.set(b"big", big, ex=100)
    assert r.get(b"big") == big


# --- overwrite and expiry ------------------------------------------------------

def test_overwrite_resets_ttl(clocked):
    s, clock = clocked
    r = s.client()
    r.set("k", "1", ex=100)
    clock.advance(60_000)
    assert r.pttl("k") == 40_000
    r.set("k", "2", ex=100)                      # overwrite: full new TTL
    assert r.pttl("k") == 100_000
    clock.advance(60_000)
    r.set("k", "3", ex=10)                       # ... also when it is shorter
    assert r.pttl("k") == 10_000
    r.set("k", "4")                              # ... or the default
    assert r.pttl("k") == 3_600_000
    r.execute_command("SETEX", "k", 30, "5")
    assert r.pttl("k") == 30_000
    r.mset({"k": "6"})
    assert r.pttl("k") == 3_600_000
    r.psetex("k", 2000, "7")
    clock.advance(1999)
    r.set("k", "8", px=2000)                     # rewritten just before it ends
    clock.advance(1999)
    assert r.get("k") == b"8"
    # reading never extends a TTL
    for _ in range(3):
        r.get("k"), r.exists("k"), r.ttl("k"), r.getex("k")
    assert r.pttl("k") == 1


@pytest.mark.parametrize("protocol", [2, 3])
def test_expiry_is_exact_to_the_millisecond(make_server, fake_clock, protocol):
    s = make_server(clock=fake_clock)
    r = s.client(protocol=protocol)
    r.set("hb:dying", "x", px=1000)
    r.set("hb:alive", "y", ex=100)
    fake_clock.advance(1000)
    # at the deadline itself the key is still there (expired when now > deadline)
    assert r.get("hb:dying") == b"x"
    assert r.exists("hb:dying") == 1
    assert r.pttl("hb:dying") == 0 and r.ttl("hb:dying") == 0
    assert r.dbsize() == 2
    assert sorted(r.keys("hb:*")) == [b"hb:alive", b"hb:dying"]
    assert sorted(r.scan_iter(match="hb:*")) == [b"hb:alive", b"hb:dying"]
    fake_clock.advance(1)
    # one millisecond later it is gone from every read path
    assert r.get("hb:dying") is None
    assert r.exists("hb:dying") == 0
    assert r.exists("hb:dying", "hb:alive") == 1
    assert r.ttl("hb:dying") == -2 and r.pttl("hb:dying") == -2
    assert r.expiretime("hb:dying") == -2 and r.pexpiretime("hb:dying") == -2
    assert r.type("hb:dying") == b"none"
    assert r.strlen("hb:dying") == 0
    assert r.getrange("hb:dying", 0, -1) == b""
    assert r.getex("hb:dying") is None
    assert r.mget("hb:dying", "hb:alive") == [None, b"y"]
    assert r.dbsize() == 1
    assert r.keys("*") == [b"hb:alive"]
    assert r.keys("hb:d*") == []
    assert list(r.scan_iter()) == [b"hb:alive"]
    assert list(r.scan_iter(match="hb:dying")) == []
    # an expired key behaves as absent for writes too
    assert r.set("hb:dying", "z", ex=10, xx=True) is None
    assert r.set("hb:dying", "z", ex=10, get=True) is None
    assert r.get("hb:dying") == b"z"


def test_many_keys_expire_together(clocked):
    s, clock = clocked
    r = s.client()
    p = r.pipeline(transaction=False)
    for i in range(500):
        p.set("k:%d" % i, "v", px=1000 + (i % 2) * 1000)
    p.execute()
    clock.advance(1001)
    assert r.dbsize() == 250
    assert len(r.keys("k:*")) == 250
    assert len(list(r.scan_iter(match="k:*", count=100))) == 250
    assert r.exists(*["k:%d" % i for i in range(500)]) == 250
    clock.advance(1000)
    assert r.dbsize() == 0
    assert list(r.scan_iter()) == []


# --- disabled and unknown commands ------------------------------------------------

DISABLED = [
    ("DEL", "k"), ("UNLINK", "k"), ("GETDEL", "k"), ("FLUSHDB",), ("FLUSHALL",), ("SWAPDB", "0", "1"),
    ("MOVE", "k", "1"), ("RENAME", "k", "k2"), ("RENAMENX", "k", "k2"), ("EXPIRE", "k", "100"),
    ("PEXPIRE", "k", "100000"), ("EXPIREAT", "k", "9999999999"), ("PEXPIREAT", "k", "9999999999999"),
    ("PERSIST", "k"), ("GETEX", "k", "PERSIST"), ("GETEX", "k", "EX", "100"), ("GETEX", "k", "PX", "5"),
    ("GETEX", "k", "EXAT", "9999999999"), ("GETEX", "k", "PXAT", "9999999999999"),
    ("INCR", "k"), ("INCRBY", "k", "2"), ("INCRBYFLOAT", "k", "1.5"), ("DECR", "k"),
    ("DECRBY", "k", "2"), ("APPEND", "k", "x"), ("SETRANGE", "k", "0", "x"),
    ("del",), ("flushall", "ASYNC"), ("Incr", "k", "extra"),
]


@pytest.mark.parametrize("argv", DISABLED, ids=" ".join)
def test_disabled_commands(server, argv):
    c = Raw(server.port)
    assert c.cmd("SET", "k", "10", "EX", "100") == b"+OK\r\n"
    reply = c.cmd(*argv)
    prefix = b"-ERR %s is disabled: " % argv[0].upper().encode()
    assert reply.startswith(prefix), reply
    assert len(reply) > len(prefix) + 5 and reply.endswith(b"\r\n")   # says why
    # the connection survives and nothing changed
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("GET", "k") == b"$2\r\n10\r\n"
    assert c.cmd("TTL", "k") == b":100\r\n"
    assert c.cmd("EXISTS", "k2") == b":0\r\n"


def test_disabled_reasons(server):
    c = Raw(server.port)
    reasons = {name: err(c.cmd(name, "k")) for name in ("DEL", "EXPIRE", "INCR", "PERSIST", "APPEND")}
    assert reasons["DEL"] != reasons["EXPIRE"] != reasons["INCR"]
    assert "delet" in reasons["DEL"].lower()
    assert "ttl" in reasons["EXPIRE"].lower() and "ttl" in reasons["PERSIST"].lower()
    assert reasons["INCR"].split(":", 1)[1] == reasons["APPEND"].split(":", 1)[1]


def test_getex_without_options_is_a_get(server):
    r = server.client()
    r.set("k", "v", ex=100)
    assert r.getex("k") == b"v"
    assert r.getex("missing") is None
    assert r.ttl("k") == 100


def test_disabled_commands_through_redis_py(server):
    r = server.client()
    r.set("k", "1", ex=100)
    for call in (lambda: r.delete("k"), lambda: r.expire("k", 10), lambda: r.incr("k"),
                 lambda: r.flushdb(), lambda: r.persist("k"), lambda: r.getdel("k"),
                 lambda: r.getex("k", ex=10), lambda: r.unlink("k"), lambda: r.append("k", "x")):
        with pytest.raises(redis.ResponseError, match=r"^[A-Z]+ is disabled: "):
            call()
    assert r.get("k") == b"1" and r.ttl("k") == 100


@pytest.mark.parametrize("argv", [("LPUSH", "a", "b", "c"), ("HSET", "h", "f", "v"), ("SADD", "s", "m"),
                                  ("ZADD", "z", "1", "m"), ("XADD", "x", "*", "f", "v"), ("lpush", "l", "v"),
                                  ("PFADD", "hll", "a"), ("GEOADD", "g", "0", "0", "m")],
                         ids=" ".join)
def test_other_types_are_unknown_commands(server, argv):
    c = Raw(server.port)
    args = "".join("'%s' " % a for a in argv[1:])
    expected = "-ERR unknown command '%s', with args beginning with: %s\r\n" % (argv[0], args)
    assert c.cmd(*argv) == expected.encode()
    assert c.cmd("PING") == b"+PONG\r\n"
    r = server.client()
    with pytest.raises(redis.ResponseError, match="^unknown command"):
        r.execute_command(*argv)
    assert r.ping()
