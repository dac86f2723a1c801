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

The replicated stream (``stream(link, data)``, the receiving side of a
peer link: ``Link.data_received`` while the link is ready, the server's lane
is enabled and the Python ``FrameReader`` is idle).  It reads the peer's
bytes as frames itself and checks the whole read first, as
``FrameReader.feed`` does: anything it does not read as flat frames of bulks
and integers (1-18 digits, no sign) within the reader's limits hands the
whole read, with any frame it held, to the Python reader, which keeps the
stream from then on until it is idle again; an incomplete frame past
``max_pending_bytes``, counted as ``feed`` counts it, is the same
MessageError.  Then, frame by frame in order:

* a ``B`` frame is applied by the lane when the frame is the common case:
  the link's peer is in our enclave, its origin field is that peer, the
  link has a clock sample, no ``$`` keyspace notification is wanted, and **every**
  entry is ``key value :deadline version`` with a 1-18 digit version, alive
  on arrival, within the TTL bounds and proto-max-bulk-len, and the frame
  fits maxmemory even if every key were new.  Each entry is then
  ``Keyspace.apply_remote``: last writer wins by (version, value, deadline),
  a floor covers a missing key, the overwrite of a live key that stays in
  its bucket is stored by the lane, anything else (a new key, a bucket move,
  an expired entry, a key ``on_write`` watches) by ``Keyspace.put``.  It
  keeps the same counters (``writes_received``/``writes_applied``, the HLC,
  ``seen_upto_ms``, the ACK offset, the entries a poor clock sample
  converted, for re-correction; ``batches_lane`` counts the frames it
  applied).  Any other B frame, decided before anything changed, goes to the
  Python path whole.  How, not what (no result depends on these): before
  applying, it prefetches the batch's store lookups (CPython 3.11/3.12 dict
  layout, addresses only); an entry tuple nothing but the store holds is
  overwritten in place; and entries stored with the previous one's deadline
  share its int;
* every other complete frame goes to the Python path one at a time
  (``Link._lane_frame``);
* an incomplete last frame is kept (``link.lane_hold``, with the scan
  position, so a frame split over many reads is walked once) for the next
  read.
  tests/test_lane_stream.py holds it to this with a differential test (peer
  byte streams, split anywhere, lane against the Python path).  One
  difference no peer sees: after a hand-over in the middle of a held frame,
  the Python reader counts the pending bytes from the hand-over.

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
  in the parser for the next turn, as the Python path does, and on that turn
  the connection hands those bytes to the lane again (``take_raw``).

On a clustered node both paths note every write they store in the digest
ledger (``Keyspace.ledger``, cluster/ledger.py), as ``Keyspace.put`` does.

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

from .native import NO_EXTENSIONS_ENV, REQUIRE_EXTENSIONS_ENV, load_extension  # noqa: F401 (tests use them)

log = logging.getLogger("repram")

execute = None          # _lane.execute when the extension is loaded
stream = None           # _lane.stream (the replicated stream on a receiving peer)

_lane, why_not = load_extension("_lane", "the fast lane extension")   # why_not: for the startup log line
if _lane is not None:
    from . import commands
    if _lane.HIST_BUCKETS != commands.HIST_BUCKETS:
        raise ImportError("the fast lane was built for %d histogram buckets, commands has %d: rebuild it"
                          % (_lane.HIST_BUCKETS, commands.HIST_BUCKETS))
    _lane.set_commands(commands.TABLE[b"get"], commands.TABLE[b"set"])
    commands.stats_sync = _lane.flush_stats     # its runs' statistics, kept in C
    execute = _lane.execute
    stream = _lane.stream

AVAILABLE = execute is not None


def describe() -> str:
    return "fast lane on (compiled)" if AVAILABLE else "fast lane off: " + why_not
