"""The long randomized fault run (issue 8): every fault type, 3 and 5 nodes,
several seeds, checked by tests/jepsen_checker.py.

Run from the repo root:

    python benchmarks/jepsen.py --quick            # one seed, 3 nodes, ~1 minute
    python benchmarks/jepsen.py                    # 3 and 5 nodes x 3 seeds, ~10 minutes
    python benchmarks/jepsen.py --markdown-out benchmarks/RESULTS.md

Each run: N subprocess nodes (tests/jepsenkit.py) on 127.0.0.x behind fault
proxies, a workload of ~300 ops/s over 200 keys (3 clients per node, unique
values, TTL 0.3-8 s, a third of the writes followed by ``WAIT n-1 200``), and
every fault type twice in a shuffled order -- partition (random split),
one-way (a node's outbound links black-holed), bridge, slow link (100-300 ms),
SIGSTOP, SIGKILL + restart, clock offset (kill, restart with the clock
+-200..400 ms off) -- each held 1.5-3 s.  After each heal the workload pauses
and every key is read on every node every 100 ms until they agree.  Failure
detection is faster than the defaults (ping 50 ms, down 1 s); anti-entropy
runs at its default interval (2000 ms).

Reported per run: operations, WAIT-acknowledged writes, violations by kind
(lost acknowledged writes, reads past a deadline, resurrections, regressions,
wrong agreements, unavailability, no convergence) and the time from each
heal to agreement on every key (max and median).  There is no redis-server
baseline: Redis has no multi-master replication to compare with.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from harness import emit_markdown, facts_markdown, machine_facts, repro_command  # noqa: E402
from jepsen_checker import check  # noqa: E402
from jepsenkit import FAULTS, Run  # noqa: E402

KINDS = ("lost_ack", "past_deadline", "resurrection", "regression", "wrong_agreement",
         "phantom", "unavailable", "not_converged")


def one_run(n: int, seed: int, repeat: int, ip_base: int) -> dict:
    rng = random.Random(seed)
    faults = list(FAULTS) * repeat
    rng.shuffle(faults)
    run = Run(n=n, seed=seed, keys=200, rate=300, ttl_ms=(300, 8000), fault_s=(1.5, 3.0),
              sweep_ms=100, bound_s=10.0, ip_base=ip_base, max_offset_ms=400,
              extra=["--cluster-anti-entropy-interval-ms", "2000"])
    t0 = time.monotonic()
    try:
        run.start()
        history = run.run(faults, settle_s=0.5)
    finally:
        run.close()
    rep = check(history, tol_ms=run.tolerance_ms(), bound_ms=5000)
    agreed = [a for a in rep.agreement_ms if a is not None]
    out = {"nodes": n, "seed": seed, "faults": len(faults), "secs": time.monotonic() - t0,
           "ops": rep.counts["writes"] + rep.counts["reads"], "acked": rep.counts["acked"],
           "agree_max": max(agreed) if agreed else None,
           "agree_median": statistics.median(agreed) if agreed else None,
           "examples": {k: v[:3] for k, v in rep.violations.items()}}
    for k in KINDS:
        out[k] = rep.count(k)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one seed, 3 nodes, each fault once")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sizes", default="3,5")
    ap.add_argument("--markdown-out", default="")
    args = ap.parse_args()
    sizes = [3] if args.quick else [int(x) for x in args.sizes.split(",")]
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    repeat = 1 if args.quick else 2
    facts = machine_facts()
    rows = []
    for n in sizes:
        for s in seeds:
            print("run: %d nodes, seed %d ..." % (n, s), file=sys.stderr, flush=True)
            r = one_run(n, s, repeat, ip_base=60 + 10 * sizes.index(n))
            print("  %s" % {k: r[k] for k in ("ops", "acked", "agree_max", *KINDS)},
                  file=sys.stderr, flush=True)
            for k, v in r["examples"].items():
                print("  %s: %s" % (k, v), file=sys.stderr, flush=True)
            rows.append(r)
    lines = ["## Issue 8: randomized faults (benchmarks/jepsen.py)", "",
             "Command: `%s`" % repro_command(), "",
             *facts_markdown(facts), "",
             "Every fault type %s per run (partition, one-way, bridge, slow link, SIGSTOP, "
             "SIGKILL + restart, clock offset +-200..400 ms), shuffled; ~300 ops/s over 200 keys, "
             "TTL 0.3-8 s, a third of the writes followed by WAIT; agreement = time from the heal "
             "to the first sweep in which every node returns the same value for every key. "
             "The machine (2 cores) was shared with other teams' work during the run." % (
                 "once" if repeat == 1 else "twice"), "",
             "| nodes | seed | faults | ops | WAIT-acked writes | lost acked | read past deadline "
             "| resurrections | regressions | wrong agreement | unavailable | not converged "
             "| agreement max / median (ms) | run (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s / %s | %.0f |" % (
            r["nodes"], r["seed"], r["faults"], r["ops"], r["acked"], r["lost_ack"],
            r["past_deadline"], r["resurrection"], r["regression"] + r["phantom"],
            r["wrong_agreement"], r["unavailable"], r["not_converged"],
            "-" if r["agree_max"] is None else "%.0f" % r["agree_max"],
            "-" if r["agree_median"] is None else "%.0f" % r["agree_median"], r["secs"]))
    emit_markdown("\n".join(lines) + "\n", args.markdown_out or None)
    bad = sum(r[k] for r in rows for k in KINDS)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
