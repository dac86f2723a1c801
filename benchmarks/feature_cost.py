#!/usr/bin/env python3
"""What always-on features cost SET / GET, in server CPU per command, measured
in process on the real read path -- ``Client.data_received``, so the fast
lane runs when it is built -- with the sockets replaced by a transport that
drops the replies.  Thread CPU time, best of R repetitions: time spent
preempted by other processes does not count, so this resolves ~1% on a
machine where end-to-end runs move by tens of percent.

Variants, each in its own process, alternating round by round:

  no-stats  -- this checkout with command statistics cut out
               (benchmarks/ablate.py stats: INFO commandstats / latencystats /
               SLOWLOG / LATENCY timing of runs, in the lane and in Python)
  ours      -- this checkout
  tracking  -- this checkout, one other client with CLIENT TRACKING ON
               (default mode) that has cached 10 keys the load never writes,
               so every SET passes the tracking check

and the cost of a feature is ours / no-stats - 1 (stats) and
tracking / ours - 1 (tracking).  Pipelines of 1 and 16 commands per read
(-P 1 and -P 16 in redis-benchmark's terms).  The socket system calls a
real request also pays (~5-8 us per read here) are not in these figures,
so the percentages are upper bounds of the end-to-end cost.

    python benchmarks/feature_cost.py                 # ~1 min
    python benchmarks/feature_cost.py --no-lane       # the pure-Python path

stdlib only (plus what repram_resp imports, and ablate.py's build).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import ablate  # noqa: E402

CHILD = r"""
import asyncio, gc, json, sys, time
sys.path.insert(0, sys.argv[1])
tracking, n, reps = sys.argv[2] == "tracking", int(sys.argv[3]), int(sys.argv[4])
pipelines = [int(x) for x in sys.argv[5].split(",")]
import repram_resp
assert repram_resp.__file__.startswith(sys.argv[1]), repram_resp.__file__
from repram_resp.config import load
from repram_resp.server import Server
from repram_resp.connection import Client
from repram_resp import lane
sys.path.insert(0, sys.argv[6])
from harness import DropTransport as Sink, encode_command as enc


async def main():
    server = Server(load(["--port", "0"]))
    server.update_lane()
    c = Client(server); c.connection_made(Sink())
    if tracking:
        t = Client(server); t.connection_made(Sink())
        t.data_received(enc(b"HELLO", b"3") + enc(b"CLIENT", b"TRACKING", b"ON"))
        t.data_received(b"".join(enc(b"GET", b"other:%d" % i) for i in range(10)))
        assert len(server.tracking.table) == 10, server.tracking.table
    out = {"lane": bool(lane.AVAILABLE and server.lane_ok)}
    # Every key exists first (SET then overwrites, GET hits), as in the
    # end-to-end benchmark after its warm-up.
    for i in range(0, 100000, 100):
        c.data_received(b"".join(enc(b"SET", b"key:%d" % (i + k), b"v", b"EX", b"60") for k in range(100)))
    for P in pipelines:
        for name in ("SET", "GET"):
            def cmd(i):
                k = b"key:%d" % (i % 100000)
                return enc(b"SET", k, b"v", b"EX", b"60") if name == "SET" else enc(b"GET", k)
            reads = [b"".join(cmd(j * P + k) for k in range(P)) for j in range(n // P)]
            gc.collect(); gc.freeze()
            best = None
            for _ in range(reps):
                t0 = time.thread_time_ns()
                for r in reads:
                    c.data_received(r)
                dt = (time.thread_time_ns() - t0) / (len(reads) * P)
                best = dt if best is None else min(best, dt)
            out["%s/P%d" % (name, P)] = best
    print(json.dumps(out))

asyncio.run(main())
"""


def run(src: str, mode: str, args) -> dict:
    env = dict(os.environ)
    if args.no_lane:
        env["REPRAM_NO_EXTENSIONS"] = "1"
    p = subprocess.run([sys.executable, "-c", CHILD, src, mode, str(args.n), str(args.reps),
                        args.pipelines, HERE], capture_output=True, text=True, env=env, cwd="/")
    if p.returncode:
        raise SystemExit("child %s %s failed:\n%s" % (src, mode, p.stderr[-3000:]))
    return json.loads(p.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=64_000, help="commands per repetition")
    ap.add_argument("--reps", type=int, default=9, help="repetitions per process; the best counts")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds of the three variants")
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--no-lane", action="store_true", help="REPRAM_NO_EXTENSIONS=1 (pure Python)")
    args = ap.parse_args()
    base = ablate.tree("stats")
    variants = (("no-stats", base, "plain"), ("ours", REPO, "plain"), ("tracking", REPO, "tracking"))
    best: dict = {}
    lanes = {}
    for _ in range(args.rounds):
        for name, src, mode in variants:
            res = run(src, mode, args)
            lanes[name] = res.pop("lane")
            for cell, ns in res.items():
                best[(name, cell)] = min(best.get((name, cell), ns), ns)
    cells = sorted({c for _, c in best}, key=lambda c: (int(c.split("/P")[1]), c))
    print("| cell | no-stats ns/cmd | ours ns/cmd | **stats cost** | tracking ns/cmd | **tracking cost** |")
    print("|---|--:|--:|--:|--:|--:|")
    for c in cells:
        a, o, t = best[("no-stats", c)], best[("ours", c)], best[("tracking", c)]
        print("| %s | %.0f | %.0f | **%+.1f%%** | %.0f | **%+.1f%%** |"
              % (c, a, o, 100 * (o / a - 1), t, 100 * (t / o - 1)))
    print("\nIn process through Client.data_received (fast lane %s), -n %d, best of %d reps x %d "
          "rounds; python %s, %s, %s; ablated tree %s"
          % ("on" if all(lanes.values()) else "OFF", args.n, args.reps, args.rounds,
             platform.python_version(), platform.machine(), os.cpu_count(), base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
