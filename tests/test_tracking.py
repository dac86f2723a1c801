"""Client-side caching (CLIENT TRACKING), differential against redis-server 7
and with real client-side caches.

* Byte-exact transcripts of the same scenario on our node and on a real
  redis-server: default mode, own writes (invalidation after the reply),
  NOLOOP, OPTIN/OPTOUT with CLIENT CACHING, BCAST with prefixes, RESP2
  REDIRECT to a ``__redis__:invalidate`` subscriber, a broken redirect, every
  error text, TRACKINGINFO / GETREDIR in RESP2 and RESP3.  Client ids differ
  between the servers and are replaced by names before comparing.
* What Redis does only eventually, we check on our own: invalidation on expiry
  (within milliseconds of the deadline), on a write arriving from a peer, and
  the tracking-table-max-keys bound.
* redis-py 8's client-side cache (RESP3, ``cache_config``) sees overwrites and
  expiries.
Ordering: invalidations to connection r are read by sending r a PING and
collecting frames until PONG (the server writes them before that reply).
"""

from __future__ import annotations

import time

import pytest
import redis
from redis.cache import CacheConfig

from clusterkit import FAST, client as node_client, seed_of, wait_for
from rawresp import Raw

PONG3 = b"+PONG\r\n"


class Conns:
    """Named raw connections to one server, with a transcript of every reply
    and push, client ids replaced by the connection's name."""

    def __init__(self, port: int):
        self.port = port
        self.c: dict = {}
        self.ids: dict = {}
        self.log: list = []

    def open(self, name: str, proto: int = 3):
        c = Raw(self.port, timeout=5)
        if proto == 3:
            assert c.cmd("HELLO", "3").startswith(b"%")
        self.c[name] = c
        self.ids[name] = int(c.cmd("CLIENT", "ID")[1:-2])
        return c

    def close(self, name: str) -> None:
        self.c.pop(name).close()

    def norm(self, b: bytes, what: str = "") -> bytes:
        if "GETREDIR" in what or "TRACKINGINFO" in what or b"tracking-redir-broken" in b:
            for name, cid in sorted(self.ids.items(), key=lambda kv: -kv[1]):
                b = b.replace(b":%d\r\n" % cid, b":<%s>\r\n" % name.encode())
        return b

    def do(self, name: str, *args, frames: int = 1) -> bytes:
        what = " ".join(map(str, args))
        args = [("%d" % self.ids[a[1:]]) if isinstance(a, str) and a.startswith("@") else a
                for a in args]
        c = self.c[name]
        c.send(*args)
        r = b"".join(c.read() for _ in range(frames))
        self.log.append((name, what, self.norm(r, what)))
        return r

    def drain(self, name: str) -> None:
        """Record everything pending on a connection (pushes) up to a PING's reply."""
        c = self.c[name]
        c.send("PING")
        while True:
            f = c.read()
            if f in (PONG3, b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"):
                return
            self.log.append((name, "<push>", self.norm(f)))


def run_both(scenario, server, real_redis):
    assert Raw(real_redis).cmd("FLUSHALL") == b"+OK\r\n"
    ours, theirs = Conns(server.port), Conns(real_redis)
    scenario(ours)
    scenario(theirs)
    for a, b in zip(ours.log, theirs.log):
        assert a == b, "ours %r != redis %r" % (a, b)
    assert len(ours.log) == len(theirs.log)
    return ours.log


def default_mode(s: Conns):
    s.open("r")
    s.open("w", 2)
    s.do("r", "CLIENT", "TRACKING", "ON")
    s.do("r", "GET", "k")
    s.do("r", "MGET", "k2", "k3")
    s.do("r", "STRLEN", "k4")
    s.do("w", "SET", "k", "v", "EX", "100")
    s.drain("r")
    s.do("w", "SET", "k", "v2", "EX", "100")      # not read since: no message
    s.drain("r")
    s.do("w", "MSET", "k3", "a", "k2", "b", "k4", "c")
    s.drain("r")
    s.do("r", "GET", "k")
    s.do("r", "SET", "k", "mine", "PX", "100000")  # own write: reply, then invalidation
    s.drain("r")
    s.do("r", "EXISTS", "k")
    s.do("r", "MULTI")
    s.do("r", "GET", "m")
    s.do("r", "EXEC")
    s.do("w", "SETEX", "m", "100", "x")
    s.do("w", "PSETEX", "k", "100000", "x")
    s.drain("r")
    s.do("r", "CLIENT", "TRACKINGINFO")
    s.do("r", "CLIENT", "GETREDIR")
    s.do("r", "CLIENT", "TRACKING", "OFF")
    s.do("r", "CLIENT", "GETREDIR")
    s.do("r", "CLIENT", "TRACKINGINFO")


def noloop_optin_optout(s: Conns):
    s.open("r")
    s.open("w", 2)
    s.do("r", "CLIENT", "TRACKING", "ON", "NOLOOP")
    s.do("r", "GET", "a")
    s.do("r", "SET", "a", "1", "EX", "100")       # NOLOOP: no message for own write
    s.drain("r")
    s.do("r", "GET", "a")
    s.do("w", "SET", "a", "2", "EX", "100")
    s.drain("r")
    s.do("r", "CLIENT", "TRACKING", "ON", "OPTIN")   # switching to OPTIN in place
    s.do("r", "CLIENT", "TRACKING", "OFF")
    s.do("r", "CLIENT", "TRACKING", "ON", "OPTIN")
    s.do("r", "GET", "a")                           # not cached: OPTIN without CACHING YES
    s.do("r", "CLIENT", "CACHING", "YES")
    s.do("r", "CLIENT", "TRACKINGINFO")
    s.do("r", "GET", "b")
    s.do("r", "CLIENT", "TRACKINGINFO")             # caching-yes is gone after one command
    s.do("r", "GET", "c")
    s.do("w", "MSET", "a", "1", "b", "2", "c", "3")
    s.drain("r")
    s.do("r", "CLIENT", "CACHING", "NO")
    s.do("r", "CLIENT", "TRACKING", "ON", "OPTOUT")
    s.do("r", "CLIENT", "TRACKING", "OFF")
    s.do("r", "CLIENT", "TRACKING", "ON", "OPTOUT")
    s.do("r", "CLIENT", "CACHING", "YES")
    s.do("r", "CLIENT", "CACHING", "NO")
    s.do("r", "GET", "a")                           # not cached: OPTOUT with CACHING NO
    s.do("r", "GET", "b")
    s.do("r", "CLIENT", "CACHING", "maybe")
    s.do("w", "MSET", "a", "1", "b", "2")
    s.drain("r")
    s.do("r", "CLIENT", "TRACKING", "OFF")
    s.do("r", "CLIENT", "CACHING", "YES")


def bcast(s: Conns):
    s.open("r")
    s.open("all")
    s.open("w", 2)
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "user:", "PREFIX", "job:", "NOLOOP")
    s.do("all", "CLIENT", "TRACKING", "ON", "BCAST")
    s.do("w", "MSET", "user:2", "x", "other", "y", "user:1", "z", "job:9", "q")
    s.drain("r")
    s.drain("all")
    s.do("r", "SET", "user:3", "mine", "EX", "100")   # NOLOOP: not to r
    s.do("w", "SET", "user:4", "theirs", "EX", "100")
    s.drain("r")
    s.drain("all")
    s.do("r", "CLIENT", "TRACKINGINFO")
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "us")
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "new:", "PREFIX", "new:x")
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "task:")
    s.do("r", "CLIENT", "TRACKINGINFO")
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST")        # adds "" beside the prefixes
    s.do("r", "CLIENT", "TRACKINGINFO")
    s.do("r", "CLIENT", "TRACKING", "ON")
    s.do("r", "CLIENT", "TRACKING", "ON", "BCAST", "OPTIN")
    s.do("all", "CLIENT", "TRACKING", "OFF")
    s.do("w", "SET", "task:1", "v", "EX", "100")
    s.drain("r")
    s.drain("all")


