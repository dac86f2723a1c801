"""maxmemory with the only policy, noeviction (SPEC §2, reference §4.7).

Writes that would exceed the limit get Redis's exact OOM error (redis-py:
``OutOfMemoryError``); reads keep working; nothing is ever evicted; a refused
MSET changes nothing; shrinking overwrites still work when full; once keys
expire, writes work again.  Accounting is the server's own ``used_memory``
(keys + values + a fixed per-entry overhead), so the tests compute exactly
where the limit falls.
"""

from __future__ import annotations

import socket
import time

import pytest
import redis

from repram_resp.keyspace import ENTRY_OVERHEAD_BYTES as O

OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"
MB = 1024 * 1024


def raw_call(port, *args) -> bytes:
    """One command over a fresh socket; returns the first reply line (errors
    and simple replies are one line)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
        sock.sendall(b"".join(parts))
        f = sock.makefile("rb")
        line = f.readline()
        f.close()
        return line


def fill(r, prefix=b"f:", value_size=1000, ttl_ms=None, **kw):
    """SET keys until the first OOM; returns the keys stored."""
    stored = []
    i = 0
    while True:
        key = prefix + b"%06d" % i
        try:
            if ttl_ms is None:
                r.set(key, b"x" * value_size, ex=600)
            else:
                r.set(key, b"x" * value_size, px=ttl_ms)
        except redis.exceptions.OutOfMemoryError:
            return stored
        stored.append(key)
        i += 1
        assert i < 100_000, "never refused"


def used(r) -> int:
    return r.info("memory")["used_memory"]


@pytest.fixture
def full(make_server):
    s = make_server("--maxmemory", "1mb")
    r = s.client(protocol=2)
    keys = fill(r)
    return s, r, keys


def test_writes_beyond_maxmemory_get_exact_oom_and_nothing_is_evicted(full):
    s, r, keys = full
    assert len(keys) == MB // (1000 + 8 + O)
    u = used(r)
    assert u <= MB and u + 1000 + 8 + O > MB
    # Exact wire error.
    assert raw_call(s.port, "SET", "new", "x" * 1000, "EX", "600") == OOM
    with pytest.raises(redis.exceptions.OutOfMemoryError,
                       match=r"^command not allowed when used memory > 'maxmemory'\.$"):
        r.set("new", "x" * 1000, ex=600)
    # Reads keep working and every earlier key is still there, intact.
    assert r.dbsize() == len(keys)
    assert r.mget(keys[:50]) == [b"x" * 1000] * 50
    assert r.get(keys[-1]) == b"x" * 1000
    assert r.exists(*keys) == len(keys)
    assert len(list(r.scan_iter(count=500))) == len(keys)
    assert r.ttl(keys[0]) > 0 and r.strlen(keys[0]) == 1000
    assert r.info("stats")["evicted_keys"] == 0
    assert r.get("new") is None
    assert used(r) == u
    # Every writing command is refused the same way.
    grow = b"x" * (1000 + MB - u + 1)                   # an overwrite growing past the room left
    for cmd in (("SETEX", "n1", "600", "x" * 1000), ("PSETEX", "n2", "600000", "x" * 1000),
                ("SETNX", "n3", "x" * 1000), ("GETSET", "n4", "x" * 1000),
                ("MSET", "n5", "x" * 1000), ("MSETNX", "n6", "x" * 1000),
                ("SET", keys[0], grow, "EX", "600"),
                ("SET", keys[0], grow, "EX", "600", "GET"), ("GETSET", keys[0], grow),
                ("MSET", keys[0], grow)):
        assert raw_call(s.port, *cmd) == OOM, cmd
    assert r.get(keys[0]) == b"x" * 1000
    assert used(r) == u


def test_smaller_or_equal_overwrite_works_when_full(full):
    s, r, keys = full
    u = used(r)
    assert r.set(keys[0], b"y" * 10, ex=600)
    assert r.get(keys[0]) == b"y" * 10
    assert used(r) == u - 990
    assert r.set(keys[1], b"z" * 1000, ex=600)           # same size: does not exceed
    assert r.get(keys[1]) == b"z" * 1000
    # The room freed by the shrink is usable, exactly.
    assert r.set(keys[2], b"w" * 1990, ex=600)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set(keys[3], b"w" * (1001 + (MB - used(r))), ex=600)


def test_refused_mset_is_not_partially_applied(full):
    s, r, keys = full
    u = used(r)
    room = MB - u
    before = r.dbsize()
    # First pair fits alone, second does not: nothing at all may be written.
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.mset({b"m:small": b"s", b"m:big": b"x" * (room + 1)})
    assert r.exists(b"m:small", b"m:big") == 0
    assert r.dbsize() == before and used(r) == u


def test_refused_mset_with_shrinking_overwrite_is_not_partially_applied(full):
    """The total fits (a shrink frees room), but applied in argument order an
    early pair does not: MSET must be all-or-nothing either way -- either it
    succeeds as a whole or it writes nothing."""
    s, r, keys = full
    assert r.set(keys[1], b"", ex=600)                 # make at least 1000 bytes of room
    room = MB - used(r)
    assert room >= 1000
    before = r.dbsize()
    small_key, small_val = b"m:c", b"c" * 10
    small = len(small_key) + len(small_val) + O
    assert small < room
    big_key = b"m:a"
    big_val = b"a" * (room - small + 100 - len(big_key) - O)   # small + big exceed room by 100
    assert len(big_val) > 0
    try:
        r.mset({small_key: small_val, big_key: big_val, keys[0]: b""})  # keys[0] frees 1000
    except redis.exceptions.OutOfMemoryError:
        assert r.exists(small_key) == 0, "refused MSET left m:c written (partial apply)"
        assert r.exists(big_key) == 0
        assert r.strlen(keys[0]) == 1000
        assert r.dbsize() == before
    else:
        assert r.get(small_key) == small_val and r.get(big_key) == big_val
        assert r.strlen(keys[0]) == 0
    assert used(r) <= MB


def test_writes_work_again_after_keys_expire(make_server):
    s = make_server("--maxmemory", "1mb", "--min-ttl", "0")
    r = s.client(protocol=2)
    keys = fill(r, ttl_ms=1000)                       # stops at the first OOM
    assert len(keys) > 100
    deadline = time.monotonic() + 5
    while True:
        try:
            assert r.set("after", "x" * 1000, ex=600)
            break
        except redis.exceptions.OutOfMemoryError:
            assert time.monotonic() < deadline, "still OOM long after every key expired"
            time.sleep(0.02)
    assert r.get("after") == b"x" * 1000
    # Once every key has expired (reclaimed in the background), the store
    # fills up again as much as before.
    deadline = time.monotonic() + 5
    while r.info("stats")["expired_keys"] < len(keys):
        assert time.monotonic() < deadline, "keys not reclaimed"
        time.sleep(0.02)
    refill = fill(r, prefix=b"g:")
    assert len(refill) >= len(keys) - 2


def test_info_memory_fields(make_server):
    s = make_server("--maxmemory", "1mb")
    r = s.client(protocol=2)
    r.set("k", "v" * 100, ex=100)
    info = r.info("memory")
    assert info["used_memory"] == 1 + 100 + O
    assert info["used_memory_human"] == "%dB" % (1 + 100 + O)
    assert info["maxmemory"] == MB
    assert info["maxmemory_human"] == "1.00M"
    assert info["maxmemory_policy"] == "noeviction"
    with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
        sock.sendall(b"INFO memory\r\n")
        f = sock.makefile("rb")
        head = f.readline()
        assert head[:1] == b"$"
        text = f.read(int(head[1:-2]) + 2).decode()
        f.close()
    assert text.startswith("# Memory\r\n")
    for line in ("used_memory:%d" % (1 + 100 + O), "used_memory_human:%dB" % (1 + 100 + O),
                 "maxmemory:1048576", "maxmemory_human:1.00M", "maxmemory_policy:noeviction"):
        assert "\r\n%s\r\n" % line in text, line


def test_config_set_maxmemory_at_runtime(server):
    r = server.client(protocol=3)
    assert r.config_get("maxmemory") == {"maxmemory": "0"}
    assert r.info("memory")["maxmemory"] == 0
    for i in range(20):
        r.set("k%02d" % i, "x" * 1000, ex=100)
    u = used(r)
    assert r.config_set("maxmemory", str(u + 500))
    assert r.config_get("maxmemory") == {"maxmemory": str(u + 500)}
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("more", "x" * 1000, ex=100)
    assert r.get("k00") == b"x" * 1000
    # Lowering the limit below what is stored refuses new growth, evicts nothing.
    assert r.config_set("maxmemory", "1000")
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("tiny", "x", ex=100)
    assert r.dbsize() == 20
    assert r.set("k00", "x", ex=100)                     # shrinking still works
    assert r.config_set("maxmemory", "0")
    assert r.set("more", "x" * 1000, ex=100)
    assert r.config_set("maxmemory", "2mb")
    assert r.info("memory")["maxmemory"] == 2 * MB


def test_maxmemory_policy_is_noeviction_only(server):
    r = server.client(protocol=2)
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    for policy in ("allkeys-lru", "volatile-ttl", "allkeys-random", "bogus"):
        with pytest.raises(redis.ResponseError,
                           match=r"^CONFIG SET failed \(possibly related to argument "
                                 r"'maxmemory-policy'\)"):
            r.config_set("maxmemory-policy", policy)
    assert r.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert r.config_set("maxmemory-policy", "noeviction")
    assert r.info("memory")["maxmemory_policy"] == "noeviction"
