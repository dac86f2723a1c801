"""REPRAM's seed patterns through the MCP tools, as an agent would call them
(docs/mcp.md), with the mcp SDK's own client over stdio.

    python examples/mcp_patterns.py                  # embedded node
    REPRAM_URL=http://127.0.0.1:8080 python examples/mcp_patterns.py

``patterns(call)`` takes ``call(tool, **arguments) -> text`` and returns what
each pattern observed; tests/test_http_mcp_examples.py runs it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys


async def patterns(call) -> dict:
    seen = {}
    # Dead drop: the key is derived from context both agents share.
    key = "handoff:" + hashlib.sha256(b"task-742\nagent-a\nagent-b").hexdigest()
    await call("repram_store", key=key, data='{"result": 42}', ttl_seconds=600)       # agent A
    seen["dead_drop"] = json.loads(await call("repram_retrieve", key=key))["data"]   # agent B

    # Heartbeat discovery: who is alive is a prefix listing.
    for worker in ("worker-1", "worker-2"):
        await call("repram_store", key="heartbeat:" + worker, data="alive", ttl_seconds=300)
    seen["alive"] = json.loads(await call("repram_list_keys", prefix="heartbeat:"))["keys"]

    # Lock (advisory): check, then take it for a bounded time.
    if not json.loads(await call("repram_exists", key="lock:report"))["exists"]:
        await call("repram_store", key="lock:report", data="agent-7", ttl_seconds=300)
    seen["lock_holder"] = json.loads(await call("repram_retrieve", key="lock:report"))["data"]

    # State machine: overwrites move the job on and restart its TTL.
    for state in ("queued", "in_progress", "complete"):
        await call("repram_store", key="state:job-9", data=state, ttl_seconds=600)
    seen["state"] = json.loads(await call("repram_retrieve", key="state:job-9"))["data"]
    seen["missing"] = await call("repram_retrieve", key="state:job-10")
    return seen


async def main() -> None:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    import os
    params = StdioServerParameters(command=sys.executable, args=["-m", "repram_resp.mcp"],
                                   env={k: v for k, v in os.environ.items()
                                        if k in ("PATH", "REPRAM_URL", "PYTHONPATH")})
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()

            async def call(tool, **arguments):
                return (await s.call_tool(tool, arguments)).content[0].text
            print(json.dumps(await patterns(call), indent=2))


if __name__ == "__main__":
    asyncio.run(main())