def redirect_and_errors(s: Conns):
    s.open("sub", 2)
    s.open("t", 2)
    s.open("t3")
    s.open("w", 2)
    s.do("sub", "SUBSCRIBE", "__redis__:invalidate")
    s.do("t", "CLIENT", "TRACKING", "ON", "REDIRECT", "@sub")
    s.do("t", "CLIENT", "GETREDIR")
    s.do("t", "CLIENT", "TRACKINGINFO")
    s.do("t", "GET", "k")
    s.do("w", "SET", "k", "1", "EX", "100")
    s.drain("sub")
    s.open("gone")
    s.do("t3", "CLIENT", "TRACKING", "ON", "REDIRECT", "@gone")
    s.do("t3", "GET", "g")
    gone = s.ids["gone"]
    s.close("gone")
    wait_for(lambda: s.c["w"].cmd("CLIENT", "LIST", "ID", gone) in (b"$0\r\n\r\n", b"=4\r\ntxt:\r\n"),
             5, "the closed client gone")   # (not in the transcript)
    s.do("w", "SET", "g", "1", "EX", "100")
    s.drain("t3")
    s.do("t3", "CLIENT", "TRACKINGINFO")
    # Errors, in Redis's order of checks.
    for argv in (("TRACKING", "ON", "REDIRECT", "999999"),
                 ("TRACKING", "ON", "REDIRECT", "@sub", "REDIRECT", "@sub"),
                 ("TRACKING", "ON", "REDIRECT", "notanumber"),
                 ("TRACKING", "ON", "PREFIX", "a"),
                 ("TRACKING", "ON", "OPTIN", "OPTOUT"),
                 ("TRACKING", "ON", "BCAST", "OPTOUT"),
                 ("TRACKING", "ON", "BOGUS"),
                 ("TRACKING", "MAYBE"),
                 ("TRACKING",),
                 ("CACHING",),
                 ("CACHING", "YES", "NO"),
                 ("GETREDIR", "x"),
                 ("TRACKINGINFO", "x")):
        s.do("w", "CLIENT", *argv)
    s.do("w", "CLIENT", "TRACKINGINFO")
    s.do("w", "CLIENT", "GETREDIR")


