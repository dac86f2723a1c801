"""Multi-node clusters of in-process nodes on 127.0.0.1: replication, WAIT,
INFO, convergence, lifetimes, enclaves, authentication, receiver refusals,
catch-up on join.  (Faults: test_cluster_faults.py.)"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from clusterkit import FAST, client, peers, repl_info, seed_of, start_mesh, wait_for, wait_mesh
from repram_resp.clock import wall_ms
from repram_resp.cluster import ClusterRefused
from repram_resp.cluster import messages as m


def test_write_reaches_every_node_and_wait_counts_acks(make_server):
    nodes = start_mesh(make_server, 3)
    r1, r2, r3 = (client(n) for n in nodes)
    value = b"\x00\r\nbinary\xff" * 1000
    assert r1.set("greeting", value, ex=60)
    assert r1.wait(2, 2000) == 2
    assert r2.get("greeting") == value and r3.get("greeting") == value
    # Every writing command replicates, from any node.
    r2.mset({"m1": "a", "m2": "b"})
    r3.psetex("p", 5000, "v")
    assert r3.setnx("nx", "1")
    r2.set("k", "v", ex=30, nx=True)
    big = b"x" * (3 * 1024 * 1024)
    r1.set("big", big, ex=60)
    assert r2.wait(2, 2000) == 2 and r3.wait(2, 2000) == 2 and r1.wait(2, 2000) == 2
    for r in (r1, r2, r3):
        assert r.mget("m1", "m2", "p", "nx", "k") == [b"a", b"b", b"v", b"1", b"v"]
        assert r.get("big") == big
        assert r.dbsize() == 7
    info = repl_info(nodes[0])
    assert info["role"] == "master" and info["connected_slaves"] == 2
    assert (info["enclave_size"], info["replication_factor"], info["quorum"]) == (3, 3, 2)
    ps = peers(nodes[0])
    assert set(ps) == {"n2", "n3"}
    for p in ps.values():
        assert p["state"] == "up" and p["enclave"] == "default" and p["behind"] == 0
        assert p["acked"] == info["master_repl_offset"] and p["addr"].startswith("127.0.0.1:")


def test_wait_arguments_and_semantics(make_server):
    nodes = start_mesh(make_server, 2)
    r = client(nodes[0])
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("WAIT", "x", "0")
    with pytest.raises(redis.ResponseError, match="^timeout is not an integer or out of range$"):
        r.execute_command("WAIT", "1", "1.5")
    with pytest.raises(redis.ResponseError, match="^timeout is negative$"):
        r.execute_command("WAIT", "1", "-1")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("WAIT", "1")
    assert r.wait(0, 0) == 1          # no writes yet: every live peer counts
    r.set("a", "1", ex=10)
    assert r.wait(1, 0) == 1          # timeout 0 = forever, returns once reached
    t = time.monotonic()
    assert r.wait(5, 150) == 1        # timeout: the count reached
    assert time.monotonic() - t >= 0.14
    # Inside MULTI it never blocks.
    p = r.pipeline(transaction=True)
    p.set("b", "2", ex=10)
    p.execute_command("WAIT", 5, 0)
    t = time.monotonic()
    assert p.execute()[1] in (0, 1)
    assert time.monotonic() - t < 1
    # Pipelined behind other commands, and the connection keeps serving.
    p = r.pipeline(transaction=False)
    p.set("c", "3", ex=10)
    p.execute_command("WAIT", 1, 1000)
    p.get("c")
    assert p.execute() == [True, 1, b"3"]


def test_wait_on_a_single_node(make_server):
    s = make_server(*FAST)
    r = client(s)
    assert r.wait(0, 0) == 0
    t = time.monotonic()
    assert r.wait(1, 100) == 0
    assert time.monotonic() - t >= 0.09
    info = r.info("replication")
    assert (info["enclave_size"], info["quorum"], info["peers"], info["connected_slaves"]) == (1, 1, 0, 0)
    assert s.server.write_hooks is False       # a single node's SET path pays nothing


def test_concurrent_conflicting_writes_converge(make_server):
    nodes = start_mesh(make_server, 3)
    keys = ["c%d" % i for i in range(20)]

    def writer(node, tag):
        r = client(node)
        for rnd in range(30):
            p = r.pipeline(transaction=False)
            for k in keys:
                p.set(k, "%s-%d" % (tag, rnd), ex=60)
            p.execute()
    threads = [threading.Thread(target=writer, args=(n, "n%d" % i)) for i, n in enumerate(nodes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clients = [client(n) for n in nodes]

    def converged():
        vals = [c.mget(keys) for c in clients]
        return vals[0] == vals[1] == vals[2] and None not in vals[0]
    wait_for(converged, 10, "the three nodes to agree on every key")


def test_replica_lifetime_never_exceeds_the_origin(make_server):
    nodes = start_mesh(make_server, 3)
    r1, r2, r3 = (client(n) for n in nodes)
    for i in range(20):
        r1.set("life%d" % i, "v", px=5000 + i)
    assert r1.wait(2, 2000) == 2
    for i in range(20):
        origin = r1.pexpiretime("life%d" % i)
        for r in (r2, r3):
            replica = r.pexpiretime("life%d" % i)
            assert origin - 20 <= replica <= origin
    # A short TTL expires everywhere, replicas first.
    r2.set("short", "v", px=1200)
    assert r2.wait(2, 2000) == 2
    wait_for(lambda: r2.get("short") is None, 5, "origin expiry")
    assert r1.get("short") is None and r3.get("short") is None


def test_replica_deadline_follows_a_skewed_clock(make_server):
    allow = ["--cluster-max-clock-skew-ms", "10000"]
    a = make_server(*FAST, "--node-id", "a", *allow)
    b = make_server(*FAST, "--node-id", "b", "--peers", seed_of(a), *allow,
                    clock=lambda: wall_ms() + 5000)
    wait_mesh([a, b])
    ra, rb = client(a), client(b)
    ra.set("k", "v", px=60_000)
    assert ra.wait(1, 2000) == 1
    da, db = ra.pexpiretime("k"), rb.pexpiretime("k")
    # b's clock is 5 s ahead: the same instant is 5 s later on b's clock.
    assert da + 5000 - 30 <= db <= da + 5000
    ps = peers(a)
    assert -5050 < float(ps["b"]["clock_offset_ms"]) < -4950 or 4950 < float(ps["b"]["clock_offset_ms"]) < 5050
    # And back: b's write lands on a 5 s earlier in a's clock.
    rb.set("k2", "v", px=60_000)
    assert rb.wait(1, 2000) == 1
    assert rb.pexpiretime("k2") - 5000 - 30 <= ra.pexpiretime("k2") <= rb.pexpiretime("k2") - 5000


def test_a_peer_beyond_the_clock_skew_bound_is_refused_and_shown(make_server):
    a = make_server(*FAST, "--node-id", "a")          # cluster-max-clock-skew-ms 1000
    b = make_server(*FAST, "--node-id", "b", "--peers", seed_of(a), clock=lambda: wall_ms() + 5000)
    ra, rb = client(a), client(b)
    wait_for(lambda: repl_info(a)["cluster_clock_skew_refusals"] >= 1
             and repl_info(b)["cluster_clock_skew_refusals"] >= 1, 10, "both sides to refuse")
    info = repl_info(b)
    assert info["cluster_clock_skew_last_refused"].startswith("a@")
    assert info["cluster_max_clock_skew_ms"] == 1000
    # Nothing crosses: b's writes, stamped 5 s in the future, never win on a.
    ra.set("k", "from-a", px=60_000)
    rb.set("k", "from-b", px=60_000)
    assert rb.wait(1, 300) == 0
    assert ra.get("k") == b"from-a" and rb.get("k") == b"from-b"
    # Raising the bound at runtime lets the link up.
    for r in (ra, rb):
        r.config_set("cluster-max-clock-skew-ms", "10000")
    wait_mesh([a, b])
    wait_for(lambda: ra.get("k") == rb.get("k") == b"from-b", 10, "the later write everywhere")


def test_transitive_discovery(make_server):
    a = make_server(*FAST, "--node-id", "a")
    b = make_server(*FAST, "--node-id", "b", "--peers", seed_of(a))
    c = make_server(*FAST, "--node-id", "c", "--peers", seed_of(b))
    d = make_server(*FAST, "--node-id", "d", "--peers", seed_of(c))
    wait_mesh([a, b, c, d])
    client(d).set("from-d", "1", ex=30)
    assert client(d).wait(3, 2000) == 3
    assert client(a).get("from-d") == b"1"


def test_enclaves_share_topology_but_not_data(make_server):
    a1 = make_server(*FAST, "--node-id", "a1", "--enclave", "a")
    a2 = make_server(*FAST, "--node-id", "a2", "--enclave", "a", "--peers", seed_of(a1))
    b1 = make_server(*FAST, "--node-id", "b1", "--enclave", "b", "--peers", seed_of(a2))
    nodes = [a1, a2, b1]
    for n in nodes:
        wait_for(lambda n=n: len(peers(n)) == 2 and all(p["state"] == "up" for p in peers(n).values()),
                 10, "shared topology")
    assert {p["enclave"] for p in peers(b1).values()} == {"a"}
    ra1, ra2, rb1 = (client(n) for n in nodes)
    ra1.set("secret-a", "1", ex=30)
    rb1.set("secret-b", "1", ex=30)
    assert ra1.wait(1, 2000) == 1 and rb1.wait(1, 200) == 0
    assert ra2.get("secret-a") == b"1"
    time.sleep(0.2)   # let anything that would wrongly flow arrive
    assert rb1.get("secret-a") is None and ra1.get("secret-b") is None and ra2.get("secret-b") is None
    assert repl_info(a1)["enclave_size"] == 2 and repl_info(b1)["enclave_size"] == 1


def raw_peer(target_port: int, enclave: str, node_id: str = "intruder"):
    """A hand-made peer: handshake (no secret), returns the socket and reader."""
    s = socket.create_connection(("127.0.0.1", target_port), timeout=5)
    reader = m.FrameReader(1 << 24)
    node = m.NodeInfo(node_id, "run-x", enclave, "127.0.0.1", 1, 1)
    s.sendall(m.encode_hello(m.Hello(m.PROTO_VERSION, node, 1 << 20, b"n" * 16, 1)))
    frames = []

    def next_frame():
        while not frames:
            data = s.recv(65536)
            if not data:
                raise EOFError
            frames.extend(reader.feed(data))
        return frames.pop(0)
    w = m.decode_welcome(next_frame())
    now_us = time.time_ns() // 1000       # a sane clock: peers beyond the skew bound are refused
    s.sendall(m.encode_auth(m.Auth(b"", w.t3, now_us, now_us)))
    while True:
        f = next_frame()
        if f[0] == m.READY:
            return s, next_frame


def test_receiver_refuses_data_from_another_enclave(make_server):
    a = make_server(*FAST, "--node-id", "a", "--enclave", "a")
    s, next_frame = raw_peer(a.server.replication.cport, "b")
    now = wall_ms()
    s.sendall(m.encode_batch(b"intruder", 1, now, [(b"injected", b"v", now + 10_000, 1 << 40)]))
    seen = []
    while not (seen and seen[-1][0] == m.ACK):
        seen.append(next_frame())
    assert [f[:3] for f in seen if f[0] == m.REJ] == [[m.REJ, 1, m.R_ENCLAVE]]
    assert client(a).get("injected") is None
    assert repl_info(a)["repl_refused_received_enclave"] == 1
    # Floors do not cross enclaves either.
    client(a).set("mine", "1", ex=60)
    s.sendall(m.encode_floors([(b"mine", (now + 5000) << 16)]) + m.frame(m.PING, 7))
    while next_frame()[0] != m.PONG:
        pass
    assert client(a).get("mine") == b"1"
    # An anti-entropy request on the link where we are the receiver is a protocol error.
    s.sendall(m.encode_ae(1, True, 0, [(b"", None, b"x" * 16)]))
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            next_frame()
    s.close()


def test_cluster_port_survives_garbage_and_refuses_old_protocols(make_server):
    a = make_server(*FAST)
    port = a.server.replication.cport
    for junk in (b"GET x\r\n", b"*1\r\n$4\r\nPING\r\n", b"\x16\x03\x01" + b"\x00" * 100,
                 m.frame(m.BATCH, b"x", 1, 1), m.frame(m.HELLO, 1, b"short")):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(junk)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        s.close()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(m.frame(m.HELLO, 99, b"future"))
    [f] = m.FrameReader(1 << 20).feed(s.recv(4096))
    assert f[0] == m.ERR and b"unsupported protocol version 99" in f[1]
    s.close()
    assert client(a).ping()
    assert repl_info(a)["cluster_protocol_errors"] >= 3


def test_wrong_or_missing_secret_is_refused(make_server):
    a = make_server(*FAST, "--node-id", "a", "--cluster-secret", "right")
    wrong = make_server(*FAST, "--node-id", "wrong", "--cluster-secret", "wrong", "--peers", seed_of(a))
    none = make_server(*FAST, "--node-id", "none", "--peers", seed_of(a))
    good = make_server(*FAST, "--node-id", "good", "--cluster-secret", "right", "--peers", seed_of(a))
    wait_mesh([a, good])
    wait_for(lambda: repl_info(a)["cluster_auth_failures"] >= 2, 10, "refusals on a")
    assert set(peers(a)) == {"good"} and set(peers(good)) == {"a"}
    assert peers(wrong) == {} and peers(none) == {}
    assert repl_info(a)["cluster_auth"] == 1
    client(wrong).set("w", "1", ex=10)
    client(a).set("x", "1", ex=10)
    assert client(a).wait(1, 2000) == 1
    assert client(good).get("x") == b"1" and client(a).get("w") is None


def test_a_replayed_handshake_is_refused(make_server):
    """Record a legitimate dialer's HELLO+AUTH, replay them: the acceptor's
    fresh nonce makes the recorded proof worthless."""
    from repram_resp.cluster import auth
    a = make_server(*FAST, "--node-id", "a", "--cluster-secret", "s3")
    port = a.server.replication.cport
    node = m.NodeInfo("rec", "run", "default", "127.0.0.1", 1, 1)
    nonce = b"d" * 16
    hello = m.encode_hello(m.Hello(m.PROTO_VERSION, node, 1 << 20, nonce, 1))

    def connect():
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(hello)
        [f] = m.FrameReader(1 << 20).feed(s.recv(65536))
        return s, m.decode_welcome(f)
    s, w = connect()
    proof = auth.proof("s3", "dialer", nonce, w.nonce, "rec", "a", "default", "default")
    now_us = time.time_ns() // 1000
    recorded_auth = m.encode_auth(m.Auth(proof, w.t3, now_us, now_us))
    s.sendall(recorded_auth)
    assert m.FrameReader(1 << 20).feed(s.recv(65536))[0][0] == m.READY
    s.close()
    s, w2 = connect()
    assert w2.nonce != w.nonce
    s.sendall(recorded_auth)
    frames = m.FrameReader(1 << 20).feed(s.recv(65536))
    assert frames[0][0] == m.ERR and frames[0][1] == b"authentication failed"
    s.close()


def test_full_store_refuses_without_crashing_and_the_sender_reports_it(make_server):
    a = make_server(*FAST, "--node-id", "a")
    small = make_server(*FAST, "--node-id", "small", "--maxmemory", "200kb", "--peers", seed_of(a))
    wait_mesh([a, small])
    ra, rs = client(a), client(small)
    p = ra.pipeline(transaction=False)
    for i in range(500):
        p.set("fill:%d" % i, "x" * 1000, ex=60)
    p.execute()
    assert ra.dbsize() == 500
    assert ra.wait(1, 500) == 0           # the peer refused some of this connection's writes
    wait_for(lambda: repl_info(a)["repl_refused_by_peers_oom"] > 0, 5, "refusals reported to a")
    info_a = repl_info(a)
    assert peers(a)["small"]["refused"] == info_a["repl_refused_by_peers_oom"]
    info_s = repl_info(small)
    assert info_s["repl_refused_received_oom"] == info_a["repl_refused_by_peers_oom"]
    assert 0 < rs.dbsize() < 500 and rs.ping()
    assert peers(a)["small"]["state"] == "up"
    # A fresh connection whose writes fit is confirmed again.
    rs.config_set("maxmemory", "0")
    ra2 = client(a)
    ra2.set("after", "1", ex=60)
    assert ra2.wait(1, 2000) == 1


def test_value_over_a_peers_bulk_limit_is_not_sent_and_is_counted(make_server):
    a = make_server(*FAST, "--node-id", "a")
    b = make_server(*FAST, "--node-id", "b", "--proto-max-bulk-len", "1mb", "--peers", seed_of(a))
    wait_mesh([a, b])
    ra, rb = client(a), client(b)
    ra.set("huge", b"h" * (2 * 1024 * 1024), ex=60)
    ra.set("fine", "1", ex=60)
    assert ra.wait(1, 300) == 0
    wait_for(lambda: rb.get("fine") == b"1", 5, "the small write")
    assert rb.get("huge") is None
    assert repl_info(a)["repl_refused_by_peers_size"] == 1


def test_min_replicas_to_write(make_server):
    a = make_server(*FAST, "--node-id", "a", "--min-replicas-to-write", "1")
    ra = client(a)
    wait_for(lambda: a.server.write_refusal is not None, 5, "refusal")
    with pytest.raises(redis.ResponseError, match="^NOREPLICAS Not enough good replicas to write.$"):
        ra.set("k", "v", ex=10)
    assert ra.get("k") is None                            # reads keep working
    b = make_server(*FAST, "--node-id", "b", "--peers", seed_of(a))
    wait_mesh([a, b])
    wait_for(lambda: a.server.write_refusal is None, 5, "writes accepted")
    assert ra.set("k", "v", ex=10)
    ra.config_set("min-replicas-to-write", "2")
    with pytest.raises(redis.ResponseError, match="^NOREPLICAS"):
        ra.set("k", "v", ex=10)
    ra.config_set("min-replicas-to-write", "0")
    assert ra.set("k", "v2", ex=10)


def test_peer_channel_is_not_subject_to_client_limits(make_server):
    limits = ["--maxclients", "1", "--requirepass", "pw", "--cluster-secret", "s", "--timeout", "1"]
    nodes = start_mesh(make_server, 3, *limits)
    r = client(nodes[0], password="pw")
    r.set("k", "v", ex=30)
    assert r.wait(2, 2000) == 2
    r.close()
    time.sleep(1.5)                                        # past the client idle timeout
    r = client(nodes[1], password="pw")
    r.set("k2", "v", ex=30)
    assert r.wait(2, 2000) == 2
    r.close()
    assert client(nodes[2], password="pw").get("k") == b"v"


def test_catch_up_on_join_while_writes_flow(make_server):
    a = make_server(*FAST, "--node-id", "a")
    ra = client(a)
    for chunk in range(5):
        p = ra.pipeline(transaction=False)
        for i in range(2000):
            p.set("old:%d:%d" % (chunk, i), "v%d" % i, ex=300)
        p.execute()
    stop = threading.Event()

    def keep_writing():
        r = client(a)
        i = 0
        while not stop.is_set():
            r.set("new:%d" % i, "n", ex=300)
            i += 1
    t = threading.Thread(target=keep_writing)
    t.start()
    try:
        b = make_server(*FAST, "--node-id", "b", "--peers", seed_of(a))
        wait_mesh([a, b])
    finally:
        stop.set()
        t.join()
    rb = client(b)
    wait_for(lambda: rb.dbsize() == ra.dbsize(), 10, "b to hold every key")
    assert rb.get("old:3:1234") == b"v1234"
    assert abs(rb.pttl("old:4:1") - ra.pttl("old:4:1")) < 100
    assert repl_info(b)["catchup"] == "done"


def test_keyspace_notifications_fire_for_replicated_writes(make_server):
    nodes = start_mesh(make_server, 2)
    rb = client(nodes[1])
    rb.config_set("notify-keyspace-events", "E$")
    ps = rb.pubsub()
    ps.subscribe("__keyevent@0__:set")
    wait_for(lambda: ps.get_message(timeout=0.1), 5, "subscribe confirmation")
    client(nodes[0]).set("notified", "1", ex=10)
    msg = wait_for(lambda: ps.get_message(timeout=0.1), 5, "the set event")
    assert msg["data"] == b"notified"
    ps.close()


def test_non_loopback_cluster_port_needs_a_secret(make_server):
    with pytest.raises(ClusterRefused, match="cluster-secret"):
        make_server("--bind", "0.0.0.0", "--port", "0", "--cluster-enabled", "yes")
    make_server("--bind", "0.0.0.0", "--port", "0", "--cluster-enabled", "yes",
                "--cluster-trusted-network", "yes")
    make_server("--bind", "0.0.0.0", "--port", "0", "--cluster-enabled", "yes", "--cluster-secret", "s")
    # A single node opens no cluster port, so nothing to protect (issue 7);
    # protected mode (no requirepass) keeps non-loopback clients out.
    assert make_server("--bind", "0.0.0.0", "--port", "0").server.replication is None


def test_graceful_leave_and_rejoin_at_a_new_address(make_server):
    a, b, c = start_mesh(make_server, 3)
    ra = client(a)
    c.stop()                                   # SHUTDOWN/SIGTERM path: BYE to every peer
    t = time.monotonic()
    wait_for(lambda: peers(a)["n3"]["state"] == "down", 2, "n3 down after its BYE")
    assert time.monotonic() - t < 1.5                 # BYE: no timeout to wait for
    assert ra.wait(2, 100) == 1
    ra.set("while-away", "1", ex=60)
    # Same node id, new process, new ports, seeded with a only.
    c2 = make_server(*FAST, "--node-id", "n3", "--peers", seed_of(a))
    wait_mesh([a, b, c2])
    assert peers(b)["n3"]["addr"] == "127.0.0.1:%d" % c2.server.replication.cport
    assert peers(a)["n3"]["restarts"] == 1
    wait_for(lambda: client(c2).get("while-away") == b"1", 5, "catch-up")
    client(c2).set("back", "1", ex=60)
    assert client(c2).wait(2, 2000) == 2


def test_protocol_doc_covers_every_frame_and_directive():
    from pathlib import Path
    from repram_resp.config import DIRECTIVES
    text = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()
    frames = [v for k, v in vars(m).items() if k.isupper() and isinstance(v, bytes) and k not in
              ("R_ENCLAVE", "R_TTL", "R_SIZE", "R_OOM")]
    for f in frames:
        assert "`%s`" % f.decode() in text or f.decode() in text.split(), f
    for d in DIRECTIVES:
        if d.name.startswith("cluster-"):
            assert "`%s`" % d.name in text, d.name
