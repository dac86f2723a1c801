"""The MCP server (repram-resp-mcp, issue 9 part 3) driven over stdio by the
official mcp SDK's own client, in its three modes -- embedded node (also
joined to a cluster with --peers), --url redis://, --url http:// -- with
every tool, REPRAM's result texts and the error cases, and the writes read
back over RESP on the node behind it."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import re
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis

from clusterkit import FAST, seed_of, wait_for
from rawresp import free_port

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
NOT_FOUND = "null \u2014 key not found or expired"


@asynccontextmanager
async def session(*args, env=None, errlog=None):
    params = StdioServerParameters(command=sys.executable, args=["-m", "repram_resp.mcp", *args],
                                   cwd=str(ROOT), env={"PATH": os.environ.get("PATH", ""), **(env or {})})
    kw = {"errlog": errlog} if errlog is not None else {}
    async with stdio_client(params, **kw) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            yield s


async def call(s, tool, **arguments):
    res = await s.call_tool(tool, arguments)
    assert len(res.content) == 1 and res.content[0].type == "text"
    return res.content[0].text, bool(res.is_error)


def seconds_until(iso: str) -> float:
    t = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return t.timestamp() - time.time()


async def exercise(s, resp: redis.Redis, created_at: bool = True):
    """Every tool and error case; resp reads the same node over RESP."""
    tools = {t.name: t for t in (await s.list_tools()).tools}
    assert sorted(tools) == ["repram_exists", "repram_list_keys", "repram_retrieve", "repram_store"]
    st = tools["repram_store"].input_schema
    assert st["required"] == ["data"] and st["properties"]["ttl_seconds"]["type"] == "number"
    assert st["properties"]["ttl_seconds"]["default"] == 3600
    assert tools["repram_retrieve"].input_schema["required"] == ["key"]

    text, err = await call(s, "repram_store", data="hello agents", key="mcp:a", ttl_seconds=600)
    assert not err
    out = json.loads(text)
    assert list(out) == ["key", "ttl_seconds", "expires_at"]
    assert out["key"] == "mcp:a" and out["ttl_seconds"] == 600
    assert text == json.dumps(out, indent=2)                          # JSON.stringify(r, null, 2)
    assert 590 < seconds_until(out["expires_at"]) <= 601
    assert resp.get("mcp:a") == b"hello agents" and 590 < resp.ttl("mcp:a") <= 600

    text, err = await call(s, "repram_retrieve", key="mcp:a")
    got = json.loads(text)
    assert not err and list(got) == ["data", "created_at", "remaining_ttl_seconds", "expires_at"]
    assert got["data"] == "hello agents" and 590 < got["remaining_ttl_seconds"] <= 600
    if created_at:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z", got["created_at"])
    assert await call(s, "repram_retrieve", key="mcp:none") == (NOT_FOUND, False)

    # No key: a UUID v4; no TTL: 3600.  A RESP write is read by the tools.
    text, _ = await call(s, "repram_store", data="x")
    out = json.loads(text)
    assert uuid.UUID(out["key"]).version == 4 and out["ttl_seconds"] == 3600
    assert 3590 < resp.ttl(out["key"]) <= 3600
    resp.set("mcp:from-resp", "r", ex=900)
    assert json.loads((await call(s, "repram_retrieve", key="mcp:from-resp"))[0])["data"] == "r"

    # The TTL applied is clamped into the node's bounds (min-ttl 300 here);
    # expires_at says so, ttl_seconds echoes the request (as repram-mcp).
    text, _ = await call(s, "repram_store", data="short", key="mcp:short", ttl_seconds=5)
    out = json.loads(text)
    assert out["ttl_seconds"] == 5 and 290 < seconds_until(out["expires_at"]) <= 301
    assert 290 < resp.ttl("mcp:short") <= 300

    text, err = await call(s, "repram_exists", key="mcp:a")
    ex = json.loads(text)
    assert not err and ex["exists"] is True and 590 < ex["remaining_ttl_seconds"] <= 600
    assert await call(s, "repram_exists", key="mcp:none") == (json.dumps({"exists": False}, indent=2), False)

    for k in ("hb:c", "hb:a", "hb:b"):
        await call(s, "repram_store", data="alive", key=k, ttl_seconds=600)
    text, _ = await call(s, "repram_list_keys", prefix="hb:")
    assert json.loads(text) == {"keys": ["hb:a", "hb:b", "hb:c"]}
    page = json.loads((await call(s, "repram_list_keys", prefix="hb:", limit=2))[0])
    assert page == {"keys": ["hb:a", "hb:b"], "next_cursor": "hb:b"}
    page = json.loads((await call(s, "repram_list_keys", prefix="hb:", limit=2, cursor="hb:b"))[0])
    assert page == {"keys": ["hb:c"]}
    assert "mcp:a" in json.loads((await call(s, "repram_list_keys"))[0])["keys"]

    # Binary values round-trip as base64; text stays text.
    blob = b"\x00\xff\xfe\x80binary"
    await call(s, "repram_store", data=base64.b64encode(blob).decode(), key="mcp:bin", encoding="base64")
    assert resp.get("mcp:bin") == blob
    got = json.loads((await call(s, "repram_retrieve", key="mcp:bin"))[0])
    assert got["encoding"] == "base64" and base64.b64decode(got["data"]) == blob
    await call(s, "repram_store", data="caf\u00e9 \u2615", key="mcp:utf8")
    assert resp.get("mcp:utf8") == "caf\u00e9 \u2615".encode()
    assert json.loads((await call(s, "repram_retrieve", key="mcp:utf8"))[0])["data"] == "caf\u00e9 \u2615"

    # Errors: over the value limit (1000 bytes here) in every mode, bad input, unknown tool.
    text, err = await call(s, "repram_store", data="x" * 1001, key="mcp:big")
    assert err and json.loads(text) == {"error": "Store failed with status 413: Payload Too Large"}
    assert resp.get("mcp:big") is None
    text, err = await call(s, "repram_store", ttl_seconds=10)
    assert err and "data" in text
    res = await s.call_tool("repram_nope", {})
    assert res.is_error


def run(coro):
    return asyncio.run(coro)


# -- modes ---------------------------------------------------------------------------------

def test_url_redis_mode(make_server):
    node = make_server("--min-ttl", "300")
    r = node.client()

    async def go():
        # An explicit --url wins over REPRAM_URL.
        async with session("--url", "redis://127.0.0.1:%d" % node.port, "--max-value-bytes", "1000",
                           env={"REPRAM_URL": "http://127.0.0.1:1"}) as s:
            await exercise(s, r, created_at=False)
    run(go())
    r.close()


def test_url_http_mode_and_failures(make_server):
    node = make_server("--min-ttl", "300", "--http-port", "-1", "--http-max-body-bytes", "1000")
    r = node.client()

    async def go():
        async with session(env={"REPRAM_URL": "http://127.0.0.1:%d" % node.server.http.port}) as s:
            await exercise(s, r)
        # An unreachable node: every tool fails as an MCP tool error.
        async with session("--url", "http://127.0.0.1:%d" % free_port()) as s:
            for tool, args in (("repram_store", {"data": "x"}), ("repram_retrieve", {"key": "k"}),
                               ("repram_exists", {"key": "k"}), ("repram_list_keys", {})):
                text, err = await call(s, tool, **args)
                assert err and text.startswith("REPRAM ")
    run(go())
    r.close()


def test_store_full_is_507_in_both_url_modes(make_server):
    node = make_server("--http-port", "-1", "--maxmemory", "20kb")
    expected = {"error": "Store failed with status 507: Insufficient Storage"}

    async def go():
        for url in ("redis://127.0.0.1:%d" % node.port, "http://127.0.0.1:%d" % node.server.http.port):
            async with session("--url", url) as s:
                text, err = await call(s, "repram_store", data="y" * 30_000, key="full")
                assert err and json.loads(text) == expected
    run(go())


def test_embedded_node_joins_an_enclave(make_server, tmp_path):
    seed = make_server(*FAST, "--node-id", "seed", "--cluster-port", str(free_port()))
    r = seed.client()
    log = tmp_path / "mcp.log"

    async def go():
        with open(log, "w") as errlog:
            async with session("--peers", seed_of(seed), "--node-id", "mcp-node", "--min-ttl", "300",
                               "--http-max-body-bytes", "1000", "--loglevel", "notice", *FAST,
                               errlog=errlog) as s:
                port = int(re.search(r"ready on \S+ port (\d+)", log.read_text()).group(1))
                own = redis.Redis(port=port)
                wait_for(lambda: r.info("replication")["enclave_size"] == 2, 10, "the MCP node to join")
                await exercise(s, own)
                # Written through the tools, replicated to the seed node.
                wait_for(lambda: r.get("mcp:a") == b"hello agents", 5, "the MCP write on the seed")
                r.set("from-seed", "s", ex=600)
                wait_for(lambda: own.get("from-seed") == b"s", 5, "the seed's write on the MCP node")
                text, _ = await call(s, "repram_retrieve", key="from-seed")
                assert json.loads(text)["data"] == "s"
                own.close()
    run(go())
    r.close()
