"""The node: owns the keyspace, the listeners, the clients and the background
tasks, and runs the shutdown sequence.

Shutdown (SIGINT / SIGTERM / SHUTDOWN): stop accepting, let replies already
in flight leave (each transport is closed, which flushes its buffer), wait up
to ``shutdown-timeout`` for the transports to drain, then abort the rest and
return -- the CLI exits 0.

Active expiry: a timer armed at the earliest bucket deadline reclaims up to
``active-expire-batch-keys`` keys per turn of the event loop, yielding to
clients between batches, and re-arms itself (a write that creates an earlier
bucket re-arms it sooner).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import platform
import resource
import ssl
import sys
import time
import uuid

from . import REDIS_COMPAT_VERSION, __version__
from .clock import HLC, wall_ms
from .config import Config
from . import lane
from .connection import Client
from .introspect import Stats
from .keyspace import Keyspace
from .pubsub import PubSub
from .ratelog import RateLog
from .tracking import Tracking
from .acl import Acl

log = logging.getLogger("repram")

_LOGLEVELS = {"debug": logging.DEBUG, "verbose": logging.INFO, "notice": logging.INFO,
              "warning": logging.WARNING, "nothing": logging.CRITICAL + 10}
IDLE_CHECK_INTERVAL_S = 1.0
EXPIRY_MAX_SLEEP_S = 1.0


class Server:
    def __init__(self, config: Config, clock=wall_ms):
        self.config = config
        self.clock = clock
        # The instant commands see (refreshed by the connection before and
        # during every batch; see Client._run_batch).
        self.now = clock()
        self.node_id = config.node_id or uuid.uuid4().hex[:16]
        self.hlc = HLC(self.node_id)
        self.keyspace = Keyspace(config.maxmemory_bytes, config.scan_cursor_max_entries, self.hlc)
        self.pubsub = PubSub()
        self.pubsub.set_flags(config.notify_keyspace_events)
        self.pubsub.output_limit_bytes = config.pubsub_output_limit_bytes
        self.keyspace.on_expired = self._expired
        self.tracking = Tracking(self)
        self.acl = Acl(self)        # users (ACL SETUSER); 'default' follows requirepass
        self.clients: dict[int, Client] = {}
        self._next_client_id = 1
        self.servers: list[asyncio.AbstractServer] = []
        self.port = config.port
        self.tls_port = config.tls_port
        self.started_at = time.time()
        self._shutdown = None
        self._expiry_handle = None
        self._expiry_at = None
        self._tasks: list[asyncio.Task] = []
        self.replication = None     # set by the cluster layer when peers exist
        self.http = None            # the REPRAM HTTP API (http/), when http-port is set
        self.write_hooks = False    # True when wrote() has anything to do
        # When set, every write is refused with this error (NOREPLICAS while
        # min-replicas-to-write is not met); reads keep working.
        self.write_refusal: str | None = None
        # The fast lane (lane.py): lane_enabled says whether this node uses
        # it at all; lane_ok, the one check the connection makes, whether it
        # may run now (see update_lane).
        self.lane_enabled = lane.AVAILABLE
        self.lane_ok = False
        self.pause = None           # commands.admin.Pause while CLIENT PAUSE holds
        self.stats = Stats(self)
        self.update_write_hooks()
        self.reset_stats()
        # Issue 7: every log line a client can trigger goes through this.
        self.ratelog = RateLog(log)
        self.auth_failures = 0
        self._local_hosts: dict = {}    # peer host -> is loopback (protected mode)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._shutdown = asyncio.Event()
        cfg = self.config
        fit_fd_limit(cfg)
        for host in cfg.bind:
            srv = await loop.create_server(lambda: Client(self), host, self.port,
                                           reuse_address=True, backlog=511)
            self.servers.append(srv)
            if self.port == 0:
                self.port = srv.sockets[0].getsockname()[1]
        if cfg.tls_port:
            ctx = self.client_tls_context()
            for host in cfg.bind:
                srv = await loop.create_server(lambda: Client(self, tls=True), host, self.tls_port,
                                               ssl=ctx, reuse_address=True, backlog=511)
                self.servers.append(srv)
                if self.tls_port == 0:
                    self.tls_port = srv.sockets[0].getsockname()[1]
        # The HTTP API before the peer links too, so its port (OS-chosen with
        # http-port -1) is known and announced in the handshake.
        if cfg.http_port:
            from .http.protocol import HttpFrontend
            self.http = HttpFrontend(self)
            await self.http.start()
        # Peer links (replication): after the client listeners, so the client
        # port is known and announced; a refusal closes what was opened.
        # Issue 7: clustering is opt-in (config.Config.clustering); a single
        # node opens no cluster port at all.
        if cfg.clustering:
            from .cluster import Cluster
            cluster = Cluster(self)
            try:
                await cluster.start()
            except BaseException:
                for srv in self.servers:
                    srv.close()
                if self.http is not None:
                    await self.http.stop()
                raise
            self.replication = cluster
        self.update_write_hooks()
        self._arm_expiry()
        self._tasks.append(asyncio.ensure_future(self._idle_loop()))
        log.info("%s", lane.describe() if self.lane_enabled else "fast lane off: disabled for this server")
        log.info("repram-resp %s node %s ready on %s port %d%s", __version__, self.node_id,
                 ",".join(cfg.bind), self.port,
                 (" (tls %d)" % self.tls_port) if cfg.tls_port else "")

    def client_tls_context(self) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
        if cfg.tls_ca_cert_file:
            ctx.load_verify_locations(cfg.tls_ca_cert_file)
        return ctx

    async def serve_forever(self) -> None:
        await self.start()
        await self._shutdown.wait()
        await self.stop()

    def request_shutdown(self, reason: str) -> None:
        log.info("shutdown requested (%s)", reason)
        if self._shutdown is not None:
            self._shutdown.set()

    async def stop(self) -> None:
        for srv in self.servers:
            srv.close()
        if self.http is not None:
            self.http.stop_accepting()
        for t in self._tasks:
            t.cancel()
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        if self.replication is not None:
            await self.replication.stop(self.config.shutdown_timeout_s)
        clients = list(self.clients.values())
        for c in clients:
            if c.transport is not None and not c.transport.is_closing():
                c.transport.close()     # flushes what is already written
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while self.clients and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for c in list(self.clients.values()):
            c.kill()
        if self.http is not None:
            # After replication.stop: PUTs waiting for their quorum have been answered.
            await self.http.stop()
        for srv in self.servers:
            await srv.wait_closed()
        log.info("bye")

    # -- clients -------------------------------------------------------------

    def connections(self) -> int:
        """Client connections counted against maxclients: RESP and HTTP."""
        http = self.http
        return len(self.clients) + (len(http.connections) if http is not None else 0)

    def register(self, client: Client) -> bool:
        if self.connections() >= self.config.maxclients:
            self.stat_rejected += 1
            return False
        client.id = self._next_client_id
        self._next_client_id += 1
        self.clients[client.id] = client
        self.stat_connections += 1
        return True

    def unregister(self, client: Client) -> None:
        self.clients.pop(client.id, None)
        self.pubsub.drop_client(client)
        self.tracking.disable(client)

    def client_memory(self, c: Client) -> int:
        """Query + output buffer bytes of one client (issue 7)."""
        t = c.transport
        out = t.get_write_buffer_size() if t is not None and not c.closed else 0
        return c.parser.held_bytes + out + c._push_bytes

    def clients_memory(self) -> int:
        return sum(self.client_memory(c) for c in list(self.clients.values()))

    def enforce_clients_memory(self) -> int:
        """maxmemory-clients, as Redis 7: while all clients' buffers exceed
        it, close the client using the most.  Returns how many were closed."""
        limit = self.config.maxmemory_clients_bytes
        if not limit:
            return 0
        sized = [(self.client_memory(c), c) for c in list(self.clients.values())]
        total = sum(n for n, _ in sized)
        closed = 0
        if total > limit:
            sized.sort(key=lambda x: x[0], reverse=True)
            for n, c in sized:
                if total <= limit or n == 0:
                    break
                self.client_cut(c, "client memory over maxmemory-clients (%d bytes)" % limit)
                total -= n
                closed += 1
        return closed

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_INTERVAL_S)
            self.stats.per_second(self)
            self.enforce_clients_memory()
            limit = self.config.timeout_s
            if not limit:
                continue
            cutoff = time.monotonic() - limit
            for c in list(self.clients.values()):
                if c.last_active < cutoff and not c.channels and not c.patterns \
                        and not c.shard_channels:
                    log.debug("closing idle client %d", c.id)
                    c.kill()

    def log_auth_failure(self, client: Client) -> None:
        # Issue 7: a summary at most every 10 s, never a line per guess.
        self.auth_failures += 1
        self.ratelog.event(logging.WARNING, "auth", "failed authentication from %s", client.addr)

    def client_cut(self, client: Client, why: str) -> None:
        """Disconnect a client for cause (logged, rate-limited)."""
        self.ratelog.event(logging.WARNING, ("cut", why), "closing client %s: %s", client.addr, why)
        client.kill()

    def protected_refuses(self, peer) -> bool:
        """Redis's protected mode: no password, and the client is not on
        loopback or a Unix socket."""
        cfg = self.config
        if not cfg.protected_mode or cfg.requirepass:
            return False
        if not isinstance(peer, tuple) or not peer:
            return False        # Unix socket (or unknown): local
        host = peer[0]
        local = self._local_hosts.get(host)
        if local is None:
            try:
                local = ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                local = False
            if len(self._local_hosts) > 4096:
                self._local_hosts.clear()
            self._local_hosts[host] = local
        return not local

    # -- writes and expiry ---------------------------------------------------

    def update_write_hooks(self) -> None:
        # The cluster wants writes once a peer of our enclave is known; a
        # single node's SET path stays hook-free.
        self.write_hooks = ((self.replication is not None and self.replication.wants_writes)
                            or self.pubsub.wants("$") or self.pubsub.wants("g"))
        # Keyspace-level hook (every write: local, replicated, HTTP): only
        # while a client tracks keys or someone listens for 'new'.
        tracking, new = self.tracking.clients, self.pubsub.wants("n")
        ks = self.keyspace
        ks.write_hook = self._on_write
        if tracking and not new and not self.tracking.prefixes:
            ks.on_write = self.tracking.table     # only keys some client cached matter
        elif tracking or new:
            ks.on_write = _EVERY_KEY
        else:
            ks.on_write = None
        self.update_lane()

    def update_lane(self) -> None:
        """Recompute the fast lane's gate: off while any observer would see
        the difference between a lane command and a Python one (lane.py):
        notifications a SET publishes ('$' set, 'g' expire) and commands
        watched one by one (MONITOR, slowlog-log-slower-than 0:
        Stats.instrumented).  The keyspace's write hook (client tracking,
        'new' events) does not close the lane: its overwrites of watched keys
        go through Keyspace.put, which runs the hook, and tracking clients
        themselves take the gated Python path.
        Features that watch single commands or keys add their condition here
        and call this when it changes."""
        stats = getattr(self, "stats", None)
        self.lane_ok = (self.lane_enabled and not self.pubsub.wants("$") and not self.pubsub.wants("g")
                        and not (stats is not None and stats.instrumented))

    def wrote(self, client, key: bytes, ttl_given: bool = False, event: bytes | None = None) -> None:
        """After every successful local write (ttl_given: the command set the
        TTL itself, so Redis also publishes 'expire'; event: a generic event
        Redis publishes instead, e.g. RESTORE's 'restore')."""
        if event is not None:
            self.pubsub.notify("g", event, key)
        else:
            self.pubsub.notify("$", b"set", key)
            if ttl_given:
                self.pubsub.notify("g", b"expire", key)
        if self.replication is not None:
            self.replication.local_write(client, key)

    def _on_write(self, key: bytes, created: bool) -> None:
        """Keyspace.on_write: every stored write, from any source."""
        if created:
            self.pubsub.notify("n", b"new", key)
        if self.tracking.clients:
            self.tracking.invalidate(key)

    def _expired(self, key: bytes) -> None:
        self.pubsub.notify("x", b"expired", key)
        if self.tracking.clients:
            self.tracking.invalidate(key)
        if self.replication is not None:
            self.replication.expired(key)

    def _arm_expiry(self) -> None:
        loop = asyncio.get_running_loop()
        nd = self.keyspace.next_deadline()
        delay = EXPIRY_MAX_SLEEP_S if nd is None else max(0.0, (nd - self.clock()) / 1000.0)
        delay = min(delay, EXPIRY_MAX_SLEEP_S)
        if self._expiry_handle is not None:
            self._expiry_handle.cancel()
        self._expiry_at = nd
        self._expiry_handle = loop.call_later(delay, self._expire_tick)
        self.keyspace.on_new_bucket = self._maybe_rearm

    def _maybe_rearm(self, bucket_deadline: int) -> None:
        if self._expiry_at is None or bucket_deadline < self._expiry_at:
            self._arm_expiry()

    def _expire_tick(self) -> None:
        budget = self.config.expire_batch_keys
        stats = self.stats
        stats.sample_memory()       # memory only shrinks by reclaiming: the peak is now
        t0 = time.perf_counter_ns()
        n = self.keyspace.reclaim(self.clock(), budget)
        stats.timed("expire-cycle", time.perf_counter_ns() - t0)
        if n >= budget:
            stats.expire_cap_hits += 1
            # More is due: yield to clients, then continue.
            self._expiry_at = 0
            self._expiry_handle = asyncio.get_running_loop().call_soon(self._expire_tick)
            return
        self._arm_expiry()

    # -- config --------------------------------------------------------------

    def apply_config(self, name: str) -> None:
        cfg = self.config
        if name == "maxmemory":
            self.keyspace.maxmemory_bytes = cfg.maxmemory_bytes
        elif name == "notify-keyspace-events":
            self.pubsub.set_flags(cfg.notify_keyspace_events)
            self.update_write_hooks()
        elif name == "client-output-buffer-limit-pubsub":
            self.pubsub.output_limit_bytes = cfg.pubsub_output_limit_bytes
        elif name in ("slowlog-log-slower-than", "slowlog-max-len", "latency-monitor-threshold"):
            self.stats.configure()
        elif name == "tracking-table-max-keys":
            self.tracking.enforce_limit()
        elif name == "scan-cursor-max-entries":
            self.keyspace._cursor_max = cfg.scan_cursor_max_entries
        elif name == "requirepass":
            self.acl.set_default_password(cfg.requirepass)
        elif name == "loglevel":
            logging.getLogger("repram").setLevel(_LOGLEVELS[cfg.loglevel])
        elif name in ("proto-max-bulk-len", "proto-max-multibulk-len", "client-query-buffer-limit"):
            for c in self.clients.values():
                c.parser.set_limits(cfg.proto_max_bulk_bytes, cfg.proto_max_args,
                                    cfg.client_query_buffer_bytes)
        if self.replication is not None:
            self.replication.config_changed(name)
        if self.http is not None:
            self.http.api.config_changed(name)

    # -- INFO ----------------------------------------------------------------

    def reset_stats(self) -> None:
        self.stat_commands = 0
        self.stat_connections = 0
        self.stat_rejected = 0
        self.stat_errors = 0
        self.stat_protocol_errors = 0
        ks = getattr(self, "keyspace", None)
        if ks is not None:
            ks.hits = ks.misses = ks.expired_keys = 0
        self.stats.reset()

    def info_text(self, wanted: list[str]) -> str:
        # Redis's order; commandstats and latencystats are not in the default
        # set, only asked for by name, "all" or "everything".
        sections = [
            ("server", self._info_server), ("clients", self._info_clients),
            ("memory", self._info_memory), ("persistence", self._info_persistence),
            ("stats", self._info_stats), ("replication", self._info_replication),
            ("cpu", self._info_cpu), ("modules", lambda: []),
            ("commandstats", self._info_commandstats), ("errorstats", self._info_errorstats),
            ("latencystats", self._info_latencystats), ("cluster", self._info_cluster),
            ("keyspace", self._info_keyspace),
        ]
        names = {n for n, _ in sections}
        if not wanted or wanted == ["default"]:
            pick = names - {"commandstats", "latencystats"}
        elif "all" in wanted or "everything" in wanted:
            pick = names            # Modules is listed (empty) in "all" too, as Redis
        else:
            pick = set(wanted) & names
            if "default" in wanted:
                pick |= names - {"commandstats", "latencystats"}
        parts = []
        for name, fn in sections:
            if name in pick:
                lines = fn()
                title = _TITLES.get(name) or name.capitalize()
                parts.append("# %s\r\n%s" % (title, "".join("%s:%s\r\n" % kv for kv in lines)))
        return "\r\n".join(parts)

    def _info_server(self):
        up = int(time.time() - self.started_at)
        return [
            ("redis_version", REDIS_COMPAT_VERSION), ("repram_version", __version__),
            ("redis_mode", "standalone"), ("os", "%s %s %s" % (platform.system(), platform.release(),
                                                                platform.machine())),
            ("arch_bits", "64" if sys.maxsize > 2 ** 32 else "32"),
            ("multiplexing_api", type(asyncio.get_event_loop()).__module__.split(".")[0]),
            ("python_version", platform.python_version()), ("process_id", os.getpid()),
            ("run_id", self.node_id), ("node_id", self.node_id), ("tcp_port", self.port),
            ("server_time_usec", time.time_ns() // 1000), ("uptime_in_seconds", up),
            ("uptime_in_days", up // 86400), ("hz", 10),
            ("executable", sys.argv[0] if sys.argv else ""),
            ("config_file", self.config.source_file or ""),
            ("repram_fast_lane", "yes" if self.lane_enabled else "no"),
        ]

    def _info_clients(self):
        st = self.stats
        return [("connected_clients", len(self.clients)), ("maxclients", self.config.maxclients),
                ("client_recent_max_input_buffer", st.max_input_buffer),
                ("client_recent_max_output_buffer", st.max_output_buffer),
                ("clients_memory", self.clients_memory()),
                # Peer links of the replication layer (Redis: cluster bus links).
                ("cluster_connections", sum(1 for p in getattr(self.replication, "peers", {}).values()
                                            for lk in (getattr(p, "out", None), getattr(p, "inn", None))
                                            if lk is not None)),
                ("blocked_clients", 0), ("pubsub_clients",
                                         sum(1 for c in self.clients.values() if c.channels or c.patterns)),
                ("tracking_clients", self.tracking.clients),
                # Issue 9: REPRAM HTTP API connections, counted in maxclients too.
                ("http_connected_clients", len(self.http.connections) if self.http is not None else 0)]

    def _info_memory(self):
        ks = self.keyspace
        clients = self.clients_memory()
        used = ks.used_bytes + clients      # issue 7: client buffers are in the books
        peak = self.stats.sample_memory(used)
        rss = rss_bytes()
        mm = self.config.maxmemory_bytes
        return [("used_memory", used), ("used_memory_human", human(used)),
                ("used_memory_rss", rss), ("used_memory_rss_human", human(rss)),
                ("used_memory_peak", peak), ("used_memory_peak_human", human(peak)),
                ("used_memory_peak_perc", "%.2f%%" % (100.0 * used / peak if peak else 100.0)),
                ("used_memory_dataset", ks.used_bytes), ("mem_clients_normal", clients),
                ("maxmemory", mm), ("maxmemory_human", human(mm)),
                ("maxmemory_clients", self.config.maxmemory_clients_bytes),
                ("mem_fragmentation_ratio", "%.2f" % (rss / used if used else 0.0)),
                ("maxmemory_policy", "noeviction"), ("mem_allocator", "pymalloc"),
                ("used_memory_overhead", len(ks.data) * _overhead()), ("used_memory_startup", 0),
                ("mem_fragmentation_bytes", rss - used),
                # No scripting (disabled by design), no lazy freeing: truly zero.
                ("used_memory_lua", 0), ("used_memory_scripts", 0), ("number_of_cached_scripts", 0),
                ("lazyfree_pending_objects", 0),
                ("entry_overhead_bytes", _overhead())]

    def _info_persistence(self):
        return [("loading", 0), ("async_loading", 0), ("rdb_changes_since_last_save", 0),
                ("rdb_bgsave_in_progress", 0), ("rdb_last_save_time", int(self.started_at)),
                ("aof_enabled", 0), ("aof_rewrite_in_progress", 0)]

    def _info_stats(self):
        ks = self.keyspace
        st = self.stats
        return [("total_connections_received", self.stat_connections),
                ("total_commands_processed", self.stat_commands),
                ("instantaneous_ops_per_sec", st.ops_per_sec),
                ("total_net_input_bytes", st.net_in), ("total_net_output_bytes", st.net_out),
                ("instantaneous_input_kbps", "%.2f" % st.input_kbps),
                ("instantaneous_output_kbps", "%.2f" % st.output_kbps),
                ("rejected_connections", self.stat_rejected),
                ("expired_keys", ks.expired_keys), ("evicted_keys", 0),
                ("expired_time_cap_reached_count", st.expire_cap_hits),
                ("keyspace_hits", ks.hits), ("keyspace_misses", ks.misses),
                ("pubsub_channels", len(self.pubsub.channels)),
                ("pubsub_patterns", len(self.pubsub.patterns)),
                ("pubsubshard_channels", len(self.pubsub.shard_channels)),
                ("total_error_replies", self.stat_errors),
                ("tracking_total_keys", len(self.tracking.table)),
                ("tracking_total_items", self.tracking.items),
                ("tracking_total_prefixes", len(self.tracking.prefixes)),
                ("total_protocol_errors", self.stat_protocol_errors),
                ("unexpected_error_replies", st.unexpected_errors),
                ("total_reads_processed", st.reads), ("total_writes_processed", st.writes),
                # One event loop thread: no I/O threads.
                ("io_threads_active", 0), ("io_threaded_reads_processed", 0),
                ("io_threaded_writes_processed", 0)]

    def _info_replication(self):
        if self.replication is not None:
            return self.replication.info_fields()
        return [("role", "master"), ("connected_slaves", 0), ("enclave", self.config.enclave),
                ("enclave_size", 1), ("replication_factor", self.config.replication_factor),
                ("quorum", 1), ("peers", 0), ("master_repl_offset", 0)]

    def _info_cpu(self):
        ru = resource.getrusage(resource.RUSAGE_SELF)
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = [("used_cpu_sys", "%.6f" % ru.ru_stime), ("used_cpu_user", "%.6f" % ru.ru_utime),
               ("used_cpu_sys_children", "%.6f" % ch.ru_stime),
               ("used_cpu_user_children", "%.6f" % ch.ru_utime)]
        if hasattr(resource, "RUSAGE_THREAD"):
            # INFO runs on the event-loop thread: the one that serves clients.
            th = resource.getrusage(resource.RUSAGE_THREAD)
            out += [("used_cpu_sys_main_thread", "%.6f" % th.ru_stime),
                    ("used_cpu_user_main_thread", "%.6f" % th.ru_utime)]
        return out

    def _info_commandstats(self):
        from .commands import all_commands
        return [("cmdstat_%s" % c.name,
                 "calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d"
                 % (c.calls, c.ns // 1000, c.ns / 1000 / c.calls if c.calls else 0.0,
                    c.rejected_calls, c.failed_calls))
                for c in all_commands() if c.calls or c.rejected_calls]

    def _info_errorstats(self):
        return [("errorstat_%s" % k, "count=%d" % v) for k, v in sorted(self.stats.errors.items())]

    def _info_latencystats(self):
        from .commands import all_commands, hist_upper_ns
        out = []
        for c in all_commands():
            h = c.hist
            total = sum(h)
            if not total:
                continue
            parts = []
            for label, q in (("p50", 0.50), ("p99", 0.99), ("p99.9", 0.999)):
                want = q * total
                acc = 0
                for b, k in enumerate(h):
                    acc += k
                    if k and acc >= want:
                        break
                parts.append("%s=%.3f" % (label, hist_upper_ns(b) / 1000))
            out.append(("latency_percentiles_usec_%s" % c.name, ",".join(parts)))
        return out

    def _info_cluster(self):
        return [("cluster_enabled", 0)]

    def _info_keyspace(self):
        now = self.clock()
        n = self.keyspace.dbsize(now)
        if not n:
            return []
        return [("db0", "keys=%d,expires=%d,avg_ttl=%d" % (n, n, self.keyspace.avg_ttl_ms(now)))]


class _EveryKey:
    """Keyspace.on_write when every write matters (BCAST tracking, 'new' events)."""
    __slots__ = ()

    def __contains__(self, key) -> bool:
        return True


_EVERY_KEY = _EveryKey()


_TITLES = {"cpu": "CPU", "commandstats": "Commandstats", "errorstats": "Errorstats",
           "latencystats": "Latencystats"}
# Redis's CONFIG_MIN_RESERVED_FDS: descriptors kept for listeners, peer
# links, log files ... beyond maxclients.
RESERVED_FDS = 32


def fit_fd_limit(cfg) -> None:
    """Issue 7, as Redis's adjustOpenFilesLimit: raise the soft
    RLIMIT_NOFILE toward the hard limit so that maxclients fits; if it still
    does not, lower maxclients (logged).  Clients past maxclients are then
    answered "max number of clients reached", never dropped silently.
    maxclients bounds RESP and HTTP connections together (an HTTP one past
    it gets a 503), so this sizing covers both."""
    want = cfg.maxclients + RESERVED_FDS
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass
    if soft < want:
        new = max(1, soft - RESERVED_FDS)
        log.warning("you requested maxclients of %d requiring at least %d max file descriptors; "
                    "the open files limit is %d (hard %s): maxclients lowered to %d",
                    cfg.maxclients, want, soft, "unlimited" if hard == resource.RLIM_INFINITY
                    else hard, new)
        cfg.maxclients = new


def _overhead() -> int:
    from .keyspace import ENTRY_OVERHEAD_BYTES
    return ENTRY_OVERHEAD_BYTES


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def human(n: int) -> str:
    for unit, size in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= size:
            return "%.2f%s" % (n / size, unit)
    return "%dB" % n
