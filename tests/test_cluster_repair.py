"""Replication that stays right under faults (issue 8): the two deterministic
reproductions -- an overwritten value coming back once its overwrite expired,
and a crashed node's last write that reached only one survivor -- and
anti-entropy repairing a divergence with no restart at all.  Faults come from
tests/faultproxy.py; every wait is a poll with a deadline."""

from __future__ import annotations

import re
import signal
import time

import redis

from clusterkit import FAST, client, proxied_cluster, repl_info, wait_for, wait_mesh
from conftest import NodeProcess

AE_FAST = ["--cluster-anti-entropy-interval-ms", "200"]


def _all(rs, key):
    return [r.get(key) for r in rs]


def test_an_overwritten_value_does_not_come_back_after_its_overwrite_expired(make_server, proxies):
    """Case 1: {n1} | {n2, n3}; n2 writes A (long TTL), then n1 writes B
    (the last write, short TTL).  B expires during the partition.  After the
    heal a single node would say nil: so must every node, at every moment."""
    (n1, n2, n3), (p1, p2, p3), (h1, h2, h3) = proxied_cluster(make_server, proxies, 3, *AE_FAST)
    r1, r2, r3 = client(n1, h1), client(n2, h2), client(n3, h3)
    rs = (r1, r2, r3)
    p1.partition({h2, h3})
    p2.partition({h1})
    p3.partition({h1})
    r2.set("k", "A", px=6000)
    assert r2.wait(1, 500) == 1                       # n3 has A too
    t_a = time.monotonic()
    # B must be the later write: its version's millisecond must come after A's.
    wait_for(lambda: time.monotonic() - t_a > 0.1, 1, "100 ms to pass", interval=0.02)
    r1.set("k", "B", px=1200)
    assert _all(rs, "k") == [b"B", b"A", b"A"]
    wait_for(lambda: r1.get("k") is None, 3, "B to expire on n1")
    assert _all(rs, "k") == [None, b"A", b"A"]
    for p in (p1, p2, p3):
        p.heal()
    # From the heal on, n1 must never serve A again, and n2/n3 must drop it.
    deadline = time.monotonic() + 3.0
    agreed_at = None
    while time.monotonic() < deadline:
        vals = _all(rs, "k")
        assert vals[0] is None, "n1 went B -> nil -> %r" % vals[0]
        if vals == [None, None, None]:
            agreed_at = agreed_at or time.monotonic()
            if time.monotonic() - agreed_at > 0.8:
                break
        else:
            agreed_at = None
        time.sleep(0.02)
    assert agreed_at is not None, "still %r after the heal" % (_all(rs, "k"),)
    wait_mesh([n1, n2, n3])
    assert _all(rs, "k") == [None, None, None]
    assert sum(repl_info(n, h)["repl_floors_applied"] for n, h in ((n2, h2), (n3, h3))) >= 1


def test_a_late_delivery_of_an_overwritten_write_is_refused_by_the_floor(make_server):
    """The SIGSTOP form: an older write reaches a node after the newer one
    was applied there and expired (a stream replayed on SIGCONT)."""
    from clusterkit import start_mesh
    a, _ = start_mesh(make_server, 2, "--cluster-port", "0")   # floors are kept with peers
    ks, clock = a.server.keyspace, a.server.clock
    now = a.call(clock)
    old_v, new_v = (now - 50) << 16, now << 16
    assert a.call(lambda: ks.apply_remote(b"k", b"new", clock() + 20, new_v, clock()))
    wait_for(lambda: a.call(lambda: ks.reclaim(clock(), 100) >= 0 and b"k" not in ks.data),
             2, "the newer write to expire and be reclaimed")
    assert a.call(lambda: ks.floors.get(b"k")) == new_v
    assert a.call(lambda: ks.apply_remote(b"k", b"old", clock() + 60_000, old_v, clock())) is False
    assert client(a).get("k") is None
    # A newer write still lands.
    assert a.call(lambda: ks.apply_remote(b"k", b"newer", clock() + 60_000, new_v + 1, clock()))
    assert client(a).get("k") == b"newer"


# --- case 2: subprocess nodes behind proxies, SIGKILL ---------------------------

CPORT_RE = re.compile(rb"cluster port (\d+)")


