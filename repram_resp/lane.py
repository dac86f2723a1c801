"""The fast lane: the contract for the compiled hot path (``_lane.pyx``).

What it is.  An optional C extension that serves a read made of plain
``GET key`` and ``SET key value EX|PX n`` commands without building argument
lists or reply objects: it scans the bytes, applies the trivial cases to the
keyspace and encodes the replies (and, for a replicated node, the write
stream entries) itself.  Without it (no compiler at install time, or
``REPRAM_NO_EXTENSIONS=1`` in the environment, as aio-libs do) the server
runs the Python path alone -- the Python path *is* the specification, and
the lane must be indistinguishable from it.

What the lane executes itself (anything else is not its business):

* ``*2\\r\\n$3\\r\\nGET\\r\\n$<n>\\r\\n<key>\\r\\n`` (``GET`` or ``get``): a hit
  (``hits`` += 1, bulk reply) or a miss (``misses`` += 1, the connection's
  null), exactly ``Keyspace.get``;
* ``*5\\r\\n$3\\r\\nSET\\r\\n<key><value>$2\\r\\nEX|PX\\r\\n<n>`` (``SET``/``set``,
  ``EX``/``ex``/``PX``/``px``, n = 1-12 digits without a leading zero, the
  TTL within ``min-ttl`` .. ``max-ttl``) while writes are not refused
  (``write_refusal``, min-replicas), when the write fits ``maxmemory``
  (entry overhead counted for a new key) and its key and value fit every
  streaming peer's proto-max-bulk-len.  The overwrite of a **live** key
  whose new deadline is **not earlier than the start of the bucket it is
  filed in** is applied by the lane itself (version as ``HLC.tick``,
  ``used_bytes``, DBSIZE's ``_ext``); a new key, an expired one or a bucket
  move is stored by ``Keyspace.put`` called from the lane.  It replies
  ``+OK``; on a node with replication hooks it numbers the write, encodes
  the stream entry byte-for-byte as ``Replicator.local_write`` and follows
  its flush rule.
* Bulk headers exactly as clients write them: digits without sign or
  leading zero, within ``proto-max-bulk-len``, CRLF after each payload.

It stops at the first byte of the first command it does not fully
recognise -- another command, another spelling, other options, an OOM, a
refused TTL, an oversize value, a partial command, anything malformed --
and hands the rest of the read to the Python path from
that byte.  Every stop is decided before the command changes anything, so a
command is executed entirely by one path.  The replies of the lane's prefix
are written before the rest is parsed, so they keep their order.

When it may run at all:

* server-wide: ``Server.lane_ok`` -- the single cheap check, recomputed by
  ``Server.update_lane()`` whenever an observer appears or goes.  It is
  False whenever anything would see a command the lane cannot show it:
  keyspace notifications a SET publishes (``$`` set, ``g`` expire), commands
  watched one by one (MONITOR, ``slowlog-log-slower-than 0``:
  ``Stats.instrumented``).  The keyspace's write hook (client tracking,
  ``n`` new-key events) is mirrored instead: an overwrite of a key in
  ``Keyspace.on_write`` goes through ``Keyspace.put``, which runs the hook,
  and tracking clients take the gated Python path.  **A feature
  that watches individual commands or keys -- MONITOR, client tracking,
  a SLOWLOG threshold of 0, per-command hooks on Keyspace.put/get -- must
  add its condition to ``Server.update_lane`` and call it when it changes**
  (or be mirrored in the lane, as the write stream is);
* per client (checked by the lane): no gate (MULTI, AUTH pending, RESP2
  subscribed, closing), no batch suspended by flow control or a blocking
  command, not paused, and the parser on a command boundary with nothing
  buffered;
* per read: the lane stops once its replies pass ``out_limit`` (the write
  high-water mark), leaving the rest to the Python path's flow control.

* per turn: it runs at most ``client-turn-max-commands`` commands /
  ``client-turn-max-bytes`` bytes of a read; a spent budget leaves the rest
  in the parser for the next turn, as the Python path does.

Counters it keeps like the Python path: ``total_commands_processed``,
``keyspace_hits``/``misses``, ``used_memory``, the HLC, the client's
``last_cmd`` (CLIENT LIST), INFO commandstats / latencystats (``calls``,
``ns`` and the histogram per run of one command, as ``Stats.end_run``, but
in C arrays that ``commands.all_commands()`` adds to the Command objects
before anyone reads them; a run slower than the slowlog / latency threshold
is logged with its last command), ``total_net_output_bytes``, replication offsets and WAIT's
per-client window.  (One difference no client sees: a read the lane
splits with the Python path leaves in two ``transport.write`` calls.)  tests/test_lane.py holds it to all of this: a hypothesis
differential test runs the same byte streams (split anywhere, mixed with
other commands, hostile) through a node with the lane and one without and
compares every reply byte and the resulting store, and the CI runs the
whole suite with and without it.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("repram")

NO_EXTENSIONS_ENV = "REPRAM_NO_EXTENSIONS"        # "1": never load the lane
REQUIRE_EXTENSIONS_ENV = "REPRAM_REQUIRE_EXTENSIONS"   # "1": fail if it cannot load (CI)

execute = None          # _lane.execute when the extension is loaded
why_not = ""            # why it is not, for the startup log line

if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
    why_not = "%s is set" % NO_EXTENSIONS_ENV
else:
    try:
        from . import _lane
    except ImportError as exc:
        if os.environ.get(REQUIRE_EXTENSIONS_ENV, "") not in ("", "0"):
            raise ImportError("%s=1 but the fast lane extension does not load: %s"
                              % (REQUIRE_EXTENSIONS_ENV, exc)) from exc
        why_not = "the compiled extension is not built (%s)" % exc
    else:
        from . import commands
        if _lane.HIST_BUCKETS != commands.HIST_BUCKETS:
            raise ImportError("the fast lane was built for %d histogram buckets, commands has %d: rebuild it"
                              % (_lane.HIST_BUCKETS, commands.HIST_BUCKETS))
        _lane.set_commands(commands.TABLE[b"get"], commands.TABLE[b"set"])
        commands.stats_sync = _lane.flush_stats     # its runs' statistics, kept in C
        execute = _lane.execute

AVAILABLE = execute is not None


def describe() -> str:
    return "fast lane on (compiled)" if AVAILABLE else "fast lane off: " + why_not
