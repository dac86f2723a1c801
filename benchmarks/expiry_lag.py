#!/usr/bin/env python3
"""Expiry reclaim lag: 100,000 keys whose deadlines fall within one second.

Run from the repo root:

    python benchmarks/expiry_lag.py            # full run: 100,000 keys, 2 runs per server
    python benchmarks/expiry_lag.py --quick    # smoke test: 10,000 keys, 1 run

For every run the server (repram-resp = "ours", started with ``--min-ttl 0``,
or the real redis-server) is started fresh on CPU 0.  The driver (CPU 1):

1. ``CONFIG SET notify-keyspace-events Ex`` and, on a separate connection,
   ``SUBSCRIBE __keyevent@0__:expired``;
2. picks T0 = now + ``--lead-ms`` (8 s) and loads ``--keys`` keys ``exp:%011d``
   with ``SET k v PXAT deadline`` where the deadlines are spread uniformly
   over [T0, T0 + ``--window-ms``) (the load order is shuffled);
3. reads the subscription with a raw socket + hiredis.Reader, stamping each
   recv() with the wall clock, until every key's event arrived or
   ``--collect-s`` seconds after the last deadline;
4. lag = arrival time - the key's deadline.  Percentiles are over all keys;
   a key whose event never came counts as infinitely late.

Redis only emits ``expired`` when it actually deletes a key (active expiry
samples 20 keys per loop, 10 times a second, or a lazy access), so its lag is
large; ours reclaims 16 ms buckets from a timer (target p99 <= 50 ms).  The
report also shows INFO used_memory (and RSS) before loading, after loading and
after the expiry, to show the memory coming back.

See benchmarks/README.md.  stdlib + hiredis (falls back to a small parser).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import select
import shutil
import socket
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from harness import (  # noqa: E402
    REDIS_SERVER_CMD,
    log,
    run_main,
    REPO_ROOT,
    RespError,
    emit_markdown,
    facts_markdown,
    info_fields,
    install_sigterm_handler,
    machine_facts,
    other_cpu_seconds,
    pin_self,
    process_cpu_snapshot,
    repro_command,
    resp_bulk_load,
    source_digest,
    resp_command,
    start_server,
    wait_for_quiet,
)

try:
    import hiredis
except ImportError:  # pragma: no cover
    hiredis = None

DEFAULT_REDIS_CMD = REDIS_SERVER_CMD
DEFAULT_OURS_CMD = "{python} -m repram_resp --port {port} --bind 127.0.0.1 --min-ttl 0"
SERVER_ORDER = ("redis", "ours")
CHANNEL = b"__keyevent@0__:expired"
TARGET_P99_MS = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 10,000 keys, 1 run per server")
    ap.add_argument("--keys", type=int, default=None, help="keys per run [default: 100000, quick: 10000]")
    ap.add_argument("--window-ms", type=int, default=1000, help="deadlines spread over this many ms")
    ap.add_argument("--lead-ms", type=int, default=None,
                    help="first deadline this long after the load starts; the load must finish before it "
                         "(100k keys take ~1.3 s on ours when the machine is quiet, several s when it is not) "
                         "[default: 8000, quick: 3000]")
    ap.add_argument("--collect-s", type=float, default=5.0,
                    help="stop listening this long after the last deadline")
    ap.add_argument("--value-size", type=int, default=16)
    ap.add_argument("--runs", type=int, default=None, help="runs per server [default: 2, quick: 1]")
    ap.add_argument("--batch", type=int, default=10_000, help="commands per pipelined load batch")
    ap.add_argument("--load-protocol", choices=("resp", "inline"), default="resp",
                    help="encode the load as RESP multibulk (what clients send) or inline commands")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before loading, wait up to SECONDS until other processes use <5%% of a CPU (shared machines)")
    ap.add_argument("--seed", type=int, default=1, help="shuffle seed for the load order")
    ap.add_argument("--server-cmd", default=DEFAULT_OURS_CMD, metavar="TEMPLATE",
                    help="our server (needs --min-ttl 0 or a lead above min-ttl); placeholders {port}, {host}, {python}")
    ap.add_argument("--redis-cmd", default=DEFAULT_REDIS_CMD, metavar="TEMPLATE", help="reference server")
    ap.add_argument("--server-cpu", default="0", help="taskset -c list for the servers")
    ap.add_argument("--client-cpu", default="1", help="CPU list this driver (loader + subscriber) pins itself to")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--ready-timeout", type=float, default=15.0)
    ap.add_argument("--log-dir", default=None)
    ap.add_argument("--markdown-out", metavar="FILE", default=None, help="append the Markdown block to FILE")
    ap.add_argument("--markdown-mode", choices=("append", "write"), default="append")
    ap.add_argument("--json-out", metavar="FILE", default=None)
    args = ap.parse_args(argv)
    if args.keys is None:
        args.keys = 10_000 if args.quick else 100_000
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    if args.lead_ms is None:
        args.lead_ms = 3000 if args.quick else 8000
    if args.keys < 1 or args.runs < 1 or args.window_ms < 1 or args.lead_ms < 100:
        ap.error("need --keys, --runs, --window-ms >= 1 and --lead-ms >= 100")
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    elif shutil.which("taskset") is None:
        ap.error("taskset not found; use --no-pin")
    return args


# ------------------------------------------------------------------ push reader

class PushReader:
    """Incremental parser for arrays of bulk strings (pub/sub pushes)."""

    def __init__(self):
        if hiredis is not None:
            self._r = hiredis.Reader()
        else:
            self._buf = bytearray()

    def feed(self, data: bytes) -> list:
        if hiredis is not None:
            self._r.feed(data)
            out = []
            gets = self._r.gets
            while True:
                m = gets()
                if m is False:
                    return out
                out.append(m)
        buf = self._buf
        buf += data
        out, pos = [], 0
        while True:
            start = pos
            try:
                nl = buf.index(b"\r\n", pos)
                if buf[pos:pos + 1] != b"*":
                    raise ValueError(f"unexpected push {bytes(buf[pos:nl])!r}")
                n = int(buf[pos + 1:nl])
                pos = nl + 2
                items = []
                for _ in range(n):
                    nl = buf.index(b"\r\n", pos)
                    kind = buf[pos:pos + 1]
                    if kind == b":":
                        items.append(int(buf[pos + 1:nl]))
                        pos = nl + 2
                        continue
                    ln = int(buf[pos + 1:nl])
                    if nl + 2 + ln + 2 > len(buf):
                        raise IndexError
                    items.append(bytes(buf[nl + 2:nl + 2 + ln]))
                    pos = nl + 2 + ln + 2
                out.append(items)
            except (ValueError, IndexError) as e:
                if isinstance(e, ValueError) and "unexpected" in str(e):
                    raise
                del buf[:start]
                return out


# ------------------------------------------------------------------ one run

def build_load(keys: list[bytes], deadlines: list[int], order: list[int], value: bytes, batch: int,
               protocol: str) -> list[tuple[bytes, int]]:
    out = []
    for s in range(0, len(order), batch):
        parts = []
        for i in order[s:s + batch]:
            k, d = keys[i], b"%d" % deadlines[i]
            if protocol == "inline":
                parts.append(b"SET %s %s PXAT %s\r\n" % (k, value, d))
            else:
                parts.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n"
                             % (len(k), k, len(value), value, len(d), d))
        out.append((b"".join(parts), len(parts)))
    return out


def mem_snapshot(srv) -> dict:
    m = info_fields(srv.port, "memory")
    st = info_fields(srv.port, "stats")
    return {"used_memory": int(m["used_memory"]), "rss": srv.rss_bytes(),
            "expired_keys": int(st.get("expired_keys", 0))}


def one_run(args: argparse.Namespace, name: str, template: str, run: int) -> dict:
    n = args.keys
    keys = [b"exp:%011d" % i for i in range(n)]
    index = {k: i for i, k in enumerate(keys)}
    order = list(range(n))
    random.Random(args.seed + run).shuffle(order)
    value = b"v" * args.value_size
    rec: dict = {"server": name, "run": run, "problems": []}
    with start_server(template, name=name, cpus=args.server_cpu, ready_timeout=args.ready_timeout,
                      log_dir=args.log_dir) as srv:
        rec["command"] = srv.command_line
        resp_command(srv.port, "CONFIG", "SET", "notify-keyspace-events", "Ex")
        sub = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        sub.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sub.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        reader = PushReader()
        sub.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL))
        msgs: list = []
        while not msgs:
            data = sub.recv(1 << 16)
            if not data:
                raise ConnectionError("subscriber connection closed")
            msgs = reader.feed(data)
        if msgs[0][:2] != [b"subscribe", CHANNEL]:
            raise RespError(f"unexpected SUBSCRIBE reply {msgs[0]!r}")
        mem0 = mem_snapshot(srv)
        if args.wait_quiet > 0:
            quiet, frac = wait_for_quiet({os.getpid(), srv.pid}, timeout=args.wait_quiet)
            if not quiet:
                log(f"  machine still busy after {args.wait_quiet:.0f} s ({frac:.0%} of a CPU); running anyway")

        t0_ms = int(time.time() * 1000) + args.lead_ms
        deadlines = [t0_ms + (i * args.window_ms) // n for i in range(n)]
        payloads = build_load(keys, deadlines, order, value, args.batch, args.load_protocol)
        replies, errs = resp_bulk_load(srv.port, payloads)
        loaded_ms = time.time() * 1000
        dbsize = srv.command("DBSIZE")
        mem1 = mem_snapshot(srv)
        margin = t0_ms - time.time() * 1000
        rec.update(load_errors=errs, dbsize_loaded=dbsize, load_margin_ms=t0_ms - loaded_ms)
        if errs:
            rec["problems"].append(f"load errors: {errs}")
        if replies != n:
            rec["problems"].append(f"{replies:,} replies for {n:,} SET commands")
        if dbsize != n:
            rec["problems"].append(f"DBSIZE {dbsize} after loading {n} keys")
        if margin < 50:
            rec["problems"].append(f"load finished only {margin:.0f} ms before the first deadline "
                                   f"(raise --lead-ms)")
        log(f"{name} run {run}: loaded {n:,} keys ({replies:,} replies), first deadline in {margin:.0f} ms")

        # ---- collect expired events
        lags = [math.inf] * n
        received = dupes = foreign = 0
        first_arrival = last_arrival = None
        stop_ms = t0_ms + args.window_ms + args.collect_s * 1000
        exclude = {os.getpid(), srv.pid}
        others0 = process_cpu_snapshot(exclude)
        cpu0 = time.process_time()
        srv_cpu0 = srv.cpu_seconds()
        wall0 = time.time()
        sub.setblocking(False)
        while received < n:
            remaining = stop_ms / 1000 - time.time()
            if remaining <= 0:
                break
            r, _, _ = select.select([sub], [], [], min(remaining, 0.5))
            if not r:
                continue
            try:
                data = sub.recv(1 << 20)
            except BlockingIOError:
                continue
            now_ms = time.time() * 1000
            if not data:
                rec["problems"].append("server closed the subscriber connection")
                break
            for m in reader.feed(data):
                if len(m) != 3 or m[0] != b"message":
                    continue
                i = index.get(m[2])
                if i is None:
                    foreign += 1
                    continue
                if lags[i] != math.inf:
                    dupes += 1
                    continue
                lags[i] = now_ms - deadlines[i]
                received += 1
                if first_arrival is None:
                    first_arrival = now_ms
                last_arrival = now_ms
        wall = time.time() - wall0
        client_cpu = time.process_time() - cpu0
        srv_cpu = srv.cpu_seconds() - srv_cpu0
        other = other_cpu_seconds(others0, process_cpu_snapshot(exclude))
        sub.close()
        time.sleep(0.2)
        mem2 = mem_snapshot(srv)
        dbsize_after = srv.command("DBSIZE")
        if not srv.alive():
            rec["problems"].append(f"server died: {srv.log_tail(500)!r}")

    srt = sorted(lags)
    rec.update(
        keys=n, received=received, dupes=dupes, foreign=foreign,
        p50=pct(srt, 50), p90=pct(srt, 90), p99=pct(srt, 99), p999=pct(srt, 99.9), max=srt[-1],
        min=srt[0], early=sum(1 for x in lags if x < 0),
        within={t: sum(1 for x in lags if x <= t) for t in (16, 50, 100, 1000)},
        last_after_window_ms=None if last_arrival is None else last_arrival - (t0_ms + args.window_ms),
        first_after_t0_ms=None if first_arrival is None else first_arrival - t0_ms,
        client_util=client_cpu / wall if wall else 0.0, server_cpu_s=srv_cpu,
        other_util=other / wall if wall else 0.0, collect_wall_s=wall,
        mem_before=mem0, mem_loaded=mem1, mem_after=mem2, dbsize_after=dbsize_after,
    )
    if received < n:
        rec["problems"].append(f"only {received:,} of {n:,} expired events within {args.collect_s:g} s "
                               f"of the last deadline")
    if rec["early"]:
        rec["problems"].append(f"{rec['early']} event(s) arrived BEFORE the key's deadline "
                               f"(min lag {rec['min']:.1f} ms)")
    return rec


def pct(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100 * len(sorted_vals)) - 1))
    return sorted_vals[k]


# ------------------------------------------------------------------ main / report

def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    started = time.time()
    digest0 = source_digest()
    facts = machine_facts(REPO_ROOT) + [("repram_resp/**.py sha256[:16] at start", digest0)]
    pin_desc = "unpinned" if args.no_pin else pin_self(args.client_cpu)
    templates = {"redis": args.redis_cmd, "ours": args.server_cmd}
    runs: list[dict] = []
    for run in range(1, args.runs + 1):
        for name in SERVER_ORDER:
            try:
                rec = one_run(args, name, templates[name], run)
            except (OSError, RespError, ValueError, KeyError) as e:
                rec = {"server": name, "run": run, "error": f"{type(e).__name__}: {e}",
                       "problems": [f"{type(e).__name__}: {e}"]}
                log(f"{name} run {run}: FAILED: {rec['error']}")
                runs.append(rec)
                continue
            runs.append(rec)
            log(f"{name} run {run}: {rec['received']:,}/{rec['keys']:,} events; lag p50 {fmt(rec['p50'])} "
                f"p99 {fmt(rec['p99'])} max {fmt(rec['max'])} ms; used_memory "
                f"{rec['mem_before']['used_memory']:,} -> {rec['mem_loaded']['used_memory']:,} -> "
                f"{rec['mem_after']['used_memory']:,}; client CPU {rec['client_util']:.0%}")
            for p in rec["problems"]:
                log(f"  problem: {p}")
    general = []
    if source_digest() != digest0:
        general.append("repram_resp source changed while the benchmark ran (each fresh server loads the code "
                       "current at its start)")
    md = render(args, facts, pin_desc, runs, started, general)
    emit_markdown(md, args.markdown_out, args.markdown_mode)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"facts": dict(facts), "args": vars(args), "runs": runs}, f, indent=2,
                      default=lambda x: None if x == math.inf else str(x))
    return 1 if general or any(r["problems"] for r in runs) else 0


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x == math.inf:
        return "never"
    return f"{x:,.1f}"


def _mib(b: int) -> str:
    return f"{b / 2**20:.1f}"


def render(args, facts, pin_desc, runs, started, general) -> str:
    ok = [r for r in runs if "error" not in r]
    out = [f"## Expiry reclaim lag: repram-resp vs redis-server "
           f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}{', quick' if args.quick else ''})", "",
           "Reproduce (from the repo root):", "", "```sh", repro_command(), "```", "",
           f"| Server | run | events received (of {args.keys:,}) | lag p50 ms | p90 ms | **p99 ms** | p99.9 ms "
           f"| max ms | ≤ 50 ms | last event after window end, ms | client CPU % |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        if "error" in r:
            out.append(f"| {r['server']} | {r['run']} | FAIL: {r['error'][:200]} | | | | | | | | |")
            continue
        out.append(f"| {r['server']} | {r['run']} | {r['received']:,} | {fmt(r['p50'])} | {fmt(r['p90'])} "
                   f"| **{fmt(r['p99'])}** | {fmt(r['p999'])} | {fmt(r['max'])} "
                   f"| {r['within'][50] / r['keys']:.1%} | {fmt(r['last_after_window_ms'])} "
                   f"| {r['client_util']:.0%} |")
    out.append("")
    out += ["Memory (INFO `used_memory`, and VmRSS) before loading → after loading → after the expiry:", "",
            "| Server | run | used_memory | RSS MiB | INFO expired_keys after | DBSIZE after |",
            "|---|--:|--:|--:|--:|--:|"]
    for r in ok:
        a, b, c = r["mem_before"], r["mem_loaded"], r["mem_after"]
        out.append(f"| {r['server']} | {r['run']} | {a['used_memory']:,} → {b['used_memory']:,} → "
                   f"**{c['used_memory']:,}** | {_mib(a['rss'])} → {_mib(b['rss'])} → {_mib(c['rss'])} "
                   f"| {c['expired_keys']:,} | {r['dbsize_after']} |")
    out.append("")
    out.append(f"{args.keys:,} keys `exp:%011d` (16 bytes, {args.value_size}-byte values) set with "
               f"`SET k v PXAT deadline` ({args.load_protocol} encoding, batches of {args.batch:,}); deadlines "
               f"uniform over a {args.window_ms} ms window starting {args.lead_ms} ms after the load began, load "
               f"order shuffled. Events from `SUBSCRIBE {CHANNEL.decode()}` (after `CONFIG SET "
               f"notify-keyspace-events Ex`) read on their own connection by a raw socket + "
               f"{'hiredis.Reader' if hiredis else 'pure-Python parser'}; lag = recv() wall-clock time − deadline "
               f"(same host clock as the servers). Percentiles (nearest rank) are over all keys, a key without an "
               f"event by {args.collect_s:g} s after the last deadline counts as `never`. Each run starts a fresh "
               f"server (runs alternate redis, ours); servers pinned with `taskset -c {args.server_cpu}`, driver "
               f"{pin_desc}. 'client CPU %' is the driver's CPU time / wall time while listening (far below 100 % "
               f"means the listener was not the bottleneck). Target for ours: p99 ≤ {TARGET_P99_MS:.0f} ms.")
    out.append("")
    notes = list(general)
    for r in runs:
        for p in r["problems"]:
            notes.append(f"{r['server']} run {r['run']}: {p}")
    for r in ok:
        if r["server"] == "ours" and r["p99"] > TARGET_P99_MS:
            notes.append(f"ours run {r['run']}: p99 lag {fmt(r['p99'])} ms is above the {TARGET_P99_MS:.0f} ms target")
        if r["other_util"] > 0.05:
            notes.append(f"{r['server']} run {r['run']}: other processes used {r['other_util']:.0%} of a CPU "
                         f"while listening")
        if r["client_util"] > 0.8:
            notes.append(f"{r['server']} run {r['run']}: the listener used {r['client_util']:.0%} of its CPU -- "
                         f"lag may include client delay")
        if r["dupes"] or r["foreign"]:
            notes.append(f"{r['server']} run {r['run']}: {r['dupes']} duplicate and {r['foreign']} unexpected events")
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Machine and setup:", ""] + facts_markdown(facts)
    seen = set()
    for r in ok:
        if r["server"] not in seen:
            seen.add(r["server"])
            out.append(f"- {r['server']} command: `{r['command']}`")
    out += ["", "<details><summary>Per-run details</summary>", "",
            "| Server | run | load finished before first deadline ms | first event after T0 ms | min lag ms "
            "| ≤ 16 ms | ≤ 100 ms | ≤ 1000 ms | server CPU s while listening | other CPU % |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in ok:
        w = r["within"]
        out.append(f"| {r['server']} | {r['run']} | {r['load_margin_ms']:,.0f} | {fmt(r['first_after_t0_ms'])} "
                   f"| {fmt(r['min'])} | {w[16] / r['keys']:.1%} | {w[100] / r['keys']:.1%} "
                   f"| {w[1000] / r['keys']:.1%} | {r['server_cpu_s']:.2f} | {r['other_util']:.0%} |")
    out += ["", "</details>", ""]
    return "\n".join(out)


if __name__ == "__main__":
    run_main(main)
