"""The HTTP API's opt-in REPRAM guards and its connection accounting (issue 9,
second session): the per-IP rate limit (429) and the scanner filter (403)
with the stdlib http.client and curl, the MCP server's texts for a 429 in
``--url http://`` mode, the token buckets' memory bound, HTTP connections
counted in maxclients, and CONFIG SET of the TTL bounds reaching the PUT
path's TTL cache."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import pytest

from clusterkit import start_mesh, wait_for
from httpkit import curl, http_port, req
from repram_resp.cluster import messages as m
from repram_resp.http.ratelimit import RateLimiter, client_ip

SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY"}


def statuses(port, n, method="GET", path="/v1/health", headers=None):
    """n requests on one keep-alive connection: their statuses (and the
    connection must survive each)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    try:
        for _ in range(n):
            c.request(method, path, body=b"v" if method == "PUT" else None, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            out.append((r.status, body, {k.lower(): v for k, v in r.getheaders()}))
    finally:
        c.close()
    return out


def test_rate_limit_is_a_token_bucket_per_ip(make_server):
    node = make_server("--http-port", "-1", "--http-rate-limit", "1")
    port = http_port(node)
    # Burst 2 x 1/s, the bucket new and full: two pass, then 429 on the same
    # keep-alive connection (a refill of one token a second may let one more
    # through on a slow machine, never two in a row within a second).
    got = statuses(port, 5, "PUT", "/v1/data/rl:a")
    assert [s for s, _, _ in got[:2]] == [201, 201]
    refusals = [(b, h) for s, b, h in got if s == 429]
    assert refusals and {s for s, _, _ in got} == {201, 429}
    body, h = refusals[0]
    assert body == b"Rate limit exceeded\n" and h["retry-after"] == "1"
    for k, v in SECURITY.items():
        assert h[k] == v                        # security headers even on a refusal
    # Every endpoint counts (each check repeated until the bucket is empty,
    # since a token refills every second); a CORS preflight passes.
    def refused(status_of, ok):
        deadline = time.monotonic() + 20
        while True:
            st = status_of()
            if st == 429:
                return
            assert st == ok and time.monotonic() < deadline
    refused(lambda: req(port, "GET", "/v1/keys")[0], 200)
    refused(lambda: int(curl("-o", "/dev/null", "-w", "%{http_code}",
                             "http://127.0.0.1:%d/v1/data/rl:a" % port).stdout), 200)
    for _ in range(5):
        assert req(port, "OPTIONS", "/v1/data/rl:a", headers={"Origin": "http://x"})[0] == 200
    # Refilled after a second (polled with a deadline).
    deadline = time.monotonic() + 10
    while req(port, "GET", "/v1/data/rl:a")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # Counted in /v1/metrics by code; turned off at run time.
    r = node.client()
    r.config_set("http-rate-limit", "0")
    assert {s for s, _, _ in statuses(port, 20)} == {200}
    metrics = req(port, "GET", "/v1/metrics")[2].decode()
    assert 'code="429"' in metrics
    r.close()


def test_trusted_proxy_headers_pick_the_bucket(make_server):
    node = make_server("--http-port", "-1", "--http-rate-limit", "1", "--http-trust-proxy", "yes")
    port = http_port(node)
    a = statuses(port, 4, headers={"X-Forwarded-For": "10.0.0.1, 127.0.0.1"})
    assert [s for s, _, _ in a[:2]] == [200, 200] and 429 in [s for s, _, _ in a]
    # A forwarded "IP" is cut to 64 characters (the table's memory bound).
    assert client_ip("127.0.0.1", {b"x-forwarded-for": b"x" * 70000}, True) == "x" * 64
    assert client_ip("127.0.0.1", {b"x-forwarded-for": b"10.0.0.1"}, False) == "127.0.0.1"
    # Another client behind the proxy has its own, full bucket.
    assert [s for s, _, _ in statuses(port, 2, headers={"X-Real-IP": "10.0.0.2"})] == [200, 200]
    # Without trust, the headers are ignored: the socket's IP decides.
    r = node.client()
    r.config_set("http-trust-proxy", "no")
    r.config_set("http-rate-limit", "1")        # fresh buckets
    deadline = time.monotonic() + 20
    while req(port, "GET", "/v1/health", headers={"X-Forwarded-For": "10.0.0.9"})[0] != 429:
        assert time.monotonic() < deadline
    # Drained: of two more requests "from" another IP, at most one passes (a
    # token refilled in between), where a bucket of its own would pass both.
    got = [s for s, _, _ in statuses(port, 2, headers={"X-Forwarded-For": "10.0.0.10"})]
    assert 429 in got
    r.close()


def test_bucket_table_is_bounded_and_forgets_idle_buckets():
    lim = RateLimiter(10, 3)
    now = 100.0
    for _ in range(20):
        assert lim.allow("a", now)              # burst 20
    assert not lim.allow("a", now) and lim.limited == 1
    for ip in ("b", "c", "d"):                  # "a" is the least recently used: out
        assert lim.allow(ip, now)
    assert list(lim.buckets) == ["b", "c", "d"] and lim.evicted == 1
    assert lim.allow("a", now)                  # a fresh (full) bucket again
    # REPRAM's refill: floor(elapsed x rate) tokens, the remainder lost.
    lim = RateLimiter(10, 100)
    for _ in range(20):
        lim.allow("x", now)
    assert not lim.allow("x", now + 0.05)       # 0.5 token: none added
    assert lim.allow("x", now + 0.15)           # 1 token
    assert not lim.allow("x", now + 0.15)
    # The sweep drops only buckets that are full again, oldest first.
    lim.allow("y", now + 0.15)
    lim.sweep(now + 1.0)                        # x: 0 + 0.85 s x 10 < 20
    assert list(lim.buckets) == ["x", "y"]
    lim.sweep(now + 10.0)
    assert not lim.buckets


def test_scanner_user_agents_get_403_when_enabled(make_server):
    node = make_server("--http-port", "-1", "--http-block-scanners", "yes")
    port = http_port(node)
    for ua in ("sqlmap/1.7", "Mozilla/5.0 (Nikto/2.5)", "NMAP Scripting Engine", "masscan/1.3",
               "gobuster/3.6", "DirBuster-1.0"):
        st, h, body = req(port, "GET", "/v1/health", headers={"User-Agent": ua})
        assert (st, body) == (403, b"Forbidden\n") and h["x-frame-options"] == "DENY"
    for ua in ("curl/8.5.0", "python-requests/2.31"):
        assert req(port, "GET", "/v1/health", headers={"User-Agent": ua})[0] == 200
    assert curl("-o", "/dev/null", "-w", "%{http_code}", "-A", "sqlmap",
                "http://127.0.0.1:%d/v1/health" % port).stdout == b"403"
    r = node.client()
    r.config_set("http-block-scanners", "no")
    assert req(port, "GET", "/v1/health", headers={"User-Agent": "sqlmap"})[0] == 200
    r.close()


def test_mcp_texts_for_429_over_http(make_server):
    from test_mcp import call, session

    node = make_server("--http-port", "-1", "--http-rate-limit", "1")
    url = "http://127.0.0.1:%d" % http_port(node)
    expected = {
        "repram_store": json.dumps({"error": "Store failed with status 429: Too Many Requests"}),
        "repram_retrieve": "REPRAM retrieve failed: 429 Too Many Requests",
        "repram_exists": "REPRAM exists check failed: 429 Too Many Requests",
        "repram_list_keys": "REPRAM list keys failed: 429 Too Many Requests",
    }
    args = {"repram_store": {"data": "x", "key": "rl:mcp"}, "repram_retrieve": {"key": "rl:mcp"},
            "repram_exists": {"key": "rl:mcp"}, "repram_list_keys": {}}

    async def go():
        async with session("--url", url) as s:
            for tool in expected:
                # Until the bucket is empty (a token refills each second).
                deadline = time.monotonic() + 20
                while True:
                    text, err = await call(s, tool, **args[tool])
                    if err:
                        break
                    assert time.monotonic() < deadline
                if tool == "repram_store":
                    assert json.loads(text) == json.loads(expected[tool])
                else:
                    assert text == expected[tool]
    asyncio.run(go())


def test_config_set_of_ttl_bounds_reaches_http_puts(make_server):
    node = make_server("--http-port", "-1", "--min-ttl", "300")
    port = http_port(node)
    r = node.client()

    def applied():
        st, h, _ = req(port, "PUT", "/v1/data/ttl:c", body=b"v", headers={"X-TTL": "100"})
        assert st == 201
        return h["x-original-ttl"]
    assert applied() == "300" and applied() == "300"      # the second from the cache
    r.config_set("min-ttl", "60")
    assert applied() == "100"
    r.config_set("default-ttl", "80")
    r.config_set("max-ttl", "90")
    assert applied() == "90" and 80 < r.ttl("ttl:c") <= 90
    st, h, _ = req(port, "PUT", "/v1/data/ttl:d", body=b"v")           # no TTL: default-ttl
    assert (st, h["x-original-ttl"]) == (201, "80")
    r.close()


# -- peers' HTTP ports in the handshake -------------------------------------------

def feed_all(data: bytes) -> list:
    return m.FrameReader(1 << 30).feed(data)


def test_handshake_carries_the_http_port_as_an_optional_last_field():
    plain = m.NodeInfo("n1", "run", "encl", "127.0.0.1", 17001, 7001)
    served = m.NodeInfo("n1", "run", "encl", "127.0.0.1", 17001, 7001, http_port=8080)
    for node, fields in ((plain, 11), (served, 12)):
        h = m.Hello(m.PROTO_VERSION, node, 1 << 29, b"n" * 16, 123)
        [f] = feed_all(m.encode_hello(h))
        assert len(f) == fields and m.decode_hello(f) == h     # no HTTP: the earlier layout
        w = m.Welcome(m.PROTO_VERSION, node, 5, b"w" * 16, b"proof", 1, 2, 3)
        [f] = feed_all(m.encode_welcome(w))
        assert len(f) == fields + 3 and m.decode_welcome(f) == w
    # Gossip keeps its layout (the port is learnt from each peer's own handshake).
    [f] = feed_all(m.encode_nodes([served]))
    assert len(f) == 1 + m.NODE_FIELDS and m.decode_nodes(f)[0].http_port == 0
    for bad in (-1, 65536, b"80"):
        [f] = feed_all(m.frame(m.HELLO, m.PROTO_VERSION, *plain.fields(), 5, b"n" * 16, 1, bad))
        with pytest.raises(m.MessageError):
            m.decode_hello(f)


def test_topology_of_a_peer_without_http_says_null(make_server):
    a, b = start_mesh(make_server, 2, per_node=lambda i: ["--http-port", "-1"] if i == 0 else [])
    topo = json.loads(req(http_port(a), "GET", "/v1/topology")[2])
    assert [(p["id"], p["http_port"], p["state"]) for p in topo["peers"]] == [("n2", None, "up")]


# -- HTTP connections in maxclients -------------------------------------------------

def test_http_connections_count_in_maxclients(make_server):
    import socket

    import redis

    node = make_server("--http-port", "-1", "--maxclients", "3")
    port = http_port(node)
    r1 = node.client()
    r1.ping()
    keep = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    keep.request("GET", "/v1/health")
    assert keep.getresponse().read().startswith(b'{"status": "healthy"')
    st, _, body = req(port, "GET", "/v1/status")            # the third connection
    conns = json.loads(body)["connections"]
    assert st == 200 and conns == {"http": 2, "resp": 1, "maxclients": 3, "http_maxclients": 10000}
    # (the status request's connection is gone once the server saw it close)
    wait_for(lambda: r1.info("clients")["http_connected_clients"] == 1, 10, "one HTTP connection")
    assert r1.info("clients")["connected_clients"] == 1
    # Full (1 RESP + 1 HTTP + this RESP one): the next HTTP connection gets a
    # 503 and is closed, the next RESP client Redis's error.
    r2 = node.client()
    r2.ping()
    st, h, body = req(port, "GET", "/v1/health")
    assert (st, body, h["connection"]) == (503, b"Too many connections (maxclients)\n", "close")
    with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
        assert s.recv(100) == b"-ERR max number of clients reached\r\n"
    rejected = r1.info("stats")["rejected_connections"]
    assert rejected == 2
    # An HTTP connection gone makes room for a RESP client, and back.
    keep.close()
    r3 = redis.Redis(port=node.port, socket_timeout=5)
    deadline = time.monotonic() + 10
    while True:
        try:
            assert r3.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    r3.close()
    r2.close()
    deadline = time.monotonic() + 10
    while req(port, "GET", "/v1/health")[0] != 200:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r1.close()
