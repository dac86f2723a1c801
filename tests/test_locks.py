"""Locks on REPRAM (README "Locks and libraries"): redis-py's Lock against a
node, and the SET NX PX / WATCH recipe that replaces its Lua release."""

from __future__ import annotations

import time

import pytest
import redis
from redis.exceptions import WatchError


def test_redis_py_lock_acquires_and_release_says_why(server):
    r = server.client()
    lock = r.lock("lock:report", timeout=5)
    assert lock.acquire(blocking=False)
    assert 0 < r.pttl("lock:report") <= 5000
    assert not r.lock("lock:report", timeout=5).acquire(blocking=False)   # held
    for op in (lambda: lock.extend(5), lock.reacquire, lock.release):   # release forgets the token
        with pytest.raises(redis.exceptions.ResponseError) as e:
            op()
        assert str(e.value).startswith("EVALSHA is disabled: REPRAM runs no server-side code")
    assert r.exists("lock:report")            # still held: only its TTL frees it
    # Without timeout= the key gets default-ttl (an hour).
    assert r.lock("lock:forever").acquire(blocking=False)
    assert 3590 <= r.ttl("lock:forever") <= 3600


def _guarded_set(r, name, token, ms) -> bool:
    """Overwrite the lock with a new TTL only if it is still ours."""
    with r.pipeline() as p:
        try:
            p.watch(name)
            if p.get(name) != token:
                return False
            p.multi()
            p.set(name, token, px=ms)
            p.execute()
            return True
        except WatchError:
            return False


def test_lock_recipe_acquire_renew_release(server):
    r = server.client()
    assert r.set("lock:job", b"me", nx=True, px=2000)
    assert not r.set("lock:job", b"you", nx=True, px=2000)
    assert _guarded_set(r, "lock:job", b"me", 10_000)              # renew
    assert r.pttl("lock:job") > 2000
    assert not _guarded_set(r, "lock:job", b"you", 1)               # not yours: untouched
    assert r.get("lock:job") == b"me"
    assert _guarded_set(r, "lock:job", b"me", 1)                    # release early
    assert 0 <= r.pttl("lock:job") <= 1 or r.pttl("lock:job") == -2
    # once its last millisecond has passed anyone may take it
    other = server.client()
    end = time.monotonic() + 5
    while not other.set("lock:job", b"you", nx=True, px=2000):
        assert time.monotonic() < end
        time.sleep(0.001)     # the released lock's last millisecond, bounded by the deadline
    assert r.get("lock:job") == b"you"


def test_guard_loses_to_a_concurrent_writer(server):
    r, other = server.client(), server.client()
    assert r.set("lock:x", b"me", nx=True, px=5000)
    with r.pipeline() as p:
        p.watch("lock:x")
        assert p.get("lock:x") == b"me"
        other.set("lock:x", b"thief", px=5000)        # changes hands between GET and EXEC
        p.multi()
        p.set("lock:x", b"me", px=1)
        with pytest.raises(WatchError):
            p.execute()
    assert r.get("lock:x") == b"thief"


def test_aiocache_redlock_acquires_and_release_says_why(server):
    import asyncio
    from aiocache import RedisCache
    from aiocache.lock import RedLock

    async def go():
        cache = RedisCache(endpoint="127.0.0.1", port=server.port)
        try:
            with pytest.raises(redis.ResponseError, match="^EVAL is disabled: REPRAM runs no"):
                async with RedLock(cache, "job", lease=5):
                    assert server.client().exists("job-lock")      # held: SET NX EX
            return server.client().pttl("job-lock")                # released only by its TTL
        finally:
            await cache.close()
    assert 0 < asyncio.run(go()) <= 5000


def test_django_session_ttl_needs_max_ttl(make_server):
    """Django's cache session backend stores a session for SESSION_COOKIE_AGE
    (two weeks): refused under the default max-ttl, stored with --max-ttl."""
    from django.conf import global_settings, settings
    if not settings.configured:
        settings.configure()
    from django.core.cache.backends.redis import RedisCache
    age = global_settings.SESSION_COOKIE_AGE
    assert age == 1209600
    default = make_server()
    with pytest.raises(redis.ResponseError, match="TTL above max-ttl"):
        RedisCache("redis://127.0.0.1:%d" % default.port, {}).set("session", {"u": 1}, timeout=age)
    roomy = make_server("--max-ttl", str(age))
    cache = RedisCache("redis://127.0.0.1:%d" % roomy.port, {})
    cache.set("session", {"u": 1}, timeout=age)
    assert cache.get("session") == {"u": 1}
