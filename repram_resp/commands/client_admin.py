"""CLIENT PAUSE / UNPAUSE / UNBLOCK / REPLY: one small handler each,
registered in ``connection.CLIENT_HANDLERS`` (``CLIENT`` dispatches there
after its arity check).

* PAUSE timeout-ms [WRITE|ALL]: while it holds, every client's gate is set;
  a held command waits (its batch pauses, reading stops) and runs when the
  pause ends, in arrival order.  ALL holds every command (the caller's too,
  as in Redis, so only the timeout ends it); WRITE holds writes, PUBLISH and
  WAIT.  A second PAUSE keeps the later end and the stricter mode.  Keys go
  on expiring during a pause: a REPRAM TTL is a promise to the writer.
* UNBLOCK id [TIMEOUT|ERROR] ends a blocked WAIT (TIMEOUT: the count it has
  reached; ERROR: ``-UNBLOCKED``); a paused command cannot be unblocked.
* REPLY ON|OFF|SKIP drops this client's replies (pushes still arrive).
"""

from __future__ import annotations

import asyncio
import time

from .. import errors
from ..protocol import OK, ZERO, encode_error, integer, parse_ll
from .connection import _CLIENT_ARITY, CLIENT_HANDLERS

_WRITE_ALSO = frozenset({"publish", "spublish", "wait"})
UNBLOCKED = "UNBLOCKED client unblocked via CLIENT UNBLOCK"


class Pause:
    def __init__(self, server, until: float, write_only: bool):
        self.server = server
        self.until = until            # time.monotonic() seconds
        self.write_only = write_only
        self.waiting: list = []       # (client, argv, future) in arrival order
        self.handle = None
        self._arm()

    def _arm(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        loop = asyncio.get_running_loop()
        self.handle = loop.call_later(max(0.0, self.until - time.monotonic()), self.end)

    def extend(self, until: float, write_only: bool) -> None:
        self.write_only = self.write_only and write_only
        if until > self.until:
            self.until = until
            self._arm()

    def holds(self, client, cmd, argv) -> bool:
        if cmd is None:
            return False
        if not self.write_only:
            return True
        return "write" in cmd.flags or cmd.name in _WRITE_ALSO

    def wait(self, client, argv):
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append((client, argv, fut))
        return fut

    def end(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        server = self.server
        if server.pause is self:
            server.pause = None
        for c in server.clients.values():
            c.update_gate()
        waiting, self.waiting = self.waiting, []
        for client, argv, fut in waiting:
            if fut.done() or client.closed:
                continue
            r = client.execute(argv)
            if isinstance(r, asyncio.Future):
                r.add_done_callback(lambda f, fut=fut: fut.done() or (
                    fut.cancel() if f.cancelled() else fut.set_result(f.result())))
            else:
                fut.set_result(r)


def client_pause(client, argv):
    ms = parse_ll(argv[2])
    if ms is None:
        return client.error(errors.TIMEOUT_NOT_INTEGER)
    if ms < 0:
        return client.error(errors.TIMEOUT_NEGATIVE)
    write_only = False
    if len(argv) == 4:
        mode = argv[3].upper()
        if mode not in (b"WRITE", b"ALL"):
            return client.error("ERR CLIENT PAUSE mode must be WRITE or ALL")
        write_only = mode == b"WRITE"
    elif len(argv) > 4:
        return client.error(errors.SYNTAX)
    server = client.server
    until = time.monotonic() + ms / 1000.0
    if server.pause is None:
        server.pause = Pause(server, until, write_only)
    else:
        server.pause.extend(until, write_only)
    for c in server.clients.values():
        c.update_gate()
    return OK


def client_unpause(client, argv):
    if client.server.pause is not None:
        client.server.pause.end()
    return OK


def client_unblock(client, argv):
    cid = parse_ll(argv[2])
    if cid is None:
        return client.error(errors.NOT_INTEGER)
    as_error = False
    if len(argv) == 4:
        how = argv[3].upper()
        if how not in (b"TIMEOUT", b"ERROR"):
            return client.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
        as_error = how == b"ERROR"
    server = client.server
    target = server.clients.get(cid)
    fut = target.blocked if target is not None else None
    pause = server.pause
    if fut is None or fut.done() or (pause is not None and any(f is fut for _, _, f in pause.waiting)):
        return ZERO
    if as_error:
        server.stat_errors += 1
        server.stats.count_error(UNBLOCKED)
        fut.set_result(encode_error(UNBLOCKED))
    else:
        # WAIT is our only blocking command: on timeout it answers the count
        # of peers that acknowledged.
        repl = server.replication
        n = repl.replicator.acked_count(target) if repl is not None else 0
        fut.set_result(integer(n))
    return integer(1)


def client_reply(client, argv):
    mode = argv[2].upper()
    if mode == b"ON":
        client.reply_mode = None
        client.update_gate()
        return OK
    if mode == b"OFF":
        client.reply_mode = "off"
    elif mode == b"SKIP":
        if client.reply_mode != "off":
            client.reply_mode = "skip"
    else:
        return client.error(errors.SYNTAX)
    client.update_gate()
    return b""


_CLIENT_ARITY.update({b"PAUSE": -3, b"UNPAUSE": 2, b"UNBLOCK": -3, b"REPLY": 3})
CLIENT_HANDLERS.update({b"PAUSE": client_pause, b"UNPAUSE": client_unpause,
                        b"UNBLOCK": client_unblock, b"REPLY": client_reply})
