"""Clusters under faults: partitions, black holes, delay and a stalled peer
injected by tests/faultproxy.py between in-process nodes, and SIGKILL of
subprocess nodes.  Every wait is a poll with a deadline."""

from __future__ import annotations

import re
import signal
import time


from clusterkit import FAST, client, mesh_state, peers, proxied_cluster, repl_info, wait_for, wait_mesh


def state_of(node, host, peer_id):
    p = peers(node, host).get(peer_id)
    return p and p["state"]


def test_partition_both_sides_serve_then_heal_and_converge(make_server, proxies):
    (a, b, c), (pa, pb, pc), (ha, hb, hc) = proxied_cluster(make_server, proxies, 3)
    ra, rb, rc = client(a, ha), client(b, hb), client(c, hc)
    ra.set("before", "1", ex=60)
    assert ra.wait(2, 2000) == 2
    # {a} | {b, c}
    pa.partition({hb, hc})
    pb.partition({ha})
    pc.partition({ha})
    t0 = time.monotonic()
    ra.set("side-a", "a", ex=60)
    ra.set("conflict", "from-a", ex=60)
    rb.set("side-b", "b", ex=60)
    rc.set("conflict", "from-c", ex=60)
    assert rb.wait(1, 2000) == 1                      # c still acknowledges b
    wait_for(lambda: state_of(a, ha, "n2") == "down" and state_of(a, ha, "n3") == "down",
             5, "a to see the other side down")
    wait_for(lambda: state_of(b, hb, "n1") == "down", 5, "b to see a down")
    assert time.monotonic() - t0 < 5
    assert ra.wait(1, 100) == 0
    assert rb.get("side-a") is None and ra.get("side-b") is None
    assert repl_info(b, hb)["enclave_size"] == 2 and repl_info(a, ha)["enclave_size"] == 1
    for p in (pa, pb, pc):
        p.heal()
    wait_mesh([a, b, c])
    rs = (ra, rb, rc)
    wait_for(lambda: all(r.mget("before", "side-a", "side-b") == [b"1", b"a", b"b"] for r in rs),
             10, "every write on every node")
    wait_for(lambda: len({r.get("conflict") for r in rs}) == 1, 10, "the conflict to resolve")


def test_black_holed_peer_goes_down_and_rejoins(make_server, proxies):
    (a, b), (pa, pb), (ha, hb) = proxied_cluster(make_server, proxies, 2)
    ra, rb = client(a, ha), client(b, hb)
    pa.partition()
    pb.partition()
    t0 = time.monotonic()
    wait_for(lambda: state_of(a, ha, "n2") == "suspect", 5, "suspect")
    wait_for(lambda: state_of(a, ha, "n2") == "down", 5, "down")
    detected = time.monotonic() - t0
    assert 0.3 < detected < 4                         # down-after 800 ms
    # Writes never wait for the dead peer.
    t = time.monotonic()
    p = ra.pipeline(transaction=False)
    for i in range(1000):
        p.set("during:%d" % i, i, ex=60)
    p.execute()
    assert time.monotonic() - t < 2
    pa.heal()
    pb.heal()
    wait_mesh([a, b])
    wait_for(lambda: rb.dbsize() == 1000, 10, "catch-up of the writes made while apart")
    assert rb.get("during:999") == b"999"


def test_one_way_failure_closes_the_silent_link(make_server, proxies):
    (a, b), (pa, pb), (ha, hb) = proxied_cluster(make_server, proxies, 2)
    ra, rb = client(a, ha), client(b, hb)
    pb.partition()                                    # a -> b dead; b -> a fine
    ra.set("k", "1", ex=60)
    assert ra.wait(1, 300) == 0
    wait_for(lambda: peers(a, ha)["n2"]["link_out"] != "streaming", 5, "a to drop its dead link")
    pb.heal()
    wait_mesh([a, b])
    wait_for(lambda: rb.get("k") == b"1", 5, "k on b")


def test_delay_slows_acks_not_writes_and_lifetimes_stay_bounded(make_server, proxies):
    (a, b), (pa, pb), (ha, hb) = proxied_cluster(make_server, proxies, 2)
    ra, rb = client(a, ha), client(b, hb)
    pb.delay(100)                                     # a's stream to b and b's acks: +100 ms each way
    time.sleep(0.5)                                   # let the clock filter see delayed samples too
    t = time.monotonic()
    assert ra.set("slow", "1", px=60_000)
    write_s = time.monotonic() - t
    assert ra.wait(1, 5000) == 1
    waited = time.monotonic() - t
    assert write_s < 0.15 and waited >= 0.19          # the write never waited for b
    origin, replica = ra.pexpiretime("slow"), rb.pexpiretime("slow")
    assert origin - 300 <= replica <= origin
    assert float(peers(a, ha)["n2"]["rtt_ms"]) >= 0


