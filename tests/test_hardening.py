"""Issue 7 regression tests: hostile clients, peers and neighbours.

Every defect of the issue has a test here, asserting on behaviour (the
error reply, the connection closed, another client answered, bytes
allocated bounded via tracemalloc -- the in-process node shares this
process), never on wall-clock thresholds.
"""

from __future__ import annotations

import logging
import resource
import socket
import threading
import time
import tracemalloc

import pytest
import redis

from rawresp import Raw, read_frame
from repram_resp import errors
from repram_resp.cluster import messages as m
from repram_resp.config import ConfigError, load
from repram_resp.protocol import RequestParser
from repram_resp.ratelog import RateLog
from repram_resp.server import RESERVED_FDS, fit_fd_limit

# Headers that announce far more than they carry (13-17 bytes each).
HOSTILE = [b"*2147483648\r\n", b"*1\r\n~2147483648\r\n", b"*1\r\n>250000000\r\n",
           b"*1\r\n%2147483648\r\n", b"*1\r\n|2147483648\r\n", b"*2\r\n$3\r\nGET\r\n*99999999\r\n",
           b"*1\r\n%1\r\n*0\r\n:1\r\n", b"*1\r\n+OK\r\n", b"*1\r\n(123\r\n", b"*1\r\n=5\r\ntxt:a\r\n",
           b"*1\r\n,1.5\r\n", b"*1\r\n#t\r\n", b"*1\r\n_\r\n", b"*1\r\n:1\r\n", b"*1\r\n*1\r\n$1\r\na\r\n"]


def peak_alloc(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def read_all(sock: socket.socket, limit: int = 1 << 20) -> bytes:
    """Everything until the server closes (or limit bytes)."""
    out = b""
    while len(out) < limit:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        out += chunk
    return out


# --- part 2: cost before limits -------------------------------------------------

@pytest.mark.parametrize("data", HOSTILE)
def test_parser_checks_headers_before_allocating(data):
    for unauth in (False, True):
        p = RequestParser()
        p.set_unauthenticated(unauth)
        got = []
        assert peak_alloc(lambda: got.append(p.feed(data))) < 256 * 1024
        # split at every byte: the same verdict, still bounded
        q = RequestParser()
        assert peak_alloc(lambda: [q.feed(data[i:i + 1]) for i in range(len(data))]) < 256 * 1024
        assert (p.error, got[0]) == (q.error, [])


@pytest.mark.parametrize("data", HOSTILE + [b"*11\r\n", b"*1\r\n$16385\r\n", b"*1048576\r\n"])
def test_hostile_frames_get_redis_s_answer(make_server, real_redis, data):
    """Before AUTH, on a connection that also sends a valid PING after the
    frame: the same reply bytes as redis-server 7.0, then the close."""
    ours = make_server("--requirepass", "pw")
    replies = []
    for port in (ours.port, real_redis):
        if port == real_redis:
            Raw(port).cmd("CONFIG", "SET", "requirepass", "pw")
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(data + b"*1\r\n$4\r\nPING\r\n")
        replies.append(read_all(s))
        s.close()
        if port == real_redis:
            r = Raw(port)
            r.cmd("AUTH", "pw")
            r.cmd("CONFIG", "SET", "requirepass", "")
    assert replies[0] == replies[1]
    assert Raw(ours.port).cmd("AUTH", "pw") == b"+OK\r\n"      # the node is fine


def test_hiredis_exception_costs_no_traceback_and_no_reply_of_the_read(server, caplog):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with caplog.at_level(logging.DEBUG, logger="repram"):
        s.sendall(b"*1\r\n$4\r\nPING\r\n*1\r\n%1\r\n*0\r\n:1\r\n")
        assert read_all(s) == b"+PONG\r\n-ERR Protocol error: expected '$', got '%'\r\n"
    assert not [r for r in caplog.records if r.exc_info]


def test_cluster_port_checks_headers_before_the_handshake(make_server):
    node = make_server("--cluster-enabled", "yes")
    cport = node.server.replication.cport
    for data in HOSTILE[:6] + [b"*1\r\n$99999999999\r\n"]:
        s = socket.create_connection(("127.0.0.1", cport), timeout=5)

        def attack():
            s.sendall(data)
            read_all(s)
        assert peak_alloc(attack) < 1 << 20
        s.close()
    assert node.client().ping()


@pytest.mark.parametrize("data", [b"*2147483648\r\n", b"*1\r\n*1\r\n$1\r\na\r\n", b"*2\r\n$1\r\nB\r\n~3\r\n",
                                  b"*65\r\n", b"+OK\r\n", b"*1\r\n$70000\r\n"])
def test_frame_reader_refuses_from_the_header(data):
    r = m.FrameReader(64 * 1024, m.HANDSHAKE_MAX_ELEMENTS)
    with pytest.raises(m.MessageError):
        for i in range(len(data)):          # one byte at a time: same verdict
            r.feed(data[i:i + 1])


# --- part 1: security boundaries ---------------------------------------------

def test_single_node_opens_no_cluster_port(make_server):
    node = make_server("--requirepass", "pw", "--bind", "0.0.0.0")
    assert node.server.replication is None
    info = node.client(password="pw").info("replication")
    assert "cluster_port" not in info
    # nothing listens on port + 10000 (the old default)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", node.port + 10000)) != 0 or node.port + 10000 > 65535


def test_requirepass_with_clustering_needs_a_cluster_secret():
    for extra in (["--cluster-enabled", "yes"], ["--peers", "127.0.0.1:17001"], ["--cluster-port", "0"]):
        with pytest.raises(ConfigError, match="requirepass.*cluster-secret"):
            load(["--requirepass", "pw", *extra])
        load(["--requirepass", "pw", "--cluster-secret", "s", *extra])
    cfg = load(["--cluster-enabled", "yes"])
    with pytest.raises(ConfigError, match="cluster-secret"):
        cfg.set_runtime("requirepass", "pw")
    load(["--requirepass", "pw"])        # a single node needs no secret


def _outside_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))     # TEST-NET: picks a route, sends nothing
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_protected_mode_as_redis(make_server):
    node = make_server("--bind", "0.0.0.0")
    srv = node.server
    assert srv.protected_refuses(("192.0.2.7", 5000))
    assert not srv.protected_refuses(("127.0.0.1", 5000))
    assert not srv.protected_refuses(("::1", 5000, 0, 0))
    assert not srv.protected_refuses("/tmp/redis.sock")
    addr = _outside_address()
    if addr is not None:                     # a real non-loopback client too
        s = socket.create_connection((addr, node.port), timeout=5)
        s.sendall(b"PING\r\n")
        assert read_all(s) == b"-" + errors.DENIED_PROTECTED_MODE.encode() + b"\r\n"
    r = node.client()
    assert r.ping()                          # loopback is exempt
    r.config_set("requirepass", "pw")        # a password lifts it
    assert not srv.protected_refuses(("192.0.2.7", 5000))
    r.config_set("protected-mode", "no")
    r.config_set("requirepass", "")
    assert not srv.protected_refuses(("192.0.2.7", 5000))


