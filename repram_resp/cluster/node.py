"""This node's side of the enclave: the ``Cluster`` object.

``Cluster`` is what ``Server.replication`` holds.  It owns the cluster-port
listener, every peer link, the membership table and the ``Replicator``
(write stream, acks, WAIT, catch-up).

Catch-up policy (which keys a node asks for when a peer's stream to it comes
up): the first peer after start is asked for everything (``since 0``); any
other for what the node may have missed from it -- entries whose version is
at or after the *watermark* of that peer's previous stream (the sender's
clock at its last batch or PING; the sender flushes before pinging, and HLC
versions never go below the wall clock, so every write it made after that is
included) -- widened to cover the open gaps of other peers that are still
away, so a write that only reached a peer that then died is still fetched.
A never-seen peer is asked for what changed since this node started.

Background work runs once per ``cluster-ping-interval-ms`` (``_tick``):
handshake timeouts, flush + PING on every link, gossip, failure detection,
dialing with backoff, seed re-bootstrap, min-replicas-to-write.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
import time
import uuid

from .. import errors
from ..clock import wall_ms
from . import messages as m
from . import ledger
from .antientropy import AntiEntropy
from .link import HANDSHAKE, READY, Link
from .membership import DOWN, NEW, SUSPECT, UP, Peer, Seed, backoff_s, parse_address, peer_state
from .replicator import CATCHUP_CHUNK_BYTES, FLUSH_BYTES, TTL_SLACK_MS, Replicator

log = logging.getLogger("repram.cluster")

GOSSIP_EVERY_S = 1.0          # NODES on every link at least this often
SYNC_MARGIN_MS = 2000         # widening of a gap measured with another node's clock
STOP_FLUSH_MAX_S = 3.0        # shutdown waits at most this long for peers' acks
REFUSAL_LOG_EVERY_S = 5.0     # refusals are logged as a summary, at most this often
SELF = "this is the node itself"
_CONNECTING = object()        # Peer.dialing while the TCP connect is in progress


class ClusterRefused(OSError):
    """The cluster cannot start as configured (the CLI prints it, exits 1)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "*", "")


def _clean(s: str) -> str:
    """An INFO value: no separators that would break ``k=v,k=v`` parsing."""
    for ch in ",=\r\n:":
        s = s.replace(ch, "_")
    return s


