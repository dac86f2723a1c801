"""The HTTP port under bad and hostile input (issue 9 part 2): the sans-I/O
parser fed bytes one at a time and at its limits; then a real node: keep-alive
and pipelining, malformed requests -> 400, huge heads -> 431, bodies over
the limit -> 413 (also chunked), slow requests -> 408, idle connections
closed, a client that does not read paused -- and after each, the node is up
and other clients are served.  Optional TLS with the tls-* files."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time

import pytest

from clusterkit import wait_for
from conftest import ThreadedServer
from httpkit import alive, http_port, raw_exchange, req
from repram_resp.http import api, wire


# -- sans-I/O ----------------------------------------------------------------------

PIPELINE = (b"GET /v1/data/a%2Fb?x=1 HTTP/1.1\r\nHost: h\r\nX-TTL: 5\r\n\r\n"
            b"PUT /v1/data/k HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
            b"PUT /v1/data/c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n"
            b"GET / HTTP/1.0\r\n\r\n")


def summary(events):
    return [(e.method, e.target, e.body, e.keep_alive) if isinstance(e, wire.Request) else e
            for e in events]


def test_parser_same_events_whole_or_byte_by_byte():
    whole = summary(wire.RequestParser(1024, 10, 100).feed(PIPELINE))
    p = wire.RequestParser(1024, 10, 100)
    one = []
    for i in range(len(PIPELINE)):
        one += summary(p.feed(PIPELINE[i:i + 1]))
    assert whole == one == [(b"GET", b"/v1/data/a%2Fb?x=1", b"", True),
                            (b"PUT", b"/v1/data/k", b"abc", True),
                            (b"PUT", b"/v1/data/c", b"hi!", True),
                            (b"GET", b"/", b"", False)]


def test_parser_same_events_whatever_the_split():
    # Every split point of a PUT then a GET: the one-call fast path, the
    # head-then-body path and the general path agree.
    raw = (b"PUT /v1/data/k HTTP/1.1\r\nX-TTL: 60\r\nContent-Length: 5\r\n\r\nhello"
           b"GET /v1/data/k HTTP/1.1\r\n\r\n")
    want = [(b"PUT", b"/v1/data/k", b"hello", True), (b"GET", b"/v1/data/k", b"", True)]
    for i in range(len(raw) + 1):
        p = wire.RequestParser(1024, 10, 100)
        assert summary(p.feed(raw[:i]) + p.feed(raw[i:])) == want, i
    single = raw[:raw.index(b"GET")]
    assert summary(wire.RequestParser(1024, 10, 100).feed(single)) == want[:1]


def test_parser_limits_are_checked_before_buffering():
    # A head over the limit is refused whatever the read sizes, and no more
    # than the limit was ever handed to httptools.
    for step in (1, 7, 1 << 20):
        p = wire.RequestParser(200, 10, 100)
        data = b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n"
        evs = []
        for i in range(0, len(data), step):
            evs += p.feed(data[i:i + step])
        assert [e.status for e in evs] == [431]
    p = wire.RequestParser(10_000, 10, 100)
    assert [e.status for e in p.feed(b"GET / HTTP/1.1\r\nX: " + b"v" * 20_000)] == [431]
    p = wire.RequestParser(10_000, 3, 100)
    assert [e.status for e in p.feed(b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\n\r\n")] == [431]
    p = wire.RequestParser(10_000, 10, 100)
    assert [e.status for e in p.feed(b"PUT /x HTTP/1.1\r\nContent-Length: 101\r\n\r\n")] == [413]
    p = wire.RequestParser(10_000, 10, 100)
    assert [e.status for e in p.feed(b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     + (b"40\r\n" + b"a" * 64 + b"\r\n") * 2)] == [413]
    # Pipelined small requests are not mistaken for one big head.
    p = wire.RequestParser(100, 10, 100)
    evs = p.feed(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" * 200)
    assert len(evs) == 200 and all(isinstance(e, wire.Request) for e in evs)


@pytest.mark.parametrize("data", [
    b"GET /x HTTP/1.1\nHost: x\n\n",                     # bare LF
    b"GARBAGE\r\n\r\n",
    b"GET /x HTTP/9.9\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"PUT /x HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /x HTTP/1.1\r\nBad Header: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",    # a TLS hello on the plain port
])
def test_parser_malformed_is_400(data):
    evs = wire.RequestParser(10_000, 10, 100).feed(data)
    assert [getattr(e, "status", None) for e in evs] == [400]


def test_percent_decoding_and_atoi():
    assert api.unquote(b"a%2Fb%00%ff") == b"a/b\x00\xff"
    assert api.unquote(b"a+b") == b"a+b" and api.unquote(b"a+b", plus=True) == b"a b"
    for bad in (b"%", b"%4", b"%4g", b"x%zz"):
        with pytest.raises(ValueError):
            api.unquote(bad)
    assert api.parse_query(b"ttl=5&ttl=6&prefix=a%3Ab&x") == {b"ttl": b"5", b"prefix": b"a:b", b"x": b""}
    assert [api.atoi(v) for v in (b"10", b"+7", b"-3", b"10s", b"1.5", b"", None, b"9" * 19)] == \
        [10, 7, -3, None, None, None, None, None]


# -- a real node --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def node():
    s = ThreadedServer(["--http-port", "-1", "--http-max-header-bytes", "8kb",
                        "--http-max-body-bytes", "1mb", "--http-request-timeout-ms", "400",
                        "--http-idle-timeout-ms", "600"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def port(node):
    return http_port(node)


def test_keep_alive_and_pipelining_in_order(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PUT /v1/data/pipe:1 HTTP/1.1\r\nContent-Length: 1\r\n\r\na"
              b"GET /v1/data/pipe:1 HTTP/1.1\r\n\r\n"
              b"GET /v1/data/pipe:missing HTTP/1.1\r\n\r\n"
              b"HEAD /v1/data/pipe:1 HTTP/1.1\r\n\r\n"
              b"GET /v1/data/pipe:1 HTTP/1.1\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        out += chunk
    s.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", out)
    assert statuses == [b"201", b"200", b"404", b"200", b"200"]
    assert out.count(b"\r\n\r\na") == 2        # both GET bodies, not the HEAD's


def test_many_pipelined_requests_in_one_write(port):
    n = 2000
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /v1/health HTTP/1.1\r\n\r\n" * (n - 1) + b"GET /v1/health HTTP/1.1\r\nConnection: close\r\n\r\n")
    out = b""
    while True:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.count(b"HTTP/1.1 200 OK\r\n") == n


@pytest.mark.parametrize("data,status", [
    (b"GET /v1/data/%zz HTTP/1.1\r\nConnection: close\r\n\r\n", b"400"),  # an API-level 400
    (b"GET /v1/data/x HTTP/1.1\nHost: x\n\n", b"400"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"v" * 9000 + b"\r\n\r\n", b"431"),
    (b"GET / HTTP/1.1\r\n" + b"".join(b"H%d: x\r\n" % i for i in range(101)) + b"\r\n", b"431"),
    (b"PUT /v1/data/big HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", b"413"),
])
def test_bad_requests_answered_then_closed_node_unaffected(port, data, status):
    out = raw_exchange(port, data)
    assert out.startswith(b"HTTP/1.1 " + status + b" ")
    if status != b"400" or b"%zz" not in data:
        assert b"Connection: close" in out
    assert alive(port)


def test_body_over_limit_sent_anyway_still_gets_413(port):
    # http.client sends the whole body before reading: the node answers 413,
    # discards the rest, and the client still reads the answer.
    st, _, body = req(port, "PUT", "/v1/data/over", body=b"x" * (2 * 1024 * 1024))
    assert st == 413 and b"http-max-body-bytes" in body
    body = b"".join(b"%x\r\n%s\r\n" % (65536, b"y" * 65536) for _ in range(20)) + b"0\r\n\r\n"
    out = raw_exchange(port, b"PUT /v1/data/over HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    assert out.startswith(b"HTTP/1.1 413 ")
    assert req(port, "GET", "/v1/data/over")[0] == 404 and alive(port)


def test_slow_request_gets_408_while_others_are_served(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"PUT /v1/data/slow HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly-a-bit")
    t0 = time.monotonic()
    assert alive(port)                        # served meanwhile
    out = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        out += chunk
    s.close()
    assert out.startswith(b"HTTP/1.1 408 ") and 0.3 < time.monotonic() - t0 < 3
    # A slowloris head dribbled byte by byte is cut the same way.
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for ch in b"GET /v1/health HTTP/1.1\r\nX-A: ":
        s.send(bytes([ch]))
    got = s.recv(4096)
    s.close()
    assert got.startswith(b"HTTP/1.1 408 ")
    assert req(port, "GET", "/v1/data/slow")[0] == 404


def test_idle_keep_alive_connection_is_closed(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /v1/health HTTP/1.1\r\n\r\n")
    first = s.recv(65536)
    assert first.startswith(b"HTTP/1.1 200 ")
    t0 = time.monotonic()
    assert s.recv(65536) == b""               # closed by the server, silently
    assert 0.4 < time.monotonic() - t0 < 3
    s.close()


def test_client_that_does_not_read_is_paused_not_buffered(node, port):
    # 1000 pipelined GETs of a 512 KiB value = 500 MiB of answers; the
    # client reads nothing for a while.  The node stops reading from it once
    # its write buffer is full, so its memory stays bounded, and keeps
    # serving others.
    c = node.client()
    c.set("fat", b"z" * (512 * 1024), ex=600)
    c.close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.connect(("127.0.0.1", port))
    s.settimeout(0.5)
    sent = 0
    try:
        while sent < 1000:
            s.send(b"GET /v1/data/fat HTTP/1.1\r\n\r\n")
            sent += 1
    except (socket.timeout, BlockingIOError):
        pass
    assert alive(port)
    conns = wait_for(lambda: node.call(
        lambda: [cn for cn in node.server.http.connections if cn.paused_writing]), 10,
        "the non-reading client to be paused")
    buffered = node.call(lambda: max(cn.transport.get_write_buffer_size() for cn in conns))
    assert buffered < 16 * 1024 * 1024
    s.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    import subprocess
    d = tmp_path_factory.mktemp("httptls")
    key, crt = d / "server.key", d / "server.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True, timeout=60)
    return str(crt), str(key)


def test_http_over_tls(make_server, cert):
    crt, key = cert
    node = make_server("--http-port", "-1", "--http-tls", "yes", "--tls-cert-file", crt,
                       "--tls-key-file", key)
    port = http_port(node)
    ctx = ssl.create_default_context(cafile=crt)
    assert req(port, "PUT", "/v1/data/tls:k", body=b"secret", context=ctx)[0] == 201
    assert req(port, "GET", "/v1/data/tls:k", context=ctx)[2] == b"secret"
    # Plain HTTP on the TLS port is refused without harm.
    assert not raw_exchange(port, b"GET /v1/health HTTP/1.1\r\n\r\n", timeout=2).startswith(b"HTTP/1.1 200")
    assert req(port, "GET", "/v1/health", context=ctx)[0] == 200
    from httpkit import curl
    res = curl("--cacert", crt, "https://127.0.0.1:%d/v1/data/tls:k" % port)
    assert res.stdout == b"secret"


def test_http_port_off_by_default(server):
    assert server.server.http is None


def test_protected_mode_applies_to_the_http_port(node):
    """Without requirepass only loopback clients are served, as on RESP."""
    from repram_resp.http.protocol import HttpConnection

    class T:
        out = b""
        closed = False

        def get_extra_info(self, k):
            return ("10.1.2.3", 5555)

        def set_write_buffer_limits(self, high):
            pass

        def write(self, d):
            self.out += d

        def close(self):
            self.closed = True

    def attempt():
        t = T()
        c = HttpConnection(node.server.http)
        c.connection_made(t)
        node.server.http.unregister(c)
        return t
    t = node.call(attempt)
    assert t.out.startswith(b"HTTP/1.1 403 ") and b"protected mode" in t.out and t.closed
    node.server.config.protected_mode = False
    try:
        t = node.call(attempt)
        assert t.out == b"" and not t.closed
    finally:
        node.server.config.protected_mode = True


from hypothesis import given, settings, strategies as st  # noqa: E402

_PIECES = st.sampled_from([
    b"GET ", b"PUT ", b"HEAD ", b"/v1/data/", b"k%2F", b"%zz", b" HTTP/1.1\r\n", b" HTTP/1.0\r\n",
    b"Host: x\r\n", b"Content-Length: 3\r\n", b"Content-Length: 999\r\n", b"Transfer-Encoding: chunked\r\n",
    b"Expect: 100-continue\r\n", b"\r\n", b"\n", b"abc", b"3\r\nabc\r\n", b"0\r\n\r\n", b"\x00\xff",
    b"X-Long: " + b"v" * 300 + b"\r\n",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_parser_never_raises_and_stops_after_an_error(pieces, cuts):
    data = b"".join(pieces)
    p = wire.RequestParser(256, 8, 100)
    events, i, k = [], 0, 0
    while i < len(data):
        step = cuts[k % len(cuts)]
        events += p.feed(data[i:i + step])
        i += step
        k += 1
    errors = [e for e in events if isinstance(e, wire.HttpError)]
    assert len(errors) <= 1 and (not errors or events[-1] is errors[0])
    assert all(isinstance(e, wire.Request) or e is wire.EXPECT_CONTINUE or e is errors[0] for e in events)
    for e in events:
        if isinstance(e, wire.Request):
            assert len(e.body) <= 100
    # The same bytes in one read give the same requests.
    whole = wire.RequestParser(256, 8, 100).feed(data)
    assert [summary([e]) for e in whole if isinstance(e, wire.Request)] == \
        [summary([e]) for e in events if isinstance(e, wire.Request)]


def test_flow_control_holds_on_the_one_request_fast_path(node):
    """A read of one GET whose answer fills the transport pauses reading,
    and it stays paused until the client drains (fake transport)."""
    from repram_resp.http.protocol import WRITE_BUFFER_HIGH_BYTES, HttpConnection

    class T:
        def __init__(self):
            self.size = 0
            self.reading = True

        def get_extra_info(self, k):
            return ("127.0.0.1", 5555)

        def set_write_buffer_limits(self, high):
            pass

        def write(self, d):
            self.size += len(d)
            if self.size > WRITE_BUFFER_HIGH_BYTES:
                self.conn.pause_writing()

        def pause_reading(self):
            self.reading = False

        def resume_reading(self):
            self.reading = True

    def run():
        t = T()
        c = t.conn = HttpConnection(node.server.http)
        c.connection_made(t)
        node.server.keyspace.put(b"fc:big", b"q" * (3 << 20), node.server.clock() + 60_000, None,
                                 node.server.clock())
        c.data_received(b"GET /v1/data/fc:big HTTP/1.1\r\n\r\n")
        first = t.reading
        c.data_received(b"GET /v1/data/fc:big HTTP/1.1\r\n\r\n")
        paused = (t.reading, c.paused_writing)
        t.size = 0
        c.resume_writing()
        node.server.http.unregister(c)
        return first, paused, t.reading
    first, paused, after = node.call(run)
    assert first is True and paused == (False, True) and after is True
