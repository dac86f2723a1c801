"""Server administration: INFO, CONFIG GET/SET/RESETSTAT, COMMAND, TIME.

What tools need (reference §3): redis-benchmark asks ``CONFIG GET save`` and
``CONFIG GET appendonly``; ioredis's ready check parses ``loading:`` from
INFO; redis-py's own suite reads ``redis_version``, ``arch_bits`` and
``cluster_enabled``; redis-cli reads COMMAND DOCS.  Error texts Redis defines
are compared with a throwaway real redis-server.
"""

from __future__ import annotations

import time

import hiredis
import pytest
import redis

from rawresp import Raw

OK = b"+OK\r\n"


def parse(reply: bytes):
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def info_sections(text: str) -> dict:
    """Redis INFO text -> {section: {field: value}}, checking the format as it goes."""
    assert text.endswith("\r\n")
    sections = {}
    for block in text[:-2].split("\r\n\r\n"):
        lines = block.split("\r\n")
        assert lines[0].startswith("# "), lines[0]
        fields = {}
        for line in lines[1:]:
            key, sep, value = line.partition(":")
            assert sep and key and " " not in key, line
            fields[key] = value
        sections[lines[0][2:]] = fields
    return sections


# --- INFO -----------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_info_parses_with_redis_py(make_server, fake_clock, protocol):
    s = make_server(clock=fake_clock)
    r = s.client(protocol=protocol)
    info = r.info()
    assert info["redis_version"].count(".") == 2
    assert info["redis_mode"] == "standalone"
    assert info["loading"] == 0
    assert info["role"] == "master"
    assert info["arch_bits"] == 64
    assert info["cluster_enabled"] == 0
    assert isinstance(info["used_memory"], int) and isinstance(info["maxmemory"], int)
    assert info["maxmemory"] == 0 and info["maxmemory_policy"] == "noeviction"
    assert info["connected_clients"] >= 1
    assert "db0" not in info
    assert r.info("keyspace") == {}
    r.set("a", "1", ex=100)
    r.set("b", "2", ex=300)
    db0 = r.info()["db0"]
    assert db0["keys"] == 2 and db0["expires"] == 2       # every key expires
    assert 100_000 <= db0["avg_ttl"] <= 300_000
    ks = r.info("keyspace")["db0"]
    assert (ks["keys"], ks["expires"]) == (2, 2)
    for section in ("server", "clients", "memory", "persistence", "stats", "replication", "cpu",
                    "cluster", "keyspace", "all", "everything", "default", "SERVER"):
        assert isinstance(r.info(section), dict), section
    both = r.info("memory", "stats")
    assert "used_memory" in both and "keyspace_hits" in both and "redis_version" not in both
    assert r.info("nosuchsection") == {}


def test_info_raw_format(server):
    c = Raw(server.port)
    c.cmd("SET", "k", "v", "EX", "100")
    reply = c.cmd("INFO")
    assert reply.startswith(b"$")
    text = parse(reply).decode()
    sections = info_sections(text)
    assert {"Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Cluster",
            "Keyspace"} <= set(sections)
    assert sections["Keyspace"]["db0"].startswith("keys=1,expires=1,avg_ttl=")
    assert sections["Persistence"]["loading"] == "0"
    # RESP3: a verbatim string with the txt format
    c.cmd("HELLO", "3")
    reply = c.cmd("INFO", "server")
    assert reply.startswith(b"=")
    length, body = reply[1:].split(b"\r\n", 1)
    assert body[:4] == b"txt:" and len(body) == int(length) + 2
    assert list(info_sections(body[4:-2].decode())) == ["Server"]


