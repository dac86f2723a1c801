#!/usr/bin/env python3
"""Our server for benchmarks/throughput.py's --server-cmd, optionally from
another source tree and optionally with one CLIENT TRACKING client attached,
to measure what client-side caching costs SET/GET (issue 10):

    python benchmarks/throughput.py --server-cmd \\
        "{python} benchmarks/tracking_server.py --tracker -- --port {port} --bind 127.0.0.1 \\
         --cluster-port 0 --event-loop {loop}"

--src DIR    import repram_resp from DIR (e.g. `git archive <commit> | tar -x -C DIR`
             for a baseline); default: this checkout.
--tracker    once the node answers, connect a RESP3 client that turns on
             CLIENT TRACKING (default mode), reads a few of the benchmark's keys
             and then only reads its invalidations -- so every SET passes the
             tracking hook, as it does in production while any client caches.
Everything after ``--`` goes to repram-resp.  stdlib only.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time


def _tracker(port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)      # polling a starting server, bounded by the deadline
    s.settimeout(None)
    cmds = [b"HELLO", b"3"], [b"CLIENT", b"TRACKING", b"ON"]
    reads = [[b"GET", b"key:%012d" % i] for i in range(10)]
    for argv in (*cmds, *reads):
        s.sendall(b"*%d\r\n" % len(argv) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in argv))
    while s.recv(1 << 16):        # replies, then invalidation pushes, until the server goes
        pass


def main() -> int:
    args = sys.argv[1:]
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tracker = False
    while args and args[0] != "--":
        if args[0] == "--src":
            src, args = args[1], args[2:]
        elif args[0] == "--tracker":
            tracker, args = True, args[1:]
        else:
            print("unknown option %r" % args[0], file=sys.stderr)
            return 2
    server_args = args[1:]
    sys.path.insert(0, src)
    from repram_resp.cli import main as node_main
    if tracker:
        port = int(server_args[server_args.index("--port") + 1])
        threading.Thread(target=_tracker, args=(port,), daemon=True).start()
    return node_main(server_args)


if __name__ == "__main__":
    sys.exit(main())
