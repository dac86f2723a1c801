#!/usr/bin/env python3
"""Prefix listing benchmark: ``SCAN cursor MATCH rare:*`` over 1,000,000 keys.

Run from the repo root:

    python benchmarks/scan_prefix.py            # full run: 1,000,000 keys, 3 repeats
    python benchmarks/scan_prefix.py --quick    # smoke test: 100,000 keys, 1 repeat

Both servers (repram-resp = "ours", and the real redis-server) are started on
free loopback ports, pinned to CPU 0, and loaded with the same keys through
pipelined raw RESP (``SET k v EX 3600``, batches of 10,000 commands): 16-byte
filler keys (``key:%012d`` / ``uid:%012d``) and exactly ``--rare`` (100) keys
``rare:%011d`` spread through the load order.  Then a client pinned to CPU 1
iterates ``SCAN cursor MATCH rare:*`` (default COUNT, which is what
``redis-cli --scan --pattern 'rare:*'`` sends) until the cursor is 0, and the
same with ``COUNT 1000``, alternating redis / ours.  Reported: wall time, round
trips, keys found (must equal --rare on both) and redis_time / ours_time.

See benchmarks/README.md.  stdlib + (optional) hiredis for reply parsing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
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
    ServerProcess,
    _encode_command,
    _read_reply,
    emit_markdown,
    facts_markdown,
    install_sigterm_handler,
    machine_facts,
    median,
    other_cpu_seconds,
    pin_command,
    pin_self,
    process_cpu_snapshot,
    repro_command,
    resp_bulk_load,
    source_digest,
    start_server,
    wait_for_quiet,
)

try:
    import hiredis
except ImportError:  # pragma: no cover - falls back to the harness parser
    hiredis = None

DEFAULT_REDIS_CMD = REDIS_SERVER_CMD
DEFAULT_OURS_CMD = "{python} -m repram_resp --port {port} --bind 127.0.0.1"
SERVER_ORDER = ("redis", "ours")
PATTERN = b"rare:*"
TARGET_SPEEDUP = 50.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: 100,000 keys, 1 repeat")
    ap.add_argument("--keys", type=int, default=None, help="total keys per server [default: 1000000, quick: 100000]")
    ap.add_argument("--rare", type=int, default=100, help="how many of them start with 'rare:'")
    ap.add_argument("--filler-prefixes", default="key:,uid:",
                    help="comma-separated prefixes for the other keys (4 chars -> 16-byte keys); "
                         "'uid:' sorts after 'rare:', so the rare keys are not at the end of a sorted index")
    ap.add_argument("--value-size", type=int, default=8, help="value bytes")
    ap.add_argument("--batch", type=int, default=10_000, help="commands per pipelined load batch")
    ap.add_argument("--load-protocol", choices=("resp", "inline"), default="resp",
                    help="encode the load as RESP multibulk (what clients send) or inline commands")
    ap.add_argument("--counts", default="default,1000",
                    help="SCAN COUNT variants; 'default' sends no COUNT (server default, 10)")
    ap.add_argument("--repeat", type=int, default=None, help="timed iterations per server and variant "
                                                            "[default: 3, quick: 1]")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                    help="before each timed iteration, wait up to SECONDS until other processes use <5%% of a CPU")
    ap.add_argument("--no-redis-cli", action="store_true",
                    help="skip the cross-check with `redis-cli --scan --pattern 'rare:*'`")
    ap.add_argument("--server-cmd", default=DEFAULT_OURS_CMD, metavar="TEMPLATE",
                    help="our server; placeholders {port} (required), {host}, {python}")
    ap.add_argument("--redis-cmd", default=DEFAULT_REDIS_CMD, metavar="TEMPLATE", help="reference server")
    ap.add_argument("--server-cpu", default="0", help="taskset -c list for both servers")
    ap.add_argument("--client-cpu", default="1", help="CPU list this driver (the SCAN client) pins itself to")
    ap.add_argument("--no-pin", action="store_true", help="no taskset / affinity at all")
    ap.add_argument("--ready-timeout", type=float, default=15.0)
    ap.add_argument("--log-dir", default=None, help="keep server logs here")
    ap.add_argument("--markdown-out", metavar="FILE", default=None, help="append the Markdown block to FILE")
    ap.add_argument("--markdown-mode", choices=("append", "write"), default="append")
    ap.add_argument("--json-out", metavar="FILE", default=None, help="write raw data as JSON")
    args = ap.parse_args(argv)
    if args.keys is None:
        args.keys = 100_000 if args.quick else 1_000_000
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    args.prefixes = [p.encode() for p in args.filler_prefixes.split(",") if p]
    if not args.prefixes or any(p.startswith(b"rare:") or b"rare:".startswith(p) for p in args.prefixes):
        ap.error("--filler-prefixes must be non-empty and must not overlap 'rare:'")
    args.count_list = []
    for c in args.counts.split(","):
        c = c.strip().lower()
        if c == "default":
            args.count_list.append(None)
        elif c.isdigit() and int(c) > 0:
            args.count_list.append(int(c))
        else:
            ap.error(f"bad --counts entry {c!r}")
    if not 0 <= args.rare <= args.keys or args.repeat < 1 or args.batch < 1:
        ap.error("need 0 <= --rare <= --keys, --repeat >= 1, --batch >= 1")
    if args.no_pin:
        args.server_cpu = args.client_cpu = None
    elif shutil.which("taskset") is None:
        ap.error("taskset not found; use --no-pin")
    return args


# ------------------------------------------------------------------ loading

def key_plan(args: argparse.Namespace) -> tuple[list[bytes], list[bytes]]:
    """All keys in load order, and the rare ones.  Rare keys are spread evenly."""
    n, rare = args.keys, args.rare
    rare_at = {(j * n) // rare + n // (2 * rare) if rare else -1 for j in range(rare)}
    prefixes = args.prefixes
    keys, rare_keys, j = [], [], 0
    for i in range(n):
        if i in rare_at:
            k = b"rare:%011d" % j
            j += 1
            rare_keys.append(k)
        else:
            k = prefixes[i % len(prefixes)] + b"%012d" % i
        keys.append(k)
    assert len(rare_keys) == rare, (len(rare_keys), rare)
    return keys, rare_keys


def load_payloads(keys: list[bytes], value_size: int, batch: int, protocol: str) -> list[tuple[bytes, int]]:
    out = []
    for s in range(0, len(keys), batch):
        parts = []
        for i, k in enumerate(keys[s:s + batch], s):
            v = (b"v%d" % i).ljust(value_size, b".")[:value_size]
            if protocol == "inline":
                parts.append(b"SET %s %s EX 3600\r\n" % (k, v))
                continue
            parts.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$2\r\nEX\r\n$4\r\n3600\r\n"
                         % (len(k), k, len(v), v))
        out.append((b"".join(parts), len(parts)))
    return out


# ------------------------------------------------------------------ SCAN client

class Conn:
    """One persistent connection, like redis-cli's; replies parsed by hiredis if present."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hiredis is not None:
            self.reader = hiredis.Reader()
        else:
            self.file = self.sock.makefile("rb")

    def call(self, payload: bytes):
        self.sock.sendall(payload)
        if hiredis is None:
            r = _read_reply(self.file)
        else:
            r = self.reader.gets()
            while r is False:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("connection closed")
                self.reader.feed(data)
                r = self.reader.gets()
        if isinstance(r, (RespError, Exception)):
            raise RespError(str(r))
        return r

    def close(self) -> None:
        self.sock.close()