class _Node:
    def __init__(self, ip, proxy, name, extra):
        self.ip, self.proxy, self.name, self.extra = ip, proxy, name, extra
        self.proc = None
        self.start()

    def start(self):
        self.proc = NodeProcess([
            "--port", "0", "--bind", self.ip, *FAST, *AE_FAST, "--node-id", self.name,
            "--cluster-port", "0", "--cluster-announce-ip", "127.0.0.1",
            "--cluster-announce-port", str(self.proxy.port), "--cluster-handshake-timeout-ms",
            "4000", *self.extra])
        self.proxy.set_target(self.ip, int(CPORT_RE.search(self.proc.log).group(1)))
        self.r = redis.Redis(host=self.ip, port=self.proc.port, socket_timeout=10)

    def peer_states(self):
        info = self.r.info("replication")
        return sorted(v["state"] for k, v in info.items() if k.startswith("peer") and isinstance(v, dict))


def test_a_crashed_nodes_last_write_that_reached_one_survivor_is_repaired(proxies):
    """Case 2: n1 writes A (everyone), then B, which reaches n2 but not n3;
    SIGKILL n1, restart it.  n3 must end up with B, not keep A for A's life."""
    ps = proxies(3)
    ips = ["127.0.0.%d" % (21 + i) for i in range(3)]
    nodes = []
    try:
        for i in range(3):
            seeds = [] if i == 0 else ["--peers", "127.0.0.1:%d" % ps[0].port]
            nodes.append(_Node(ips[i], ps[i], "n%d" % (i + 1), seeds))
        n1, n2, n3 = nodes
        for n in nodes:
            wait_for(lambda n=n: n.peer_states() == ["up", "up"], 10, "mesh on %s" % n.name)
        n1.r.set("k", "A", px=20_000)
        assert n1.r.wait(2, 1000) == 2
        ps[2].partition({ips[0]})                     # n1 -> n3 black-holed; n3 -> n1 fine
        n1.r.set("k", "B", px=20_000)
        assert n1.r.wait(1, 500) == 1                 # only n2 holds B
        assert n3.r.get("k") == b"A"
        n1.proc.stop(signal.SIGKILL)
        ps[2].heal()
        # n2's path to the restarted n1 is slow, so n3 asks n1 for its gap
        # before n1 has re-learned B from n2 (the order that lost B).
        ps[0].delay(600, sources={ips[1]})
        n1.extra = ["--peers", "127.0.0.1:%d" % ps[2].port]
        n1.start()
        wait_for(lambda: n1.peer_states() == ["up", "up"], 10, "n1 back in the mesh")
        ps[0].delay(0, sources={ips[1]})
        wait_for(lambda: [n.r.get("k") for n in nodes] == [b"B", b"B", b"B"], 5,
                 "B on every node")
    finally:
        for n in nodes:
            n.proc.stop()


# --- anti-entropy without any restart -------------------------------------------

def test_anti_entropy_repairs_a_divergence_without_any_restart(make_server):
    """Values written straight into one node's keyspace (no stream, no link
    change) reach the others within the interval; a floor planted on one
    node drops the value on the others."""
    from clusterkit import start_mesh
    nodes = start_mesh(make_server, 3, "--cluster-port", "0", "--cluster-anti-entropy-interval-ms", "300")
    a, b, c = nodes
    rs = [client(n) for n in nodes]
    rs[0].set("shared", "1", ex=60)
    assert rs[0].wait(2, 2000) == 2

    def plant():
        s = a.server
        now = s.clock()
        for i in range(500):
            s.keyspace.put(b"hidden:%d" % i, b"v%d" % i, now + 60_000, None, now)
        # A floor newer than "shared": as if its newer write expired here.
        s.keyspace.apply_floor(b"shared", s.hlc.tick(now), now)
        return now
    t0 = time.monotonic()
    a.call(plant)
    assert rs[1].get("hidden:0") is None and rs[1].get("shared") == b"1"
    wait_for(lambda: all(r.get("hidden:499") == b"v499" and r.get("shared") is None for r in rs),
             5, "the divergence to be repaired")
    took = time.monotonic() - t0
    assert took < 3.0                                 # interval 0.3 s + one round
    assert all(r.dbsize() == 500 for r in rs)
    info = repl_info(b)
    assert info["repl_anti_entropy_rounds"] >= 1 and info["repl_anti_entropy_ranges_repaired"] >= 1
    assert info["version_floors"] >= 1 and info["repl_floors_applied"] >= 1


# --- the digest ledger (issue 11) -------------------------------------------------

def _plant_hidden(node, n: int = 50) -> None:
    """hidden:0..n-1 = v written straight into node's keyspace (no stream)."""
    def plant():
        s = node.server
        now = s.clock()
        for i in range(n):
            s.keyspace.put(b"hidden:%d" % i, b"v", now + 60_000, None, now)
    node.call(plant)


