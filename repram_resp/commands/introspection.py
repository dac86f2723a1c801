"""Debugging and introspection: MONITOR, SLOWLOG, LATENCY, MEMORY, OBJECT,
ROLE, RANDOMKEY, SUBSTR, LOLWUT, DEBUG.

Each answers what is true of this server (REPRAM rules, Python storage) in
Redis's reply shapes and error strings; the statistics behind SLOWLOG and
LATENCY are gathered in ``introspect.py``.  Nothing here writes a value to
the log: MONITOR lines go only to the client that asked for them.
"""

from __future__ import annotations

import random

from .. import REDIS_COMPAT_VERSION, __version__, errors
from ..clock import LOGICAL_BITS
from ..keyspace import ENTRY_OVERHEAD_BYTES
from ..protocol import OK, ONE, bulk, integer, parse_ll
from . import TABLE, all_commands, command, find, hist_upper_ns, sync_stats
from .connection import subcommand_arity_error
from .strings import cmd_getrange

RANDOMKEY_TRIES = 32     # random picks before giving up on a mostly-expired index


def _help(client, lines) -> bytes:
    return client.enc.array([b"+%s\r\n" % line for line in lines])


# -- MONITOR ------------------------------------------------------------------

@command("monitor", 1, "admin no-multi", group="server", summary="Stream every command the server "
         "runs", since="1.0.0")
def cmd_monitor(client, argv):
    if not client.monitor:
        client.monitor = True
        client.server.stats.add_monitor(client)
    return OK


# -- SLOWLOG ------------------------------------------------------------------

_SLOWLOG_ARITY = {b"GET": -2, b"LEN": 2, b"RESET": 2, b"HELP": 2}
_SLOWLOG_HELP = (
    b"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"GET [<count>]",
    b"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    b"    Entries are made of:",
    b"    id, timestamp, time in microseconds, arguments array, client IP and port,",
    b"    client name",
    b"LEN",
    b"    Return the length of the slowlog.",
    b"RESET",
    b"    Reset the slowlog.",
    b"HELP",
    b"    Print this help.",
)


@command("slowlog", -2, "admin", group="server", summary="The slow command log", since="2.2.12")
def cmd_slowlog(client, argv):
    err = subcommand_arity_error(argv, _SLOWLOG_ARITY, "slowlog")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    stats = client.server.stats
    if sub == b"LEN":
        return integer(len(stats.slowlog))
    if sub == b"RESET":
        stats.slowlog.clear()
        return OK
    if sub == b"GET":
        if len(argv) > 3:
            return client.error(errors.wrong_arity("slowlog|get"))
        count = 10
        if len(argv) == 3:
            count = parse_ll(argv[2])
            if count is None or count < -1:     # one message for both, as Redis
                return client.error("ERR count should be greater than or equal to -1")
            if count == -1:
                count = len(stats.slowlog)
        enc = client.enc
        out = []
        for i, entry in enumerate(stats.slowlog):
            if i >= count:
                break
            eid, ts, us, args, addr, name = entry
            out.append(enc.array([integer(eid), integer(ts), integer(us),
                                  enc.array([bulk(a) for a in args]), bulk(addr), bulk(name)]))
        return enc.array(out)
    return _help(client, _SLOWLOG_HELP)


# -- LATENCY ------------------------------------------------------------------

_LATENCY_ARITY = {b"LATEST": 2, b"HISTORY": 3, b"RESET": -2, b"DOCTOR": 2, b"GRAPH": 3,
                  b"HISTOGRAM": -2, b"HELP": 2}
_LATENCY_HELP = (
    b"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DOCTOR",
    b"    Return a human readable latency analysis report.",
    b"GRAPH <event>",
    b"    Return an ASCII latency graph for the <event> class.",
    b"HISTORY <event>",
    b"    Return time-latency samples for the <event> class.",
    b"LATEST",
    b"    Return the latest latency samples for all events.",
    b"RESET [<event> ...]",
    b"    Reset latency data of one or more <event> classes.",
    b"    (default: reset all data for all event classes)",
    b"HISTOGRAM [COMMAND ...]",
    b"    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    b"    If no commands are specified then all histograms are replied.",
    b"HELP",
    b"    Print this help.",
)