def scan_all(conn: Conn, count: int | None) -> dict:
    tail = [b"MATCH", PATTERN] + ([b"COUNT", b"%d" % count] if count else [])
    cursor = b"0"
    trips = 0
    found: list[bytes] = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    while True:
        reply = conn.call(_encode_command([b"SCAN", cursor, *tail]))
        trips += 1
        cursor = reply[0]
        found.extend(reply[1])
        if cursor == b"0":
            break
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "round_trips": trips, "returned": len(found), "unique": len(set(found)),
            "found": found, "client_cpu_s": time.process_time() - c0}


def redis_cli_scan(port: int, cpus: str | None) -> dict:
    argv = pin_command(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "--scan", "--pattern", PATTERN.decode()],
                       cpus)
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, timeout=600)
    wall = time.perf_counter() - t0
    lines = [ln for ln in p.stdout.split(b"\n") if ln]
    return {"wall_s": wall, "returned": len(lines), "unique": len(set(lines)), "rc": p.returncode,
            "stderr": p.stderr.decode(errors="replace")[:300], "argv": argv}


# ------------------------------------------------------------------ main

def variant_name(count: int | None) -> str:
    return "SCAN cursor MATCH rare:* (default COUNT)" if count is None else f"SCAN cursor MATCH rare:* COUNT {count}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_sigterm_handler()
    started = time.time()
    digest0 = source_digest()
    facts = machine_facts(REPO_ROOT) + [("repram_resp/**.py sha256[:16] at start", digest0)]
    pin_desc = "unpinned" if args.no_pin else pin_self(args.client_cpu)
    log(f"driver pinned: {pin_desc}")

    t = time.perf_counter()
    keys, rare_keys = key_plan(args)
    payloads = load_payloads(keys, args.value_size, args.batch, args.load_protocol)
    expected = set(rare_keys)
    del keys
    log(f"built {args.keys:,} SET commands in {len(payloads)} batches ({time.perf_counter() - t:.1f} s)")

    servers: dict[str, ServerProcess] = {}
    info: dict = {}
    runs: list[dict] = []
    cli_runs: list[dict] = []
    problems: list[str] = []
    try:
        for name, tmpl in (("redis", args.redis_cmd), ("ours", args.server_cmd)):
            srv = start_server(tmpl, name=name, cpus=args.server_cpu, ready_timeout=args.ready_timeout,
                               log_dir=args.log_dir)
            servers[name] = srv
            log(f"started {name}: pid {srv.pid}, port {srv.port}: {srv.command_line}")
        failed: set[str] = set()
        for name in SERVER_ORDER:
            srv = servers[name]
            t = time.perf_counter()
            try:
                n, errs = resp_bulk_load(srv.port, payloads)
            except (OSError, ValueError) as e:
                failed.add(name)
                problems.append(f"{name}: load failed: {e}; server alive: {srv.alive()}; log tail: "
                                f"{srv.log_tail(400)!r}")
                info[name] = {"command": srv.command_line, "load_s": float("nan"), "dbsize": "n/a", "errors": []}
                log(f"{name}: LOAD FAILED: {e}")
                continue
            load_s = time.perf_counter() - t
            if n != args.keys:
                problems.append(f"{name}: {n:,} replies for {args.keys:,} SET commands")
            dbsize = srv.command("DBSIZE")
            info[name] = {"command": srv.command_line, "load_s": load_s, "dbsize": dbsize, "errors": errs}
            log(f"loaded {name}: {n:,} replies in {load_s:.1f} s ({n / load_s:,.0f} SET/s), DBSIZE {dbsize}"
                + (f", errors: {errs}" if errs else ""))
            if errs:
                problems.append(f"{name}: load errors: {errs}")
            if dbsize != args.keys:
                problems.append(f"{name}: DBSIZE {dbsize} after loading {args.keys} keys")
        time.sleep(1.0)  # let redis finish incremental rehashing in serverCron

        live = [name for name in SERVER_ORDER if name not in failed]
        conns = {name: Conn(servers[name].port) for name in live}
        for count in args.count_list:
            for rep in range(args.repeat):
                for name in live:
                    srv = servers[name]
                    exclude = {os.getpid()} | {s.pid for s in servers.values()}
                    if args.wait_quiet > 0:
                        quiet, frac = wait_for_quiet(exclude, timeout=args.wait_quiet)
                        if not quiet:
                            log(f"  machine still busy after {args.wait_quiet:.0f} s ({frac:.0%} of a CPU)")
                    others0 = process_cpu_snapshot(exclude)
                    cpu0 = srv.cpu_seconds()
                    try:
                        r = scan_all(conns[name], count)
                    except (OSError, RespError, ValueError) as e:
                        r = {"error": f"{type(e).__name__}: {e}"}
                        problems.append(f"{name} {variant_name(count)}: {r['error']}")
                        try:
                            conns[name].close()
                            conns[name] = Conn(srv.port)
                        except OSError:
                            pass
                    else:
                        r["server_cpu_s"] = srv.cpu_seconds() - cpu0
                        r["other_util"] = other_cpu_seconds(others0, process_cpu_snapshot(exclude)) / max(r["wall_s"], 1e-3)
                        got = set(r.pop("found"))
                        r["exact"] = got == expected
                        if not r["exact"]:
                            problems.append(f"{name} {variant_name(count)} rep {rep + 1}: found {len(got)} unique keys, "
                                            f"{len(got & expected)} of the {len(expected)} expected, "
                                            f"{len(got - expected)} unexpected")
                    r.update(server=name, count=count, rep=rep + 1)
                    runs.append(r)
                    if "error" not in r:
                        log(f"{variant_name(count)} rep {rep + 1} {name:5}: {r['wall_s'] * 1000:10.2f} ms, "
                            f"{r['round_trips']:,} round trips, {r['unique']} keys "
                            f"(server CPU {r['server_cpu_s']:.2f} s, client CPU {r['client_cpu_s']:.2f} s)")
        for c in conns.values():
            c.close()
        if not args.no_redis_cli and shutil.which("redis-cli"):
            for rep in range(args.repeat):
                for name in live:
                    r = redis_cli_scan(servers[name].port, None if args.no_pin else args.client_cpu)
                    r.update(server=name, rep=rep + 1)
                    cli_runs.append(r)
                    log(f"redis-cli --scan rep {rep + 1} {name:5}: {r['wall_s'] * 1000:10.2f} ms, {r['unique']} keys, "
                        f"rc {r['rc']}")
                    if r["rc"] != 0 or r["unique"] != args.rare:
                        problems.append(f"{name}: redis-cli --scan rc {r['rc']}, {r['unique']} keys; {r['stderr']}")
        for name in SERVER_ORDER:
            srv = servers[name]
            if not srv.alive():
                problems.append(f"{name} died (exit {srv.popen.returncode}); log: {srv.log_tail(500)!r}")
                continue
            info[name]["rss_mib"] = srv.rss_bytes() / 2**20
    finally:
        for srv in servers.values():
            rc = srv.stop(keep_log=bool(args.log_dir))
            log(f"stopped {srv.name} (pid {srv.pid}, exit code {rc})")

    if source_digest() != digest0:
        problems.append("repram_resp source changed while the benchmark ran (servers load it at start)")
    md = render(args, facts, pin_desc, info, runs, cli_runs, problems, started)
    emit_markdown(md, args.markdown_out, args.markdown_mode)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"facts": dict(facts), "args": {k: v for k, v in vars(args).items() if k != "prefixes"},
                       "servers": info, "runs": runs, "redis_cli_runs": cli_runs, "problems": problems},
                      f, indent=2, default=str)
    return 1 if problems else 0


