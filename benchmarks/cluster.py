"""Replication benchmarks: a 3-node cluster against a single node, in one run.

Run from the repo root:

    python benchmarks/cluster.py --quick                 # smoke test, ~1 minute
    python benchmarks/cluster.py                         # full run, a few minutes
    python benchmarks/cluster.py --markdown-out benchmarks/RESULTS.md

What it measures (each stage starts its own servers; all on 127.0.0.1):

1. Write throughput.  ``redis-benchmark -P 16 -c 50 SET key:__rand_int__ v EX 60``
   against (a) one node alone and (b) the origin of a 3-node cluster, runs
   alternating, median of ``--runs``.  On this 2-CPU machine the node under
   load (single or origin) is pinned to CPU 0; redis-benchmark *and* the two
   peers share CPU 1, so the peers' apply work competes with the load
   generator, not with the origin.  After each cluster run the script waits
   until both peers hold exactly the origin's keys (nothing lost, backlog
   drained) and reports how long that took.
2. Replication lag at half load.  A paced load of 50 % of the cluster's
   measured throughput (pre-encoded pipelined SETs on 8 connections, sent
   on a 2 ms schedule) runs on the origin while two probes measure, every
   10 ms:
   * *WAIT round trip*: ``SET lagprobe:i`` + ``WAIT 2 1000`` pipelined on one
     connection; the time from sending to the WAIT reply is the time until
     both peers acknowledged the write -- one-way lag plus the ack's way back,
     so an upper bound of the lag;
   * *readable* (the default, issue 11): from the origin's ``+OK`` for
     the probe SET until ``GET lagprobe:i`` on each peer returns it (each
     peer polled back to back on its own connection);
   * *one-way* (``--lag-probe event``): a subscriber on a peer
     (``notify-keyspace-events K$``, ``PSUBSCRIBE __keyspace@0__:lagprobe:*``)
     timestamps each probe key's arrival; lag = arrival - send (same host,
     same monotonic clock).  The notifications cost that peer a publish per
     applied write and close its stream lane, so this probe loads what it
     measures.
3. Failure detection with the default intervals (ping 250 ms, suspect 1 s,
   down 3 s): SIGSTOP a peer (its sockets stay open: a black hole) and poll
   the origin's ``INFO replication`` every 5 ms until it shows the peer
   ``state=down``; then SIGKILL a peer (the kernel resets its connections
   and redials are refused) and do the same.
4. Catch-up: load ``--keys`` keys (distinct, EX 3600, pipelined) into a
   node, start a fresh node with it as its only seed, poll ``DBSIZE`` on the
   new node until equal; time from the new node's launch and from its ready.

Targets (issue #4): replicated throughput >= 0.5x single node; lag p99 <=
10 ms at half load; dead peer detected <= 5 s; catch-up of 1M keys <= 20 s.
Prints a Markdown report (with machine facts) on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (emit_markdown, encode_command, facts_markdown, info_fields,  # noqa: E402
                     install_sigterm_handler, machine_facts, median, pin_self, proc_cpu_seconds, repro_command,
                     resp_bulk_load, resp_command, run_redis_benchmark, start_server)

NODE = "{python} -m repram_resp --port {port} --bind 127.0.0.1 --event-loop {loop} --node-id {nid}"
CPORT_RE = re.compile(r"cluster port (\d+)")


def log(msg: str) -> None:
    print("[cluster-bench] " + msg, file=sys.stderr, flush=True)


def cluster_port(srv, timeout: float = 10.0) -> int:
    """The OS-chosen cluster port, from the node's log.  Polled: a node
    answers PING as soon as its client port is bound, a moment before the
    cluster port line is written."""
    deadline = time.monotonic() + timeout
    while True:
        with open(srv.log_path, errors="replace") as f:
            m = CPORT_RE.search(f.read())
        if m:
            return int(m.group(1))
        if time.monotonic() > deadline:
            raise RuntimeError("no 'cluster port' line in %s" % srv.log_path)
        time.sleep(0.01)


def start_node(nid: str, cpus, loop: str, *extra: str, seed: int | None = None):
    tmpl = NODE + " --cluster-port 0"
    if extra:
        tmpl += " " + " ".join(extra)
    if seed is not None:
        tmpl += " --peers 127.0.0.1:%d" % seed
    return start_server(tmpl, name=nid, cpus=cpus, subst={"loop": loop, "nid": nid}, env=NODE_ENV or None)


# --no-lane: every node runs the pure-Python path (REPRAM_NO_EXTENSIONS=1).
NODE_ENV: dict = {}


def peer_states(port: int) -> dict:
    info = info_fields(port, "replication")
    out = {}
    for k, v in info.items():
        if k.startswith("peer") and "," in v:
            d = dict(kv.split("=", 1) for kv in v.split(","))
            out[d["id"]] = d
    return out


def dbsize(port: int) -> int:
    return int(resp_command(port, "DBSIZE"))


def wait_until(pred, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise RuntimeError("timed out waiting for " + what)


def start_cluster(loop: str, origin_cpu: str, peer_cpu: str, *extra: str):
    return start_cluster_of(3, loop, origin_cpu, peer_cpu, *extra)


def start_cluster_of(size: int, loop: str, origin_cpu: str, peer_cpu: str, *extra: str):
    """An origin on origin_cpu and size - 1 peers on peer_cpu, meshed and streaming."""
    a = start_node("origin", origin_cpu, loop, *extra)
    seed = cluster_port(a)
    nodes = [a] + [start_node("peer-" + "bcdefgh"[i], peer_cpu, loop, *extra, seed=seed)
                   for i in range(size - 1)]
    for n in nodes:
        wait_until(lambda n=n: [p["state"] for p in peer_states(n.port).values()] == ["up"] * (size - 1),
                   15, "the mesh")
    wait_until(lambda: int(info_fields(a.port, "replication")["connected_slaves"]) == size - 1, 15,
               "streams")
    return nodes


# -- stage 1 -----------------------------------------------------------------------

def stage_throughput(args, loop):
    set_cmd = ["SET", "key:__rand_int__", "v", "EX", "60"]
    single = start_node("single", args.server_cpu, loop)
    ae = args.cluster_anti_entropy_interval_ms
    extra = () if ae is None else ("--cluster-anti-entropy-interval-ms", str(ae))
    cluster = start_cluster(loop, args.server_cpu, args.client_cpu, *extra)
    res = {"single": [], "cluster": [], "drain_s": [], "cpu_single": [],
           "cpu_origin": [], "cpu_peer": [], "util_origin": []}

    def measured(srv, peers=()):
        c0 = proc_cpu_seconds(srv.pid)
        p0 = [proc_cpu_seconds(p.pid) for p in peers]
        t0 = time.monotonic()
        r = run_redis_benchmark(srv.port, set_cmd, requests=args.requests, pipeline=16,
                                cpus=args.client_cpu)
        wall = time.monotonic() - t0
        cpu = proc_cpu_seconds(srv.pid) - c0
        pcpu = [proc_cpu_seconds(p.pid) - a for p, a in zip(peers, p0)]
        return r, cpu * 1e6 / args.requests, pcpu, cpu / wall
    try:
        for srv in (single, cluster[0]):        # warm-up, unmeasured
            run_redis_benchmark(srv.port, set_cmd, requests=args.requests // 5, pipeline=16,
                                cpus=args.client_cpu)
        for run in range(args.runs):
            r, us, _, util = measured(single)
            res["single"].append(r.rps)
            res["cpu_single"].append(us)
            log("run %d single: %.0f ops/s, %.2f us CPU/op, %.0f %% of a CPU" % (run + 1, r.rps, us, util * 100))
            r, us, pcpu, util = measured(cluster[0], cluster[1:])
            res["cpu_origin"].append(us)
            res["util_origin"].append(util)
            res["cpu_peer"].append(max(pcpu) * 1e6 / args.requests)
            t = time.monotonic()
            want = dbsize(cluster[0].port)
            wait_until(lambda: all(dbsize(n.port) == want for n in cluster[1:]), 60, "peers to converge")
            res["drain_s"].append(time.monotonic() - t)
            res["cluster"].append(r.rps)
            log("run %d cluster: %.0f ops/s, origin %.2f us CPU/op at %.0f %% of a CPU; peers "
                "converged %.3f s after the run (%d keys)"
                % (run + 1, r.rps, us, util * 100, res["drain_s"][-1], want))
        res["offset"] = info_fields(cluster[0].port, "replication")["master_repl_offset"]
        res["lane"] = info_fields(cluster[0].port, "server").get("repram_fast_lane", "n/a")
        return res, cluster
    finally:
        single.stop()


# -- stage 2 -----------------------------------------------------------------------

async def _readable_lag(peers: list, key: bytes, value: bytes, t_ack: float, out: list,
                        give_up_s: float = 2.0) -> None:
    """Poll GET key on each peer connection (reader, writer, hiredis reader)
    until it returns value; append (time readable - t_ack) per peer."""
    async def one(r, w, rdr):
        while True:
            w.write(encode_command("GET", key))
            while True:
                x = rdr.gets()
                if x is not False:
                    break
                data = await r.read(1 << 16)
                if not data:
                    return
                rdr.feed(data)
            now = time.monotonic()
            if x == value or now - t_ack > give_up_s:
                out.append(now - t_ack)
                return
    await asyncio.gather(*(one(*c) for c in peers))


async def _pinger(port: int, out: list, stop) -> None:
    """PING port back to back (1 ms apart), appending each round trip: how
    long that process's loop (and its CPU's scheduler) makes a request wait."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            t = time.monotonic()
            w.write(b"*1\r\n$4\r\nPING\r\n")
            await r.readuntil(b"\r\n")
            out.append(time.monotonic() - t)
            await asyncio.sleep(0.001)
    finally:
        w.close()


