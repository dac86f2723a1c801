"""``repram-resp-mcp``: an MCP server with REPRAM's four tools
(reference/repram-http-and-mcp.md §3), on the official ``mcp`` SDK (2.x:
``MCPServer``), stdio transport by default.

Modes, as ``repram-mcp``'s:
* default: an **embedded node** -- a full repram-resp node in this process
  (RESP on an OS-chosen loopback port unless ``--port`` says otherwise; any
  ``--directive value`` of repram-resp is passed to it, e.g. ``--peers`` joins
  it to an enclave, ``--http-port`` also serves REPRAM's HTTP API);
* ``--url`` or ``REPRAM_URL`` (an explicit ``--url`` wins): a running node,
  ``redis://host:port`` over RESP or ``http://host:port`` over REPRAM's HTTP
  API (so REPRAM's own reference nodes work too).  No socket is opened until
  the first tool call.

Tool names, parameters, defaults (``ttl_seconds`` 3600, a UUID v4 key) and
result texts are repram-mcp's: ``json.dumps(result, indent=2)`` of the same
objects (JSON.stringify(result, null, 2)), ``null — key not found or
expired`` for a missing key, ``{"error":"Store failed with status N: <reason>"}``.
Beyond repram-mcp: failures are also flagged ``isError``; ``expires_at``
uses the TTL the node applied (clamped); ``repram_list_keys`` is sorted and
takes ``limit`` / ``cursor``; binary values survive: ``repram_store`` takes
``encoding: "base64"``, and ``repram_retrieve`` returns a value that is not
valid UTF-8 as base64 with ``"encoding": "base64"`` (UTF-8 text is returned
as is, so text round-trips exactly as with repram-mcp).
"""

# (no "from __future__ import annotations": the SDK evaluates the tools' annotations)

import argparse
import asyncio
import base64
import binascii
import datetime
import json
import logging
import math
import os
import sys
import uuid
from typing import Annotated, Literal

from .. import __version__
from .backends import BackendError, EmbeddedBackend, HttpBackend, RespBackend, StoreRefused

log = logging.getLogger("repram.mcp")

NOT_FOUND = "null \u2014 key not found or expired"
DEFAULT_TTL_S = 3600

STORE_DESCRIPTION = """Store ephemeral data in the REPRAM network. Data is replicated to peer nodes and automatically destroyed when its TTL expires; there is no delete.

Use deterministic keys for handoffs between agents (e.g. handoff:<hash>), prefixes for discovery (heartbeat:agent-7), and short TTLs for presence. Overwriting a key replaces its value and restarts its TTL.

The TTL is clamped into the node's bounds (300-86400 s on REPRAM's defaults); the returned expires_at reflects the TTL applied. Binary data can be sent base64-encoded with encoding "base64"."""
RETRIEVE_DESCRIPTION = ("Retrieve data from REPRAM by key. Returns the data with its creation time and "
                        "remaining TTL, or null if the key does not exist or has expired.")
EXISTS_DESCRIPTION = ("Check whether a key exists in REPRAM without retrieving its data. Returns the "
                      "remaining TTL if it exists.")
LIST_DESCRIPTION = ("List keys stored in REPRAM, sorted, optionally filtered by prefix (e.g. "
                    "heartbeat: to discover live agents). Pass limit and cursor (the next_cursor of "
                    "the previous page) to page through many keys.")


def iso_in(seconds: float) -> str:
    """new Date(Date.now() + s * 1000).toISOString()"""
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def _num(x: float):
    return int(x) if isinstance(x, float) and x.is_integer() else x


def ttl_to_seconds(ttl: float) -> int:
    """A whole number of seconds (>= 1) for the node; junk -> the default.
    The node then clamps it into its bounds."""
    if not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl <= 0:
        return DEFAULT_TTL_S
    return max(1, math.ceil(ttl))


def text(obj) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False)


