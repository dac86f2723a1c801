"""Sharded pub/sub (SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, PUBSUB SHARDCHANNELS |
SHARDNUMSUB) with single-node semantics, byte-exact against redis-server 7 in
RESP2 and RESP3: confirmations and their counts (shard channels only),
``smessage`` delivery, no crossing with PUBLISH or pattern subscribers,
RESP2 subscribed-mode rules, introspection; and redis-py's sharded API."""

from __future__ import annotations

from test_tracking import Conns, run_both


def sharded(s: Conns):
    s.open("s2", 2)
    s.open("s3")
    s.open("pat", 2)
    s.open("p", 2)
    s.do("s2", "SSUBSCRIBE", "news", "jobs", frames=2)
    s.do("s2", "SSUBSCRIBE", "news")                 # again: count unchanged
    s.do("s3", "SSUBSCRIBE", "news")
    s.do("pat", "PSUBSCRIBE", "*")
    s.do("p", "SPUBLISH", "news", "hello")
    s.drain("s2")
    s.drain("s3")
    s.do("p", "PUBLISH", "news", "plain")            # a plain channel of the same name
    s.drain("s3")
    s.do("p", "PUBSUB", "SHARDNUMSUB", "news", "jobs", "none")
    s.do("p", "PUBSUB", "SHARDNUMSUB")
    s.do("p", "PUBSUB", "SHARDCHANNELS", "j*")
    s.do("p", "PUBSUB", "CHANNELS")
    s.do("p", "PUBSUB", "NUMSUB", "news")
    s.do("s2", "GET", "k")                           # RESP2 subscribed mode
    s.do("s2", "PING")
    s.do("s2", "SUBSCRIBE", "plain")                 # counts: plain and shard apart
    s.do("s2", "SUNSUBSCRIBE", "news")
    s.do("s2", "UNSUBSCRIBE")                        # plain only
    s.do("s3", "GET", "k")                           # RESP3: anything goes
    s.do("s3", "SUNSUBSCRIBE")
    s.do("s3", "SUNSUBSCRIBE")
    s.do("p", "SPUBLISH", "news", "again")
    s.do("p", "SPUBLISH", "news")
    s.do("p", "SSUBSCRIBE")
    s.do("s2", "SUNSUBSCRIBE", "jobs")
    s.do("s2", "GET", "k")                           # out of subscribed mode again
    s.do("p", "PUBSUB", "SHARDCHANNELS")
    s.drain("pat")                                   # the pattern saw PUBLISH only


def test_sharded_pubsub_matches_redis(server, real_redis):
    log = run_both(sharded, server, real_redis)
    assert any(b"smessage" in r for _, _, r in log)


def test_redis_py_sharded_pubsub(server):
    r = server.client(protocol=3)
    p = r.pubsub()
    p.ssubscribe("orders")
    assert p.get_sharded_message(timeout=2)["type"] == "ssubscribe"
    assert r.spublish("orders", "o-1") == 1
    m = p.get_sharded_message(timeout=2)
    assert (m["type"], m["channel"], m["data"]) == ("smessage", b"orders", b"o-1")
    assert r.pubsub_shardnumsub("orders") == [(b"orders", 1)]
    p.sunsubscribe("orders")
    p.close()


def test_shard_subscribers_in_client_list_and_info(server):
    r = server.client()
    p = r.pubsub()
    p.ssubscribe("a", "b")
    assert p.get_sharded_message(timeout=2)["type"] == "ssubscribe"
    clients = r.client_list(_type="pubsub")
    assert [c["ssub"] for c in clients] == ["2"] and "P" in clients[0]["flags"]
    assert r.info("stats")["pubsubshard_channels"] == 2
    p.close()
