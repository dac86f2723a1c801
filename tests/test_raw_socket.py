"""A real in-process server driven by raw bytes over loopback TCP.

What a telnet user, redis-benchmark's PING_INLINE or a hostile client sends,
byte for byte, and what comes back, byte for byte.  Every read has a timeout
and reads until the expected byte count (or EOF); nothing sleeps to wait for
the server.
"""

from __future__ import annotations

import socket
import time

import pytest

from rawresp import encode
from repram_resp.connection import WRITE_BUFFER_HIGH_BYTES

TIMEOUT_S = 5.0


class Raw:
    """A blocking loopback socket with exact-length reads."""

    def __init__(self, port: int, rcvbuf: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:      # must be set before connect to bound the window
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError("EOF after %d of %d bytes: %r" % (len(self.buf), n, bytes(self.buf[:200])))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def expect(self, data: bytes) -> None:
        assert self.read(len(data)) == data

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise EOFError("EOF in a line: %r" % bytes(self.buf))
        i = self.buf.index(b"\r\n")
        out = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return out

    def reply(self):
        """One RESP2/RESP3 reply, decoded just enough to check it."""
        head = self.line()
        t, rest = head[:1], head[1:]
        if t in (b"+", b"-", b":", b",", b"#", b"("):
            return head
        if t == b"_":
            return None
        if t in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self.read(n + 2)[:-2]
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        if t == b"%":
            return {self.reply(): self.reply() for _ in range(int(rest))}
        raise AssertionError("not RESP: %r" % head)

    def read_to_eof(self) -> bytes:
        """Everything until the server closes (bounded by the socket timeout)."""
        while self._fill():
            if len(self.buf) > 1 << 20:
                raise AssertionError("no EOF after 1 MiB")
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def conn(server):
    made = []

    def connect(**kw) -> Raw:
        c = Raw(server.port, **kw)
        made.append(c)
        return c
    yield connect
    for c in made:
        c.close()


cmd = encode   # one RESP-encoded command (tests/rawresp.py)


# -- inline and pipelining ---------------------------------------------------------

def test_inline_ping(conn):
    c = conn()
    c.send(b"PING\r\n")
    c.expect(b"+PONG\r\n")
    c.send(b"PING\n")
    c.expect(b"+PONG\r\n")
    c.send(b"\r\n\r\nPING hello\r\n")            # empty lines are skipped
    c.expect(b"$5\r\nhello\r\n")


def test_telnet_style_quoted_inline(conn):
    c = conn()
    c.send(b'SET "a b" "c d" EX 10\r\n')
    c.expect(b"+OK\r\n")
    c.send(b'GET "a b"\r\n')
    c.expect(b"$3\r\nc d\r\n")
    c.send(b"GET 'a b'\r\n")
    c.expect(b"$3\r\nc d\r\n")
    c.send(b'SET bin "\\x00\\r\\n\\xff" EX 10\r\n')
    c.expect(b"+OK\r\n")
    c.send(cmd(b"GET", b"bin"))
    c.expect(b"$4\r\n\x00\r\n\xff\r\n")


def test_pipeline_of_1000_commands_in_one_send(conn):
    c = conn()
    data = []
    want = []
    for i in range(500):
        data.append(cmd("SET", "pipe:%d" % i, "value-%d" % i, "EX", "100"))
        want.append(b"+OK\r\n")
        data.append(b"GET pipe:%d\r\n" % i if i % 3 == 0 else cmd("GET", "pipe:%d" % i))
        v = b"value-%d" % i
        want.append(b"$%d\r\n%s\r\n" % (len(v), v))
    c.send(b"".join(data))
    c.expect(b"".join(want))
    c.send(b"PING\r\n")
    c.expect(b"+PONG\r\n")


def test_request_split_one_byte_per_send(conn):
    c = conn()
    for b in cmd("SET", "split", "x\r\ny", "EX", "100") + b'GET "split"\r\n':
        c.send(bytes([b]))
    c.expect(b"+OK\r\n$4\r\nx\r\ny\r\n")


# -- command errors keep the connection; protocol errors close it -----------------

def test_unknown_command_keeps_connection_open(conn):
    c = conn()
    c.send(cmd("foo", "a", "b"))
    c.expect(b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n")
    c.send(b"foo a b\r\n")
    c.expect(b"-ERR unknown command 'foo', with args beginning with: 'a' 'b' \r\n")
    c.send(b"foo\r\n")
    c.expect(b"-ERR unknown command 'foo', with args beginning with: \r\n")
    c.send(b"PING\r\n")
    c.expect(b"+PONG\r\n")


@pytest.mark.parametrize("bad, err", [
    (b"*1\r\n$x\r\n", b"invalid bulk length"),
    (b"*1\r\n$99999999999\r\n", b"invalid bulk length"),
    (b"*1\r\n$-1\r\n", b"invalid bulk length"),
    (b"*x\r\n", b"invalid multibulk length"),
    (b"*2\r\n$3\r\nGET\r\nx\r\n", b"expected '$', got 'x'"),
    (b"*2\r\n$3\r\nGET\r\n:1\r\n", b"expected '$', got ':'"),
    (b'SET "a b\r\n', b"unbalanced quotes in request"),
])
def test_protocol_error_replies_once_then_closes(conn, bad, err):
    other = conn()                     # opened before, must keep working
    other.send(b"PING\r\n")
    other.expect(b"+PONG\r\n")
    c = conn()
    # commands complete before the error are answered, then exactly one error, then EOF
    c.send(b"PING\r\n" + bad + b"PING\r\n")
    got = c.read_to_eof()
    other.send(cmd("SET", "still", "here", "EX", "10") + b"GET still\r\n")
    other.expect(b"+OK\r\n$4\r\nhere\r\n")
    assert got == b"+PONG\r\n-ERR Protocol error: " + err + b"\r\n"


def test_oversized_bulk_header_is_refused_immediately(conn):
    # Default proto-max-bulk-len is 512mb: the header alone is refused, the
    # server does not wait for (or buffer) 600 MB of payload.
    c = conn()
    c.send(b"*2\r\n$3\r\nGET\r\n$600000000\r\n")
    t0 = time.monotonic()
    assert c.read_to_eof() == b"-ERR Protocol error: invalid bulk length\r\n"
    assert time.monotonic() - t0 < TIMEOUT_S


def test_too_big_inline_request_closes(conn):
    c = conn()
    c.send(b"x" * (64 * 1024 + 1))
    assert c.read_to_eof() == b"-ERR Protocol error: too big inline request\r\n"


# -- RESP2 / RESP3 ---------------------------------------------------------------------

def test_null_is_resp_version_specific(conn):
    c = conn()
    c.send(b"GET missing\r\n")
    c.expect(b"$-1\r\n")
    c.send(cmd("HELLO", "3"))
    hello = c.reply()
    assert isinstance(hello, dict) and hello[b"proto"] == b":3"
    c.send(b"GET missing\r\n")
    c.expect(b"_\r\n")
    c.send(cmd("MGET", "missing", "missing"))
    c.expect(b"*2\r\n_\r\n_\r\n")
    c.send(cmd("HELLO", "2"))
    assert isinstance(c.reply(), list)
    c.send(b"GET missing\r\n")
    c.expect(b"$-1\r\n")


# -- flow control ------------------------------------------------------------------------

def _server_client(server, sock: Raw):
    """The server-side Client object of a raw connection."""
    host, port = sock.sock.getsockname()
    addr = "%s:%d" % (host, port)
    found = server.call(lambda: [c for c in server.server.clients.values() if c.addr == addr])
    assert len(found) == 1, addr
    return found[0]


def test_client_that_does_not_read_is_paused_and_bounded(server, conn):
    value = bytes(range(256)) * 4096                # 1 MiB
    reply = b"$%d\r\n%s\r\n" % (len(value), value)
    n_gets = 128                                    # 128 MiB of replies if nothing stops it

    setup = conn()
    setup.send(cmd("SET", "bigkey", value, "EX", "600"))
    setup.expect(b"+OK\r\n")

    slow = conn(rcvbuf=64 * 1024)
    slow.send(b"PING\r\n")                          # registered on the server by now
    slow.expect(b"+PONG\r\n")
    client = _server_client(server, slow)
    transport = client.transport

    slow.send(cmd("GET", "bigkey") * n_gets)        # ~3 KB: one read on the server

    def sample():
        return server.call(lambda: (transport.get_write_buffer_size(), transport.is_reading()))

    # Wait (bounded) until the server stops reading from the client, then
    # keep sampling for a while: the buffer must stay bounded throughout.
    bound = WRITE_BUFFER_HIGH_BYTES + len(reply) + (1 << 20)
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        size, reading = sample()
        seen.append(size)
        if not reading and size > 0:
            break
    else:
        pytest.fail("server never stopped reading from the client; buffer sizes %s" % seen[-5:])
    for _ in range(50):
        seen.append(sample()[0])
    assert max(seen) <= bound, "write buffer %d bytes > bound %d" % (max(seen), bound)

    # Another client is served promptly meanwhile.
    other = conn()
    t0 = time.monotonic()
    for i in range(20):
        other.send(b"PING\r\n")
        other.expect(b"+PONG\r\n")
    other.send(cmd("SET", "small", "v", "EX", "10") + b"GET small\r\n")
    other.expect(b"+OK\r\n$1\r\nv\r\n")
    assert time.monotonic() - t0 < 2.0

    # The slow client now reads everything, intact and in order.
    for i in range(n_gets):
        got = slow.read(len(reply))
        assert got == reply, "reply %d differs" % i
    slow.send(b"PING\r\n")
    slow.expect(b"+PONG\r\n")
    size, reading = sample()
    assert size == 0 and reading