def test_auth_then_big_command_in_one_write(make_server):
    """AUTH takes effect before the next command of the same read is parsed."""
    node = make_server("--requirepass", "pw")
    s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    big = b"v" * 100_000
    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
              + b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$100000\r\n" + big + b"\r\n$2\r\nEX\r\n$2\r\n60\r\n"
              + b"*1\r\n$4\r\nQUIT\r\n")
    assert read_all(s) == b"+OK\r\n+OK\r\n+OK\r\n"
    assert node.client(password="pw").get("k") == big


def test_pipelined_guessing_is_cut_and_summarised(make_server, caplog):
    node = make_server("--requirepass", "pw")
    s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # ~2.8 MB of replies: more than the kernel's socket buffers absorb
    guesses = b"".join(b"*2\r\n$4\r\nAUTH\r\n$6\r\ng%05d\r\n" % i for i in range(40000))
    with caplog.at_level(logging.WARNING, logger="repram"):
        try:
            s.sendall(guesses)
        except (ConnectionResetError, BrokenPipeError):
            pass
        # the node closed us: reading ends in EOF or a reset, long before
        # all 40000 replies
        got = read_all(s, 1 << 23)
    assert got.count(b"WRONGPASS") < 40000
    auth_lines = [r for r in caplog.records if "failed authentication" in r.getMessage()]
    assert 1 <= len(auth_lines) <= 2
    assert node.server.auth_failures > 10
    assert node.client(password="pw").ping()


def test_ratelog_summarises():
    t = [0.0]
    lines = []

    class L:
        def log(self, level, msg, *args, exc_info=False):
            lines.append(msg % args)
    rl = RateLog(L(), every_s=10, clock=lambda: t[0])
    for _ in range(1000):
        rl.event(logging.WARNING, "k", "failed from %s", "x")
    t[0] = 11
    rl.event(logging.WARNING, "k", "failed from %s", "y")
    assert lines == ["failed from x", "failed from y (and 999 more like it in the last 10 s)"]


