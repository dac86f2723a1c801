"""Key inspection: REPRAM's HEAD (EXISTS, TTL family, TYPE) and listing
(SCAN, KEYS, DBSIZE).  Nothing here changes the keyspace, and nothing here
ever shows an expired key."""

from __future__ import annotations

import asyncio

from .. import errors
from ..keyspace import InvalidCursor
from ..protocol import bulk, integer, parse_ll
from . import command


@command("exists", -2, "readonly fast", (1, -1, 1), "keyspace", "Count existing keys", "1.0.0")
def cmd_exists(client, argv):
    server = client.server
    ks = server.keyspace
    now = server.now
    return integer(sum(1 for k in argv[1:] if ks.lookup(k, now) is not None))


def _ttl(client, argv, ms: bool, absolute: bool):
    server = client.server
    now = server.now
    e = server.keyspace.lookup(argv[1], now)
    if e is None:
        return integer(-2)
    t = e[1] if absolute else max(e[1] - now, 0)
    return integer(t if ms else (t + 500) // 1000)


@command("ttl", 2, "readonly fast", (1, 1, 1), "keyspace", "Remaining TTL in seconds", "1.0.0")
def cmd_ttl(client, argv):
    return _ttl(client, argv, False, False)


@command("pttl", 2, "readonly fast", (1, 1, 1), "keyspace", "Remaining TTL in ms", "2.6.0")
def cmd_pttl(client, argv):
    return _ttl(client, argv, True, False)


@command("expiretime", 2, "readonly fast", (1, 1, 1), "keyspace", "Expiry as Unix seconds", "7.0.0")
def cmd_expiretime(client, argv):
    return _ttl(client, argv, False, True)


@command("pexpiretime", 2, "readonly fast", (1, 1, 1), "keyspace", "Expiry as Unix ms", "7.0.0")
def cmd_pexpiretime(client, argv):
    return _ttl(client, argv, True, True)


@command("type", 2, "readonly fast", (1, 1, 1), "keyspace", "The type of a key", "1.0.0")
def cmd_type(client, argv):
    server = client.server
    if server.keyspace.lookup(argv[1], server.now) is None:
        return b"+none\r\n"
    return b"+string\r\n"


@command("touch", -2, "readonly fast", (1, -1, 1), "keyspace", "Count existing keys", "3.2.1")
def cmd_touch(client, argv):
    return cmd_exists(client, argv)


@command("dbsize", 1, "readonly fast", (0, 0, 0), "server", "Number of live keys", "1.0.0")
def cmd_dbsize(client, argv):
    server = client.server
    return integer(server.keyspace.dbsize(server.now))


# Issue 7: KEYS over a keyspace larger than this visits this many keys per
# event-loop turn (~2-4 ms of work) and answers when done; other clients are
# served in between, this client's own later commands wait for the reply.
# A key live for the whole KEYS is listed; one written or expiring meanwhile
# is listed if it is live when its turn comes.  Inside EXEC (atomic) KEYS
# runs in one go, as in Redis.
KEYS_STEP_KEYS = 10_000


@command("keys", 2, "readonly", (0, 0, 0), "keyspace", "Live keys matching a pattern", "1.0.0")
def cmd_keys(client, argv):
    server = client.server
    ks = server.keyspace
    if client.in_exec or len(ks.index) <= KEYS_STEP_KEYS:
        keys = ks.keys(argv[1], server.now)
        return _keys_reply(keys)
    prefix, match = ks.keys_plan(argv[1])
    out: list = []
    after = ks.keys_step(prefix, match, None, KEYS_STEP_KEYS, server.now, out)
    if after is None:
        return _keys_reply(out)
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def step(after):
        if fut.done() or client.closed:
            return
        after = ks.keys_step(prefix, match, after, KEYS_STEP_KEYS, server.clock(), out)
        if after is None:
            fut.set_result(_keys_reply(out))
        else:
            loop.call_soon(step, after)
    loop.call_soon(step, after)
    return fut


def _keys_reply(keys: list) -> bytes:
    return b"*%d\r\n" % len(keys) + b"".join([bulk(k) for k in keys])


@command("scan", -2, "readonly", (0, 0, 0), "keyspace", "Iterate live keys (sorted)", "2.8.0")
def cmd_scan(client, argv):
    cursor = parse_ll(argv[1])
    if cursor is None or cursor < 0:
        # Redis parses the cursor as unsigned 64-bit; ours are below 2^53.
        # Issue 7: more than 20 digits is no u64 (and int() of 4301+ digits
        # raises): invalid, never an internal error.
        if not argv[1].isdigit() or len(argv[1]) > 20 or int(argv[1]) >= 1 << 64:
            return client.error(errors.INVALID_CURSOR)
        cursor = int(argv[1])
    count = 10
    pattern = None
    type_filter = None
    n = len(argv)
    j = 2
    while j < n:
        opt = argv[j].upper()
        if j + 1 >= n:
            return client.error(errors.SYNTAX)
        val = argv[j + 1]
        if opt == b"COUNT":
            c = parse_ll(val)
            if c is None:
                return client.error(errors.NOT_INTEGER)
            if c < 1:
                return client.error(errors.SYNTAX)
            # COUNT is a hint (as in Redis): one SCAN step visits at most
            # KEYS_STEP_KEYS keys, so COUNT 1000000000 is no KEYS in one turn.
            count = min(c, KEYS_STEP_KEYS)
        elif opt == b"MATCH":
            pattern = val
        elif opt == b"TYPE":
            type_filter = val.lower()
        else:
            return client.error(errors.SYNTAX)
        j += 2
    server = client.server
    try:
        nxt, keys = server.keyspace.scan(cursor, pattern, count, server.now)
    except InvalidCursor:
        return client.error(errors.INVALID_CURSOR)
    if type_filter is not None and type_filter != b"string":
        keys = []
    return b"*2\r\n" + bulk(b"%d" % nxt) + b"*%d\r\n" % len(keys) + b"".join([bulk(k) for k in keys])
