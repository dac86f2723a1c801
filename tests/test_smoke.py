"""First contact with real clients: redis-py RESP3 (default) and RESP2."""

import pytest
import redis


@pytest.mark.parametrize("protocol", [2, 3])
def test_set_get_ttl(server, protocol):
    r = server.client(protocol=protocol)
    assert r.ping()
    assert r.set("a", b"\x00bin\r\n", ex=100)
    assert r.get("a") == b"\x00bin\r\n"
    assert 99 <= r.ttl("a") <= 100
    assert r.get("missing") is None
    assert r.exists("a", "a", "missing") == 2
    assert r.type("a") == b"string"


def test_del_is_disabled_and_connection_survives(server):
    r = server.client()
    r.set("k", "v", ex=10)
    with pytest.raises(redis.ResponseError, match=r"^DEL is disabled: "):
        r.delete("k")
    assert r.get("k") == b"v"
