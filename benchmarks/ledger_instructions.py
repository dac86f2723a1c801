#!/usr/bin/env python3
"""Deterministic cost of the digest ledger (cluster/ledger.py) per SET: run
under valgrind, the instructions one process executes feeding N pipelined
``SET key v EX 60`` overwrites (the fast lane's trivial path, or the Python
path with REPRAM_NO_EXTENSIONS=1) through Client.data_received, with the
keyspace noting every write in a ledger ("on") or not ("off"); "build" only
builds the commands.  (I(on, 2N) - I(on, N)) - (I(build, 2N) - I(build, N))
over N is the server's instructions per SET; on - off is the ledger's.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python3 benchmarks/ledger_instructions.py on 6400 16   # "Collected : <instructions>"

Arguments: mode (build | off | on), N, commands per read.  stdlib only.
``python3`` must be the interpreter itself, not a launcher script (pyenv's
shim): valgrind counts the process it starts.
benchmarks/RESULTS.md has the table and the loop that runs it.
"""
import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from repram_resp.cluster.ledger import new_ledger  # noqa: E402
from repram_resp.config import load  # noqa: E402
from repram_resp.connection import Client  # noqa: E402
from repram_resp.server import Server  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DropTransport as Sink, encode_command as enc  # noqa: E402

mode, n, P = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


async def main():
    server = Server(load(["--port", "0"]))
    server.update_lane()
    if mode == "on":
        server.keyspace.ledger = new_ledger()
        server.keyspace.ledger.advance(server.clock() >> 7)   # notes go to pending, as in a node
    c = Client(server)
    c.connection_made(Sink())
    for i in range(0, 2000, 100):
        c.data_received(b"".join(enc(b"SET", b"key:%d" % (i + k), b"v", b"EX", b"60") for k in range(100)))
    reads = [b"".join(enc(b"SET", b"key:%d" % ((j * P + k) % 2000), b"v", b"EX", b"60") for k in range(P))
             for j in range(n // P)]
    if mode != "build":
        for r in reads:
            c.data_received(r)
    if mode == "on":
        assert server.keyspace.ledger.changes >= n, server.keyspace.ledger.changes

asyncio.run(main())
