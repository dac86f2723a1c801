"""Operator statistics: per-command timing, SLOWLOG, LATENCY, MONITOR, errorstats.

How a command is timed (the hot path pays one identity comparison per
command and two clock readings per *run*):
* The connection's batch loop cuts each batch into runs of consecutive
  commands with the same ``Command`` and calls ``end_run`` at each cut and at
  the end of the batch.  ``end_run`` adds the run's length to ``cmd.calls``,
  its wall time to ``cmd.ns`` and the per-call mean to ``cmd.hist``.
* SLOWLOG and the LATENCY monitor see the per-call mean of a run: a lone
  command is timed exactly; in a pipelined run of one command (16 GETs) an
  entry is logged when the run's mean passes the threshold.  While someone
  needs every command on its own (a MONITOR client, or
  ``slowlog-log-slower-than 0``), ``instrumented`` is set and every command
  is a run of its own.
* MONITOR lines are Redis's (``+<unix s>.<us> [0 <addr>] "arg" ...``), sent
  only to authenticated clients that asked for them, after the command ran,
  never to the log.  Admin commands are not shown and AUTH / HELLO AUTH
  arguments are redacted, as in Redis.
* Memory peak: used memory only shrinks when keys expire (or an overwrite
  shrinks a value), so sampling it before each reclaim pass and at INFO
  time finds the peak.
"""

from __future__ import annotations

import time
from collections import deque


# Durations are read from the wall clock (time.time_ns), so that the batch
# loop's one reading of the instant also starts its first run's timing; a
# clock step back is clamped to 0.
_perf_ns = time.time_ns

LATENCY_HISTORY_LEN = 160        # samples kept per event (Redis: 160)
ERRORSTATS_MAX_TYPES = 128       # distinct error prefixes tracked (Redis: 128)
SLOWLOG_MAX_ARGS = 32            # arguments kept per slowlog entry (Redis: 32)
SLOWLOG_MAX_ARG_BYTES = 128      # bytes kept per argument (Redis: 128)

_REPR = {ord("\\"): b"\\\\", ord('"'): b'\\"', 10: b"\\n", 13: b"\\r", 9: b"\\t", 7: b"\\a", 8: b"\\b"}


def repr_arg(a: bytes) -> bytes:
    """Redis's sdscatrepr: quoted, escapes, \\xHH for other unprintables."""
    out = [b'"']
    for c in a:
        e = _REPR.get(c)
        if e is not None:
            out.append(e)
        elif 32 <= c < 127:
            out.append(bytes((c,)))
        else:
            out.append(b"\\x%02x" % c)
    out.append(b'"')
    return b"".join(out)