async def _lag_run(origin: int, peer: int, rate: float, duration: float, conns: int = 8,
                   batch: int = 50, readers: list | None = None, event_probe: bool = False,
                   ping: dict | None = None):
    import hiredis
    rng = random.Random(7)
    pool = [b"".join(encode_command("SET", "key:%d" % rng.randrange(100_000), "v", "EX", "60")
                     for _ in range(batch)) for _ in range(256)]
    reply_len = len(b"+OK\r\n") * batch
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    sent = [0]
    acked = [0]
    writers = []

    async def drain(reader):
        while not stop.is_set():
            data = await reader.read(1 << 16)
            if not data:
                return
            acked[0] += len(data) // 5

    for _ in range(conns):
        r, w = await asyncio.open_connection("127.0.0.1", origin)
        writers.append(w)
        loop.create_task(drain(r))

    # One-way probe (--lag-probe event): keyspace notifications on the peer.
    # They cost the peer a publish per applied write and close its stream
    # lane, so the default probe polls the peers instead (readers).
    sr, sw = await asyncio.open_connection("127.0.0.1", peer)
    if event_probe:
        sw.write(encode_command("CONFIG", "SET", "notify-keyspace-events", "K$") +
                 encode_command("PSUBSCRIBE", "__keyspace@0__:lagprobe:*"))
    sent_at: dict = {}
    oneway: list = []
    rdr = hiredis.Reader()

    async def sub():
        while not stop.is_set():
            data = await sr.read(1 << 16)
            if not data:
                return
            now = time.monotonic()
            rdr.feed(data)
            while True:
                msg = rdr.gets()
                if msg is False:
                    break
                if isinstance(msg, list) and msg and msg[0] == b"pmessage":
                    key = msg[2].split(b":", 1)[1]
                    t = sent_at.get(key)
                    if t is not None:
                        oneway.append(now - t)
    loop.create_task(sub())
    await asyncio.sleep(0.2)

    pr, pw = await asyncio.open_connection("127.0.0.1", origin)
    wait_rt: list = []
    readable: list = []
    prdr = hiredis.Reader()
    polls = []
    for port in readers or ():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        polls.append((r, w, hiredis.Reader()))

    async def probe():
        i = 0
        while not stop.is_set():
            key = b"lagprobe:%d" % i
            t = time.monotonic()
            sent_at[key] = t
            pw.write(encode_command("SET", key, "x", "EX", "60") + encode_command("WAIT", "2", "1000"))
            got = []
            poll = None
            while len(got) < 2:
                data = await pr.read(1024)
                if not data:
                    return
                prdr.feed(data)
                while True:
                    x = prdr.gets()
                    if x is False:
                        break
                    got.append(x)
                    if len(got) == 1 and polls:
                        # the origin acked the SET: from now until each peer serves it
                        poll = asyncio.ensure_future(_readable_lag(polls, key, b"x", time.monotonic(),
                                                                   readable))
            if got[1] == 2:
                wait_rt.append(time.monotonic() - t)
            if poll is not None:
                await poll
            i += 1
            await asyncio.sleep(max(0.0, 0.01 - (time.monotonic() - t)))

    pings = {name: [] for name in ping or {}}
    for name, port in (ping or {}).items():
        loop.create_task(_pinger(port, pings[name], stop))
    t0 = time.monotonic()
    loop.create_task(probe())
    k = 0
    while time.monotonic() - t0 < duration:
        due = int(rate * (time.monotonic() - t0))
        while sent[0] + batch <= due:
            writers[k % conns].write(pool[k % len(pool)])
            k += 1
            sent[0] += batch
        await asyncio.sleep(0.002)
    elapsed = time.monotonic() - t0
    await asyncio.sleep(0.5)
    stop.set()
    for w in writers + [sw, pw]:
        w.close()
    for _r, w, _x in polls:
        w.close()
    return {"rate": sent[0] / elapsed, "acked": acked[0], "sent": sent[0], "wait_rt": wait_rt,
            "oneway": oneway, "readable": readable, "pings": pings}


