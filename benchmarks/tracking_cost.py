#!/usr/bin/env python3
"""Server-side cost of CLIENT TRACKING on SET / GET, measured in-process (no
sockets), so that it can be resolved to ~1% even on a busy machine where
benchmarks/throughput.py's numbers move by tens of percent between runs.

For each variant a fresh process builds a Server (not started), feeds a
Client batches of pipelined commands through Client._run_batch (the real
command path, fast path included) with a transport that discards the
replies, and reports the best of R repetitions in CPU ns per command (thread
CPU time: time spent preempted by other processes does not count):

  base      -- repram_resp from --base DIR (e.g. `git archive <commit>
               repram_resp | tar -x -C DIR`, the code before tracking existed)
  off       -- this checkout, no client tracking (Keyspace.on_write is None)
  tracking  -- this checkout, one other client with CLIENT TRACKING ON that
               has cached 10 keys (every SET now passes the tracking hook)
"off" and "tracking" alternate repetition by repetition in one process, so
their difference is free of process-to-process variation (memory layout,
hash seeds); "base" runs in its own processes.

    python benchmarks/tracking_cost.py --base /tmp/base     # ~20 s

stdlib only (plus what repram_resp itself imports).
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from harness import INPROCESS_HEAD, INPROCESS_WORKLOAD, run_inprocess  # noqa: E402

CHILD = INPROCESS_HEAD + r"""
c = client()
t = client()

def tracker(on):
    from repram_resp.tracking import TrackState
    if on:
        server.tracking.enable(t, TrackState(0, False, False, False, False), [])
        for i in range(10):
            t._run_batch([[b"GET", b"key:x%d" % i]], 0)   # cached keys nobody writes
        assert server.keyspace.on_write is not None and len(server.tracking.table) == 10
    elif t.tracking is not None:
        server.tracking.disable(t)
        assert server.keyspace.on_write is None

""" + INPROCESS_WORKLOAD + r"""
# "base" and "off" measure without a tracker; "ab" alternates rep by rep
# between no tracker ("off") and one tracker ("tracking") in this process.
modes = ("off", "tracking") if variant == "ab" else ("off",)
out = {}
for name, cmds in (("SET", sets), ("GET", gets)):
    chunks = [cmds[i:i + batch] for i in range(0, n, batch)]
    for _ in range(reps):
        for mode in modes:
            if variant == "ab":
                tracker(mode == "tracking")
            t0 = time.thread_time_ns()
            for ch in chunks:
                c._run_batch(ch, 0)
            dt = (time.thread_time_ns() - t0) / n
            key = mode + " " + name
            out[key] = min(out.get(key, dt), dt)
print(json.dumps(out))
"""


def run(src: str, variant: str, args) -> dict:
    return run_inprocess(CHILD, src, variant, args.n, args.batch, args.reps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="source tree of the baseline repram_resp")
    ap.add_argument("-n", type=int, default=200_000, help="commands per repetition")
    ap.add_argument("--batch", type=int, default=16, help="commands per batch (pipeline depth)")
    ap.add_argument("--reps", type=int, default=7, help="repetitions; the best counts")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the three variants")
    args = ap.parse_args()
    best: dict = {}
    for _ in range(args.rounds):
        for label, src, variant in (("base", args.base, "base"), ("", REPO, "ab")):
            for key, ns in run(src, variant, args).items():
                mode, cmd = key.split()
                k = (label or mode, cmd)
                best[k] = min(best.get(k, ns), ns)
    print("| variant | SET ns/cmd | vs base | vs off | GET ns/cmd | vs base | vs off |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name in ("base", "off", "tracking"):
        row = [name]
        for cmd in ("SET", "GET"):
            v = best[(name, cmd)]
            row += ["%.0f" % v, "%+.1f%%" % (100 * (v / best[("base", cmd)] - 1)),
                    "%+.1f%%" % (100 * (v / best[("off", cmd)] - 1))]
        print("| " + " | ".join(row) + " |")
    print("\n-n %d, pipeline batches of %d, best of %d reps x %d rounds, python %s"
          % (args.n, args.batch, args.reps, args.rounds, sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
