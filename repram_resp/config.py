"""Configuration: one table of directives, parsed like redis.conf.

Rules:
* Every setting is a row in ``DIRECTIVES``: its Redis-style name, kind, default,
  unit (in the row's ``unit`` and in the Python attribute name, e.g.
  ``maxmemory`` -> ``maxmemory_bytes``), whether ``CONFIG SET`` may change it,
  and a one-phrase reason for non-obvious limits.
* Sources, later wins: defaults, the config file (``directive arg ...`` per
  line, ``#`` comments, quotes as in redis.conf), then ``--directive value``
  flags.  A bad name or value raises ``ConfigError`` with a one-line message
  naming the directive; the CLI prints it and exits 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from .protocol import split_inline


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Directive:
    name: str
    kind: str                 # int | size | bool | str | list | enum | flags
    default: Any
    attr: str                 # attribute on Config (unit in the name)
    mutable: bool = False
    lo: int | None = None
    hi: int | None = None
    choices: tuple = ()
    doc: str = ""
    scale: int = 1            # internal value = given value * scale (e.g. s -> ms)
    aliases: tuple = field(default_factory=tuple)


GB = 1024 ** 3
MB = 1024 ** 2
INT64 = (1 << 63) - 1

DIRECTIVES: list[Directive] = [
    Directive("bind", "list", ["127.0.0.1"], "bind", doc="addresses to listen on"),
    Directive("port", "int", 6379, "port", lo=0, hi=65535,
              doc="client port; 0 lets the OS choose (logged at startup)"),
    Directive("cluster-port", "int", -1, "cluster_port", lo=-1, hi=65535,
              doc="peer port; -1 means port+10000 (or OS-chosen when port is 0); "
                  "setting it turns clustering on"),
    # Issue 7: clustering is opt-in; a single node opens no cluster port.
    Directive("cluster-enabled", "bool", False, "cluster_enabled",
              doc="open the cluster port (also implied by peers or an explicit cluster-port)"),
    Directive("peers", "list", [], "peers", doc="seed peers host:cluster-port"),
    Directive("enclave", "str", "default", "enclave", doc="replication boundary"),
    Directive("cluster-secret", "str", "", "cluster_secret", doc="shared secret for peer links"),
    Directive("cluster-trusted-network", "bool", False, "cluster_trusted_network",
              doc="allow a non-loopback cluster port without a secret"),
    Directive("node-id", "str", "", "node_id", doc="stable node id; random when empty"),
    Directive("replication-factor", "int", 3, "replication_factor", mutable=True, lo=1, hi=1000,
              doc="REPRAM RF: quorum = floor(min(enclave size, RF)/2)+1"),
    Directive("min-replicas-to-write", "int", 0, "min_replicas_to_write", mutable=True, lo=0, hi=1000),
    Directive("min-replicas-max-lag", "int", 10, "min_replicas_max_lag_s", mutable=True, lo=0, hi=3600),
    Directive("default-ttl", "int", 3600, "default_ttl_ms", mutable=True, lo=0, hi=INT64 // 1000,
              scale=1000, doc="seconds given to a write without TTL; 0 = refuse such writes"),
    Directive("min-ttl", "int", 0, "min_ttl_ms", mutable=True, lo=0, hi=INT64 // 1000, scale=1000,
              doc="seconds; shorter TTLs are refused; 0 = any positive TTL (ms precision)"),
    Directive("max-ttl", "int", 86400, "max_ttl_ms", mutable=True, lo=1, hi=INT64 // 1000, scale=1000,
              doc="seconds; longer TTLs are refused"),
    Directive("maxmemory", "size", 0, "maxmemory_bytes", mutable=True, lo=0, hi=INT64,
              doc="0 = unlimited; policy is always noeviction"),
    Directive("maxmemory-policy", "enum", "noeviction", "maxmemory_policy", mutable=True,
              choices=("noeviction",), doc="REPRAM never evicts: the TTL is the only way out"),
    Directive("maxclients", "int", 10000, "maxclients", mutable=True, lo=1, hi=1_000_000),
    Directive("timeout", "int", 0, "timeout_s", mutable=True, lo=0, hi=INT64,
              doc="close idle clients after this many seconds; 0 = never"),
    Directive("requirepass", "str", "", "requirepass", mutable=True),
    Directive("lcs-max-table-memory", "size", 64 * MB, "lcs_max_table_bytes", mutable=True, lo=0,
              hi=INT64, doc="LCS refuses inputs whose table ((len1+1)*(len2+1) cells of 4 bytes) "
                            "is larger"),
    Directive("lcs-turn-max-cells", "int", 100_000, "lcs_turn_max_cells", mutable=True, lo=1,
              hi=INT64, doc="LCS table cells computed per event-loop turn (others run between)"),
    Directive("acllog-max-len", "int", 128, "acllog_max_len", mutable=True, lo=0, hi=1_000_000,
              doc="ACL LOG entries kept (denied commands, failed AUTHs; oldest dropped)"),
    Directive("protected-mode", "bool", True, "protected_mode", mutable=True,
              doc="with no requirepass, only loopback and Unix clients are served (Redis)"),
    # Issue 7: fairness -- one client's share of an event-loop turn.
    Directive("client-turn-max-commands", "int", 1000, "client_turn_max_commands", mutable=True,
              lo=1, hi=1_000_000, doc="commands one client runs per loop turn before others run"),
    Directive("client-turn-max-bytes", "size", 256 * 1024, "client_turn_max_bytes", mutable=True,
              lo=1024, hi=INT64, doc="request bytes one client's parser takes per loop turn"),
    Directive("maxmemory-clients", "size", 0, "maxmemory_clients_bytes", mutable=True, lo=0,
              hi=INT64, doc="all clients' query+output buffers; over it the biggest are closed "
                            "(Redis 7); 0 = no limit"),
    Directive("proto-max-bulk-len", "size", 512 * MB, "proto_max_bulk_bytes", mutable=True,
              lo=1024 * 1024, hi=INT64, doc="largest bulk string (Redis default 512mb)"),
    Directive("proto-max-multibulk-len", "int", 1024 * 1024, "proto_max_args", mutable=True,
              lo=1, hi=2 ** 31 - 1, doc="most arguments in one request"),
    Directive("client-query-buffer-limit", "size", GB, "client_query_buffer_bytes", mutable=True,
              lo=1024 * 1024, hi=INT64, doc="most unparsed bytes buffered per client"),
    Directive("client-output-buffer-limit-pubsub", "size", 32 * MB, "pubsub_output_limit_bytes",
              mutable=True, lo=0, hi=INT64,
              doc="a subscriber whose unsent output exceeds this is disconnected (Redis: 32mb hard)"),
    Directive("notify-keyspace-events", "flags", "", "notify_keyspace_events", mutable=True),
    Directive("loglevel", "enum", "notice", "loglevel", mutable=True,
              choices=("debug", "verbose", "notice", "warning", "nothing")),
    Directive("logfile", "str", "", "logfile", doc="empty = standard error"),
    Directive("tls-port", "int", 0, "tls_port", lo=0, hi=65535),
    Directive("tls-cert-file", "str", "", "tls_cert_file"),
    Directive("tls-key-file", "str", "", "tls_key_file"),
    Directive("tls-ca-cert-file", "str", "", "tls_ca_cert_file"),
    Directive("tls-cluster", "bool", False, "tls_cluster", doc="use TLS on peer links"),
    Directive("save", "enum", "", "save", mutable=True, choices=("",),
              doc="REPRAM is RAM only: nothing is ever saved"),
    Directive("appendonly", "bool", False, "appendonly", mutable=True,
              doc="REPRAM is RAM only: must stay 'no'"),
    Directive("databases", "int", 1, "databases", lo=1, hi=1, doc="one keyspace, db 0"),
    Directive("event-loop", "enum", "auto", "event_loop", choices=("auto", "uvloop", "asyncio"),
              doc="auto = uvloop when installed"),
    Directive("active-expire-batch-keys", "int", 2000, "expire_batch_keys", mutable=True,
              lo=1, hi=1_000_000, doc="keys reclaimed per expiry cycle before yielding to clients"),
    Directive("scan-cursor-max-entries", "int", 100_000, "scan_cursor_max_entries", mutable=True,
              lo=16, hi=10_000_000, doc="SCAN continuation cursors remembered (oldest dropped)"),
    Directive("tracking-table-max-keys", "int", 1_000_000, "tracking_table_max_keys", mutable=True,
              lo=0, hi=INT64, doc="keys remembered for CLIENT TRACKING (beyond: invalidated); 0 = no limit"),
    Directive("shutdown-timeout", "int", 10, "shutdown_timeout_s", mutable=True, lo=0, hi=3600,
              doc="seconds to finish replies and flush peers on SIGTERM"),
    # -- introspection (repram_resp/introspect.py) -----------------------
    Directive("slowlog-log-slower-than", "int", 10000, "slowlog_log_slower_than_us", mutable=True,
              lo=-1, hi=INT64, doc="microseconds; slower commands enter SLOWLOG; 0 = all, -1 = none"),
    Directive("slowlog-max-len", "int", 128, "slowlog_max_len", mutable=True, lo=0, hi=1_000_000,
              doc="SLOWLOG entries kept (oldest dropped)"),
    Directive("latency-monitor-threshold", "int", 0, "latency_monitor_threshold_ms", mutable=True,
              lo=0, hi=INT64, doc="milliseconds; LATENCY records events at least this slow; 0 = off"),
    # -- REPRAM HTTP API (repram_resp/http/) ---------------------------------
    Directive("http-port", "int", 0, "http_port", lo=-1, hi=65535,
              doc="REPRAM HTTP API port; 0 = off (the default), -1 = OS-chosen (logged)"),
    Directive("http-bind", "list", [], "http_bind", doc="addresses for the HTTP API; empty = bind"),
    Directive("http-tls", "bool", False, "http_tls",
              doc="serve the HTTP API over TLS with tls-cert-file / tls-key-file"),
    Directive("http-quorum-timeout-ms", "int", 5000, "http_quorum_timeout_ms", mutable=True,
              lo=1, hi=600_000, doc="PUT waits this long for the REPRAM quorum: 201, else 202 "
              "(REPRAM_WRITE_TIMEOUT)"),
    Directive("http-max-body-bytes", "size", 10 * MB, "http_max_body_bytes", mutable=True,
              lo=0, hi=INT64, doc="largest request body (value); more is a 413 (REPRAM: 10 MiB)"),
    Directive("http-max-header-bytes", "size", 64 * 1024, "http_max_header_bytes", mutable=True,
              lo=1024, hi=64 * MB, doc="request line + headers; more is a 431"),
    Directive("http-max-headers", "int", 100, "http_max_headers", mutable=True, lo=1, hi=100_000,
              doc="headers per request; more is a 431"),
    Directive("http-request-timeout-ms", "int", 30_000, "http_request_timeout_ms", mutable=True,
              lo=0, hi=INT64, doc="a request must arrive whole within this (else 408); 0 = never"),
    Directive("http-idle-timeout-ms", "int", 60_000, "http_idle_timeout_ms", mutable=True,
              lo=0, hi=INT64, doc="close a keep-alive connection idle this long; 0 = never"),
    Directive("http-maxclients", "int", 10000, "http_maxclients", mutable=True, lo=1,
              hi=1_000_000, doc="most simultaneous HTTP connections (more get a 503); "
              "maxclients bounds RESP + HTTP together"),
    Directive("http-rate-limit", "int", 0, "http_rate_limit", mutable=True, lo=0, hi=1_000_000,
              doc="requests/s per client IP, burst 2x (REPRAM's 429); 0 = off (the default)"),
    Directive("http-rate-limit-max-ips", "int", 100_000, "http_rate_limit_max_ips", mutable=True,
              lo=1, hi=100_000_000, doc="client IPs whose bucket is kept (least recently used out)"),
    Directive("http-trust-proxy", "bool", False, "http_trust_proxy", mutable=True,
              doc="rate-limit by X-Forwarded-For / X-Real-IP (only behind a proxy you run)"),
    Directive("http-block-scanners", "bool", False, "http_block_scanners", mutable=True,
              doc="403 for REPRAM's scanner User-Agents (sqlmap, nikto, ...)"),
    # -- cluster (replication layer, repram_resp/cluster/) ----------------
    Directive("cluster-announce-ip", "str", "", "cluster_announce_ip",
              doc="address peers should dial; empty = the first bind address (or the one they see)"),
    Directive("cluster-announce-port", "int", 0, "cluster_announce_port", lo=0, hi=65535,
              doc="cluster port peers should dial (NAT, proxies); 0 = the real one"),
    Directive("cluster-ping-interval-ms", "int", 250, "cluster_ping_interval_ms", mutable=True,
              lo=10, hi=60_000, doc="PING on every peer link; also the housekeeping period"),
    Directive("cluster-suspect-after-ms", "int", 1000, "cluster_suspect_after_ms", mutable=True,
              lo=20, hi=3_600_000, doc="a peer silent this long is suspect"),
    Directive("cluster-down-after-ms", "int", 3000, "cluster_down_after_ms", mutable=True,
              lo=30, hi=3_600_000, doc="a peer silent this long is down and its links are closed"),
    Directive("cluster-handshake-timeout-ms", "int", 3000, "cluster_handshake_timeout_ms",
              mutable=True, lo=100, hi=600_000, doc="connect + handshake of a peer link"),
    Directive("cluster-reconnect-min-ms", "int", 100, "cluster_reconnect_min_ms", mutable=True,
              lo=1, hi=600_000, doc="first redial delay; doubles per failure, +-50% jitter"),
    Directive("cluster-reconnect-max-ms", "int", 2000, "cluster_reconnect_max_ms", mutable=True,
              lo=1, hi=600_000, doc="longest redial delay (a down peer is retried this often)"),
    Directive("cluster-rebootstrap-interval-ms", "int", 5000, "cluster_rebootstrap_interval_ms",
              mutable=True, lo=10, hi=3_600_000,
              doc="seeds with no live peer behind them are re-dialed this often"),
    Directive("cluster-forget-after-ms", "int", 3_600_000, "cluster_forget_after_ms", mutable=True,
              lo=1000, hi=INT64, doc="a peer down this long leaves the table (seeds never do)"),
    Directive("cluster-peer-queue-limit", "size", 64 * MB, "cluster_peer_queue_limit_bytes",
              mutable=True, lo=64 * 1024, hi=INT64,
              doc="unsent bytes per peer; past it the peer is dropped and resynchronised"),
    Directive("cluster-anti-entropy-interval-ms", "int", 2000, "cluster_anti_entropy_interval_ms",
              mutable=True, lo=0, hi=3_600_000,
              doc="range-digest repair with every peer this often (and on reconnect); 0 = off"),
    Directive("cluster-max-clock-skew-ms", "int", 1000, "cluster_max_clock_skew_ms", mutable=True,
              lo=1, hi=3_600_000,
              doc="a peer whose clock is provably further off than this is refused"),
    Directive("cluster-floor-max-memory", "size", 64 * MB, "cluster_floor_max_bytes",
              mutable=True, lo=0, hi=INT64,
              doc="bytes of version floors kept; past it the earliest-retiring go early; 0 = no bound"),
]

BY_NAME: dict[str, Directive] = {d.name: d for d in DIRECTIVES}

# ASCII digits only: Python's int() would also take "1_000", " 7", "+7" and
# non-ASCII digits, none of which redis.conf accepts.
_INT_RE = re.compile(r"-?[0-9]+\Z")
_SIZE_RE = re.compile(r"([0-9]+)(k|kb|m|mb|g|gb|b)?\Z", re.I)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2,
               "g": 1000 ** 3, "gb": 1024 ** 3}
_KEYSPACE_FLAG_ORDER = "g$lshzxetmdnKE"


def parse_size(text: str) -> int:
    """redis.conf memory units: 1k=1000, 1kb=1024, 1m, 1mb, 1g, 1gb."""
    m = _SIZE_RE.match(text)
    if not m:
        raise ValueError("'%s' is not a size (e.g. 100mb, 1gb, 65536)" % text)
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower() if m.group(2) else None]


def parse_keyspace_flags(text: str) -> str:
    """Redis keyspaceEventsStringToFlags; returns the canonical string."""
    flags = set()
    for ch in text:
        if ch == "A":
            flags.update("g$lshzxetd")
        elif ch in "g$lshzxeKEtmdn":
            flags.add(ch)
        else:
            raise ValueError("'%s' has an unknown flag '%s'" % (text, ch))
    if flags and not flags & {"K", "E"}:
        # Redis accepts this but nothing would ever fire; keep it, canonically
        pass
    return keyspace_flags_to_string(flags)


def keyspace_flags_to_string(flags) -> str:
    # Redis keyspaceEventsFlagsToString: "A" if all of g$lshzxetd, then K, E.
    out = ""
    all_a = set("g$lshzxetd")
    if all_a <= set(flags):
        out += "A"
        rest = [c for c in "mn" if c in flags]
    else:
        rest = [c for c in "g$lshzxetmdn" if c in flags]
    out += "".join(rest)
    if "K" in flags:
        out += "K"
    if "E" in flags:
        out += "E"
    return out


def _convert(d: Directive, args: list[str]) -> Any:
    if d.kind == "list":
        items = []
        for a in args:
            items.extend(x for x in re.split(r"[,\s]+", a) if x)
        return items
    if len(args) != 1:
        raise ValueError("expects exactly one value, got %d" % len(args))
    v = args[0]
    if d.kind == "str":
        return v
    if d.kind == "bool":
        low = v.lower()
        if low in ("yes", "true", "1"):
            return True
        if low in ("no", "false", "0"):
            return False
        raise ValueError("'%s' is not yes or no" % v)
    if d.kind == "enum":
        if v.lower() not in d.choices:
            raise ValueError("'%s' must be one of: %s" % (
                v, ", ".join(repr(c) if c else "\"\"" for c in d.choices)))
        return v.lower()
    if d.kind == "flags":
        return parse_keyspace_flags(v)
    if d.kind == "int":
        if not _INT_RE.match(v):
            raise ValueError("'%s' is not an integer" % v)
        n = int(v)
    elif d.kind == "size":
        n = parse_size(v)
    else:  # pragma: no cover - table is static
        raise AssertionError(d.kind)
    if (d.lo is not None and n < d.lo) or (d.hi is not None and n > d.hi):
        raise ValueError("%s is out of range (%s..%s)" % (v, d.lo, d.hi))
    return n * d.scale


class Config:
    """Resolved settings.  Attribute names carry the unit (``_ms``, ``_bytes``)."""

    def __init__(self) -> None:
        for d in DIRECTIVES:
            default = d.default
            if d.kind == "list":
                default = list(default)
            elif d.kind == "int" and d.scale != 1:
                default = default * d.scale
            setattr(self, d.attr, default)
        self.source_file: str | None = None

    # -- loading ------------------------------------------------------------

    def set_directive(self, name: str, args: list[str], where: str = "") -> None:
        d = BY_NAME.get(name.lower())
        if d is None:
            raise ConfigError("unknown directive '%s'%s" % (name, where))
        try:
            value = _convert(d, args)
        except ValueError as e:
            raise ConfigError("bad value for '%s'%s: %s" % (d.name, where, e)) from None
        setattr(self, d.attr, value)

    def load_file(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                lines = f.read().split(b"\n")
        except OSError as e:
            raise ConfigError("cannot read config file '%s': %s" % (path, e.strerror)) from None
        self.source_file = path
        if lines and lines[0].startswith(b"\xef\xbb\xbf"):
            lines[0] = lines[0][3:]     # UTF-8 byte order mark left by some editors
        for lineno, raw in enumerate(lines, 1):
            line = raw.strip()
            if not line or line.startswith(b"#"):
                continue
            words = split_inline(line)
            if words is None:
                raise ConfigError("unbalanced quotes at line %d of %s" % (lineno, path))
            name, *args = [w.decode("utf-8", "surrogateescape") for w in words]
            self.set_directive(name, args, " (line %d of %s)" % (lineno, path))

    def load_args(self, argv: list[str]) -> None:
        i = 0
        while i < len(argv):
            a = argv[i]
            if not a.startswith("--") or len(a) == 2:
                raise ConfigError("unexpected argument '%s' (directives are --name value)" % a)
            name = a[2:]
            j = i + 1
            while j < len(argv) and not argv[j].startswith("--"):
                j += 1
            args = argv[i + 1:j]
            if not args:
                args = [""] if BY_NAME.get(name.lower(), None) and BY_NAME[name.lower()].kind in (
                    "str", "enum", "flags", "list") else []
            self.set_directive(name, args, " (command line)")
            i = j

    def validate(self) -> None:
        """Cross-directive checks, once everything is loaded."""
        if self.min_ttl_ms > self.max_ttl_ms:
            raise ConfigError("bad value for 'min-ttl': %d s exceeds max-ttl %d s" % (
                self.min_ttl_ms // 1000, self.max_ttl_ms // 1000))
        if self.default_ttl_ms and not self.min_ttl_ms <= self.default_ttl_ms <= self.max_ttl_ms:
            raise ConfigError("bad value for 'default-ttl': %d s is outside min-ttl..max-ttl (%d..%d s)"
                              % (self.default_ttl_ms // 1000, self.min_ttl_ms // 1000,
                                 self.max_ttl_ms // 1000))
        if self.tls_port and not (self.tls_cert_file and self.tls_key_file):
            raise ConfigError("bad value for 'tls-port': needs tls-cert-file and tls-key-file")
        if self.tls_cluster and not (self.tls_cert_file and self.tls_key_file):
            raise ConfigError("bad value for 'tls-cluster': needs tls-cert-file and tls-key-file")
        if self.http_tls and not (self.tls_cert_file and self.tls_key_file):
            raise ConfigError("bad value for 'http-tls': needs tls-cert-file and tls-key-file")
        if not self.bind:
            raise ConfigError("bad value for 'bind': no address")
        if self.appendonly:
            raise ConfigError("bad value for 'appendonly': REPRAM is RAM only, it must be 'no'")
        if self.clustering and self.requirepass and not self.cluster_secret:
            # Issue 7: an open cluster port would hand every key to any local
            # process that dials it, password or not (Redis replicas need
            # masterauth likewise).
            raise ConfigError("bad value for 'requirepass': with clustering on (cluster-enabled, "
                              "peers or cluster-port) it needs cluster-secret, or peers could read "
                              "and write without the password")
        self._validate_cluster()

    @property
    def clustering(self) -> bool:
        """Issue 7: open the cluster port only when asked to."""
        return bool(self.cluster_enabled or self.peers or self.cluster_port != -1)

    def _validate_cluster(self) -> None:
        if self.cluster_ping_interval_ms >= self.cluster_suspect_after_ms:
            raise ConfigError("bad value for 'cluster-suspect-after-ms': must exceed "
                              "cluster-ping-interval-ms (%d)" % self.cluster_ping_interval_ms)
        if self.cluster_suspect_after_ms >= self.cluster_down_after_ms:
            raise ConfigError("bad value for 'cluster-down-after-ms': must exceed "
                              "cluster-suspect-after-ms (%d)" % self.cluster_suspect_after_ms)
        if self.cluster_reconnect_min_ms > self.cluster_reconnect_max_ms:
            raise ConfigError("bad value for 'cluster-reconnect-min-ms': exceeds "
                              "cluster-reconnect-max-ms (%d)" % self.cluster_reconnect_max_ms)
        from .cluster.membership import parse_address
        for p in self.peers:
            try:
                parse_address(p)
            except ValueError as e:
                raise ConfigError("bad value for 'peers': %s" % e) from None

    def check_files(self) -> None:
        """Files the node will open at startup must be readable now, so a typo
        is reported as a bad directive rather than a failure to start."""
        if not (self.tls_port or self.tls_cluster or self.http_tls):
            return
        for name in ("tls-cert-file", "tls-key-file", "tls-ca-cert-file"):
            path = getattr(self, BY_NAME[name].attr)
            if not path:
                continue
            try:
                with open(path, "rb"):
                    pass
            except OSError as e:
                raise ConfigError("bad value for '%s': cannot read '%s': %s" % (
                    name, path, e.strerror)) from None

    # -- CONFIG GET / SET ---------------------------------------------------

    def get_text(self, d: Directive) -> str:
        v = getattr(self, d.attr)
        if d.kind == "bool":
            return "yes" if v else "no"
        if d.kind == "list":
            return " ".join(v)
        if isinstance(v, int):
            return str(v // d.scale)
        return str(v)

    def set_runtime(self, name: str, value: str, hook: Callable[[str], None] | None = None) -> None:
        """CONFIG SET; raises ConfigError (message is the reason phrase)."""
        d = BY_NAME.get(name.lower())
        if d is None or not d.mutable:
            raise KeyError(name)
        old = getattr(self, d.attr)
        try:
            setattr(self, d.attr, _convert(d, [value]))
            self.validate()
        except (ValueError, ConfigError) as e:
            setattr(self, d.attr, old)
            raise ConfigError(str(e)) from None
        if hook is not None:
            hook(d.name)


def load(argv: list[str]) -> Config:
    """``repram-resp [conf-file] [--directive value ...]``."""
    cfg = Config()
    rest = list(argv)
    if rest and not rest[0].startswith("-"):
        cfg.load_file(rest.pop(0))
    cfg.load_args(rest)
    cfg.validate()
    cfg.check_files()
    return cfg