def pct(xs, q):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def stage_lag(args, cluster, max_rps):
    rate = max_rps * args.lag_load
    log("lag at %.0f %% load: %.0f SET/s for %.0f s" % (100 * args.lag_load, rate, args.lag_seconds))
    # The machine's scheduling floor: idle redis-servers on the same CPUs,
    # PINGed like the nodes during the run.
    idle = [start_server("redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no",
                         name="idle-redis-cpu%s" % cpu, cpus=cpu)
            for cpu in (args.server_cpu, args.client_cpu)]
    ping = {"origin": cluster[0].port, "peer": cluster[1].port,
            "idle redis-server, CPU %s" % args.server_cpu: idle[0].port,
            "idle redis-server, CPU %s" % args.client_cpu: idle[1].port}
    pin_self(args.client_cpu)
    try:
        event = args.lag_probe == "event"
        return asyncio.run(_lag_run(cluster[0].port, cluster[1].port, rate, args.lag_seconds,
                                    readers=None if event else [n.port for n in cluster[1:]],
                                    event_probe=event, ping=ping))
    finally:
        pin_self(",".join(str(c) for c in range(os.cpu_count() or 1)))
        for srv in idle:
            srv.stop()


# -- stage 3 -----------------------------------------------------------------------

def stage_detection(args, cluster):
    origin, b, c = cluster
    out = {}
    for label, node, nid, sig in (("SIGSTOP (black hole)", b, "peer-b", signal.SIGSTOP),
                                  ("SIGKILL (process gone)", c, "peer-c", signal.SIGKILL)):
        wait_until(lambda nid=nid: peer_states(origin.port)[nid]["state"] == "up", 15, "up")
        t = time.monotonic()
        os.kill(node.pid, sig)
        wait_until(lambda nid=nid: peer_states(origin.port)[nid]["state"] == "down", 30,
                   "%s detected" % label, interval=0.005)
        out[label] = time.monotonic() - t
        log("%s detected as down after %.3f s" % (label, out[label]))
        if sig == signal.SIGSTOP:
            os.kill(node.pid, signal.SIGCONT)
    return out


