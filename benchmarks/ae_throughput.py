"""Replicated write throughput with anti-entropy on and off, in one run.

Starts a single node and two 3-node clusters (one with the default
``cluster-anti-entropy-interval-ms``, one with it set to 0), then alternates
``redis-benchmark SET -P 16`` runs: single, cluster(AE on), cluster(AE off),
... and reports each cluster's ops/s against the single node's, the peers'
CPU per replicated SET and the peers' anti-entropy INFO fields.

Usage: python3 benchmarks/ae_throughput.py [--runs 3] [--requests 200000]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cluster import dbsize, start_cluster, start_node, wait_until  # noqa: E402
from harness import info_fields, median, proc_cpu_seconds, run_redis_benchmark  # noqa: E402

SET_CMD = ["SET", "key:__rand_int__", "v", "EX", "60"]
AE_FIELDS = ("repl_anti_entropy_rounds", "repl_anti_entropy_last_cpu_ms",
             "repl_anti_entropy_ranges_served", "repl_anti_entropy_summary_keys_sent",
             "repl_anti_entropy_keys_fetched", "repl_anti_entropy_keys_sent")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--loop", default="uvloop")
    args = ap.parse_args()
    single = start_node("single", "0", args.loop)
    res = {"single": [], "on": [], "off": [], "peer_on": [], "peer_off": []}
    extra = {"on": (), "off": ("--cluster-anti-entropy-interval-ms", "0")}
    infos = []
    try:
        run_redis_benchmark(single.port, SET_CMD, requests=args.requests // 5, pipeline=16, cpus="1")
        for run in range(args.runs):
            order = ("single", "on", "off") if run % 2 == 0 else ("single", "off", "on")
            for name in order:
                # One cluster at a time (an idle cluster's rounds would load
                # the other's CPUs), fresh for each run, warmed up first.
                if name == "single":
                    nodes = [single]
                else:
                    nodes = start_cluster(args.loop, "0", "1", *extra[name])
                    run_redis_benchmark(nodes[0].port, SET_CMD, requests=args.requests // 5,
                                        pipeline=16, cpus="1")
                p0 = [proc_cpu_seconds(p.pid) for p in nodes[1:]]
                r = run_redis_benchmark(nodes[0].port, SET_CMD, requests=args.requests,
                                        pipeline=16, cpus="1")
                res[name].append(r.rps)
                if len(nodes) > 1:
                    pc = max(proc_cpu_seconds(p.pid) - a for p, a in zip(nodes[1:], p0))
                    res["peer_" + name].append(pc * 1e6 / args.requests)
                    want = dbsize(nodes[0].port)
                    wait_until(lambda: all(dbsize(n.port) == want for n in nodes[1:]), 60, "converge")
                print("run %d %s: %.0f ops/s%s" % (
                    run + 1, name, r.rps,
                    "" if len(nodes) == 1 else ", peer %.2f us CPU/SET" % res["peer_" + name][-1]),
                    file=sys.stderr, flush=True)
                if name == "on":
                    infos = [info_fields(n.port, "replication") for n in nodes[1:]]
                if len(nodes) > 1:
                    for n in nodes:
                        n.stop()
        s = median(res["single"])
        print("| | ops/s (median of %d) | vs single | peer CPU/SET |" % args.runs)
        print("|---|---|---|---|")
        print("| single node | %.0f | 1.00x | |" % s)
        for name in ("on", "off"):
            print("| 3 nodes, anti-entropy %s | %.0f | %.2fx | %.2f us |" % (
                name, median(res[name]), median(res[name]) / s, median(res["peer_" + name])))
        print()
        print("per-run ratios on: %s; off: %s" % (
            ", ".join("%.2f" % (a / b) for a, b in zip(res["on"], res["single"])),
            ", ".join("%.2f" % (a / b) for a, b in zip(res["off"], res["single"]))))
        for info in infos:
            print("peer AE INFO: " + ", ".join("%s=%s" % (f, info.get(f)) for f in AE_FIELDS))
    finally:
        single.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
