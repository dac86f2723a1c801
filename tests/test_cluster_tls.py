"""Peer links over TLS (tls-cluster), with a self-signed certificate made by
the openssl CLI for the test; and the cluster port's address rules."""

from __future__ import annotations

import socket
import subprocess

import pytest

from clusterkit import FAST, client, peers, repl_info, seed_of, wait_for, wait_mesh
from repram_resp.cluster import ClusterRefused

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-days", "2", "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True)
    return str(crt), str(key)


def tls_args(cert, ca=True):
    crt, key = cert
    args = ["--tls-cluster", "yes", "--tls-cert-file", crt, "--tls-key-file", key]
    return args + (["--tls-ca-cert-file", crt] if ca else [])


def test_replication_over_tls(make_server, cert):
    a = make_server(*FAST, "--node-id", "a", *tls_args(cert), "--cluster-secret", "s")
    b = make_server(*FAST, "--node-id", "b", *tls_args(cert), "--cluster-secret", "s",
                    "--peers", seed_of(a))
    wait_mesh([a, b])
    ra, rb = client(a), client(b)
    ra.set("over-tls", b"\x00" * 100_000, ex=30)
    assert ra.wait(1, 2000) == 1
    assert rb.get("over-tls") == b"\x00" * 100_000
    assert repl_info(a)["cluster_tls"] == 1


def test_tls_without_a_ca_still_encrypts(make_server, cert):
    a = make_server(*FAST, "--node-id", "a", *tls_args(cert, ca=False))
    b = make_server(*FAST, "--node-id", "b", *tls_args(cert, ca=False), "--peers", seed_of(a))
    wait_mesh([a, b])


def test_plaintext_peer_cannot_join_a_tls_node(make_server, cert):
    a = make_server(*FAST, "--node-id", "a", *tls_args(cert))
    plain = make_server(*FAST, "--node-id", "plain", "--peers", seed_of(a))
    wait_for(lambda: plain.server.replication.stats["dials"] >= 3, 5, "a few dial attempts")
    assert peers(a) == {} and peers(plain) == {}
    # The TLS port said nothing in clear text to a raw client either.
    s = socket.create_connection(("127.0.0.1", a.server.replication.cport), timeout=5)
    s.sendall(b"*1\r\n$5\r\nHELLO\r\n")
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    assert not data.startswith(b"*")
    s.close()
    assert client(a).ping()


def test_default_cluster_port_is_port_plus_10000(make_server):
    for _ in range(20):
        with socket.socket() as s1, socket.socket() as s2:
            s1.bind(("127.0.0.1", 0))
            port = s1.getsockname()[1]
            if port + 10000 > 65535:
                continue
            try:
                s2.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        break
    node = make_server("--port", str(port), "--cluster-enabled", "yes")
    assert node.server.replication.cport == port + 10000
    assert repl_info(node)["cluster_port"] == port + 10000


def test_cluster_port_out_of_range_refuses_to_start(make_server):
    for port in range(60000, 65000, 97):      # a free client port above 55535
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        break
    with pytest.raises(ClusterRefused, match="cluster-port"):
        make_server("--port", str(port), "--cluster-enabled", "yes")
    # A single node needs no cluster port: any client port works (issue 7).
    assert make_server("--port", str(port)).server.replication is None
