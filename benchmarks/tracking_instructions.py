#!/usr/bin/env python3
"""Deterministic cost of CLIENT TRACKING per SET / GET: run under valgrind,
the instructions one process executes feeding N commands through
Client.data_received (the fast lane's path), with ("on": a RESP3 client
tracking, 10 keys cached) or without ("off") a tracker; "build" only builds
the commands, so (I(on, 2N) - I(on, N)) - (I(build, 2N) - I(build, N)) over N
is the server's instructions per command.  benchmarks/RESULTS.md has the
table and the loop that runs it:

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python3 benchmarks/tracking_instructions.py on 6400 16 SET   # "Collected : <instructions>"

Arguments: mode (build | off | on), N, commands per read, SET | GET.
stdlib only.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from repram_resp.config import load  # noqa: E402
from repram_resp.server import Server  # noqa: E402
from repram_resp.connection import Client  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DropTransport as Sink, encode_command as enc  # noqa: E402


mode, n, P, cmdname = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


async def main():
    server = Server(load(["--port", "0"])); server.update_lane()
    c = Client(server); c.connection_made(Sink())
    for i in range(0, 2000, 100):
        c.data_received(b"".join(enc(b"SET", b"key:%d" % (i + k), b"v", b"EX", b"60") for k in range(100)))
    if mode == "on":
        t = Client(server); t.connection_made(Sink())
        t.data_received(enc(b"HELLO", b"3") + enc(b"CLIENT", b"TRACKING", b"ON"))
        t.data_received(b"".join(enc(b"GET", b"other:%d" % i) for i in range(10)))
        assert len(server.tracking.table) == 10
    def cmd(i):
        k = b"key:%d" % (i % 2000)
        return enc(b"SET", k, b"v", b"EX", b"60") if cmdname == "SET" else enc(b"GET", k)
    reads = [b"".join(cmd(j * P + k) for k in range(P)) for j in range(n // P)]
    if mode != "build":
        for r in reads: c.data_received(r)

asyncio.run(main())
