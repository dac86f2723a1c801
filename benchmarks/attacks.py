"""Hostile-client attacks (issue 7) against repram-resp and redis-server, side by side.

Every attack runs against both servers in the same run, each with
``requirepass`` set (so "pre-AUTH" means something on both).  Beside each
attack a probe client sends ``PING`` every 5 ms; we report for each attack:

* ``stall``  -- the longest probe round trip while the attack ran (ms),
* ``rss+``   -- peak RSS during the attack minus RSS just before it (MB),
* ``canary`` -- a key written at start is still readable and the server is
  alive afterwards (``ok`` / ``LOST`` / ``DEAD``),
* ``reply``  -- what the attacking connection got back (first bytes, or
  ``closed`` / ``silent``),

and the lines of server log the attack caused (tracebacks counted).

Each attack's input is at most 64 KB unless the issue states a bigger one
(200 inline lines of 64 KB; 33,000 pipelined AUTH guesses; 100 half-sent
1 MB bulks; a 100 MB SET; a 20 MB CLIENT SETNAME), and every attack is
capped in duration (``--cap`` seconds) so a run against the unfixed code
still ends within minutes.

Usage (from the repo root)::

    python benchmarks/attacks.py                       # this tree vs redis-server
    python benchmarks/attacks.py --tree /path/to/other/checkout --label before
    python benchmarks/attacks.py --only star_2g,map_typeerror
    python benchmarks/attacks.py --markdown-out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import sys
import threading
import time

from harness import (REDIS_SERVER_CMD, emit_markdown, git_commit, log, proc_rss_bytes, resp_pipeline,
                     run_main, start_server)

PASSWORD = "attack-pw"
PROBE_INTERVAL_S = 0.005


def enc(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def connect(port: int, auth: bool = True, timeout: float = 30.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if auth:
        s.sendall(enc("AUTH", PASSWORD))
        r = s.recv(64)
        assert r.startswith(b"+OK"), r
    return s


def read_some(s: socket.socket, wait_s: float, want: int = 200) -> str:
    """What the server sent back within wait_s (first bytes), or closed/silent."""
    s.settimeout(wait_s)
    buf = b""
    end = time.monotonic() + wait_s
    try:
        while len(buf) < want and time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                return (buf[:80].decode(errors="replace").strip() + " +closed") if buf else "closed"
            buf += chunk
            if buf.endswith(b"\r\n"):
                break
    except socket.timeout:
        pass
    except OSError as e:
        return (buf[:80].decode(errors="replace").strip() + " +reset") if buf else "reset (%s)" % e.errno
    return buf[:80].decode(errors="replace").strip() or "silent"


class Probe(threading.Thread):
    """PING every 5 ms on its own connection; records every round trip."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.sock = connect(port)
        self.sock.settimeout(600)
        self.samples: list[tuple[float, float]] = []   # (sent at, rtt s)
        self.stop = False
        self.in_flight_since = None

    def run(self):
        ping = b"*1\r\n$4\r\nPING\r\n"
        while not self.stop:
            t = time.monotonic()
            self.in_flight_since = t
            try:
                self.sock.sendall(ping)
                buf = b""
                while not buf.endswith(b"\r\n"):
                    chunk = self.sock.recv(64)
                    if not chunk:
                        raise ConnectionError
                    buf += chunk
            except OSError:
                self.samples.append((t, float("inf")))
                return
            self.in_flight_since = None
            rtt = time.monotonic() - t
            self.samples.append((t, rtt))
            time.sleep(max(0.0, PROBE_INTERVAL_S - rtt))

    def window(self, t0: float, t1: float) -> list[float]:
        out = [r for t, r in self.samples if t0 <= t <= t1]
        if self.in_flight_since is not None and self.in_flight_since <= t1:
            out.append(time.monotonic() - self.in_flight_since)
        return out

    def wait_responsive(self, limit_s: float) -> bool:
        """Wait until a PING sent after now has come back."""
        t = time.monotonic()
        end = t + limit_s
        while time.monotonic() < end:
            if any(ts > t for ts, _ in self.samples[-5:]):
                return True
            time.sleep(0.01)
        return False


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                self.peak = max(self.peak, proc_rss_bytes(self.pid))
            except OSError:
                return
            time.sleep(0.01)


