"""redis-py's asyncio client (RESP2 and RESP3) against a real server.

Each test runs its coroutine with ``asyncio.run`` in the test thread while
the server runs its own loop in another thread (conftest), so the client and
the server never share an event loop.
"""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

PROTOCOLS = [2, 3]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def aclient(server, **kw) -> aioredis.Redis:
    return aioredis.Redis(host="127.0.0.1", port=server.port, **kw)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_basic_operations(server, protocol):
    async def main():
        r = aclient(server, protocol=protocol)
        try:
            assert await r.ping() is True
            assert await r.set("a", b"\x00v\r\n", ex=100) is True
            assert await r.get("a") == b"\x00v\r\n"
            assert await r.get("missing") is None
            assert await r.set("a", "w", ex=100, get=True) == b"\x00v\r\n"
            assert await r.set("a", "x", ex=100, nx=True) is None
            assert await r.execute_command("SETEX", "b", 50, "") is True
            assert await r.get("b") == b""
            assert await r.mget("a", "b", "missing") == [b"w", b"", None]
            assert await r.exists("a", "a", "b", "missing") == 3
            assert 99 <= await r.ttl("a") <= 100
            assert 49_000 <= await r.pttl("b") <= 50_000
            assert await r.type("a") == b"string"
            assert await r.strlen("a") == 1
            assert await r.dbsize() == 2
            assert sorted(await r.keys("*")) == [b"a", b"b"]
            assert sorted([k async for k in r.scan_iter(match="*")]) == [b"a", b"b"]
            assert (await r.info())["redis_version"]
            assert await r.config_get("save") == {"save": ""}
            with pytest.raises(redis.ResponseError, match=r"^DEL is disabled: "):
                await r.delete("a")
            with pytest.raises(redis.ResponseError, match="invalid expire time in 'set' command"):
                await r.set("c", "v", ex=0)
            with pytest.raises(redis.ResponseError, match="^unknown command 'LPUSH'"):
                await r.execute_command("LPUSH", "l", "v")
            assert await r.get("a") == b"w"              # still connected, nothing changed
        finally:
            await r.aclose()
    run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pipelines(server, protocol):
    async def main():
        r = aclient(server, protocol=protocol)
        try:
            async with r.pipeline() as p:           # transaction=True: MULTI ... EXEC
                p.set("t", "1", px=500_000).ttl("t").get("t").exists("t")
                assert await p.execute() == [True, 500, b"1", 1]
            async with r.pipeline(transaction=False) as p:
                for i in range(100):
                    p.set("p%d" % i, i, ex=100)
                p.get("p42")
                p.set("bad", "v", ex=0)
                out = await p.execute(raise_on_error=False)
            assert out[:100] == [True] * 100 and out[100] == b"42"
            assert isinstance(out[101], redis.ResponseError)
            async with r.pipeline() as p:
                p.set("x", "1", ex=100)
                p.expire("y", 5)                    # not written here: disabled, EXECABORT
                with pytest.raises(redis.ResponseError, match=r"EXPIRE is disabled: "):
                    await p.execute()
            assert await r.exists("x") == 0
        finally:
            await r.aclose()
    run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_concurrent_tasks(server, protocol):
    async def main():
        pool = aioredis.BlockingConnectionPool(host="127.0.0.1", port=server.port, protocol=protocol,
                                               max_connections=10, timeout=20)
        r = aioredis.Redis(connection_pool=pool)
        try:
            async def worker(n):
                for i in range(20):
                    key = "w:%d:%d" % (n, i)
                    assert await r.set(key, "%d" % (n * i), ex=100)
                    assert await r.get(key) == b"%d" % (n * i)
                return n
            assert sorted(await asyncio.gather(*(worker(n) for n in range(40)))) == list(range(40))
            assert await r.dbsize() == 800
            assert len([k async for k in r.scan_iter(match="w:7:*", count=5)]) == 20

            # coordination token: of many concurrent SET NX EX, exactly one wins
            async def grab(n):
                return n if await r.set("lock:job", "owner-%d" % n, nx=True, ex=30) else None
            winners = [n for n in await asyncio.gather(*(grab(n) for n in range(50))) if n is not None]
            assert len(winners) == 1
            assert await r.get("lock:job") == b"owner-%d" % winners[0]
            assert len((await r.client_list())) <= 11       # 10 pooled connections were reused
        finally:
            await r.aclose()
            await pool.aclose()
    run(main())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_watch_and_transaction(server, protocol):
    async def main():
        r = aclient(server, protocol=protocol)
        other = aclient(server, protocol=protocol)
        try:
            await r.set("state", "queued", ex=100)
            async with r.pipeline() as p:
                await p.watch("state")
                assert await p.get("state") == b"queued"
                await other.set("state", "in_progress", ex=100)
                p.multi()
                p.set("state", "complete", ex=100)
                with pytest.raises(redis.WatchError):
                    await p.execute()
            assert await r.get("state") == b"in_progress"

            async def advance(pipe):
                current = await pipe.get("state")
                pipe.multi()
                pipe.set("state", current + b"+1", ex=100)
            await r.transaction(advance, "state")
            assert await r.get("state") == b"in_progress+1"
        finally:
            await r.aclose()
            await other.aclose()
    run(main())


@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_connection_options(make_server, protocol):
    s = make_server("--requirepass", "s3cret")

    async def main():
        r = aclient(s, protocol=protocol, password="s3cret", client_name="async-worker", db=0)
        bare = aclient(s, protocol=protocol, password="s3cret", lib_name=None, lib_version=None)
        try:
            assert await r.set("k", "v", ex=10)
            assert await r.client_getname() in ("async-worker", b"async-worker")
            info = await r.client_info()
            assert info["lib-name"] == "redis-py" and info["resp"] == str(protocol)
            assert await bare.get("k") == b"v"
            assert (await bare.client_info())["lib-name"] == ""
            from redis.backoff import NoBackoff
            from redis.asyncio.retry import Retry
            wrong = aclient(s, protocol=protocol, password="nope", retry=Retry(NoBackoff(), 0))
            with pytest.raises(redis.AuthenticationError):
                await wrong.ping()
            await wrong.aclose()
        finally:
            await r.aclose()
            await bare.aclose()
    run(main())


def test_expiry_seen_by_async_client(make_server, fake_clock):
    s = make_server(clock=fake_clock)

    async def main():
        r = aclient(s)
        try:
            await r.set("hb:node1", "alive", px=1500)
            fake_clock.advance(1500)
            assert await r.get("hb:node1") == b"alive"
            fake_clock.advance(1)
            assert await r.get("hb:node1") is None
            assert await r.exists("hb:node1") == 0
            assert [k async for k in r.scan_iter(match="hb:*")] == []
        finally:
            await r.aclose()
    run(main())
