"""The write stream, acknowledgements, WAIT, receiver validation and catch-up.

Sender side (the node a client wrote to -- the only node that ever streams
that write; a replicated write is never re-sent):

* ``local_write`` runs after every successful local write.  It numbers the
  write with the next stream *offset*, encodes the entry once (key, value,
  absolute deadline, HLC version) and appends it to this loop turn's batch;
  ``flush`` runs once per turn (``loop.call_soon``) and writes one ``B`` frame,
  the same bytes object, to every streaming link.  Clients never wait for
  peers: a dead or slow peer costs nothing on the write path.
* A peer acknowledges with ``ACK offset`` once per read.  ``WAIT`` counts
  live links whose acknowledged offset covers all of this connection's
  writes, that carried all of them (or completed a catch-up since), and that
  refused none of them (Redis semantics, REPRAM's quorum confirmation).
* A peer refusing a write answers ``REJ offset reason key``; the sender
  counts it per peer and per reason (``INFO replication``).

Receiver side: ``apply_entries`` (pure: keyspace in, refusals out) converts
each deadline into local time with the link's measured clock offset, drops
writes already expired, refuses what breaks this node's own limits (TTL
bounds against the remaining lifetime, proto-max-bulk-len, maxmemory), and
applies the rest by last-writer-wins (``Keyspace.apply_remote``), so arrival
order and duplicates never matter.

Catch-up: the receiver of a stream asks its sender ``SYNC id since_ms`` when
the link comes up; the sender walks its sorted index in chunks of
``CATCHUP_CHUNK_KEYS`` keys / ``CATCHUP_CHUNK_BYTES`` bytes, sending every
live entry whose version is at or after ``since_ms``, yielding to the loop
after each chunk and waiting for the socket to drain when it is backed up.
Then it walks its version floors the same way; floors (and entries expired
but not reclaimed yet) travel as ``FL`` frames, so a receiver holding a
value superseded by a write that already expired drops it.  New writes keep
flowing on the same link meanwhile; races are harmless because applying is
idempotent and ordered by version.  A node serves a catch-up only with data
it can vouch for: while its own first full catch-up (from another peer) is
running, it waits for it (at most ``SYNC_DEFER_MAX_S``; anti-entropy repairs
whatever that bound still lets through).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

from ..clock import LOGICAL_BITS, TAG_BITS
from ..keyspace import OutOfMemory
from ..protocol import integer
from . import messages as m

log = logging.getLogger("repram.cluster")

FLUSH_BYTES = 1024 * 1024          # flush a turn's batch early past this size
MAX_BATCH_ENTRIES = 65536          # ... or entries: receivers cap a frame's count (messages.py)
CATCHUP_CHUNK_KEYS = 1000          # keys examined per catch-up chunk
CATCHUP_CHUNK_BYTES = 1024 * 1024  # key+value bytes per catch-up frame
# Replicated TTLs are checked against this node's min-ttl / max-ttl with a
# tolerance, so that writes within the bounds at the origin are not refused:
# the remaining lifetime against max-ttl allows for clock-offset error; the
# origin's TTL (deadline - batch send time) against min-ttl allows for the
# time between a write and the end of its loop turn, when its batch leaves.
TTL_SLACK_MS = 1000
MIN_TTL_SLACK_MS = 250
REFUSED_OFFSETS_KEPT = 1024        # per link, for WAIT
SYNC_DEFER_MAX_S = 10.0            # a catch-up waits at most this long for our own
# Deadline re-correction (timesync.py): while a link's best clock sample has a
# round trip above this, what it brings is remembered (at most RECORRECT_MAX
# entries, during the first RECORRECT_WINDOW_S of the link) and re-converted
# when a better sample arrives.
RECORRECT_DELTA_US = 10_000
RECORRECT_MAX = 50_000
RECORRECT_WINDOW_S = 30.0
RECORRECT_MIN_GAIN_MS = 5            # smaller improvements are not worth a pass over the list
RECORRECT_EVERY_S = 1.0              # at most one pass per link this often
VERSION_SHIFT = TAG_BITS + LOGICAL_BITS   # version >> this = physical ms


class Limits(NamedTuple):
    min_ttl_ms: int
    max_ttl_ms: int
    max_bulk_bytes: int


def limits_of(config) -> Limits:
    return Limits(config.min_ttl_ms, config.max_ttl_ms, config.proto_max_bulk_bytes)


def apply_entries(ks, f: list, start: int, adjust_ms: int, now: int, limits: Limits,
                  sent_ms: int | None = None, on_applied=None, on_floor=None):
    """Apply the write entries ``f[start:]`` (groups of key, value,
    deadline in the sender's clock, version) to keyspace ``ks``.

    ``adjust_ms`` converts a sender deadline into ours (timesync).
    ``sent_ms`` (stream batches only) is the sender's clock when the batch
    left; ``deadline - sent_ms`` bounds the TTL the origin gave, which is
    what min-ttl applies to (a catch-up entry may legitimately have little
    lifetime left, so it is only held to max-ttl).

    An entry already expired here becomes a version floor (it drops an older
    value; ``on_floor(key)`` is told).

    Returns ``(applied, expired, refusals, top_version)`` with refusals as
    ``[(index of the entry's key in f, reason)]``.  Raises MessageError on a
    malformed entry (entries before it stay applied: each is independent).
    """
    min_ttl, max_ttl, max_bulk = limits
    max_remaining = max_ttl + TTL_SLACK_MS
    min_origin_ttl = min_ttl - MIN_TTL_SLACK_MS
    applied = expired = 0
    refusals = []
    top = 0
    apply = ks.apply_remote
    n = len(f)
    if (n - start) % m.ENTRY_FIELDS:
        raise m.MessageError("entries are not groups of %d" % m.ENTRY_FIELDS)
    for i in range(start, n, m.ENTRY_FIELDS):
        key, value, d, vb = f[i], f[i + 1], f[i + 2], f[i + 3]
        if (key.__class__ is not bytes or value.__class__ is not bytes or d.__class__ is not int
                or vb.__class__ is not bytes):
            raise m.MessageError("malformed write entry")
        try:
            version = int(vb)
        except ValueError:
            raise m.MessageError("bad version") from None
        local = d + adjust_ms
        if now > local:
            # Dead on arrival: still proof that everything older is dead.
            expired += 1
            if ks.apply_floor(key, version, now) and on_floor is not None:
                on_floor(key)
            if version > top:
                top = version
            continue
        if local - now > max_remaining or (sent_ms is not None and d - sent_ms < min_origin_ttl):
            refusals.append((i, m.R_TTL))
            continue
        if len(value) > max_bulk or len(key) > max_bulk:
            refusals.append((i, m.R_SIZE))
            continue
        try:
            if apply(key, value, local, version, now):
                applied += 1
                if on_applied is not None:
                    on_applied(key)
        except OutOfMemory:
            refusals.append((i, m.R_OOM))
            continue
        if version > top:
            top = version
    return applied, expired, refusals, top


class _Waiter:
    __slots__ = ("client", "want", "fut", "timer")

    def __init__(self, client, want, fut):
        self.client, self.want, self.fut, self.timer = client, want, fut, None


class Replicator:
    def __init__(self, cluster):
        self.cluster = cluster
        self.server = cluster.server
        self.origin = cluster.node_id.encode("utf-8", "surrogateescape")
        self.offset = 0                 # last stream offset assigned
        self.streaming: list = []       # ready outbound links in our enclave
        self.waiters: list = []
        self.hooks_since: float | None = None   # monotonic: writes tracked since
        self._parts: list = []
        self._first = 0
        self._bytes = 0
        self._scheduled = False
        self._min_peer_bulk = 0
        self._next_sync_id = 0
        self.stats = dict.fromkeys((
            "writes_streamed", "batches_sent", "bytes_streamed", "writes_applied",
            "writes_received", "expired_on_arrival", "catchup_keys_sent", "catchup_keys_received",
            "catchups_served", "catchups_done", "queue_drops", "oversize_not_sent",
            "catchup_floors_sent", "deadlines_recorrected", "batches_received", "batches_lane"), 0)
        self.refused_received = dict.fromkeys(m.REASONS, 0)
        self.refused_by_peers = dict.fromkeys(m.REASONS, 0)

    # -- sender: the write stream ----------------------------------------------

    def local_write(self, client, key: bytes) -> None:
        """After every successful local write (Server.wrote)."""
        off = self.offset = self.offset + 1
        if client is not None:
            if not client.write_offset:
                client.repl_lo = off
            client.write_offset = off
        if not self.streaming:
            return
        e = self.server.keyspace.data[key]
        v = e[0]
        if len(v) > self._min_peer_bulk or len(key) > self._min_peer_bulk:
            self._oversize(key, e, off)
            return
        vb = b"%d" % e[2]
        if not self._parts:
            self._first = off
        self._parts.append(b"$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n$%d\r\n%s\r\n" % (
            len(key), key, len(v), v, e[1], len(vb), vb))
        self._bytes += len(v) + len(key)
        if not self._scheduled:
            self._scheduled = True
            self.cluster.loop.call_soon(self.flush)
        elif self._bytes > FLUSH_BYTES or len(self._parts) >= MAX_BATCH_ENTRIES:
            self.flush()

    def flush(self) -> None:
        self._scheduled = False
        parts = self._parts
        if not parts:
            return
        self._parts = []
        self._bytes = 0
        data = m.batch_head(self.origin, self._first, self.server.clock(), len(parts)) + b"".join(parts)
        self._send(data, len(parts))

    def _send(self, data: bytes, n: int) -> None:
        limit = self.server.config.cluster_peer_queue_limit_bytes
        st = self.stats
        for link in list(self.streaming):
            if link.unsent_bytes() > limit:
                st["queue_drops"] += 1
                self.cluster.drop_slow(link)
                continue
            link.transport.write(data)
            st["writes_streamed"] += n
            st["batches_sent"] += 1
            st["bytes_streamed"] += len(data)

    def _oversize(self, key: bytes, e: tuple, off: int) -> None:
        """A value bigger than some peer's proto-max-bulk-len: sent alone to
        the peers that take it, counted as refused for the others."""
        self.flush()
        data = m.batch_head(self.origin, off, self.server.clock(), 1) + m.entry(key, e[0], e[1], e[2])
        size = max(len(key), len(e[0]))
        for link in list(self.streaming):
            if size <= link.remote_max_bulk:
                link.transport.write(data)
                self.stats["writes_streamed"] += 1
            else:
                self.stats["oversize_not_sent"] += 1
                self._note_refusal(link, off, m.R_SIZE, key)

    def add_stream(self, link) -> None:
        link.streaming = True
        link.stream_start = self._first if self._parts else self.offset + 1
        link.acked = link.stream_start - 1
        link.last_ack_at = time.monotonic()
        self.streaming.append(link)
        self._min_peer_bulk = min(lk.remote_max_bulk for lk in self.streaming)

    def remove_stream(self, link) -> None:
        if link in self.streaming:
            self.streaming.remove(link)
        link.streaming = False
        if self.streaming:
            self._min_peer_bulk = min(lk.remote_max_bulk for lk in self.streaming)
        else:
            # Nobody to send to: a batch in progress would otherwise leave a
            # hole in the offsets of the next link's stream.
            self._parts = []
            self._bytes = 0

    def on_ack(self, link, offset: int) -> None:
        if offset > link.acked:
            link.acked = offset
        link.last_ack_at = time.monotonic()
        if self.waiters:
            self.check_waiters()

    def on_rej(self, link, offset: int, reason: bytes, key: bytes) -> None:
        if reason not in self.refused_by_peers:
            reason = b"other"       # a newer peer's reason we do not know
        self._note_refusal(link, offset, reason, key)

    def _note_refusal(self, link, offset: int, reason: bytes, key: bytes) -> None:
        self.refused_by_peers[reason] = self.refused_by_peers.get(reason, 0) + 1
        peer = link.peer
        if peer is not None:
            peer.refused[reason] = peer.refused.get(reason, 0) + 1
        if offset:
            ro = link.refused_offsets
            ro.append(offset)
            if len(ro) > REFUSED_OFFSETS_KEPT:
                del ro[:len(ro) - REFUSED_OFFSETS_KEPT]
        if log.isEnabledFor(logging.DEBUG):
            log.debug("peer %s refused key %r (%s)", link.describe(), key[:200],
                      reason.decode("ascii", "replace"))

    # -- WAIT ------------------------------------------------------------------

    def acked_count(self, client) -> int:
        """Live peers holding every write this connection made."""
        hi = client.write_offset
        lo = client.repl_lo if hi else 0
        # Were all of this client's writes numbered?  Only if offsets were
        # being assigned since before the client connected.
        tracked = self.hooks_since is not None and client.created >= self.hooks_since
        n = 0
        for link in self.streaming:
            if link.acked < hi:
                continue
            if not link.synced and not (tracked and (not hi or link.stream_start <= lo)):
                continue
            if hi and link.refused_offsets and any(lo <= r <= hi for r in link.refused_offsets):
                continue
            n += 1
        return n

    def wait(self, client, want: int, timeout_ms: int):
        n = self.acked_count(client)
        if n >= want or client.in_exec:
            return integer(n)
        loop = self.cluster.loop
        w = _Waiter(client, want, loop.create_future())
        if timeout_ms:
            w.timer = loop.call_later(timeout_ms / 1000.0, self._wait_timeout, w)
        self.waiters.append(w)
        w.fut.add_done_callback(lambda _f, w=w: self._wait_gone(w))
        return w.fut

    def _wait_timeout(self, w: _Waiter) -> None:
        w.timer = None
        if not w.fut.done():
            w.fut.set_result(integer(self.acked_count(w.client)))

    def _wait_gone(self, w: _Waiter) -> None:
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        try:
            self.waiters.remove(w)
        except ValueError:
            pass

    def check_waiters(self) -> None:
        for w in list(self.waiters):
            if w.fut.done():
                continue
            n = self.acked_count(w.client)
            if n >= w.want:
                w.fut.set_result(integer(n))

    def release_waiters(self) -> None:
        """Shutdown: answer every WAIT with what it has."""
        for w in list(self.waiters):
            if not w.fut.done():
                w.fut.set_result(integer(self.acked_count(w.client)))

    # -- receiver --------------------------------------------------------------

    def _apply(self, link, f: list, start: int, sent_ms: int | None):
        server = self.server
        notify = None
        if server.pubsub.wants("$"):
            notify = lambda k, _n=server.pubsub.notify: _n("$", b"set", k)  # noqa: E731
        applied, expired, refusals, top = apply_entries(
            server.keyspace, f, start, link.clock.adjust_ms, server.clock(),
            limits_of(server.config), sent_ms, notify)
        if top:
            server.hlc.observe(top)
        if applied and link.clock.delta_us > RECORRECT_DELTA_US:
            self._note_converted(link, f, start)
        st = self.stats
        st["writes_received"] += (len(f) - start) // m.ENTRY_FIELDS
        st["writes_applied"] += applied
        st["expired_on_arrival"] += expired
        return applied, refusals

    # -- deadline re-correction -------------------------------------------------

    def _note_converted(self, link, f: list, start: int) -> None:
        """The link's best clock sample is poor (a reconnect under load):
        remember (key, version, sender deadline) of what it brought, so the
        deadlines can be moved later once a better sample arrives."""
        lst = link.converted
        if lst is None:
            if time.monotonic() - link.created > RECORRECT_WINDOW_S:
                return
            lst = link.converted = []
            link.converted_adjust = link.clock.adjust_ms
        room = RECORRECT_MAX - len(lst)
        if room <= 0:
            return
        for i in range(start, min(len(f), start + room * m.ENTRY_FIELDS), m.ENTRY_FIELDS):
            lst.append((f[i], f[i + 3], f[i + 2]))

    def clock_improved(self, link) -> None:
        """A new clock sample: if it moves deadlines later (a tighter
        interval), re-convert what the poor sample converted."""
        lst = link.converted
        if lst is None:
            return
        ck = link.clock
        gain = ck.adjust_ms - link.converted_adjust
        good = ck.delta_us <= RECORRECT_DELTA_US
        t = time.monotonic()
        if gain >= RECORRECT_MIN_GAIN_MS and (good or t - link.recorrected_at >= RECORRECT_EVERY_S):
            link.recorrected_at = t
            ks = self.server.keyspace
            now = self.server.clock()
            moved = 0
            for key, vb, d in lst:
                try:
                    v = int(vb)
                except ValueError:
                    continue
                if ks.extend_deadline(key, v, d + ck.adjust_ms, now):
                    moved += 1
            self.stats["deadlines_recorrected"] += moved
            link.converted_adjust = ck.adjust_ms
            if moved:
                log.info("clock sample from %s improved by %d ms: %d replica deadlines moved later",
                         link.describe(), gain, moved)
        if good or time.monotonic() - link.created > RECORRECT_WINDOW_S:
            link.converted = None

    def on_batch(self, link, f: list) -> None:
        if len(f) < m.BATCH_HEAD:
            raise m.MessageError("B: short header")
        origin = m.as_bytes(f[1], "origin")
        first = m.as_int(f[2], "offset")
        sent_ms = m.as_int(f[3], "sent")
        if origin != link.peer.node_id_bytes:
            raise m.MessageError("B: origin is not the link's peer")
        n = (len(f) - m.BATCH_HEAD) // m.ENTRY_FIELDS
        self.stats["batches_received"] += 1
        if link.peer.enclave != self.cluster.enclave:
            self._refuse_all(link, f, m.BATCH_HEAD, first)
        else:
            _, refusals = self._apply(link, f, m.BATCH_HEAD, sent_ms)
            if refusals:
                self._send_rejs(link, f, refusals, m.BATCH_HEAD, first)
        if sent_ms > link.seen_upto_ms:
            link.seen_upto_ms = sent_ms
        if n:
            link.ack_due = first + n - 1

    def on_cu(self, link, f: list) -> None:
        if len(f) < m.CU_HEAD:
            raise m.MessageError("CU: short header")
        sync_id = m.as_int(f[1], "sync id")
        if link.peer.enclave != self.cluster.enclave:
            self._refuse_all(link, f, m.CU_HEAD, 0)
            return
        t = time.thread_time() if sync_id == 0 else 0.0
        applied, refusals = self._apply(link, f, m.CU_HEAD, None)
        if sync_id == 0:                # entries anti-entropy fetched: its cost
            self.cluster.antientropy.busy_s += time.thread_time() - t
        self.stats["catchup_keys_received"] += (len(f) - m.CU_HEAD) // m.ENTRY_FIELDS
        link.sync_applied += applied
        if refusals:
            link.sync_refused += len(refusals)
            self._send_rejs(link, f, refusals, m.CU_HEAD, None)

    def _refuse_all(self, link, f, start, first) -> None:
        if (len(f) - start) % m.ENTRY_FIELDS:
            raise m.MessageError("entries are not groups of %d" % m.ENTRY_FIELDS)
        self._send_rejs(link, f, [(i, m.R_ENCLAVE) for i in range(start, len(f), m.ENTRY_FIELDS)],
                        start, first)

    def _send_rejs(self, link, f, refusals, start, first) -> None:
        out = []
        for i, reason in refusals:
            self.refused_received[reason] += 1
            off = 0 if first is None else first + (i - start) // m.ENTRY_FIELDS
            key = f[i] if f[i].__class__ is bytes else b""
            out.append(m.frame(m.REJ, off, reason, key))
            if log.isEnabledFor(logging.DEBUG):
                log.debug("refused key %r from %s (%s)", key[:200], link.describe(),
                          reason.decode("ascii"))
        link.write(b"".join(out))
        peer = link.peer
        for _, reason in refusals:
            peer.refused_from[reason] = peer.refused_from.get(reason, 0) + 1

    # -- catch-up: receiver ------------------------------------------------------

    def request_sync(self, link, since_ms: int) -> None:
        self._next_sync_id += 1
        link.sync_id = self._next_sync_id
        link.sync_since_ms = since_ms
        link.sync_started = time.monotonic()
        link.sync_applied = link.sync_refused = 0
        link.write(m.frame(m.SYNC, link.sync_id, since_ms))
        log.info("catch-up from %s requested (%s)", link.describe(),
                 "all keys" if since_ms == 0 else "versions since %d ms" % since_ms)

    def on_cuend(self, link, sync_id: int, count: int) -> None:
        if sync_id != link.sync_id:
            return
        link.write(m.frame(m.SYNCED, sync_id, link.sync_applied, link.sync_refused))
        self.stats["catchups_done"] += 1
        log.info("catch-up from %s done: %d keys received, %d applied, %d refused in %.2f s",
                 link.describe(), count, link.sync_applied, link.sync_refused,
                 time.monotonic() - link.sync_started)
        link.sync_id = 0
        self.cluster.sync_done(link)

    # -- catch-up: sender --------------------------------------------------------

    def on_sync_request(self, link, sync_id: int, since_ms: int) -> None:
        if link.catchup_task is not None:
            link.catchup_task.cancel()
        if link.peer.enclave != self.cluster.enclave:
            link.write(m.frame(m.CUEND, sync_id, 0))     # nothing crosses enclaves
            return
        link.catchup_task = asyncio.ensure_future(self._send_catchup(link, sync_id, since_ms))

    def on_synced(self, link, sync_id: int, applied: int, refused: int) -> None:
        link.synced = True
        if self.waiters:
            self.check_waiters()

    async def _send_catchup(self, link, sync_id: int, since_ms: int) -> None:
        ks = self.server.keyspace
        clock = self.server.clock
        since_v = max(0, since_ms) << VERSION_SHIFT
        # Stay well below the queue limit that would drop the peer: the
        # stream shares this link, and a dropped peer restarts its catch-up.
        chunk_bytes = min(CATCHUP_CHUNK_BYTES, self.server.config.cluster_peer_queue_limit_bytes // 4)
        limit = link.remote_max_bulk
        entry, floor_entry = m.entry, m.floor_entry
        sent = skipped = floors = 0
        t0 = time.monotonic()
        self.stats["catchups_served"] += 1
        c = self.cluster
        try:
            if (not c.full_synced and c.full_sync_link is not None
                    and c.full_sync_link.peer is not link.peer):
                log.info("catch-up to %s waits for our own catch-up from %s", link.describe(),
                         c.full_sync_link.describe())
                try:
                    await asyncio.wait_for(c.caught_up.wait(), SYNC_DEFER_MAX_S)
                except asyncio.TimeoutError:
                    pass
            for floor_pass in (False, True):
                last = None
                while link.state == "ready":
                    index = ks.floor_index if floor_pass else ks.index
                    data = ks.data
                    pos = 0 if last is None else index.bisect_right(last)
                    keys = list(index.islice(pos, pos + CATCHUP_CHUNK_KEYS))
                    if not keys:
                        break
                    now = clock()
                    parts = []
                    fls = []
                    nbytes = 0
                    for k in keys:
                        last = k
                        e = data.get(k)
                        if floor_pass:
                            f = ks.floor_of(k, now)
                            if f >= since_v and f and (e is None or e[2] < f):
                                fls.append(floor_entry(k, f))
                            continue
                        if e is None or e[2] < since_v:
                            continue
                        if now > e[1]:
                            fls.append(floor_entry(k, e[2]))
                            continue
                        v = e[0]
                        if len(v) > limit or len(k) > limit:
                            skipped += 1
                            continue
                        parts.append(entry(k, v, e[1], e[2]))
                        nbytes += len(k) + len(v)
                        if nbytes >= chunk_bytes:
                            break
                    if parts:
                        link.write(m.cu_head(sync_id, len(parts)) + b"".join(parts))
                        sent += len(parts)
                        self.stats["catchup_keys_sent"] += len(parts)
                    if fls:
                        link.write(m.floors_head(len(fls)) + b"".join(fls))
                        floors += len(fls)
                        self.stats["catchup_floors_sent"] += len(fls)
                    if link.paused:
                        await link.drained()
                    else:
                        await asyncio.sleep(0)
            if link.state == "ready":
                link.write(m.frame(m.CUEND, sync_id, sent))
                log.info("catch-up to %s: %d keys and %d floors sent in %.2f s%s", link.describe(),
                         sent, floors, time.monotonic() - t0,
                         " (%d over its proto-max-bulk-len skipped)" % skipped if skipped else "")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("catch-up to %s failed", link.describe())
            link.abort("catch-up failed")
        finally:
            if link.catchup_task is asyncio.current_task():
                link.catchup_task = None