# --------------------------------------------------------------------------
# attacks: each takes (port, ctx) and returns a reply description (or "")
# --------------------------------------------------------------------------

def _send_and_read(port, data, auth, cap, nconn=1):
    socks = [connect(port, auth=auth) for _ in range(nconn)]
    for s in socks:
        s.sendall(data)
    replies = [read_some(s, cap) for s in socks]
    for s in socks:
        s.close()
    return replies[0] if nconn == 1 else "; ".join(sorted(set(replies)))


def a_star_2g(port, ctx):
    return _send_and_read(port, b"*2147483648\r\n", False, ctx.cap)


def a_set_2g(port, ctx):
    return _send_and_read(port, b"*1\r\n~2147483648\r\n", False, ctx.cap)


def a_push_250m(port, ctx):
    return _send_and_read(port, b"*1\r\n>250000000\r\n", False, ctx.cap)


def a_star_2g_x3(port, ctx):
    return _send_and_read(port, b"*2147483648\r\n", False, ctx.cap, nconn=3)


def a_map_typeerror(port, ctx):
    return _send_and_read(port, b"*1\r\n%1\r\n*0\r\n:1\r\n*1\r\n$4\r\nPING\r\n", True, 2)


def a_cluster_star_2g(port, ctx):
    if ctx.cluster_port is None:
        return "n/a (no cluster port)"
    try:
        s = socket.create_connection(("127.0.0.1", ctx.cluster_port), timeout=5)
    except OSError as e:
        return "refused (%s)" % e.errno
    s.sendall(b"*2147483648\r\n")
    r = read_some(s, ctx.cap)
    s.close()
    return r


def a_inline_200x64k(port, ctx):
    line = b"ECHO " + b"a" * (60 * 1024) + b"\r\n"
    s = connect(port, timeout=ctx.cap)
    got = 0
    t = threading.Thread(target=lambda: s.sendall(line * 200), daemon=True)
    t.start()
    s.settimeout(ctx.cap)
    try:
        while got < 200 * (len(line) + 8) - 200 * 12:
            c = s.recv(1 << 20)
            if not c:
                break
            got += len(c)
    except socket.timeout:
        pass
    s.close()
    return "%d bytes of replies" % got


