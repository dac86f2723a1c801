"""The one local write path: every surface that stores a value goes through it.

``local_write`` is what ``SET`` does (commands/strings.py), what the REPRAM
HTTP API's ``PUT /v1/data/{key}`` does (http/api.py) and what the MCP server's
``repram_store`` does in embedded mode: refuse while ``min-replicas-to-write``
is unmet, store with a fresh local HLC version under ``maxmemory``, then run
the write hooks (keyspace notifications, the replication stream, and whatever
the keyspace itself hooks on ``put``).  So a write is the same write whichever
protocol carried it: replicated, versioned, visible everywhere.

(``SET key value EX|PX n``'s fast path in strings.py inlines these lines for
speed; it must stay equivalent.)
"""

from __future__ import annotations

from . import errors
from .keyspace import OutOfMemory


def local_write(server, writer, key: bytes, value: bytes, deadline: int, now: int,
                ttl_given: bool = True, event: bytes | None = None) -> str | None:
    """Store one local write.  Returns None, or the error text (Redis wording)
    when the write is refused: NOREPLICAS or OOM.  ``writer`` is whoever WAIT
    counts the write for (a RESP client, or an HTTP request's writer).
    ``ttl_given``: the write named its TTL (every REPRAM PUT does; a SET
    without EX/PX does not), so Redis's 'expire' event is published too.
    ``event``: the generic keyspace event Redis publishes instead of those
    two (``restore`` for RESTORE)."""
    if server.write_refusal is not None:
        return server.write_refusal
    try:
        server.keyspace.put(key, value, deadline, None, now)   # None: stamp a local version
    except OutOfMemory:
        return errors.OOM
    if server.write_hooks:
        server.wrote(writer, key, ttl_given, event)
    return None