def test_info_section_names_match_redis(both):
    ours, theirs = both
    for c in (ours, theirs):
        c.cmd("SET", "k", "v", "EX", "100")
    mine = info_sections(parse(ours.cmd("INFO")).decode())
    real = info_sections(parse(theirs.cmd("INFO")).decode())
    assert set(mine) <= set(real), set(mine) - set(real)
    for section, fields in mine.items():
        shared = set(fields) & set(real[section])
        assert shared or not fields and not real[section], section     # Modules: empty in both
    assert list(mine) == [s for s in real if s in mine]                   # Redis's order
    for field in ("redis_version", "redis_mode", "arch_bits", "tcp_port", "uptime_in_seconds"):
        assert field in mine["Server"]
    for field in ("used_memory", "maxmemory", "maxmemory_policy"):
        assert field in mine["Memory"]
    for field in ("total_connections_received", "total_commands_processed", "expired_keys",
                  "keyspace_hits", "keyspace_misses", "total_error_replies"):
        assert field in mine["Stats"]
    assert mine["Replication"]["role"] == real["Replication"]["role"] == "master"
    assert mine["Keyspace"]["db0"].split("avg_ttl")[0] == real["Keyspace"]["db0"].split("avg_ttl")[0]


def test_info_stats_and_resetstat(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    r.set("k", "v", px=1000)
    r.get("k"), r.get("k"), r.get("missing")
    try:
        r.delete("k")
    except redis.ResponseError:
        pass
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 2 and stats["keyspace_misses"] == 1
    assert stats["total_error_replies"] >= 1
    assert stats["total_commands_processed"] >= 6
    fake_clock.advance(1001)
    assert r.dbsize() == 0
    # DBSIZE counts without reclaiming (issue 7); the reclaimer counts expiries.
    s.call(s.server.keyspace.expire_all_due, fake_clock())
    assert r.info("stats")["expired_keys"] == 1
    assert r.config_resetstat() is True
    stats = r.info("stats")
    assert stats["keyspace_hits"] == 0 and stats["keyspace_misses"] == 0
    assert stats["expired_keys"] == 0 and stats["total_error_replies"] == 0
    assert stats["total_commands_processed"] <= 2


def test_info_follows_config(server):
    r = server.client()
    r.config_set("maxmemory", "100mb")
    info = r.info("memory")
    assert info["maxmemory"] == 100 * 1024 * 1024
    assert info["maxmemory_human"] == "100.00M"


# --- CONFIG ---------------------------------------------------------------------------

def test_config_get_for_redis_benchmark(server):
    c = Raw(server.port)
    # redis-benchmark pipelines exactly these two and needs arrays back
    c.send("CONFIG", "GET", "save")
    c.send("CONFIG", "GET", "appendonly")
    assert c.read() == b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n"
    assert c.read() == b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"
    c.cmd("HELLO", "3")
    assert c.cmd("CONFIG", "GET", "save") == b"%1\r\n$4\r\nsave\r\n$0\r\n\r\n"


@pytest.mark.parametrize("protocol", [2, 3])
def test_config_get(server, protocol):
    r = server.client(protocol=protocol)
    everything = r.config_get("*")
    assert len(everything) > 10                     # redis-py's own test asks for > 10
    assert everything["save"] == "" and everything["appendonly"] == "no"
    assert everything["default-ttl"] == "3600" and everything["min-ttl"] == "0"
    assert everything["max-ttl"] == "86400"
    assert everything["maxmemory"] == "0" and everything["maxmemory-policy"] == "noeviction"
    assert everything["databases"] == "1"
    assert r.config_get("save", "appendonly") == {"save": "", "appendonly": "no"}
    assert r.config_get("*-ttl") == {"default-ttl": "3600", "min-ttl": "0", "max-ttl": "86400"}
    assert set(r.config_get("maxmemory*")) == {"maxmemory", "maxmemory-policy", "maxmemory-clients"}
    assert set(r.config_get("max?emory")) == {"maxmemory"}
    assert r.config_get("nosuchthing") == {}
    assert r.config_get("save", "save") == {"save": ""}
    assert r.config_get("MAXMEMORY") == {"MAXMEMORY": "0"}     # Redis echoes an exact name


CONFIG_SAME_AS_REDIS = [
    ("CONFIG",), ("CONFIG", "GET"), ("CONFIG", "SET"), ("CONFIG", "SET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1", "2"), ("CONFIG", "SET", "foo", "bar"),
    ("CONFIG", "SET", "maxmemory", "100mb"), ("CONFIG", "GET", "maxmemory"), ("CONFIG", "SET", "maxmemory", "0"),
    ("CONFIG", "SET", "maxmemory", "1", "maxmemory", "2"), ("CONFIG", "SET", "databases", "5"),
    ("CONFIG", "SET", "MAXMEMORY", "0"), ("CONFIG", "GET", "save"), ("CONFIG", "GET", "appendonly"),
    ("CONFIG", "GET", "maxmemory-policy"), ("CONFIG", "GET", "nosuch"), ("CONFIG", "GET", "nosuch*"),
    ("CONFIG", "SET", "appendonly", "no"), ("CONFIG", "SET", "save", ""),
    ("CONFIG", "SET", "notify-keyspace-events", "Ex"), ("CONFIG", "GET", "notify-keyspace-events"),
    ("CONFIG", "SET", "notify-keyspace-events", ""), ("CONFIG", "foo"), ("CONFIG", "resetstat", "x"),
    ("CONFIG", "help", "x"), ("CONFIG", "RESETSTAT"),
]


@pytest.mark.parametrize("proto", ["2", "3"])
def test_config_same_as_redis(both, proto):
    # One script (order matters: SET then GET); it leaves Redis as it found it.
    ours, theirs = both
    if proto == "3":
        ours.cmd("HELLO", "3")
        theirs.cmd("HELLO", "3")
    for argv in CONFIG_SAME_AS_REDIS:
        assert ours.cmd(*argv) == theirs.cmd(*argv), argv


def test_config_set(make_server):
    s = make_server()
    c = Raw(s.port)
    assert c.cmd("CONFIG", "SET", "maxmemory", "100mb") == OK
    assert c.cmd("CONFIG", "GET", "maxmemory") == b"*2\r\n$9\r\nmaxmemory\r\n$9\r\n104857600\r\n"
    e = c.cmd("CONFIG", "SET", "maxmemory", "lots")
    assert e.startswith(b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - ")
    e = c.cmd("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    assert e.startswith(b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - ")
    assert c.cmd("CONFIG", "SET", "bogus", "1") == \
        b"-ERR Unknown option or number of arguments for CONFIG SET - 'bogus'\r\n"
    assert c.cmd("CONFIG", "SET", "port", "1234").startswith(
        b"-ERR CONFIG SET failed (possibly related to argument 'port') - ")
    # all or nothing: one bad pair changes none
    e = c.cmd("CONFIG", "SET", "maxmemory", "1mb", "maxmemory-policy", "bogus")
    assert e.startswith(b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy')")
    assert c.cmd("CONFIG", "GET", "maxmemory") == b"*2\r\n$9\r\nmaxmemory\r\n$9\r\n104857600\r\n"
    assert c.cmd("CONFIG", "SET", "MaxMemory", "0", "notify-keyspace-events", "Ex") == OK
    assert parse(c.cmd("CONFIG", "GET", "notify-keyspace-events")) == [b"notify-keyspace-events", b"xE"]
    # REPRAM is RAM only: persistence can be asked about but not switched on
    assert c.cmd("CONFIG", "SET", "save", "") == OK
    assert c.cmd("CONFIG", "SET", "appendonly", "no") == OK
    assert c.cmd("CONFIG", "SET", "appendonly", "yes").startswith(
        b"-ERR CONFIG SET failed (possibly related to argument 'appendonly') - ")
    assert c.cmd("CONFIG", "SET", "save", "900 1").startswith(
        b"-ERR CONFIG SET failed (possibly related to argument 'save') - ")
    assert c.cmd("CONFIG", "REWRITE").startswith(b"-ERR ")
    assert isinstance(parse(c.cmd("CONFIG", "HELP")), list)
    assert c.cmd("CONFIG", "NOPE") == b"-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n"


def test_config_set_ttl_policy_at_runtime(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    assert r.config_set("default-ttl", "60")
    r.set("k", "v")
    assert r.pttl("k") == 60_000
    assert r.config_set("min-ttl", "10")
    with pytest.raises(redis.ResponseError, match="min-ttl"):
        r.set("k", "v", ex=5)
    assert r.config_set("max-ttl", "100")
    with pytest.raises(redis.ResponseError, match="max-ttl"):
        r.set("k", "v", ex=101)
    # the bounds stay consistent: default-ttl must lie within them
    with pytest.raises(redis.ResponseError, match=r"^CONFIG SET failed \(possibly related to argument 'default-ttl'\)"):
        r.config_set("default-ttl", "1000")
    with pytest.raises(redis.ResponseError, match=r"^CONFIG SET failed \(possibly related to argument 'min-ttl'\)"):
        r.config_set("min-ttl", "200")
    assert r.config_get("*-ttl") == {"default-ttl": "60", "min-ttl": "10", "max-ttl": "100"}
    assert r.config_set("default-ttl", "0")
    with pytest.raises(redis.ResponseError, match="^TTL required: "):
        r.set("k", "v")


def test_config_set_requirepass(server):
    r = server.client()
    assert r.config_set("requirepass", "later")
    c = Raw(server.port)
    assert c.cmd("PING") == b"-NOAUTH Authentication required.\r\n"
    assert c.cmd("AUTH", "later") == OK
    assert r.ping()                          # an authenticated connection stays so
    assert c.cmd("CONFIG", "SET", "requirepass", "") == OK
    assert Raw(server.port).cmd("PING") == b"+PONG\r\n"


# --- COMMAND ------------------------------------------------------------------------

COMMAND_SAME_AS_REDIS = [
    ("COMMAND", "INFO", "nosuchcmd"), ("COMMAND", "DOCS", "nosuchcmd"), ("COMMAND", "COUNT", "x"),
    ("COMMAND", "HELP", "x"), ("COMMAND", "GETKEYS"), ("COMMAND", "GETKEYS", "get"),
    ("COMMAND", "GETKEYS", "get", "a", "b"), ("COMMAND", "GETKEYS", "get", "k"),
    ("COMMAND", "GETKEYS", "set", "a", "b", "EX", "10"), ("COMMAND", "GETKEYS", "mset", "a", "b", "c", "d"),
    ("COMMAND", "GETKEYS", "mget", "a", "b", "c"), ("COMMAND", "GETKEYS", "ping", "x"),
    ("COMMAND", "GETKEYS", "nosuch", "a"), ("COMMAND", "LIST", "x"),
    ("COMMAND", "LIST", "FILTERBY", "MODULE", "foo"), ("COMMAND", "FOO"),
]


@pytest.mark.parametrize("argv", COMMAND_SAME_AS_REDIS, ids=" ".join)
@pytest.mark.parametrize("proto", ["2", "3"])
def test_command_same_as_redis(both, argv, proto):
    ours, theirs = both
    if proto == "3":
        ours.cmd("HELLO", "3")
        theirs.cmd("HELLO", "3")
    assert ours.cmd(*argv) == theirs.cmd(*argv)


def test_command_count_and_list(both):
    ours, theirs = both
    count = ours.cmd("COMMAND", "COUNT")
    assert count[:1] == theirs.cmd("COMMAND", "COUNT")[:1] == b":"
    n = int(count[1:-2])
    everything = parse(ours.cmd("COMMAND"))
    assert len(everything) == n
    names = parse(ours.cmd("COMMAND", "LIST"))
    # Like Redis, COMMAND LIST names subcommands too (client|id ...).
    assert len([x for x in names if b"|" not in x]) == n
    assert b"client|id" in names and b"module|load" not in names    # only what we implement
    for name in (b"get", b"set", b"scan", b"multi", b"hello", b"client", b"config", b"info", b"del"):
        assert name in names
    assert b"lpush" not in names
    assert sorted(parse(ours.cmd("COMMAND", "LIST", "FILTERBY", "PATTERN", "set*"))) == \
        [b"set", b"setex", b"setnx", b"setrange"]


@pytest.mark.parametrize("protocol", [2, 3])
def test_command_info_and_docs(server, protocol):
    r = server.client(protocol=protocol)
    cmds = r.command()                               # redis-py parses COMMAND into a dict
    assert cmds["get"]["arity"] == 2 and cmds["set"]["arity"] == -3
    assert cmds["get"]["first_key_pos"] == 1 and cmds["mset"]["step_count"] == 2
    assert "readonly" in cmds["get"]["flags"] and "write" in cmds["set"]["flags"]
    assert r.command_count() == len(cmds)
    assert r.command_getkeys("SET", "k", "v", "EX", "10") in (["k"], [b"k"])
    c = Raw(server.port)
    if protocol == 3:
        c.cmd("HELLO", "3")
    info = parse(c.cmd("COMMAND", "INFO", "get", "nosuch", "SET"))
    assert info[0][:2] == [b"get", 2] and info[0][3:6] == [1, 1, 1]
    assert set(info[0][2]) == {b"readonly", b"fast"}
    assert info[1] is None and info[2][0] == b"set"
    assert len(info[0]) == 10
    docs = parse(c.cmd("COMMAND", "DOCS", "get", "nosuch"))
    if isinstance(docs, list):
        docs = dict(zip(docs[0::2], docs[1::2]))
    assert list(docs) == [b"get"]
    get_doc = docs[b"get"]
    if isinstance(get_doc, list):
        get_doc = dict(zip(get_doc[0::2], get_doc[1::2]))
    assert get_doc[b"summary"] and get_doc[b"since"] and get_doc[b"group"] == b"string"
    alldocs = parse(c.cmd("COMMAND", "DOCS"))
    assert len(alldocs) in (r.command_count(), 2 * r.command_count())


# --- TIME, LASTSAVE, DBSIZE -------------------------------------------------------------------

def test_time_shape_matches_redis(both):
    ours, theirs = both
    for proto in ("2", "3"):
        if proto == "3":
            ours.cmd("HELLO", "3")
            theirs.cmd("HELLO", "3")
        a, b = parse(ours.cmd("TIME")), parse(theirs.cmd("TIME"))
        assert ours.cmd("TIME")[:5] == b"*2\r\n$"
        assert len(a) == len(b) == 2 and all(isinstance(x, bytes) for x in a + b)
        secs, micros = int(a[0]), int(a[1])
        assert abs(secs - time.time()) < 5 and 0 <= micros < 1_000_000
        assert abs(secs - int(b[0])) < 5


def test_time_and_lastsave_through_redis_py(server):
    r = server.client()
    secs, micros = r.time()
    assert abs(secs + micros / 1e6 - time.time()) < 5
    assert isinstance(r.lastsave(), object)
    assert Raw(server.port).cmd("LASTSAVE")[:1] == b":"


def test_dbsize(clocked_server):
    s, clock = clocked_server
    r = s.client()
    assert r.dbsize() == 0
    for i in range(10):
        r.set("k%d" % i, "v", px=1000 * (i + 1))
    r.set("k0", "again", px=1000)            # overwrite: still one key
    assert r.dbsize() == 10
    clock.advance(3001)
    assert r.dbsize() == 7


@pytest.fixture
def clocked_server(make_server, fake_clock):
    return make_server(clock=fake_clock), fake_clock


# --- SHUTDOWN ------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [("SHUTDOWN", "BOGUS"), ("SHUTDOWN", "NOSAVE", "SAVE"), ("SHUTDOWN", "ABORT", "NOW"),
                                  ("SHUTDOWN", "ABORT")], ids=" ".join)
def test_shutdown_errors_match_redis(both, argv):
    ours, theirs = both
    expected = theirs.cmd(*argv)
    assert expected.startswith(b"-ERR ")
    assert ours.cmd(*argv) == expected
    assert ours.cmd("PING") == b"+PONG\r\n"          # still serving


def test_shutdown_sends_no_reply_and_closes(make_server):
    s = make_server()
    c = Raw(s.port)
    c.send("SHUTDOWN", "NOSAVE", "NOW")
    c.send("PING")                                 # never answered
    try:
        # Closed without a reply, like Redis.  The unread PING may turn the
        # close into a reset, which is the same answer: nothing came back.
        assert c.f.readline() == b""
    except ConnectionResetError:
        pass
    assert s.server._shutdown.is_set()             # a plain flag read; the loop may be gone
