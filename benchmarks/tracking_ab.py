#!/usr/bin/env python3
"""End-to-end cost of CLIENT TRACKING on SET / GET in ONE server process:
redis-benchmark runs alternate between "off" and "on", where "on" means a
held connection has sent CLIENT TRACKING ON (and cached a few keys the load
never writes) and "off" that it has sent CLIENT TRACKING OFF.  Comparing two
server processes (throughput.py's ours+tracking against ours) mixes in
process-to-process differences of several percent (memory layout, hash
seeds, which core's cache the process warmed); this does not.

    python benchmarks/tracking_ab.py --runs 5            # ~3 min

Reports, per cell, the median ops/s and server CPU per operation (utime +
stime from /proc over each run) of each mode and their ratio.  Server on
CPU 0, redis-benchmark on CPU 1.  stdlib only.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import (  # noqa: E402
    encode_command,
    machine_facts,
    median,
    run_redis_benchmark,
    start_server,
)

CELLS = [("SET", ["SET", "key:__rand_int__", "v", "EX", "60"], 1, 200_000),
         ("GET", ["GET", "key:__rand_int__"], 1, 200_000),
         ("SET", ["SET", "key:__rand_int__", "v", "EX", "60"], 16, 1_000_000),
         ("GET", ["GET", "key:__rand_int__"], 16, 1_000_000)]


def _send(sock: socket.socket, *argv) -> bytes:
    sock.sendall(encode_command(*argv))
    return sock.recv(65536)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scale", type=float, default=1.0, help="requests per run, scaled")
    args = ap.parse_args()
    srv = start_server("{python} -m repram_resp --port {port} --bind 127.0.0.1 --event-loop uvloop",
                       name="ours", cpus="0")
    try:
        held = socket.create_connection(("127.0.0.1", srv.port))
        _send(held, "HELLO", "3")
        run_redis_benchmark(srv.port, CELLS[0][1], requests=200_000, pipeline=16, cpus="1")  # keys exist
        rows = []
        for name, cmd, pipeline, n in CELLS:
            res = {"off": [], "on": []}
            for i in range(args.runs):
                for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    if mode == "on":
                        assert _send(held, "CLIENT", "TRACKING", "ON").startswith(b"+OK")
                        held.sendall(b"".join(encode_command("GET", "other:%d" % k) for k in range(10)))
                        got = b""
                        while got.count(b"_\r\n") < 10:      # ten RESP3 nulls: the keys are cached
                            got += held.recv(65536)
                    else:
                        assert _send(held, "CLIENT", "TRACKING", "OFF").startswith(b"+OK")
                    cpu0 = srv.cpu_seconds()
                    r = run_redis_benchmark(srv.port, cmd, requests=int(n * args.scale), pipeline=pipeline,
                                            cpus="1")
                    cpu = (srv.cpu_seconds() - cpu0) / r.requests * 1e6
                    res[mode].append((r.rps, cpu))
            off_rps, on_rps = median(x[0] for x in res["off"]), median(x[0] for x in res["on"])
            off_cpu, on_cpu = median(x[1] for x in res["off"]), median(x[1] for x in res["on"])
            rows.append((name, pipeline, off_rps, on_rps, off_cpu, on_cpu))
            print("%s -P %d: off %.0f ops/s %.2f us/op, on %.0f ops/s %.2f us/op" %
                  (name, pipeline, off_rps, off_cpu, on_rps, on_cpu), file=sys.stderr)
        held.close()
    finally:
        srv.stop()
    print("| cell | off ops/s | on ops/s | **on / off ops/s** | off CPU µs/op | on CPU µs/op | **on / off CPU** |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, p, orps, nrps, ocpu, ncpu in rows:
        print("| %s -P %d | %.0f | %.0f | **%.3f** | %.2f | %.2f | **%.3f** |" % (name, p, orps, nrps, nrps / orps,
                                                                               ocpu, ncpu, ncpu / ocpu))
    print("\nOne server process, %d alternating runs per mode and cell (medians); `redis-benchmark --threads 1 "
          "-c 50 -r 100000`, -n 200000 at -P 1 and 1000000 at -P 16 (x %.2f); server `taskset -c 0`, "
          "redis-benchmark `taskset -c 1`; \"on\": a RESP3 connection with CLIENT TRACKING ON that cached "
          "10 keys the load never writes." % (args.runs, args.scale))
    print("\n" + "\n".join("- %s: `%s`" % kv for kv in machine_facts()[:6]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
