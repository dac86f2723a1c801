"""One client connection: an asyncio Protocol around the sans-I/O parser.

Rules:
* Pipelining: every complete command in a read is executed in order and all
  their replies leave in one ``transport.write``.
* Flow control: when the transport's write buffer passes its high-water mark
  we stop reading from this client until it drains, so a client that does
  not read its replies cannot make the server buffer without bound.
* A protocol error gets one ``-ERR Protocol error: ...`` reply, then close;
  a command error gets ``-ERR ...`` and the connection keeps serving; an
  unexpected exception in a handler is logged (never the values) and answered
  with an error -- it never takes the connection or the server down.
* The "gate" is set while anything but plain execution applies (MULTI
  queueing, authentication pending, RESP2 subscribed mode); ungated commands
  take the short path.
* Fairness (issue 7): one client runs at most ``client-turn-max-commands``
  commands (and its parser at most ``client-turn-max-bytes`` of input) per
  event-loop turn.  What is left waits, with reading paused, for a
  ``call_soon`` -- so every other ready client is served in between.
* Before AUTH (issue 7): Redis's parser limits (protocol.py), one command per
  parse step (AUTH takes effect before the next is parsed), and unsent
  output bounded like Redis's (``UNAUTH_OUTPUT_LIMIT_BYTES``): a client that
  pipelines guesses without reading the replies is disconnected.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
import time
from time import time_ns as _perf_ns   # command timing (see introspect.py on the clock)

from .clock import wall_ms

from . import errors, lane
from .acl import NOPERM_TEXT, denial_text, user_check, user_check_unknown
from .commands import TABLE, find, lookup_error
from .commands.transactions import TX_TTL, tx_ttl_queue_error
from .protocol import QUEUED, RESP2, RequestParser, encode_error

log = logging.getLogger("repram.client")

_TABLE_GET = TABLE.get
_LANE = lane.execute
_GATE_PASS = frozenset({"exec", "discard", "multi", "watch", "quit", "reset"})
_SUBSCRIBED_OK = frozenset({"subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping",
                            "quit", "reset", "ssubscribe", "sunsubscribe"})
WRITE_BUFFER_HIGH_BYTES = 4 * 1024 * 1024   # stop reading a client above this much unsent output
# Redis closes an unauthenticated client whose replies pass its 16 KiB
# static buffer plus 1 KiB of reply list (checkClientOutputBufferLimits).
# Here the unread replies are what the transport holds plus what the
# kernel has not delivered (TIOCOUTQ): a client that reads its replies
# never gets near it.
UNAUTH_OUTPUT_LIMIT_BYTES = 16 * 1024 + 1024
_EACH = object()    # a run marker no command matches: every command is its own run


def _kernel_unsent(sock) -> int:
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0]
    except (OSError, AttributeError, ValueError):
        return 0


class Client(asyncio.Protocol):
    def __init__(self, server, tls: bool = False):
        self.server = server
        self.enc = RESP2
        cfg = server.config
        self.parser = RequestParser(cfg.proto_max_bulk_bytes, cfg.proto_max_args,
                                    cfg.client_query_buffer_bytes)
        self.transport = None
        self.id = 0
        self.tls = tls
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.addr = self.laddr = "?"
        self.created = self.last_active = time.monotonic()
        self.user = server.acl.default   # ACL user (AUTH / HELLO AUTH change it)
        self.authenticated = not server.acl.needs_auth()
        if not self.authenticated:
            self.parser.set_unauthenticated(True)
        self.multi = None
        self.multi_dirty = False
        self.watched: dict = {}
        self.channels: set = set()
        self.patterns: set = set()
        self.close_after_reply = False
        self.closed = False
        self.last_cmd = None     # Command object of the last command run
        self.gate = None if self.authenticated else "auth"
        if self.gate is None and not self.user.unrestricted:
            self.gate = "acl"        # 'default' itself restricted (ACL SETUSER default ...)
        if server.pause is not None and self.gate is None:
            self.gate = "paused"     # CLIENT PAUSE holds new clients too
        self._out = None         # reply batch while executing a read
        self._paused = False
        self.blocked = None      # Future of a blocking command in progress
        self._suspended = None   # (cmds, next index) of a batch paused by flow control
        self._blocked_batch = None
        self._push_buf: list = []   # pushes waiting for the end of this loop turn
        self._push_bytes = 0
        self._lane_ran = 0       # commands the fast lane ran of a read it handed on
        self._turn = None        # call_soon handle of this client's next turn (budget spent)
        self.in_exec = False     # True while EXEC runs its queue (no blocking)
        self.write_offset = 0    # replication: stream offset of this client's last write
        self.tracking = None     # TrackState while CLIENT TRACKING is ON (repram_resp/tracking.py)
        self.shard_channels: set = set()   # SSUBSCRIBE
        self.ttl_override = None  # EXEC: key -> deadline an EXPIRE in the transaction gave its write
        self.tx_scan = None      # MULTI: (queue entries scanned, keys written) for EXPIRE
        self.repl_lo = 0         # ... and of its first write since its last WAIT
        self.cur_cmd = None      # the Command running now (failed_calls attribution)
        self.monitor = False     # MONITOR: receives every command's line
        self.mon_skip = False    # MONITOR: the command just seen did not run (queued, refused)
        self.reply_mode = None   # CLIENT REPLY: None (on), "off" or "skip"

    # -- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH_BYTES)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.addr = _fmt_addr(peer)
        self.laddr = _fmt_addr(sock)
        if self.server.protected_refuses(peer):
            # Redis answers before registering the client (clientAcceptHandler).
            self.server.stat_rejected += 1
            transport.write(encode_error(errors.DENIED_PROTECTED_MODE))
            transport.close()
            self.closed = True
            return
        if not self.server.register(self):
            transport.write(encode_error(errors.MAX_CLIENTS))
            transport.close()
            self.closed = True

    def connection_lost(self, exc):
        self.closed = True
        if self.blocked is not None:
            self.blocked.cancel()
        if self.monitor:
            self.server.stats.drop_monitor(self)
        self.server.unregister(self)

    def pause_writing(self):
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        if self._paused and not self.closed:
            self._paused = False
            if self._turn is None:
                self._next_turn()

    def data_received(self, data):
        if self.closed:
            return
        self.last_active = time.monotonic()
        stats = self.server.stats
        stats.net_in += len(data)
        stats.reads += 1
        if self._suspended is not None or self._blocked_batch is not None or self._turn is not None:
            # A read that raced with a pause: its bytes wait in the parser,
            # parsed (in order) once the waiting batch has run.
            self.parser.buffer(data)
            return
        cfg = self.server.config
        if not self.authenticated and self.parser.pending_bytes == 0:
            self._unauth_out = 0        # it waited for its replies
        spent = 0
        if self.server.lane_ok:
            # The fast lane runs the plain GET/SET prefix of this read within
            # this turn's budget and returns the rest (None: nothing left for
            # this turn); see lane.py.
            rest = _LANE(self, data, WRITE_BUFFER_HIGH_BYTES, cfg.client_turn_max_commands,
                         cfg.client_turn_max_bytes)
            if rest is None:
                return
            if rest is not data:
                spent = self._lane_ran      # commands of this turn's budget it used
                data = rest
        cmds = self.parser.feed(data, cfg.client_turn_max_commands - spent, cfg.client_turn_max_bytes)
        self.server.stat_commands += len(cmds)
        self._run_batch(cmds, 0, spent)

    def _next_turn(self) -> None:
        """Continue after a pause (budget spent, flow control, a blocking
        command): the rest of the waiting batch, then buffered input."""
        self._turn = None
        if self.closed or self._paused or self.blocked is not None:
            return
        if self._suspended is not None:
            cmds, i = self._suspended
            self._suspended = None
            self._run_batch(cmds, i)
        elif self.parser.more:
            cfg = self.server.config
            cmds = self.parser.feed(b"", cfg.client_turn_max_commands, cfg.client_turn_max_bytes)
            self.server.stat_commands += len(cmds)
            self._run_batch(cmds, 0)
        if self._turn is None and self._suspended is None and self.blocked is None \
                and not self._paused and not self.closed:
            self.transport.resume_reading()

    def _yield_turn(self) -> None:
        """Budget spent: stop reading, continue on the next loop turn."""
        if self._turn is None:
            self.transport.pause_reading()
            self._turn = asyncio.get_running_loop().call_soon(self._next_turn)

    def _run_batch(self, cmds: list, i: int, spent: int = 0) -> None:
        """Execute cmds[i:], write all replies at once.

        Two things can suspend a batch, and both resume it at the next
        command: a handler returning a Future instead of bytes (a blocking
        command such as WAIT: the replies so far are sent, reading pauses),
        and replies piling up past the write high-water mark within one read
        (they are flushed; if the transport then asks us to pause, the rest
        of the batch waits for resume_writing).  So one read of pipelined
        commands can never make us hold more than about the high-water mark
        plus one reply for a client that does not read."""
        if cmds:
            if self._push_buf:
                self._flush_pushes()    # pushes queued earlier go out first
            out = self._out = []
            append = out.append
            pending = 0
            n = len(cmds)
            server = self.server
            clock = server.clock
            # One clock reading serves both the commands' instant and the
            # timing of the first run (when the clock is the wall clock).
            t_run = _perf_ns()
            server.now = t_run // 1_000_000 if clock is wall_ms else clock()
            cmd = None
            stop = i + server.config.client_turn_max_commands - spent   # this turn's budget
            stats = server.stats
            # Command statistics by runs (see introspect.py): run_cmd ran
            # cmds[run_lo:i] since t_run; a command that is not `mark` starts
            # a new run.  `mark` is _EACH while every command must be seen
            # on its own (MONITOR, slowlog-log-slower-than 0).
            run_cmd = mark = None
            run_lo = i
            for argv in (cmds if i == 0 else cmds[i:]):
                if i >= stop:
                    # Budget spent: the rest runs on a later loop turn.
                    stats.end_run(self, run_cmd, cmds, run_lo, i, t_run)
                    self._out = None
                    if out:
                        self._write(b"".join(out))
                    self._suspended = (cmds, i)
                    self._yield_turn()
                    return
                i += 1
                if not i & 31:
                    # Commands read the instant from server.now: one clock
                    # reading per 32 commands of a batch (a batch of 32 runs in
                    # ~0.1 ms), not one per command: ~140 ns saved per command.
                    server.now = clock()
                # Inlined fast path of execute(): known command, right arity,
                # nothing gating this client.
                cmd = _TABLE_GET(argv[0])
                if cmd is not mark:
                    if run_lo != i - 1:     # the run before this command is not empty
                        t_run = stats.end_run(self, run_cmd, cmds, run_lo, i - 1, t_run)
                    run_cmd = self.cur_cmd = cmd
                    run_lo = i - 1
                    mark = _EACH if stats.instrumented else cmd
                if self.gate is None and cmd is not None and cmd.min_args <= len(argv) <= cmd.max_args:
                    self.last_cmd = cmd      # CLIENT LIST: the last command run (as the lane keeps it)
                    try:
                        r = cmd.handler(self, argv)
                    except Exception:  # a bug must cost one reply, not the connection
                        r = self._internal_error(cmd)
                else:
                    if self.close_after_reply:
                        i -= 1          # not run: out of the run's count
                        break           # QUIT & co. gate the client: nothing after them runs
                    r = self.execute(argv)
                if r.__class__ is not bytes:
                    stats.end_run(self, run_cmd, cmds, run_lo, i, t_run)
                    self._out = None
                    if out:
                        self._write(b"".join(out))
                    self._block(r, cmds, i)
                    return
                append(r)
                pending += len(r)
                if pending > WRITE_BUFFER_HIGH_BYTES and i < n:
                    self._write(b"".join(out))
                    out.clear()
                    pending = 0
                    if self._paused:
                        stats.end_run(self, run_cmd, cmds, run_lo, i, t_run)
                        self._out = None
                        self._suspended = (cmds, i)
                        return
            # stats.end_run(self, run_cmd, cmds, run_lo, i, t_run), its common
            # case inlined (this runs once per batch; the method call alone
            # is ~170 ns, a third of the whole cost of command statistics).
            k = i - run_lo
            if run_cmd is not None and k > 0:
                d = _perf_ns() - t_run
                if d < 0:
                    d = 0           # the wall clock stepped back
                run_cmd.calls += k
                run_cmd.ns += d
                m = d // k
                bl = m.bit_length()
                run_cmd.hist[(bl << 2) + ((m >> (bl - 3)) & 3) if bl >= 3 else m] += k
                if m >= stats.watch_ns or stats.monitors:
                    stats.after_run(self, run_cmd, cmds, run_lo, i, m)
            self.cur_cmd = None
            self._out = None
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                stats.net_out += len(data)      # self._write(data), inlined
                stats.writes += 1
                self.transport.write(data)
            if self.close_after_reply:
                self.transport.close()
                self.closed = True
                return
            if not self.authenticated and out and (
                    self.transport.get_write_buffer_size()
                    + _kernel_unsent(self.transport.get_extra_info("socket"))
                    > UNAUTH_OUTPUT_LIMIT_BYTES):
                self.server.client_cut(self, "unauthenticated client left over %d bytes of "
                                       "replies unread" % UNAUTH_OUTPUT_LIMIT_BYTES)
                return
        parser = self.parser
        if parser.more and parser.error is None and not self.closed:
            self._yield_turn()      # input left in the parser: next turn
        if parser.error is not None:
            self.server.stat_protocol_errors += 1
            log.debug("protocol error from %s: %s", self.addr, parser.error)
            self.transport.write(encode_error(parser.error))
            self.transport.close()
            self.closed = True

    def _write(self, data: bytes) -> None:
        stats = self.server.stats
        stats.net_out += len(data)
        stats.writes += 1
        self.transport.write(data)

    def _block(self, fut, cmds: list, i: int) -> None:
        self.blocked = fut
        self._blocked_batch = cmds
        self.transport.pause_reading()

        def done(f):
            self.blocked = None
            self._blocked_batch = None
            if self.closed:
                return
            if f.cancelled():
                reply = self.error("ERR command cancelled")
            elif f.exception() is not None:
                self.server.ratelog.event(logging.ERROR, "blocking", "blocking command failed: %r",
                                          f.exception())
                reply = self.error("ERR internal error (see server log)")
            else:
                reply = f.result()
            self._write(reply)
            self._run_batch(cmds, i)
            if not self._paused and self.blocked is None and self._suspended is None \
                    and self._turn is None and not self.closed:
                self.transport.resume_reading()
        fut.add_done_callback(done)

    # -- execution -----------------------------------------------------------

    def execute(self, argv: list) -> bytes:
        if self.reply_mode is not None:
            return self._execute_quietly(argv)
        return self._execute(argv)

    def _execute(self, argv: list) -> bytes:
        cmd = _TABLE_GET(argv[0])
        if cmd is None:
            cmd = find(argv[0])
            if cmd is not None:
                # Mixed-case name: the batch loop's run saw no Command.
                cmd.calls += 1
                self.cur_cmd = cmd
        if self.gate is not None:
            return self._gated(cmd, argv)
        if cmd is None or cmd.disabled_why is not None:
            return self.reject(cmd, lookup_error(cmd, argv))
        a = cmd.arity
        n = len(argv)
        if (a > 0 and n != a) or n < -a:
            return self.reject(cmd, lookup_error(cmd, argv))
        self.last_cmd = cmd
        try:
            return cmd.handler(self, argv)
        except Exception:  # a bug must cost one reply, not the connection
            return self._internal_error(cmd)

    def _execute_quietly(self, argv: list):
        """CLIENT REPLY OFF / SKIP: run, and drop the reply (pushes still go)."""
        skip = self.reply_mode == "skip"
        r = self._execute(argv)
        if r.__class__ is not bytes:
            return r
        if skip:
            if self.reply_mode == "skip":
                self.reply_mode = None
                self.update_gate()
            return b""
        return b"" if self.reply_mode == "off" else r

    def run(self, cmd, argv, handler=None) -> bytes:
        """Execute with all central checks (used by EXEC and the gate)."""
        err = lookup_error(cmd, argv)
        if err is not None:
            if self.in_exec and cmd is not None:
                cmd.calls += 1      # no run counted it (reject takes one back)
            return self.reject(cmd, err)
        if self.in_exec and not self.user.unrestricted:
            denied = self.acl_denied(cmd, argv)
            if denied is not None:      # the rules changed since it was queued
                cmd.calls += 1
                return self.reject(cmd, errors.NOPERM_EXEC % errors.NOPERM_EXEC_WHY[denied[0]])
        self.last_cmd = cmd
        if self.in_exec:
            # Inside EXEC each command is counted and timed on its own
            # (EXEC's own run covers the batch loop's view).
            outer = self.cur_cmd
            self.cur_cmd = cmd
            t0 = _perf_ns()
            try:
                return self._dispatch(cmd, argv, handler)
            finally:
                cmd.calls += 1
                cmd.ns += _perf_ns() - t0
                self.cur_cmd = outer
                if self.server.stats.monitors:
                    # Redis 7 shows a transaction's commands as EXEC runs
                    # them (before EXEC's own line), not when queued.
                    self.server.stats.feed_monitors(self, cmd, argv)
        return self._dispatch(cmd, argv, handler)

    def _dispatch(self, cmd, argv, handler=None) -> bytes:
        if self.tracking is not None:
            return self.server.tracking.run(self, cmd, argv, lambda: self._call(cmd, argv, handler))
        return self._call(cmd, argv, handler)

    def _call(self, cmd, argv, handler=None) -> bytes:
        try:
            return (handler or cmd.handler)(self, argv)
        except Exception:
            return self._internal_error(cmd)

    def _gated(self, cmd, argv) -> bytes:
        name = cmd.name if cmd is not None else None
        if not self.authenticated and (cmd is None or "noauth" not in cmd.flags) \
                and name not in ("quit", "reset"):
            if self.multi is not None:
                self.multi_dirty = True
            # Redis (processCommand) looks the command up and checks its
            # arity before it asks for authentication.
            # (A command REPRAM disables still exists for Redis: NOAUTH.)
            err = None
            if cmd is None:
                err = lookup_error(cmd, argv)
            elif (cmd.arity > 0 and len(argv) != cmd.arity) or len(argv) < -cmd.arity:
                err = lookup_error(cmd, argv)
            return self.reject(cmd, err if err is not None else errors.NOAUTH)
        if not self.user.unrestricted:
            # ACL (acl.py): checked after arity and AUTH, before anything is
            # queued or run, as Redis's processCommand does.
            denied = self.acl_denied(cmd, argv)
            if denied is not None:
                if self.multi is not None:
                    self.multi_dirty = True
                return self.reject(cmd, denial_text(NOPERM_TEXT, *denied))
        pause = self.server.pause
        if pause is not None and pause.holds(self, cmd, argv):
            return pause.wait(self, argv)
        if self.multi is not None and name not in _GATE_PASS:
            err = lookup_error(cmd, argv)
            if err is not None and cmd is not None and cmd.name in TX_TTL:
                err = tx_ttl_queue_error(self, argv, err)   # EXPIRE of a key this MULTI writes
            if err is not None:
                self.multi_dirty = True
                return self.reject(cmd, err)
            if cmd is not None:
                cmd.calls -= 1      # queued, not run: EXEC counts it when it runs
                if self.server.stats.monitors:
                    self.mon_skip = True    # MONITOR shows it when EXEC runs it, as Redis 7
            self.multi.append((cmd, argv))
            return QUEUED
        if self.enc.version == 2 and (self.channels or self.patterns or self.shard_channels) \
                and name not in _SUBSCRIBED_OK:
            err = lookup_error(cmd, argv)
            if err is not None:
                return self.reject(cmd, err)
            return self.reject(cmd, errors.subscribed_context(name))
        return self.run(cmd, argv)

    def acl_denied(self, cmd, argv):
        """(kind, object) if this client's user may not run argv (logged in
        ACL LOG), else None; argv with an arity error is left to it."""
        if cmd is None:
            denied = user_check_unknown(self.user, argv)     # Redis has it, REPRAM not
        elif cmd.disabled_why is None and lookup_error(cmd, argv) is not None:
            return None
        else:
            denied = user_check(self.user, cmd, argv)
        if denied is not None:
            self.server.acl.log_denial(self, *denied)
        return denied

    def _internal_error(self, cmd) -> bytes:
        self.server.stats.unexpected_errors += 1
        # A bug reached by client input: one traceback per command and window.
        self.server.ratelog.event(logging.ERROR, ("internal", cmd.name), "internal error in %s",
                                  cmd.name, exc_info=True)
        return self.error("ERR internal error in '%s' (see server log)" % cmd.name)

    def error(self, msg: str) -> bytes:
        """An error reply from a command that ran (counted in failed_calls)."""
        server = self.server
        server.stat_errors += 1
        server.stats.count_error(msg)
        c = self.cur_cmd
        if c is not None:
            c.failed_calls += 1
        return encode_error(msg)

    def reject(self, cmd, msg: str) -> bytes:
        """An error reply for a command refused before it ran (rejected_calls;
        the batch loop's run already counted it in calls, so take it back)."""
        server = self.server
        server.stat_errors += 1
        server.stats.count_error(msg)
        if cmd is not None:
            cmd.rejected_calls += 1
            cmd.calls -= 1
            if server.stats.monitors and self.authenticated and not self.in_exec:
                self.mon_skip = True    # not run: MONITOR does not show it (Redis)
        return encode_error(msg)

    # -- state helpers used by commands ---------------------------------------

    def close_after(self) -> None:
        """Close once this reply is sent; later commands of the batch don't
        run (setting the gate sends them to the slow path, which stops)."""
        self.close_after_reply = True
        self.gate = "closing"

    def update_gate(self) -> None:
        if self.close_after_reply:
            self.gate = "closing"
        elif not self.authenticated:
            self.gate = "auth"
        elif self.multi is not None:
            self.gate = "multi"
        elif self.channels or self.patterns or self.shard_channels:
            self.gate = "subscribed"
        elif self.tracking is not None:
            self.gate = "tracking"      # its reads are remembered: the gated path
        elif self.reply_mode is not None:
            self.gate = "reply"
        elif not self.user.unrestricted:
            self.gate = "acl"           # every command is checked (acl.py)
        elif self.server.pause is not None:
            self.gate = "paused"
        else:
            self.gate = None

    def end_multi(self) -> None:
        self.multi = None
        self.multi_dirty = False
        self.tx_scan = None
        self.watched.clear()
        self.update_gate()

    def watch_broken(self) -> bool:
        if not self.watched:
            return False
        ks = self.server.keyspace
        now = self.server.now
        return any(ks.lookup(k, now) is not e for k, e in self.watched.items())

    def in_subscribed_resp2(self) -> bool:
        return self.enc.version == 2 and bool(self.channels or self.patterns or self.shard_channels)

    def subscriptions(self) -> int:
        return len(self.channels) + len(self.patterns)

    def reset(self) -> None:
        self.multi = None
        self.multi_dirty = False
        self.watched.clear()
        self.server.pubsub.drop_client(self)
        self.server.tracking.disable(self)
        self.enc = RESP2
        self.name = b""
        self.user = self.server.acl.default
        self.authenticated = not self.server.acl.needs_auth()
        self.parser.set_unauthenticated(not self.authenticated)
        self.update_gate()

    def auth_ok(self, user=None) -> None:
        """AUTH / HELLO AUTH succeeded (as user): the configured limits apply
        from the next command on."""
        if user is not None:
            self.user = user
        self.authenticated = True
        self.parser.set_unauthenticated(False)
        self.update_gate()

    def push(self, data: bytes, limit: int) -> None:
        """Out-of-band data (pub/sub).  Keeps order with a batch in progress;
        outside one, pushes are gathered and written once per event-loop turn
        (an expiry wave of 100k keys is then a handful of writes, not 100k).
        A subscriber whose unsent output passes ``limit`` is disconnected."""
        if self.closed:
            return
        if self._out is not None:
            self._out.append(data)
            return
        if limit and self.transport.get_write_buffer_size() + self._push_bytes > limit:
            self.server.ratelog.event(logging.WARNING, "pubsub-limit",
                                      "closing client %d (%s): pub/sub output over %d bytes",
                                      self.id, self.addr, limit)
            self.kill()
            return
        if not self._push_buf:
            asyncio.get_running_loop().call_soon(self._flush_pushes)
        self._push_buf.append(data)
        self._push_bytes += len(data)

    def _flush_pushes(self) -> None:
        buf = self._push_buf
        self._push_buf = []
        self._push_bytes = 0
        if buf and not self.closed:
            self._write(b"".join(buf))

    def kill(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.abort()

    def info_line(self, now_ms: int) -> str:
        t = time.monotonic()
        return ("id=%d addr=%s laddr=%s fd=-1 name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d "
                "ssub=%d multi=%d qbuf=%d qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 "
                "omem=%d tot-mem=0 events=r cmd=%s user=%s redir=%d resp=%d lib-name=%s lib-ver=%s"
                % (self.id, self.addr, self.laddr, self.name.decode("utf-8", "replace"),
                   int(t - self.created), int(t - self.last_active),
                   ("x" if self.multi is not None else "") + ("P" if self.channels or self.patterns
                                                              or self.shard_channels else "")
                   + ("t" if self.tracking is not None else "")
                   + ("R" if self.tracking is not None and self.tracking.broken else "")
                   + ("B" if self.tracking is not None and self.tracking.bcast else "") or "N",
                   len(self.channels), len(self.patterns), len(self.shard_channels),
                   -1 if self.multi is None else len(self.multi), self.parser.pending_bytes,
                   self.transport.get_write_buffer_size() if self.transport else 0,
                   self.last_cmd.name if self.last_cmd is not None else "NULL",
                   self.user.name.decode("utf-8", "replace"),
                   self.tracking.redirect if self.tracking is not None else -1, self.enc.version, self.lib_name.decode("utf-8", "replace"),
                   self.lib_ver.decode("utf-8", "replace")))


def _fmt_addr(a) -> str:
    if not a:
        return "?"
    if isinstance(a, tuple):
        host = a[0]
        return ("[%s]:%d" % (host, a[1])) if ":" in host else "%s:%d" % (host, a[1])
    return str(a)
