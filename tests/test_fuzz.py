"""Structure-aware protocol fuzzing against a real node, with a stall probe.

Hypothesis builds streams of valid, mutated and hostile RESP frames (nested
and RESP3 types, huge announced counts and lengths, inline lines), splits
them at random byte boundaries and sends them on a fresh connection, with
and without AUTH pending.  After every example: the node still answers a
probe's PING, nothing was logged with a traceback, and the fuzzed
connection ended (the node replied and closed, or closed at our EOF) --
it never hangs.  Bounded to a few hundred examples (~15 s); the long run is
benchmarks/fuzz.py.
"""

from __future__ import annotations

import logging
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ThreadedServer
from rawresp import Raw, encode

WORDS = [b"PING", b"ECHO", b"SET", b"GET", b"SCAN", b"AUTH", b"HELLO", b"CLIENT", b"SETNAME",
         b"PSUBSCRIBE", b"KEYS", b"MATCH", b"EX", b"PX", b"0", b"3", b"k", b"v", b"*", b"a*b?[c]",
         b"pw", b"wrong", b"MULTI", b"EXEC", b"QUIT", b"INFO", b"DBSIZE", b""]
TYPES = b"*%~>|$:+-(=,#_!"
NUMS = st.one_of(st.integers(-3, 20), st.sampled_from([2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 63, 10 ** 30,
                                                        250_000_000, 16384, 16385, 1048577]))

valid = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(lambda a: encode(*a))
inline = st.lists(st.sampled_from(WORDS + [b'"q"', b"'x y'", b'"\\x41"', b'"open']), min_size=0,
                  max_size=5).map(lambda a: b" ".join(a) + b"\r\n")
header = st.builds(lambda t, n, crlf: bytes([t]) + str(n).encode() + (b"\r\n" if crlf else b""),
                   st.sampled_from(TYPES), NUMS, st.booleans())
hostile = st.lists(header, min_size=1, max_size=4).map(b"".join)


@st.composite
def mutated(draw):
    b = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(b) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            b[i] = draw(st.sampled_from(list(TYPES) + [13, 10, 48, 57, 0, 255]))
        elif op == 1:
            del b[i]
        else:
            b[i:i] = draw(st.sampled_from([b"\r\n", b"*", b"$", b"9999999999", b"%1\r\n"]))
    return bytes(b)


frame = st.one_of(valid, valid, inline, hostile, mutated())


@st.composite
def stream(draw):
    data = b"".join(draw(st.lists(frame, min_size=1, max_size=12)))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    chunks, prev = [], 0
    for c in cuts + [len(data)]:
        chunks.append(data[prev:c])
        prev = c
    return [c for c in chunks if c]


@pytest.fixture(scope="module")
def fuzz_nodes():
    nodes = [ThreadedServer(), ThreadedServer(["--requirepass", "pw"])]
    yield nodes
    for n in nodes:
        n.stop()


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(chunks=stream(), which=st.integers(0, 1))
def test_fuzzed_streams_never_hurt_the_node(fuzz_nodes, chunks, which, caplog):
    node = fuzz_nodes[which]
    with caplog.at_level(logging.DEBUG, logger="repram"):
        s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        try:
            for c in chunks:
                s.sendall(c)
            s.shutdown(socket.SHUT_WR)
            while s.recv(1 << 16):  # the node answers and closes, or closes at our EOF
                pass
        except TimeoutError:
            raise AssertionError("the fuzzed connection hung") from None
        except OSError:
            pass                  # closed on a protocol error while we were still sending
        finally:
            s.close()
        probe = Raw(node.port, timeout=10)
        if which:
            assert probe.cmd("AUTH", "pw") == b"+OK\r\n"
        assert probe.cmd("PING") == b"+PONG\r\n"
        probe.close()
    assert not [r for r in caplog.records if r.exc_info], "traceback logged for client input"
