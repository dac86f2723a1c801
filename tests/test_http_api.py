"""REPRAM's HTTP API (reference/repram-http-and-mcp.md §2) on one node, driven
by the stdlib http.client and by curl, checked against RESP on the same node:
every endpoint, status and header, TTL rules and clamping, keys with '/' and
escaped bytes, /v1/keys paging (over 10,000 keys), CORS, auth, 507, and
cross-protocol writes with keyspace notifications."""

from __future__ import annotations

import datetime
import json
import re
import time

import pytest
import redis

from conftest import ThreadedServer
from httpkit import curl, http_port, raw_exchange, req

SECURITY = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
            "content-security-policy": "default-src 'self'"}


@pytest.fixture(scope="module")
def node():
    # REPRAM's own TTL bounds, so clamping shows on both ends.
    s = ThreadedServer(["--http-port", "-1", "--min-ttl", "300", "--max-ttl", "86400",
                        "--notify-keyspace-events", "E$"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def port(node):
    return http_port(node)


@pytest.fixture
def r(node):
    c = node.client()
    yield c
    c.close()


def put(port, key_path, body=b"v", headers=None, query=""):
    return req(port, "PUT", "/v1/data/" + key_path + query, body=body, headers=headers or {})


# -- data ------------------------------------------------------------------------

def test_put_get_head_with_metadata_headers(port, r):
    before = time.time()
    st, h, body = put(port, "meta:one", b"payload", {"X-TTL": "600", "Content-Type": "text/x"})
    assert (st, body) == (201, b"OK\n")
    assert h["x-original-ttl"] == "600"
    st, h, body = req(port, "GET", "/v1/data/meta:one")
    assert st == 200 and body == b"payload"
    assert h["content-type"] == "application/octet-stream" and h["content-length"] == "7"
    assert h["x-original-ttl"] == "600"
    assert h["x-remaining-ttl"] in ("599", "600")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", h["x-created-at"])
    created = datetime.datetime.fromisoformat(h["x-created-at"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= created <= time.time() + 1
    for k, v in SECURITY.items():
        assert h[k] == v
    assert h["x-repram-node"].startswith("repram-resp/")
    st, hh, body = req(port, "HEAD", "/v1/data/meta:one")
    assert st == 200 and body == b"" and hh["content-length"] == "7"
    assert hh["x-original-ttl"] == "600" and hh["x-created-at"] == h["x-created-at"]
    # The same write as SET ... PX: visible to RESP with its TTL.
    assert r.get("meta:one") == b"payload"
    assert 599 <= r.ttl("meta:one") <= 600


def test_missing_key_is_404_with_empty_body(port):
    assert req(port, "GET", "/v1/data/meta:nope")[0::2] == (404, b"")
    assert req(port, "HEAD", "/v1/data/meta:nope")[0] == 404
    assert req(port, "GET", "/v1/data/")[0] == 404          # the empty key is not routable


def test_empty_value_and_overwrite_resets_ttl(port, r):
    assert put(port, "ow:k", b"", {"X-TTL": "900"})[0] == 201
    st, h, body = req(port, "GET", "/v1/data/ow:k")
    assert (st, body, h["content-length"]) == (200, b"", "0")
    assert put(port, "ow:k", b"v2", {"X-TTL": "400"})[0] == 201
    st, h, body = req(port, "GET", "/v1/data/ow:k")
    assert body == b"v2" and h["x-original-ttl"] == "400" and r.ttl("ow:k") <= 400


@pytest.mark.parametrize("query,header,applied", [
    ("?ttl=700", "900", 700),          # ?ttl wins over X-TTL
    ("?ttl=junk", "900", 3600),        # invalid ?ttl: the header is ignored, default applies
    ("", "10s", 3600),                 # Go Atoi: junk -> default
    ("", "1.5", 3600),
    ("", "0", 3600),                   # <= 0 -> default, not the minimum
    ("", "-100", 3600),
    ("", "1", 300),                    # clamped up to min-ttl
    ("?ttl=999999", None, 86400),      # clamped down to max-ttl
    ("?ttl=99999999999999999999", None, 3600),   # beyond int64: junk
    ("", None, 3600),                  # no TTL at all
    ("?ttl=%2B650", None, 650),        # '+650' (escaped), as Atoi reads it
])
def test_ttl_rules_and_clamping(port, r, query, header, applied):
    path = "ttl:" + str(abs(hash((query, header))))
    st, h, _ = put(port, path, b"x", {"X-TTL": header} if header is not None else {}, query)
    assert st == 201
    assert h["x-original-ttl"] == str(applied)
    assert req(port, "GET", "/v1/data/" + path)[1]["x-original-ttl"] == str(applied)
    assert applied - 1 <= r.ttl(path) <= applied


def test_keys_with_slashes_and_escaped_bytes(port, r):
    assert put(port, "dir/sub/leaf", b"1")[0] == 201
    assert req(port, "GET", "/v1/data/dir%2Fsub%2Fleaf")[2] == b"1"     # %2F is a '/'
    assert put(port, "bin%00%FF%20x%25", b"2")[0] == 201
    assert r.get(b"bin\x00\xff x%") == b"2"
    r.set(b"resp \xe2\x82\xac/key", b"3", ex=600)
    assert req(port, "GET", "/v1/data/resp%20%E2%82%AC/key")[2] == b"3"
    assert req(port, "GET", "/v1/data/a+b")[0] == 404                    # '+' is literal in a path
    r.set("a+b", "plus", ex=600)
    assert req(port, "GET", "/v1/data/a+b")[2] == b"plus"


@pytest.mark.parametrize("bad", ["%zz", "%4", "abc%", "%%41", "x%g1y"])
def test_malformed_escape_is_400_and_node_keeps_serving(port, bad):
    st, _, body = req(port, "GET", "/v1/data/" + bad)
    assert st == 400 and b"percent-escape" in body
    assert put(port, bad, b"x")[0] == 400
    assert req(port, "GET", "/v1/keys?prefix=" + bad)[0] == 400
    assert req(port, "GET", "/v1/health")[0] == 200


def test_delete_and_other_methods(port):
    st, h, body = req(port, "DELETE", "/v1/data/meta:one")
    assert st == 405 and "PUT" in h["allow"] and b"no deletion" in body
    assert req(port, "POST", "/v1/data/x", body=b"1")[0] == 405
    assert req(port, "POST", "/v1/health", body=b"")[0] == 405
    assert req(port, "GET", "/v1/nothing")[0] == 404
    assert req(port, "POST", "/v1/gossip/message", body=b"{}")[0] == 404   # peers use the cluster port


# -- listing -------------------------------------------------------------------------

def keys(port, query=""):
    st, h, body = req(port, "GET", "/v1/keys" + query)
    assert st == 200 and h["content-type"] == "application/json"
    return json.loads(body)


def test_keys_sorted_prefix_and_paging(port):
    for k in ("pg:cherry", "pg:apple", "pg:banana"):
        assert put(port, k)[0] == 201
    assert keys(port, "?prefix=pg:") == {"keys": ["pg:apple", "pg:banana", "pg:cherry"]}
    for i in range(10):
        put(port, "pg10:%02d" % i)
    pages, cursor = [], None
    while True:
        q = "?prefix=pg10:&limit=3" + ("&cursor=" + cursor if cursor else "")
        page = keys(port, q)
        pages.append(page["keys"])
        cursor = page.get("next_cursor")
        if cursor is None:
            break
        assert cursor == page["keys"][-1]
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert sum(pages, []) == ["pg10:%02d" % i for i in range(10)]
    # An exactly full last page has no next_cursor; a cursor need not exist.
    assert keys(port, "?prefix=pg10:&limit=5&cursor=pg10:04") == {"keys": ["pg10:%02d" % i for i in range(5, 10)]}
    assert keys(port, "?prefix=pg10:&cursor=pg10:055") == {"keys": ["pg10:%02d" % i for i in range(6, 10)]}
    # An invalid limit is ignored; an empty result is [] (as the TS node).
    assert len(keys(port, "?prefix=pg10:&limit=zero")["keys"]) == 10
    assert len(keys(port, "?prefix=pg10:&limit=-1")["keys"]) == 10
    assert keys(port, "?prefix=nothing-here:") == {"keys": []}
    assert keys(port, "?prefix=pg10%3A&limit=100") == {"keys": ["pg10:%02d" % i for i in range(10)]}


def test_keys_paging_over_10000_keys_and_streamed_listing(port, r):
    names = ["big:%05d" % i for i in range(10_050)]
    p = r.pipeline(transaction=False)
    for i in range(0, len(names), 1000):
        p.mset({k: "v" for k in names[i:i + 1000]})
    p.execute()
    got, cursor, calls = [], None, 0
    while True:
        page = keys(port, "?prefix=big:&limit=1000" + ("&cursor=" + cursor if cursor else ""))
        calls += 1
        got += page["keys"]
        cursor = page.get("next_cursor")
        if cursor is None:
            break
    assert got == names and calls == 11
    # No limit: everything, sent in chunks (chunked transfer-encoding).
    st, h, body = req(port, "GET", "/v1/keys?prefix=big:")
    assert h.get("transfer-encoding") == "chunked"
    assert json.loads(body)["keys"] == names
    # HTTP/1.0 has no chunked encoding: the listing ends with the connection.
    raw = raw_exchange(port, b"GET /v1/keys?prefix=big: HTTP/1.0\r\n\r\n", timeout=10)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in head and json.loads(body)["keys"] == names
    res = curl("http://127.0.0.1:%d/v1/keys?prefix=big:&limit=2&cursor=big:10047" % port)
    assert json.loads(res.stdout) == {"keys": ["big:10048", "big:10049"]}


def test_listing_skips_expired_keys(make_server):
    node = make_server("--http-port", "-1", "--min-ttl", "0")
    port = http_port(node)
    c = node.client()
    c.set("exp:a", "1", ex=600)
    c.set("exp:b", "1", px=30)
    c.set("exp:c", "1", ex=600)
    deadline = time.monotonic() + 5
    while c.exists("exp:b") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keys(port, "?prefix=exp:") == {"keys": ["exp:a", "exp:c"]}
    assert req(port, "GET", "/v1/data/exp:b")[0] == 404
    c.close()


# -- node information ------------------------------------------------------------------

def test_health_status_topology_metrics(node, port):
    st, _, body = req(port, "GET", "/v1/health")
    health = json.loads(body)
    assert st == 200 and health["status"] == "healthy" and health["node_id"] == node.server.node_id
    assert health["enclave"] == "default" and "network" in health
    status = json.loads(req(port, "GET", "/v1/status")[2])
    assert status["memory"]["rss"] > 0 and status["uptime"].endswith("s")
    assert status["keys"] >= 1 and status["quorum"] == 1 and status["peers"] == []
    topo = json.loads(req(port, "GET", "/v1/topology")[2])
    assert topo == {"node_id": node.server.node_id, "enclave": "default", "peers": []}
    st, h, body = req(port, "GET", "/v1/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples["repram_keys"] >= 1
    assert samples['repram_http_responses_total{code="201"}'] >= 1
    assert samples['repram_http_responses_total{code="404"}'] >= 1
    assert samples["repram_quorum"] == 1 and samples["repram_enclave_size"] == 1
    assert "repram_expired_keys_total" in samples and "repram_used_memory_bytes" in samples
    assert 'repram_peers{state="up"}' in samples


# -- CORS, auth, capacity ----------------------------------------------------------------

def test_cors_preflight_and_reflected_origin(port):
    st, h, body = req(port, "OPTIONS", "/v1/data/anything",
                      headers={"Origin": "https://agent.example", "Access-Control-Request-Method": "PUT"})
    assert st == 200 and body == b""
    assert h["access-control-allow-origin"] == "https://agent.example"
    assert "PUT" in h["access-control-allow-methods"]
    assert h["access-control-allow-headers"].startswith("Content-Type, X-TTL")
    assert h["access-control-max-age"] == "3600"
    assert req(port, "OPTIONS", "*")[0] == 200
    st, h, _ = req(port, "GET", "/v1/health", headers={"Origin": "http://x.test"})
    assert h["access-control-allow-origin"] == "http://x.test"
    assert "X-Remaining-TTL" in h["access-control-expose-headers"]


def test_requirepass_is_a_bearer_token(make_server):
    node = make_server("--http-port", "-1", "--requirepass", "s3cret")
    port = http_port(node)
    st, h, _ = req(port, "PUT", "/v1/data/auth:k", body=b"v")
    assert st == 401 and h["www-authenticate"].startswith("Bearer")
    assert req(port, "GET", "/v1/keys")[0] == 401
    assert req(port, "GET", "/v1/data/auth:k", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert req(port, "PUT", "/v1/data/auth:k", body=b"v", headers={"Authorization": "Bearer s3cret"})[0] == 201
    assert req(port, "GET", "/v1/data/auth:k", headers={"Authorization": "bearer s3cret"})[2] == b"v"
    assert req(port, "OPTIONS", "/v1/data/auth:k")[0] == 200      # preflights carry no credentials


def test_store_full_is_507_and_nothing_changes(make_server):
    node = make_server("--http-port", "-1", "--maxmemory", "20kb")
    port = http_port(node)
    assert put(port, "full:a", b"x" * 100)[0] == 201
    st, _, body = put(port, "full:b", b"x" * 30_000)
    assert st == 507 and body == b"Node storage capacity exceeded\n"
    assert req(port, "GET", "/v1/data/full:b")[0] == 404
    assert req(port, "GET", "/v1/data/full:a")[2] == b"x" * 100


# -- cross-protocol ----------------------------------------------------------------------

def test_http_write_is_a_resp_write_with_notification(node, port, r):
    p = r.pubsub()
    p.subscribe("__keyevent@0__:set")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert put(port, "xp:from-http", b"h")[0] == 201
    m = p.get_message(timeout=5)
    assert m["channel"] == b"__keyevent@0__:set" and m["data"] == b"xp:from-http"
    p.close()
    assert r.get("xp:from-http") == b"h"
    assert list(r.scan_iter(match="xp:*")) == [b"xp:from-http"]
    r.set("xp:from-resp", b"\x00bin\xff", ex=1200)
    st, h, body = req(port, "GET", "/v1/data/xp:from-resp")
    assert body == b"\x00bin\xff" and h["x-original-ttl"] == "1200"
    assert keys(port, "?prefix=xp:") == {"keys": ["xp:from-http", "xp:from-resp"]}


# -- curl, every endpoint ----------------------------------------------------------------------

def test_curl_recipes(port, tmp_path):
    base = "http://127.0.0.1:%d" % port
    res = curl("-i", "-X", "PUT", "-H", "X-TTL: 600", "--data-binary", "hello", base + "/v1/data/curl:a/b")
    assert res.stdout.startswith(b"HTTP/1.1 201 ")
    res = curl("-i", base + "/v1/data/curl:a%2Fb")
    head, _, body = res.stdout.partition(b"\r\n\r\n")
    assert body == b"hello" and b"X-Original-TTL: 600" in head and b"X-Remaining-TTL: " in head
    res = curl("-I", base + "/v1/data/curl:a/b")
    assert res.stdout.startswith(b"HTTP/1.1 200 ") and b"Content-Length: 5" in res.stdout
    res = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", base + "/v1/data/curl:none")
    assert res.stdout == b"404"
    assert json.loads(curl(base + "/v1/keys?prefix=curl:").stdout) == {"keys": ["curl:a/b"]}
    assert json.loads(curl(base + "/v1/health").stdout)["status"] == "healthy"
    assert b"rss" in curl(base + "/v1/status").stdout
    assert b"peers" in curl(base + "/v1/topology").stdout
    assert b"# TYPE repram_keys gauge" in curl(base + "/v1/metrics").stdout
    res = curl("-i", "-X", "OPTIONS", "-H", "Origin: http://o.test", base + "/v1/data/x")
    assert b"Access-Control-Allow-Origin: http://o.test" in res.stdout
    res = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", base + "/v1/data/curl:a/b")
    assert res.stdout == b"405"
    # The largest value REPRAM takes (10 MiB; curl sends Expect: 100-continue),
    # and one byte more.
    big = tmp_path / "big"
    big.write_bytes(b"\xab" * (10 << 20))
    res = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary",
               "@%s" % big, base + "/v1/data/curl:big")
    assert res.stdout == b"201"
    assert curl(base + "/v1/data/curl:big").stdout == b"\xab" * (10 << 20)
    over = tmp_path / "over"
    over.write_bytes(b"x" * (10 * 1024 * 1024 + 1))
    res = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data-binary",
               "@%s" % over, base + "/v1/data/curl:over")
    assert res.stdout == b"413"
    res = curl("-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H", "Transfer-Encoding: chunked",
               "--data-binary", "@%s" % over, base + "/v1/data/curl:over")
    assert res.stdout == b"413"
    assert req(port, "GET", "/v1/data/curl:over")[0] == 404


def test_http_write_invalidates_tracked_keys(node, port):
    from rawresp import Raw
    c = Raw(node.port)
    assert c.cmd("HELLO", "3").startswith(b"%")
    assert c.cmd("CLIENT", "TRACKING", "ON") == b"+OK\r\n"
    node.client().set("track:k", "old", ex=600)
    assert c.cmd("GET", "track:k") == b"$3\r\nold\r\n"
    assert put(port, "track:k", b"new")[0] == 201
    assert c.read() == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$7\r\ntrack:k\r\n"
    c.close()
