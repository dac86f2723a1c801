#!/usr/bin/env python3
"""Server-side cost of ACL users on SET / GET, measured in-process (no
sockets; the method of benchmarks/tracking_cost.py, which resolves ~1% on a
busy machine where socket benchmarks move by tens of percent).

For each variant a fresh process builds a Server (not started), feeds a
Client batches of pipelined commands through Client._run_batch (the real
command path) with a transport that discards the replies, and reports the
best of R repetitions in CPU ns per command (thread CPU time):

  base        -- repram_resp from --base DIR, the code before ACL users
                 (``git archive 972ad36 repram_resp | tar -x -C DIR``)
  default     -- this checkout, the default user (+@all ~* &*): ungated
  other users -- this checkout, default user, with 100 other users defined
  restricted  -- this checkout, the client logged in as a user with
                 ``-@all +set +get ~key:*`` (every command checked)

    python benchmarks/acl_cost.py --base /tmp/base     # ~30 s

stdlib only (plus what repram_resp itself imports).  The fast lane is not
involved (it runs in data_received, before _run_batch): an unrestricted
user's connection is ungated, so it keeps the lane exactly as before.
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
if variant == "other users":
    for i in range(100):
        c._run_batch([[b"ACL", b"SETUSER", b"u%d" % i, b"on", b">pw", b"+get", b"~x:*"]], 0)
elif variant == "restricted":
    c._run_batch([[b"ACL", b"SETUSER", b"lim", b"on", b">pw", b"-@all", b"+set", b"+get",
                   b"~key:*"]], 0)
    c._run_batch([[b"AUTH", b"lim", b"pw"]], 0)
    assert c.gate == "acl"
if variant != "base":
    assert (c.gate is None) == (variant != "restricted")
""" + INPROCESS_WORKLOAD + r"""
out = {}
for name, cmds in (("SET", sets), ("GET", gets)):
    chunks = [cmds[i:i + batch] for i in range(0, n, batch)]
    for _ in range(reps):
        t0 = time.thread_time_ns()
        for ch in chunks:
            c._run_batch(ch, 0)
        dt = (time.thread_time_ns() - t0) / n
        out[name] = min(out.get(name, dt), dt)
print(json.dumps(out))
"""

VARIANTS = ("base", "default", "other users", "restricted")


def run(src: str, variant: str, args) -> dict:
    return run_inprocess(CHILD, src, variant, args.n, args.batch, args.reps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="source tree of the baseline repram_resp")
    ap.add_argument("-n", type=int, default=100_000, help="commands per repetition")
    ap.add_argument("--batch", type=int, default=16, help="commands per batch (pipeline depth)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions; the best counts")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the four variants")
    args = ap.parse_args()
    best: dict = {}
    for _ in range(args.rounds):
        for v in VARIANTS:
            for cmd, ns in run(args.base if v == "base" else REPO, v, args).items():
                best[(v, cmd)] = min(best.get((v, cmd), ns), ns)
    print("| variant | SET ns/cmd | vs base | GET ns/cmd | vs base |")
    print("|---|--:|--:|--:|--:|")
    for v in VARIANTS:
        row = [v]
        for cmd in ("SET", "GET"):
            x = best[(v, cmd)]
            row += ["%.0f" % x, "%+.1f%%" % (100 * (x / best[("base", cmd)] - 1))]
        print("| " + " | ".join(row) + " |")
    print("\n-n %d, pipeline batches of %d, best of %d reps x %d rounds, python %s"
          % (args.n, args.batch, args.reps, args.rounds, sys.version.split()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
