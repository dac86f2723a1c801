"""One peer connection: an asyncio Protocol around the frame reader.

Every ordered pair of nodes has its own connection: the node that dials is
the *sender* of its write stream on it, the node that accepts is the
*receiver* (it acknowledges, refuses, and asks for catch-up on that same
connection).  So A->B carries A's writes and B->A carries B's; no
connection ever carries a write in both directions, which keeps the offset
bookkeeping one-sided and makes a write loop impossible by construction.

Handshake (docs/PROTOCOL.md): dialer HELLO -> acceptor WELCOME (its proof
over the dialer's nonce) -> dialer AUTH (its proof over the acceptor's
nonce) -> acceptor READY.  Nothing but handshake frames is accepted before
that, the frame size is capped at ``HANDSHAKE_FRAME_BYTES`` until then, and
each of the three exchanges also yields one clock-offset sample for each
side.  After READY both sides PING every ``cluster-ping-interval-ms``.

Rules:
* A malformed or unexpected frame closes the link (logged), never the node.
* Any frame counts as "heard from the peer" (failure detection).
* Stream data is written without waiting: a peer whose unsent bytes pass
  ``cluster-peer-queue-limit`` is disconnected (the cluster drops it from
  streaming and it resynchronises through catch-up on its next link).
  Catch-up, which can be large, waits for the buffer to drain instead.
* The peer link never goes through client machinery: no maxclients, no
  timeout, no requirepass, no rate limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .. import lane
from . import auth
from . import messages as m
from .timesync import OffsetEstimator

log = logging.getLogger("repram.cluster")

HANDSHAKE = "handshake"
READY = "ready"
CLOSED = "closed"

HANDSHAKE_FRAME_BYTES = 64 * 1024      # no handshake frame is near this
WRITE_HIGH_BYTES = 1024 * 1024         # catch-up waits when more than this is unsent


def _skew_reason(c) -> str:
    return "clock skew beyond cluster-max-clock-skew-ms %d" % c.config.cluster_max_clock_skew_ms


class Link(asyncio.Protocol):
    def __init__(self, cluster, dialer: bool, target: tuple | None = None, peer_hint=None):
        self.cluster = cluster
        self.dialer = dialer
        self.target = target               # (host, port) we dialed
        self.peer_hint = peer_hint         # the Peer we meant to reach (None: a seed)
        self.was_ready = False
        self.detached = False
        self.state = HANDSHAKE
        self.transport = None
        self.reader = m.FrameReader(HANDSHAKE_FRAME_BYTES, m.HANDSHAKE_MAX_ELEMENTS)
        # The stream lane (lane.py): set once ready on a receiving link; it
        # keeps an incomplete last frame here while the Python reader is idle.
        self.lane = None
        self.lane_hold: bytearray | None = None
        self.lane_at = 0
        self.lane_left = 0
        self.lane_pending = 0
        self.created = self.heard = time.monotonic()
        self.addr = "?"                    # host:port of the other end, for logs
        self.observed_host = ""
        self.nonce = auth.new_nonce()
        self.remote: m.NodeInfo | None = None
        self.remote_nonce = b""
        self.remote_max_bulk = 0
        self.peer = None                   # membership.Peer once known
        self.clock = OffsetEstimator()
        self._ping_sent = None
        self._welcome_t3 = None
        self._paused = False
        self._drain_waiters: list = []
        self.close_reason = ""
        self.refused_by_peer = False       # the peer sent ERR during the handshake
        # Sender side (dialer): our write stream on this link.
        self.streaming = False
        self.stream_start = 0              # first offset this link carried
        self.acked = 0                     # every offset <= acked processed by the peer
        self.synced = False                # a catch-up to the peer completed on this link
        self.last_ack_at = 0.0
        self.refused_offsets: list = []    # recent offsets the peer refused (WAIT)
        self.catchup_task = None
        self.converted = None              # [(key, version, sender deadline)] while the clock is poor
        self.converted_adjust = 0
        self.recorrected_at = 0.0
        self.ae_queue = None               # anti-entropy frames the peer asked us to answer
        self.ae_task = None
        self.ae_cpu = 0.0                  # CPU answering the peer's rounds, not yet reported
        self.ae_counts = [0, 0, 0]         # ranges differing, keys, floors sent: not yet reported
        # Receiver side (acceptor): the peer's stream on this link.
        self.seen_upto_ms = 0              # peer clock: all its writes before this arrived
        self.ack_due = 0
        self.sync_id = 0                   # catch-up we asked for (0 = none running)
        self.sync_since_ms = 0
        self.sync_started = 0.0
        self.sync_applied = 0
        self.sync_refused = 0
        self.sync_completed = False
        self.gap_if_lost: int | None = None  # the since we asked for, until it completes

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        # Catch-up pauses above this; keep it well under the peer queue limit.
        transport.set_write_buffer_limits(high=min(
            WRITE_HIGH_BYTES, self.cluster.config.cluster_peer_queue_limit_bytes // 4))
        peer = transport.get_extra_info("peername")
        if peer:
            self.observed_host = peer[0]
            self.addr = "%s:%d" % (peer[0], peer[1])
        c = self.cluster
        c.link_made(self)
        if self.dialer:
            hello = m.Hello(m.PROTO_VERSION, c.self_info(), c.config.proto_max_bulk_bytes,
                            self.nonce, c.now_us())
            self.write(m.encode_hello(hello))

    def connection_lost(self, exc):
        self.state = CLOSED
        for f in self._drain_waiters:
            if not f.done():
                f.set_result(None)
        self._drain_waiters.clear()
        if self.catchup_task is not None:
            self.catchup_task.cancel()
        if self.ae_task is not None:
            self.ae_task.cancel()
        self.cluster.link_lost(self)

    def pause_writing(self):
        self._paused = True

    def resume_writing(self):
        self._paused = False
        for f in self._drain_waiters:
            if not f.done():
                f.set_result(None)
        self._drain_waiters.clear()

    @property
    def paused(self) -> bool:
        return self._paused

    async def drained(self) -> None:
        """Wait until the unsent bytes are below the high-water mark."""
        if not self._paused or self.state == CLOSED:
            return
        f = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(f)
        await f

    def data_received(self, data):
        if self.state == CLOSED:
            return
        self.heard = time.monotonic()
        try:
            if self.lane is not None and self.state == READY and (
                    self.lane_hold is not None or self.reader.idle()):
                data = self.lane(self, data)
                if data is None:
                    if self.ack_due:
                        self.write(b"*2\r\n$3\r\nACK\r\n:%d\r\n" % self.ack_due)
                        self.ack_due = 0
                    return
            frames = self.reader.feed(data)
            for f in frames:
                if self.state == READY:
                    self._dispatch(f)
                elif self.state == HANDSHAKE:
                    self._handshake(f)
                else:
                    return
            if self.ack_due:
                self.write(b"*2\r\n$3\r\nACK\r\n:%d\r\n" % self.ack_due)
                self.ack_due = 0
        except m.MessageError as e:
            # Issue 7: anyone who can reach the port can trigger this, so
            # once a minute per address at WARNING, DEBUG otherwise.
            log.log(self.cluster.warn_level(("proto", self.observed_host)),
                    "peer link %s: protocol error: %s; closing", self.describe(), e)
            self.cluster.stats["protocol_errors"] += 1
            self.abort("protocol error")
        except Exception:   # a bug must cost this link, not the node
            level = self.cluster.warn_level(("internal", self.observed_host))
            log.log(max(level, logging.ERROR) if level > logging.DEBUG else level,
                    "peer link %s: internal error; closing", self.describe(),
                    exc_info=level > logging.DEBUG)
            self.abort("internal error")

    def _lane_frame(self, data: bytes) -> None:
        """One complete frame the stream lane leaves to the Python path."""
        for f in self.reader.feed(data):
            self._dispatch(f)

    # -- sending ---------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.state != CLOSED and not self.transport.is_closing():
            self.transport.write(data)

    def unsent_bytes(self) -> int:
        t = self.transport
        return 0 if t is None else t.get_write_buffer_size()

    def close(self, reason: str = "") -> None:
        """Graceful: what is written still leaves."""
        if self.state != CLOSED and self.transport is not None:
            self.close_reason = self.close_reason or reason
            self.transport.close()

    def abort(self, reason: str = "") -> None:
        if self.transport is not None and self.state != CLOSED:
            self.close_reason = self.close_reason or reason
            self.transport.abort()

    def refuse(self, why: str) -> None:
        """Tell the other side why (one ERR frame), then close; nothing more
        from this connection is processed."""
        self.write(m.frame(m.ERR, why))
        self.close(why)
        self.state = CLOSED

    def ping(self) -> None:
        """One PING; only the newest one's PONG is used as a clock sample."""
        if self.state == READY:
            t1 = self.cluster.now_us()
            self._ping_sent = t1
            self.write(b"*2\r\n$4\r\nPING\r\n:%d\r\n" % t1)

    def describe(self) -> str:
        if self.remote is not None:
            return "%s (%s)" % (self.remote.node_id, self.addr)
        return self.addr

    # -- handshake -------------------------------------------------------------

    def _handshake(self, f: list) -> None:
        c = self.cluster
        kind = f[0]
        if kind == m.ERR:
            why = m.as_text(f[1], "reason", 512) if len(f) > 1 else "?"
            level = logging.DEBUG if why == "this is the node itself" else \
                c.warn_level(("refused", self.target, why))
            log.log(level, "peer %s refused the link: %s", self.describe(), why)
            self.refused_by_peer = True
            if why.startswith("clock skew"):
                c.skew_refused_by_peer(self)
            self.close_reason = "refused by peer: " + why
            c.handshake_refused(self, why)
            self.close()
            self.state = CLOSED
            return
        if not self.dialer and kind == m.HELLO and self.remote is None:
            t2 = c.now_us()
            h = m.decode_hello(f)
            if h.proto != m.PROTO_VERSION:
                log.log(c.warn_level(("proto", self.observed_host)),
                        "peer %s speaks protocol version %d, we speak %d; refused",
                        self.addr, h.proto, m.PROTO_VERSION)
                self.refuse("unsupported protocol version %d (this node speaks %d)"
                            % (h.proto, m.PROTO_VERSION))
                return
            self.remote = h.node
            self.remote_nonce = h.nonce
            self.remote_max_bulk = h.max_bulk
            why = c.check_hello(self, h)
            if why is not None:
                self.refuse(why)
                return
            me = c.self_info()
            proof = auth.proof(c.secret, "acceptor", h.nonce, self.nonce, h.node.node_id,
                               me.node_id, h.node.enclave, me.enclave)
            w = m.Welcome(m.PROTO_VERSION, me, c.config.proto_max_bulk_bytes, self.nonce, proof,
                          h.t1, t2, c.now_us())
            self._welcome_t3 = w.t3
            self.write(m.encode_welcome(w))
            return
        if self.dialer and kind == m.WELCOME and self.remote is None:
            t4 = c.now_us()
            w = m.decode_welcome(f)
            if w.proto != m.PROTO_VERSION:
                self.refuse("unsupported protocol version %d" % w.proto)
                return
            self.remote = w.node
            self.remote_nonce = w.nonce
            self.remote_max_bulk = w.max_bulk
            me = c.self_info()
            if not auth.verify(c.secret, w.proof, "acceptor", self.nonce, w.nonce, me.node_id,
                               w.node.node_id, me.enclave, w.node.enclave):
                log.log(c.warn_level(("auth", self.target)),
                        "peer %s at %s failed authentication (wrong or missing cluster-secret); "
                        "refused", w.node.node_id, self.addr)
                c.stats["auth_failures"] += 1
                self.refuse("authentication failed")
                return
            why = c.check_welcome(self, w)
            if why == "":
                self.close("duplicate")     # we already have a link to it: quietly
                self.state = CLOSED
                return
            if why is not None:
                self.refuse(why)
                return
            # t1 was our HELLO's send time, echoed back.
            self.clock.add(w.t1, w.t2, w.t3, t4)
            if not c.clock_ok(self):
                self.refuse(_skew_reason(c))
                return
            proof = auth.proof(c.secret, "dialer", self.nonce, w.nonce, me.node_id,
                               w.node.node_id, me.enclave, w.node.enclave)
            self.write(m.encode_auth(m.Auth(proof, w.t3, t4, c.now_us())))
            return
        if not self.dialer and kind == m.AUTH and self.remote is not None:
            t4 = c.now_us()
            a = m.decode_auth(f)
            me = c.self_info()
            r = self.remote
            if not auth.verify(c.secret, a.proof, "dialer", self.remote_nonce, self.nonce,
                               r.node_id, me.node_id, r.enclave, me.enclave):
                log.log(c.warn_level(("auth", self.observed_host, r.node_id)),
                        "peer %s at %s failed authentication (wrong or missing cluster-secret); "
                        "refused", r.node_id, self.addr)
                c.stats["auth_failures"] += 1
                self.refuse("authentication failed")
                return
            if a.t1 != self._welcome_t3:
                raise m.MessageError("AUTH does not answer our WELCOME")
            self.clock.add(a.t1, a.t2, a.t3, t4)
            if not c.clock_ok(self):
                self.refuse(_skew_reason(c))
                return
            self._ready()
            self.write(m.frame(m.READY))
            c.inbound_ready(self)
            return
        if self.dialer and kind == m.READY and self.remote is not None:
            self._ready()
            c.outbound_ready(self)
            return
        raise m.MessageError("unexpected %r during the handshake" % kind[:16])

    def _ready(self) -> None:
        self.state = READY
        if not self.dialer and self.cluster.server.lane_enabled:
            self.lane = lane.stream
        self.reader.max_pending_bytes = self.cluster.frame_limit_bytes()
        self.reader.max_elements = m.MAX_FRAME_ELEMENTS

    # -- after the handshake ---------------------------------------------------

    def _dispatch(self, f: list) -> None:
        kind = f[0]
        c = self.cluster
        r = c.replicator
        if kind == m.BATCH:
            if self.dialer:
                raise m.MessageError("write stream on the sender's own link")
            r.on_batch(self, f)
        elif kind == m.ACK:
            m.need(f, 2, "ACK")
            r.on_ack(self, m.as_int(f[1], "offset"))
        elif kind == m.PING:
            m.need(f, 2, "PING")
            t2 = c.now_us()
            t1 = m.as_int(f[1], "t1")
            if not self.dialer:
                # The sender flushes its stream before each PING, so every
                # write it makes later has a version at or after t1.
                ms = t1 // 1000
                if ms > self.seen_upto_ms:
                    self.seen_upto_ms = ms
            self.write(b"*4\r\n$4\r\nPONG\r\n:%d\r\n:%d\r\n:%d\r\n" % (t1, t2, c.now_us()))
        elif kind == m.PONG:
            m.need(f, 4, "PONG")
            t4 = c.now_us()
            t1 = m.as_int(f[1], "t1")
            if t1 == self._ping_sent:
                self.clock.add(t1, m.as_int(f[2], "t2"), m.as_int(f[3], "t3"), t4)
                self._ping_sent = None
                if not c.clock_ok(self):
                    c._detach(self)
                    self.refuse(_skew_reason(c))
                elif self.converted is not None:
                    r.clock_improved(self)
        elif kind == m.REJ:
            m.need(f, 4, "REJ")
            r.on_rej(self, m.as_int(f[1], "offset"), m.as_bytes(f[2], "reason"),
                     m.as_bytes(f[3], "key"))
        elif kind == m.CU:
            if self.dialer:
                raise m.MessageError("catch-up data on the sender's own link")
            r.on_cu(self, f)
        elif kind == m.CUEND:
            if self.dialer:
                raise m.MessageError("catch-up end on the sender's own link")
            m.need(f, 3, "CUEND")
            r.on_cuend(self, m.as_int(f[1], "sync id"), m.as_int(f[2], "count"))
        elif kind == m.SYNC:
            if not self.dialer:
                raise m.MessageError("catch-up request on the receiver's own link")
            m.need(f, 3, "SYNC")
            r.on_sync_request(self, m.as_int(f[1], "sync id"), m.as_int(f[2], "since"))
        elif kind == m.SYNCED:
            m.need(f, 4, "SYNCED")
            r.on_synced(self, m.as_int(f[1], "sync id"), m.as_int(f[2], "applied"),
                        m.as_int(f[3], "refused"))
        elif kind == m.FLOORS:
            if self.dialer:
                raise m.MessageError("floors on the sender's own link")
            c.antientropy.on_floors(self, f)
        elif kind == m.AE:
            if not self.dialer:
                raise m.MessageError("anti-entropy request on the receiver's own link")
            c.antientropy.on_ae(self, f)
        elif kind == m.AED:
            if not self.dialer:
                raise m.MessageError("anti-entropy request on the receiver's own link")
            c.antientropy.on_aed(self, f)
        elif kind == m.AES:
            if self.dialer:
                raise m.MessageError("anti-entropy summary on the sender's own link")
            c.antientropy.on_summary(self, f)
        elif kind == m.AEGET:
            if not self.dialer:
                raise m.MessageError("anti-entropy fetch on the receiver's own link")
            c.antientropy.on_aeget(self, f)
        elif kind == m.AEEND:
            if self.dialer:
                raise m.MessageError("anti-entropy answer on the sender's own link")
            m.need(f, 6, "AEEND")
            c.antientropy.on_aeend(self, m.as_int(f[1], "round"), m.as_int(f[2], "differing"),
                                   m.as_int(f[3], "keys"), m.as_int(f[4], "floors"),
                                   m.as_int(f[5], "cpu"))
        elif kind == m.NODES:
            c.on_gossip(self, m.decode_nodes(f))
        elif kind == m.BYE:
            why = m.as_text(f[1], "reason", 512) if len(f) > 1 else ""
            c.on_bye(self, why)
        elif kind == m.ERR:
            why = m.as_text(f[1], "reason", 512) if len(f) > 1 else "?"
            log.log(c.warn_level(("peer-err", self.observed_host)), "peer %s: %s", self.describe(), why)
            self.close("peer error")
        else:
            raise m.MessageError("unknown frame type %r" % kind[:16])
