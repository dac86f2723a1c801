"""Long protocol fuzz run: repram-resp and redis-server get the same fuzzed streams.

Frames are valid commands, inline lines, hostile headers (every RESP type
byte with small, boundary and absurd counts) and mutations of valid frames
(bytes replaced, dropped or inserted).  Frames are grouped into sessions
(1-50 frames, half of them before AUTH since both servers run with
``requirepass``), each sent on a fresh connection in random-sized chunks,
then half-closed; the reply stream is read to EOF.  Both servers receive the
identical byte stream, one after the other, in the same run.

Reported per server: frames and sessions sent, crashes (the process died;
it is restarted and the run goes on), sessions that hung (no EOF within
10 s), the probe's PING round trips (every 5 ms on its own connection: max,
p99, pings over 50 ms), the reply kinds (first byte of every reply line
that starts a reply: ``+ - : $ * ...``), the protocol errors by text, and
tracebacks in the server log.

    python benchmarks/fuzz.py --frames 1000000 --markdown-out benchmarks/RESULTS.md
    python benchmarks/fuzz.py --frames 20000      # a quick check
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import socket
import statistics
import threading
import time

from harness import REDIS_SERVER_CMD, emit_markdown, git_commit, log, resp_pipeline, run_main, start_server

PASSWORD = "fuzz-pw"
WORDS = [b"PING", b"ECHO", b"SET", b"GET", b"SCAN", b"AUTH", b"HELLO", b"CLIENT", b"SETNAME",
         b"PSUBSCRIBE", b"KEYS", b"MATCH", b"EX", b"PX", b"0", b"3", b"k", b"v", b"*", b"a*b?[c]",
         b"MULTI", b"EXEC", b"INFO", b"DBSIZE", b"MGET", b"TTL", b"EXISTS", b"", b"x" * 300]
TYPES = b"*%~>|$:+-(=,#_!"
NUMS = list(range(-2, 12)) + [2 ** 31, 2 ** 31 - 1, 2 ** 32, 2 ** 63, 10 ** 30, 250_000_000, 16384,
                             16385, 1048577, 65536]


def enc(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def gen_frame(rnd: random.Random) -> bytes:
    k = rnd.random()
    if k < 0.35:
        return enc([rnd.choice(WORDS) for _ in range(rnd.randint(1, 6))])
    if k < 0.5:
        return b" ".join(rnd.choice(WORDS + [b'"q"', b"'x y'", b'"\\x41"', b'"open'])
                         for _ in range(rnd.randint(0, 5))) + b"\r\n"
    if k < 0.75:
        return b"".join(bytes([rnd.choice(TYPES)]) + str(rnd.choice(NUMS)).encode()
                        + (b"\r\n" if rnd.random() < 0.9 else b"") for _ in range(rnd.randint(1, 4)))
    b = bytearray(enc([rnd.choice(WORDS) for _ in range(rnd.randint(1, 4))]))
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(b))
        op = rnd.randrange(3)
        if op == 0:
            b[i] = rnd.choice(list(TYPES) + [13, 10, 48, 57, 0, 255])
        elif op == 1:
            del b[i]
        else:
            b[i:i] = rnd.choice([b"\r\n", b"*", b"$", b"9999999999", b"%1\r\n"])
    return bytes(b)


def gen_session(rnd: random.Random):
    n = rnd.randint(1, 50)
    frames = [gen_frame(rnd) for _ in range(n)]
    if rnd.random() < 0.5:
        frames.insert(0, enc([b"AUTH", PASSWORD.encode()]))
    data = b"".join(frames)
    cuts = sorted(rnd.randrange(len(data) + 1) for _ in range(rnd.randint(0, 4)))
    chunks, prev = [], 0
    for c in cuts + [len(data)]:
        if c > prev:
            chunks.append(data[prev:c])
        prev = c
    return n, chunks


_REPLY_START = re.compile(rb"(?:^|\r\n)([-+:$*%~>_#,(=!|])")
_PROTO = re.compile(rb"-ERR Protocol error: ([^\r\n']*)")


class Probe(threading.Thread):
    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.rtts = []
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(PASSWORD), PASSWORD.encode()))
                s.recv(64)
                while not self.stop:
                    t = time.monotonic()
                    s.sendall(b"*1\r\n$4\r\nPING\r\n")
                    if not s.recv(64):
                        break
                    r = time.monotonic() - t
                    self.rtts.append(r)
                    time.sleep(max(0.0, 0.005 - r))
            except OSError:
                time.sleep(0.05)


def run_one(name, start, sessions, logf_of):
    srv = start()
    probe = Probe(srv.port)
    probe.start()
    st = dict(frames=0, sessions=0, crashes=0, hung=0, kinds=collections.Counter(),
              proto=collections.Counter(), tracebacks=0)
    t0 = time.monotonic()
    for n, chunks in sessions:
        if not srv.alive():
            st["crashes"] += 1
            st["tracebacks"] += open(logf_of(srv), "rb").read().count(b"Traceback")
            srv = start()
            probe.port = srv.port
        st["frames"] += n
        st["sessions"] += 1
        got = b""
        try:
            s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            try:
                for c in chunks:
                    s.sendall(c)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            while True:
                c = s.recv(1 << 16)
                if not c:
                    break
                got += c
        except socket.timeout:
            st["hung"] += 1
        except OSError:
            pass
        finally:
            try:
                s.close()
            except Exception:
                pass
        for m in _REPLY_START.finditer(got[:65536]):
            st["kinds"][m.group(1).decode()] += 1
        for m in _PROTO.finditer(got):
            st["proto"][m.group(1).decode(errors="replace").strip()] += 1
    st["secs"] = time.monotonic() - t0
    probe.stop = True
    st["alive_at_end"] = srv.alive()
    srv.stop(keep_log=True)
    st["tracebacks"] += open(logf_of(srv), "rb").read().count(b"Traceback")
    r = probe.rtts
    st["probe"] = dict(n=len(r), max=max(r) * 1000 if r else 0,
                       p99=sorted(r)[int(len(r) * 0.99)] * 1000 if r else 0,
                       over50=sum(1 for x in r if x > 0.05))
    log("%s: %d frames in %d sessions, %.0f s, crashes %d, hung %d, tracebacks %d, probe max %.1f ms "
        "p99 %.2f ms, >50ms %d" % (name, st["frames"], st["sessions"], st["secs"], st["crashes"],
                                   st["hung"], st["tracebacks"], st["probe"]["max"], st["probe"]["p99"],
                                   st["probe"]["over50"]))
    return st


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--markdown-out", default=None)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    sessions, total = [], 0
    while total < args.frames:
        n, chunks = gen_session(rnd)
        sessions.append((n, chunks))
        total += n
    logdir = "/tmp/fuzz-logs-%d" % os.getpid()

    def start_ours():
        s = start_server("{python} -m repram_resp --port {port} --bind 127.0.0.1", name="repram",
                         log_dir=logdir)
        resp_pipeline(s.port, [("CONFIG", "SET", "requirepass", PASSWORD)])
        return s

    def start_redis():
        s = start_server(REDIS_SERVER_CMD, name="redis", log_dir=logdir)
        resp_pipeline(s.port, [("CONFIG", "SET", "requirepass", PASSWORD)])
        return s
    res = {"repram": run_one("repram", start_ours, sessions, lambda s: s.log_path),
           "redis": run_one("redis", start_redis, sessions, lambda s: s.log_path)}
    lines = ["", "### fuzz.py: %d frames in %d sessions, seed %d (commit %s)" % (
        total, len(sessions), args.seed, git_commit()), "",
        "Same byte streams to both servers (requirepass set; half the sessions AUTH first), "
        "split at random boundaries; shared 2-core machine.", "",
        "| server | secs | crashes | hung sessions | tracebacks | probe max ms | probe p99 ms | "
        "probe pings > 50 ms | reply kinds (reply-start bytes) |", "|---|---|---|---|---|---|---|---|---|"]
    for n, st in res.items():
        kinds = ", ".join("`%s` %d" % kv for kv in st["kinds"].most_common())
        lines.append("| %s | %.0f | %d | %d | %d | %.1f | %.2f | %d | %s |" % (
            n, st["secs"], st["crashes"], st["hung"], st["tracebacks"], st["probe"]["max"],
            st["probe"]["p99"], st["probe"]["over50"], kinds))
    lines += ["", "Protocol errors by text (ours / redis):", ""]
    keys = sorted(set(res["repram"]["proto"]) | set(res["redis"]["proto"]),
                  key=lambda k: -(res["repram"]["proto"][k] + res["redis"]["proto"][k]))
    for k in keys:
        lines.append("* `%s`: %d / %d" % (k, res["repram"]["proto"][k], res["redis"]["proto"][k]))
    md = "\n".join(lines) + "\n"
    print(md)
    if args.markdown_out:
        emit_markdown(md, args.markdown_out)
    return 0


if __name__ == "__main__":
    run_main(main)
