"""HTTP API benchmark (issue 9): REPRAM's PUT/GET over HTTP with wrk, beside
the RESP figures of the same run, and the MCP round trip per tool call.

* repram-resp is started once with ``--http-port``, pinned like
  throughput.py (servers on CPU 0, load generators on CPU 1).
* HTTP: ``wrk -t1 -c50 --latency`` for ``--duration`` seconds per run, PUT
  with a Lua script (64-byte values, ``X-TTL: 600``, keys ``key:0`` ..
  ``key:99999``), then GET of the same keys (a second Lua script), ``--runs``
  runs each, alternating; medians reported with p50 / p99.
* RESP, same run, same machine state: ``redis-benchmark -c 50 -P 1`` SET EX
  and GET against our node and against the real redis-server.
* The ratio to REPRAM's TypeScript reference node (about 29,000 PUT/s and
  32,000 GET/s under wrk at 50 connections on this kind of machine).
* MCP: ``repram-resp-mcp`` driven over stdio by the mcp SDK's client, every
  tool ``--mcp-calls`` times, embedded and with ``--url redis://`` and
  ``--url http://`` (p50 / p99 ms per call).  Needs the ``[mcp]`` extra.

    python benchmarks/http_api.py --quick                    # smoke test, ~30 s
    python benchmarks/http_api.py --markdown-out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from harness import (REDIS_SERVER_CMD, REPO_ROOT, free_port, machine_facts, median, pin_command,
                     resp_pipeline, run_redis_benchmark, start_server)

REPRAM_TS_PUT, REPRAM_TS_GET = 29_000, 32_000
OURS_CMD = ("{python} -m repram_resp --port {port} --bind 127.0.0.1 --http-port {http_port} "
            "--loglevel warning")

PUT_LUA = """
wrk.method = "PUT"
wrk.body = string.rep("x", 64)
wrk.headers["X-TTL"] = "600"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/data/key:" .. (n % 100000))
end
"""
GET_LUA = """
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/data/key:" .. (n % 100000))
end
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(text: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"(\d+) requests in", text).group(1))
    lat = {}
    for pct, val, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        lat[pct] = float(val) * _UNITS[unit]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {"rps": rps, "requests": total, "p50": lat.get("50"), "p99": lat.get("99"),
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(0) if errors else ""}


def run_wrk(port: int, script: str, duration: int, cpus) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
        path = f.name
    try:
        argv = pin_command(["wrk", "-t1", "-c50", "-d%ds" % duration, "--latency", "-s", path,
                            "http://127.0.0.1:%d/" % port], cpus)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60)
        if out.returncode != 0:
            raise RuntimeError("wrk failed: %s" % out.stderr)
        return parse_wrk(out.stdout)
    finally:
        os.unlink(path)


def wait_http(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/health" % port, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.05)    # polling a starting process, bounded by the deadline


# -- MCP round trips ------------------------------------------------------------------

async def mcp_latency(args_list, calls: int) -> dict:
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client
    params = StdioServerParameters(command=sys.executable, args=["-m", "repram_resp.mcp", *args_list],
                                   cwd=REPO_ROOT, env={"PATH": os.environ.get("PATH", "")})
    out = {}
    async with stdio_client(params) as (r, w):
        async with ClientSession(r, w) as s:
            await s.initialize()
            plan = [("repram_store", lambda i: {"data": "v" * 64, "key": "bench:%d" % i, "ttl_seconds": 600}),
                    ("repram_retrieve", lambda i: {"key": "bench:%d" % i}),
                    ("repram_exists", lambda i: {"key": "bench:%d" % i}),
                    ("repram_list_keys", lambda i: {"prefix": "bench:", "limit": 10})]
            for tool, argf in plan:
                for i in range(10):                       # warm-up
                    await s.call_tool(tool, argf(i))
                times = []
                for i in range(calls):
                    t0 = time.perf_counter()
                    res = await s.call_tool(tool, argf(i))
                    times.append((time.perf_counter() - t0) * 1000)
                    assert not res.is_error, res
                times.sort()
                out[tool] = (times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))])
    return out