# --- part 3: fairness ---------------------------------------------------------

def test_pipelining_client_yields_to_others(make_server):
    node = make_server("--client-turn-max-commands", "1")     # 5000 turns: room for b
    a = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    n = 5000
    a.sendall(b"*2\r\n$3\r\nGET\r\n$4\r\nmark\r\n" * n)    # ~130 KB: one read, one batch before
    f = a.makefile("rb")
    assert read_frame(f) == b"$-1\r\n"
    node.client().set("mark", "1", ex=60)                   # served while a's batch is pending
    rest = [read_frame(f) for _ in range(n - 1)]
    assert rest[-1] == b"$1\r\n1\r\n"


# --- part 4: commands whose cost is their size -------------------------------

def test_scan_with_an_absurd_cursor(both):
    ours, theirs = both
    for cur in ("9" * 4301, "9" * 21, "18446744073709551616", "1x"):
        assert ours.cmd("SCAN", cur) == theirs.cmd("SCAN", cur) == b"-ERR invalid cursor\r\n"


def test_long_client_names_are_checked_in_one_pass(both):
    ours, theirs = both
    for name in (b"n" * 1_000_000, b"n" * 500_000 + b" x", b"n\x7f"):
        assert ours.cmd("CLIENT", "SETNAME", name) == theirs.cmd("CLIENT", "SETNAME", name)


def test_keys_over_a_large_keyspace_lets_others_in(server, monkeypatch):
    # KEYS visits KEYS_STEP_KEYS keys per loop turn (1 here, so 3000 turns):
    # another client's SET lands in the middle of it and, sorting last, is
    # listed; the KEYS client's own pipelined PING still comes after.
    from repram_resp.commands import keys as keys_cmd
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(3000):
        p.set("k:%05d" % i, "v", ex=60)
    p.execute()
    monkeypatch.setattr(keys_cmd, "KEYS_STEP_KEYS", 1)
    a = Raw(server.port)
    a.sock.sendall(b"*2\r\n$4\r\nKEYS\r\n$3\r\nk:*\r\n*1\r\n$4\r\nPING\r\n")
    b = server.client()
    deadline = time.monotonic() + 10
    while b"cmd=keys" not in b.execute_command("CLIENT", "LIST"):
        assert time.monotonic() < deadline
    b.set("k:zzz", "late", ex=60)         # served while a's KEYS is running
    f = a.sock.makefile("rb")
    reply = read_frame(f)
    assert reply.startswith(b"*3001\r\n") and reply.endswith(b"$5\r\nk:zzz\r\n")
    assert read_frame(f) == b"+PONG\r\n"
    monkeypatch.setattr(keys_cmd, "KEYS_STEP_KEYS", 10_000)
    assert len(c.keys("k:*")) == 3001 and len(c.keys("k:0*")) == 3000


def test_scan_count_is_capped_per_step(server):
    # SCAN's COUNT is a hint: a step visits at most KEYS_STEP_KEYS keys, and
    # iterating still returns every key (redis-py's scan_iter).
    from repram_resp.commands.keys import KEYS_STEP_KEYS
    c = server.client()
    p = c.pipeline(transaction=False)
    for i in range(KEYS_STEP_KEYS + 500):
        p.set("s:%06d" % i, "v", ex=60)
    p.execute()
    cursor, page = c.scan(0, count=1_000_000_000)
    assert cursor != 0 and len(page) == KEYS_STEP_KEYS
    assert len(set(c.scan_iter(count=1_000_000))) == KEYS_STEP_KEYS + 500


def test_long_globs_are_not_cached():
    from repram_resp import glob
    before = glob._compile_cached.cache_info().currsize
    m1 = glob.compile_glob_py(b"a*" * 900 + b"b" * 4000)
    assert glob._compile_cached.cache_info().currsize == before
    assert m1(b"a" * 900 + b"b" * 4000) and not m1(b"a" * 899 + b"b" * 4000)
    # ... nor are its segment regexes, compiled on that first long key, in
    # re's own cache (CPython keeps its last 512 compiled patterns there).
    import re
    m2 = glob.compile_glob_py(b"[a-z]?" * 1000 + b"*")
    assert m2(b"k" * 2001)
    assert not any(len(k[1]) > 1000 for k in re._cache)