def build(backend_factory, name: str = "repram-mcp"):
    """The MCPServer with the four tools over the backend backend_factory()
    returns (created on first use: in URL mode nothing connects before the
    first tool call)."""
    from mcp.server.mcpserver import MCPServer
    from mcp_types import CallToolResult, TextContent
    from pydantic import Field

    server = MCPServer(name, version=__version__, log_level="WARNING")
    state = {}

    def backend():
        b = state.get("b")
        if b is None:
            b = state["b"] = backend_factory()
        return b

    def result(s: str, error: bool = False) -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text=s)], is_error=error)

    def failure(what: str, e: Exception) -> CallToolResult:
        """A failed backend call as an MCP tool error: the node's status for a
        BackendError, the exception's text otherwise."""
        if isinstance(e, BackendError):
            return result("REPRAM %s failed: %d %s" % (what, e.status, e.reason), True)
        return result("REPRAM %s failed: %s" % (what, _why(e)), True)

    @server.tool(name="repram_store", description=STORE_DESCRIPTION, structured_output=False)
    async def repram_store(
        data: Annotated[str, Field(description="The data to store.")],
        ttl_seconds: Annotated[float, Field(
            description="Time-to-live in seconds (300-86400, default 3600).")] = DEFAULT_TTL_S,
        key: Annotated[str | None, Field(
            description="Optional custom key. If omitted, a UUID v4 is generated.")] = None,
        encoding: Annotated[Literal["utf8", "base64"], Field(
            description='How data is encoded: "utf8" (default) or "base64" for binary values.')] = "utf8",
    ) -> CallToolResult:
        k = key if key is not None else str(uuid.uuid4())
        if encoding == "base64":
            try:
                value = base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError):
                return result("REPRAM store failed: data is not valid base64", True)
        else:
            value = data.encode("utf-8", "surrogatepass")
        try:
            applied = await backend().store(k.encode("utf-8", "surrogateescape"), value,
                                            ttl_to_seconds(ttl_seconds))
        except StoreRefused as e:
            return result(json.dumps({"error": "Store failed with status %d: %s" % (e.status, e.reason)},
                                     ensure_ascii=False), True)
        except Exception as e:
            return result("REPRAM store failed: %s" % _why(e), True)
        return result(text({"key": k, "ttl_seconds": _num(ttl_seconds), "expires_at": iso_in(applied)}))

    @server.tool(name="repram_retrieve", description=RETRIEVE_DESCRIPTION, structured_output=False)
    async def repram_retrieve(
        key: Annotated[str, Field(description="The key to retrieve.")],
    ) -> CallToolResult:
        try:
            got = await backend().retrieve(key.encode("utf-8", "surrogateescape"))
        except Exception as e:
            return failure("retrieve", e)
        if got is None:
            return result(NOT_FOUND)
        value, created_at, remaining = got
        out = {}
        try:
            out["data"] = value.decode("utf-8")
        except UnicodeDecodeError:
            out["data"] = base64.b64encode(value).decode("ascii")
            out["encoding"] = "base64"
        out.update(created_at=created_at, remaining_ttl_seconds=remaining,
                   expires_at=iso_in(remaining))
        return result(text(out))

    @server.tool(name="repram_exists", description=EXISTS_DESCRIPTION, structured_output=False)
    async def repram_exists(
        key: Annotated[str, Field(description="The key to check.")],
    ) -> CallToolResult:
        try:
            remaining = await backend().exists(key.encode("utf-8", "surrogateescape"))
        except Exception as e:
            return failure("exists check", e)
        if remaining is None:
            return result(text({"exists": False}))
        return result(text({"exists": True, "remaining_ttl_seconds": remaining,
                            "expires_at": iso_in(remaining)}))

    @server.tool(name="repram_list_keys", description=LIST_DESCRIPTION, structured_output=False)
    async def repram_list_keys(
        prefix: Annotated[str | None, Field(
            description="Optional prefix filter for key namespacing.")] = None,
        limit: Annotated[int | None, Field(
            description="Optional page size; the result then has next_cursor while more keys remain.",
            gt=0)] = None,
        cursor: Annotated[str | None, Field(
            description="Return keys after this one (the next_cursor of the previous page).")] = None,
    ) -> CallToolResult:
        try:
            res = await backend().list_keys((prefix or "").encode("utf-8", "surrogateescape"), limit,
                                            cursor.encode("utf-8", "surrogateescape") if cursor else None)
        except Exception as e:
            return failure("list keys", e)
        return result(text(res))

    server.repram_state = state
    return server