def test_a_stalled_peer_is_dropped_without_slowing_clients_and_resyncs(make_server, proxies):
    # Slow failure detection on a, so that only the queue limit can drop b.
    slow_fd = ["--cluster-suspect-after-ms", "5000", "--cluster-down-after-ms", "10000"]
    (a, b, c), (pa, pb, pc), (ha, hb, hc) = proxied_cluster(
        make_server, proxies, 3, per_node=lambda i: (["--cluster-peer-queue-limit", "256kb"] + slow_fd)
        if i == 0 else [])
    ra, rb, rc = client(a, ha), client(b, hb), client(c, hc)
    pb.stall()                                        # b stops reading its inbound links
    value = b"v" * 50_000
    t = time.monotonic()
    for batch in range(8):
        p = ra.pipeline(transaction=False)
        for i in range(100):
            p.set("bulk:%d:%d" % (batch, i), value, ex=120)
        p.execute()
    assert time.monotonic() - t < 10
    wait_for(lambda: repl_info(a, ha)["repl_queue_drops"] >= 1, 10, "b dropped from streaming")
    assert peers(a, ha)["n2"]["drops"] >= 1
    # The other peer was not held back.
    assert ra.wait(1, 5000) >= 1
    wait_for(lambda: rc.dbsize() == 800, 10, "c to have everything")
    pb.heal()
    wait_for(lambda: mesh_state(a) == (2, 2), 10, "b back in the stream")
    wait_for(lambda: rb.dbsize() == 800, 15, "b resynchronised")
    assert rb.get("bulk:7:99") == value


# --- subprocess nodes, SIGKILL ------------------------------------------------------

CPORT_RE = re.compile(rb"cluster port (\d+)")


def cluster_port(node) -> int:
    return int(CPORT_RE.search(node.log).group(1))


def sub_peers(node) -> dict:
    info = node.client().info("replication")
    return {v["id"]: v for k, v in info.items() if k.startswith("peer") and isinstance(v, dict)}


def test_killed_node_is_detected_and_catches_up_after_restart(node_proc):
    n1 = node_proc(*FAST, "--node-id", "n1")
    seed = "127.0.0.1:%d" % cluster_port(n1)
    assert n1.port and cluster_port(n1) not in (0, n1.port + 10000)   # port 0: OS-chosen, logged
    n2 = node_proc(*FAST, "--node-id", "n2", "--peers", seed)
    n3 = node_proc(*FAST, "--node-id", "n3", "--peers", seed)
    cp3, port3 = cluster_port(n3), n3.port
    for n in (n1, n2, n3):
        wait_for(lambda n=n: [p["state"] for p in sub_peers(n).values()] == ["up", "up"], 10, "mesh")
    r1 = n1.client()
    r1.set("early", "1", ex=60)
    assert r1.wait(2, 2000) == 2
    n3.stop(signal.SIGKILL)
    t0 = time.monotonic()
    wait_for(lambda: sub_peers(n1)["n3"]["state"] == "down", 5, "n3 down on n1")
    assert time.monotonic() - t0 < 3.0                # its redial is refused at once
    assert r1.wait(2, 200) == 1                       # only the live peer counts
    p = r1.pipeline(transaction=False)
    for i in range(3000):
        p.set("while-down:%d" % i, "v%d" % i, ex=60)
    p.execute()
    n3b = node_proc(*FAST, "--node-id", "n3", "--peers", seed, "--cluster-port", str(cp3),
                    "--port", str(port3))
    r3 = n3b.client()
    wait_for(lambda: r3.dbsize() == r1.dbsize() == 3001, 10, "the restarted node to catch up")
    assert r3.get("while-down:2999") == b"v2999" and r3.get("early") == b"1"
    wait_for(lambda: sub_peers(n1)["n3"]["state"] == "up", 5, "n3 up again")
    assert sub_peers(n1)["n3"]["restarts"] == 1
    r3.set("after", "1", ex=60)
    assert r3.wait(2, 2000) == 2


def test_restart_without_a_fixed_node_id_replaces_the_old_id(node_proc):
    n1 = node_proc(*FAST, "--node-id", "n1")
    seed = "127.0.0.1:%d" % cluster_port(n1)
    anon = node_proc(*FAST, "--peers", seed)          # random node id
    cport, port = cluster_port(anon), anon.port
    wait_for(lambda: [p["state"] for p in sub_peers(n1).values()] == ["up"], 10, "link")
    old_id = next(iter(sub_peers(n1)))
    anon.stop(signal.SIGKILL)
    wait_for(lambda: sub_peers(n1)[old_id]["state"] == "down", 5, "down")
    again = node_proc(*FAST, "--peers", seed, "--cluster-port", str(cport), "--port", str(port))
    wait_for(lambda: len(sub_peers(n1)) == 1 and old_id not in sub_peers(n1)
             and next(iter(sub_peers(n1).values()))["state"] == "up", 10, "the old id forgotten")
    assert again.client().ping()


def test_deadlines_converted_with_a_slow_first_sample_are_corrected_later(make_server, proxies):
    (a, b), (pa, pb), (ha, hb) = proxied_cluster(make_server, proxies, 2)
    ra, rb = client(a, ha), client(b, hb)
    pb.delay(150)                                     # a -> b path slow ...
    pb.cut()                                          # ... from a fresh link's first sample on
    wait_mesh([a, b])
    ra.set("k", "1", px=60_000)
    assert ra.wait(1, 5000) == 1
    origin = ra.pexpiretime("k")
    assert rb.pexpiretime("k") <= origin - 100        # converted with a ~300 ms round trip
    pb.delay(0)                                       # better samples arrive with the next PONGs
    wait_for(lambda: origin - 10 <= rb.pexpiretime("k") <= origin, 5, "the deadline re-corrected")
    assert repl_info(b, hb)["repl_deadlines_recorrected"] >= 1