class Cluster:
    def __init__(self, server):
        self.server = server
        self.config = server.config
        self.loop: asyncio.AbstractEventLoop | None = None
        self.node_id = server.node_id
        self.run_id = uuid.uuid4().hex
        self.enclave = self.config.enclave
        self.secret = self.config.cluster_secret
        self.peers: dict[str, Peer] = {}
        self.seeds: list[Seed] = []
        self.links: set = set()
        self.listeners: list = []
        self.cport = 0
        self.announce_host = ""
        self.announce_port = 0
        self.source_addr = None
        self.replicator = Replicator(self)
        self.local_write = self.replicator.local_write     # the hot path, one lookup
        self.antientropy = AntiEntropy(self)
        # Every change of the keyspace is noted in the digest ledger from now
        # on (ledger.py); a keyspace with keys already (not at startup) is
        # entered as it stands.
        self.server.keyspace.ledger = ledger.seeded(self.server.keyspace)
        self.stats = dict.fromkeys(("auth_failures", "protocol_errors", "links_accepted",
                                    "dials", "dial_failures", "clock_skew_refusals"), 0)
        self.clock_skew_last = ""       # "node@+5000ms" of the last peer refused for its clock
        self.caught_up = asyncio.Event()    # set once our own first full catch-up is done
        self._floors_early_logged = 0
        self.started_ms = 0
        self.full_synced = False
        self.full_sync_link = None
        self._precise = server.clock is wall_ms
        self._task = None
        self._ticks = 0
        self._last_gossip = 0.0
        self._gossip_dirty = False
        self._wants = False
        self._stopping = False
        self._client_ctx = None
        self._server_ctx = None
        self._last_refusal_log = 0.0
        self._logged_refusals: dict = {}
        self._warned: dict = {}

    # -- Server.replication interface ------------------------------------------

    @property
    def wants_writes(self) -> bool:
        return self._wants

    def expired(self, key: bytes) -> None:
        """Every node expires a key by itself at its absolute deadline."""

    def config_changed(self, name: str) -> None:
        if name in ("min-replicas-to-write", "min-replicas-max-lag"):
            self._check_min_replicas()
        elif name in ("max-ttl", "cluster-max-clock-skew-ms", "cluster-floor-max-memory"):
            self._floor_settings()

    def _floor_settings(self) -> None:
        """Version floors (keyspace.py) are kept while an older write could
        still be alive anywhere: its version's time + max-ttl + the clock
        slack replication already allows for.  Only while the node has peers
        in its enclave: alone, nothing can bring an old value back."""
        cfg = self.config
        ks = self.server.keyspace
        ks.floor_retention_ms = (cfg.max_ttl_ms + cfg.cluster_max_clock_skew_ms + TTL_SLACK_MS
                                 if self._wants else 0)
        ks.floor_max_bytes = cfg.cluster_floor_max_bytes

    def skew_refused_by_peer(self, link) -> None:
        """The peer refused the link for our clocks' skew: count it here too."""
        nid = link.remote.node_id if link.remote is not None else "?"
        self.stats["clock_skew_refusals"] += 1
        self.clock_skew_last = "%s@refused-by-peer" % _clean(nid)
        peer = link.peer or self.peers.get(nid)
        if peer is not None:
            peer.clock_refused = True

    def clock_ok(self, link) -> bool:
        """False (logged, counted) when the link's clock sample proves the
        peer's clock is off by more than cluster-max-clock-skew-ms."""
        ck = link.clock
        if not ck.ready:
            return True
        skew_ms = (abs(ck.theta_us) - ck.delta_us / 2) / 1000.0
        limit = self.config.cluster_max_clock_skew_ms
        if skew_ms <= limit:
            return True
        nid = link.remote.node_id if link.remote is not None else "?"
        self.stats["clock_skew_refusals"] += 1
        self.clock_skew_last = "%s@%+.0fms" % (_clean(nid), ck.theta_us / 1000.0)
        peer = link.peer or self.peers.get(nid)
        if peer is not None:
            peer.clock_refused = True
        log.log(logging.ERROR if self.warn_level(("skew", nid)) == logging.WARNING else logging.DEBUG,
                "peer %s at %s: its clock is %+.0f ms from ours (at least %.0f ms off, "
                "cluster-max-clock-skew-ms %d); link refused until the clocks agree",
                nid, link.addr, ck.theta_us / 1000.0, skew_ms, limit)
        return False

    def warn_level(self, key, every_s: float = 60.0) -> int:
        """WARNING the first time (and once a minute) for a repeating
        condition such as a peer failing authentication; DEBUG otherwise,
        so a misconfigured peer that keeps redialing cannot flood the log."""
        now = time.monotonic()
        last = self._warned.get(key)
        if last is not None and now - last < every_s:
            return logging.DEBUG
        if len(self._warned) > 1024:
            self._warned.clear()
        self._warned[key] = now
        return logging.WARNING

    def now_us(self) -> int:
        """This node's clock in microseconds (the clock deadlines are in)."""
        if self._precise:
            return time.time_ns() // 1000
        return self.server.clock() * 1000

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        cfg = self.config
        self.started_ms = self.server.clock()
        self._floor_settings()
        try:
            self.seeds = [Seed(*parse_address(a)) for a in cfg.peers]
        except ValueError as e:
            raise ClusterRefused("bad value for 'peers': %s" % e) from None
        cport = cfg.cluster_port
        if cport < 0:
            cport = 0 if cfg.port == 0 else cfg.port + 10000
        if cport > 65535:
            raise ClusterRefused("cluster port %d (port + 10000) is out of range: set cluster-port"
                                 % cport)
        exposed = [h for h in cfg.bind if not _is_loopback(h)]
        if exposed and not self.secret and not cfg.cluster_trusted_network:
            raise ClusterRefused(
                "the cluster port would be reachable beyond loopback (bind %s) without "
                "cluster-secret: set cluster-secret, or cluster-trusted-network yes"
                % " ".join(exposed))
        if cfg.tls_cluster:
            self._server_ctx, self._client_ctx = self._tls_contexts()
        for host in cfg.bind:
            srv = await self.loop.create_server(lambda: Link(self, dialer=False), host, cport,
                                                ssl=self._server_ctx, reuse_address=True,
                                                backlog=511)
            self.listeners.append(srv)
            if cport == 0:
                cport = srv.sockets[0].getsockname()[1]
        self.cport = cport
        first = cfg.bind[0]
        self.announce_host = cfg.cluster_announce_ip or ("" if _is_wildcard(first) else first)
        self.announce_port = cfg.cluster_announce_port or cport
        if not _is_wildcard(first):
            self.source_addr = (first, 0)
        log.info("cluster port %d (node %s, enclave %s, %d seed%s%s)", cport, self.node_id,
                 self.enclave, len(self.seeds), "" if len(self.seeds) == 1 else "s",
                 ", tls" if cfg.tls_cluster else "")
        self._task = asyncio.ensure_future(self._run())
        self._tick()

    def _tls_contexts(self):
        cfg = self.config
        srv = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        srv.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
        cli = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        cli.check_hostname = False      # peers are addressed by IP; the CA vouches
        cli.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
        if cfg.tls_ca_cert_file:
            for ctx in (srv, cli):
                ctx.load_verify_locations(cfg.tls_ca_cert_file)
                ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            cli.verify_mode = ssl.CERT_NONE     # encryption only; cluster-secret authenticates
        return srv, cli

    async def stop(self, timeout_s: float) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        if self.antientropy.task is not None:
            self.antientropy.task.cancel()
        rep = self.replicator
        rep.flush()
        for srv in self.listeners:
            srv.close()
        bye = m.frame(m.BYE, "shutdown")
        for link in list(self.links):
            if link.state == READY:
                link.write(bye)
        deadline = time.monotonic() + min(timeout_s, STOP_FLUSH_MAX_S)
        while time.monotonic() < deadline and any(
                lk.acked < rep.offset or lk.unsent_bytes() for lk in rep.streaming):
            await asyncio.sleep(0.01)
        rep.release_waiters()
        for link in list(self.links):
            link.close("shutdown")
        while self.links and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for link in list(self.links):
            link.abort("shutdown")
            self._detach(link)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.config.cluster_ping_interval_ms / 1000.0)
            try:
                self._tick()
            except Exception:
                log.exception("cluster housekeeping failed")

    # -- who we are --------------------------------------------------------------

    def self_info(self) -> m.NodeInfo:
        http = self.server.http
        return m.NodeInfo(self.node_id, self.run_id, self.enclave, self.announce_host,
                          self.announce_port, self.server.port,
                          http_port=http.port if http is not None else 0)

    def frame_limit_bytes(self) -> int:
        """Largest incomplete frame a ready link may buffer: a batch (or a
        catch-up chunk) plus one entry whose key and value are each at our
        proto-max-bulk-len (peers never send bigger)."""
        return 2 * self.config.proto_max_bulk_bytes + FLUSH_BYTES + CATCHUP_CHUNK_BYTES + 65536

    # -- handshake callbacks (from Link) -------------------------------------------

    def link_made(self, link) -> None:
        self.links.add(link)
        hint = link.peer_hint
        if hint is not None and hint.dialing is _CONNECTING:
            hint.dialing = link

    def check_hello(self, link, h: m.Hello) -> str | None:
        nid = h.node.node_id
        if not nid:
            return "empty node id"
        if self._stopping:
            return "shutting down"
        if nid == self.node_id:
            if h.node.run_id == self.run_id:
                return SELF
            log.error("a node at %s claims our node id %s: refused (node-id must be unique)",
                      link.addr, nid)
            return "duplicate node id %s" % nid
        return None

    def check_welcome(self, link, w: m.Welcome) -> str | None:
        """Dialer side, after the acceptor proved itself.  None = go on;
        '' = close quietly (it is ourselves, or a link to it exists)."""
        nid = w.node.node_id
        seed = self._seed_at(link.target)
        if nid == self.node_id:
            if seed is not None:
                seed.node_id = ""
                seed.dialing = False
            return ""
        if not nid:
            return "empty node id"
        hint = link.peer_hint
        if hint is not None and hint.node_id != nid:
            # The address now belongs to another node: the old one moved or
            # was replaced; gossip tells us where it went, if anywhere.
            if hint.dialing is link:
                hint.dialing = None
            hint.host = ""
            link.peer_hint = None
            if hint.state == DOWN and not hint.links() and self.peers.get(hint.node_id) is hint:
                # Typically a restart without a fixed node-id: same address, new id.
                log.info("peer %s was replaced by %s at %s; forgetting it", hint.node_id, nid,
                         "%s:%d" % link.target)
                del self.peers[hint.node_id]
                self._update_hooks()
        peer = self.peers.get(nid)
        if peer is not None:
            if peer.run_id == w.node.run_id and (
                    (peer.out is not None and peer.out.state == READY)
                    or (peer.dialing is not None and peer.dialing is not link
                        and peer.dialing is not _CONNECTING)):
                return ""
            peer.dialing = link
            link.peer_hint = peer       # so that losing this link frees peer.dialing
        return None

    def handshake_refused(self, link, why: str) -> None:
        if why == SELF:
            seed = self._seed_at(link.target)
            if seed is not None:
                seed.node_id = ""

    def outbound_ready(self, link) -> None:
        w = link.remote
        peer = self._peer_for(w, link.target[0], link.target[1])
        self._check_incarnation(peer, w.run_id, keep=link)
        link.peer = peer
        now = time.monotonic()
        link.was_ready = True
        if peer.dialing is link:
            peer.dialing = None
        if peer.out is not None and peer.out is not link:
            # Two dials raced: the acceptor keeps the newest inbound link, so do we.
            old = peer.out
            self._detach(old)
            old.close("superseded")
        peer.out = link
        peer.fails = 0
        peer.clock_refused = False
        peer.dial_refused = peer.left = False
        peer.heard = now
        seed = self._seed_at(link.target)
        if seed is not None:
            seed.node_id = peer.node_id
            seed.dialing = False
            seed.fails = 0
        if peer.enclave == self.enclave:
            self.replicator.add_stream(link)
        link.write(self._gossip_frame())
        log.info("link to %s (%s, enclave %s) up", peer.node_id, peer.address, peer.enclave)
        self._update_state(peer, now)
        self._update_hooks()
        self._check_min_replicas()
        if self.replicator.waiters:
            self.replicator.check_waiters()

    def inbound_ready(self, link) -> None:
        node = link.remote
        self.stats["links_accepted"] += 1
        peer = self._peer_for(node, link.observed_host, node.cport)
        self._check_incarnation(peer, node.run_id, keep=link)
        now = time.monotonic()
        link.was_ready = True
        if peer.inn is not None and peer.inn is not link:
            old = peer.inn
            self._detach(old)
            old.abort("replaced by a new link")
        link.peer = peer
        peer.inn = link
        peer.clock_refused = False
        peer.heard = now
        peer.dial_refused = peer.left = False
        if peer.out is None and peer.dialing is None and peer.host and peer.cport:
            peer.fails = 0              # it is alive: dial back now
            self._dial(peer.host, peer.cport, peer=peer)
        link.write(self._gossip_frame())
        self._update_state(peer, now)
        self._update_hooks()
        if peer.enclave == self.enclave:
            self._start_sync(link)

    # -- links going away -------------------------------------------------------

    def link_lost(self, link) -> None:
        ready = getattr(link, "was_ready", False)
        peer = link.peer or link.peer_hint
        self._detach(link)
        if not link.dialer or self._stopping:
            if ready and peer is not None and not self._stopping:
                log.info("link from %s closed%s", link.describe(),
                         " (%s)" % link.close_reason if link.close_reason else "")
            return
        now = time.monotonic()
        cfg = self.config
        seed = self._seed_at(link.target)
        if seed is not None:
            seed.dialing = False
            if not ready and seed.node_id != "":
                self._seed_failed(seed, link.close_reason or "closed during the handshake")
        if peer is not None:
            if ready:
                peer.fails = 0
                log.info("link to %s closed%s", link.describe(),
                         " (%s)" % link.close_reason if link.close_reason else "")
            else:
                peer.fails += 1
            peer.next_dial = now + backoff_s(peer.fails, cfg.cluster_reconnect_min_ms,
                                             cfg.cluster_reconnect_max_ms)
            self._update_state(peer, now)

    def _detach(self, link) -> None:
        """Forget a link everywhere (idempotent); keeps the gap bookkeeping."""
        if getattr(link, "detached", False):
            return
        link.detached = True
        self.links.discard(link)
        if link.streaming:
            self.replicator.remove_stream(link)
            self._check_min_replicas()
        peer = link.peer
        hint = link.peer_hint
        if hint is not None and hint.dialing is link:
            hint.dialing = None
        if peer is None:
            return
        if peer.dialing is link:
            peer.dialing = None
        if peer.out is link:
            peer.out = None
        if peer.inn is link:
            peer.inn = None
            if link.seen_upto_ms > peer.seen_upto_ms:
                peer.seen_upto_ms = link.seen_upto_ms
            if peer.enclave == self.enclave:
                if link.sync_completed:
                    peer.gap_since_ms = max(link.seen_upto_ms, link.gap_if_lost or 0)
                elif link.gap_if_lost is not None:
                    peer.gap_since_ms = link.gap_if_lost if peer.gap_since_ms is None \
                        else min(peer.gap_since_ms, link.gap_if_lost)
                peer.gap_covered = False
            if self.full_sync_link is link:
                self.full_sync_link = None
                self._maybe_full_sync()

    def drop_slow(self, link) -> None:
        peer = link.peer
        if peer is not None:
            peer.drops += 1
        log.warning("peer %s fell behind: %d bytes unsent (cluster-peer-queue-limit %d); "
                    "dropped from streaming, it catches up when it reconnects",
                    link.describe(), link.unsent_bytes(),
                    self.config.cluster_peer_queue_limit_bytes)
        self._detach(link)
        link.abort("queue limit")

    def on_bye(self, link, why: str) -> None:
        peer = link.peer
        if peer is not None:
            peer.left = True
            log.info("peer %s is leaving (%s)", peer.node_id, why or "bye")
            self._detach(link)
            link.close("peer left")
            for lk in (peer.out, peer.inn):
                if lk is not None:
                    self._detach(lk)
                    lk.close("peer left")
            self._update_state(peer, time.monotonic())

    # -- peers -------------------------------------------------------------------

    def _peer_for(self, node: m.NodeInfo, seen_host: str, seen_port: int) -> Peer:
        peer = self.peers.get(node.node_id)
        if peer is None:
            peer = self.peers[node.node_id] = Peer(node.node_id)
            peer.state_since = time.monotonic()
            self._gossip_dirty = True
        peer.enclave = node.enclave
        peer.client_port = node.client_port
        peer.http_port = node.http_port     # from its handshake (0: it has none or did not say)
        host = node.host or seen_host
        port = node.cport or seen_port
        if host and port:
            peer.host, peer.cport = host, port
        return peer

    def _check_incarnation(self, peer: Peer, run_id: str, keep) -> None:
        if peer.run_id and run_id != peer.run_id:
            log.info("peer %s restarted (run id %s -> %s)", peer.node_id, peer.run_id[:8],
                     run_id[:8])
            peer.restarts += 1
            for lk in (peer.out, peer.inn, peer.dialing):
                if lk is not None and lk is not keep and lk is not _CONNECTING:
                    self._detach(lk)
                    lk.abort("peer restarted")
            peer.left = False
        peer.run_id = run_id

    def _seed_at(self, target) -> Seed | None:
        if not target:
            return None
        for s in self.seeds:
            if (s.host, s.port) == target:
                return s
        return None

    def _update_hooks(self) -> None:
        wants = any(p.enclave == self.enclave for p in self.peers.values())
        if wants != self._wants:
            self._wants = wants
            self.replicator.hooks_since = time.monotonic() if wants else None
            self.server.update_write_hooks()
            self._floor_settings()

    def _update_state(self, peer: Peer, now: float) -> None:
        cfg = self.config
        for lk in (peer.out, peer.inn):
            if lk is not None and lk.heard > peer.heard:
                peer.heard = lk.heard
        st = peer_state(peer, now, cfg.cluster_suspect_after_ms / 1000.0,
                        cfg.cluster_down_after_ms / 1000.0)
        if st != peer.state:
            if st == DOWN or peer.state in (DOWN, NEW) or st == UP:
                log.info("peer %s (%s, enclave %s) is %s", peer.node_id, peer.address,
                         peer.enclave, st)
            peer.state = st
            peer.state_since = now
            self._gossip_dirty = True

    # -- catch-up (receiver side) ---------------------------------------------------

    def _start_sync(self, link) -> None:
        peer = link.peer
        if not self.full_synced and self.full_sync_link is None:
            since = 0
            self.full_sync_link = link
        else:
            theta_ms = (link.clock.theta_us or 0) / 1000.0
            if peer.gap_since_ms is not None:
                since = peer.gap_since_ms
            else:
                # Never met: whatever it wrote since we started (older writes
                # came with the full catch-up from the first peer).
                since = int(self.started_ms + theta_ms) - SYNC_MARGIN_MS
            for p in self.peers.values():
                if (p is not peer and p.enclave == self.enclave and p.inn is None
                        and p.gap_since_ms is not None and not p.gap_covered):
                    since = min(since, p.gap_since_ms - SYNC_MARGIN_MS)
            since = max(0, since)
        link.gap_if_lost = since
        self.replicator.request_sync(link, since)

    def sync_done(self, link) -> None:
        peer = link.peer
        link.sync_completed = True
        peer.gap_since_ms = None
        since = link.sync_since_ms
        if link is self.full_sync_link:
            self.full_sync_link = None
            self.full_synced = True
            self.caught_up.set()
        self.antientropy.kick()
        for p in self.peers.values():
            if (p is not peer and p.inn is None and p.gap_since_ms is not None
                    and since <= p.gap_since_ms - SYNC_MARGIN_MS):
                p.gap_covered = True

    def _maybe_full_sync(self) -> None:
        if self.full_synced or self.full_sync_link is not None or self._stopping:
            return
        for p in self.peers.values():
            lk = p.inn
            if lk is not None and p.enclave == self.enclave and lk.state == READY:
                self.full_sync_link = lk
                lk.gap_if_lost = 0
                self.replicator.request_sync(lk, 0)
                return

    # -- gossip -----------------------------------------------------------------

    def _gossip_frame(self) -> bytes:
        nodes = [self.self_info()]
        for p in self.peers.values():
            if p.state in (UP, SUSPECT) and p.host and p.cport:
                nodes.append(m.NodeInfo(p.node_id, p.run_id, p.enclave, p.host, p.cport,
                                        p.client_port, p.state))
        return m.encode_nodes(nodes)

    def on_gossip(self, link, nodes: list) -> None:
        now = time.monotonic()
        changed = False
        for n in nodes:
            if not n.node_id or n.node_id == self.node_id or not n.host or not n.cport:
                continue
            p = self.peers.get(n.node_id)
            if p is None:
                if n.state not in (UP, SUSPECT):
                    continue
                p = self.peers[n.node_id] = Peer(n.node_id)
                p.enclave, p.host, p.cport, p.client_port = n.enclave, n.host, n.cport, n.client_port
                p.run_id = n.run_id
                p.state_since = p.next_dial = now
                changed = True
                log.info("learned of peer %s at %s (enclave %s) from %s", n.node_id, p.address,
                         n.enclave, link.describe())
            elif (p.out is None and p.inn is None and p.dialing is None and n.state == UP
                  and (p.host, p.cport) != (n.host, n.cport)):
                # It moved (restarted elsewhere) and others already see it there.
                p.host, p.cport = n.host, n.cport
                p.next_dial = now
        if changed:
            self._gossip_dirty = True
            self._update_hooks()

    # -- dialing -----------------------------------------------------------------

    def _dial(self, host: str, port: int, peer: Peer | None = None, seed: Seed | None = None):
        if peer is not None:
            peer.dialing = _CONNECTING
        if seed is not None:
            seed.dialing = True
        self.stats["dials"] += 1
        asyncio.ensure_future(self._connect(host, port, peer, seed))

    async def _connect(self, host: str, port: int, peer, seed) -> None:
        timeout = self.config.cluster_handshake_timeout_ms / 1000.0

        def factory():
            return Link(self, dialer=True, target=(host, port), peer_hint=peer)
        kw = {}
        if self._client_ctx is not None:
            kw = {"ssl": self._client_ctx, "server_hostname": host}
        refused = False
        try:
            try:
                await asyncio.wait_for(self.loop.create_connection(
                    factory, host, port, local_addr=self.source_addr, **kw), timeout)
            except OSError as e:
                if self.source_addr is None or isinstance(e, ConnectionRefusedError):
                    raise
                # Our bind address cannot reach that peer: let the OS choose.
                await asyncio.wait_for(self.loop.create_connection(factory, host, port, **kw),
                                       timeout)
            return
        except ConnectionRefusedError:
            refused = True
        except (OSError, asyncio.TimeoutError, ssl.SSLError) as e:
            log.debug("dial %s:%d failed: %r", host, port, e)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dial %s:%d failed", host, port)
        self.stats["dial_failures"] += 1
        now = time.monotonic()
        cfg = self.config
        if peer is not None and peer.dialing is _CONNECTING:
            peer.dialing = None
            peer.fails += 1
            peer.dial_refused = refused
            peer.next_dial = now + backoff_s(peer.fails, cfg.cluster_reconnect_min_ms,
                                             cfg.cluster_reconnect_max_ms)
            self._update_state(peer, now)
        if seed is not None:
            seed.dialing = False
            self._seed_failed(seed, "connection refused" if refused else "unreachable")

    def _seed_failed(self, seed: Seed, why: str) -> None:
        cfg = self.config
        seed.fails += 1
        seed.next_dial = time.monotonic() + backoff_s(seed.fails, cfg.cluster_reconnect_min_ms,
                                                      cfg.cluster_rebootstrap_interval_ms)
        n = seed.fails
        if n in (1, 10, 100) or n % 1000 == 0:
            log.log(logging.INFO if n == 1 else logging.WARNING,
                    "cannot reach seed %s:%d (%s)%s; retrying", seed.host, seed.port, why,
                    "" if n == 1 else ", %d attempts so far" % n)

    # -- housekeeping ------------------------------------------------------------

    def _tick(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        cfg = self.config
        self._ticks += 1
        hs = cfg.cluster_handshake_timeout_ms / 1000.0
        down_s = cfg.cluster_down_after_ms / 1000.0
        for link in list(self.links):
            if link.state == HANDSHAKE and now - link.created > hs:
                log.info("handshake with %s timed out", link.describe())
                link.abort("handshake timeout")
            elif link.state == READY and now - link.heard > down_s:
                # Both ends PING every link, so a silent one is broken even if
                # the peer is heard on its other link (one-way failure).
                log.warning("link %s %s silent for %.1f s; closing it",
                            "to" if link.dialer else "from", link.describe(), now - link.heard)
                self._detach(link)
                link.abort("silent")
        # Flush first: a PING promises that every write before it was sent.
        self.replicator.flush()
        gossip = None
        if self._gossip_dirty or now - self._last_gossip >= GOSSIP_EVERY_S:
            gossip = self._gossip_frame()
            self._gossip_dirty = False
            self._last_gossip = now
        for link in list(self.links):
            if link.state == READY:
                link.ping()
                if gossip is not None:
                    link.write(gossip)
        forget_s = cfg.cluster_forget_after_ms / 1000.0
        seed_ids = {s.node_id for s in self.seeds if s.node_id}
        for peer in list(self.peers.values()):
            self._update_state(peer, now)
            if (peer.state == DOWN and now - peer.state_since > forget_s
                    and peer.node_id not in seed_ids and not peer.links()):
                log.info("forgetting peer %s (down for %.0f s)", peer.node_id, now - peer.state_since)
                del self.peers[peer.node_id]
                self._update_hooks()
                continue
            if (peer.out is None and peer.dialing is None and peer.host and peer.cport
                    and now >= peer.next_dial):
                self._dial(peer.host, peer.cport, peer=peer)
        for seed in self.seeds:
            if seed.node_id == "" or seed.dialing or now < seed.next_dial:
                continue
            p = self.peers.get(seed.node_id) if seed.node_id else None
            if p is not None and (p.host, p.cport) == (seed.host, seed.port):
                continue        # the peer's own redial covers this address
            seed.next_dial = now + cfg.cluster_rebootstrap_interval_ms / 1000.0
            self._dial(seed.host, seed.port, seed=seed)
        self._check_min_replicas()
        self.antientropy.tick(now)
        if now - self._last_refusal_log >= REFUSAL_LOG_EVERY_S:
            self._last_refusal_log = now
            self._log_refusals()
            self._log_floors()

    def _log_floors(self) -> None:
        ks = self.server.keyspace
        n = ks.floors_retired_early
        if n > self._floors_early_logged:
            log.warning("%d version floors retired early since the last report "
                        "(cluster-floor-max-memory %d bytes reached; %d kept): an older write "
                        "to those keys still alive on a partitioned node could reappear on repair",
                        n - self._floors_early_logged, ks.floor_max_bytes, len(ks.floors))
            self._floors_early_logged = n

    def _check_min_replicas(self) -> None:
        cfg = self.config
        server = self.server
        need = cfg.min_replicas_to_write
        refuse = False
        if need > 0:
            now = time.monotonic()
            lag = cfg.min_replicas_max_lag_s
            good = sum(1 for lk in self.replicator.streaming if now - lk.heard <= lag)
            refuse = good < need
        if refuse:
            if server.write_refusal is None:
                log.warning("fewer than %d good peers: refusing writes (min-replicas-to-write)", need)
            server.write_refusal = errors.NOREPLICAS
        elif server.write_refusal == errors.NOREPLICAS:
            log.info("enough good peers again: accepting writes")
            server.write_refusal = None

    def good_replicas(self) -> int:
        now = time.monotonic()
        lag = self.config.min_replicas_max_lag_s
        return sum(1 for lk in self.replicator.streaming if now - lk.heard <= lag)

    def _log_refusals(self) -> None:
        for p in self.peers.values():
            for label, counts in (("refused %d of our writes", p.refused),
                                  ("sent %d writes we refused", p.refused_from)):
                total = sum(counts.values())
                key = (p.node_id, label)
                before = self._logged_refusals.get(key, 0)
                if total > before:
                    self._logged_refusals[key] = total
                    log.warning("peer %s " + label + " since the last report (%s)", p.node_id,
                                total - before, ", ".join(
                                    "%s: %d" % (r.decode(), n) for r, n in sorted(counts.items())))

    # -- INFO ----------------------------------------------------------------------

    def enclave_size(self) -> int:
        return 1 + sum(1 for p in self.peers.values()
                       if p.enclave == self.enclave and p.state in (UP, SUSPECT))

    def info_fields(self) -> list:
        cfg = self.config
        rep = self.replicator
        now = time.monotonic()
        size = self.enclave_size()
        rf = cfg.replication_factor
        out = [
            ("role", "master"), ("connected_slaves", len(rep.streaming)),
            ("node_id", _clean(self.node_id)), ("cluster_run_id", self.run_id),
            ("enclave", _clean(self.enclave)), ("cluster_port", self.cport),
            ("cluster_announce", "%s:%d" % (self.announce_host or "-", self.announce_port)),
            ("cluster_tls", int(bool(cfg.tls_cluster))),
            ("cluster_auth", int(bool(self.secret))),
            ("enclave_size", size), ("replication_factor", rf),
            ("quorum", min(size, rf) // 2 + 1),
            ("min_replicas_to_write", cfg.min_replicas_to_write),
            ("good_replicas", self.good_replicas()),
            ("write_refusal", "noreplicas" if self.server.write_refusal == errors.NOREPLICAS
             else "none"),
            ("master_repl_offset", rep.offset),
            ("catchup", "done" if self.full_synced else
             ("in_progress" if self.full_sync_link is not None else "pending")),
            ("peers", len(self.peers)),
        ]
        for i, p in enumerate(sorted(self.peers.values(), key=lambda p: p.node_id)):
            lk = p.out
            clock_lk = p.out or p.inn
            fields = [
                ("id", _clean(p.node_id)), ("addr", p.address), ("client_port", p.client_port),
                ("enclave", _clean(p.enclave)), ("state", p.state),
                ("since_s", "%.1f" % (now - p.state_since)),
                ("run_id", p.run_id[:16] or "-"),
                ("link_out", "streaming" if lk is not None and lk.streaming else
                 ("ready" if lk is not None else ("dialing" if p.dialing is not None else "none"))),
                ("link_in", "ready" if p.inn is not None else "none"),
                ("acked", lk.acked if lk is not None else 0),
                ("behind", rep.offset - lk.acked if lk is not None and lk.streaming else 0),
                ("lag", int(now - lk.heard) if lk is not None else -1),
                ("synced", int(bool(lk is not None and lk.synced))),
                ("rtt_ms", "%.3f" % (clock_lk.clock.delta_us / 1000.0)
                 if clock_lk is not None and clock_lk.clock.ready else "-"),
                ("clock_offset_ms", "%.3f" % (clock_lk.clock.theta_us / 1000.0)
                 if clock_lk is not None and clock_lk.clock.ready else "-"),
                ("refused", sum(p.refused.values())),
                ("refused_from", sum(p.refused_from.values())),
                ("queue_bytes", lk.unsent_bytes() if lk is not None else 0),
                ("drops", p.drops), ("restarts", p.restarts),
                ("clock_refused", int(p.clock_refused)),
            ]
            out.append(("peer%d" % i, ",".join("%s=%s" % kv for kv in fields)))
        st = rep.stats
        out += [
            ("repl_writes_streamed", st["writes_streamed"]),
            ("repl_batches_sent", st["batches_sent"]),
            ("repl_bytes_streamed", st["bytes_streamed"]),
            ("repl_writes_received", st["writes_received"]),
            ("repl_writes_applied", st["writes_applied"]),
            ("repl_batches_received", st["batches_received"]),
            ("repl_batches_lane", st["batches_lane"]),       # of them applied by the stream lane
            ("repl_expired_on_arrival", st["expired_on_arrival"]),
            ("repl_refused_received", sum(rep.refused_received.values())),
        ]
        out += [("repl_refused_received_%s" % r.decode(), n) for r, n in sorted(rep.refused_received.items())]
        out.append(("repl_refused_by_peers", sum(rep.refused_by_peers.values())))
        out += [("repl_refused_by_peers_%s" % r.decode(), n) for r, n in sorted(rep.refused_by_peers.items())]
        out += [
            ("repl_queue_drops", st["queue_drops"]),
            ("repl_catchup_keys_sent", st["catchup_keys_sent"]),
            ("repl_catchup_keys_received", st["catchup_keys_received"]),
            ("repl_catchups_served", st["catchups_served"]),
            ("repl_catchups_done", st["catchups_done"]),
            ("repl_deadlines_recorrected", st["deadlines_recorrected"]),
            ("cluster_auth_failures", self.stats["auth_failures"]),
            ("cluster_protocol_errors", self.stats["protocol_errors"]),
            ("cluster_dials", self.stats["dials"]),
            ("cluster_dial_failures", self.stats["dial_failures"]),
            ("cluster_max_clock_skew_ms", cfg.cluster_max_clock_skew_ms),
            ("cluster_clock_skew_refusals", self.stats["clock_skew_refusals"]),
            ("cluster_clock_skew_last_refused", self.clock_skew_last or "-"),
        ]
        out += self.antientropy.info_fields()
        return out
