"""The fast lane (repram_resp/lane.py, _lane.pyx) against the Python path.

* A hypothesis differential test: the same byte streams -- valid commands
  the lane runs, commands it must leave alone, hostile bytes -- split at
  random boundaries and fed to two in-process nodes (one with the lane, one
  without) over fake transports, with a fake clock moved between reads and
  the reclaimer run at random points.  Every reply byte, every pushed
  notification, the replication stream bytes and the whole resulting store
  (values, deadlines, versions, bucket filing, index, memory accounting,
  counters, HLC, stream offsets) must be equal.
* The lane actually runs (so the differential test compares two paths), the
  constants it copies agree with the Python modules, and INFO / the startup
  log say which path is active.

The differential test needs the compiled lane; without it (a tree not built
with ``python3 setup.py build_ext --inplace``) both nodes run the Python path
and it only checks determinism.  CI sets REPRAM_REQUIRE_EXTENSIONS=1 for the
run with the lane, which makes a missing build an import error.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repram_resp import clock as clock_mod
from repram_resp import connection, lane
from repram_resp.clock import FakeClock
from repram_resp.cluster import Cluster
from repram_resp.cluster import replicator as replicator_mod
from repram_resp.config import load
from repram_resp.protocol import encode_command
from repram_resp.server import Server

from fakes import FakeTransport


# -- fakes -------------------------------------------------------------------------

class FakeLink:
    """A streaming peer link: records the replication stream."""

    def __init__(self, max_bulk):
        self.transport = FakeTransport()
        self.remote_max_bulk = max_bulk
        self.streaming = False
        self.peer = None
        self.refused_offsets = []

    def unsent_bytes(self):
        return 0


class Node:
    def __init__(self, use_lane: bool, args, replicated: bool, peer_max_bulk: int):
        self.clock = FakeClock()
        self.tiny = "tiny-parser-limits" in args
        self.tracking = "tracking" in args
        args = [a for a in args if a not in ("tiny-parser-limits", "tracking")]
        cfg = load(["--port", "0", "--bind", "127.0.0.1", "--node-id", "n1", *args])
        self.server = Server(cfg, clock=self.clock)
        self.server.lane_enabled = use_lane and lane.AVAILABLE
        self.server.update_lane()
        self.link = None
        if replicated:
            cluster = Cluster(self.server)
            cluster.loop = asyncio.get_running_loop()
            cluster._wants = True
            cluster.replicator.hooks_since = 0.0
            self.link = FakeLink(peer_max_bulk)
            cluster.replicator.add_stream(self.link)
            self.server.replication = cluster
            self.server.update_write_hooks()
        self.clients = []

    def connect(self):
        c = connection.Client(self.server)
        t = FakeTransport()
        c.connection_made(t)
        if self.tiny:
            c.parser.set_limits(64, 4, 1 << 20)
        self.clients.append((c, t))
        return c


def command_counts():
    from repram_resp.commands import all_commands
    return {c.name: (c.calls, sum(c.hist), c.failed_calls, c.rejected_calls) for c in all_commands()}


def snapshot(node: Node, counts0):
    srv = node.server
    ks = srv.keyspace
    counts = command_counts()
    state = {
        # INFO commandstats: the commands (shared Command objects: deltas)
        "commandstats": {k: tuple(a - b for a, b in zip(v, counts0[k])) for k, v in counts.items()
                         if v != counts0[k]},
        "net": (srv.stats.net_in, srv.stats.net_out),
        "data": dict(ks.data),
        "index": list(ks.index),
        "buckets": {b: set(s) for b, s in ks._buckets.items()},
        "starts": dict(ks._starts),
        "ext": {b: set(x) for b, x in ks._ext.items()},     # DBSIZE's bookkeeping (issue 7)
        "stale": dict(ks._stale),
        "dbsize": ks.dbsize(node.clock()),
        "heap": sorted(set(ks._bucket_heap)),
        "used": ks.used_bytes,
        "hits": ks.hits, "misses": ks.misses, "expired": ks.expired_keys,
        "hlc": ks.hlc.last,
        "commands": srv.stat_commands, "errors": srv.stat_errors,
        "proto_errors": srv.stat_protocol_errors,
        "clients": [(bytes(t.out), t.closed, c.closed, c.last_cmd and c.last_cmd.name,
                     c.write_offset, c.repl_lo, c.enc.version, c.gate)
                    for c, t in node.clients],
    }
    if node.link is not None:
        rep = srv.replication.replicator
        state["stream"] = bytes(node.link.transport.out)
        state["offset"] = rep.offset
        state["pending"] = (list(rep._parts), rep._bytes, rep._first)
    return state


# -- the byte streams ----------------------------------------------------------------

KEYS = [b"k1", b"k2", b"key:000000000003", b"", b"\x00\r\n*2", b"x" * 70]
VALUES = st.one_of(st.binary(max_size=24), st.sampled_from([b"v" * 120, b"v" * 200, b"w" * 5000, b""]))
TTLS = st.sampled_from([b"1", b"2", b"10", b"60", b"1000", b"1500", b"86400", b"86401", b"0", b"-1",
                        b"01", b"+5", b"1a", b"99999999999999999999", b"999999999999", b""])
UNITS = st.sampled_from([b"EX", b"PX", b"ex", b"px", b"Ex", b"EXAT", b"XX"])
key_st = st.sampled_from(KEYS + [b"fresh:1", b"fresh:2"])     # fresh: never written before


def _set(t):
    name, k, v, unit, ttl = t
    return encode_command(name, k, v, unit, ttl)


set_cmd = st.tuples(st.sampled_from([b"SET", b"set", b"SET", b"Set"]), key_st, VALUES, UNITS, TTLS).map(_set)
get_cmd = st.tuples(st.sampled_from([b"GET", b"get", b"GET", b"gEt"]), key_st).map(
    lambda t: encode_command(*t))
other_cmd = st.one_of(
    st.sampled_from([
        encode_command(b"PING"), b"PING\r\n", b"GET k1\r\n", b"\r\n",
        encode_command(b"MGET", b"k1", b"k2", b"nope"),
        encode_command(b"SET", b"k1", b"n", b"NX", b"EX", b"10"),
        encode_command(b"SET", b"k2", b"n", b"XX", b"PX", b"5000"),
        encode_command(b"SET", b"k1", b"d"),             # default TTL
        encode_command(b"SET", b"k1", b"v", b"EX", b"10", b"GET"),
        encode_command(b"SETEX", b"k2", b"5", b"x"),
        encode_command(b"GET"), encode_command(b"GET", b"a", b"b"),
        encode_command(b"DEL", b"k1"), encode_command(b"TTL", b"k1"), encode_command(b"PTTL", b"k2"),
        encode_command(b"MULTI"), encode_command(b"EXEC"), encode_command(b"DISCARD"),
        encode_command(b"HELLO", b"3"), encode_command(b"HELLO", b"2"),
        encode_command(b"SUBSCRIBE", b"ch"), encode_command(b"UNSUBSCRIBE"),
        encode_command(b"DBSIZE"), encode_command(b"SCAN", b"0"), encode_command(b"AUTH", b"pw"),
        encode_command(b"CONFIG", b"SET", b"maxmemory", b"2000"),
        encode_command(b"CONFIG", b"SET", b"maxmemory", b"0"),
        encode_command(b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"),
        encode_command(b"CONFIG", b"SET", b"notify-keyspace-events", b"Ex"),
        encode_command(b"CONFIG", b"SET", b"min-ttl", b"0"),
        encode_command(b"CONFIG", b"SET", b"proto-max-bulk-len", b"16"),
        encode_command(b"CLIENT", b"SETNAME", b"x"),
    ]),
)
hostile = st.one_of(
    st.sampled_from([
        b"*2\r\n$3\r\nGET\r\n$2\r\nk1XY",                      # payload not followed by CRLF
        b"*2\r\n$3\r\nGET\r\n$02\r\nk1\r\n",                   # leading zero
        b"*2\r\n$3\r\nGET\r\n$-1\r\n",
        b"*5\r\n$3\r\nSET\r\n$2\r\nk1\r\n$1\r\nv\r\n$2\r\nEX\r\n:10\r\n",
        b"*2\r\n$3\r\nGET\r\n$99999999999\r\n",
        b"*2\r\n$4\r\nGETX\r\n$2\r\nk1\r\n",
        b"*5\r\n$3\r\nGET\r\n$2\r\nk1\r\n",                    # count does not match
        b"*2\r\n*1\r\n$1\r\na\r\n", b"$-1\r\n", b"*-1\r\n", b"*0\r\n", b"*2\r\r\n",
    ]),
    st.binary(min_size=1, max_size=12),
)
# What the lane runs: plain GET and SET EX|PX overwrites (the keys exist), in runs as pipelines send them.
plain_set = st.tuples(st.sampled_from([b"SET", b"set"]), key_st, VALUES, st.sampled_from([b"EX", b"ex", b"PX", b"px"]),
                      st.sampled_from([b"10", b"60", b"3600", b"6000", b"60000"])).map(_set)
plain_get = st.tuples(st.sampled_from([b"GET", b"get"]), key_st).map(lambda t: encode_command(*t))
plain_run = st.lists(st.one_of(plain_set, plain_get), min_size=1, max_size=20).map(b"".join)
commands = st.lists(st.one_of(plain_run, plain_run, plain_set, set_cmd, get_cmd, other_cmd),
                    min_size=1, max_size=30)
ADVANCE = st.sampled_from([0, 0, 0, 1, 15, 16, 500, 999, 1000, 1001, 3000, 10_000])
CONFIGS = [
    [],
    ["--min-ttl", "0"],
    ["--maxmemory", "2600"],      # the keys fit; a value growing by ~100 bytes does not
    ["tiny-parser-limits"],       # applied to the parser directly (the directive's floor is 1 MB)
    ["--notify-keyspace-events", "Ex"],
    ["--requirepass", "pw"],
    ["--client-turn-max-commands", "3"],   # the lane keeps to the per-turn budget (issue 7)
    ["tracking"],                 # a RESP3 client caches k1 and k2: overwrites must invalidate
]


@st.composite
def scenario(draw):
    cmds = draw(commands)
    if draw(st.booleans()):
        # hostile bytes somewhere (they end the connection with a protocol error)
        cmds.insert(draw(st.integers(0, len(cmds))), draw(hostile))
    stream = b"".join(cmds)
    bounds = [sum(map(len, cmds[:i])) for i in range(1, len(cmds))]
    # Reads end anywhere (a byte at a time included) or, as pipelines mostly do, between commands.
    cuts = draw(st.lists(st.integers(1, max(1, len(stream) - 1)), max_size=6))
    if bounds:
        cuts += draw(st.lists(st.sampled_from(bounds), max_size=10))
    cuts = sorted(set(cuts))
    chunks, prev = [], 0
    for c in cuts + [len(stream)]:
        if c > prev:
            chunks.append(stream[prev:c])
            prev = c
    steps = [(chunk, draw(ADVANCE), draw(st.booleans())) for chunk in chunks]
    return steps


async def _run(use_lane, args, replicated, peer_max_bulk, warm, steps):
    node = Node(use_lane, args, replicated, peer_max_bulk)
    counts0 = command_counts()      # after Node(): a new server resets them
    warm_client = node.connect()
    sub = None
    if "--notify-keyspace-events" in args:
        sub = node.connect()
        sub.data_received(encode_command(b"SUBSCRIBE", b"__keyevent@0__:expired"))
    if "--requirepass" in args:
        warm_client.data_received(encode_command(b"AUTH", b"pw"))
    # Existing keys, so SETs are overwrites the lane may take.
    warm_client.data_received(b"".join(encode_command(b"SET", k, b"old", b"EX", b"5") for k in KEYS))
    await asyncio.sleep(0)
    if node.tracking:
        tracker = node.connect()
        tracker.data_received(encode_command(b"HELLO", b"3") + encode_command(b"CLIENT", b"TRACKING", b"ON")
                              + encode_command(b"GET", b"k1") + encode_command(b"GET", b"k2"))
        await asyncio.sleep(0)
    c = node.connect()
    for chunk, adv, reclaim in steps:
        c.data_received(chunk)
        await asyncio.sleep(0)           # end of the loop turn: pushes, stream flush
        for _ in range(1000):            # turns a spent budget left for later
            if all(cl._turn is None for cl, _t in node.clients):
                break
            await asyncio.sleep(0)
        node.clock.advance(adv)
        if reclaim:
            node.server.keyspace.reclaim(node.clock(), 3)
    await asyncio.sleep(0)
    return snapshot(node, counts0)


def run_both(args, replicated, peer_max_bulk, steps):
    a = asyncio.run(_run(True, args, replicated, peer_max_bulk, True, steps))
    b = asyncio.run(_run(False, args, replicated, peer_max_bulk, True, steps))
    return a, b


@pytest.mark.parametrize("args", CONFIGS, ids=lambda a: " ".join(a) or "defaults")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenario(), replicated=st.booleans(), peer_max_bulk=st.sampled_from([1 << 20, 100]))
def test_lane_is_indistinguishable_from_the_python_path(args, steps, replicated, peer_max_bulk):
    with_lane, without = run_both(args, replicated, peer_max_bulk, steps)
    for k in without:
        assert with_lane[k] == without[k], k


# -- the lane runs, and says so --------------------------------------------------------

def _lane_consumed(monkeypatch):
    consumed = []
    real = connection._LANE

    def spy(client, data, *limits):
        rest = real(client, data, *limits)
        consumed.append(len(data) - (0 if rest is None else len(rest)))
        return rest
    monkeypatch.setattr(connection, "_LANE", spy)
    return consumed


def _required():
    return os.environ.get(lane.REQUIRE_EXTENSIONS_ENV, "") not in ("", "0")


def test_lane_loaded_as_the_environment_says():
    if os.environ.get(lane.NO_EXTENSIONS_ENV, "") not in ("", "0"):
        assert not lane.AVAILABLE and lane.NO_EXTENSIONS_ENV in lane.describe()
    elif _required():
        assert lane.AVAILABLE, lane.describe()
    else:
        assert lane.AVAILABLE == (lane.execute is not None)


def test_lane_runs_the_plain_prefix_and_hands_over_the_rest(monkeypatch):
    if not lane.AVAILABLE:
        assert not _required()
        return
    consumed = _lane_consumed(monkeypatch)

    async def go():
        node = Node(True, [], True, 1 << 20)
        c = node.connect()
        t = node.clients[0][1]
        c.data_received(encode_command(b"SET", b"k", b"v1", b"EX", b"10"))   # new key: put, from the lane
        first = consumed[-1]
        plain = encode_command(b"SET", b"k", b"v22", b"EX", b"20") + encode_command(b"GET", b"k")
        tail = encode_command(b"PING") + encode_command(b"GET", b"k")
        c.data_received(plain + tail)
        await asyncio.sleep(0)
        return node, t, first

    node, t, first = asyncio.run(go())
    assert first == len(encode_command(b"SET", b"k", b"v1", b"EX", b"10"))
    assert consumed[-1] == len(encode_command(b"SET", b"k", b"v22", b"EX", b"20") + encode_command(b"GET", b"k"))
    assert bytes(t.out) == b"+OK\r\n+OK\r\n$3\r\nv22\r\n+PONG\r\n$3\r\nv22\r\n"
    ks = node.server.keyspace
    assert ks.hits == 2 and node.server.stat_commands == 5
    assert node.server.replication.replicator.offset == 2
    assert node.clients[0][0].last_cmd.name == "get"


def test_lane_gate_follows_observers():
    async def go():
        node = Node(True, [], False, 0)
        srv = node.server
        assert srv.lane_ok == lane.AVAILABLE
        srv.config.set_runtime("notify-keyspace-events", "KEA", srv.apply_config)
        assert srv.lane_ok is False
        srv.config.set_runtime("notify-keyspace-events", "Ex", srv.apply_config)
        assert srv.lane_ok == lane.AVAILABLE
        c = node.connect()
        srv.stats.add_monitor(c)                 # MONITOR sees every command
        assert srv.lane_ok is False
        srv.stats.drop_monitor(c)
        assert srv.lane_ok == lane.AVAILABLE
        srv.config.set_runtime("slowlog-log-slower-than", "0", srv.apply_config)
        assert srv.lane_ok is False
        srv.config.set_runtime("slowlog-log-slower-than", "10000", srv.apply_config)
        assert srv.lane_ok == lane.AVAILABLE
    asyncio.run(go())


def test_monitor_sees_the_commands_the_lane_would_run(make_server):
    s = make_server()
    r = s.client()
    r.set("k", "v", ex=60)
    with r.monitor() as m:
        r2 = s.client()
        r2.set("k", "w", ex=60)                 # a plain overwrite: the lane's, were it on
        r2.get("k")
        got = []
        while len(got) < 2:
            c = m.next_command()["command"]
            if c.split()[0] in ("SET", "GET"):      # redis-py's handshake comes first
                got.append(c)
    assert got == ["SET k w EX 60", "GET k"]
    stats = r.info("commandstats")
    assert stats["cmdstat_get"]["calls"] >= 1 and stats["cmdstat_set"]["calls"] >= 2


def test_lane_constants_match_the_python_modules():
    if not lane.AVAILABLE:
        assert not _required()
        return
    from repram_resp import _lane
    assert _lane.FLUSH_BYTES == replicator_mod.FLUSH_BYTES
    assert _lane.MAX_BATCH_ENTRIES == replicator_mod.MAX_BATCH_ENTRIES
    assert clock_mod.LOGICAL_BITS == 16 and clock_mod.TAG_BITS == 0


def test_info_and_log_name_the_active_path(make_server):
    s = make_server()
    info = s.client().info("server")
    assert info["repram_fast_lane"] == ("yes" if lane.AVAILABLE else "no")


def test_lane_keeps_to_the_turn_budget(monkeypatch):
    """client-turn-max-commands bounds what one read runs in a loop turn, in
    the lane as in the Python path: the rest waits for the next turn."""
    if not lane.AVAILABLE:
        assert not _required()
        return
    consumed = _lane_consumed(monkeypatch)

    async def go():
        node = Node(True, ["--client-turn-max-commands", "3"], False, 0)
        c = node.connect()
        t = node.clients[0][1]
        c.data_received(encode_command(b"SET", b"k", b"v", b"EX", b"10"))
        await asyncio.sleep(0)
        t.out.clear()
        c.data_received(encode_command(b"GET", b"k") * 10)
        first_turn = bytes(t.out)
        pending = c._turn is not None
        for _ in range(10):
            await asyncio.sleep(0)
        return first_turn, pending, bytes(t.out)

    first_turn, pending, everything = asyncio.run(go())
    n = len(encode_command(b"GET", b"k"))
    # Each turn the lane takes what is left (and runs 3 of it): the rest of a
    # read goes back to the lane on later turns, not to the Python path.
    assert consumed[-4:] == [10 * n, 7 * n, 4 * n, n]
    assert first_turn == b"$1\r\nv\r\n" * 3 and pending               # 3 run this turn
    assert everything == b"$1\r\nv\r\n" * 10
