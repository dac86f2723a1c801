"""A bounded randomized Jepsen-style run (issue 8): three subprocess nodes
behind fault proxies, a workload on every node, one of each fault type, and
the history checker (tests/jepsen_checker.py) over what the clients saw.
The long run -- several seeds, 3 and 5 nodes -- is benchmarks/jepsen.py."""

from __future__ import annotations

from jepsen_checker import check
from jepsenkit import FAULTS, Run


def test_randomized_faults_keep_every_promise():
    # 200 keys, ~300 ops/s on 9 connections, TTLs short enough that overwrites
    # expire during a fault: the mix that brought old values back before
    # version floors (it finds a few stale keys per run on that code).
    run = Run(n=3, seed=8, keys=200, rate=300, ttl_ms=(300, 4000), fault_s=(1.5, 2.5),
              sweep_ms=100, bound_s=8.0, ip_base=51, max_offset_ms=300)
    try:
        run.start()
        history = run.run(FAULTS, settle_s=0.3)
    finally:
        run.close()
    rep = check(history, tol_ms=run.tolerance_ms(), bound_ms=5000)
    assert rep.ok, rep.summary() + "\n" + "\n".join(
        "%s: %s" % (k, v[:5]) for k, v in rep.violations.items())
    assert rep.counts["writes"] > 500 and rep.counts["acked"] > 100
    assert len(rep.agreement_ms) == len(FAULTS) and all(a is not None for a in rep.agreement_ms)