def test_patterns_are_indexed_by_prefix(server):
    r = server.client()
    p = r.pubsub()
    pats = ["user:%d:*" % i for i in range(300)] + ["*", "us?r:*", "user:1\\*", "[u]ser:1:*"]
    p.psubscribe(*pats)
    for _ in pats:
        assert p.get_message(timeout=5)["type"] == "psubscribe"
    assert r.publish("user:1:x", "m") == 4          # user:1:*, *, us?r:*, [u]ser:1:*
    got = set()
    for _ in range(4):
        got.add(p.get_message(timeout=5)["pattern"])
    assert got == {b"user:1:*", b"*", b"us?r:*", b"[u]ser:1:*"}
    assert r.publish("user:1*", "m") == 3            # *, us?r:*, user:1\*
    assert {p.get_message(timeout=5)["pattern"] for _ in range(3)} == {b"*", b"us?r:*", b"user:1\\*"}
    p.punsubscribe(*pats)
    for _ in pats:   # the replies prove the server has run every PUNSUBSCRIBE
        assert p.get_message(timeout=5)["type"] == "punsubscribe"
    p.close()
    ps = server.server.pubsub
    assert server.call(lambda: (ps._by_prefix, ps._prefix_lens)) == ({}, {})


# --- part 5: memory in the books ------------------------------------------------

def test_large_values_arrive_whole_through_redis_py(server):
    # 3 MB and 1 MB + 1 values take the in-place path (protocol.BIG_BULK_BYTES),
    # pipelined behind and before small commands.
    import os as _os
    c = server.client()
    big, odd = _os.urandom(3 << 20), b"\r\n" * (1 << 19) + b"x"
    p = c.pipeline(transaction=False)
    p.set("small", "1", ex=60).set("big", big, ex=60).set("odd", odd, ex=60).get("small")
    assert p.execute() == [True, True, True, b"1"]
    assert c.get("big") == big and c.get("odd") == odd and c.strlen("big") == len(big)


def test_query_buffers_count_in_used_memory_and_maxmemory_clients(make_server):
    node = make_server()
    r = node.client()
    base = r.info("memory")["used_memory"]
    s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1000000\r\n" + b"x" * 300_000)
    # poll until the node has read it all (deadline, no sleep)
    from clusterkit import wait_for
    wait_for(lambda: r.info("memory")["used_memory"] - base >= 300_000, 5, "query buffer counted")
    assert r.info("clients")["clients_memory"] >= 300_000
    r.config_set("maxmemory-clients", "100kb")
    assert node.call(node.server.enforce_clients_memory) == 1
    assert read_all(s) == b""                       # the biggest client was closed
    assert r.ping()


# --- part 6: file descriptors -------------------------------------------------

def test_fd_limit_raised_or_maxclients_lowered(monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda which: (256, 1024))
    monkeypatch.setattr(resource, "setrlimit", lambda which, lim: calls.append(lim))
    cfg = load(["--maxclients", "500"])
    fit_fd_limit(cfg)
    assert calls == [(500 + RESERVED_FDS, 1024)] and cfg.maxclients == 500
    calls.clear()
    cfg = load(["--maxclients", "5000"])
    with caplog.at_level(logging.WARNING, logger="repram"):
        fit_fd_limit(cfg)
    assert calls == [(1024, 1024)] and cfg.maxclients == 1024 - RESERVED_FDS
    assert any("maxclients lowered" in r.getMessage() for r in caplog.records)


def test_clients_beyond_maxclients_are_answered(make_server):
    node = make_server("--maxclients", "2")
    keep = [Raw(node.port), Raw(node.port)]
    assert keep[0].cmd("PING") == keep[1].cmd("PING") == b"+PONG\r\n"
    s = socket.create_connection(("127.0.0.1", node.port), timeout=5)
    assert read_all(s) == b"-ERR max number of clients reached\r\n"
    for k in keep:
        k.close()


# --- part 7: logs --------------------------------------------------------------

def test_cluster_port_garbage_is_logged_once_not_per_connection(make_server, caplog):
    node = make_server("--cluster-enabled", "yes")
    cport = node.server.replication.cport
    with caplog.at_level(logging.DEBUG, logger="repram"):
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", cport), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\n\r\n")
            read_all(s)
            s.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "protocol error" in r.getMessage()]
    assert len(warnings) == 1
    assert not [r for r in caplog.records if r.exc_info]


# --- part 9: what the soak found ------------------------------------------------

