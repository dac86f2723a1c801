"""Shared fixtures: real servers on port 0.

* ``server``: an in-process node running its own event loop in a thread, so
  sync redis-py clients, redis-cli and raw sockets can talk to it.  The
  listener is bound before the fixture returns (readiness by construction).
* ``node_proc``: the ``repram-resp`` executable as a subprocess; the fixture
  reads the chosen port from its "ready" log line.
Every server binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import redis

from repram_resp.clock import FakeClock
from repram_resp.config import load
from faultproxy import FaultProxy
from rawresp import Raw, free_port
from repram_resp.server import Server


class ThreadedServer:
    def __init__(self, args=(), clock=None):
        self.config = load(["--port", "0", "--bind", "127.0.0.1", *args])
        kwargs = {"clock": clock} if clock is not None else {}
        self.server = Server(self.config, **kwargs)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        self.port = self.server.port

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self._stop = asyncio.Event()
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as e:  # pragma: no cover - surfaced to the test
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_until_complete(self._wait())
        self.loop.close()

    async def _wait(self):
        await self._stop.wait()
        await self.server.stop()

    def call(self, fn, *args):
        """Run fn(*args) on the server's loop and return its result."""
        fut = asyncio.run_coroutine_threadsafe(_acall(fn, *args), self.loop)
        return fut.result(10)

    def client(self, **kw) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def stop(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self._stop.set)
            self.thread.join(15)


async def _acall(fn, *args):
    return fn(*args)


@pytest.fixture
def server():
    s = ThreadedServer()
    yield s
    s.stop()


@pytest.fixture
def make_server():
    made = []

    def make(*args, clock=None):
        s = ThreadedServer(args, clock=clock)
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def fake_clock():
    return FakeClock()


READY_RE = re.compile(rb"ready on \S+ port (\d+)")


class NodeProcess:
    def __init__(self, args):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "repram_resp", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        self.log = b""
        self.port = None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("node exited: %r" % self.log)
            self.log += line
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
                break
        self._drain = threading.Thread(target=self._pump, daemon=True)
        self._drain.start()

    def _pump(self):
        for line in self.proc.stdout:
            self.log += line

    def client(self, **kw):
        return redis.Redis(host="127.0.0.1", port=self.port, **kw)

    def stop(self, sig=None):
        import signal
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@pytest.fixture
def node_proc():
    made = []

    def start(*args):
        n = NodeProcess(["--port", "0", "--bind", "127.0.0.1", *args])
        made.append(n)
        return n
    yield start
    for n in made:
        n.stop()


@pytest.fixture(scope="module")
def real_redis():
    """Port of a throwaway real redis-server (no persistence, loopback only):
    the oracle for differential tests."""
    exe = shutil.which("redis-server")
    assert exe is not None, "redis-server is needed (apt-get install -y redis-server; .ci/run does)"
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            c = Raw(port, timeout=5)
            if c.cmd("PING") == b"+PONG\r\n":
                c.close()
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("redis-server did not start")
        time.sleep(0.02)     # polling a starting process, bounded by the deadline
    yield port
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def both(server, real_redis):
    """(ours, redis) raw connections, real Redis flushed so both start empty."""
    ours, theirs = Raw(server.port, timeout=5), Raw(real_redis, timeout=5)
    assert theirs.cmd("FLUSHALL") == b"+OK\r\n"
    yield ours, theirs
    ours.close()
    theirs.close()


@pytest.fixture
def proxies():
    """proxies(n): n FaultProxy instances, closed after the test."""
    made = []

    def make(n):
        ps = [FaultProxy() for _ in range(n)]
        made.extend(ps)
        return ps
    yield make
    for p in made:
        p.close()
