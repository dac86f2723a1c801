"""Run a randomized fault schedule against a real enclave and record a history
for tests/jepsen_checker.py (used by tests/test_jepsen.py, short, and
benchmarks/jepsen.py, long).

* Nodes are subprocesses (``python3 -m repram_resp``, or tests/skewnode.py for
  a skewed clock) on distinct loopback addresses 127.0.0.(base+i); every peer
  link goes through a ``FaultProxy`` in front of each node's cluster port
  (announced as its cluster address).
* One worker thread per node runs the workload on its own connection: random
  keys of a small keyspace, unique values, TTLs in a range, a share of writes
  followed by ``WAIT n 200``, reads in between, paced to a rate.  Every
  operation is recorded with its invoke and complete times.
* Faults: ``partition`` (random split), ``oneway`` (one node's outbound links
  black-holed), ``bridge`` ({a} and {c} apart, b sees both), ``slow`` (one
  node's links delayed), ``stop`` (SIGSTOP, SIGCONT), ``kill`` (SIGKILL,
  restart), ``clock`` (kill, restart with the clock offset by a few hundred ms;
  it stays skewed).  After each heal the workload pauses and every key is
  read on every node every ``sweep_ms`` until they agree (or ``bound_s``):
  those sweeps are in the history too.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import redis

from faultproxy import FaultProxy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
READY_RE = re.compile(rb"ready on \S+ port (\d+)")
CPORT_RE = re.compile(rb"cluster port (\d+)")
FAULTS = ("partition", "oneway", "bridge", "slow", "stop", "kill", "clock")

# Failure detection a little faster than the defaults, so a run is short;
# anti-entropy at its default-ish interval.
NODE_ARGS = ["--cluster-ping-interval-ms", "50", "--cluster-suspect-after-ms", "400",
             "--cluster-down-after-ms", "1000", "--cluster-reconnect-min-ms", "20",
             "--cluster-reconnect-max-ms", "300", "--cluster-rebootstrap-interval-ms", "500",
             "--cluster-handshake-timeout-ms", "2000", "--cluster-anti-entropy-interval-ms", "1000"]


def now_ms() -> float:
    return time.monotonic() * 1000.0


class Node:
    def __init__(self, name: str, ip: str, proxy: FaultProxy, extra=()):
        self.name, self.ip, self.proxy = name, ip, proxy
        self.extra = list(extra)
        self.port = 0
        self.offset_ms = 0
        self.proc = None
        self.log = b""
        self.stopped = False

    def start(self, seeds=(), offset_ms: int = 0) -> None:
        self.offset_ms = offset_ms
        args = ["--port", str(self.port), "--bind", self.ip, "--node-id", self.name,
                "--cluster-port", "0", "--cluster-announce-ip", "127.0.0.1",
                "--cluster-announce-port", str(self.proxy.port), *NODE_ARGS, *self.extra]
        if seeds:
            args += ["--peers", ",".join(seeds)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if offset_ms:
            env["REPRAM_TEST_CLOCK_OFFSET_MS"] = str(offset_ms)
            env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
            cmd = [sys.executable, os.path.join(HERE, "skewnode.py"), *args]
        else:
            cmd = [sys.executable, "-m", "repram_resp", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, cwd=ROOT)
        self.log = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("node %s exited: %r" % (self.name, self.log[-2000:]))
            self.log += line
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
                break
        cport = int(CPORT_RE.search(self.log).group(1))
        self.proxy.set_target(self.ip, cport)
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        self.stopped = False

    def _pump(self, proc) -> None:
        for line in proc.stdout:
            if len(self.log) < 1 << 20:
                self.log += line

    def client(self, timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(host=self.ip, port=self.port, socket_timeout=timeout,
                           socket_connect_timeout=timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def stop_signal(self, sig) -> None:
        self.proc.send_signal(sig)
        self.stopped = sig == signal.SIGSTOP

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            if self.stopped:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Run:
    def __init__(self, n: int = 3, seed: int = 1, keys: int = 100, rate: float = 150.0,
                 ttl_ms=(1000, 8000), wait_share: float = 1 / 3, fault_s=(1.0, 2.0),
                 sweep_ms: float = 100.0, bound_s: float = 8.0, ip_base: int = 41, extra=(),
                 max_offset_ms: int = 400, clients_per_node: int = 3):
        self.n, self.rng = n, random.Random(seed)
        self.seed = seed
        self.keys = ["k%03d" % i for i in range(keys)]
        self.rate, self.ttl_ms, self.wait_share = rate, ttl_ms, wait_share
        self.fault_s, self.sweep_ms, self.bound_s = fault_s, sweep_ms, bound_s
        self.max_offset_ms = max_offset_ms
        self.history: list = []
        self.ips = ["127.0.0.%d" % (ip_base + i) for i in range(n)]
        self.proxies = [FaultProxy() for _ in range(n)]
        self.nodes = [Node("n%d" % (i + 1), self.ips[i], self.proxies[i], extra) for i in range(n)]
        self._run = threading.Event()
        self._quit = False
        self.clients_per_node = clients_per_node
        self._busy = [False] * (n * clients_per_node)
        self._workers = []
        self.offsets_used = [0]

    # -- setup -----------------------------------------------------------------

    def seeds_for(self, i: int) -> list:
        return ["127.0.0.1:%d" % self.proxies[j].port for j in range(self.n) if j != i][:2]

    def start(self) -> None:
        self.nodes[0].start()
        for i in range(1, self.n):
            self.nodes[i].start(["127.0.0.1:%d" % self.proxies[0].port])
        self.wait_mesh(20)
        for w in range(self.n * self.clients_per_node):
            t = threading.Thread(target=self._worker, args=(w,), daemon=True)
            t.start()
            self._workers.append(t)

    def mesh_ok(self) -> bool:
        for nd in self.nodes:
            try:
                c = nd.client()
                info = c.info("replication")
                c.close()
            except redis.RedisError:
                return False
            ups = [v for k, v in info.items() if k.startswith("peer") and isinstance(v, dict)
                   and v.get("state") == "up"]
            if len(ups) < self.n - 1:
                return False
        return True

    def wait_mesh(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.mesh_ok():
                return
            time.sleep(0.05)
        raise AssertionError("mesh did not form")

    def close(self) -> None:
        self._quit = True
        self._run.set()
        for t in self._workers:
            t.join(5)
        for nd in self.nodes:
            nd.close()
        for p in self.proxies:
            p.close()

    # -- workload --------------------------------------------------------------

    def _worker(self, i: int) -> None:
        """Worker i: a client of node i % n, at rate / workers ops/s."""
        rng = random.Random(self.seed * 1000 + i)
        node = self.nodes[i % self.n]
        name = node.name
        tag = "%s.%d" % (name, i // self.n)
        c = None
        seq = 0
        period = len(self._busy) / self.rate
        nxt = time.monotonic()
        rec = self.history.append
        while not self._quit:
            if not self._run.is_set():
                self._busy[i] = False
                self._run.wait()
                nxt = time.monotonic()
                continue
            self._busy[i] = True
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                nxt = time.monotonic()
            if c is None or c.connection_pool.connection_kwargs.get("port") != node.port:
                c = node.client()
            key = rng.choice(self.keys)
            if rng.random() < 0.5:
                seq += 1
                value = "%s:%d" % (tag, seq)
                ttl = rng.randint(*self.ttl_ms)
                e = {"kind": "write", "key": key, "value": value, "node": name, "ttl": ttl,
                     "t0": now_ms(), "status": "ok", "acks": None}
                try:
                    c.set(key, value, px=ttl)
                    e["t1"] = now_ms()
                    if rng.random() < self.wait_share:
                        e["acks"] = c.wait(self.n - 1, 200)
                except redis.ResponseError as ex:
                    e["t1"] = now_ms()
                    e["status"], e["error"] = "fail", str(ex)[:80]
                except (redis.RedisError, OSError) as ex:
                    if "t1" not in e:       # the SET itself: it may or may not have happened
                        e["t1"] = now_ms()
                        e["status"], e["error"] = "unknown", type(ex).__name__
                    c = None
                rec(e)
            else:
                e = {"kind": "read", "key": key, "node": name, "t0": now_ms(), "status": "ok",
                     "value": None}
                try:
                    v = c.get(key)
                    e["value"] = None if v is None else v.decode()
                except (redis.RedisError, OSError) as ex:
                    e["status"], e["error"] = "fail", type(ex).__name__
                    c = None
                e["t1"] = now_ms()
                rec(e)
        self._busy[i] = False

    def pause(self) -> None:
        self._run.clear()
        deadline = time.monotonic() + 5
        while any(self._busy) and time.monotonic() < deadline:
            time.sleep(0.01)

    def resume(self) -> None:
        self._run.set()

    # -- faults ----------------------------------------------------------------

    def _isolate(self, a: list, b: list) -> None:
        """Black-hole every link between the groups a and b (both ways)."""
        for i in a:
            self.proxies[i].partition({self.ips[j] for j in b})
        for j in b:
            self.proxies[j].partition({self.ips[i] for i in a})

    def inject(self, kind: str) -> dict:
        rng = self.rng
        idx = list(range(self.n))
        rng.shuffle(idx)
        down: list = []
        t0 = now_ms()
        hold = rng.uniform(*self.fault_s)
        desc = kind
        if kind == "partition":
            k = rng.randint(1, self.n // 2)
            a, b = idx[:k], idx[k:]
            self._isolate(a, b)
            desc = "partition %s | %s" % ([self.nodes[i].name for i in a], [self.nodes[i].name for i in b])
        elif kind == "oneway":
            i = idx[0]
            for j in range(self.n):
                if j != i:
                    self.proxies[j].partition({self.ips[i]})
            desc = "oneway from %s" % self.nodes[i].name
        elif kind == "bridge":
            a, c = idx[0], idx[1]
            self.proxies[a].partition({self.ips[c]})
            self.proxies[c].partition({self.ips[a]})
            desc = "bridge %s x %s" % (self.nodes[a].name, self.nodes[c].name)
        elif kind == "slow":
            i = idx[0]
            ms = rng.randint(100, 300)
            self.proxies[i].delay(ms)
            for j in range(self.n):
                if j != i:
                    self.proxies[j].delay(ms, sources={self.ips[i]})
            desc = "slow %s %d ms" % (self.nodes[i].name, ms)
        elif kind == "stop":
            i = idx[0]
            self.nodes[i].stop_signal(signal.SIGSTOP)
            down = [self.nodes[i].name]
            desc = "stop %s" % self.nodes[i].name
        elif kind in ("kill", "clock"):
            i = idx[0]
            self.nodes[i].kill()
            self.history.append({"kind": "kill", "node": self.nodes[i].name, "t": now_ms()})
            down = [self.nodes[i].name]
            desc = "%s %s" % (kind, self.nodes[i].name)
        else:
            raise ValueError(kind)
        time.sleep(hold)
        # Heal.
        if kind in ("partition", "oneway", "bridge", "slow"):
            for p in self.proxies:
                p.delay(0)
                p.heal()
        elif kind == "stop":
            self.nodes[i].stop_signal(signal.SIGCONT)
        else:
            offset = 0
            if kind == "clock":
                offset = rng.choice((-1, 1)) * rng.randint(self.max_offset_ms // 2, self.max_offset_ms)
                self.offsets_used.append(offset)
                desc += " %+d ms" % offset
            self.nodes[i].start(self.seeds_for(i), offset)
        f = {"kind": "fault", "fault": desc, "t0": t0, "t1": now_ms(), "down": down}
        self.history.append(f)
        return f

    def converge(self, heal_index: int) -> float | None:
        """Pause the workload, sweep until every node agrees (or bound_s)."""
        self.pause()
        t_heal = self.history[-1]["t1"] if self.history[-1]["kind"] == "fault" else now_ms()
        agreed = None
        while now_ms() - t_heal < self.bound_s * 1000:
            t0 = now_ms()
            vals = []
            try:
                for nd in self.nodes:
                    c = nd.client()
                    got = c.mget(self.keys)
                    c.close()
                    vals.append([None if v is None else v.decode() for v in got])
            except (redis.RedisError, OSError):
                time.sleep(self.sweep_ms / 1000)
                continue
            t1 = now_ms()
            values = {k: [vals[n][j] for n in range(self.n)] for j, k in enumerate(self.keys)}
            self.history.append({"kind": "sweep", "heal": heal_index, "t0": t0, "t1": t1,
                                 "values": values})
            if all(len(set(v)) == 1 for v in values.values()):
                agreed = t1 - t_heal
                break
            time.sleep(self.sweep_ms / 1000)
        self.resume()
        return agreed

    def run(self, faults, settle_s: float = 0.5) -> list:
        """Run the workload through the given faults (in order); returns the
        history.  Waits for the mesh before each fault."""
        self.resume()
        time.sleep(settle_s)
        for i, kind in enumerate(faults):
            self.wait_mesh(15)
            time.sleep(settle_s)
            self.inject(kind)
            self.converge(i)
            time.sleep(settle_s)
        self.pause()
        return self.history

    def tolerance_ms(self) -> float:
        """How far apart two writes must be to be ordered despite the clocks."""
        return 2 * max(abs(o) for o in self.offsets_used) + 30.0