@command("latency", -2, "admin", group="server", summary="Latency monitor", since="2.8.13")
def cmd_latency(client, argv):
    err = subcommand_arity_error(argv, _LATENCY_ARITY, "latency")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    stats = client.server.stats
    enc = client.enc
    if sub == b"LATEST":
        out = []
        for event, h in stats.latency.items():
            if h:
                ts, ms = h[-1]
                out.append(enc.array([bulk(event.encode()), integer(ts), integer(ms),
                                      integer(stats.latency_max.get(event, 0))]))
        return enc.array(out)
    if sub == b"HISTORY":
        h = stats.latency.get(argv[2].decode("utf-8", "replace"), ())
        return enc.array([enc.array([integer(ts), integer(ms)]) for ts, ms in h])
    if sub == b"RESET":
        events = [a.decode("utf-8", "replace") for a in argv[2:]] or list(stats.latency)
        n = 0
        for e in events:
            if stats.latency.pop(e, None) is not None:
                n += 1
            stats.latency_max.pop(e, None)
        return integer(n)
    if sub == b"DOCTOR":
        if not stats.latency:
            text = ("Dave, no latency spike was observed during the lifetime of this server.\n\n"
                    "Monitoring is %s (latency-monitor-threshold %d ms).\n"
                    % ("on" if stats.latency_ms else "off", stats.latency_ms))
        else:
            text = "Latency events seen (event: latest ms / max ms / samples):\n" + "".join(
                "%s: %d / %d / %d\n" % (e, h[-1][1], stats.latency_max.get(e, 0), len(h))
                for e, h in stats.latency.items() if h)
        return enc.verbatim(text)
    if sub == b"GRAPH":
        event = argv[2].decode("utf-8", "replace")
        h = stats.latency.get(event)
        if not h:
            return client.error("ERR No samples available for event '%s'" % event)
        top = max(ms for _, ms in h) or 1
        rows = ["%s - high %d ms, low %d ms" % (event, top, min(ms for _, ms in h))]
        rows += ["%10d %s" % (ts, "#" * max(1, ms * 40 // top)) for ts, ms in h]
        return enc.verbatim("\n".join(rows) + "\n")
    if sub == b"HISTOGRAM":
        if len(argv) > 2:
            sync_stats()
            cmds = [c for c in (find(a) for a in argv[2:]) if c is not None]
        else:
            cmds = all_commands()
        pairs = []
        for c in cmds:
            if not c.calls:
                continue
            # Cumulative counts at power-of-two microsecond bounds, as Redis.
            cum = {}
            acc = 0
            for b, k in enumerate(c.hist):
                if k:
                    acc += k
                    us = max(1, hist_upper_ns(b) // 1000)
                    bound = 1 << (us - 1).bit_length()
                    cum[bound] = acc
            hist = enc.map([(integer(b), integer(v)) for b, v in sorted(cum.items())])
            pairs.append((bulk(c.name.encode()), enc.map([(bulk(b"calls"), integer(c.calls)),
                                                          (bulk(b"histogram_usec"), hist)])))
        return enc.map(pairs)
    return _help(client, _LATENCY_HELP)


# -- MEMORY -------------------------------------------------------------------

_MEMORY_ARITY = {b"USAGE": -3, b"STATS": 2, b"DOCTOR": 2, b"MALLOC-STATS": 2, b"PURGE": 2,
                 b"HELP": 2}
_MEMORY_HELP = (
    b"MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"DOCTOR",
    b"    Return memory problems reports.",
    b"MALLOC-STATS",
    b"    Return internal statistics report from the memory allocator.",
    b"PURGE",
    b"    Attempt to purge dirty pages for reclamation by the allocator.",
    b"STATS",
    b"    Return information about the memory usage of the server.",
    b"USAGE <key> [SAMPLES <count>]",
    b"    Return memory in bytes used by <key> and its value. Nested values are",
    b"    sampled up to <count> times (default: 5, 0 means sample all).",
    b"HELP",
    b"    Print this help.",
)


def key_bytes(key: bytes, value: bytes) -> int:
    """What one key costs in the memory accounting (keyspace.py)."""
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


@command("memory", -2, "", group="server", summary="Memory introspection", since="4.0.0")
def cmd_memory(client, argv):
    err = subcommand_arity_error(argv, _MEMORY_ARITY, "memory")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    server = client.server
    ks = server.keyspace
    enc = client.enc
    if sub == b"USAGE":
        if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3].upper() != b"SAMPLES"):
            return client.error(errors.SYNTAX)
        if len(argv) == 5 and parse_ll(argv[4]) is None:
            return client.error(errors.NOT_INTEGER)
        e = ks.lookup(argv[2], server.now)
        return enc.null if e is None else integer(key_bytes(argv[2], e[0]))
    if sub == b"STATS":
        from ..server import rss_bytes
        clients = server.clients_memory()
        used = ks.used_bytes + clients
        server.stats.sample_memory(used)
        n = len(ks.data)
        rss = rss_bytes()
        fields = [
            ("peak.allocated", integer(server.stats.mem_peak)),
            ("total.allocated", integer(used)),
            ("startup.allocated", integer(0)),
            ("replication.backlog", integer(0)),
            ("clients.slaves", integer(0)),
            ("clients.normal", integer(clients)),
            ("aof.buffer", integer(0)),
            ("overhead.total", integer(n * ENTRY_OVERHEAD_BYTES)),
            ("keys.count", integer(n)),
            ("keys.bytes-per-key", integer(used // n if n else 0)),
            ("dataset.bytes", integer(ks.used_bytes - n * ENTRY_OVERHEAD_BYTES)),
            ("dataset.percentage", enc.double(100.0 * (ks.used_bytes - n * ENTRY_OVERHEAD_BYTES) / used
                                              if used else 0.0)),
            ("peak.percentage", enc.double(100.0 * used / server.stats.mem_peak
                                           if server.stats.mem_peak else 100.0)),
            ("fragmentation", enc.double(rss / used if used else 0.0)),
            ("fragmentation.bytes", integer(max(rss - used, 0))),
        ]
        return enc.map([(bulk(k.encode()), v) for k, v in fields])
    if sub == b"DOCTOR":
        used = ks.used_bytes
        mm = server.config.maxmemory_bytes
        lines = ["Sam, I have no memory problems to report." if not mm or used < mm * 0.9 else
                 "Sam, used memory is at %.0f%% of maxmemory: new writes will soon be refused "
                 "(noeviction) until keys expire." % (100.0 * used / mm)]
        lines.append("REPRAM never evicts: memory is returned only as keys expire "
                     "(%d keys, %d bytes accounted, peak %d)." % (len(ks.data), used,
                                                                  server.stats.mem_peak))
        return enc.verbatim("\n".join(lines) + "\n")
    if sub == b"MALLOC-STATS":
        return enc.verbatim("Stats not supported for the current allocator\n")
    if sub == b"PURGE":
        return OK
    return _help(client, _MEMORY_HELP)


# -- OBJECT -------------------------------------------------------------------

_OBJECT_ARITY = {b"ENCODING": 3, b"FREQ": 3, b"IDLETIME": 3, b"REFCOUNT": 3, b"HELP": 2}
_OBJECT_HELP = (
    b"OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"ENCODING <key>",
    b"    Return the kind of internal representation used in order to store the value",
    b"    associated with a <key>. REPRAM stores every value as opaque bytes: always \"raw\".",
    b"FREQ <key>",
    b"    Return the access frequency index of the <key>. REPRAM tracks none (no LFU",
    b"    policy): an error, as Redis answers without an LFU policy.",
    b"IDLETIME <key>",
    b"    Return the seconds since the <key> was last written (REPRAM does not track",
    b"    reads).",
    b"REFCOUNT <key>",
    b"    Return the number of references of the value associated with the specified",
    b"    <key>: always 1.",
    b"HELP",
    b"    Print this help.",
)
_NO_LFU = ("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
           "that when switching between policies at runtime LRU and LFU data will take some time "
           "to adjust.")


@command("object", -2, "readonly", group="generic", summary="Inspect a key's internals",
         since="2.2.3")
def cmd_object(client, argv):
    err = subcommand_arity_error(argv, _OBJECT_ARITY, "object")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    if sub == b"HELP":
        return _help(client, _OBJECT_HELP)
    server = client.server
    e = server.keyspace.lookup(argv[2], server.now)
    if e is None:
        return client.enc.null
    if sub == b"ENCODING":
        return bulk(b"raw")
    if sub == b"REFCOUNT":
        return ONE
    if sub == b"IDLETIME":
        written_ms = e[2] >> LOGICAL_BITS     # the write's HLC version carries its time
        return integer(max(0, (server.now - written_ms) // 1000))
    return client.error(_NO_LFU)          # FREQ


# -- ROLE, RANDOMKEY, SUBSTR, LOLWUT, DEBUG -----------------------------------

@command("role", 1, "fast noscript", group="server", summary="This node's role: a master whose "
         "replicas are its enclave's peers", since="2.8.12")
def cmd_role(client, argv):
    enc = client.enc
    repl = client.server.replication
    offset = 0
    peers = []
    if repl is not None:
        rep = getattr(repl, "replicator", None)
        offset = getattr(rep, "offset", 0)
        for p in sorted(getattr(repl, "peers", {}).values(), key=lambda p: p.node_id):
            lk = getattr(p, "out", None)
            if getattr(p, "state", "") != "up" or lk is None:
                continue
            peers.append(enc.array([bulk(str(getattr(p, "host", "") or "").encode()),
                                    bulk(b"%d" % getattr(p, "client_port", 0)),
                                    bulk(b"%d" % getattr(lk, "acked", 0))]))
    return enc.array([bulk(b"master"), integer(offset), enc.array(peers)])


@command("randomkey", 1, "readonly", group="keyspace", summary="A random live key", since="1.0.0")
def cmd_randomkey(client, argv):
    server = client.server
    ks = server.keyspace
    idx, data = ks.index, ks.data
    now = server.now
    for _ in range(2):
        n = len(idx)
        if not n:
            break
        # O(log N) per pick (a position in the sorted index); expired keys
        # not yet reclaimed are skipped with a bounded number of picks.
        for _ in range(RANDOMKEY_TRIES):
            k = idx[random.randrange(n)]
            if now <= data[k][1]:
                return bulk(k)
        # Mostly expired: reclaim one bounded batch of what is due, then retry.
        ks.reclaim(now, server.config.expire_batch_keys)
    return client.enc.null


@command("substr", 4, "readonly", (1, 1, 1), "string", "A substring of a key's value", "1.0.0")
def cmd_substr(client, argv):
    return cmd_getrange(client, argv)


_LOLWUT = (
    "  .--.       REPRAM: replicated ephemeral RAM\n"
    " ( ~~ )      every key expires; nothing is deleted\n"
    "  '--'       the TTL is the timeout, the failure detector and the GC\n"
)


@command("lolwut", -1, "readonly fast", group="server", summary="Show some computer art and the "
         "version", since="5.0.0")
def cmd_lolwut(client, argv):
    if len(argv) >= 3 and argv[1].upper() == b"VERSION" and parse_ll(argv[2]) is None:
        return client.error(errors.NOT_INTEGER)
    return client.enc.verbatim("%s\nRedis ver. %s (repram-resp %s)\n" % (
        _LOLWUT, REDIS_COMPAT_VERSION, __version__))


DEBUG_REFUSED = ("ERR DEBUG command not allowed. If the enable-debug-command option is set to "
                 "\"local\", you can run it from a local connection, otherwise you need to set this "
                 "option in the configuration file, and then restart the server.")


@command("debug", -2, "admin noscript", group="server", summary="Refused, as Redis refuses it by "
         "default (enable-debug-command no)", since="1.0.0")
def cmd_debug(client, argv):
    return client.reject(TABLE[b"debug"], DEBUG_REFUSED)   # refused before running, as in Redis


@command("module", -2, "admin noscript", group="server", summary="Module management: no modules "
         "are loaded or loadable", since="4.0.0")
def cmd_module(client, argv):
    sub = argv[1].upper()
    if sub == b"LIST" and len(argv) == 2:
        return client.enc.array([])
    if sub == b"HELP" and len(argv) == 2:
        return _help(client, [b"MODULE <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                              b"LIST", b"    Return a list of loaded modules (none here).",
                              b"HELP", b"    Print this help."])
    if sub in (b"LOAD", b"LOADEX", b"UNLOAD"):
        return client.error(errors.MODULES_UNSUPPORTED)
    return client.error(errors.unknown_subcommand(argv[1], "MODULE"))


TABLE[b"slowlog"].subcommands = _SLOWLOG_ARITY
TABLE[b"latency"].subcommands = _LATENCY_ARITY
TABLE[b"memory"].subcommands = _MEMORY_ARITY
TABLE[b"object"].subcommands = _OBJECT_ARITY
TABLE[b"module"].subcommands = {b"LIST": 2, b"HELP": 2}
