"""The seed patterns over curl (examples/http_patterns.sh) and over the MCP
tools (examples/mcp_patterns.py) run against a real node, and the docs show
them verbatim; the curl dead drop lands on the same key as redis-py's."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
from pathlib import Path

from httpkit import http_port
from test_mcp import call, session

ROOT = Path(__file__).resolve().parent.parent
HANDOFF = "handoff:" + hashlib.sha256(b"task-742\nagent-a\nagent-b").hexdigest()


def test_curl_patterns(make_server):
    node = make_server("--http-port", "-1")
    script = ROOT / "examples" / "http_patterns.sh"
    res = subprocess.run(["bash", str(script)], capture_output=True, timeout=60,
                         env=dict(os.environ, BASE="http://127.0.0.1:%d" % http_port(node)))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.decode().splitlines()
    assert lines == ['OK', '{"result": 42}', 'OK', 'OK',
                     '{"keys":["heartbeat:worker-1","heartbeat:worker-2"]}',
                     'OK', 'agent-7', 'OK', 'OK', 'OK', 'complete', 'X-Original-TTL: 600']
    r = node.client()
    assert r.get(HANDOFF) == b'{"result": 42}'       # the same key redis-py would derive
    r.close()
    assert script.read_text() in (ROOT / "docs" / "http.md").read_text()


def test_mcp_patterns(make_server):
    import importlib.util
    spec = importlib.util.spec_from_file_location("mcp_patterns", ROOT / "examples" / "mcp_patterns.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    node = make_server("--http-port", "-1")

    async def go():
        async with session("--url", "http://127.0.0.1:%d" % http_port(node)) as s:
            return await mod.patterns(lambda tool, **a: _text(s, tool, a))
    seen = asyncio.run(go())
    assert seen == {"dead_drop": '{"result": 42}', "alive": ["heartbeat:worker-1", "heartbeat:worker-2"],
                    "lock_holder": "agent-7", "state": "complete",
                    "missing": "null \u2014 key not found or expired"}
    r = node.client()
    assert r.get(HANDOFF) == b'{"result": 42}' and 590 < r.ttl("state:job-9") <= 600
    r.close()
    src = (ROOT / "examples" / "mcp_patterns.py").read_text()
    body = src[src.index("async def patterns"):src.index("async def main")].strip()
    assert body in (ROOT / "docs" / "mcp.md").read_text()


async def _text(s, tool, arguments):
    text, err = await call(s, tool, **arguments)
    assert not err, text
    return text