class Stats:
    def __init__(self, server):
        self.server = server
        self.monitors: set = set()
        self.slowlog: deque = deque()
        self.slowlog_next_id = 0
        self.latency: dict[str, deque] = {}     # event -> deque of (unix s, ms)
        self.latency_max: dict[str, int] = {}
        self.configure()
        self.reset()

    def configure(self) -> None:
        cfg = self.server.config
        self.slow_us = cfg.slowlog_log_slower_than_us
        self.slow_ns = self.slow_us * 1000 if self.slow_us >= 0 else 1 << 62
        self.slowlog_max_len = cfg.slowlog_max_len
        while len(self.slowlog) > self.slowlog_max_len:
            self.slowlog.pop()
        self.latency_ms = cfg.latency_monitor_threshold_ms
        self.latency_ns = self.latency_ms * 1_000_000 if self.latency_ms > 0 else 1 << 62
        # The smallest duration anything wants to hear about.
        self.watch_ns = min(self.slow_ns, self.latency_ns)
        self.update()

    def update(self) -> None:
        self.instrumented = bool(self.monitors) or self.slow_us == 0
        update_lane = getattr(self.server, "update_lane", None)
        if update_lane is not None:
            update_lane()       # the fast lane steps aside while instrumented

    def reset(self) -> None:
        from .commands import all_commands
        for c in all_commands():
            c.reset_stats()
        self.errors: dict[str, int] = {}
        self.net_in = self.net_out = 0
        self.reads = self.writes = 0
        self.mem_peak = self.server.keyspace.used_bytes if hasattr(self.server, "keyspace") else 0
        self.ops_per_sec = 0
        self.input_kbps = self.output_kbps = 0.0
        self.max_input_buffer = self.max_output_buffer = 0
        self.client_buffers = 0
        self.expire_cap_hits = 0       # reclaim passes that used their whole budget
        self.unexpected_errors = 0     # internal errors answered to clients
        self._last = (time.monotonic(), 0, 0, 0)

    def per_second(self, server) -> None:
        """Once a second (the server's idle loop): the instantaneous rates
        and the largest client buffers, as Redis's clientsCron samples them."""
        now = time.monotonic()
        t, cmds, nin, nout = self._last
        dt = now - t
        if dt > 0:
            self.ops_per_sec = int((server.stat_commands - cmds) / dt)
            self.input_kbps = (self.net_in - nin) / dt / 1024
            self.output_kbps = (self.net_out - nout) / dt / 1024
        self._last = (now, server.stat_commands, self.net_in, self.net_out)
        mi = mo = total = 0
        for c in server.clients.values():
            i = c.parser.pending_bytes
            o = c.transport.get_write_buffer_size() if c.transport is not None else 0
            mi, mo, total = max(mi, i), max(mo, o), total + i + o
        self.max_input_buffer, self.max_output_buffer = mi, mo
        self.client_buffers = total
        self.sample_memory()

    # -- the batch loop's hook ---------------------------------------------

    def end_run(self, client, cmd, cmds: list, lo: int, hi: int, t0: int) -> int:
        t1 = _perf_ns()
        n = hi - lo
        if cmd is None or n <= 0:
            return t1
        d = t1 - t0 if t1 > t0 else 0
        cmd.calls += n
        cmd.ns += d
        mean = d // n
        bl = mean.bit_length()      # hist_bucket(mean), inlined: this runs once per batch
        cmd.hist[(bl << 2) + ((mean >> (bl - 3)) & 3) if bl >= 3 else mean] += n
        if mean >= self.watch_ns or self.monitors:
            self.after_run(client, cmd, cmds, lo, hi, mean)
        return t1

    def after_run(self, client, cmd, cmds: list, lo: int, hi: int, mean: int) -> None:
        """The rare part of end_run: a slow run, or MONITOR clients to feed."""
        if mean >= self.watch_ns:
            self._slow(client, cmd, cmds[hi - 1], mean)
        if self.monitors and client.authenticated:
            skip = client.mon_skip and hi - lo == 1     # queued by MULTI, or refused
            client.mon_skip = False
            if not skip:
                for argv in cmds[lo:hi]:
                    self.feed_monitors(client, cmd, argv)

    def count_error(self, msg: str) -> None:
        kind = msg.split(" ", 1)[0]
        errs = self.errors
        if kind in errs:
            errs[kind] += 1
        elif len(errs) < ERRORSTATS_MAX_TYPES:
            errs[kind] = 1

    # -- SLOWLOG / LATENCY -------------------------------------------------

    def _slow(self, client, cmd, argv, ns: int) -> None:
        if ns >= self.slow_ns and self.slowlog_max_len > 0:
            args = []
            shown = argv[:SLOWLOG_MAX_ARGS]
            if len(argv) > SLOWLOG_MAX_ARGS:
                shown = argv[:SLOWLOG_MAX_ARGS - 1]
            for a in shown:
                if len(a) > SLOWLOG_MAX_ARG_BYTES:
                    a = a[:SLOWLOG_MAX_ARG_BYTES] + b"... (%d more bytes)" % (len(a) - SLOWLOG_MAX_ARG_BYTES)
                args.append(a)
            if len(argv) > SLOWLOG_MAX_ARGS:
                args.append(b"... (%d more arguments)" % (len(argv) - SLOWLOG_MAX_ARGS + 1))
            self.slowlog.appendleft((self.slowlog_next_id, int(time.time()), ns // 1000, args,
                                     client.addr.encode(), client.name))
            self.slowlog_next_id += 1
            if len(self.slowlog) > self.slowlog_max_len:
                self.slowlog.pop()
        if ns >= self.latency_ns:
            self.latency_sample("fast-command" if "fast" in cmd.flags else "command", ns // 1_000_000)

    def latency_sample(self, event: str, ms: int) -> None:
        now = int(time.time())
        h = self.latency.get(event)
        if h is None:
            h = self.latency[event] = deque(maxlen=LATENCY_HISTORY_LEN)
        if h and h[-1][0] == now:
            if ms > h[-1][1]:
                h[-1] = (now, ms)
        else:
            h.append((now, ms))
        if ms > self.latency_max.get(event, 0):
            self.latency_max[event] = ms

    def timed(self, event: str, ns: int) -> None:
        """Background work (the expiry cycle) that took ns."""
        if ns >= self.latency_ns:
            self.latency_sample(event, ns // 1_000_000)

    # -- MONITOR ------------------------------------------------------------

    def add_monitor(self, client) -> None:
        self.monitors.add(client)
        self.update()

    def drop_monitor(self, client) -> None:
        self.monitors.discard(client)
        self.update()

    def feed_monitors(self, client, cmd, argv) -> None:
        from .commands.docs import monitor_hidden
        if monitor_hidden(cmd, argv):
            return
        name = cmd.name
        if name == "auth":
            shown = [argv[0]] + [b"(redacted)"] * (len(argv) - 1)
        elif name == "hello":
            shown = list(argv)
            for j in range(2, len(shown) - 2):
                if shown[j].upper() == b"AUTH":
                    shown[j + 1] = shown[j + 2] = b"(redacted)"
                    break
        else:
            shown = argv
        ns = time.time_ns()
        line = b"+%d.%06d [0 %s] %s\r\n" % (ns // 1_000_000_000, ns // 1000 % 1_000_000,
                                            client.addr.encode(), b" ".join(map(repr_arg, shown)))
        limit = self.server.config.pubsub_output_limit_bytes
        for m in list(self.monitors):
            if m.closed:
                self.drop_monitor(m)
            else:
                m.push(line, limit)

    # -- memory --------------------------------------------------------------

    def sample_memory(self, used: int | None = None) -> int:
        """Note ``used`` (default: the keyspace plus the last sampled client
        buffers) in the peak; returns the peak."""
        if used is None:
            used = self.server.keyspace.used_bytes + self.client_buffers
        if used > self.mem_peak:
            self.mem_peak = used
        return self.mem_peak
