"""Client TLS (tls-port): redis-py and redis-cli over TLS, plain port unaffected.

The certificate is made per test session with the openssl CLI (Debian's
openssl is part of the base image; CI installs nothing extra for it)."""

import socket
import subprocess

import pytest
import redis


def free_port():
    # tls-port 0 means "no TLS" (as in Redis), so ask the OS for a free port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "server.key", d / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(crt)],
                   check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


def test_tls_port_serves_redis_py_and_plain_port_keeps_working(make_server, cert):
    crt, key = cert
    s = make_server("--tls-port", free_port(), "--tls-cert-file", crt, "--tls-key-file", key)
    assert s.server.tls_port != s.port
    tls = redis.Redis(host="127.0.0.1", port=s.server.tls_port, ssl=True, ssl_ca_certs=crt,
                      ssl_cert_reqs="required", socket_timeout=10)
    assert tls.set("secret:1", b"\x00payload", ex=60)
    assert tls.get("secret:1") == b"\x00payload"
    assert s.client().get("secret:1") == b"\x00payload"      # same keyspace on the plain port
    # A plaintext client on the TLS port gets nowhere, and hurts nobody.
    plain_on_tls = redis.Redis(host="127.0.0.1", port=s.server.tls_port, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        plain_on_tls.ping()
    assert tls.ping() and s.client().ping()


def test_redis_cli_over_tls(make_server, cert):
    crt, key = cert
    s = make_server("--tls-port", free_port(), "--tls-cert-file", crt, "--tls-key-file", key)
    out = subprocess.run(["redis-cli", "--tls", "--cacert", crt, "-h", "127.0.0.1",
                          "-p", str(s.server.tls_port), "SET", "k", "v", "EX", "60"],
                         capture_output=True, text=True, timeout=30)
    if "Unrecognized option" in out.stderr or "--tls" in out.stderr:
        pytest.fail("redis-cli was built without TLS support: %s" % out.stderr)
    assert out.stdout.strip() == "OK", out
    assert s.client().get("k") == b"v"
