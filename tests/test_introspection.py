"""Debugging and introspection commands and INFO for operators, driven by
redis-py, redis-cli and raw sockets, beside the real redis-server where the
two should agree."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
import redis

from rawresp import Raw

MONITOR_LINE = re.compile(rb'^\+\d+\.\d{6} \[0 127\.0\.0\.1:\d+\]( "(?:[^"\\]|\\.)*")+\r\n$')


def _monitor_lines(port: int, actions, want: int, password=None):
    m = Raw(port)
    if password:
        assert m.cmd("AUTH", password) == b"+OK\r\n"
    assert m.cmd("MONITOR") == b"+OK\r\n"
    actions()
    lines = [m.read() for _ in range(want)]
    m.close()
    return lines


def _strip(line: bytes) -> bytes:
    return line.split(b"] ", 1)[1]


def test_monitor_lines_are_redis_lines(server, real_redis):
    def actions(port):
        c = Raw(port)
        c.cmd("SET", "k", 'v "q"\n\x01', "EX", "100")
        c.cmd("AUTH", "nopass")                  # fails (no password): still shown, redacted
        c.cmd("CONFIG", "GET", "port")           # admin: never shown
        c.cmd("GET", "k")
        c.close()
    mine = _monitor_lines(server.port, lambda: actions(server.port), 3)
    real = _monitor_lines(real_redis, lambda: actions(real_redis), 3)
    for line in mine:
        assert MONITOR_LINE.match(line), line
    assert [_strip(x) for x in mine] == [_strip(x) for x in real]
    assert _strip(mine[0]) == b'"SET" "k" "v \\"q\\"\\n\\x01" "EX" "100"\r\n'
    assert _strip(mine[1]) == b'"AUTH" "(redacted)"\r\n'


TX_SCRIPT = [("SET", "a", "1"), ("MULTI",), ("SET", "b", "2", "EX", "100"), ("GET", "a"), ("PING",),
             ("EXEC",), ("MULTI",), ("GET", "x"), ("DISCARD",), ("MULTI",), ("GET", "y"), ("NOPE",),
             ("GET",), ("EXEC",), ("GET", "a", "b"), ("GET", "z")]


def _monitor_tx(port):
    m = Raw(port)
    assert m.cmd("MONITOR") == b"+OK\r\n"
    c = Raw(port)
    exec_at = None
    for argv in TX_SCRIPT:
        if argv == ("EXEC",) and exec_at is None:
            exec_at = time.time()            # after the queued commands' replies came back
        c.cmd(*argv)
    c.cmd("ECHO", "end")
    lines = []
    while b'"ECHO"' not in (line := m.read()):
        lines.append(line)
    m.close()
    c.close()
    return lines, exec_at


def test_monitor_shows_a_transaction_when_exec_runs_it(server, real_redis):
    """Redis 7: MULTI, then the queued commands as EXEC runs them, then EXEC;
    nothing of a DISCARDed or aborted transaction but MULTI/DISCARD/EXEC, and
    no refused command."""
    mine, exec_at = _monitor_tx(server.port)
    real, _ = _monitor_tx(real_redis)
    assert [_strip(x) for x in mine] == [_strip(x) for x in real]
    assert [_strip(x) for x in mine][:6] == [b'"SET" "a" "1"\r\n', b'"MULTI"\r\n',
                                             b'"SET" "b" "2" "EX" "100"\r\n', b'"GET" "a"\r\n',
                                             b'"PING"\r\n', b'"EXEC"\r\n']
    stamp = float(mine[2][1:].split(b" ", 1)[0])
    assert stamp >= exec_at - 1e-6          # shown at EXEC time (stamps are in µs), not when queued


def test_monitor_through_redis_py_and_never_in_the_log(node_proc):
    node = node_proc("--requirepass", "pw", "--loglevel", "debug")
    r = node.client(password="pw")
    seen = []
    with r.monitor() as m:
        c = node.client(password="pw")
        c.set("secret-key", "secret-value", ex=100)
        unauth = Raw(node.port)
        assert unauth.cmd("SET", "nope", "hidden", "EX", "10").startswith(b"-NOAUTH")
        c.get("secret-key")
        for cmd in m.listen():
            seen.append(cmd["command"])
            if cmd["command"].startswith("GET"):
                break
    assert "SET secret-key secret-value EX 100" in seen
    assert not any("hidden" in s for s in seen)          # refused before running: not shown
    r.ping()
    assert b"secret-value" not in node.log


def test_slowlog(server, real_redis):
    r = server.client()
    assert r.config_get("slowlog-log-slower-than") == {"slowlog-log-slower-than": "10000"}
    assert r.slowlog_len() == 0
    r.config_set("slowlog-log-slower-than", 0)       # every command
    r.set("slow", "x" * 200, ex=100)
    entries = r.slowlog_get(10)
    assert any(e["command"].startswith(b"SET slow " + b"x" * 128 + b"... (72 more bytes)")
               for e in entries), entries
    e = entries[0]
    assert {"id", "start_time", "duration", "command", "client_address", "client_name"} <= set(e)
    assert r.slowlog_len() >= 2
    assert r.slowlog_reset()
    r.config_set("slowlog-max-len", 2)
    for _ in range(5):
        r.get("slow")
    assert r.slowlog_len() == 2
    r.config_set("slowlog-log-slower-than", -1)
    r.slowlog_reset()
    r.get("slow")
    assert r.slowlog_len() == 0
    ours, theirs = Raw(server.port), Raw(real_redis)
    for argv in (("SLOWLOG", "GET", "-2"), ("SLOWLOG", "GET", "x"), ("SLOWLOG", "LEN", "x"),
                 ("SLOWLOG", "NOPE"), ("SLOWLOG", "RESET")):
        assert ours.cmd(*argv) == theirs.cmd(*argv), argv


def test_latency_monitor(server):
    r = server.client()
    assert r.execute_command("LATENCY", "LATEST") == []
    r.config_set("latency-monitor-threshold", 1)
    r.mset({"lat:%d" % i: "v" for i in range(20000)})     # tens of ms in Python
    latest = r.execute_command("LATENCY", "LATEST")
    assert latest and latest[0][0] == b"command" and latest[0][2] >= 1
    hist = r.execute_command("LATENCY", "HISTORY", "command")
    assert hist and hist[0][1] >= 1
    assert b"command" in r.execute_command("LATENCY", "DOCTOR")
    h = r.execute_command("LATENCY", "HISTOGRAM", "mset")
    assert h[b"mset"][b"calls"] == 1 and h[b"mset"][b"histogram_usec"]   # redis-py maps it
    assert r.execute_command("LATENCY", "RESET") == 1
    assert r.execute_command("LATENCY", "LATEST") == []


def test_memory_object_and_memkeys(server, real_redis):
    r = server.client()
    r.set("m:key", "v" * 100, ex=100)
    usage = r.memory_usage("m:key")
    assert usage == len("m:key") + 100 + int(r.info("memory")["entry_overhead_bytes"])
    assert r.memory_usage("m:none") is None
    stats = r.memory_stats()
    assert stats["keys.count"] == 1 and stats["peak.allocated"] >= usage
    assert "Sam" in r.execute_command("MEMORY", "DOCTOR").decode()
    assert r.object("encoding", "m:key") == b"raw"
    assert r.object("refcount", "m:key") == 1
    assert r.object("idletime", "m:key") == 0
    ours, theirs = Raw(server.port), Raw(real_redis)
    theirs.cmd("SET", "m:key", "v", "EX", "100")
    for argv in (("OBJECT", "FREQ", "m:key"), ("OBJECT", "ENCODING", "m:none"), ("OBJECT", "NOPE", "k"),
                 ("OBJECT", "ENCODING"), ("MEMORY", "USAGE", "m:none"), ("MEMORY", "USAGE", "m:key", "X"),
                 ("MEMORY", "NOPE"), ("DEBUG", "SLEEP", "0"), ("DEBUG",), ("SUBSTR", "m:key", "0", "0"),
                 ("SUBSTR", "m:none", "0", "5"), ("CLIENT", "UNBLOCK", "999999"),
                 ("CLIENT", "UNBLOCK", "x"), ("CLIENT", "UNBLOCK", "1", "NOPE"),
                 ("CLIENT", "PAUSE", "x"), ("CLIENT", "PAUSE", "-1"), ("CLIENT", "PAUSE", "10", "NOPE"),
                 ("CLIENT", "REPLY", "NOPE"), ("LOLWUT", "VERSION", "x")):
        assert ours.cmd(*argv) == theirs.cmd(*argv), argv
    # redis-cli --memkeys finds the key through MEMORY USAGE
    out = subprocess.run(["redis-cli", "-p", str(server.port), "--memkeys"], capture_output=True,
                         text=True, timeout=30).stdout
    assert "Biggest string found '\"m:key\"' has %d bytes" % usage in out, out


def test_role_randomkey_lolwut(server, real_redis):
    r = server.client()
    assert r.role() == [b"master", 0, []]
    assert Raw(server.port).cmd("ROLE")[:4] == Raw(real_redis).cmd("ROLE")[:4] == b"*3\r\n"
    assert r.randomkey() is None
    keys = {("rk:%d" % i).encode() for i in range(50)}
    r.mset({k: b"v" for k in keys})
    assert {r.randomkey() for _ in range(40)} <= keys
    from repram_resp import REDIS_COMPAT_VERSION
    assert b"Redis ver. %s" % REDIS_COMPAT_VERSION.encode() in r.lolwut()


def test_randomkey_skips_expired_keys(make_server, fake_clock):
    s = make_server("--min-ttl", "0", clock=fake_clock)
    r = s.client()
    for i in range(300):
        r.set("gone:%d" % i, "v", px=10)
    r.set("live", "v", ex=100)
    fake_clock.advance(50)         # 300 expired but not reclaimed yet, 1 live
    assert r.randomkey() == b"live"


def test_client_reply_same_as_redis(both):
    ours, theirs = both
    script = [("CLIENT", "REPLY", "OFF"), ("SET", "a", "1", "EX", "10"), ("GET", "a"),
              ("CLIENT", "REPLY", "SKIP"), ("CLIENT", "REPLY", "ON"), ("GET", "a"),
              ("CLIENT", "REPLY", "SKIP"), ("GET", "a"), ("PING",)]
    from rawresp import encode
    outs = []
    for c in (ours, theirs):
        c.sock.sendall(b"".join(encode(*a) for a in script))
        outs.append([c.read(), c.read(), c.read()])
    assert outs[0] == outs[1] == [b"+OK\r\n", b"$1\r\n1\r\n", b"+PONG\r\n"]


def test_client_pause_write_and_unpause(server):
    r = server.client()
    r.set("p", "before", ex=100)
    assert r.client_pause(10_000, all=False)
    done = threading.Event()

    def writer():
        server.client().set("p", "after", ex=100)
        done.set()
    t = threading.Thread(target=writer)
    t.start()
    assert server.client().get("p") == b"before"          # reads are not held
    assert not done.wait(0.2)                             # the write is held
    assert r.client_unpause()
    assert done.wait(5)
    t.join()
    assert r.get("p") == b"after"
    # a pause ends by itself
    r.client_pause(100)
    t0 = time.monotonic()
    assert r.get("p") == b"after"                          # ALL: the caller waits too
    assert time.monotonic() - t0 >= 0.05


def test_client_unblock_wait(server):
    r = server.client()
    blocked = Raw(server.port)
    cid = int(blocked.cmd("CLIENT", "ID")[1:-2])
    def wait_blocked():
        deadline = time.monotonic() + 5
        while server.server.clients[cid].blocked is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)       # polling the server's state, bounded by the deadline
    blocked.send("WAIT", "1", "0")                       # no peers: blocks forever
    wait_blocked()
    assert r.client_unblock(cid) == 1
    assert blocked.read() == b":0\r\n"
    blocked.send("WAIT", "1", "0")
    wait_blocked()
    assert r.client_unblock(cid, error=True) == 1
    assert blocked.read() == b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"
    assert r.client_unblock(cid) == 0


def test_info_commandstats_errorstats_and_operator_fields(server):
    r = server.client()
    r.config_resetstat()
    p = r.pipeline(transaction=False)
    for i in range(5):
        p.set("s:%d" % i, "v", ex=100)
    for i in range(3):
        p.get("s:%d" % i)
    p.execute()
    with pytest.raises(redis.ResponseError):
        r.set("s:0", "v", ex=0)                           # failed
    with pytest.raises(redis.ResponseError):
        r.execute_command("GET")                          # rejected (arity)
    with pytest.raises(redis.ResponseError):
        r.delete("s:0")                                   # rejected (disabled)
    tx = r.pipeline()
    tx.set("s:9", "v", ex=100).get("s:9")
    tx.execute()
    cs = r.info("commandstats")
    assert cs["cmdstat_set"]["calls"] == 7 and cs["cmdstat_set"]["failed_calls"] == 1
    assert cs["cmdstat_get"]["calls"] == 4 and cs["cmdstat_get"]["rejected_calls"] == 1
    assert cs["cmdstat_del"] == {"calls": 0, "usec": cs["cmdstat_del"]["usec"], "usec_per_call": 0.0,
                                 "rejected_calls": 1, "failed_calls": 0}
    assert cs["cmdstat_exec"]["calls"] == 1 and cs["cmdstat_multi"]["calls"] == 1
    assert cs["cmdstat_set"]["usec"] > 0
    es = r.info("errorstats")
    assert es["errorstat_ERR"]["count"] == 3
    ls = r.info("latencystats")
    assert set(ls["latency_percentiles_usec_set"]) == {"p50", "p99", "p99.9"}
    assert "cmdstat_set" not in r.info()                  # not in the default set, as in Redis
    info = r.info("everything")
    for field in ("total_net_input_bytes", "total_net_output_bytes", "total_reads_processed",
                  "total_writes_processed", "used_memory_peak", "used_cpu_sys", "used_cpu_user",
                  "used_cpu_sys_children", "instantaneous_ops_per_sec", "cmdstat_set",
                  "errorstat_ERR", "client_recent_max_input_buffer"):
        assert field in info, field
    assert info["total_net_input_bytes"] > 100 and info["total_reads_processed"] >= 5
    assert info["used_memory_peak"] >= info["used_memory"] > 0


def test_scripting_is_refused_with_a_reason(server):
    r = server.client()
    for call in (lambda: r.eval("return 1", 0), lambda: r.evalsha("a" * 40, 0),
                 lambda: r.script_load("return 1"), lambda: r.fcall("f", 0),
                 lambda: r.function_list()):
        with pytest.raises(redis.ResponseError, match=r"^[A-Z_]+ is disabled: REPRAM runs no "
                                                      r"server-side code"):
            call()
    tx = r.pipeline()
    tx.set("t", "v", ex=10).eval("return 1", 0)
    with pytest.raises(redis.ResponseError, match="EVAL is disabled"):   # queue-time: EXECABORT
        tx.execute()
    assert r.get("t") is None


@pytest.mark.parametrize("which", [(), ("all",), ("everything",), ("default",), ("commandstats", "cpu")])
def test_info_sections_like_redis(both, which):
    ours, theirs = both
    for c in (ours, theirs):
        c.cmd("SET", "k", "v", "EX", "100")
        c.cmd("GET", "k")

    def heads(c):
        return [line for line in c.cmd("INFO", *which).split(b"\r\n") if line.startswith(b"#")]
    assert heads(ours) == heads(theirs)


def test_role_lists_the_enclave_peers(make_server):
    from clusterkit import start_mesh, wait_for
    a, b = start_mesh(make_server, 2)
    r = a.client()
    r.set("rk", "v", ex=100)
    role = wait_for(lambda: (lambda x: x if x[2] and int(x[2][0][2]) > 0 else None)(r.role()),
                    what="ROLE with b's acknowledgement")
    assert role[0] == b"master" and role[1] >= 1
    assert role[2] == [[b"127.0.0.1", str(b.port).encode(), role[2][0][2]]]