def test_finished_scan_iterations_leave_one_cursor_behind():
    from repram_resp.keyspace import Keyspace
    ks = Keyspace()
    now = 1_700_000_000_000
    for i in range(500):
        ks.put(b"k%03d" % i, b"v", now + 60_000, None, now)
    for it in range(20):
        cur, seen = 0, []
        while True:
            nxt, keys = ks.scan(cur, None, 10, now)
            if it == 0 and cur:
                # retrying the step just taken still works (the client may
                # not have seen its reply); it forks the chain once
                assert ks.scan(cur, None, 10, now)[1] == keys
            seen += keys
            if nxt == 0:
                break
            cur = nxt
        assert len(seen) == 500
    # one cursor per finished iteration (plus the forks of the first), not one per step
    assert len(ks._cursors) <= 20 + 50 and len(ks._cursor_parent) <= 20 + 50


# --- Redis reply differences found by benchmarks/fuzz.py ----------------------

# A refused EXEC (arity, NOAUTH, subscribed context) is Redis's EXECABORT and
# discards the transaction; a container's unknown subcommand or subcommand
# arity is answered before NOAUTH.  Each sequence runs on one connection.
REPLY_DIFF_SEQUENCES = [
    [("EXEC", "x")], [("EXEC", "x", "y")], [("EXEC",)],
    [("MULTI",), ("SET", "k", "v", "EX", "5"), ("EXEC", "x"), ("EXEC",), ("GET", "k")],
    [("WATCH", "k"), ("EXEC", "x"), ("EXEC",)],
    [("SUBSCRIBE", "ch"), ("EXEC", "x"), ("EXEC",), ("PING",)],
    [("CLIENT", "NOPE"), ("CLIENT", "nope", "x"), ("CONFIG", "NOPE"), ("CONFIG", "GET"),
     ("CONFIG", "SET"), ("COMMAND", "NOPE"), ("COMMAND", "COUNT", "x"), ("ACL", "NOPE"),
     ("ACL", "WHOAMI", "x"), ("OBJECT", "NOPE"), ("MEMORY", "NOPE"), ("PUBSUB", "NOPE"),
     ("PUBSUB", "HELP"), ("PUBSUB", "NUMPAT", "x"), ("SLOWLOG", "NOPE"), ("LATENCY", "NOPE"),
     ("LATENCY", "HISTORY"), ("MODULE", "NOPE"), ("client", "kill"), ("CLIENT", "LIST"),
     ("CLIENT",), ("NOPE",)],
]


@pytest.mark.parametrize("auth", [False, True], ids=["unauthenticated", "authenticated"])
def test_exec_and_subcommand_errors_as_redis(make_server, real_redis, auth):
    ours = make_server("--requirepass", "pw")
    Raw(real_redis).cmd("CONFIG", "SET", "requirepass", "pw")
    try:
        for seq in REPLY_DIFF_SEQUENCES:
            got = []
            for port in (ours.port, real_redis):
                c = Raw(port)
                if auth:
                    assert c.cmd("AUTH", "pw") == b"+OK\r\n"
                # (CLIENT LIST's text is ours; what matters is NOAUTH or not)
                got.append([r[:1] if cmd == ("CLIENT", "LIST") and r[:1] == b"$" else r
                            for cmd, r in ((cmd, c.cmd(*cmd)) for cmd in seq)])
                c.close()
            assert got[0] == got[1], seq
    finally:
        r = Raw(real_redis)
        r.cmd("AUTH", "pw")
        r.cmd("CONFIG", "SET", "requirepass", "")
    # redis-py sees the same: a refused EXEC raises, and the transaction is gone.
    c = ours.client(password="pw")
    c.execute_command("MULTI")
    with pytest.raises(redis.exceptions.ExecAbortError):
        c.execute_command("EXEC", "x")
    with pytest.raises(redis.exceptions.ResponseError, match="EXEC without MULTI"):
        c.execute_command("EXEC")


def test_exec_refused_by_acl_as_redis(make_server, real_redis):
    # A user without EXEC: Redis wraps the NOPERM in EXECABORT too.
    ours = make_server()
    got = []
    for port in (ours.port, real_redis):
        admin = Raw(port)
        assert admin.cmd("ACL", "SETUSER", "t7", "on", ">p", "+@all", "-exec", "~*") == b"+OK\r\n"
        c = Raw(port)
        try:
            got.append([c.cmd(*cmd) for cmd in (("AUTH", "t7", "p"), ("EXEC",), ("MULTI",),
                                               ("SET", "k", "v", "EX", "5"), ("EXEC",), ("EXEC",))])
        finally:
            admin.cmd("ACL", "DELUSER", "t7")
    assert got[0] == got[1]
    assert got[0][1].startswith(b"-EXECABORT Transaction discarded because of: NOPERM")