@pytest.mark.parametrize("scenario", [default_mode, noloop_optin_optout, bcast,
                                      redirect_and_errors])
def test_tracking_matches_redis(server, real_redis, scenario):
    log = run_both(scenario, server, real_redis)
    assert any(what == "<push>" for _, what, _ in log) or scenario is redirect_and_errors


def test_invalidation_on_expiry_is_prompt(server):
    r = Raw(server.port)
    assert r.cmd("HELLO", "3").startswith(b"%")
    assert r.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    w = server.client()
    w.set("short", "v", px=30)
    assert r.cmd("GET", "short") == b"$1\r\nv\r\n"
    t0 = time.monotonic()
    assert r.read() == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$5\r\nshort\r\n"   # pushed, unasked
    assert time.monotonic() - t0 < 1.0
    assert r.cmd("GET", "short") == b"_\r\n"


def test_redis_py_client_side_cache(server):
    r = server.client(protocol=3, cache_config=CacheConfig())
    w = server.client()
    w.set("cfg", "v1", ex=100)
    assert r.get("cfg") == b"v1"
    cache = r.get_cache()
    assert cache.size == 1                         # served locally from now on
    assert r.get("cfg") == b"v1"
    w.set("cfg", "v2", ex=100)                     # overwrite: invalidated
    wait_for(lambda: r.get("cfg") == b"v2", 5, "overwrite seen through the cache")
    w.set("brief", "x", px=50)
    assert r.get("brief") == b"x"
    wait_for(lambda: r.get("brief") is None, 5, "expiry seen through the cache")
    info = server.client().info()
    assert info["tracking_clients"] == 1


def test_peer_write_invalidates(make_server):
    a = make_server(*FAST)
    b = make_server(*FAST, "--peers", seed_of(a))
    ra, rb = node_client(a), node_client(b)
    wait_for(lambda: ra.set("probe", "1", ex=60) and rb.get("probe") == b"1", 10, "mesh up")
    c = Raw(b.port)
    assert c.cmd("HELLO", "3").startswith(b"%")
    assert c.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    assert c.cmd("GET", "shared") == b"_\r\n"
    ra.set("shared", "from-a", ex=60)             # written on the other node
    assert c.read() == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$6\r\nshared\r\n"
    assert c.cmd("GET", "shared") == b"$6\r\nfrom-a\r\n"


def test_tracking_table_is_bounded(make_server):
    s = make_server("--tracking-table-max-keys", "10")
    r = Raw(s.port)
    assert r.cmd("HELLO", "3").startswith(b"%")
    assert r.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    for i in range(15):
        r.send("GET", "k%d" % i)
    r.send("PING")
    frames = []
    while (f := r.read()) != PONG3:
        frames.append(f)
    # Keys beyond the bound were invalidated to make room (the client drops
    # them from its cache), oldest first, each before the next command ran.
    assert frames.count(b"_\r\n") == 15
    pushes = [f for f in frames if f != b"_\r\n"]
    assert pushes == [b">2\r\n$10\r\ninvalidate\r\n*1\r\n$2\r\nk%d\r\n" % i for i in range(5)]
    info = s.client().info()
    assert info["tracking_total_keys"] == 10 and info["tracking_total_items"] == 10
    assert s.client().config_set("tracking-table-max-keys", "4")
    assert s.client().info()["tracking_total_keys"] == 4


def test_no_tracking_leaves_the_write_hook_off(server):
    ks = server.server.keyspace
    assert ks.on_write is None
    r = Raw(server.port)
    assert r.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    assert ks.on_write is not None
    r.close()
    wait_for(lambda: ks.on_write is None, 5, "hook off once the tracker is gone")


def test_client_list_shows_tracking(server):
    r = server.client()
    sub = server.client()
    sid = sub.client_id()
    assert r.execute_command("CLIENT", "TRACKING", "ON", "REDIRECT", sid, "BCAST")
    info = r.client_info()
    assert "t" in info["flags"] and "B" in info["flags"] and info["redir"] == str(sid)
    assert r.execute_command("CLIENT", "TRACKING", "OFF")
    info = r.client_info()
    assert info["flags"] == "N" and info["redir"] == "-1"


def test_http_put_invalidates(make_server):
    from httpkit import http_port, req
    s = make_server("--http-port", "-1")
    c = Raw(s.port)
    assert c.cmd("HELLO", "3").startswith(b"%")
    assert c.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    assert c.cmd("GET", "doc") == b"_\r\n"
    st, _, _ = req(http_port(s), "PUT", "/v1/data/doc", body=b"from-http", headers={"X-TTL": "60"})
    assert st == 201
    assert c.read() == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\ndoc\r\n"
    assert c.cmd("GET", "doc") == b"$9\r\nfrom-http\r\n"
