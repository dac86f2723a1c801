"""The HTTP listener: an asyncio Protocol per connection around wire.py's
sans-I/O parser, on the node's own loop, serving api.py.

Rules (the same as the RESP port's):
* Keep-alive and pipelining: requests are answered strictly in order; the
  replies of one read leave in one ``transport.write``.  A request whose
  answer is pending (a PUT waiting for its quorum, a streamed listing) holds
  the ones behind it, and reading pauses meanwhile.
* Flow control: past the write high-water mark reading stops until the
  client drains; a streamed listing sends its next chunk only then.
* Work per loop turn is bounded: at most ``REQUESTS_PER_TURN`` requests of
  one connection run per turn, then it yields (reading paused) to the others.
* A request the parser refuses gets its 400 / 413 / 431 after the answers
  to the requests before it, then the connection is closed: its write side
  is shut (so the client reads the answer and an end of stream) and whatever
  it still sends is discarded for at most ``LINGER_S``, so the answer is not
  lost to a reset while the client is still sending a refused body.
* Slow clients: a request must arrive whole within ``http-request-timeout-ms``
  of its first byte (else 408 and close); a keep-alive connection idle for
  ``http-idle-timeout-ms`` is closed.  One sweep per fraction of a second
  checks every connection (no timer per request).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from email.utils import formatdate

from .api import SECURITY_HEADERS, Api, Stream
from .wire import CONTINUE_RESPONSE, EXPECT_CONTINUE, HttpError, Request, RequestParser, response

log = logging.getLogger("repram.http")
_monotonic = time.monotonic

WRITE_BUFFER_HIGH_BYTES = 4 * 1024 * 1024   # as the RESP port (connection.py)
REQUESTS_PER_TURN = 256                     # then yield to other connections
LINGER_S = 2.0                              # discard a refused client's input this long at most
SWEEP_MIN_S, SWEEP_MAX_S = 0.05, 1.0


class HttpConnection(asyncio.Protocol):
    def __init__(self, front, tls: bool = False):
        self.front = front
        self.api = front.api
        cfg = front.server.config
        self.parser = RequestParser(cfg.http_max_header_bytes, cfg.http_max_headers,
                                    min(cfg.http_max_body_bytes, cfg.proto_max_bulk_bytes))
        self.tls = tls
        self.transport = None
        self.addr = "?"
        self.ip = "?"
        self.queue: deque = deque()
        self.busy = None          # Future or Stream being answered
        self.paused_writing = False
        self.reading_paused = False
        self.closing = False      # no more requests: answering the rest, then close
        self.closed = False
        self.last_active = time.monotonic()
        self.request_started = 0.0   # monotonic: first byte of the request in progress
        self._yield_handle = None
        self._linger_handle = None
        self._stream_keep_alive = True

    # -- asyncio callbacks -----------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH_BYTES)
        peer = transport.get_extra_info("peername")
        self.addr = "%s:%s" % (peer[0], peer[1]) if isinstance(peer, tuple) else str(peer)
        self.ip = peer[0] if isinstance(peer, tuple) else str(peer)   # rate limit's key
        if self.front.server.protected_refuses(peer):
            # protected-mode, as on the RESP port: without requirepass only
            # loopback clients are served (protected-mode no opens it, as REPRAM is).
            transport.write(response(403, self.front.common, b"Content-Type: text/plain\r\n",
                                     b"Forbidden: protected mode is on and no requirepass is set; "
                                     b"only loopback clients are served (protected-mode no opens the "
                                     b"node to the network)\n", close=True))
            transport.close()
            self.closed = True
            return
        if not self.front.register(self):
            transport.write(response(503, self.front.common, b"Content-Type: text/plain\r\n",
                                     b"Too many connections (maxclients)\n", close=True))
            transport.close()
            self.closed = True

    def connection_lost(self, exc):
        self.closed = True
        for h in (self._yield_handle, self._linger_handle):
            if h is not None:
                h.cancel()
        self.front.unregister(self)

    def pause_writing(self):
        self.paused_writing = True
        self._pause_reading()

    def resume_writing(self):
        self.paused_writing = False
        if self.closed:
            return
        if isinstance(self.busy, Stream):
            self._stream_step(self.busy, self._stream_keep_alive)
        else:
            self._process()

    def data_received(self, data):
        if self.closed:
            return
        if self.closing:
            return          # lingering after a refused request: discard
        parser = self.parser
        was_idle = not parser.in_message
        events = parser.feed(data)
        now = _monotonic()
        self.last_active = now
        if parser.in_message:
            if was_idle or events:
                self.request_started = now
        elif self.request_started:
            self.request_started = 0.0
        if len(events) == 1 and not self.queue and self.busy is None and not self.paused_writing:
            # The usual read: one whole request, nothing ahead of it.
            ev = events[0]
            if ev.__class__ is Request and ev.keep_alive:
                api = self.api
                r = api.handle(ev) if api.guard is None else api.guarded(ev, self.ip)
                if r.__class__ is bytes:
                    self.transport.write(r)     # may pause_writing (and reading) at once
                    if self.reading_paused and not self.paused_writing:
                        self._resume_reading()
                    return
                self._start_pending(r, True)
                return
        if events:
            q = self.queue
            for ev in events:
                if ev is EXPECT_CONTINUE:
                    # Only when nothing is ahead of it: a 100 may not
                    # overtake the answers to earlier requests.
                    if not q and self.busy is None and not self.paused_writing:
                        self.transport.write(CONTINUE_RESPONSE)
                    continue
                q.append(ev)
            self._process()

    def eof_received(self):
        # The client closed its side: answer what it sent, then close.
        self.closing = True
        if not self.queue and self.busy is None:
            self.transport.close()
            self.closed = True
        return True

    # -- answering ---------------------------------------------------------------

    def _pause_reading(self):
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self):
        if self.reading_paused and not self.closed and not self.closing:
            self.reading_paused = False
            self.transport.resume_reading()

    def _process(self):
        """Answer queued requests in order until one is pending, the client
        must drain, or this turn's budget is spent."""
        if self.busy is not None or self.closed:
            return
        q = self.queue
        out = []
        pending = 0
        n = 0
        api = self.api
        while q:
            if pending > WRITE_BUFFER_HIGH_BYTES:
                # Big answers: hand them over now, so the transport can say
                # whether the client keeps up before more are made.
                self._flush(out)
                out = []
                pending = 0
            if self.paused_writing:
                break
            if n >= REQUESTS_PER_TURN:
                self._pause_reading()
                if self._yield_handle is None:
                    self._yield_handle = asyncio.get_running_loop().call_soon(self._continue)
                break
            ev = q.popleft()
            n += 1
            if ev.__class__ is HttpError:
                out.append(self._refusal(ev))
                self._flush(out)
                self._refuse_close()
                return
            r = api.handle(ev) if api.guard is None else api.guarded(ev, self.ip)
            if r.__class__ is bytes:
                out.append(r)
                pending += len(r)
                if not ev.keep_alive:
                    self._flush(out)
                    self._close_after_reply()
                    return
                continue
            self._flush(out)
            out = []
            self._start_pending(r, ev.keep_alive)
            return
        self._flush(out)
        if self.closing and not q and self.busy is None:
            self._close_after_reply()
            return
        if not q and not self.paused_writing:
            self._resume_reading()

    def _continue(self):
        self._yield_handle = None
        self._process()

    def _flush(self, out):
        if out and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _start_pending(self, r, keep_alive: bool):
        self._pause_reading()
        if isinstance(r, Stream):
            self.busy = r
            self._stream_keep_alive = keep_alive
            self.transport.write(r.head)
            self._stream_step(r, keep_alive)
            return
        self.busy = r

        def done(f, keep_alive=keep_alive):
            self.busy = None
            if self.closed:
                return
            if f.cancelled() or f.exception() is not None:
                log.error("HTTP response failed: %r", None if f.cancelled() else f.exception())
                self.transport.write(response(500, self.front.common, b"",
                                              b"Internal server error\n", close=True))
                self._close_after_reply()
                return
            self.transport.write(f.result())
            if not keep_alive:
                self._close_after_reply()
                return
            self._process()
        r.add_done_callback(done)

    def _stream_step(self, st: Stream, keep_alive: bool):
        """Send one chunk per loop turn, waiting while the client drains."""
        if self.closed:
            return
        if self.paused_writing or self.busy is not st:
            return          # resume_writing continues it
        try:
            chunk = next(st.chunks)
        except StopIteration:
            if st.chunked:
                self.transport.write(b"0\r\n\r\n")
            self.busy = None
            if not st.chunked or not keep_alive:
                self._close_after_reply()
                return
            self._process()
            return
        except Exception:
            log.exception("HTTP stream failed")
            self.kill()
            return
        if chunk:
            self.transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if st.chunked else chunk)
        if not self.paused_writing:
            asyncio.get_running_loop().call_soon(self._stream_step, st, keep_alive)

    def _refusal(self, err: HttpError) -> bytes:
        st = self.api.stats
        st[err.status] = st.get(err.status, 0) + 1
        log.debug("HTTP %d to %s: %s", err.status, self.addr, err.message)
        return response(err.status, self.front.common, b"Content-Type: text/plain\r\n",
                        ("%s\n" % err.message).encode(), close=True)

    def _close_after_reply(self):
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _refuse_close(self):
        """After a refusal: shut our side, discard the client's input for a
        while, then close (see the module header)."""
        self.closing = True
        self.queue.clear()
        t = self.transport
        if t.can_write_eof():
            try:
                t.write_eof()
            except OSError:
                pass
            if self.reading_paused:
                self.reading_paused = False
                t.resume_reading()
            self._linger_handle = asyncio.get_running_loop().call_later(LINGER_S, self.kill)
        else:
            self._close_after_reply()

    def timeout(self, status_body: bytes | None) -> None:
        if status_body is not None:
            self.transport.write(status_body)
            self._refuse_close()
        else:
            self._close_after_reply()

    def kill(self):
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class HttpFrontend:
    """The listeners, the connections, the shared header block and the
    sweep that enforces the timeouts."""

    def __init__(self, server):
        self.server = server
        self.api = Api(self)
        self.connections: set = set()
        self.servers: list = []
        self.port = 0
        self.common = b""
        self._date_s = 0
        self._task = None
        self.refresh()

    def refresh(self) -> None:
        now = int(time.time())
        if now != self._date_s:
            self._date_s = now
            self.common = (b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
                           + SECURITY_HEADERS)
            self.common_any_origin = self.common + b"Access-Control-Allow-Origin: *\r\n"

    async def start(self) -> None:
        srv = self.server
        cfg = srv.config
        loop = asyncio.get_running_loop()
        ctx = srv.client_tls_context() if cfg.http_tls else None
        port = 0 if cfg.http_port < 0 else cfg.http_port
        for host in cfg.http_bind or cfg.bind:
            s = await loop.create_server(lambda: HttpConnection(self, ctx is not None), host, port,
                                         ssl=ctx, reuse_address=True, backlog=511)
            self.servers.append(s)
            if port == 0:
                port = s.sockets[0].getsockname()[1]
        self.port = port
        self._task = asyncio.ensure_future(self._sweep())
        log.info("http ready on %s port %d%s", ",".join(cfg.http_bind or cfg.bind), port,
                 " (tls)" if ctx is not None else "")

    def stop_accepting(self) -> None:
        for s in self.servers:
            s.close()

    async def stop(self) -> None:
        """Close every connection (what is written is flushed) and wait for
        the listeners."""
        self.stop_accepting()
        if self._task is not None:
            self._task.cancel()
        for c in list(self.connections):
            if c.transport is not None and not c.transport.is_closing():
                c.transport.close()
        for s in self.servers:
            await s.wait_closed()

    def register(self, conn) -> bool:
        """Room for one more: within http-maxclients, and within maxclients
        counting the RESP clients too (one pool of descriptors, as sized by
        server.fit_fd_limit).  Else the connection gets a 503 and is closed,
        as a RESP client past maxclients gets its error and is closed."""
        s = self.server
        if len(self.connections) >= s.config.http_maxclients or s.connections() >= s.config.maxclients:
            s.stat_rejected += 1
            st = self.api.stats
            st[503] = st.get(503, 0) + 1
            return False
        self.connections.add(conn)
        return True

    def unregister(self, conn) -> None:
        self.connections.discard(conn)

    async def _sweep(self) -> None:
        cfg = self.server.config
        while True:
            timeouts = [t for t in (cfg.http_request_timeout_ms, cfg.http_idle_timeout_ms) if t]
            interval = min([SWEEP_MAX_S] + [t / 4000.0 for t in timeouts])
            await asyncio.sleep(max(SWEEP_MIN_S, interval))
            self.refresh()
            now = time.monotonic()
            if self.api.limiter is not None:
                self.api.limiter.sweep(now)
            req_s = cfg.http_request_timeout_ms / 1000.0
            idle_s = cfg.http_idle_timeout_ms / 1000.0
            for c in list(self.connections):
                if c.closed or c.closing:
                    continue
                if c.request_started and req_s and now - c.request_started > req_s:
                    st = self.api.stats
                    st[408] = st.get(408, 0) + 1
                    log.debug("HTTP 408 to %s: request not received within %d ms", c.addr,
                              cfg.http_request_timeout_ms)
                    c.timeout(response(408, self.common, b"Content-Type: text/plain\r\n",
                                       b"Request not received in time (http-request-timeout-ms)\n",
                                       close=True))
                elif (idle_s and not c.request_started and c.busy is None and not c.queue
                      and now - c.last_active > idle_s):
                    c.timeout(None)
