"""CPU a receiving peer spends per replicated write it applies (issue 11).

Run from the repo root:

    python benchmarks/apply_cost.py                 # fast lane as installed
    python benchmarks/apply_cost.py --no-lane       # every node pure Python

Starts an origin (CPU 0) and one peer (CPU 1), drives the origin with
``redis-benchmark -P 16 -c 50 SET key:__rand_int__ v EX 60`` (keyspace
100,000, so after the warm-up nearly every write is an overwrite, as in
benchmarks/cluster.py), waits until the peer has applied everything, and
reports the peer's CPU seconds (user + system, /proc) divided by the writes
it applied (``repl_writes_applied``), median of ``--runs``.  Prints one
Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import NODE_ENV, start_cluster_of  # noqa: E402
from harness import info_fields, median, proc_cpu_seconds, repro_command, run_redis_benchmark  # noqa: E402


def applied(port: int) -> int:
    return int(info_fields(port, "replication")["repl_writes_received"])


def lane_share(port: int) -> str:
    f = info_fields(port, "replication")
    return "%s of %s batches in the lane" % (f.get("repl_batches_lane", "?"), f.get("repl_batches_received", "?"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=500_000)
    ap.add_argument("--no-lane", action="store_true")
    ap.add_argument("--nodes", type=int, default=2, help="cluster size (the peers share CPU 1)")
    args = ap.parse_args()
    if args.no_lane:
        NODE_ENV.update(os.environ, REPRAM_NO_EXTENSIONS="1")
    nodes = start_cluster_of(args.nodes, "uvloop", "0", "1")
    origin, peer = nodes[0], nodes[1]
    cmd = ["SET", "key:__rand_int__", "v", "EX", "60"]
    rows = []
    try:
        run_redis_benchmark(origin.port, cmd, requests=args.requests // 5, pipeline=16, cpus="1")
        for _ in range(args.runs):
            a0, c0, o0 = applied(peer.port), proc_cpu_seconds(peer.pid), proc_cpu_seconds(origin.pid)
            r = run_redis_benchmark(origin.port, cmd, requests=args.requests, pipeline=16, cpus="1")
            want = a0 + args.requests
            deadline = time.monotonic() + 60
            while applied(peer.port) < want and time.monotonic() < deadline:
                time.sleep(0.01)
            n = applied(peer.port) - a0
            rows.append((r.rps, (proc_cpu_seconds(peer.pid) - c0) * 1e6 / n,
                         (proc_cpu_seconds(origin.pid) - o0) * 1e6 / args.requests))
            print("[apply-cost] %s" % lane_share(peer.port), file=sys.stderr)
            print("[apply-cost] %.0f SET/s at the origin, peer %.2f us CPU per received write, "
                  "origin %.2f us per SET" % rows[-1], file=sys.stderr)
        lane = info_fields(peer.port, "server").get("repram_fast_lane", "n/a")
    finally:
        for n in nodes:
            n.stop()
    print("| fast lane | origin SET/s | peer CPU per received write | origin CPU per SET |")
    print("|---|--:|--:|--:|")
    print("| %s | %.0f | %.2f us | %.2f us |" % (lane, median(r[0] for r in rows), median(r[1] for r in rows),
                                              median(r[2] for r in rows)))
    print()
    print("`%s`" % repro_command())
    return 0


if __name__ == "__main__":
    sys.exit(main())
