"""REPRAM usage patterns with an unmodified Redis client (redis-py).

REPRAM is a primitive: SET with a TTL, GET, silent overwrite, expiry and
prefix listing -- no DELETE.  Each pattern below is a few lines on top of it;
docs/patterns.md explains them and tests/test_patterns.py runs every one
against a real node.

Every demo takes the client ``r`` and a ``wait(seconds)`` function (default
``time.sleep``; the tests pass one that moves a fake clock instead), and
returns what it observed, so the behaviour can be checked.

    python examples/patterns.py [port]     # runs all demos against 127.0.0.1

The secure relay needs ``cryptography`` (in the ``test`` extra).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import time
import uuid

import redis
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.exceptions import WatchError


# --- dead drop ---------------------------------------------------------------
# Both parties derive the same key from context they already share, so they
# never exchange an address.  The fields are joined with a newline so that
# ("ab", "c") and ("a", "bc") give different keys.

def handoff_key(task_id: str, sender: str, receiver: str) -> str:
    digest = hashlib.sha256("\n".join((task_id, sender, receiver)).encode()).hexdigest()
    return "handoff:" + digest


def drop(r: redis.Redis, task_id: str, sender: str, receiver: str, payload: bytes,
         ttl_s: int = 600) -> None:
    r.set(handoff_key(task_id, sender, receiver), payload, ex=ttl_s)


def pick_up(r: redis.Redis, task_id: str, sender: str, receiver: str) -> bytes | None:
    return r.get(handoff_key(task_id, sender, receiver))


def dead_drop(r: redis.Redis, wait=time.sleep, ttl_s: int = 600) -> dict:
    drop(r, "task-742", "agent-a", "agent-b", b'{"result": 42}', ttl_s=ttl_s)
    received = pick_up(r, "task-742", "agent-a", "agent-b")       # agent B, later
    wait(ttl_s + 1)
    return {"key": handoff_key("task-742", "agent-a", "agent-b"), "received": received,
            "after_ttl": pick_up(r, "task-742", "agent-a", "agent-b")}


# --- coordination token / lock -------------------------------------------------
# SET NX EX: exactly one caller creates the key.  There is no unlock: the TTL
# is the lease, so keep it short and renew it while working.  Renewal is a
# check-and-set (WATCH / MULTI / EXEC) so that a holder whose lease already
# lapsed cannot overwrite the lock of whoever took it next.

def acquire(r: redis.Redis, name: str, owner: str, lease_s: int = 30) -> bool:
    return bool(r.set("lock:" + name, owner, nx=True, ex=lease_s))


def renew(r: redis.Redis, name: str, owner: str, lease_s: int = 30) -> bool:
    key = "lock:" + name
    with r.pipeline() as p:
        try:
            p.watch(key)
            if p.get(key) != owner.encode():
                return False                    # lost it: never overwrite another owner
            p.multi()
            p.set(key, owner, xx=True, ex=lease_s)
            return bool(p.execute()[0])
        except WatchError:
            return False                        # someone wrote the key meanwhile


def lock(r: redis.Redis, wait=time.sleep, lease_s: int = 30) -> dict:
    name = "pipeline-ingest:stage-2"
    first = acquire(r, name, "worker-a", lease_s)
    second = acquire(r, name, "worker-b", lease_s)                # refused: held
    renewed_by_other = renew(r, name, "worker-b", lease_s)        # refused: not the owner
    wait(lease_s - 1)
    renewed = renew(r, name, "worker-a", lease_s)                 # the lease starts again
    wait(lease_s - 1)
    still_held = acquire(r, name, "worker-b", lease_s)
    wait(2)                                                       # worker-a stopped renewing
    taken_over = acquire(r, name, "worker-b", lease_s)
    return {"first": first, "second": second, "renewed_by_other": renewed_by_other,
            "renewed": renewed, "acquired_while_renewed": still_held,
            "acquired_after_expiry": taken_over, "holder": r.get("lock:" + name)}


# --- heartbeat / presence ----------------------------------------------------------
# A worker rewrites a short-TTL key on an interval; its absence is the failure
# signal.  Anyone discovers the live workers by prefix listing.

def beat(r: redis.Redis, worker: str, ttl_s: int = 10, status: bytes = b"alive") -> None:
    r.set("heartbeat:" + worker, status, ex=ttl_s)


def live_workers(r: redis.Redis) -> list[str]:
    return sorted(k.decode()[len("heartbeat:"):] for k in r.scan_iter(match="heartbeat:*"))


def heartbeat(r: redis.Redis, wait=time.sleep, ttl_s: int = 10) -> dict:
    interval_s = ttl_s / 2
    for w in ("worker-1", "worker-2", "worker-3"):
        beat(r, w, ttl_s)
    seen = {"start": live_workers(r)}
    # worker-2 crashes; the others keep beating.
    for _ in range(3):
        wait(interval_s)
        beat(r, "worker-1", ttl_s)
        beat(r, "worker-3", ttl_s)
    seen["after_crash"] = live_workers(r)
    beat(r, "worker-2", ttl_s)                      # it comes back
    seen["after_restart"] = live_workers(r)
    return seen


# --- state machine ---------------------------------------------------------------
# A job's key is overwritten queued -> in_progress -> complete.  Each overwrite
# refreshes the TTL, so the TTL bounds how long a state may go unrefreshed:
# a job that crashes in_progress simply disappears.

def set_state(r: redis.Redis, job: str, state: str, ttl_s: int = 600) -> None:
    r.set("state:" + job, state, ex=ttl_s)


def get_state(r: redis.Redis, job: str) -> str:
    v = r.get("state:" + job)
    return "unknown (expired: the worker stopped)" if v is None else v.decode()


def state_machine(r: redis.Redis, wait=time.sleep, ttl_s: int = 600) -> dict:
    trace, left_before_overwrite = [], []
    for state in ("queued", "in_progress", "complete"):
        if state != "queued":
            left_before_overwrite.append(r.ttl("state:job-9f3a"))
        set_state(r, "job-9f3a", state, ttl_s)
        trace.append((get_state(r, "job-9f3a"), r.ttl("state:job-9f3a")))
        wait(ttl_s - 1)                             # each transition renews the window
    finished = get_state(r, "job-9f3a")
    set_state(r, "job-7c01", "in_progress", ttl_s)  # this worker crashes
    wait(ttl_s + 1)
    return {"trace": trace, "left_before_overwrite": left_before_overwrite,
            "finished": finished, "crashed": get_state(r, "job-7c01")}


# --- deduplication ---------------------------------------------------------------
# SET NX EX: the first writer wins; the TTL is the dedup window.

def first_time(r: redis.Redis, event_id: str, window_s: int = 3600) -> bool:
    return bool(r.set("dedup:" + event_id, 1, nx=True, ex=window_s))


def dedup(r: redis.Redis, wait=time.sleep, window_s: int = 3600) -> dict:
    events = ["evt-1", "evt-2", "evt-1", "evt-3", "evt-2"]
    processed = [e for e in events if first_time(r, e, window_s)]
    wait(window_s + 1)
    return {"processed": processed, "after_window": first_time(r, "evt-1", window_s)}


# --- circuit breaker ---------------------------------------------------------------
# The service keeps a short-TTL health key alive; callers check it before
# calling, and back off when it is gone.

def report_healthy(r: redis.Redis, service: str, ttl_s: int = 5) -> None:
    r.set("health:" + service, b"ok", ex=ttl_s)


def available(r: redis.Redis, service: str) -> bool:
    return r.exists("health:" + service) == 1


def circuit_breaker(r: redis.Redis, wait=time.sleep, ttl_s: int = 5) -> dict:
    report_healthy(r, "payments", ttl_s)
    before = available(r, "payments")
    wait(ttl_s + 1)                                 # the service died: no more reports
    return {"before": before, "after_silence": available(r, "payments")}


# --- scratchpad -----------------------------------------------------------------
# An agent keeps its working state under a random key across the steps of a
# workflow; each step reads it, adds to it and overwrites it, which refreshes
# the TTL.  When the workflow ends -- or the agent dies -- the state expires.

def new_scratchpad(r: redis.Redis, agent: str, ttl_s: int = 900) -> str:
    key = "scratch:%s:%s" % (agent, uuid.uuid4())
    r.set(key, json.dumps({"steps": []}), ex=ttl_s)
    return key


def record_step(r: redis.Redis, key: str, note: str, ttl_s: int = 900) -> dict | None:
    raw = r.get(key)
    if raw is None:
        return None                             # expired: the workflow starts over
    state = json.loads(raw)
    state["steps"].append(note)
    r.set(key, json.dumps(state), ex=ttl_s)
    return state


def scratchpad(r: redis.Redis, wait=time.sleep, ttl_s: int = 900) -> dict:
    key = new_scratchpad(r, "agent-c", ttl_s)
    for note in ("read the ticket", "found the failing test", "wrote a fix"):
        wait(ttl_s - 1)                         # slow steps: each overwrite renews the TTL
        state = record_step(r, key, note, ttl_s)
    wait(ttl_s + 1)                             # the agent died before the last step
    return {"state": state, "after_crash": record_step(r, key, "ran the tests", ttl_s)}


# --- ephemeral broadcast ---------------------------------------------------------
# A publisher keeps a value (config, feature flags, an announcement) alive at
# a known key; every reader gets the current one.  If the publisher stops,
# the broadcast expires and readers fall back to their defaults: automatic
# rollback, nothing to clean up.

def announce(r: redis.Redis, topic: str, value: dict, ttl_s: int = 60) -> None:
    r.set("broadcast:" + topic, json.dumps(value), ex=ttl_s)


def current(r: redis.Redis, topic: str, default: dict) -> dict:
    raw = r.get("broadcast:" + topic)
    return default if raw is None else json.loads(raw)


def ephemeral_broadcast(r: redis.Redis, wait=time.sleep, ttl_s: int = 60) -> dict:
    default = {"new_checkout": False}
    seen = [current(r, "config:feature-flags", default)]
    announce(r, "config:feature-flags", {"new_checkout": True}, ttl_s)
    seen.append(current(r, "config:feature-flags", default))
    wait(ttl_s - 1)
    announce(r, "config:feature-flags", {"new_checkout": True}, ttl_s)   # still rolled out
    wait(ttl_s - 1)
    seen.append(current(r, "config:feature-flags", default))
    wait(2)                                     # the publisher stopped: rolled back
    seen.append(current(r, "config:feature-flags", default))
    return {"seen": seen}


# --- secure relay ------------------------------------------------------------------
# The sender encrypts on its side (AES-256-GCM, ``cryptography``), stores only
# ciphertext under a random key, and hands the recipient one string -- key
# name and secret -- through a side channel.  The node never sees the
# plaintext or the secret, and the ciphertext self-destructs after its TTL.

def seal(r: redis.Redis, payload: bytes, ttl_s: int = 300) -> str:
    name = "relay:" + secrets.token_urlsafe(16)
    secret = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(12)
    # The key name is authenticated data: a ciphertext moved to another key fails.
    r.set(name, nonce + AESGCM(secret).encrypt(nonce, payload, name.encode()), ex=ttl_s)
    return name + "#" + base64.urlsafe_b64encode(secret).decode()


def unseal(r: redis.Redis, share: str) -> bytes | None:
    name, _, secret = share.partition("#")
    blob = r.get(name)
    if blob is None:
        return None                             # expired (or never existed)
    return AESGCM(base64.urlsafe_b64decode(secret)).decrypt(blob[:12], blob[12:], name.encode())


def secure_relay(r: redis.Redis, wait=time.sleep, ttl_s: int = 300) -> dict:
    share = seal(r, b"the meeting moved to 14:00", ttl_s)     # sent over a side channel
    stored = r.get(share.partition("#")[0])
    received = unseal(r, share)
    wait(ttl_s + 1)
    return {"received": received, "stored_plaintext": b"meeting" in stored,
            "after_ttl": unseal(r, share)}


# --- session continuity ------------------------------------------------------------
# Session state lives under the session id; every interaction overwrites it,
# which restarts the idle timeout.  Any front end reads the current state; an
# idle session vanishes with no cleanup job.

def save_session(r: redis.Redis, sid: str, state: dict, idle_s: int = 1800) -> None:
    r.set("session:" + sid, json.dumps(state), ex=idle_s)


def load_session(r: redis.Redis, sid: str) -> dict | None:
    raw = r.get("session:" + sid)
    return None if raw is None else json.loads(raw)


def session_continuity(r: redis.Redis, wait=time.sleep, idle_s: int = 1800,
                       edge_b: redis.Redis | None = None) -> dict:
    edge_a, edge_b = r, edge_b or r             # two front ends (any node of the enclave)
    sid = secrets.token_hex(8)
    save_session(edge_a, sid, {"user": "u-42", "cart": ["book"]}, idle_s)
    wait(idle_s - 1)
    state = load_session(edge_b, sid)            # the next request lands elsewhere
    state["cart"].append("lamp")
    save_session(edge_b, sid, state, idle_s)     # ... and refreshes the session
    wait(idle_s - 1)
    resumed = load_session(edge_a, sid)
    wait(2)                                      # the user went away
    return {"resumed": resumed, "after_idle": load_session(edge_a, sid)}


# --- ephemeral pub/sub ---------------------------------------------------------------
# A publisher overwrites a known key on an interval; subscribers poll it.  No
# subscriptions, no broker, no ordering: a slow poller sees only the latest
# value (lossy by design -- right for dashboards and coordination signals),
# and when the publisher stops the status expires.

def publish_status(r: redis.Redis, topic: str, status: str, ttl_s: int = 10) -> None:
    r.set("status:" + topic, status, ex=ttl_s)


def poll_status(r: redis.Redis, topic: str) -> str | None:
    v = r.get("status:" + topic)
    return None if v is None else v.decode()


def ephemeral_pubsub(r: redis.Redis, wait=time.sleep, ttl_s: int = 10) -> dict:
    interval_s = ttl_s / 5
    polled = []
    for i in range(1, 7):                       # the publisher, every interval
        publish_status(r, "ingest", "batch %d done" % i, ttl_s)
        if i % 2 == 0:
            polled.append(poll_status(r, "ingest"))  # a subscriber polling half as often
        wait(interval_s)
    wait(ttl_s)                                 # the publisher stopped
    return {"polled": polled, "after_stop": poll_status(r, "ingest")}


DEMOS = [dead_drop, lock, heartbeat, state_machine, dedup, circuit_breaker, scratchpad,
         ephemeral_broadcast, secure_relay, session_continuity, ephemeral_pubsub]


def main(argv: list[str]) -> int:
    """Run every demo in real time against a node (best on an empty one),
    with short TTLs (whole seconds, so it also runs under a min-ttl of 1 s)."""
    port = int(argv[1]) if len(argv) > 1 else 6379
    r = redis.Redis(host="127.0.0.1", port=port)
    short = {dead_drop: {"ttl_s": 2}, lock: {"lease_s": 3}, heartbeat: {"ttl_s": 2},
             state_machine: {"ttl_s": 2}, dedup: {"window_s": 2}, circuit_breaker: {"ttl_s": 2},
             scratchpad: {"ttl_s": 2}, ephemeral_broadcast: {"ttl_s": 2},
             secure_relay: {"ttl_s": 2}, session_continuity: {"idle_s": 2},
             ephemeral_pubsub: {"ttl_s": 2}}
    for demo in DEMOS:
        print("%s: %s" % (demo.__name__, demo(r, **short[demo])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
