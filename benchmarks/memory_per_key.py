#!/usr/bin/env python3
"""Memory per key: RSS growth for 1,000,000 keys (16-byte keys, 64-byte values, TTL).

Run from the repo root:

    python benchmarks/memory_per_key.py            # full run: 1,000,000 keys, 2 runs per server
    python benchmarks/memory_per_key.py --quick    # smoke test: 100,000 keys, 1 run

For every run the server (repram-resp = "ours", or the real redis-server) is
started fresh, pinned to CPU 0.  VmRSS (/proc/<pid>/status) is read once it
is stable after startup, then ``--keys`` ``SET key:%012d <64 bytes> EX 3600``
are loaded through pipelined raw RESP (batches of 10,000, client on CPU 1),
the loading connection is closed and VmRSS is polled until stable again.
bytes/key = (RSS_after - RSS_before) / keys.  Next to it the script shows the
server's own accounting, INFO ``used_memory`` growth / keys (for us that is
len(key) + len(value) + ENTRY_OVERHEAD_BYTES per key), so the gap between
accounting and reality is visible.

See benchmarks/README.md.  stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    median,
    pin_self,
    repro_command,
    resp_bulk_load,
    source_digest,
    start_server,
    wait_rss_stable,
)

DEFAULT_REDIS_CMD = REDIS_SERVER_CMD
DEFAULT_OURS_CMD = "{python} -m repram_resp --port {port} --bind 127.0.0.1"
SERVER_ORDER = ("redis", "ours")
TARGET_RATIO = 2.0                 # issue 11 (was 3x)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 100,000 keys, 1 run per server")
    ap.add_argument("--keys", type=int, default=None, help="keys per run [default: 1000000, quick: 100000]")
    ap.add_argument("--value-size", type=int, default=64, help="value bytes")
    ap.add_argument("--ttl", type=int, default=3600, help="EX seconds")
    ap.add_argument("--runs", type=int, default=None, help="fresh-server runs per server [default: 2, quick: 1]")
    ap.add_argument("--batch", type=int, default=10_000, help="commands per pipelined batch")
    ap.add_argument("--load-protocol", choices=("resp", "inline"), default="resp",
                    help="encode the load as RESP multibulk (what clients send) or inline commands")
    ap.add_argument("--server-cmd", default=DEFAULT_OURS_CMD, metavar="TEMPLATE",
                    help="our server; placeholders {port} (required), {host}, {python}")
    ap.add_argument("--redis-cmd", default=DEFAULT_REDIS_CMD, metavar="TEMPLATE", help="reference server")
    ap.add_argument("--server-cpu", default="0", help="taskset -c list for the servers")
    ap.add_argument("--client-cpu", default="1", help="CPU list this driver (the loader) pins itself to")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument("--settle-timeout", type=float, default=20.0,
                    help="max seconds to wait for RSS to stop changing (4 readings 0.25 s apart within 0.2%%)")
    ap.add_argument("--ready-timeout", type=float, default=15.0)
    ap.add_argument("--log-dir", default=None)
    ap.add_argument("--markdown-out", metavar="FILE", default=None, help="append the Markdown block to FILE")
    ap.add_argument("--markdown-mode", choices=("append", "write"), default="append")
    ap.add_argument("--json-out", metavar="FILE", default=None)
    args = ap.parse_args(argv)
    if args.keys is None:
        args.keys = 100_000 if args.quick else 1_000_000
    if args.runs is None:
        args.runs = 1 if args.quick else 2
    if args.keys < 1 or args.runs < 1 or args.value_size < 1:
        ap.error("--keys, --runs and --value-size must be >= 1")
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    elif shutil.which("taskset") is None:
        ap.error("taskset not found; use --no-pin")
    return args


def payloads(n: int, value_size: int, ttl: int, batch: int, protocol: str = "resp"):
    """Generate batches lazily so the driver itself stays small."""
    ttl_b = b"%d" % ttl
    tail = b"$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(ttl_b), ttl_b)
    for s in range(0, n, batch):
        parts = []
        for i in range(s, min(n, s + batch)):
            k = b"key:%012d" % i
            v = (b"val:%012d:" % i).ljust(value_size, b"x")[:value_size]
            if protocol == "inline":
                parts.append(b"SET %s %s EX %s\r\n" % (k, v, ttl_b))
                continue
            parts.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n%s" % (len(k), k, len(v), v, tail))
        yield b"".join(parts), len(parts)


def one_run(args: argparse.Namespace, name: str, template: str, run: int) -> dict:
    rec: dict = {"server": name, "run": run}
    with start_server(template, name=name, cpus=args.server_cpu, ready_timeout=args.ready_timeout,
                      log_dir=args.log_dir) as srv:
        rec["command"] = srv.command_line
        rss0, stable0 = wait_rss_stable(srv.pid, timeout=args.settle_timeout)
        used0 = int(info_fields(srv.port, "memory")["used_memory"])
        t = time.perf_counter()
        n, errs = resp_bulk_load(srv.port, payloads(args.keys, args.value_size, args.ttl, args.batch, args.load_protocol))
        load_s = time.perf_counter() - t
        rss_peak_load = srv.rss_bytes()
        t = time.perf_counter()
        rss1, stable1 = wait_rss_stable(srv.pid, timeout=args.settle_timeout)
        settle_s = time.perf_counter() - t
        mem = info_fields(srv.port, "memory")
        used1 = int(mem["used_memory"])
        dbsize = srv.command("DBSIZE")
        with open(f"/proc/{srv.pid}/status") as f:
            hwm = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:")), 0)
        rec.update(rss_before=rss0, rss_after=rss1, rss_hwm=hwm, rss_right_after_load=rss_peak_load,
                   stable_before=stable0, stable_after=stable1, settle_s=settle_s,
                   used_before=used0, used_after=used1, load_s=load_s, replies=n, errors=errs, dbsize=dbsize,
                   entry_overhead=mem.get("entry_overhead_bytes"), allocator=mem.get("mem_allocator"),
                   rss_per_key=(rss1 - rss0) / args.keys, used_per_key=(used1 - used0) / args.keys)
        if not srv.alive():
            rec["died"] = srv.log_tail(500)
    return rec


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    started = time.time()
    digest0 = source_digest()
    facts = machine_facts(REPO_ROOT) + [("repram_resp/**.py sha256[:16] at start", digest0)]
    pin_desc = "unpinned" if args.no_pin else pin_self(args.client_cpu)
    templates = {"redis": args.redis_cmd, "ours": args.server_cmd}
    runs, problems = [], []
    for run in range(1, args.runs + 1):
        for name in SERVER_ORDER:
            try:
                rec = one_run(args, name, templates[name], run)
            except (OSError, RespError, ValueError, KeyError) as e:
                rec = {"server": name, "run": run, "error": f"{type(e).__name__}: {e}"}
                problems.append(f"{name} run {run}: {rec['error']}")
                log(f"{name} run {run}: FAILED: {rec['error']}")
                runs.append(rec)
                continue
            runs.append(rec)
            if rec["errors"]:
                problems.append(f"{name} run {run}: load errors {rec['errors']}")
            if rec["replies"] != args.keys:
                problems.append(f"{name} run {run}: {rec['replies']:,} replies for {args.keys:,} SET commands")
            if rec["dbsize"] != args.keys:
                problems.append(f"{name} run {run}: DBSIZE {rec['dbsize']} after loading {args.keys} keys")
            if not (rec["stable_before"] and rec["stable_after"]):
                problems.append(f"{name} run {run}: RSS did not settle within {args.settle_timeout:.0f} s")
            if "died" in rec:
                problems.append(f"{name} run {run}: server died: {rec['died']!r}")
            log(f"{name} run {run}: RSS {rec['rss_before'] / 2**20:.1f} -> {rec['rss_after'] / 2**20:.1f} MiB "
                f"= {rec['rss_per_key']:.1f} B/key; used_memory {rec['used_per_key']:.1f} B/key; "
                f"load {rec['load_s']:.1f} s, settled in {rec['settle_s']:.1f} s")
    if source_digest() != digest0:
        problems.append("repram_resp source changed while the benchmark ran (each fresh server loads the "
                        "code current at its start)")
    md = render(args, facts, pin_desc, runs, problems, started)
    emit_markdown(md, args.markdown_out, args.markdown_mode)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"facts": dict(facts), "args": vars(args), "runs": runs, "problems": problems}, f, indent=2)
    return 1 if problems else 0


def render(args, facts, pin_desc, runs, problems, started) -> str:
    ok = {name: [r for r in runs if r["server"] == name and "error" not in r] for name in SERVER_ORDER}
    out = [f"## Memory per key: repram-resp vs redis-server "
           f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}{', quick' if args.quick else ''})", "",
           "Reproduce (from the repo root):", "", "```sh", repro_command(), "```", "",
           "| Server | RSS before MiB | RSS after MiB | **RSS bytes/key** | INFO used_memory bytes/key "
           "| accounted / RSS | peak RSS (VmHWM) MiB | load s |",
           "|---|--:|--:|--:|--:|--:|--:|--:|"]
    med = {}
    for name in SERVER_ORDER:
        rs = ok[name]
        if not rs:
            out.append(f"| {name} | FAIL | | | | | | |")
            continue
        m = {k: median(r[k] for r in rs) for k in ("rss_before", "rss_after", "rss_per_key", "used_per_key",
                                                  "rss_hwm", "load_s")}
        med[name] = m
        out.append(f"| {name} | {m['rss_before'] / 2**20:.1f} | {m['rss_after'] / 2**20:.1f} "
                   f"| **{m['rss_per_key']:.1f}** | {m['used_per_key']:.1f} | {m['used_per_key'] / m['rss_per_key']:.2f} "
                   f"| {m['rss_hwm'] / 2**20:.1f} | {m['load_s']:.1f} |")
    ratio = None
    if "ours" in med and "redis" in med:
        ratio = med["ours"]["rss_per_key"] / med["redis"]["rss_per_key"]
        out.append(f"| **ours / redis** | | | **{ratio:.2f}×** (target ≤ {TARGET_RATIO:.0f}×) "
                   f"| {med['ours']['used_per_key'] / med['redis']['used_per_key']:.2f}× | | | |")
    out.append("")
    ov = next((r["entry_overhead"] for r in ok["ours"] if r.get("entry_overhead")), None)
    out.append(f"{args.keys:,} keys `key:%012d` (16 bytes) with {args.value_size}-byte values, "
               f"`SET k v EX {args.ttl}`, loaded pipelined ({args.load_protocol} encoding) in batches of {args.batch:,} on one connection "
               f"(closed before the final reading). Each run starts a fresh server; medians of {args.runs} run(s) per "
               f"server (runs alternate redis, ours). RSS = VmRSS from /proc/<pid>/status, read when 4 readings "
               f"0.25 s apart agree within 0.2 %; bytes/key = (RSS after − RSS before) / keys. INFO `used_memory` "
               f"bytes/key is the server's own accounting (redis: jemalloc-allocated bytes; ours: "
               f"len(key) + len(value) + ENTRY_OVERHEAD_BYTES = {len(b'key:000000000000')} + {args.value_size} + "
               f"{ov if ov is not None else '?'}). 'accounted / RSS' < 1 means the accounting underestimates real "
               f"memory. Servers pinned with `taskset -c {args.server_cpu}`, loader {pin_desc}.")
    out.append("")
    notes = list(problems)
    if ratio is not None and ratio > TARGET_RATIO:
        notes.append(f"ours uses {ratio:.2f}× redis's RSS per key, above the {TARGET_RATIO:.0f}× target")
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Machine and setup:", ""] + facts_markdown(facts)
    for name in SERVER_ORDER:
        if ok[name]:
            r = ok[name][0]
            out.append(f"- {name} command: `{r['command']}`" + (f" (mem_allocator {r['allocator']})" if r.get("allocator") else ""))
    out += ["", "<details><summary>Per-run data</summary>", "",
            "| run | server | RSS before B | RSS right after load B | RSS settled B | VmHWM B | used_memory before → after "
            "| RSS B/key | used B/key | DBSIZE | settle s |",
            "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in runs:
        if "error" in r:
            out.append(f"| {r['run']} | {r['server']} | FAIL: {r['error'][:200]} | | | | | | | | |")
        else:
            out.append(f"| {r['run']} | {r['server']} | {r['rss_before']:,} | {r['rss_right_after_load']:,} "
                       f"| {r['rss_after']:,} | {r['rss_hwm']:,} | {r['used_before']:,} → {r['used_after']:,} "
                       f"| {r['rss_per_key']:.1f} | {r['used_per_key']:.1f} | {r['dbsize']} | {r['settle_s']:.1f} |")
    out += ["", "</details>", ""]
    return "\n".join(out)


if __name__ == "__main__":
    run_main(main)
