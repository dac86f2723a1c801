"""The stream lane (``_lane.stream``, lane.py "The replicated stream") against
the Python path of a receiving peer link.

* A hypothesis differential test: the same peer byte streams -- B frames the
  lane applies, B frames it must leave alone (expired on arrival, refused
  TTLs and sizes, malformed versions, a wrong origin, a duplicate, a
  floor-covered key), other frames (PING, FL, CU, unknown), hostile bytes --
  split at random boundaries and fed to two in-process receiving links (one
  with the lane, one without) over fake transports, with a fake clock moved
  between reads and the reclaimer run at random points.  Everything must be
  equal: the keyspace (values, deadlines, versions, buckets, index, memory,
  floors, HLC), the replication counters, every byte the link wrote back
  (ACK, REJ, PONG), whether it closed, and what tracking clients were pushed.
* The lane actually runs (the B frames do not reach the Python dispatcher)
  and its constants agree with replicator.py.

Without the compiled lane both links run the Python path (determinism only).
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repram_resp import lane
from repram_resp.clock import FakeClock
from repram_resp.cluster import Cluster
from repram_resp.cluster import messages as m
from repram_resp.cluster import replicator as replicator_mod
from repram_resp.cluster.link import Link
from repram_resp.cluster.membership import Peer
from repram_resp.config import load
from repram_resp.connection import Client
from repram_resp.protocol import encode_command
from repram_resp.server import Server

from fakes import FakeTransport

T0 = 1_700_000_000_000


class Receiver:
    """A node with one ready receiving link from peer ``origin``."""

    def __init__(self, use_lane: bool, conf: str):
        self.clock = FakeClock(T0)
        args = {"maxmemory": ["--maxmemory", "3000"], "min-ttl": ["--min-ttl", "2000"],
                "notify": ["--notify-keyspace-events", "K$"]}.get(conf, [])
        cfg = load(["--port", "0", "--bind", "127.0.0.1", "--node-id", "me", *args])
        self.server = Server(cfg, clock=self.clock)
        self.server.lane_enabled = use_lane and lane.AVAILABLE
        self.server.update_lane()
        cluster = Cluster(self.server)
        cluster.loop = asyncio.get_running_loop()
        self.server.replication = cluster
        ks = self.server.keyspace
        if conf == "floors":
            ks.floor_retention_ms = 100_000
            ks.add_floor(b"fresh", (T0 + 50) << 16, T0)     # a key with no entry
        link = self.link = Link(cluster, dialer=False)
        link.transport = FakeTransport()
        peer = link.peer = Peer("origin")
        peer.enclave = "other" if conf == "enclave" else cluster.enclave
        link._ready()
        if conf == "tiny-reader":
            link.reader.max_pending_bytes = 300
            link.reader.max_elements = 24
        link.clock.adjust_ms = -3
        link.clock.delta_us = 20_000.0 if conf == "poor-clock" else 400.0
        self.clients = []
        if conf == "tracking":
            c = Client(self.server)
            t = FakeTransport()
            c.connection_made(t)
            c.data_received(encode_command(b"HELLO", b"3") + encode_command(b"CLIENT", b"TRACKING", b"ON")
                            + encode_command(b"GET", b"k1") + encode_command(b"GET", b"k3"))
            self.clients.append((c, t))
        # Keys that exist before the stream starts (overwrites, the common case).
        for i, k in enumerate(KEYS[:4]):
            ks.put(k, b"old%d" % i, T0 + 5000 + 100 * i, (T0 - 10) << 16, T0)

    def snapshot(self):
        ks = self.server.keyspace
        rep = self.server.replication.replicator
        link = self.link
        return {
            "data": dict(ks.data), "index": list(ks.index),
            "buckets": {b: list(s) for b, s in ks._buckets.items()},
            "starts": dict(ks._starts), "ext": {b: set(x) for b, x in ks._ext.items()},
            "stale": dict(ks._stale), "heap": sorted(set(ks._bucket_heap)),
            "used": ks.used_bytes, "expired": ks.expired_keys, "dbsize": ks.dbsize(self.clock()),
            "floors": dict(ks.floors), "floor_index": list(ks.floor_index), "floor_bytes": ks.floor_bytes,
            "hlc": self.server.hlc.last,
            "stats": {k: v for k, v in rep.stats.items() if k != "batches_lane"}, "refused": dict(rep.refused_received),
            "refused_from": dict(link.peer.refused_from),
            "out": bytes(link.transport.out), "closed": link.transport.closed, "state": link.state,
            "seen": link.seen_upto_ms, "ack_due": link.ack_due,
            "converted": link.converted,
            "pushes": [bytes(t.out) for _c, t in self.clients],
        }


# -- the byte streams ------------------------------------------------------------------

KEYS = [b"k1", b"k2", b"k3", b"key:000000000004", b"fresh", b"", b"\r\n*2$"]
key_st = st.sampled_from(KEYS)
value_st = st.one_of(st.binary(max_size=12), st.sampled_from([b"v" * 300, b"old0"]))
# deadlines relative to the sender's sent_ms: dead on arrival, too short for min-ttl, ordinary, past max-ttl
ttl_st = st.sampled_from([-10, 0, 1, 100, 1000, 3000, 60_000, 5000, 86400 * 1000 * 400])
version_st = st.one_of(
    st.integers(-30, 30).map(lambda d: b"%d" % ((T0 + d) << 16)),
    st.sampled_from([b"%d" % ((T0 - 10) << 16), b"%d" % ((T0 + 50) << 16), b"0", b"007",
                     b"9" * 19, b"9" * 25, b"12x", b"-1", b"", b" 5", b"1_0"]))


# what a healthy stream carries: every entry one the lane applies itself
plain_ttl_st = st.sampled_from([1000, 3000, 5000, 60_000])
plain_version_st = st.one_of(
    st.tuples(st.integers(-12, 12), st.integers(0, 2)).map(lambda t: b"%d" % ((T0 + t[0]) << 16 | t[1])),
    st.sampled_from([b"%d" % ((T0 - 10) << 16), b"%d" % ((T0 + 50) << 16)]))


@st.composite
def entry_st(draw, sent, plain):
    key, value = draw(key_st), draw(value_st)
    ttl, vb = (draw(plain_ttl_st), draw(plain_version_st)) if plain else (draw(ttl_st), draw(version_st))
    d = b":%d\r\n" % (sent + ttl)
    if not plain and draw(st.integers(0, 30)) == 0:
        d = draw(st.sampled_from([b"$2\r\n10\r\n", b":-5\r\n", b":99999999999999999999\r\n"]))
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n%s$%d\r\n%s\r\n" % (len(key), key, len(value), value, d, len(vb), vb)


@st.composite
def b_frame(draw):
    sent = T0 + draw(st.sampled_from([0, 0, 5, -5, 200]))
    ents = draw(st.lists(entry_st(sent, draw(st.integers(0, 7)) > 0), max_size=6))
    origin = draw(st.sampled_from([b"origin"] * 12 + [b"other"]))
    n = len(ents)
    if draw(st.integers(0, 30)) == 0:
        n += draw(st.sampled_from([1, -1, 4]))       # the count does not match
    head = b"*%d\r\n$1\r\nB\r\n$%d\r\n%s\r\n:%d\r\n:%d\r\n" % (4 + 4 * n, len(origin), origin,
                                                               draw(st.integers(1, 1000)), sent)
    return head + b"".join(ents)


other_frame = st.one_of(
    st.integers(1, 10**9).map(lambda t: b"*2\r\n$4\r\nPING\r\n:%d\r\n" % t),
    st.tuples(key_st, version_st.filter(lambda v: v.isdigit() and len(v) < 29)).map(
        lambda kv: m.encode_floors([(kv[0], int(kv[1]))])),
    st.tuples(key_st, value_st, ttl_st).map(
        lambda t: m.encode_cu(0, [(t[0], t[1], T0 + t[2], (T0 + 1) << 16)])),
    st.sampled_from([m.frame(b"WHAT", 1), b"*1\r\n$3\r\nACK\r\n"]),
)
hostile = st.one_of(
    st.sampled_from([b"*0\r\n", b"*-1\r\n", b"*2\r\n*1\r\n$1\r\na\r\n", b"+OK\r\n", b"*1\r\n$3\r\nBxx\r\n",
                     b"*4\r\n$1\r\nB\r\n", b"*5\r\n$1\r\nB\r\n$6\r\norigin\r\n:1\r\n:1\r\n",
                     b"*8\r\n$1\r\nB\r\n$99999999999\r\n", b"*99999999999999999999\r\n",
                     b"*2\r\n$4\r\nPING\r\n:123456789012345678901\r\n", b"*1\r\n$1\r\nBXY"]),
    st.binary(min_size=1, max_size=10),
)
frames_st = st.lists(st.one_of(b_frame(), b_frame(), b_frame(), other_frame), min_size=1, max_size=12)
ADVANCE = st.sampled_from([0] * 8 + [1, 16, 300, 1000, 2500])
CONFS = ["defaults", "maxmemory", "min-ttl", "notify", "floors", "tracking", "poor-clock", "enclave",
         "tiny-reader"]


@st.composite
def scenario(draw):
    frames = draw(frames_st)
    if draw(st.integers(0, 4)) == 0:
        frames.insert(draw(st.integers(0, len(frames))), draw(hostile))
    data = b"".join(frames)
    bounds = [sum(map(len, frames[:i])) for i in range(1, len(frames))]
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=8))
    if bounds:
        cuts += draw(st.lists(st.sampled_from(bounds), max_size=6))
    bytewise = draw(st.integers(0, 10)) == 0
    if bytewise:
        cuts += list(range(1, len(data)))           # a byte at a time (the clock stands still)
    cuts = sorted(set(cuts))
    chunks, prev = [], 0
    for c in cuts + [len(data)]:
        if c > prev:
            chunks.append(data[prev:c])
            prev = c
    return [(c, 0 if bytewise else draw(ADVANCE), draw(st.booleans())) for c in chunks]


async def _run(use_lane, conf, steps):
    r = Receiver(use_lane, conf)
    for chunk, adv, reclaim in steps:
        if r.link.transport.closed:
            break           # a closed transport reads no more (the link is aborted)
        r.link.data_received(chunk)
        r.clock.advance(adv)
        if reclaim:
            r.server.keyspace.reclaim(r.clock(), 3)
        await asyncio.sleep(0)
    return r.snapshot()


@pytest.mark.parametrize("conf", CONFS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenario())
def test_stream_lane_is_indistinguishable_from_the_python_path(conf, steps):
    with_lane = asyncio.run(_run(True, conf, steps))
    without = asyncio.run(_run(False, conf, steps))
    for k in without:
        assert with_lane[k] == without[k], k


# -- it runs ----------------------------------------------------------------------------

def test_stream_lane_applies_b_frames_itself_and_holds_a_split_frame(monkeypatch):
    python_frames = []
    real = Link._lane_frame
    monkeypatch.setattr(Link, "_lane_frame", lambda self, d: (python_frames.append(d), real(self, d)))

    async def go():
        r = Receiver(True, "defaults")
        ents = [(b"k%d" % i, b"value%d" % i, T0 + 60_000, (T0 + 1) << 16 | i) for i in range(50)]
        frame = m.encode_batch(b"origin", 7, T0, ents)
        ping = b"*2\r\n$4\r\nPING\r\n:5\r\n"
        data = frame + ping + frame[:100]
        r.link.data_received(data[:37])
        r.link.data_received(data[37:])
        r.link.data_received(frame[100:])
        return r
    r = asyncio.run(go())
    ks = r.server.keyspace
    assert ks.data[b"k49"][0] == b"value49" and ks.data[b"k0"][1] == T0 + 60_000 - 3
    rep = r.server.replication.replicator
    assert rep.stats["writes_received"] == 100 and rep.stats["writes_applied"] == 50
    assert r.link.transport.out.count(b"ACK") == 2 and b"PONG" in r.link.transport.out
    assert r.link.lane_hold is None and r.link.reader.idle()
    if lane.AVAILABLE:
        assert python_frames == [b"*2\r\n$4\r\nPING\r\n:5\r\n"]      # only the PING went to Python


def test_stream_lane_constants_match_the_replicator():
    if not lane.AVAILABLE:
        assert lane.stream is None
        return
    from repram_resp import _lane
    assert _lane.RECORRECT_DELTA_US == replicator_mod.RECORRECT_DELTA_US
    assert _lane.TTL_SLACK_MS == replicator_mod.TTL_SLACK_MS
    assert _lane.MIN_TTL_SLACK_MS == replicator_mod.MIN_TTL_SLACK_MS
    assert _lane.RECORRECT_MAX == replicator_mod.RECORRECT_MAX
    assert _lane.RECORRECT_WINDOW_S == replicator_mod.RECORRECT_WINDOW_S
    assert m.ENTRY_FIELDS == 4 and m.BATCH_HEAD == 4 and m.BATCH == b"B"


def test_real_peers_apply_a_redis_py_pipeline_through_the_stream_lane(make_server):
    """Two real nodes: redis-py pipelines SETs into one; the other serves
    them, acknowledged for WAIT, and INFO says which path applied them."""
    from clusterkit import client, repl_info, start_mesh
    a, b = start_mesh(make_server, 2)
    ra, rb = client(a), client(b)
    p = ra.pipeline(transaction=False)
    for i in range(2000):
        p.set("lane:%d" % i, b"v\r\n%d" % i, ex=60)
    p.execute()
    assert ra.wait(1, 5000) == 1
    assert rb.mget(["lane:0", "lane:1999"]) == [b"v\r\n0", b"v\r\n1999"]
    assert rb.ttl("lane:7") > 50 and rb.dbsize() == 2000
    info = repl_info(b)
    assert info["repl_writes_applied"] == 2000 and info["repl_batches_received"] >= 1
    if lane.AVAILABLE:
        assert info["repl_batches_lane"] == info["repl_batches_received"]
    else:
        assert info["repl_batches_lane"] == 0
