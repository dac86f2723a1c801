"""MULTI / EXEC / DISCARD / WATCH / UNWATCH with Redis's error rules.

* Queue time: an unknown command, a wrong arity or a disabled command is
  refused with its error and marks the transaction dirty; EXEC then replies
  EXECABORT and runs nothing.  (Disabled commands are refused here so that a
  transaction holding a DEL never half-applies.)
* Exec time: errors such as a bad expire go into that command's slot of
  EXEC's array; the other commands still run.
* A TTL set inside the write's own transaction is part of the write:
  ``EXPIRE``/``PEXPIRE``/``EXPIREAT``/``PEXPIREAT key t`` (no options), queued
  after a command of the same MULTI that writes ``key``, is accepted; at EXEC
  that write is stored with the EXPIRE's deadline (one PUT, replicated once
  with it) and the EXPIRE replies 1 and publishes ``expire``.  This is what
  Django's ``set_many`` and aiocache's ``multi_set(ttl=...)`` send.  If the
  write did not happen (SET NX on an existing key ...) the EXPIRE gets the
  disabled error in its slot; a bad or out-of-bounds TTL gets its error and
  the write keeps its own TTL.  Everywhere else these commands stay refused.
* WATCH remembers the identity of each key's live entry.  Every write
  replaces the entry tuple, and expiry makes it vanish, so "modified since
  WATCH" is one identity comparison per watched key at EXEC.
"""

from __future__ import annotations

from .. import errors
from ..protocol import ONE, OK
from . import command, lookup_error

# EXPIRE family accepted inside MULTI on a key the transaction writes:
# name -> (unit ms, absolute).
TX_TTL = {"expire": (1000, False), "pexpire": (1, False), "expireat": (1000, True),
          "pexpireat": (1, True)}
_ONE_KEY_WRITERS = frozenset({"set", "setex", "psetex", "setnx", "getset"})
_MULTI_KEY_WRITERS = frozenset({"mset", "msetnx"})


def _written(name: str, argv: list) -> list:
    if name in _ONE_KEY_WRITERS:
        return argv[1:2]
    if name in _MULTI_KEY_WRITERS:
        return argv[1::2]
    return []


def tx_ttl_queue_error(client, argv, err):
    """Queue time: None if this EXPIRE-family command names a key written
    earlier in the transaction (and has no options), else err.  The keys
    written so far are collected incrementally, so a transaction of n
    commands costs O(n) however many EXPIREs it holds."""
    if len(argv) != 3:
        return err
    scanned, keys = client.tx_scan or (0, set())
    queue = client.multi
    for cmd, args in queue[scanned:]:
        keys.update(_written(cmd.name, args))
    client.tx_scan = (len(queue), keys)
    return None if argv[1] in keys else err


def _exec_with_ttls(client, queued) -> list:
    """Run a transaction holding EXPIREs of keys it writes (see the header)."""
    from .strings import TTLError, deadline_for, set_full
    now = client.server.now
    last_writer: dict = {}
    overrides: dict = {}     # writer index -> {key: deadline}
    expires: dict = {}       # EXPIRE index -> (writer index, key) or its error reply
    for i, (cmd, argv) in enumerate(queued):
        name = cmd.name
        if name in TX_TTL:
            unit, absolute = TX_TTL[name]
            try:
                deadline = deadline_for(client, name, argv[2], unit, absolute, now)
            except TTLError as e:
                expires[i] = client.error(str(e))
                continue
            w = last_writer[argv[1]]
            overrides.setdefault(w, {})[argv[1]] = deadline
            expires[i] = (w, argv[1])
        else:
            for k in _written(name, argv):
                last_writer[k] = i
    replies = []
    applied: dict = {}
    for i, (cmd, argv) in enumerate(queued):
        x = expires.get(i)
        if x is not None:
            cmd.calls += 1          # answered here, not through client.run
            if x.__class__ is bytes:
                replies.append(x)
            elif x[1] in applied.get(x[0], ()):
                client.server.pubsub.notify("g", b"expire", x[1])
                replies.append(ONE)
            else:
                replies.append(client.error(lookup_error(cmd, argv)))
            continue
        ov = overrides.get(i)
        if ov is None:
            replies.append(client.run(cmd, argv))
            continue
        client.ttl_override, client.ttl_applied = ov, set()
        try:
            replies.append(client.run(cmd, argv, set_full if cmd.name == "set" else None))
        finally:
            applied[i] = client.ttl_applied
            client.ttl_override = None
    return replies


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
        if any(cmd.name in TX_TTL for cmd, _ in queued):
            replies = _exec_with_ttls(client, queued)
        else:
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