def _ms(x: float) -> str:
    return f"{x * 1000:,.1f}" if x >= 0.01 else f"{x * 1000:,.3f}"


def render(args, facts, pin_desc, info, runs, cli_runs, problems, started) -> str:
    out = [f"## SCAN prefix listing: repram-resp vs redis-server "
           f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}{', quick' if args.quick else ''})", "",
           "Reproduce (from the repo root):", "", "```sh", repro_command(), "```", "",
           "| Variant | redis ms | ours ms | speed-up redis/ours | redis round trips | ours round trips "
           "| keys found redis / ours | redis server CPU s | ours server CPU s |",
           "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    summary = []
    for count in args.count_list:
        cell = {}
        for name in SERVER_ORDER:
            ok = [r for r in runs if r["server"] == name and r["count"] == count and "error" not in r]
            cell[name] = ok
        r, o = cell["redis"], cell["ours"]
        if r and o:
            rw, ow = median(x["wall_s"] for x in r), median(x["wall_s"] for x in o)
            ratio = rw / ow if ow else float("inf")
            summary.append((count, ratio))
            found = f"{'/'.join(sorted({str(x['unique']) for x in r}))} / {'/'.join(sorted({str(x['unique']) for x in o}))}"
            out.append(f"| `{variant_name(count)}` | {_ms(rw)} | {_ms(ow)} | **{ratio:,.0f}×** "
                       f"| {median(x['round_trips'] for x in r):,.0f} | {median(x['round_trips'] for x in o):,.0f} "
                       f"| {found} | {median(x['server_cpu_s'] for x in r):.2f} | {median(x['server_cpu_s'] for x in o):.2f} |")
        else:
            out.append(f"| `{variant_name(count)}` | {'FAIL' if not r else _ms(median(x['wall_s'] for x in r))} "
                       f"| {'FAIL' if not o else _ms(median(x['wall_s'] for x in o))} | n/a | | | | | |")
    rc = [x for x in cli_runs if x["server"] == "redis"]
    oc = [x for x in cli_runs if x["server"] == "ours"]
    if rc and oc:
        rw, ow = median(x["wall_s"] for x in rc), median(x["wall_s"] for x in oc)
        out.append(f"| `redis-cli --scan --pattern 'rare:*'` (whole process) | {_ms(rw)} | {_ms(ow)} "
                   f"| {rw / ow:,.1f}× | | | {'/'.join(sorted({str(x['unique']) for x in rc}))} / "
                   f"{'/'.join(sorted({str(x['unique']) for x in oc}))} | | |")
    out.append("")
    filler = ", ".join(f"`{p.decode()}%012d`" for p in args.prefixes)
    out.append(f"{args.keys:,} keys per server ({args.keys - args.rare:,} filler keys {filler} alternating, plus "
               f"exactly {args.rare} keys `rare:%011d` spread through the load order; all keys 16 bytes, "
               f"{args.value_size}-byte values, `SET k v EX 3600`, loaded pipelined ({args.load_protocol} encoding) "
               f"in batches of {args.batch:,}). Each iteration runs `SCAN cursor MATCH rare:* [COUNT n]` from cursor 0 until the "
               f"server returns cursor 0, on one persistent connection (reply parsing: "
               f"{'hiredis' if hiredis else 'pure Python'}). Times are medians of {args.repeat} iteration(s) per "
               f"server, alternating redis, ours; speed-up = redis median / ours median (target ≥ {TARGET_SPEEDUP:.0f}×). "
               f"Servers pinned with `taskset -c {args.server_cpu}`, client {pin_desc}. Server CPU is the utime+stime "
               f"delta from /proc (10 ms ticks, so ours reads ~0). The `redis-cli` row times the whole "
               f"`redis-cli --scan` process (startup + connect ≈ a few ms included).")
    out.append("")
    notes = list(problems)
    for count, ratio in summary:
        if ratio < TARGET_SPEEDUP:
            notes.append(f"{variant_name(count)}: speed-up {ratio:.1f}× is below the {TARGET_SPEEDUP:.0f}× target")
    busy = [r for r in runs if "error" not in r and r["other_util"] > 0.05 and r["wall_s"] > 0.05]
    if busy:
        notes.append(f"{len(busy)} timed iteration(s) with other processes using >5% of a CPU meanwhile "
                     f"(max {max(r['other_util'] for r in busy):.0%})")
    if notes:
        out += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    out += ["Machine and setup:", ""] + facts_markdown(facts)
    for name in SERVER_ORDER:
        i = info.get(name, {})
        if i and i["load_s"] != i["load_s"]:
            out.append(f"- {name} command: `{i['command']}`; load FAILED")
        elif i:
            out.append(f"- {name} command: `{i['command']}`; load {i['load_s']:.1f} s "
                       f"({args.keys / i['load_s']:,.0f} SET/s), DBSIZE {i['dbsize']}, RSS at end "
                       f"{i.get('rss_mib', float('nan')):.0f} MiB")
    out += ["", "<details><summary>Per-iteration data</summary>", "",
            "| variant | rep | server | wall ms | round trips | keys returned | unique | exact set | server CPU s "
            "| client CPU s | other CPU % |", "|---|--:|---|--:|--:|--:|--:|---|--:|--:|--:|"]
    for r in runs:
        if "error" in r:
            out.append(f"| {variant_name(r['count'])} | {r['rep']} | {r['server']} | FAIL: {r['error'][:200]} | | | | | | | |")
        else:
            out.append(f"| {variant_name(r['count'])} | {r['rep']} | {r['server']} | {_ms(r['wall_s'])} | "
                       f"{r['round_trips']:,} | {r['returned']} | {r['unique']} | {'yes' if r['exact'] else 'NO'} | "
                       f"{r['server_cpu_s']:.2f} | {r['client_cpu_s']:.2f} | {r['other_util']:.0%} |")
    for r in cli_runs:
        out.append(f"| redis-cli --scan | {r['rep']} | {r['server']} | {_ms(r['wall_s'])} | | {r['returned']} "
                   f"| {r['unique']} | | | | |")
    out += ["", "</details>", ""]
    return "\n".join(out)


if __name__ == "__main__":
    run_main(main, OSError)