def test_under_a_write_load_ledger_rounds_compare_without_walking(make_server):
    """Random-key writes streaming while rounds run: every round is a
    ledger round, and almost nothing is summarised (range rounds summarised
    nearly every key, every round)."""
    from clusterkit import start_mesh
    nodes = start_mesh(make_server, 3, "--cluster-port", "0", "--cluster-anti-entropy-interval-ms", "200")
    rs = [client(n) for n in nodes]
    # A node's first round, before it has a snapshot, walks ranges: start
    # counting after one ledger round on each.
    wait_for(lambda: all(repl_info(n)["repl_anti_entropy_ledger_rounds"] >= 1 for n in nodes), 10,
             "a first ledger round")
    before = [repl_info(n)["repl_anti_entropy_ledger_rounds"] for n in nodes]
    walks = [repl_info(n)["repl_anti_entropy_range_rounds"] for n in nodes]
    t_end = time.monotonic() + 2.5
    written = 0
    i = 0
    while time.monotonic() < t_end:
        p = rs[i % 3].pipeline(transaction=False)
        for k in range(500):
            p.set("load:%d" % ((written + k) * 7919 % 5000), "v", ex=60)
        p.execute()
        written += 500
        i += 1
    assert rs[0].wait(2, 5000) == 2
    wait_for(lambda: all(repl_info(n)["repl_anti_entropy_ledger_rounds"] >= b + 3
                         for n, b in zip(nodes, before)), 10, "three ledger rounds on each node")
    for n, w in zip(nodes, walks):
        info = repl_info(n)
        assert info["repl_anti_entropy_range_rounds"] == w
        assert info["repl_anti_entropy_no_snapshot"] == 0
        assert info["ledger_changes"] >= 5000
        # a few writes delayed past the settle time or overtaking across a
        # quantum may cost a bucket's summary; never a share of the keyspace
        assert info["repl_anti_entropy_summary_keys_received"] < written // 20, info
    assert len({r.dbsize() for r in rs}) == 1


def test_a_peer_without_the_snapshot_is_compared_by_a_range_round(make_server):
    """A ledger snapshot the peer no longer keeps (its clock is 6 s ahead,
    past the ~4 s of snapshots kept; allowed here by a wide skew bound) or
    cannot take yet (6 s ahead of its own) is answered "no snapshot"; the
    next round walks ranges, and repairs, both ways."""
    from clusterkit import FAST, seed_of, wait_mesh
    from repram_resp.clock import wall_ms
    common = [*FAST, "--cluster-port", "0", "--cluster-anti-entropy-interval-ms", "200",
              "--cluster-max-clock-skew-ms", "10000"]
    a = make_server(*common, "--node-id", "n1")
    b = make_server(*common, "--node-id", "n2", "--peers", seed_of(a), clock=lambda: wall_ms() + 6000)
    wait_mesh([a, b])

    _plant_hidden(b)
    ra = client(a)
    wait_for(lambda: ra.get("hidden:49") == b"v", 10, "a range round to repair a")
    for n in (a, b):
        info = repl_info(n)
        assert info["repl_anti_entropy_no_snapshot"] >= 1 and info["repl_anti_entropy_range_rounds"] >= 1


def test_a_peer_that_refuses_ledger_rounds_is_compared_by_range_walks(make_server):
    """A build from before the ledger closes the link on the unknown AED
    frame (as for any unknown frame): the node notes that peer's run once and
    walks ranges with it from then on, so the link does not flap and a
    divergence is still repaired."""
    from clusterkit import start_mesh
    from repram_resp.cluster import messages as m
    nodes = start_mesh(make_server, 2, "--cluster-port", "0", "--cluster-anti-entropy-interval-ms", "200")
    a, b = nodes

    def old_build(link, f):
        raise m.MessageError("unknown frame type %r" % f[0])
    b.server.replication.antientropy.on_aed = old_build

    _plant_hidden(b)
    ra = client(a)
    wait_for(lambda: ra.get("hidden:49") == b"v", 15, "range rounds to repair a")
    rounds = repl_info(a)["repl_anti_entropy_range_rounds"]
    wait_for(lambda: repl_info(a)["repl_anti_entropy_range_rounds"] >= rounds + 3, 10, "three more rounds")
    ia = repl_info(a)
    assert ia["repl_anti_entropy_ledger_refused"] == 1       # one link drop, then no more AED
    assert client(b).dbsize() == ra.dbsize() == 50
