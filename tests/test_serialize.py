"""DUMP / RESTORE and MODULE LIST, driven by redis-py (what redis-py's own suite
found missing; docs/redis-py-suite.md), with redis-server as the oracle."""

import pytest
import redis

from repram_resp.commands.serialize import crc64

VALUES = [b"foo", b"12345", b"-7", b"300", b"", b"x" * 100, b"ab" * 5000, bytes(range(256)) * 40]


def test_crc64_is_redis_jones():
    assert crc64(b"123456789") == 0xE9C6D914C4B8D9CA      # Redis's crc64 test vector


def test_dump_restore_both_ways_with_redis_server(server, real_redis):
    ours, theirs = server.client(), redis.Redis(port=real_redis)
    for v in VALUES:         # redis-server uses its int and LZF encodings for some of these
        theirs.set("k", v)
        assert ours.restore("k", 0, theirs.dump("k"), replace=True) == b"OK"
        assert ours.get("k") == v
        theirs.restore("k2", 0, ours.dump("k"), replace=True)
        assert theirs.get("k2") == v
    assert ours.dump("missing") is None


def test_restore_rules_and_errors(server, real_redis):
    ours, theirs = server.client(), redis.Redis(port=real_redis)
    ours.set("a", "bar", ex=100)
    dumped = ours.dump("a")
    bad = [(("a", 0, dumped), {}), (("b", -1, dumped), {}), (("b", 0, b"junk"), {}),
           (("b", 0, dumped[:-1] + b"x"), {}), (("b", "x", dumped), {})]
    for args, kw in bad:
        errs = []
        for c in (theirs, ours):
            if c is theirs:
                theirs.set("a", "bar")
            with pytest.raises(redis.ResponseError) as e:
                c.restore(*args, **kw)
            errs.append(str(e.value))
        assert errs[0] == errs[1]
    # REPRAM: RESTORE is a PUT -- ttl 0 gets default-ttl, REPLACE overwrites silently.
    assert ours.restore("a", 0, ours.dump("a"), replace=True) == b"OK"
    assert 3590 < ours.ttl("a") <= 3600
    assert ours.restore("c", 5000, dumped) == b"OK" and 4000 < ours.pttl("c") <= 5000
    with pytest.raises(redis.ResponseError, match="max-ttl"):
        ours.restore("d", 10 ** 12, dumped)


def test_module_list_is_empty(server):
    r = server.client()
    assert r.module_list() == []
    with pytest.raises(redis.ResponseError, match="REPRAM"):
        r.module_load("/tmp/x.so")