# -- stage 4 -----------------------------------------------------------------------

def stage_catchup(args, loop):
    src = start_node("catchup-src", args.server_cpu, loop)
    fresh = None
    try:
        n = args.keys
        log("loading %d keys" % n)
        t = time.monotonic()
        per = 10_000

        def batches():
            for start in range(0, n, per):
                cmds = b"".join(b"*5\r\n$3\r\nSET\r\n$10\r\nk:%08d\r\n$8\r\nv%07d\r\n$2\r\nEX\r\n$4\r\n3600\r\n"
                                % (i, i % 10_000_000) for i in range(start, min(n, start + per)))
                yield cmds, min(per, n - start)
        resp_bulk_load(src.port, batches())
        assert dbsize(src.port) == n, dbsize(src.port)
        load_s = time.monotonic() - t
        log("loaded in %.1f s; starting a fresh node" % load_s)
        t0 = time.monotonic()
        fresh = start_node("catchup-new", args.client_cpu, loop, seed=cluster_port(src))
        ready = time.monotonic()
        wait_until(lambda: dbsize(fresh.port) == n, 300, "catch-up", interval=0.05)
        done = time.monotonic()
        log("caught up %.2f s after launch" % (done - t0))
        return {"keys": n, "load_s": load_s, "from_launch": done - t0, "from_ready": done - ready,
                "rss_src": src.rss_bytes(), "rss_new": fresh.rss_bytes()}
    finally:
        src.stop()
        if fresh is not None:
            fresh.stop()


