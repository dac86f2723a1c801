"""Keyspace notifications, differential against redis-server 7: the same
writing commands, with every flag combination, on our node and on Redis,
and the exact sequence of ``__keyspace@0__`` / ``__keyevent@0__`` messages
compared (events, keys, order): ``new`` (class n) on creation, ``set``,
``expire`` (class g) whenever the command sets a TTL itself, ``expired``
when an expired key is overwritten; ``restore`` for RESTORE; and a MULTI holding Django's
``set_many`` (MSET + EXPIRE per key, tests/test_tx_ttl.py).  Writes without a
TTL get our default TTL but, as in Redis, no ``expire`` event.  Excluded by
design: EXAT/PXAT in the past (we refuse them)."""

from __future__ import annotations

import time

import pytest
import redis

from clusterkit import wait_for
from rawresp import Raw
from repram_resp.commands.serialize import dump_payload

SENTINEL = "test:sentinel"
PAYLOAD = dump_payload(b"v")    # Redis's DUMP format (tests/test_serialize.py)
FUTURE_S = str(int(time.time()) + 3600)
FUTURE_MS = str(int(time.time() * 1000) + 3_600_000)

SET_OPTIONS = [(), ("EX", "100"), ("PX", "100000"), ("EXAT", FUTURE_S), ("PXAT", FUTURE_MS),
               ("KEEPTTL",)]
SET_CONDITIONS = [(), ("NX",), ("XX",), ("GET",), ("NX", "GET"), ("XX", "GET")]

# Each step: argv, run on a key that exists ("old") and on one that does not.
SCRIPT = []
for ttl in SET_OPTIONS:
    for cond in SET_CONDITIONS:
        SCRIPT.append(("SET", "{k}", "v", *ttl, *cond))
SCRIPT += [
    ("SETEX", "{k}", "100", "v"),
    ("PSETEX", "{k}", "100000", "v"),
    ("SETNX", "{k}", "v"),
    ("GETSET", "{k}", "v"),
    ("GETEX", "{k}"),
    ("GET", "{k}"),
    ("MSET", "{k}", "a", "{k}:2", "b", "{k}", "c"),
    ("MSETNX", "{k}", "a", "{k}:3", "b"),
    ("MSETNX", "{k}:4", "a", "{k}:5", "b"),
    # RESTORE publishes 'restore' (class g) and 'new', not 'set' / 'expire'.
    ("RESTORE", "{k}", "0", PAYLOAD), ("RESTORE", "{k}", "0", PAYLOAD, "REPLACE"),
    ("RESTORE", "{k}", "100000", PAYLOAD, "REPLACE"),
    ("RESTORE", "{k}", FUTURE_MS, PAYLOAD, "ABSTTL", "REPLACE"),
]


def run(port: int, key_prefix: str) -> list:
    sub = Raw(port, timeout=5)
    sub.send("PSUBSCRIBE", "__key*__:*")
    assert sub.read().startswith(b"*3\r\n$10\r\npsubscribe")
    sub.send("SUBSCRIBE", SENTINEL)
    sub.read()
    c = Raw(port, timeout=5)
    assert c.cmd("CONFIG", "SET", "notify-keyspace-events", "KEAn") == b"+OK\r\n"
    replies = []
    for i, step in enumerate(SCRIPT):
        for state in ("old", "missing"):
            key = "%s:%d:%s" % (key_prefix, i, state)
            if state == "old":
                c.cmd("SET", key, "old", "EX", "50")
            argv = [a.replace("{k}", key) if isinstance(a, str) else a for a in step]
            replies.append(c.cmd(*argv))
    # A key overwritten after its deadline: expired, then new.
    c.cmd("SET", key_prefix + ":short", "v", "PX", "1")
    d = time.monotonic() + 5
    while c.cmd("EXISTS", key_prefix + ":short") != b":0\r\n":
        assert time.monotonic() < d
    c.cmd("SET", key_prefix + ":short", "w", "EX", "100")
    # Django's RedisCache.set_many inside one MULTI.
    r = redis.Redis(port=port)
    p = r.pipeline()
    p.mset({key_prefix + ":dj1": "1", key_prefix + ":dj2": "2"})
    p.expire(key_prefix + ":dj1", 300)
    p.expire(key_prefix + ":dj2", 300)
    replies.append(repr(p.execute()).encode())
    r.close()
    c.cmd("PUBLISH", SENTINEL, "end")
    events = []
    while True:
        f = sub.read()
        if SENTINEL.encode() in f:
            break
        events.append(f)
    c.cmd("CONFIG", "SET", "notify-keyspace-events", "")
    sub.close()
    c.close()
    return replies, events


def test_keyspace_events_match_redis(server, real_redis):
    Raw(real_redis).cmd("FLUSHALL")
    ours_replies, ours = run(server.port, "n")
    theirs_replies, theirs = run(real_redis, "n")
    assert ours_replies == theirs_replies
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, "event %d: ours %r, redis %r" % (i, a, b)
    assert len(ours) == len(theirs)
    assert any(b"$3\r\nnew\r\n" in e for e in ours) and any(b"$6\r\nexpire\r\n" in e for e in ours)


def test_redis_py_keyspace_helper_sees_set_expire_expired(server):
    """The issue's report: a SET EX seen as set, expire, expired (was set, expired)."""
    r = server.client()
    r.config_set("notify-keyspace-events", "Eg$x")
    p = r.pubsub()
    p.psubscribe("__keyevent@0__:*")
    wait_for(lambda: (m := p.get_message(timeout=0.1)) and m["type"] == "psubscribe", 5, "subscribed")
    r.set("hb", "alive", px=30)
    seen = []
    wait_for(lambda: (m := p.get_message(timeout=0.1)) and seen.append(m["channel"]) is None
             and len(seen) == 3, 5, "three events")
    assert seen == [b"__keyevent@0__:set", b"__keyevent@0__:expire", b"__keyevent@0__:expired"]
    p.close()


def test_new_event_for_replicated_and_created_keys_only(server):
    r = server.client()
    r.config_set("notify-keyspace-events", "En")
    p = r.pubsub()
    p.subscribe("__keyevent@0__:new")
    wait_for(lambda: (m := p.get_message(timeout=0.1)) and m["type"] == "subscribe", 5, "subscribed")
    r.set("a", "1", ex=10)
    r.set("a", "2", ex=10)              # overwrite: not new
    r.mset({"b": "1", "a": "3"})
    got = []
    wait_for(lambda: (m := p.get_message(timeout=0.1)) and got.append(m["data"]) is None
             and len(got) == 2, 5, "two new events")
    assert got == [b"a", b"b"]
    assert p.get_message(timeout=0.1) is None
    p.close()
