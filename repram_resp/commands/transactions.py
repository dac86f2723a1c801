"""MULTI / EXEC / DISCARD / WATCH / UNWATCH with Redis's error rules.

* Queue time: an unknown command, a wrong arity or a disabled command is
  refused with its error and marks the transaction dirty; EXEC then replies
  EXECABORT and runs nothing.  (Disabled commands are refused here so that a
  transaction holding a DEL never half-applies.)
* Exec time: errors such as a bad expire go into that command's slot of
  EXEC's array; the other commands still run.
* WATCH remembers the identity of each key's live entry.  Every write
  replaces the entry tuple, and expiry makes it vanish, so "modified since
  WATCH" is one identity comparison per watched key at EXEC.
"""

from __future__ import annotations

from .. import errors
from ..protocol import OK
from . import command


@command("multi", 1, "fast no-multi", group="transactions", summary="Start a transaction", since="1.2.0")
def cmd_multi(client, argv):
    if client.multi is not None:
        return client.error(errors.MULTI_NESTED)
    client.multi = []
    client.multi_dirty = False
    client.update_gate()
    return OK


@command("discard", 1, "fast no-multi", group="transactions", summary="Discard a transaction",
         since="2.0.0")
def cmd_discard(client, argv):
    if client.multi is None:
        return client.error(errors.DISCARD_WITHOUT_MULTI)
    client.end_multi()
    return OK


@command("exec", 1, "no-multi", group="transactions", summary="Run a transaction", since="1.2.0")
def cmd_exec(client, argv):
    if client.multi is None:
        return client.error(errors.EXEC_WITHOUT_MULTI)
    queued, dirty = client.multi, client.multi_dirty
    watched_changed = client.watch_broken()
    client.end_multi()
    if dirty:
        return client.error(errors.EXECABORT)
    if watched_changed:
        return client.enc.null_array
    client.in_exec = True
    try:
        replies = [client.run(cmd, args) for cmd, args in queued]
    finally:
        client.in_exec = False
    return b"*%d\r\n" % len(replies) + b"".join(replies)


@command("watch", -2, "fast no-multi", (1, -1, 1), group="transactions", summary="Watch keys",
         since="2.2.0")
def cmd_watch(client, argv):
    if client.multi is not None:
        return client.error(errors.WATCH_IN_MULTI)
    server = client.server
    now = server.now
    ks = server.keyspace
    for k in argv[1:]:
        if k not in client.watched:
            client.watched[k] = ks.lookup(k, now)
    return OK


@command("unwatch", 1, "fast no-multi", group="transactions", summary="Forget watched keys",
         since="2.2.0")
def cmd_unwatch(client, argv):
    client.watched.clear()
    return OK
