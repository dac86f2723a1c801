"""The anti-entropy repair bound (issue 8): time from a divergence injected
with no restart and no link change to agreement on every node.

Run from the repo root:

    python benchmarks/repair_bound.py [--trials 8] [--preload 0,100000] [--markdown-out benchmarks/RESULTS.md]

Three nodes, each its own process (benchmarks/divergent_node.py: ``python -m
repram_resp`` plus a SIGUSR1 hook), with default settings
(cluster-anti-entropy-interval-ms 2000, ping 250 ms).  Optionally
``--preload`` keys are written first through one node's client port and
replicated normally.  Each trial writes ``victim:i`` through a node and waits
until every node has it, waits a random 0-2 s (a random phase of the
anti-entropy schedule), then SIGUSR1s a random node: it writes 100 keys
straight into its keyspace (not streamed) and plants a version floor over
``victim:i``.  The clock runs until every node returns the 100 values and
nil for the victim.  No redis-server baseline: Redis has no anti-entropy.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import redis  # noqa: E402

from harness import emit_markdown, facts_markdown, machine_facts, repro_command  # noqa: E402

READY_RE = re.compile(rb"ready on \S+ port (\d+)")
CPORT_RE = re.compile(rb"cluster port (\d+)")


class Node:
    def __init__(self, args):
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "divergent_node.py"), "--port", "0", "--bind",
             "127.0.0.1", "--cluster-port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log = b""
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit("node exited: %r" % log)
            log += line
            m = READY_RE.search(line)
            if m:
                self.port = int(m.group(1))
                break
        self.cport = int(CPORT_RE.search(log).group(1))
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        self.r = redis.Redis(port=self.port, socket_timeout=10)
        self.nid = args[args.index("--node-id") + 1].encode()
        self.planted = 0

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise SystemExit("timed out waiting for " + what)


def trial(nodes, rng, i):
    src = rng.choice(nodes)
    n = src.planted
    src.planted += 1
    keys = [b"div:%s:%d:%d" % (src.nid, n, j) for j in range(100)]
    victim = b"victim:%s:%d" % (src.nid, n)
    nodes[0].r.set(victim, b"1", ex=600)
    wait(lambda: all(n.r.get(victim) == b"1" for n in nodes), 10, "the victim key everywhere")
    time.sleep(rng.uniform(0, 2.0))           # a random phase of the anti-entropy schedule
    t0 = time.monotonic()
    src.proc.send_signal(signal.SIGUSR1)
    wait(lambda: src.r.get(keys[-1]) == b"v", 10, "the divergence to be planted")
    wait(lambda: all(n.r.mget(keys) == [b"v"] * 100 and n.r.get(victim) is None for n in nodes),
         120, "agreement")
    return (time.monotonic() - t0) * 1000.0
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--preload", default="0,100000")
    ap.add_argument("--markdown-out", default="")
    args = ap.parse_args()
    facts = machine_facts()
    rng = random.Random(8)
    rows = []
    for preload in [int(x) for x in args.preload.split(",")]:
        a = Node(["--node-id", "a"])
        b = Node(["--node-id", "b", "--peers", "127.0.0.1:%d" % a.cport])
        c = Node(["--node-id", "c", "--peers", "127.0.0.1:%d" % a.cport])
        nodes = [a, b, c]
        wait(lambda: all(n.r.info("replication")["good_replicas"] == 2 for n in nodes), 20, "mesh")
        if preload:
            p = a.r.pipeline(transaction=False)
            for i in range(preload):
                p.set("pre:%d" % i, "x", ex=3600)
                if i % 10000 == 9999:
                    p.execute()
            p.execute()
            wait(lambda: all(n.r.dbsize() >= preload for n in nodes), 120, "preload replicated")
        times = []
        for i in range(args.trials):
            ms = trial(nodes, rng, i)
            print("preload %d trial %d: %.0f ms" % (preload, i, ms), file=sys.stderr, flush=True)
            times.append(ms)
        walk = max(float(n.r.info("replication")["repl_anti_entropy_last_walk_ms"]) for n in nodes)
        rows.append((preload, times, walk))
        for n in nodes:
            n.close()
    lines = ["## Issue 8: anti-entropy repair bound (benchmarks/repair_bound.py)", "",
             "Command: `%s`" % repro_command(), "", *facts_markdown(facts), "",
             "3 nodes (separate processes), default `cluster-anti-entropy-interval-ms` 2000; 100 keys written "
             "into one node's keyspace without streaming + one floor planted, at a random phase; "
             "time until every node agrees. The machine (2 cores) was shared with other teams' work.",
             "", "| keys in the store | trials | median (ms) | max (ms) | last walk (ms) |",
             "|---|---|---|---|---|"]
    for preload, times, walk in rows:
        lines.append("| %d | %d | %.0f | %.0f | %.1f |" % (
            preload + 101 * len(times), len(times), statistics.median(times), max(times), walk))
    emit_markdown("\n".join(lines) + "\n", args.markdown_out or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
