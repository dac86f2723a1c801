"""A TCP proxy that injects network faults between cluster nodes (tests only).

One ``FaultProxy`` listens on 127.0.0.1:<port> and forwards every connection
to a target (a node's cluster port), running its own event loop in a thread
so synchronous tests can drive it.  Faults, changeable at any moment:

* ``delay(ms, sources=None)`` -- every chunk is delivered ``ms`` later (both
  directions, order kept); with ``sources``, only on connections from those
  source IPs (a slow path from one node);
* ``partition(sources)`` -- traffic of connections from those source IPs
  (all if None) is black-holed in both directions: read and dropped, as a
  dead network would, so only timeouts notice; new connections from them are
  accepted and black-holed too;
* ``stall()``     -- stop reading from the connecting side altogether, so the
  sender's kernel buffers and then its own send queue fill (backpressure);
* ``heal()``      -- undo partition and stall; black-holed connections are
  aborted so that both ends reconnect;
* ``cut()``       -- abort every connection now (a crash of the path).

Nodes that bind distinct loopback addresses (127.0.0.11, .12, ...) dial
from them, which is how a partition tells sides apart.
"""

from __future__ import annotations

import asyncio
import threading
import time


class _Conn:
    def __init__(self, proxy, reader, writer):
        self.proxy = proxy
        self.c_reader, self.c_writer = reader, writer
        self.u_reader = self.u_writer = None
        peer = writer.get_extra_info("peername")
        self.source = peer[0] if peer else "?"
        self.blackholed = proxy._blocked(self.source)
        self.tasks = []

    async def run(self):
        p = self.proxy
        if not self.blackholed:
            try:
                self.u_reader, self.u_writer = await asyncio.open_connection(*p.target)
            except OSError:
                self.c_writer.close()
                return
        self.tasks = [asyncio.ensure_future(self._pump(self.c_reader, lambda: self.u_writer, True)),
                      asyncio.ensure_future(self._pump(self.u_reader, lambda: self.c_writer, False))
                      if self.u_reader is not None else asyncio.ensure_future(asyncio.sleep(3600))]
        try:
            await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.abort()

    async def _pump(self, reader, writer_of, from_client):
        p = self.proxy
        queue: asyncio.Queue = asyncio.Queue()
        sender = asyncio.ensure_future(self._deliver(queue, writer_of))
        try:
            while True:
                if from_client:
                    while p.stalled and not self.blackholed:
                        await asyncio.sleep(0.01)
                data = await reader.read(65536)
                if not data:
                    break
                if self.blackholed or p._blocked(self.source):
                    self.blackholed = True
                    continue
                queue.put_nowait((time.monotonic() + p._delay_of(self.source), data))
            await queue.join()
        finally:
            sender.cancel()

    async def _deliver(self, queue, writer_of):
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            w = writer_of()
            if w is not None and not self.blackholed:
                w.write(data)
                await w.drain()
            queue.task_done()

    def abort(self):
        for w in (self.c_writer, self.u_writer):
            if w is not None:
                w.transport.abort()
        for t in self.tasks:
            t.cancel()
        self.proxy._conns.discard(self)


class FaultProxy:
    def __init__(self, target: tuple | None = None, listen_host: str = "127.0.0.1"):
        self.target = target
        self.delay_s = 0.0
        self._source_delay_s: dict = {}
        self.stalled = False
        self._blocked_sources: set | None = set()     # None = everyone
        self._conns: set = set()
        self.loop = asyncio.new_event_loop()
        self._server = None
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self._server = self.loop.run_until_complete(
                asyncio.start_server(self._accept, listen_host, 0))
            ready.set()
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer):
        if self.target is None:
            writer.transport.abort()
            return
        c = _Conn(self, reader, writer)
        self._conns.add(c)
        await c.run()

    def _blocked(self, source: str) -> bool:
        b = self._blocked_sources
        return b is None or source in b

    def _call(self, fn):
        done = threading.Event()

        def wrapped():
            try:
                fn()
            finally:
                done.set()
        self.loop.call_soon_threadsafe(wrapped)
        done.wait(5)

    # -- faults ----------------------------------------------------------------

    def set_target(self, host: str, port: int) -> None:
        self.target = (host, port)

    def delay(self, ms: float, sources=None) -> None:
        if sources is None:
            self.delay_s = ms / 1000.0
            self._source_delay_s = {}
        else:
            for s in sources:
                self._source_delay_s[s] = ms / 1000.0

    def _delay_of(self, source: str) -> float:
        return self._source_delay_s.get(source, self.delay_s)

    def partition(self, sources=None) -> None:
        def do():
            self._blocked_sources = None if sources is None else set(sources)
            for c in list(self._conns):
                if self._blocked(c.source):
                    c.blackholed = True
        self._call(do)

    def stall(self) -> None:
        self.stalled = True

    def heal(self) -> None:
        def do():
            self._blocked_sources = set()
            self.stalled = False
            for c in list(self._conns):
                if c.blackholed:
                    c.abort()
        self._call(do)

    def cut(self) -> None:
        self._call(lambda: [c.abort() for c in list(self._conns)])

    async def _shutdown(self) -> None:
        for c in list(self._conns):
            c.abort()
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if not self.loop.is_running():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
