"""The anti-entropy repair bound (issue 8): time from a divergence injected
with no restart and no link change to agreement on every node.

Run from the repo root:

    python benchmarks/repair_bound.py [--trials 10] [--preload 0,100000] [--markdown-out benchmarks/RESULTS.md]

Three nodes run in this process (one thread and event loop each, the test
suite's way), with default settings (cluster-anti-entropy-interval-ms 2000,
ping 250 ms).  Optionally ``--preload`` keys are written first through one
node's client port and replicated normally.  Each trial then, on a random
node's own loop, writes 100 keys straight into its keyspace (fresh HLC
versions, not streamed) and plants a version floor over one replicated key
(as if its newer write had expired there), at a random instant; the clock
runs until every node returns the 100 values and nil for the floored key.
The three nodes share one Python process (one GIL), so walks cost more than
on separate machines.  No redis-server baseline: Redis has no anti-entropy.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import redis  # noqa: E402

from harness import emit_markdown, facts_markdown, machine_facts, repro_command  # noqa: E402
from repram_resp.config import load  # noqa: E402
from repram_resp.server import Server  # noqa: E402


class Node:
    def __init__(self, args):
        self.server = Server(load(["--port", "0", "--bind", "127.0.0.1", "--cluster-port", "0",
                                   "--loglevel", "warning", *args]))
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.server.start())
            ready.set()
            self.loop.run_forever()
        threading.Thread(target=run, daemon=True).start()
        ready.wait(10)
        self.port = self.server.port
        self.cport = self.server.replication.cport
        self.r = redis.Redis(port=self.port, socket_timeout=10)

    def call(self, fn):
        async def wrap():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrap(), self.loop).result(30)


def wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise SystemExit("timed out waiting for " + what)


def trial(nodes, rng, i):
    src = rng.choice(nodes)
    keys = [b"div:%d:%d" % (i, j) for j in range(100)]
    victim = b"shared:%d" % i
    nodes[0].r.set(victim, b"1", ex=600)
    wait(lambda: all(n.r.get(victim) == b"1" for n in nodes), 10, "the victim key everywhere")
    time.sleep(rng.uniform(0, 2.0))           # a random phase of the anti-entropy schedule

    def plant():
        s = src.server
        now = s.clock()
        for k in keys:
            s.keyspace.put(k, b"v", now + 600_000, None, now)
        s.keyspace.apply_floor(victim, s.hlc.tick(now), now)
    t0 = time.monotonic()
    src.call(plant)
    wait(lambda: all(n.r.mget(keys) == [b"v"] * 100 and n.r.get(victim) is None for n in nodes),
         60, "agreement")
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
            n.call(lambda: None)
    lines = ["## Issue 8: anti-entropy repair bound (benchmarks/repair_bound.py)", "",
             "Command: `%s`" % repro_command(), "", *facts_markdown(facts), "",
             "3 in-process nodes, default `cluster-anti-entropy-interval-ms` 2000; 100 keys written "
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
