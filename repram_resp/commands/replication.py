"""Replication commands: WAIT (REPRAM's quorum confirmation).

``WAIT numreplicas timeout`` blocks until every write this connection made
has been acknowledged by at least ``numreplicas`` live peers of the enclave,
or ``timeout`` ms pass (0 = forever), and answers the count reached either
way -- the client compares it with what it asked for (REPRAM's "201 vs 202").
Argument errors and their order are Redis's (``src/replication.c``); inside
MULTI/EXEC it never blocks.  A node without a cluster has no peers: it
answers 0, after the timeout if it was asked for more.
"""

from __future__ import annotations

import asyncio

from .. import errors
from ..protocol import ZERO, parse_ll
from . import command


@command("wait", 3, "", group="generic", summary="Wait for peers to acknowledge this "
         "connection's writes", since="3.0.0")
def cmd_wait(client, argv):
    want = parse_ll(argv[1])
    if want is None:
        return client.error(errors.NOT_INTEGER)
    timeout_ms = parse_ll(argv[2])
    if timeout_ms is None:
        return client.error(errors.TIMEOUT_NOT_INTEGER)
    if timeout_ms < 0:
        return client.error(errors.TIMEOUT_NEGATIVE)
    repl = client.server.replication
    if repl is not None:
        return repl.replicator.wait(client, want, timeout_ms)
    if want <= 0 or client.in_exec:
        return ZERO
    fut = asyncio.get_running_loop().create_future()
    if timeout_ms:
        handle = asyncio.get_running_loop().call_later(
            timeout_ms / 1000.0, lambda: fut.done() or fut.set_result(ZERO))
        fut.add_done_callback(lambda _f: handle.cancel())
    return fut
