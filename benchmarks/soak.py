"""Soak: long mixed load with key churn, repram-resp and redis-server side by side.

Both servers run at the same time under the same load (so the shared
machine's noise hits both): a writer pipelining ``SET key value EX 1..5``
over a rotating key range, a reader doing ``GET``, a scanner doing ``SCAN
... MATCH``, keyspace notifications on (``notify-keyspace-events KEA``) with
a subscriber draining ``__keyevent@0__:*``, and a probe sending ``PING``
every 5 ms.  Every ``--sample`` seconds we record RSS, ``used_memory``,
``DBSIZE`` and the probe's p50 / p99 / max over the interval.

The verdict: RSS growth after warm-up (the first ``--warmup`` seconds),
as MB/min and as % of the post-warm-up RSS, plus the probe latencies.

    python benchmarks/soak.py                    # 30 minutes
    python benchmarks/soak.py --minutes 5 --markdown-out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import random
import re
import socket
import statistics
import threading
import time

from harness import (REDIS_SERVER_CMD, emit_markdown, git_commit, log, proc_rss_bytes, resp_pipeline,
                     run_main, start_server)


def enc(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Load:
    def __init__(self, port: int, rate: int, keys: int):
        self.port = port
        self.rate = rate            # commands per second, all kinds together
        self.keys = keys
        self.stop = False
        self.sent = 0
        self.notifications = 0
        self.rtts: list[float] = []
        self.lock = threading.Lock()
        self.errors = 0

    def _conn(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return s, s.makefile("rb")

    def writer(self):
        s, f = self._conn()
        tick = 0.01
        per_tick = max(1, int(self.rate * 0.7 * tick))
        i = 0
        value = b"v" * 100
        while not self.stop:
            t = time.monotonic()
            batch = []
            for _ in range(per_tick):
                i += 1
                batch.append(enc("SET", "soak:%d" % (i % self.keys), value, "EX", random.randint(1, 5)))
            s.sendall(b"".join(batch))
            for _ in range(per_tick):
                f.readline()
            self.sent += per_tick
            time.sleep(max(0.0, tick - (time.monotonic() - t)))

    def reader(self):
        s, f = self._conn()
        tick = 0.01
        per_tick = max(1, int(self.rate * 0.28 * tick))
        while not self.stop:
            t = time.monotonic()
            s.sendall(b"".join(enc("GET", "soak:%d" % random.randrange(self.keys))
                               for _ in range(per_tick)))
            for _ in range(per_tick):
                line = f.readline()
                if line.startswith(b"$") and line != b"$-1\r\n":
                    f.readline()
            self.sent += per_tick
            time.sleep(max(0.0, tick - (time.monotonic() - t)))

    def scanner(self):
        s, f = self._conn()
        cursor = b"0"
        while not self.stop:
            s.sendall(enc("SCAN", cursor, "MATCH", "soak:1*", "COUNT", 200))
            f.readline()                       # *2
            f.readline()
            cursor = f.readline().strip()      # cursor
            n = int(f.readline()[1:])
            for _ in range(n):
                f.readline()
                f.readline()
            self.sent += 1
            time.sleep(0.05)

    def subscriber(self):
        s, f = self._conn()
        s.sendall(enc("PSUBSCRIBE", "__keyevent@0__:*"))
        s.settimeout(5)
        while not self.stop:
            try:
                chunk = s.recv(1 << 20)
            except socket.timeout:
                continue
            if not chunk:
                return
            self.notifications += chunk.count(b"pmessage")

    def probe(self):
        s, f = self._conn()
        while not self.stop:
            t = time.monotonic()
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            f.readline()
            rtt = time.monotonic() - t
            with self.lock:
                self.rtts.append(rtt)
            time.sleep(max(0.0, 0.005 - rtt))

    def take_rtts(self) -> list[float]:
        with self.lock:
            out, self.rtts = self.rtts, []
        return out

    def start(self):
        resp_pipeline(self.port, [("CONFIG", "SET", "notify-keyspace-events", "KEA")])
        self.threads = [threading.Thread(target=fn, daemon=True) for fn in
                        (self.writer, self.reader, self.scanner, self.subscriber, self.probe)]
        for t in self.threads:
            t.start()


def info_int(port: int, field: str) -> int:
    text = resp_pipeline(port, [("INFO", "memory")])[0].decode()
    return int(re.search(r"%s:(\d+)" % field, text).group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds excluded from the verdict")
    ap.add_argument("--rate", type=int, default=6000, help="commands/s per server")
    ap.add_argument("--keys", type=int, default=20000)
    ap.add_argument("--markdown-out", default=None)
    args = ap.parse_args()
    ours = start_server("{python} -m repram_resp --port {port} --bind 127.0.0.1", name="repram")
    red = start_server(REDIS_SERVER_CMD, name="redis")
    servers = {"repram": ours, "redis": red}
    loads = {n: Load(s.port, args.rate, args.keys) for n, s in servers.items()}
    for ld in loads.values():
        ld.start()
    samples = {n: [] for n in servers}
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    try:
        while time.monotonic() < end:
            time.sleep(args.sample)
            el = time.monotonic() - t0
            for n, s in servers.items():
                rtts = loads[n].take_rtts()
                row = dict(t=el, rss=proc_rss_bytes(s.pid), used=info_int(s.port, "used_memory"),
                           keys=resp_pipeline(s.port, [("DBSIZE",)])[0], sent=loads[n].sent,
                           notes=loads[n].notifications,
                           p50=statistics.median(rtts) * 1000 if rtts else float("nan"),
                           p99=sorted(rtts)[int(len(rtts) * 0.99)] * 1000 if rtts else float("nan"),
                           mx=max(rtts) * 1000 if rtts else float("nan"), alive=s.alive())
                samples[n].append(row)
                log("%-6s t=%5.0fs rss=%6.1fMB used=%6.1fMB keys=%6d cmds=%9d notes=%9d "
                    "p50=%.2f p99=%.2f max=%.1f ms" % (n, el, row["rss"] / 1e6, row["used"] / 1e6,
                                                        row["keys"], row["sent"], row["notes"],
                                                        row["p50"], row["p99"], row["mx"]))
    finally:
        for ld in loads.values():
            ld.stop = True
        for s in servers.values():
            s.stop()
    lines = ["", "### soak.py: %.1f min, %d cmds/s per server, key churn over %d keys, SET EX 1-5 s, "
             "notifications KEA (commit %s)" % ((time.monotonic() - t0) / 60, args.rate, args.keys,
                                               git_commit()), "",
             "Both servers ran at the same time on the shared 2-core machine (other teams' "
             "jobs running too).", "",
             "| server | RSS after warm-up MB | RSS end MB | RSS slope MB/min | RSS growth % | "
             "used_memory end MB | keys end | probe p50 ms (median) | p99 ms (worst sample) | "
             "max ms | notifications |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n, rows in samples.items():
        post = [r for r in rows if r["t"] >= args.warmup] or rows
        if not post:
            continue
        xs = [r["t"] / 60 for r in post]
        ys = [r["rss"] / 1e6 for r in post]
        slope = 0.0
        if len(xs) > 1:
            mx, my = statistics.mean(xs), statistics.mean(ys)
            den = sum((x - mx) ** 2 for x in xs)
            slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0
        growth = (ys[-1] - ys[0]) / ys[0] * 100 if ys[0] else 0.0
        lines.append("| %s | %.1f | %.1f | %+.3f | %+.1f | %.1f | %d | %.2f | %.1f | %.1f | %d |" % (
            n, ys[0], ys[-1], slope, growth, post[-1]["used"] / 1e6, post[-1]["keys"],
            statistics.median(r["p50"] for r in post), max(r["p99"] for r in post),
            max(r["mx"] for r in post), post[-1]["notes"]))
    md = "\n".join(lines) + "\n"
    print(md)
    if args.markdown_out:
        emit_markdown(md, args.markdown_out)
    return 0


if __name__ == "__main__":
    run_main(main)