def _why(e: Exception) -> str:
    return str(e) or type(e).__name__


# -- command line -------------------------------------------------------------------------

USAGE_EPILOG = """Any other --directive value is passed to the embedded node (see conf/repram.conf),
e.g. --peers 127.0.0.1:17001 --enclave agents --http-port 8080."""


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="repram-resp-mcp", epilog=USAGE_EPILOG,
                                 description="MCP server with REPRAM's tools (repram_store, "
                                             "repram_retrieve, repram_exists, repram_list_keys).")
    ap.add_argument("--url", help="use a running node: redis://host:port or http://host:port "
                                  "(default: $REPRAM_URL; empty = embedded node)")
    ap.add_argument("--transport", choices=("stdio", "streamable-http"), default="stdio")
    ap.add_argument("--mcp-host", default="127.0.0.1", help="streamable-http: listen address")
    ap.add_argument("--mcp-port", type=int, default=8000, help="streamable-http: listen port")
    ap.add_argument("--max-value-bytes", type=int, default=None,
                    help="value limit over RESP (default 10 MiB, as REPRAM's HTTP body limit)")
    ap.add_argument("--version", action="version", version="repram-resp-mcp %s" % __version__)
    return ap.parse_known_args(argv)


def _backend_for(url: str, max_value_bytes):
    if url.startswith(("redis://", "rediss://", "unix://")):
        from .backends import MAX_VALUE_BYTES
        return lambda: RespBackend(url, max_value_bytes or MAX_VALUE_BYTES)
    if url.startswith(("http://", "https://")):
        HttpBackend(url)        # validate now: a bad URL is a startup error
        return lambda: HttpBackend(url)
    raise SystemExit("repram-resp-mcp: --url must start with redis:// or http:// (got %r)" % url)


async def _serve(mcp, args) -> None:
    if args.transport == "stdio":
        await mcp.run_stdio_async()
    else:
        await mcp.run_streamable_http_async(host=args.mcp_host, port=args.mcp_port)


async def _run_embedded(node_argv, args) -> None:
    from ..config import ConfigError, load
    from ..server import Server
    try:
        cfg = load(["--port", "0", "--bind", "127.0.0.1", "--loglevel", "warning", *node_argv])
    except ConfigError as e:
        raise SystemExit("repram-resp-mcp: %s" % e) from None
    _setup_logging(cfg)
    node = Server(cfg)
    await node.start()
    try:
        mcp = build(lambda: EmbeddedBackend(node))
        await _serve(mcp, args)
    finally:
        await node.stop()


def _setup_logging(cfg) -> None:
    # stdout is the MCP channel: every log line goes to stderr (or logfile).
    from ..cli import _setup_logging as setup
    setup(cfg)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, node_argv = parse_args(argv)
    url = args.url if args.url is not None else os.environ.get("REPRAM_URL", "")
    try:
        import mcp  # noqa: F401
    except ImportError:
        print("repram-resp-mcp: the mcp SDK is missing: pip install 'repram-resp[mcp]'", file=sys.stderr)
        return 1
    if url:
        if node_argv:
            print("repram-resp-mcp: node directives (%s) need the embedded mode, not --url"
                  % " ".join(node_argv), file=sys.stderr)
            return 1
        factory = _backend_for(url, args.max_value_bytes)
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        asyncio.run(_serve(build(factory), args))
    else:
        asyncio.run(_run_embedded(node_argv, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
