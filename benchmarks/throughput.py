#!/usr/bin/env python3
"""Throughput benchmark: repram-resp ("ours") vs the real redis-server.

Run from the repo root:

    python benchmarks/throughput.py            # full run (~5 minutes)
    python benchmarks/throughput.py --quick    # smoke test (~1 minute)

All servers are started once on free loopback ports, pinned to CPU 0; the
load generator (redis-benchmark, one thread) is pinned to CPU 1.  Servers:
``redis``; ``ours`` (the fast lane on, if built); ``ours-nolane`` (the same
code with REPRAM_NO_EXTENSIONS=1: the pure-Python path); and feature variants
of ``ours`` that run only the feature cells (SET/GET at -P 16) and are
reported as ratios to ``ours``: ``ours+notify`` (notify-keyspace-events KEA)
and ``ours+tracking`` (one connection with CLIENT TRACKING ON held open;
reported n/a while the server refuses CLIENT TRACKING), and
``ours-nostats`` (this code with command statistics cut out by
benchmarks/ablate.py, so its ratio to ``ours`` is what they cost).  For every cell the
runs alternate between the servers; the report gives medians, the ratio to
redis of median ops/s, and the server CPU time per operation sampled from
/proc/<pid>/stat.

Cells (workload / -P / clients): SET EX and GET at -P 1 and -P 16; MGET of
10 keys; SET of 1 KB and 64 KB values; GET with 1,000 connections.

See benchmarks/README.md for details and caveats.  stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import socket
import sys
import time
from dataclasses import asdict, dataclass

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # e.g. when loaded as `python -m benchmarks.throughput`
    sys.path.insert(0, _HERE)

import ablate  # noqa: E402
from harness import (  # noqa: E402
    REDIS_SERVER_CMD,
    log,
    run_main,
    CLK_TCK,
    REPO_ROOT,
    BenchmarkError,
    RespError,
    ServerProcess,
    encode_command,
    info_fields,
    install_sigterm_handler,
    machine_facts,
    median,
    other_cpu_seconds,
    process_cpu_snapshot,
    resp_pipeline,
    run_redis_benchmark,
    start_server,
    steal_fraction,
    system_cpu_ticks,
    wait_for_quiet,
)

# Workloads are run as redis-benchmark "arbitrary commands" (not -t).  Each
# __rand_int__ is replaced by its own random number in [0, -r).
WORKLOADS: dict[str, list[str]] = {
    "SET": ["SET", "key:__rand_int__", "v", "EX", "60"],
    "GET": ["GET", "key:__rand_int__"],
    "MGET10": ["MGET"] + ["key:__rand_int__"] * 10,
    "SET1K": ["SET", "k1k:__rand_int__", "x" * 1024, "EX", "60"],
    "SET64K": ["SET", "k64k:__rand_int__", "x" * 65536, "EX", "60"],
}


@dataclass(frozen=True)
class Cell:
    workload: str
    pipeline: int
    clients: int
    requests: int      # at --requests-scale 1 (aimed at ~1-3 s against redis)
    keyspace: int | None = None   # -r; None = --keyspace

    @property
    def id(self) -> str:
        return f"{self.workload}/P{self.pipeline}" + (f"/c{self.clients}" if self.clients != 50 else "")


CELLS = [
    Cell("SET", 1, 50, 200_000), Cell("GET", 1, 50, 200_000),
    Cell("SET", 16, 50, 1_000_000), Cell("GET", 16, 50, 1_000_000),
    Cell("MGET10", 16, 50, 300_000),
    Cell("SET1K", 16, 50, 300_000),
    Cell("SET64K", 1, 50, 20_000, keyspace=1000),     # 1,000 keys x 64 KB = 64 MB per server
    Cell("GET", 1, 1000, 200_000),
]
FEATURE_CELLS = ("SET/P1", "GET/P1", "SET/P16", "GET/P16")
QUICK_SCALE = 0.1


@dataclass(frozen=True)
class Variant:
    name: str
    env: tuple = ()          # extra environment for the server
    args: tuple = ()         # extra server arguments
    hold: tuple = ()         # commands sent on a connection kept open during the runs
    feature_only: bool = False
    tree: str = ""           # run an ablated copy of this checkout (benchmarks/ablate.py)


VARIANTS = {
    "redis": Variant("redis"),
    "ours": Variant("ours"),
    "ours-nolane": Variant("ours-nolane", env=(("REPRAM_NO_EXTENSIONS", "1"),)),
    "ours+notify": Variant("ours+notify", args=("--notify-keyspace-events", "KEA"), feature_only=True),
    "ours+tracking": Variant("ours+tracking", hold=(("CLIENT", "TRACKING", "ON"),), feature_only=True),
    # The same code with command statistics cut out: its ratio to `ours`
    # above 1 (ops/s) / below 1 (CPU) is what the statistics cost.
    "ours-nostats": Variant("ours-nostats", tree="stats", feature_only=True),
}

DEFAULT_REDIS_CMD = REDIS_SERVER_CMD
DEFAULT_OURS_CMD = "{python} -m repram_resp --port {port} --bind 127.0.0.1 --event-loop {loop}"
SERVER_ORDER = ("redis", "ours")  # the two every ratio is about


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
        return "uvloop"
    except ImportError:
        return "asyncio"


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError("values must be >= 1")
    return vals


def _name_list(choices):
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"unknown name(s) {bad}; choose from {','.join(choices)}")
        return names
    return parse


def _workload_list(text: str) -> list[str]:
    names = [x.strip().upper() for x in text.split(",") if x.strip()]
    bad = [n for n in names if n not in WORKLOADS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {bad}; choose from {','.join(WORKLOADS)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Compare repram-resp (fast lane on and off, feature variants) against redis-server "
                    "with redis-benchmark, alternating the servers run by run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: 1 run per server and cell, --requests-scale {QUICK_SCALE} "
                         "(explicit --runs/--requests-scale still win)")
    ap.add_argument("--runs", type=int, default=None,
                    help="runs per server per cell [default: 3, --quick: 1]")
    ap.add_argument("--requests-scale", type=float, default=None,
                    help=f"multiplier for every cell's -n [default: 1.0, --quick: {QUICK_SCALE}]")
    ap.add_argument("--cells", type=_name_list([c.id for c in CELLS]), default=[c.id for c in CELLS],
                    metavar="ID[,ID...]", help="cells to run, from: " + ",".join(c.id for c in CELLS))
    ap.add_argument("--pipelines", type=_int_list, default=None, metavar="P[,P...]",
                    help="only cells with these -P values")
    ap.add_argument("--workloads", type=_workload_list, default=None, metavar="W[,W...]",
                    help="only cells of these workloads, from: " + ",".join(WORKLOADS))
    ap.add_argument("--variants", type=_name_list(list(VARIANTS)), default=list(VARIANTS), metavar="V[,V...]",
                    help="servers to run (redis and ours are always run), from: " + ",".join(VARIANTS))
    ap.add_argument("--clients", type=int, default=50, help="redis-benchmark -c")
    ap.add_argument("--keyspace", type=int, default=100_000, help="redis-benchmark -r")
    ap.add_argument("--server-cmd", default=DEFAULT_OURS_CMD, metavar="TEMPLATE",
                    help="command for our server; placeholders {port} (required), {host}, {python}, {loop}")
    ap.add_argument("--redis-cmd", default=DEFAULT_REDIS_CMD, metavar="TEMPLATE",
                    help="command for the reference redis-server; same placeholders")
    ap.add_argument("--loop", choices=("uvloop", "asyncio"), default=None,
                    help="event loop for our server, substituted for {loop} (passed as --event-loop) "
                         "[default: uvloop if importable, else asyncio]")
    ap.add_argument("--server-cpu", default="0", metavar="CPUS",
                    help="taskset -c list for both servers")
    ap.add_argument("--client-cpu", default="1", metavar="CPUS",
                    help="taskset -c list for redis-benchmark")
    ap.add_argument("--no-pin", action="store_true", help="do not use taskset at all")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the unmeasured warm-up SET run (-P 16, -n keyspace*scale) per server")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each run, wait up to SECONDS until other processes use <5%% of a CPU "
                         "(for shared machines; 0 = don't wait)")
    ap.add_argument("--redis-benchmark", default="redis-benchmark", metavar="PATH")
    ap.add_argument("--redis-server", default="redis-server", metavar="PATH",
                    help="only used for the version in the machine facts")
    ap.add_argument("--ready-timeout", type=float, default=15.0, help="seconds to wait for +PONG")
    ap.add_argument("--run-timeout", type=float, default=600.0, help="seconds before a redis-benchmark run is killed")
    ap.add_argument("--log-dir", default=None,
                    help="keep server logs here (default: temp files, removed on clean stop)")
    ap.add_argument("--markdown-out", metavar="FILE", default=None,
                    help="also write the Markdown block to FILE (see --markdown-mode)")
    ap.add_argument("--markdown-mode", choices=("append", "write"), default="append",
                    help="append to or overwrite --markdown-out")
    ap.add_argument("--json-out", metavar="FILE", default=None, help="write raw per-run data as JSON")
    args = ap.parse_args(argv)

    cells = [c for c in CELLS if c.id in args.cells
             and (args.pipelines is None or c.pipeline in args.pipelines)
             and (args.workloads is None or c.workload in args.workloads)]
    if not cells:
        ap.error("no cell left after --cells/--pipelines/--workloads")
    args.cell_list = cells
    args.variant_list = [VARIANTS[n] for n in VARIANTS if n in SERVER_ORDER or n in args.variants]
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.requests_scale is None:
        args.requests_scale = QUICK_SCALE if args.quick else 1.0
    if args.runs < 1 or args.requests_scale <= 0:
        ap.error("--runs must be >= 1 and --requests-scale > 0")
    args.loop_explicit = args.loop is not None
    if args.loop is None:
        args.loop = _default_loop()
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    for exe in (args.redis_benchmark,) + (() if args.no_pin else ("taskset",)):
        if shutil.which(exe) is None:
            ap.error(f"{exe} not found in PATH")
    for opt in ("server_cmd", "redis_cmd"):
        if "{port}" not in getattr(args, opt):
            ap.error(f"--{opt.replace('_', '-')} must contain the {{port}} placeholder")
    return args


def requests_for(cell: Cell, scale: float) -> int:
    return max(1000, int(round(cell.requests * scale)))


@dataclass
class Run:
    cell: str
    workload: str
    pipeline: int
    clients: int
    run: int
    server: str
    requests: int
    ok: bool = False
    error: str = ""
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    avg_ms: float = 0.0
    max_ms: float = 0.0
    wall_s: float = 0.0
    server_cpu_s: float = 0.0
    cpu_us_per_op: float = 0.0
    server_util: float = 0.0   # server CPU seconds / wall seconds
    client_util: float = 0.0   # redis-benchmark CPU seconds / wall seconds
    idle_server_cpu_s: float = 0.0  # CPU burnt meanwhile by the *other* (idle) server
    other_util: float = 0.0    # CPU of unrelated processes during the run / wall seconds


class ProbeFailed(RuntimeError):
    pass


def probe(srv: ServerProcess) -> None:
    """Check that the server handles the benchmark commands before timing them."""
    key = "__throughput_probe__"
    replies = resp_pipeline(srv.port, [("SET", key, "v", "EX", "60"), ("GET", key)], raise_errors=False)
    if replies[0] != "OK" or replies[1] != b"v":
        raise ProbeFailed(f"{srv.name}: sanity probe failed: SET ... EX 60 -> {replies[0]!r}, GET -> {replies[1]!r}")


def _safe_cpu(srv: ServerProcess) -> float | None:
    try:
        return srv.cpu_seconds()
    except (OSError, ValueError):
        return None


def run_one(args: argparse.Namespace, servers: dict[str, ServerProcess], cell: Cell, run_idx: int,
            name: str) -> Run:
    srv = servers[name]
    n = requests_for(cell, args.requests_scale)
    rec = Run(cell=cell.id, workload=cell.workload, pipeline=cell.pipeline, clients=cell.clients,
              run=run_idx + 1, server=name, requests=n)
    if not srv.alive():
        rec.error = f"server not running (exit code {srv.popen.returncode})"
        return rec
    exclude = {os.getpid()} | {s.pid for s in servers.values()}
    if args.wait_quiet > 0:
        quiet, frac = wait_for_quiet(exclude, timeout=args.wait_quiet)
        if not quiet:
            log(f"  machine still busy after {args.wait_quiet:.0f} s (other processes at {frac:.0%} of a CPU); "
                "running anyway")
    others_before = process_cpu_snapshot(exclude)
    before = {k: _safe_cpu(s) for k, s in servers.items()}
    try:
        res = run_redis_benchmark(srv.port, WORKLOADS[cell.workload], requests=n, clients=cell.clients,
                                  pipeline=cell.pipeline, keyspace=cell.keyspace or args.keyspace, threads=1,
                                  cpus=args.client_cpu, binary=args.redis_benchmark,
                                  timeout=args.run_timeout)
    except BenchmarkError as e:
        rec.error = str(e).splitlines()[0][:300] + " | " + " ".join(str(e).splitlines()[1:])[:300]
        if not srv.alive():
            rec.error += f" | server died (exit {srv.popen.returncode}); log tail: {srv.log_tail(500)!r}"
        return rec
    after = {k: _safe_cpu(s) for k, s in servers.items()}
    others = other_cpu_seconds(others_before, process_cpu_snapshot(exclude))
    if before[name] is None or after[name] is None:
        rec.error = "could not read server CPU time (server exited?)"
        return rec
    rec.ok = True
    rec.rps, rec.p50_ms, rec.p99_ms, rec.avg_ms, rec.max_ms = res.rps, res.p50_ms, res.p99_ms, res.avg_ms, res.max_ms
    rec.wall_s = res.wall_seconds
    rec.server_cpu_s = after[name] - before[name]
    rec.cpu_us_per_op = rec.server_cpu_s / n * 1e6
    rec.server_util = rec.server_cpu_s / res.wall_seconds
    rec.client_util = res.client_cpu_seconds / res.wall_seconds
    rec.other_util = others / res.wall_seconds
    rec.idle_server_cpu_s = sum(after[k] - before[k] for k in servers
                                if k != name and before[k] is not None and after[k] is not None)
    return rec


# ---------------------------------------------------------------- reporting

def _fmt_int(x: float | None) -> str:
    return "FAIL" if x is None else f"{x:,.0f}"


def _fmt_lat(p50: float | None, p99: float | None) -> str:
    return "FAIL" if p50 is None else f"{p50:.3f} / {p99:.3f}"


def _fmt_cpu(x: float | None) -> str:
    return "FAIL" if x is None else f"{x:.2f}"


def _fmt_ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _servers_for(args, cell_id: str) -> list[str]:
    return [v.name for v in args.variant_list if not v.feature_only or cell_id in FEATURE_CELLS]


def summarize(args: argparse.Namespace, runs: list[Run]) -> list[dict]:
    cells = []
    for c in args.cell_list:
        cell: dict = {"cell": c.id, "workload": c.workload, "pipeline": c.pipeline, "clients": c.clients,
                      "requests": requests_for(c, args.requests_scale)}
        for name in _servers_for(args, c.id):
            ok = [r for r in runs if r.cell == c.id and r.server == name and r.ok]
            if not ok:
                cell[name] = None
                continue
            rps = [r.rps for r in ok]
            cell[name] = {
                "n_ok": len(ok),
                "rps": median(rps),
                "rps_spread": (max(rps) - min(rps)) / median(rps) if median(rps) else 0.0,
                "p50_ms": median(r.p50_ms for r in ok),
                "p99_ms": median(r.p99_ms for r in ok),
                "cpu_us_per_op": median(r.cpu_us_per_op for r in ok),
                "server_util": median(r.server_util for r in ok),
                "client_util": median(r.client_util for r in ok),
            }
        r = cell.get("redis")
        for name in _servers_for(args, c.id):
            o = cell.get(name)
            cell["ratio_" + name] = (o["rps"] / r["rps"]) if (r and o and r["rps"]) else None
        cell["ratio"] = cell.get("ratio_ours")
        cells.append(cell)
    return cells


def _label(c: dict) -> str:
    cmd = WORKLOADS[c["workload"]]
    text = " ".join(a if len(a) <= 20 else f"<{len(a)} bytes>" for a in cmd)
    if c["workload"] == "MGET10":
        text = "MGET key:__rand_int__ ×10"
    return f"`{text}`" + (f" ({c['clients']} connections)" if c["clients"] != 50 else "")


def render_markdown(args: argparse.Namespace, facts: list[tuple[str, str]], servers_info: dict,
                    runs: list[Run], cells: list[dict], started: float, finished: float) -> str:
    g = lambda c, s, k: (c[s][k] if c.get(s) else None)  # noqa: E731
    out = []
    out.append(f"## Throughput: repram-resp vs redis-server ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}"
               f"{', quick' if args.quick else ''})")
    out.append("")
    repro = shlex.join([sys.executable, os.path.relpath(os.path.abspath(sys.argv[0]), REPO_ROOT), *sys.argv[1:]])
    out.append("Reproduce (from the repo root):")
    out.append("")
    out.append("```sh")
    out.append(repro)
    out.append("```")
    out.append("")
    has_nolane = any(v.name == "ours-nolane" for v in args.variant_list)
    head = ("| Workload | -P | redis ops/s | ours ops/s | **ours/redis** | redis p50 / p99 ms | ours p50 / p99 ms "
            "| redis CPU µs/op | ours CPU µs/op |")
    rule = "|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    if has_nolane:
        head += " lane off ops/s | **lane off/redis** | lane off CPU µs/op |"
        rule += "--:|--:|--:|"
    out += [head, rule]
    for c in cells:
        line = (f"| {_label(c)} | {c['pipeline']} "
                f"| {_fmt_int(g(c, 'redis', 'rps'))} | {_fmt_int(g(c, 'ours', 'rps'))} | **{_fmt_ratio(c['ratio'])}** "
                f"| {_fmt_lat(g(c, 'redis', 'p50_ms'), g(c, 'redis', 'p99_ms'))} "
                f"| {_fmt_lat(g(c, 'ours', 'p50_ms'), g(c, 'ours', 'p99_ms'))} "
                f"| {_fmt_cpu(g(c, 'redis', 'cpu_us_per_op'))} | {_fmt_cpu(g(c, 'ours', 'cpu_us_per_op'))} |")
        if has_nolane:
            line += (f" {_fmt_int(g(c, 'ours-nolane', 'rps'))} | **{_fmt_ratio(c.get('ratio_ours-nolane'))}** "
                     f"| {_fmt_cpu(g(c, 'ours-nolane', 'cpu_us_per_op'))} |")
        out.append(line)
    out.append("")
    features = [v.name for v in args.variant_list if v.feature_only]
    if features:
        out.append("Cost of features on the hot path (same cells, ratio to `ours` with the feature off; "
                   "ops/s ratio < 1 and CPU ratio > 1 mean the feature costs):")
        out.append("")
        out.append("| Feature variant | Workload | -P | ops/s | ops/s / ours | CPU µs/op | CPU / ours |")
        out.append("|---|---|--:|--:|--:|--:|--:|")
        for f in features:
            for c in cells:
                if c["cell"] not in FEATURE_CELLS:
                    continue
                fo, base = c.get(f), c.get("ours")
                why = servers_info.get(f, {}).get("unavailable")
                if fo is None:
                    out.append(f"| {f} | {_label(c)} | {c['pipeline']} | n/a{(' (' + why + ')') if why else ''} | | | |")
                    continue
                rr = fo["rps"] / base["rps"] if base and base["rps"] else None
                cr = fo["cpu_us_per_op"] / base["cpu_us_per_op"] if base and base["cpu_us_per_op"] else None
                out.append(f"| {f} | {_label(c)} | {c['pipeline']} | {_fmt_int(fo['rps'])} | {_fmt_ratio(rr)} "
                           f"| {_fmt_cpu(fo['cpu_us_per_op'])} | {_fmt_ratio(cr)} |")
        out.append("")
    reqs = ", ".join(f"{c.id}: -n {requests_for(c, args.requests_scale)}" for c in args.cell_list)
    pin = ("unpinned" if args.server_cpu is None
           else f"servers pinned with `taskset -c {args.server_cpu}`, redis-benchmark with `taskset -c {args.client_cpu}`")
    out.append(f"Medians of {args.runs} run(s) per server and cell; within a cell the runs alternate between the "
               f"servers, which all stay up for the whole benchmark (SET runs populate the keys that GET and MGET read; "
               f"{'an unmeasured warm-up SET run per server first' if not args.no_warmup else 'no warm-up'}). "
               f"`redis-benchmark --threads 1 -c <clients> -r {args.keyspace}` (64 KB values: -r 1000), {reqs}; {pin}. "
               f"`ours` runs the compiled fast lane when it is built (see `repram_fast_lane` in the facts), "
               f"`ours-nolane` the same code with REPRAM_NO_EXTENSIONS=1. "
               f"Latencies are redis-benchmark's (ms); CPU µs/op = server utime+stime delta (/proc/<pid>/stat) "
               f"/ requests (for MGET: per MGET of 10 keys).")
    out.append("")
    notes = []
    for c in cells:
        for name in _servers_for(args, c['cell']):
            s = c.get(name)
            label = f"{c['cell']} {name}"
            if s is None:
                if not servers_info.get(name, {}).get("unavailable"):
                    notes.append(f"{label}: all runs failed (see per-run data)")
                continue
            if s["n_ok"] > 1 and s["rps_spread"] > 0.10:
                notes.append(f"{label}: noisy, ops/s spread (max-min)/median = {s['rps_spread']:.0%}")
            if s["client_util"] > 0.90:
                notes.append(f"{label}: redis-benchmark used {s['client_util']:.0%} of its CPU "
                             f"(server at {s['server_util']:.0%}) -- likely client-bound, ops/s is a lower bound")
    idle = [r for r in runs if r.ok and r.wall_s and r.idle_server_cpu_s / r.wall_s > 0.01 * max(1, len(servers_info) - 3)
            and r.idle_server_cpu_s > 2 / CLK_TCK]
    if idle:
        notes.append(f"{len(idle)} run(s) where the idle servers used >1% CPU each meanwhile "
                     f"(max {max(r.idle_server_cpu_s / r.wall_s for r in idle):.1%} in total)")
    busy = [r for r in runs if r.ok and r.other_util > 0.05]
    if busy:
        notes.append(f"{len(busy)} run(s) where other processes on the machine used >5% of a CPU meanwhile "
                     f"(max {max(r.other_util for r in busy):.0%}; column 'other CPU %') -- results disturbed, "
                     "rerun on a quiet machine")
    failed = [r for r in runs if not r.ok]
    if failed:
        notes.append(f"{len(failed)} failed run(s), see per-run data")
    for name, info in servers_info.items():
        if isinstance(info, dict) and info.get("unavailable"):
            notes.append(f"{name} not measured: {info['unavailable']}")
    if notes:
        out.append("Notes:")
        out.append("")
        out.extend(f"- {n}" for n in notes)
        out.append("")
    out.append("Machine and setup:")
    out.append("")
    for k, v in facts:
        out.append(f"- {k}: `{v}`")
    out.append(f"- event loop (ours): `{servers_info['loop']}`")
    for v in args.variant_list:
        info = servers_info.get(v.name)
        if not info:
            continue
        out.append(f"- {v.name} command: `{info.get('command', 'n/a')}`"
                   + (f" (env {' '.join(k + '=' + x for k, x in v.env)})" if v.env else "")
                   + (f"; held connection: {' / '.join(' '.join(h) for h in v.hold)}" if v.hold else ""))
        out.append(f"- {v.name} at end: RSS {info.get('rss_mib', 'n/a')}, DBSIZE {info.get('dbsize', 'n/a')}"
                   + (f", repram_fast_lane {info['lane']}" if info.get("lane") else ""))
    out.append(f"- total benchmark time: {finished - started:.0f} s")
    if servers_info.get("steal"):
        out.append("- hypervisor steal during benchmark: "
                   + ", ".join(f"{k} {v:.2%}" for k, v in servers_info["steal"].items() if k != "cpu"))
    out.append("")
    out.append("<details><summary>Per-run data</summary>")
    out.append("")
    out.append("| # | Cell | run | server | ops/s | p50 ms | p99 ms | CPU µs/op | server CPU % | client CPU % | other CPU % | wall s |")
    out.append("|--:|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for i, r in enumerate(runs, 1):
        if r.ok:
            out.append(f"| {i} | {r.cell} | {r.run} | {r.server} | {r.rps:,.0f} | {r.p50_ms:.3f} "
                       f"| {r.p99_ms:.3f} | {r.cpu_us_per_op:.2f} | {r.server_util:.0%} | {r.client_util:.0%} "
                       f"| {r.other_util:.0%} | {r.wall_s:.2f} |")
        else:
            err = r.error.replace("|", "\\|").replace("\n", " ")[:300]
            out.append(f"| {i} | {r.cell} | {r.run} | {r.server} | FAIL: {err} | | | | | | | |")
    out.append("")
    out.append("</details>")
    out.append("")
    return "\n".join(out)


def _hold(srv: ServerProcess, commands) -> tuple[socket.socket | None, str]:
    """Open a connection, send the commands, keep it open.  Returns (socket,
    "") or (None, why) when the server refuses one of them."""
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    f = sock.makefile("rb")
    for cmd in commands:
        sock.sendall(encode_command(*cmd))
        line = f.readline()
        if line.startswith(b"-"):
            sock.close()
            return None, f"{' '.join(cmd)} -> {line.decode(errors='replace').strip()}"
    return sock, ""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    started = time.time()
    facts = machine_facts(REPO_ROOT, redis_server=args.redis_server, redis_benchmark=args.redis_benchmark)
    loop_desc = args.loop if "{loop}" in args.server_cmd else "not passed (--server-cmd has no {loop})"
    if args.loop_explicit and "{loop}" not in args.server_cmd:
        log(f"warning: --loop {args.loop} ignored: --server-cmd has no {{loop}} placeholder")

    servers: dict[str, ServerProcess] = {}
    held: list = []
    runs: list[Run] = []
    servers_info: dict = {"loop": loop_desc}
    ticks_before = system_cpu_ticks()
    try:
        for v in args.variant_list:
            tmpl = args.redis_cmd if v.name == "redis" else args.server_cmd
            if v.args:
                tmpl = tmpl + " " + shlex.join(v.args)
            extra = {"cwd": ablate.tree(v.tree)} if v.tree else {}
            srv = start_server(tmpl, name=v.name, cpus=args.server_cpu, ready_timeout=args.ready_timeout, **extra,
                               log_dir=args.log_dir, subst={"loop": args.loop},
                               env=dict(os.environ, **dict(v.env)) if v.env else None)
            servers[v.name] = srv
            servers_info[v.name] = {"command": srv.command_line}
            log(f"started {v.name}: pid {srv.pid}, port {srv.port}, ready after {srv.ready_seconds * 1000:.0f} ms: "
                f"{srv.command_line}")
            if v.hold:
                sock, why = _hold(srv, v.hold)
                if sock is None:
                    servers_info[v.name]["unavailable"] = f"the server refused {why}"
                    log(f"{v.name}: not measured: {why}")
                else:
                    held.append(sock)
        for name, srv in servers.items():
            probe(srv)
            if name != "redis":
                lane = info_fields(srv.port, "server").get("repram_fast_lane", "n/a")
                servers_info[name]["lane"] = lane
                log(f"{name}: repram_fast_lane:{lane}")
        active = [v.name for v in args.variant_list if not servers_info[v.name].get("unavailable")]
        if not args.no_warmup:
            n = max(1000, int(round(args.keyspace * args.requests_scale)))
            for name in active:
                log(f"warm-up {name}: SET -P 16 -n {n}")
                run_redis_benchmark(servers[name].port, WORKLOADS["SET"], requests=n, clients=50,
                                    pipeline=16, keyspace=args.keyspace, cpus=args.client_cpu,
                                    binary=args.redis_benchmark, timeout=args.run_timeout)

        plan = [(c, i, name) for c in args.cell_list for i in range(args.runs)
                for name in _servers_for(args, c.id) if name in active]
        for k, (c, i, name) in enumerate(plan, 1):
            rec = run_one(args, servers, c, i, name)
            runs.append(rec)
            head = f"[{k}/{len(plan)}] {c.id} run {i + 1}/{args.runs} {name:13}"
            if rec.ok:
                log(f"{head}: {rec.rps:>11,.0f} ops/s  p50 {rec.p50_ms:.3f}  p99 {rec.p99_ms:.3f} ms  "
                    f"cpu {rec.cpu_us_per_op:.2f} us/op  (server {rec.server_util:.0%}, "
                    f"client {rec.client_util:.0%}, other {rec.other_util:.0%}, {rec.wall_s:.1f} s)")
            else:
                log(f"{head}: FAILED: {rec.error}")

        for name, srv in servers.items():
            info = servers_info[name]
            if srv.alive():
                try:
                    info["rss_mib"] = f"{srv.rss_bytes() / 2**20:.1f} MiB"
                except OSError:
                    pass
                try:
                    info["dbsize"] = str(srv.command("DBSIZE"))
                except (OSError, RespError, ValueError) as e:
                    info["dbsize"] = f"n/a ({e})"
        servers_info["steal"] = steal_fraction(ticks_before, system_cpu_ticks())
    finally:
        for sock in held:
            sock.close()
        for srv in servers.values():
            rc = srv.stop(keep_log=bool(args.log_dir))
            log(f"stopped {srv.name} (pid {srv.pid}, exit code {rc})")

    finished = time.time()
    cells = summarize(args, runs)
    md = render_markdown(args, facts, servers_info, runs, cells, started, finished)
    print(md)
    if args.markdown_out:
        exists = os.path.exists(args.markdown_out) and os.path.getsize(args.markdown_out) > 0
        with open(args.markdown_out, "a" if args.markdown_mode == "append" else "w") as f:
            if exists and args.markdown_mode == "append":
                f.write("\n")
            f.write(md)
        log(f"markdown {'appended' if args.markdown_mode == 'append' else 'written'} to {args.markdown_out}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"facts": dict(facts), "args": {k: (v if not isinstance(v, list) or not v or isinstance(v[0], (str, int))
                                                          else [asdict(x) for x in v])
                                                      for k, v in vars(args).items()},
                       "servers": servers_info, "cells": cells, "runs": [asdict(r) for r in runs],
                       "started": started, "finished": finished}, f, indent=2)
        log(f"raw data written to {args.json_out}")
    return 0 if all(r.ok for r in runs) else 1


if __name__ == "__main__":
    run_main(main, ProbeFailed, BenchmarkError, OSError)
