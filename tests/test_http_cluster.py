"""The HTTP API on a 3-node cluster: a write over HTTP is replicated and read
back over RESP and HTTP on the other nodes (with the same metadata headers
everywhere), a RESP write is read over HTTP elsewhere, and PUT answers 201
while the REPRAM quorum (2 of 3) acknowledges within http-quorum-timeout-ms,
202 when a fault proxy partitions the writer from both peers."""

from __future__ import annotations

import json
import time


from clusterkit import client, proxied_cluster, wait_for, wait_mesh
from httpkit import req


def test_http_and_resp_across_a_cluster_201_vs_202(make_server, proxies):
    # Slow failure detection (4 s / 5 s), so partitioned peers still count
    # in the quorum while the 300 ms quorum timeout runs out.
    (a, b, c), (pa, pb, pc), (ha, hb, hc) = proxied_cluster(
        make_server, proxies, 3, "--http-port", "-1", "--http-quorum-timeout-ms", "300",
        "--cluster-suspect-after-ms", "4000", "--cluster-down-after-ms", "5000")
    ports = {n: n.server.http.port for n in (a, b, c)}

    def http(node, host, *args, **kw):
        return req(ports[node], *args, host=host, **kw)

    st, h, body = http(a, ha, "PUT", "/v1/data/cl:from-http", body=b"hello", headers={"X-TTL": "600"})
    assert (st, body) == (201, b"OK\n")
    rc = client(c, hc)
    wait_for(lambda: rc.get("cl:from-http") == b"hello", 5, "the write to reach c")
    ha_meta = http(a, ha, "GET", "/v1/data/cl:from-http")[1]
    hb_st, hb_meta, hb_body = http(b, hb, "GET", "/v1/data/cl:from-http")
    assert hb_st == 200 and hb_body == b"hello"
    for k in ("x-created-at", "x-original-ttl"):
        assert ha_meta[k] == hb_meta[k]               # the same on every replica
    rb = client(b, hb)
    rb.set("cl:from-resp", "r", ex=900)
    wait_for(lambda: http(c, hc, "GET", "/v1/data/cl:from-resp")[0] == 200, 5, "b's write on c")
    assert http(c, hc, "GET", "/v1/data/cl:from-resp")[1]["x-original-ttl"] == "900"
    assert http(a, ha, "GET", "/v1/keys?prefix=cl:")[2] == b'{"keys":["cl:from-http","cl:from-resp"]}'
    topo = json.loads(http(a, ha, "GET", "/v1/topology")[2])
    assert topo["node_id"] == "n1" and [(p["id"], p["state"]) for p in topo["peers"]] == [
        ("n2", "up"), ("n3", "up")]
    # Each peer's HTTP port, carried in the cluster handshake.
    for node, host in ((a, ha), (b, hb), (c, hc)):
        peers = json.loads(http(node, host, "GET", "/v1/topology")[2])["peers"]
        assert sorted(p["http_port"] for p in peers) == sorted(
            ports[n] for n in (a, b, c) if n is not node)
    assert {p["id"]: p["http_port"] for p in json.loads(http(a, ha, "GET", "/v1/status")[2])["peers"]} \
        == {"n2": ports[b], "n3": ports[c]}
    metrics = http(a, ha, "GET", "/v1/metrics")[2].decode()
    assert 'repram_peer_up{peer="n2",enclave="default"} 1' in metrics
    assert "repram_enclave_size 3" in metrics and "repram_quorum 2" in metrics

    # One peer cut off: b still acknowledges, 2 of 3 is the quorum -> 201.
    pa.partition({hc})
    pc.partition({ha})
    t0 = time.monotonic()
    assert http(a, ha, "PUT", "/v1/data/cl:one-cut", body=b"1")[0] == 201
    assert time.monotonic() - t0 < 0.3
    # Both peers cut off: stored locally, the quorum is not reached in time -> 202.
    pa.partition({hb, hc})
    pb.partition({ha})
    t0 = time.monotonic()
    st, _, body = http(a, ha, "PUT", "/v1/data/cl:both-cut", body=b"2")
    waited = time.monotonic() - t0
    assert (st, body) == (202, b"Accepted (quorum pending)\n")
    assert 0.25 <= waited < 2
    assert http(a, ha, "GET", "/v1/data/cl:both-cut")[2] == b"2"
    status = http(a, ha, "GET", "/v1/status")[2]
    assert b'"quorum": 2' in status and b'"enclave_size": 3' in status
    for p in (pa, pb, pc):
        p.heal()
    wait_mesh([a, b, c], timeout=15)
    assert http(a, ha, "PUT", "/v1/data/cl:healed", body=b"3")[0] == 201
    wait_for(lambda: rb.get("cl:both-cut") == b"2", 10, "the 202 write to reach b after healing")
    rb.close()
    rc.close()
