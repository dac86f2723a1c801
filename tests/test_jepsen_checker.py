"""The history checker (tests/jepsen_checker.py) on hand-made histories: each
violation it knows is found, and a correct history passes."""

from __future__ import annotations

from jepsen_checker import check


def W(key, value, node, t0, ttl=1000, status="ok", acks=None, t1=None):
    return {"kind": "write", "key": key, "value": value, "node": node, "ttl": ttl, "t0": t0,
            "t1": t0 + 2 if t1 is None else t1, "status": status, "acks": acks}


def R(key, value, node, t0, status="ok"):
    return {"kind": "read", "key": key, "node": node, "t0": t0, "t1": t0 + 2, "status": status,
            "value": value}


def F(t0, t1, down=()):
    return {"kind": "fault", "fault": "x", "t0": t0, "t1": t1, "down": list(down)}


def S(heal, t0, values):
    return {"kind": "sweep", "heal": heal, "t0": t0, "t1": t0 + 5, "values": values}


def test_a_correct_history_passes():
    h = [W("k", "a1", "n1", 0, acks=2), R("k", "a1", "n2", 10), F(20, 100),
         W("k", "b1", "n2", 50, ttl=5000), R("k", "b1", "n2", 60), R("k", "a1", "n1", 60),
         S(0, 200, {"k": ["b1", "b1", "b1"]}), R("k", "b1", "n1", 300)]
    rep = check(h)
    assert rep.ok, rep.violations
    assert rep.agreement_ms == [105] and rep.counts["acked"] == 1


def test_read_past_deadline_and_phantom():
    rep = check([W("k", "a", "n1", 0, ttl=100), R("k", "a", "n1", 50), R("k", "a", "n2", 150),
                 R("k", "zzz", "n1", 60)])
    assert rep.count("past_deadline") == 1 and rep.count("phantom") == 1


def test_regression_on_one_node_and_its_excuse_after_a_crash():
    h = [W("k", "A", "n2", 0, ttl=10_000), W("k", "B", "n1", 100, ttl=10_000),
         R("k", "B", "n1", 200), R("k", None, "n1", 300), R("k", "A", "n1", 400)]
    assert check(h).count("regression") == 1
    # Concurrent writes (within tol) may be seen in either order.
    h2 = [W("k", "A", "n2", 0, ttl=10_000), W("k", "B", "n1", 30, ttl=10_000),
          R("k", "B", "n1", 200), R("k", "A", "n1", 400)]
    assert check(h2).count("regression") == 0
    # B was never acknowledged and n1 crashed: losing it is allowed.
    kill = {"kind": "kill", "node": "n1", "t": 250}
    assert check(h + [kill]).count("regression") == 0
    h[1]["acks"] = 1
    assert check(h + [kill]).count("regression") == 1


def test_resurrection_after_nil_everywhere():
    h = [W("k", "A", "n2", 0, ttl=10_000), F(10, 100), S(0, 500, {"k": [None, None, None]}),
         R("k", "A", "n3", 600)]
    rep = check(h)
    assert rep.count("resurrection") == 1


def test_no_convergence_and_wrong_agreement_and_lost_ack():
    # Never agree within the bound.
    h = [W("k", "A", "n1", 0, ttl=60_000), F(10, 100),
         S(0, 200, {"k": ["A", None, "A"]}), S(0, 6000, {"k": ["A", None, "A"]})]
    rep = check(h)
    assert rep.count("not_converged") == 1 and rep.agreement_ms == [None]
    # Agree on an overwritten value.
    h = [W("k", "A", "n1", 0, ttl=60_000), W("k", "B", "n2", 500, ttl=60_000), F(600, 700),
         S(0, 800, {"k": ["A", "A", "A"]})]
    assert check(h).count("wrong_agreement") == 1
    # Agree on nil while an acknowledged last write is alive.
    h = [W("k", "A", "n1", 0, ttl=60_000, acks=2), F(600, 700), S(0, 800, {"k": [None] * 3})]
    assert check(h).count("lost_ack") == 1
    # ... but nil is right once the last write expired (whatever older ones say).
    h = [W("k", "A", "n1", 0, ttl=60_000, acks=2), W("k", "B", "n2", 500, ttl=1000),
         F(600, 700), S(0, 2000, {"k": [None] * 3})]
    assert check(h).ok


def test_keys_expiring_during_a_sweep_do_not_count_as_disagreement():
    h = [W("k", "A", "n1", 0, ttl=1000), F(10, 100), S(0, 996, {"k": ["A", None, None]})]
    rep = check(h)
    assert rep.ok and rep.agreement_ms == [901]


def test_failures_count_only_on_nodes_that_were_up():
    h = [F(100, 200, down=["n1"]), R("k", None, "n1", 150, status="fail"),
         R("k", None, "n2", 150, status="fail"), W("k", "x", "n3", 5000, status="fail")]
    rep = check(h)
    assert rep.count("unavailable") == 2