def a_pipeline_ping_x4(port, ctx):
    stop = time.monotonic() + min(ctx.cap, 5.0)
    batch = b"*1\r\n$4\r\nPING\r\n" * 1000

    def hammer():
        s = connect(port)
        s.settimeout(10)
        while time.monotonic() < stop:
            s.sendall(batch)
            need = 7 * 1000
            while need > 0:
                need -= len(s.recv(need))
        s.close()
    ts = [threading.Thread(target=hammer) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return "4 clients x 5 s"


def a_dbsize_expiry_wave(port, ctx):
    n = 200_000
    s = connect(port)
    s.settimeout(120)
    f = s.makefile("rb")
    # every key expires at the same absolute instant, after the load is done
    deadline_ms = int(time.time() * 1000) + 15_000
    chunk = 5000
    for i in range(0, n, chunk):
        s.sendall(b"".join(enc("SET", "wave:%d" % j, "v", "PXAT", deadline_ms) for j in range(i, i + chunk)))
        for _ in range(chunk):
            f.readline()
    time.sleep(max(0.0, deadline_ms / 1000.0 - time.time()) + 0.05)
    ctx.mark()      # the stall window starts here (the load itself is not the attack)
    s.sendall(enc("DBSIZE") + enc("INFO"))
    r1 = f.readline()
    s.close()
    return "DBSIZE " + r1.decode().strip()


def a_glob_64k_psubscribe(port, ctx):
    pat = b"a*" * 32768
    return _send_and_read(port, enc("PSUBSCRIBE", pat) + enc("PUNSUBSCRIBE"), True, ctx.cap).split()[0]


def a_glob_64k_keys(port, ctx):
    pat = b"[a-z]?" * 10000 + b"*"
    return _send_and_read(port, enc("KEYS", pat), True, ctx.cap)[:30]


def a_glob_keys_fit(port, ctx):
    # A key long enough for the pattern: the matcher really runs (the regex
    # translation compiled its segments lazily, on the first such key).
    s = connect(port)
    s.sendall(enc("SET", b"k" * 14000, "v", "EX", 600))
    read_some(s, ctx.cap)
    s.close()
    ctx.mark()
    pat = b"[a-z]?" * 7000 + b"*"
    return _send_and_read(port, enc("KEYS", pat), True, ctx.cap)[:30]


def a_setname_64k(port, ctx):
    return _send_and_read(port, enc("CLIENT", "SETNAME", b"n" * 65000), True, ctx.cap)


def a_setname_20m(port, ctx):
    return _send_and_read(port, enc("CLIENT", "SETNAME", b"n" * (20 << 20)), True, ctx.cap)


def a_psub_10k_set(port, ctx):
    sub = connect(port)
    sub.settimeout(60)
    sub.sendall(b"".join(enc("PSUBSCRIBE", "__keyspace@0__:user:%d:*" % i) for i in range(10_000)))
    f = sub.makefile("rb")
    for _ in range(10_000 * 6):     # *3 $10 psubscribe $n pattern :count
        f.readline()
    c = connect(port)
    c.settimeout(60)
    cf = c.makefile("rb")
    c.sendall(enc("CONFIG", "SET", "notify-keyspace-events", "KA"))
    cf.readline()
    ctx.mark()
    t = time.monotonic()
    n = 200
    for i in range(n):
        c.sendall(enc("SET", "other:%d" % i, "v", "EX", 60))
        cf.readline()
    per = (time.monotonic() - t) / n * 1000
    c.sendall(enc("CONFIG", "SET", "notify-keyspace-events", ""))
    cf.readline()
    c.close()
    sub.close()
    return "%.2f ms per SET" % per


def a_preauth_bulk_200m(port, ctx):
    head = b"*1\r\n$209715200\r\n"
    return _send_and_read(port, head + b"x" * (64 * 1024 - len(head)), False, 2)


def a_preauth_star_1m(port, ctx):
    return _send_and_read(port, b"*1048576\r\n" + b"$1\r\na\r\n" * 9000, False, 2)


def a_auth_bruteforce(port, ctx):
    s = connect(port, auth=False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    n = 33_000
    data = b"".join(enc("AUTH", "guess%05d" % i) for i in range(n))
    s.settimeout(ctx.cap)
    sent = 0
    try:
        while sent < len(data):
            sent += s.send(data[sent:sent + 65536])
    except OSError:
        pass
    # then read what comes back: every reply, or a close before that
    got = 0
    try:
        while True:
            c = s.recv(1 << 20)
            if not c:
                break
            got += c.count(b"WRONGPASS")
    except OSError:
        pass
    s.close()
    if got < n:
        return "cut after %d replies (%d KB sent)" % (got, sent // 1024)
    return "all %d guesses answered, never cut" % n


def a_scan_4301(port, ctx):
    return _send_and_read(port, enc("SCAN", "9" * 4301), True, 2)


def a_query_buffers_100x1m(port, ctx):
    before = info_used_memory(port)
    socks = []
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$524288000\r\n"
    blob = b"x" * (1 << 20)
    for _ in range(100):
        s = connect(port)
        s.sendall(head + blob)
        socks.append(s)
    time.sleep(1.0)
    after = info_used_memory(port)
    for s in socks:
        s.close()
    return "used_memory %+.1f MB" % ((after - before) / 1e6)


def a_set_100m(port, ctx):
    s = connect(port)
    s.settimeout(ctx.cap)
    data = enc("SET", "big", b"v" * (100 << 20), "EX", 60)
    # The window starts once the 100 MB are built: building them holds this
    # process's GIL for ~0.1 s, which stalled the probe thread whatever the server.
    ctx.mark()
    s.sendall(data)
    t_sent = time.monotonic()
    r = read_some(s, ctx.cap)
    r += " (%.0f ms after the last byte left)" % ((time.monotonic() - t_sent) * 1000)
    del data
    s.sendall(enc("DEL", "big"))      # Redis; ours answers unknown/refuses: fine
    read_some(s, 1)
    s.close()
    return r


def info_used_memory(port) -> int:
    text = resp_pipeline(port, [("AUTH", PASSWORD), ("INFO", "memory")])[1].decode()
    m = re.search(r"used_memory:(\d+)", text)
    return int(m.group(1))


ATTACKS = [
    ("star_2g", "`*2147483648` pre-AUTH (13 B)", a_star_2g),
    ("set_2g", "`*1 ~2147483648` pre-AUTH (17 B)", a_set_2g),
    ("push_250m", "`*1 >250000000` pre-AUTH (16 B)", a_push_250m),
    ("star_2g_x3", "3 connections x `*2147483648` pre-AUTH", a_star_2g_x3),
    ("map_typeerror", "`*1 %1 *0 :1` + PING in one read", a_map_typeerror),
    ("cluster_star_2g", "`*2147483648` on the cluster port", a_cluster_star_2g),
    ("inline_200x64k", "200 inline lines of 60 KB (12 MB)", a_inline_200x64k),
    ("pipeline_ping_x4", "4 clients pipelining PING, 5 s", a_pipeline_ping_x4),
    ("dbsize_expiry_wave", "DBSIZE+INFO at a 200k-key expiry wave", a_dbsize_expiry_wave),
    ("glob_64k_psubscribe", "PSUBSCRIBE 64 KB pattern", a_glob_64k_psubscribe),
    ("glob_64k_keys", "KEYS 60 KB pattern", a_glob_64k_keys),
    ("glob_keys_fit", "KEYS 42 KB pattern + a 14 KB key it matches", a_glob_keys_fit),
    ("setname_64k", "CLIENT SETNAME 64 KB", a_setname_64k),
    ("setname_20m", "CLIENT SETNAME 20 MB", a_setname_20m),
    ("psub_10k_set", "200 SETs with 10,000 patterns + notifications", a_psub_10k_set),
    ("preauth_bulk_200m", "pre-AUTH `$209715200` + 64 KB", a_preauth_bulk_200m),
    ("preauth_star_1m", "pre-AUTH `*1048576` + 9000 args", a_preauth_star_1m),
    ("auth_bruteforce", "33,000 pipelined AUTH guesses, replies unread", a_auth_bruteforce),
    ("scan_4301", "SCAN with a 4301-digit cursor", a_scan_4301),
    ("query_buffers_100x1m", "100 clients x 1 MB of a 500 MB bulk", a_query_buffers_100x1m),
    ("set_100m", "SET of 100 MB", a_set_100m),
]


class Ctx:
    def __init__(self, cap, cluster_port):
        self.cap = cap
        self.cluster_port = cluster_port
        self.t0 = None

    def mark(self):
        self.t0 = time.monotonic()


def run_target(name, srv, cluster_port, cap, only, logf):
    results = {}
    canary = b"canary-" + os.urandom(8).hex().encode()
    # The password is set once the server is up (readiness is an unauthenticated PING).
    resp_pipeline(srv.port, [("CONFIG", "SET", "requirepass", PASSWORD)])
    resp_pipeline(srv.port, [("AUTH", PASSWORD), ("SET", "canary", canary, "EX", 3600)])
    probe = Probe(srv.port)
    probe.start()
    for key, desc, fn in ATTACKS:
        if only and key not in only:
            continue
        if not srv.alive():
            results[key] = dict(stall="-", rss="-", canary="DEAD", reply="-", log="")
            continue
        ctx = Ctx(cap, cluster_port)
        log_before = os.path.getsize(logf) if logf else 0
        rss0 = proc_rss_bytes(srv.pid)
        sampler = RssSampler(srv.pid)
        sampler.start()
        t0 = time.monotonic()
        try:
            reply = fn(srv.port, ctx)
        except Exception as e:      # the attack's own client failed: report it
            reply = "client error: %s" % type(e).__name__
        if not probe.wait_responsive(max(60.0, cap)):
            reply += " (probe still stalled)"
        t1 = time.monotonic()
        sampler.stop = True
        sampler.join()
        rtts = probe.window(ctx.t0 or t0, t1)
        ok = "DEAD"
        if srv.alive():
            try:
                got = resp_pipeline(srv.port, [("AUTH", PASSWORD), ("GET", "canary")], timeout=30)[1]
                ok = "ok" if got == canary else "LOST"
            except Exception:
                ok = "no answer"
        logtext = b""
        if logf:
            with open(logf, "rb") as f:
                f.seek(log_before)
                logtext = f.read()
        tb = logtext.count(b"Traceback")
        results[key] = dict(
            stall="%.1f" % (max(rtts) * 1000) if rtts else "-",
            p50="%.2f" % (statistics.median(rtts) * 1000) if rtts else "-",
            p99="%.1f" % (sorted(rtts)[int(len(rtts) * 0.99)] * 1000) if rtts else "-",
            rss="%+.0f" % ((sampler.peak - rss0) / 1e6), canary=ok,
            reply=" ".join(reply.replace("|", "/").split()),
            log="%d B%s" % (len(logtext), (", %d tracebacks" % tb) if tb else ""),
            secs="%.1f" % (t1 - t0))
        log("%-8s %-22s stall %8s ms  p99 %6s  rss %6s MB  canary %-4s log %-14s %s" % (
            name, key, results[key]["stall"], results[key]["p99"], results[key]["rss"], ok,
            results[key]["log"], reply[:70]))
    probe.stop = True
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    help="checkout of repram-resp to attack (default: this one)")
    ap.add_argument("--label", default="", help="label for the report (e.g. before / after)")
    ap.add_argument("--cap", type=float, default=20.0, help="seconds each attack may take at most")
    ap.add_argument("--only", default="", help="comma-separated attack keys")
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--ours-args", default="", help="extra arguments for our node (e.g. "
                    "'--client-turn-max-commands 250')")
    ap.add_argument("--markdown-out", default=None)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    tree = os.path.abspath(args.tree)
    with open(os.path.join(tree, "repram_resp", "config.py")) as f:
        has_opt_in = "cluster-enabled" in f.read()
    cluster_args = "--cluster-enabled yes " if has_opt_in else ""
    logdir = "/tmp/attacks-logs-%d" % os.getpid()
    ours_cmd = ("{python} -m repram_resp --port {port} --bind 127.0.0.1 "
                "--cluster-port 0 --cluster-secret attack-cluster-secret %s %s"
                % (cluster_args, args.ours_args))
    all_results = {}
    ours = start_server(ours_cmd, name="repram", cwd=tree, log_dir=logdir,
                        env={"PYTHONPATH": tree})
    try:
        text = resp_pipeline(ours.port, [("INFO", "replication")])[0].decode()
        m = re.search(r"cluster_port:(\d+)", text)
        cport = int(m.group(1)) if m else None
        all_results["repram"] = run_target("repram", ours, cport, args.cap, only, ours.log_path)
    finally:
        ours.stop(keep_log=True)
    if not args.skip_redis:
        red = start_server(REDIS_SERVER_CMD, name="redis",
                           log_dir=logdir)
        try:
            all_results["redis"] = run_target("redis", red, None, args.cap, only, red.log_path)
        finally:
            red.stop(keep_log=True)
    lines = ["", "### attacks.py %s (tree %s, commit %s)" % (args.label, tree, git_commit(tree)), "",
             "Stall = longest PING round trip of a probe pinging every 5 ms during the attack; "
             "rss+ = peak RSS minus RSS before; canary = a key written first is still there.", "",
             "| attack | ours stall ms | ours p99 ms | ours rss+ MB | ours canary | ours reply | ours log |"
             " redis stall ms | redis p99 ms | redis rss+ MB | redis reply |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, desc, _ in ATTACKS:
        if only and key not in only:
            continue
        o = all_results.get("repram", {}).get(key, {})
        r = all_results.get("redis", {}).get(key, {})
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            desc, o.get("stall"), o.get("p99"), o.get("rss"), o.get("canary"), o.get("reply"),
            o.get("log"), r.get("stall"), r.get("p99"), r.get("rss"), r.get("reply")))
    md = "\n".join(lines) + "\n"
    print(md)
    if args.markdown_out:
        emit_markdown(md, args.markdown_out)
    return 0


if __name__ == "__main__":
    run_main(main)
