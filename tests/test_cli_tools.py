"""The stock Redis tools against a real node: redis-cli (command mode, RESP3,
--scan, stdin, --pipe), redis-benchmark with the arbitrary-command form a
TTL-mandatory server needs, and graceful shutdown of the executable by
SIGTERM, SIGINT and SHUTDOWN.  Every subprocess runs with a timeout.

redis-cli / redis-benchmark come from redis-tools (7.0.x in CI); the outputs
asserted here are what they print when stdout is not a terminal (no "(nil)",
no "(integer)" decorations), checked against Redis 7.0.15.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

CLI = "redis-cli"
BENCH = "redis-benchmark"
RPS_RE = re.compile(r"([0-9.]+) requests per second")


def cli(port, *args, input=None, timeout=10):
    return subprocess.run([CLI, "-p", str(port), *args], input=input, capture_output=True,
                          timeout=timeout)


def out(port, *args, **kw) -> str:
    r = cli(port, *args, **kw)
    assert r.returncode == 0, r
    assert r.stderr == b"", r
    return r.stdout.decode()


def no_retry_client(node) -> redis.Redis:
    # redis-py 6+ retries a lost connection with backoff by default; a test
    # that expects the server to be gone wants the ConnectionError at once.
    return node.client(retry=Retry(NoBackoff(), 0))


def bench(port, *args, timeout=60):
    return subprocess.run([BENCH, "-p", str(port), *args], capture_output=True, timeout=timeout)


@pytest.fixture
def clocked(make_server, fake_clock):
    return make_server(clock=fake_clock), fake_clock


# --- redis-cli, command mode ---------------------------------------------------

def test_set_get_ttl(clocked):
    srv, clock = clocked
    p = srv.port
    assert out(p, "SET", "k", "v", "EX", "100") == "OK\n"
    assert out(p, "GET", "k") == "v\n"
    assert out(p, "TTL", "k") == "100\n"
    assert out(p, "PTTL", "k") == "100000\n"
    clock.advance(30_000)
    assert out(p, "TTL", "k") == "70\n"
    assert out(p, "EXISTS", "k") == "1\n"
    assert out(p, "TYPE", "k") == "string\n"
    clock.advance(70_001)
    assert out(p, "GET", "k") == "\n"           # nil prints as an empty line
    assert out(p, "TTL", "k") == "-2\n"


def test_set_without_ttl_gets_the_default(server):
    assert out(server.port, "SET", "k", "v") == "OK\n"
    assert out(server.port, "TTL", "k") == "3600\n"


def test_del_prints_the_disabled_error(server):
    p = server.port
    out(p, "SET", "k", "v", "EX", "100")
    text = out(p, "DEL", "k")
    assert text.startswith("ERR DEL is disabled: ")
    assert out(p, "GET", "k") == "v\n"


@pytest.mark.parametrize("cmd", ["EXPIRE k 5", "INCR k", "FLUSHALL", "GETDEL k", "PERSIST k"])
def test_other_disabled_commands(server, cmd):
    name = cmd.split()[0]
    assert out(server.port, *cmd.split()).startswith("ERR %s is disabled: " % name)


def test_unknown_command_error_and_the_connection_stays_open(server):
    p = server.port
    assert out(p, "FOO", "a", "b") == "ERR unknown command 'FOO', with args beginning with: 'a' 'b' \n\n"
    # In one session (stdin): the error, then the next command is still served.
    text = out(p, input=b"LPUSH l x\nSET k v EX 10\nGET k\n")
    assert text.splitlines() == [
        "ERR unknown command 'LPUSH', with args beginning with: 'l' 'x' ", "", "OK", "v"]


def test_resp3_get_of_missing_and_present_key(server):
    p = server.port
    assert out(p, "-3", "GET", "missing") == "\n"
    assert out(p, "-3", "SET", "k", "v", "EX", "10") == "OK\n"
    assert out(p, "-3", "GET", "k") == "v\n"
    assert "resp=3" in out(p, "-3", "CLIENT", "INFO")
    hello = out(p, "-3", "HELLO", "3").splitlines()
    assert "proto 3" in hello and "mode standalone" in hello


def test_scan_lists_exactly_the_matching_live_keys(clocked):
    srv, clock = clocked
    r = srv.client()
    wanted = {"p%02d" % i for i in range(35)} | {"p", "pz", "pa:b", "p*lit"}
    for k in wanted:
        r.set(k, "v", ex=100)
    for k in ("q1", "xp", "P1", "ap"):
        r.set(k, "v", ex=100)
    r.set("p-short", "v", px=1000)
    clock.advance(1001)                         # p-short expired, never listed
    text = out(srv.port, "--scan", "--pattern", "p*")
    lines = text.splitlines()
    assert len(lines) == len(set(lines)), "no duplicates"
    assert set(lines) == wanted
    # Redis glob rules, not fnmatch: classes, ? and escapes.
    assert set(out(srv.port, "--scan", "--pattern", "p0[0-2]").split()) == {"p00", "p01", "p02"}
    assert set(out(srv.port, "--scan", "--pattern", "p?").split()) == {"pz"}
    assert set(out(srv.port, "--scan", "--pattern", "p\\*lit").split()) == {"p*lit"}
    assert set(out(srv.port, "--scan").split()) == wanted | {"q1", "xp", "P1", "ap"}


def test_info_keyspace(server):
    p = server.port
    assert out(p, "INFO", "keyspace").strip() == "# Keyspace"
    for i in range(3):
        out(p, "SET", "k%d" % i, "v", "EX", "100")
    text = out(p, "INFO", "keyspace")
    m = re.search(r"^db0:keys=(\d+),expires=(\d+),avg_ttl=(\d+)\r?$", text, re.M)
    assert m, text
    assert m.group(1) == m.group(2) == "3"      # every key has a TTL
    assert 0 < int(m.group(3)) <= 100_000


def test_config_get(make_server):
    srv = make_server("--maxmemory", "100mb")
    assert out(srv.port, "CONFIG", "GET", "maxmemory") == "maxmemory\n%d\n" % (100 * 1024 ** 2)
    assert out(srv.port, "-3", "CONFIG", "GET", "maxmemory") == "maxmemory %d\n" % (100 * 1024 ** 2)
    # What redis-benchmark asks for first.
    assert out(srv.port, "CONFIG", "GET", "save") == "save\n\n"
    assert out(srv.port, "CONFIG", "GET", "appendonly") == "appendonly\nno\n"
    assert out(srv.port, "CONFIG", "GET", "nonexistent") == "\n"    # empty array


def test_commands_from_stdin(server):
    script = (b"SET a 1 EX 50\n"
              b"GET a\n"
              b'SET "sp ace" "hello world" EX 50\n'
              b'GET "sp ace"\n'
              b"DBSIZE\n"
              b"PING\n")
    assert out(server.port, input=script).splitlines() == ["OK", "1", "OK", "hello world", "2", "PONG"]


def test_mass_insertion_with_pipe_mode(server):
    def resp(*args):
        return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    data = b"".join(resp(b"SET", b"m:%d" % i, b"v%d" % i, b"EX", b"100") for i in range(1000))
    text = out(server.port, "--pipe", input=data, timeout=30)
    assert "errors: 0, replies: 1000" in text
    assert out(server.port, "DBSIZE") == "1000\n"


# --- redis-benchmark -----------------------------------------------------------

def rps_lines(r) -> list[float]:
    # -q prints progress with \r, then the final "X requests per second" line.
    return [float(m.group(1)) for m in RPS_RE.finditer(r.stdout.decode())]


def test_benchmark_set_with_ttl_then_get(server):
    p = server.port
    r = bench(p, "-n", "2000", "-c", "5", "-r", "1000", "-q", "SET", "key:__rand_int__", "v", "EX", "60")
    assert r.returncode == 0, r
    assert rps_lines(r) and rps_lines(r)[-1] > 0, r.stdout
    rc = server.client()
    n = rc.dbsize()
    assert 0 < n <= 1000
    keys = list(rc.scan_iter(match="key:*", count=1000))
    assert len(keys) == n
    assert all(re.fullmatch(rb"key:\d{12}", k) for k in keys)
    assert 0 < rc.ttl(keys[0]) <= 60
    r = bench(p, "-n", "2000", "-c", "5", "-r", "1000", "-q", "GET", "key:__rand_int__")
    assert r.returncode == 0, r
    assert rps_lines(r), r.stdout
    assert rc.info("stats")["keyspace_hits"] > 0


def test_benchmark_pipelined_set(server):
    r = bench(server.port, "-n", "5000", "-c", "4", "-P", "16", "-r", "100000", "-q",
              "SET", "key:__rand_int__", "v", "EX", "60")
    assert r.returncode == 0, r
    assert rps_lines(r), r.stdout
    assert server.client().dbsize() > 0


def test_benchmark_ping_inline_and_mbulk(server):
    r = bench(server.port, "-n", "2000", "-c", "5", "-q", "-t", "ping_inline,ping_mbulk")
    assert r.returncode == 0, r
    text = r.stdout.decode()
    assert re.search(r"PING_INLINE: [0-9.]+ requests per second", text), text
    assert re.search(r"PING_MBULK: [0-9.]+ requests per second", text), text


def test_benchmark_builtin_set_get_use_the_default_ttl(server):
    # The built-in SET test sends no TTL: it gets default-ttl.
    r = bench(server.port, "-n", "1000", "-c", "2", "-r", "100", "-q", "-t", "set,get")
    assert r.returncode == 0, r
    assert len(rps_lines(r)) == 2, r.stdout
    rc = server.client()
    key = next(rc.scan_iter(match="key:*"))
    assert 3590 <= rc.ttl(key) <= 3600


# --- graceful shutdown of the executable ----------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_with_clients_connected_exits_0(node_proc, sig):
    node = node_proc()
    r = no_retry_client(node)
    assert r.set("k", "v", ex=10)
    sub = node.client().pubsub()
    sub.subscribe("news")
    assert sub.get_message(timeout=2)["type"] == "subscribe"
    raw = socket.create_connection(("127.0.0.1", node.port))
    raw.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\n")   # a request cut in the middle
    time.sleep(0.05)
    t0 = time.monotonic()
    node.proc.send_signal(sig)
    rc = node.proc.wait(10)
    assert rc == 0
    assert time.monotonic() - t0 < 3
    assert b"bye" in node.log or b"shutdown requested" in node.log
    with pytest.raises(redis.ConnectionError):
        r.get("k")
    assert raw.recv(100) == b""                 # the server closed the connection
    raw.close()
    sub.close()


def test_sigterm_with_a_client_not_reading_is_bounded_by_shutdown_timeout(node_proc):
    node = node_proc("--shutdown-timeout", "1")
    r = node.client()
    r.set("big", b"x" * (1 << 20), ex=60)
    raw = socket.create_connection(("127.0.0.1", node.port))
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.sendall(b"GET big\r\n" * 64)            # 64 MiB of replies nobody reads
    time.sleep(0.3)
    t0 = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    rc = node.proc.wait(15)
    took = time.monotonic() - t0
    raw.close()
    assert rc == 0
    assert took < 4, "shutdown-timeout 1 s was not honoured (%.1f s)" % took


def test_shutdown_command_via_redis_cli(node_proc):
    node = node_proc()
    other = no_retry_client(node)
    assert other.ping()
    r = cli(node.port, "SHUTDOWN")
    assert r.returncode == 0, r
    assert node.proc.wait(10) == 0
    with pytest.raises(redis.ConnectionError):
        other.ping()


def test_shutdown_command_via_redis_py(node_proc):
    # redis-py's Redis.shutdown() treats the connection closing as success and
    # any reply as failure ("SHUTDOWN seems to have failed."), because Redis
    # sends no reply to a SHUTDOWN that succeeds.
    node = node_proc()
    r = node.client()
    r.shutdown()
    assert node.proc.wait(10) == 0


def test_shutdown_with_bad_argument_keeps_serving(node_proc):
    node = node_proc()
    assert out(node.port, "SHUTDOWN", "BOGUS") == "ERR syntax error\n\n"
    assert out(node.port, "PING") == "PONG\n"
    assert node.proc.poll() is None
