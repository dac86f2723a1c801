"""A TTL set inside the write's own transaction is part of the write.

Inside MULTI, EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT on a key written earlier
in the same transaction set that write's TTL: one PUT with the final deadline,
replicated once, notifications as Redis sends them (tests/
test_notifications_exact.py).  Real users: Django's RedisCache.set_many and
aiocache's multi_set(ttl=...).  Anywhere else these commands stay refused.
"""

from __future__ import annotations

import asyncio
import time

from clusterkit import FAST, client as node_client, seed_of, wait_for
from rawresp import Raw

OK, QUEUED = b"+OK\r\n", b"+QUEUED\r\n"


def test_expire_of_a_key_written_in_the_transaction(server):
    c = Raw(server.port)
    assert c.cmd("MULTI") == OK
    assert c.cmd("MSET", "a", "1", "b", "2") == QUEUED
    assert c.cmd("EXPIRE", "a", "300") == QUEUED
    assert c.cmd("PEXPIRE", "b", "1500") == QUEUED
    assert c.cmd("SET", "c", "3", "EX", "100") == QUEUED
    assert c.cmd("PEXPIREAT", "c", str(int(time.time() * 1000) + 50_000)) == QUEUED
    assert c.cmd("SETEX", "d", "100", "4") == QUEUED
    assert c.cmd("EXPIREAT", "d", str(int(time.time()) + 20)) == QUEUED
    assert c.cmd("SET", "e", "5", "NX", "GET") == QUEUED       # the slow SET path too
    assert c.cmd("EXPIRE", "e", "7") == QUEUED
    assert c.cmd("EXPIRE", "e", "8") == QUEUED                 # the last one wins
    assert c.cmd("EXEC") == b"*10\r\n+OK\r\n:1\r\n:1\r\n+OK\r\n:1\r\n+OK\r\n:1\r\n_\r\n:1\r\n:1\r\n" \
        .replace(b"_\r\n", b"$-1\r\n")
    assert c.cmd("TTL", "a") == b":300\r\n"
    assert 1400 <= int(c.cmd("PTTL", "b")[1:-2]) <= 1500
    assert 49 <= int(c.cmd("TTL", "c")[1:-2]) <= 50
    assert 19 <= int(c.cmd("TTL", "d")[1:-2]) <= 20
    assert c.cmd("TTL", "e") == b":8\r\n"


def test_expire_elsewhere_stays_refused(server):
    c = Raw(server.port)
    assert c.cmd("SET", "k", "v", "EX", "100") == OK
    assert c.cmd("EXPIRE", "k", "10").startswith(b"-ERR EXPIRE is disabled: ")
    assert c.cmd("MULTI") == OK
    # Before the write, on another key, with options: refused at queue time.
    assert c.cmd("EXPIRE", "x", "10").startswith(b"-ERR EXPIRE is disabled: ")
    assert c.cmd("SET", "x", "1", "EX", "100") == QUEUED
    assert c.cmd("EXPIRE", "x", "10", "GT").startswith(b"-ERR EXPIRE is disabled: ")
    assert c.cmd("PERSIST", "x").startswith(b"-ERR PERSIST is disabled: ")
    assert c.cmd("EXEC").startswith(b"-EXECABORT")
    assert c.cmd("EXISTS", "x") == b":0\r\n"


def test_expire_errors_inside_exec(server):
    c = Raw(server.port)
    assert c.cmd("SET", "old", "v", "EX", "100") == OK
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "old", "w", "NX", "EX", "100") == QUEUED   # does not write: key exists
    assert c.cmd("EXPIRE", "old", "5") == QUEUED
    assert c.cmd("SET", "n", "1", "EX", "100") == QUEUED
    assert c.cmd("EXPIRE", "n", "abc") == QUEUED
    assert c.cmd("EXPIRE", "n", "0") == QUEUED                       # Redis would delete
    assert c.cmd("EXPIRE", "n", "999999") == QUEUED                  # above max-ttl
    out = c.cmd("EXEC")
    assert out.startswith(b"*6\r\n$-1\r\n-ERR EXPIRE is disabled: ")
    assert b"-ERR value is not an integer or out of range\r\n" in out
    assert b"-ERR invalid expire time in 'expire' command\r\n" in out
    assert b"-ERR TTL above max-ttl" in out
    assert c.cmd("TTL", "old") == b":100\r\n"                     # untouched
    assert c.cmd("TTL", "n") == b":100\r\n"                       # the write kept its own TTL


def test_django_set_many(server):
    from django.conf import settings
    if not settings.configured:
        settings.configure()
    from django.core.cache.backends.redis import RedisCache
    cache = RedisCache("redis://127.0.0.1:%d" % server.port, {})
    assert cache.set_many({"a": 1, "b": "two"}, timeout=300) == []
    assert cache.get_many(["a", "b"]) == {"a": 1, "b": "two"}
    r = server.client()
    assert {r.ttl(k) for k in r.keys("*")} == {300}
    cache.set_many({"a": 3}, timeout=2)
    assert cache.get("a") == 3 and r.ttl(r.keys("*a")[0]) == 2


def test_aiocache_multi_set_with_ttl(server):
    from aiocache import RedisCache

    async def main():
        cache = RedisCache(endpoint="127.0.0.1", port=server.port)
        try:
            assert await cache.multi_set([("x", "1"), ("y", "2")], ttl=60)
            assert await cache.multi_get(["x", "y"]) == ["1", "2"]
            assert await cache.multi_set([("z", "3")], ttl=0.5)        # float: PEXPIRE
            return await cache.client.pttl("z"), await cache.client.ttl("x")
        finally:
            await cache.close()
    pz, tx = asyncio.run(main())
    assert 0 < pz <= 500 and tx == 60


def test_the_write_replicates_once_with_the_final_ttl(make_server):
    a = make_server(*FAST)
    b = make_server(*FAST, "--peers", seed_of(a))
    ra, rb = node_client(a), node_client(b)
    wait_for(lambda: ra.set("probe", "1", ex=60) and rb.get("probe") == b"1", 10, "mesh up")
    stats = b.server.replication.replicator.stats
    before = stats["writes_received"]
    p = ra.pipeline()
    p.mset({"k1": "v1", "k2": "v2"})
    p.expire("k1", 500)
    p.expire("k2", 700)
    assert p.execute() == [True, True, True]
    assert ra.wait(1, 2000) == 1
    assert rb.ttl("k1") == 500 and rb.ttl("k2") == 700
    assert stats["writes_received"] - before == 2       # one PUT per key, with its final TTL


def test_commandstats_count_the_expire(server):
    r = server.client()
    p = r.pipeline()
    p.set("s", "1", ex=10)
    p.expire("s", 20)
    assert p.execute() == [True, True]
    assert r.info("commandstats")["cmdstat_expire"]["calls"] == 1
