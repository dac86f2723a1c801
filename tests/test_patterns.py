"""The README's usage patterns (examples/patterns.py) run against a real node
with redis-py, RESP2 and RESP3.  Where expiry matters the node runs on a fake
clock and each demo's ``wait`` moves it, so a 600 s TTL takes no time.  Also
checks that docs/patterns.md shows the example code verbatim."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("patterns", ROOT / "examples" / "patterns.py")
patterns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(patterns)


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def env(request, make_server, fake_clock):
    srv = make_server(clock=fake_clock)
    r = srv.client(protocol=request.param)

    def wait(seconds):
        fake_clock.advance(int(seconds * 1000))
    yield r, wait, fake_clock
    r.close()


def test_dead_drop(env):
    r, wait, _ = env
    seen = patterns.dead_drop(r, wait)
    expected = "handoff:" + hashlib.sha256(b"task-742\nagent-a\nagent-b").hexdigest()
    assert seen == {"key": expected, "received": b'{"result": 42}', "after_ttl": None}


def test_dead_drop_keys_are_deterministic_and_directional(env):
    r, wait, _ = env
    k = patterns.handoff_key("t", "a", "b")
    assert k == patterns.handoff_key("t", "a", "b")
    assert re.fullmatch(r"handoff:[0-9a-f]{64}", k)
    assert patterns.handoff_key("t", "b", "a") != k
    assert patterns.handoff_key("ta", "", "b") != patterns.handoff_key("t", "a", "b")
    patterns.drop(r, "t", "a", "b", b"for b", ttl_s=60)
    assert patterns.pick_up(r, "t", "a", "b") == b"for b"
    assert patterns.pick_up(r, "t", "b", "a") is None
    assert 59 <= r.ttl(k) <= 60
    # A second drop silently overwrites, and restarts the TTL.
    wait(30)
    patterns.drop(r, "t", "a", "b", b"v2", ttl_s=60)
    assert patterns.pick_up(r, "t", "a", "b") == b"v2" and r.ttl(k) == 60
    assert r.scan(0, match="handoff:*")[1] == [k.encode()]


def test_lock(env):
    r, wait, _ = env
    seen = patterns.lock(r, wait)
    assert seen == {"first": True, "second": False, "renewed_by_other": False, "renewed": True,
                    "acquired_while_renewed": False, "acquired_after_expiry": True,
                    "holder": b"worker-b"}
    assert 29 <= r.ttl("lock:pipeline-ingest:stage-2") <= 30


def test_lock_is_set_nx_ex(env):
    r, wait, _ = env
    assert patterns.acquire(r, "x", "owner", lease_s=30)
    assert r.get("lock:x") == b"owner" and r.ttl("lock:x") == 30
    assert not patterns.acquire(r, "x", "other", lease_s=30)
    assert r.get("lock:x") == b"owner"
    wait(30)
    assert not patterns.acquire(r, "x", "other", lease_s=30)   # at the deadline: still held
    wait(0.001)
    assert patterns.acquire(r, "x", "other", lease_s=30)
    # The old owner's lease lapsed: renewing must not steal the lock back.
    assert not patterns.renew(r, "x", "owner", lease_s=30)
    assert r.get("lock:x") == b"other"


def test_heartbeat(env):
    r, wait, _ = env
    seen = patterns.heartbeat(r, wait)
    assert seen == {"start": ["worker-1", "worker-2", "worker-3"],
                    "after_crash": ["worker-1", "worker-3"],
                    "after_restart": ["worker-1", "worker-2", "worker-3"]}


def test_heartbeat_absence_is_the_failure_signal(env):
    r, wait, _ = env
    patterns.beat(r, "w1", ttl_s=10)
    patterns.beat(r, "w2", ttl_s=10)
    r.set("other:w3", "x", ex=10)              # not a heartbeat: never listed
    assert patterns.live_workers(r) == ["w1", "w2"]
    wait(9)
    patterns.beat(r, "w1", ttl_s=10)
    wait(1)
    assert patterns.live_workers(r) == ["w1", "w2"]   # w2 at exactly its deadline
    wait(0.001)
    assert patterns.live_workers(r) == ["w1"]         # 1 ms later it is gone
    assert r.exists("heartbeat:w2") == 0 and r.get("heartbeat:w2") is None
    assert r.keys("heartbeat:*") == [b"heartbeat:w1"]


def test_state_machine(env):
    r, wait, _ = env
    seen = patterns.state_machine(r, wait)
    assert seen["trace"] == [("queued", 600), ("in_progress", 600), ("complete", 600)]
    assert seen["left_before_overwrite"] == [1, 1]     # each overwrite refreshed the TTL
    assert seen["finished"] == "complete"
    assert seen["crashed"].startswith("unknown")
    assert r.get("state:job-7c01") is None


def test_dedup(env):
    r, wait, _ = env
    assert patterns.dedup(r, wait) == {"processed": ["evt-1", "evt-2", "evt-3"],
                                       "after_window": True}


def test_circuit_breaker(env):
    r, wait, _ = env
    assert patterns.circuit_breaker(r, wait) == {"before": True, "after_silence": False}


def test_scratchpad(env):
    r, wait, _ = env
    seen = patterns.scratchpad(r, wait)
    assert seen == {"state": {"steps": ["read the ticket", "found the failing test", "wrote a fix"]},
                    "after_crash": None}
    assert r.keys("scratch:*") == []


def test_scratchpad_keys_are_unique_and_refreshed(env):
    r, wait, _ = env
    a, b = patterns.new_scratchpad(r, "x", 100), patterns.new_scratchpad(r, "x", 100)
    assert a != b and a.startswith("scratch:x:")
    wait(50)
    patterns.record_step(r, a, "one", 100)
    assert r.ttl(a) == 100 and r.ttl(b) == 50


def test_ephemeral_broadcast(env):
    r, wait, _ = env
    on, off = {"new_checkout": True}, {"new_checkout": False}
    assert patterns.ephemeral_broadcast(r, wait) == {"seen": [off, on, on, off]}


def test_secure_relay(env):
    r, wait, _ = env
    assert patterns.secure_relay(r, wait) == {"received": b"the meeting moved to 14:00",
                                              "stored_plaintext": False, "after_ttl": None}


def test_secure_relay_needs_the_secret_and_the_right_key(env):
    from cryptography.exceptions import InvalidTag
    r, _, _ = env
    share = patterns.seal(r, b"payload", 60)
    name, _, secret = share.partition("#")
    assert patterns.unseal(r, share) == b"payload"
    other = patterns.seal(r, b"other", 60)
    with pytest.raises(InvalidTag):                 # a wrong secret
        patterns.unseal(r, name + "#" + other.partition("#")[2])
    r.set("relay:moved", r.get(name), ex=60)        # ciphertext moved to another key
    with pytest.raises(InvalidTag):
        patterns.unseal(r, "relay:moved#" + secret)


def test_session_continuity(make_server, fake_clock):
    srv = make_server(clock=fake_clock)
    a, b = srv.client(), srv.client(protocol=3)     # two front ends
    seen = patterns.session_continuity(a, lambda s: fake_clock.advance(int(s * 1000)), edge_b=b)
    assert seen == {"resumed": {"user": "u-42", "cart": ["book", "lamp"]}, "after_idle": None}


def test_ephemeral_pubsub(env):
    r, wait, _ = env
    assert patterns.ephemeral_pubsub(r, wait) == {
        "polled": ["batch 2 done", "batch 4 done", "batch 6 done"], "after_stop": None}


def test_every_demo_is_tested():
    names = {f.__name__ for f in patterns.DEMOS}
    tested = {n[len("test_"):] for n in globals() if n.startswith("test_")}
    assert names <= tested


def test_docs_show_the_example_code_verbatim():
    doc = (ROOT / "docs" / "patterns.md").read_text()
    source = (ROOT / "examples" / "patterns.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 11
    for block in blocks:
        assert block.strip() in source, "docs/patterns.md drifted from examples:\n" + block
    for f in patterns.DEMOS:
        assert f.__name__.replace("_", " ") in doc.lower() or f.__name__ in doc


def test_heartbeat_expiry_is_pushed_with_keyspace_notifications(make_server, fake_clock):
    srv = make_server("--notify-keyspace-events", "Ex", clock=fake_clock)
    r = srv.client()
    sub = srv.client().pubsub()
    sub.subscribe("__keyevent@0__:expired")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    patterns.beat(r, "w1", ttl_s=10)
    patterns.beat(r, "w2", ttl_s=10)
    fake_clock.advance(9_000)
    patterns.beat(r, "w1", ttl_s=10)
    fake_clock.advance(1_001)                   # w2 is 1 ms past its deadline: invisible
    assert patterns.live_workers(r) == ["w1"]
    # The push comes from the background reclaimer, "within a small bound of
    # the deadline" (SPEC §2): let 50 ms pass on the node's clock.
    fake_clock.advance(50)
    msg = sub.get_message(timeout=3)            # the reclaimer wakes at least every 1 s
    assert msg is not None and msg["type"] == "message", msg
    assert msg["data"] == b"heartbeat:w2"
    assert sub.get_message(timeout=0.2) is None          # w1 is alive: nothing more
    sub.close()
    r.close()