# -- main -------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--resp-requests", type=int, default=200_000)
    ap.add_argument("--mcp-calls", type=int, default=300)
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--quick", action="store_true", help="1 run of 3 s, fewer requests")
    ap.add_argument("--no-mcp", action="store_true")
    ap.add_argument("--markdown-out", help="append the report to this file")
    a = ap.parse_args()
    if a.quick:
        a.duration, a.runs, a.resp_requests, a.mcp_calls = 3, 1, 50_000, 50
    for exe in ("wrk", "redis-benchmark", "redis-server", "taskset"):
        if not shutil.which(exe):
            print("missing %s" % exe, file=sys.stderr)
            return 1
    facts = machine_facts()
    http_port = free_port()
    ours = start_server(OURS_CMD, name="ours", cpus=a.server_cpu, subst={"http_port": http_port})
    redis = start_server(REDIS_SERVER_CMD, name="redis", cpus=a.server_cpu)
    results = {"put": [], "get": [], "resp": {}}
    try:
        wait_http(http_port)
        # Every key the GET script reads exists (wrk's counter restarts per run).
        for i in range(0, 100_000, 10_000):
            resp_pipeline(ours.port, [("SET", "key:%d" % k, "x" * 64, "EX", "600")
                                      for k in range(i, i + 10_000)])
        run_wrk(http_port, PUT_LUA, 2, a.client_cpu)              # warm-up
        for _ in range(a.runs):
            for kind, script in (("put", PUT_LUA), ("get", GET_LUA)):
                c0 = ours.cpu_seconds()
                r = run_wrk(http_port, script, a.duration, a.client_cpu)
                r["cpu_us"] = (ours.cpu_seconds() - c0) * 1e6 / max(1, r["requests"])
                results[kind].append(r)
        for name, srv in (("redis", redis), ("ours", ours)):
            for test, cmd in (("SET", ["SET", "key:__rand_int__", "x" * 64, "EX", "600"]),
                              ("GET", ["GET", "key:__rand_int__"])):
                rs, cpus = [], []
                for _ in range(a.runs):
                    c0 = srv.cpu_seconds()
                    rs.append(run_redis_benchmark(srv.port, cmd, requests=a.resp_requests, clients=50,
                                                  pipeline=1, cpus=a.client_cpu))
                    cpus.append((srv.cpu_seconds() - c0) * 1e6 / a.resp_requests)
                results["resp"][(name, test)] = (median(r.rps for r in rs), median(r.p50_ms for r in rs),
                                                 median(r.p99_ms for r in rs), median(cpus))
        ours_cpu = ours.cpu_seconds()
    finally:
        ours.stop()
        redis.stop()
    mcp = {}
    if not a.no_mcp:
        node = start_server(OURS_CMD, name="ours-mcp", cpus=a.server_cpu,
                            subst={"http_port": (hp := free_port())})
        try:
            wait_http(hp)
            for label, extra in (("embedded", []), ("--url redis://", ["--url", "redis://127.0.0.1:%d" % node.port]),
                                 ("--url http://", ["--url", "http://127.0.0.1:%d" % hp])):
                mcp[label] = asyncio.run(mcp_latency(extra, a.mcp_calls))
        finally:
            node.stop()

    def med(rows, k):
        vals = [r[k] for r in rows if r[k] is not None]
        return median(vals) if vals else float("nan")
    put_rps, get_rps = med(results["put"], "rps"), med(results["get"], "rps")
    lines = ["## Issue 9: REPRAM's HTTP API (wrk) beside RESP, and MCP round trips "
             "(%s)" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), ""]
    lines += ["| Workload | ours ops/s | p50 / p99 ms | server CPU µs/req | vs REPRAM TS node | same-run RESP -P 1: ours ops/s (p50 / p99 ms), CPU | same-run RESP -P 1: redis-server ops/s (p50 / p99 ms), CPU |",
              "|---|---|---|---|---|---|---|"]
    for label, rows, ts, test in (("HTTP PUT (64 B, X-TTL)", results["put"], REPRAM_TS_PUT, "SET"),
                                  ("HTTP GET", results["get"], REPRAM_TS_GET, "GET")):
        o = results["resp"][("ours", test)]
        r = results["resp"][("redis", test)]
        lines.append("| %s | %.0f | %.2f / %.2f | %.1f | %.2fx of %dk | %s: %.0f (%.2f / %.2f), %.1f µs/op | %.0f (%.2f / %.2f), %.1f µs/op |" % (
            label, med(rows, "rps"), med(rows, "p50"), med(rows, "p99"), med(rows, "cpu_us"),
            med(rows, "rps") / ts, ts // 1000,
            "SET EX" if test == "SET" else test, o[0], o[1], o[2], o[3], r[0], r[1], r[2], r[3]))
    bad = "%d PUT / %d GET" % (sum(r["non2xx"] for r in results["put"]),
                               sum(r["non2xx"] for r in results["get"]))
    lines += ["", "Medians of %d run(s). HTTP: `wrk -t1 -c50 -d%ds --latency` with a Lua script (PUT: "
              "64-byte body, `X-TTL: 600`, keys `key:0..99999`; GET: the same keys, all present), %s non-2xx "
              "answers. RESP: `redis-benchmark --threads 1 -c 50 -P 1 -r 100000 -n %d` (SET "
              "key:__rand_int__ <64 B> EX 600 / GET). Servers pinned with `taskset -c %s`, load "
              "generators with `taskset -c %s`. Our node's CPU over the whole HTTP+RESP run: %.1f s."
              % (a.runs, a.duration, bad, a.resp_requests, a.server_cpu, a.client_cpu, ours_cpu),
              "", "Server CPU µs/req is the node's utime+stime over a wrk run divided by its "
              "requests: 1e6 / that is what one core sustains when the node has it to itself "
              "(PUT %.0f/s, GET %.0f/s), the figure least disturbed by other load on the machine."
              % (1e6 / med(results["put"], "cpu_us"), 1e6 / med(results["get"], "cpu_us")),
              "", "Ratio to the REPRAM TypeScript reference node (29k PUT/s, 32k GET/s under wrk at 50 "
              "connections, reference §9): PUT %.2fx, GET %.2fx (target >= 2x)." % (
                  put_rps / REPRAM_TS_PUT, get_rps / REPRAM_TS_GET)]
    if mcp:
        lines += ["", "MCP round trip per tool call (mcp SDK client -> `repram-resp-mcp` over stdio; "
                  "%d calls per tool after 10 warm-up calls; p50 / p99 ms):" % a.mcp_calls, "",
                  "| mode | repram_store | repram_retrieve | repram_exists | repram_list_keys (limit 10) |",
                  "|---|---|---|---|---|"]
        for label, d in mcp.items():
            lines.append("| %s | %s |" % (label, " | ".join(
                "%.2f / %.2f" % d[t] for t in ("repram_store", "repram_retrieve", "repram_exists",
                                                 "repram_list_keys"))))
    lines += ["", "Machine: " + "; ".join("%s: %s" % kv for kv in facts if kv[0] in (
        "CPU model", "nproc", "load average at start", "python", "redis-server --version", "git commit")),
        "", "Caveat: a 2-core machine shared with other teams' test runs; numbers move by tens of "
        "percent between runs, and the HTTP and RESP figures above come from the same run, so their "
        "ratios are the comparable part.", ""]
    report = "\n".join(lines)
    print(report)
    if a.markdown_out:
        with open(a.markdown_out, "a") as f:
            f.write("\n" + report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