# -- report ------------------------------------------------------------------------

def report(args, loop, thr, lag, det, cu, facts) -> str:
    s, c = median(thr["single"]), median(thr["cluster"])
    ratio = c / s if s else float("nan")
    w50, w99 = pct(lag["wait_rt"], 0.5) * 1000, pct(lag["wait_rt"], 0.99) * 1000
    o50, o99 = pct(lag["oneway"], 0.5) * 1000, pct(lag["oneway"], 0.99) * 1000
    r50, r99 = pct(lag["readable"], 0.5) * 1000, pct(lag["readable"], 0.99) * 1000
    ok = lambda b: "yes" if b else "**no**"   # noqa: E731
    lines = [
        "## Replication (benchmarks/cluster.py)%s%s" % (" -- quick run, not representative" if args.quick else "",
                                                       ", fast lane off" if args.no_lane else ""),
        "",
        "Fast lane: %s (INFO repram_fast_lane of the origin)." % thr.get("lane", "n/a"),
        "",
        "`%s`" % repro_command(),
        "",
        "| metric | measured | target | met |",
        "|---|---|---|---|",
        "| SET -P 16, single node (median of %d) | %.0f ops/s | | |" % (len(thr["single"]), s),
        "| SET -P 16, origin of a 3-node cluster (median of %d) | %.0f ops/s | | |" % (len(thr["cluster"]), c),
        "| replicated / single throughput | %.2fx | >= 0.75x | %s |" % (ratio, ok(ratio >= 0.75)),
        "| CPU per SET: single node / origin / a peer applying it (median) | %.2f / %.2f / %.2f us "
        "(origin at %.0f %% of its CPU) | | |" % (median(thr["cpu_single"]), median(thr["cpu_origin"]),
                                              median(thr["cpu_peer"]), 100 * median(thr["util_origin"])),
        "| peers converged after a full-speed run (max) | %.3f s | | |" % max(thr["drain_s"]),
        "| lag-stage load actually sent (%.0f %% of the replicated rate) | %.0f SET/s (%d probes) | | |"
        % (100 * args.lag_load, lag["rate"], len(lag["wait_rt"])),
    ]
    if lag["readable"]:
        lines.append("| replication lag: origin's +OK -> GET on each peer returns it, p50 / p99 (%d samples) "
                     "| %.2f / %.2f ms | p99 <= 10 ms | %s |" % (len(lag["readable"]), r50, r99, ok(r99 <= 10)))
    if lag["oneway"]:
        lines.append("| replication lag one-way (keyspace event on a peer) p50 / p99 | %.2f / %.2f ms "
                     "| p99 <= 10 ms | %s |" % (o50, o99, ok(o99 <= 10)))
    lines.append("| write -> WAIT 2 reply (both peers acked) p50 / p99 | %.2f / %.2f ms | | |" % (w50, w99))
    for name, xs in lag.get("pings", {}).items():
        lines.append("| during the lag stage, PING round trip to the %s: p50 / p99 / max | %.2f / %.2f / %.2f ms "
                     "| | |" % (name, pct(xs, 0.5) * 1000, pct(xs, 0.99) * 1000, max(xs or [0]) * 1000))
    for label, t in det.items():
        lines.append("| dead peer detected, %s | %.2f s | <= 5 s | %s |" % (label, t, ok(t <= 5)))
    if cu is not None:
        per_m = cu["from_launch"] * 1_000_000 / cu["keys"]
        lines += [
            "| catch-up of %d keys, from launch of the new node (from its ready) | %.2f s (%.2f s) | | |"
            % (cu["keys"], cu["from_launch"], cu["from_ready"]),
            "| catch-up, scaled to 1M keys | %.2f s | <= 20 s | %s |" % (per_m, ok(per_m <= 20)),
        ]
    lines += [
        "",
        "Method: see the header of `benchmarks/cluster.py`.  Pinning: node under load on CPU %s; "
        "redis-benchmark, the lag load generator and both peers on CPU %s (so in the cluster runs "
        "that CPU, not the origin, is the bottleneck: compare CPU per SET).  Event loop: %s.  "
        "Failure detection uses the default intervals (ping 250 ms, suspect 1 s, down 3 s); a "
        "killed process is seen as down when its redial is refused, a stopped one after "
        "cluster-down-after-ms of silence." % (args.server_cpu, args.client_cpu, loop),
        "",
        "Runs: single %s; cluster %s ops/s.%s"
        % (", ".join("%.0f" % x for x in thr["single"]), ", ".join("%.0f" % x for x in thr["cluster"]),
           "" if cu is None else "  Memory after catch-up: source %.0f MB, new node %.0f MB RSS."
           % (cu["rss_src"] / 1e6, cu["rss_new"] / 1e6)),
        "",
        "Machine:",
        "",
        *facts_markdown(facts),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--requests", type=int)
    ap.add_argument("--keys", type=int)
    ap.add_argument("--lag-seconds", type=float)
    ap.add_argument("--loop", choices=("uvloop", "asyncio"))
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--no-lane", action="store_true",
                    help="run every node on the pure-Python path (REPRAM_NO_EXTENSIONS=1)")
    ap.add_argument("--cluster-anti-entropy-interval-ms", type=int,
                    help="passed to the 3 nodes of the throughput stage (0 = anti-entropy off)")
    ap.add_argument("--lag-probe", choices=("readable", "event"), default="readable",
                    help="lag as origin ack -> GET on each peer returns it (default), or as the "
                         "arrival of a keyspace event on one peer (K$ notifications on it)")
    ap.add_argument("--lag-load", type=float, default=0.5,
                    help="the lag stage's load as a fraction of the measured replicated rate")
    ap.add_argument("--skip-detection-catchup", action="store_true",
                    help="run only the throughput and lag stages")
    ap.add_argument("--markdown-out")
    ap.add_argument("--markdown-mode", choices=("append", "write"), default="append")
    args = ap.parse_args()
    if args.no_lane:
        NODE_ENV.update(os.environ, REPRAM_NO_EXTENSIONS="1")
    args.runs = args.runs or (1 if args.quick else 3)
    args.requests = args.requests or (200_000 if args.quick else 1_000_000)
    args.keys = args.keys or (200_000 if args.quick else 1_000_000)
    args.lag_seconds = args.lag_seconds or (3.0 if args.quick else 10.0)
    if args.loop is None:
        try:
            import uvloop  # noqa: F401
            args.loop = "uvloop"
        except ImportError:
            args.loop = "asyncio"
    install_sigterm_handler()
    facts = machine_facts()
    thr, cluster = stage_throughput(args, args.loop)
    try:
        lag = stage_lag(args, cluster, median(thr["cluster"]))
        det = {} if args.skip_detection_catchup else stage_detection(args, cluster)
    finally:
        for n in cluster:
            try:
                os.kill(n.pid, signal.SIGCONT)
            except OSError:
                pass
            n.stop()
    cu = None if args.skip_detection_catchup else stage_catchup(args, args.loop)
    emit_markdown(report(args, args.loop, thr, lag, det, cu, facts), args.markdown_out,
                  args.markdown_mode)
    return 0


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    sys.exit(main())
