"""Connection commands: HELLO, AUTH, CLIENT, SELECT, PING, ECHO, QUIT, RESET,
and the way real clients open connections (redis-py 8 defaults to RESP3 and
sends HELLO 3, CLIENT MAINT_NOTIFICATIONS and CLIENT SETINFO on connect).

Rules under test (SPEC §3, reference §3): errors Redis defines are copied
byte for byte -- checked against a throwaway real redis-server -- and no
error ever closes the connection; only QUIT (and CLIENT KILL) do.
"""

from __future__ import annotations

import socket

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rawresp import Raw

OK = b"+OK\r\n"
NOAUTH = b"-NOAUTH Authentication required.\r\n"
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


def decode_flat(reply: bytes) -> list:
    """Parse a reply of bulk strings / integers / nested arrays (test helper)."""
    import hiredis
    reader = hiredis.Reader()
    reader.feed(reply)
    return reader.gets()


def closed(c: Raw) -> bool:
    try:
        return c.f.readline() == b""
    except (ConnectionError, socket.timeout, OSError):
        return True


# --- differential: Redis's error texts -------------------------------------------

SAME_AS_REDIS = [
    ("HELLO", "4"), ("HELLO", "1"), ("HELLO", "0"), ("HELLO", "-1"), ("HELLO", "abc"), ("HELLO", "3.0"),
    ("HELLO", ""), ("HELLO", "3", "FOO"), ("HELLO", "3", "foo", "bar"), ("HELLO", "2", "AUTH"),
    ("HELLO", "3", "AUTH", "default"), ("HELLO", "3", "SETNAME"), ("HELLO", "2", "SETNAME", "a b"),
    ("HELLO", "3", "SETNAME", "a\nb"), ("HELLO", "3", "AUTH", "someone", "pw"),
    ("HELLO", "4", "AUTH", "default", "pw"),
    ("AUTH", "pw"), ("AUTH", "someone", "pw"), ("AUTH", "a", "b", "c"), ("AUTH",),
    ("SELECT", "0"), ("SELECT", "abc"), ("SELECT", "-1"), ("SELECT", "0", "1"), ("SELECT",), ("SELECT", "1.0"),
    ("CLIENT",), ("CLIENT", "foo"), ("CLIENT", "FOO", "bar"), ("CLIENT", "id", "x"), ("CLIENT", "getname", "x"),
    ("CLIENT", "setname"), ("CLIENT", "setname", "a b"), ("CLIENT", "setname", "a\r\nb"),
    ("CLIENT", "info", "x"), ("CLIENT", "help", "x"), ("CLIENT", "list", "foo"), ("CLIENT", "list", "id"),
    ("CLIENT", "list", "type", "bogus"), ("CLIENT", "list", "id", "abc"), ("CLIENT", "list", "id", "0"),
    ("CLIENT", "kill"), ("CLIENT", "kill", "1.2.3.4:5"), ("CLIENT", "kill", "id", "abc"),
    ("CLIENT", "kill", "id", "0"), ("CLIENT", "kill", "id", "1", "2"), ("CLIENT", "kill", "foo", "bar"),
    ("CLIENT", "kill", "skipme", "maybe"), ("CLIENT", "kill", "type", "bogus"),
    ("CLIENT", "kill", "addr", "1.2.3.4:5"), ("CLIENT", "kill", "id", "999999"),
    ("CLIENT", "no-evict"), ("CLIENT", "no-evict", "maybe"),
    ("CLIENT", "maint_notifications", "on", "moving-endpoint-type", "internal-fqdn"),
    ("PING",), ("PING", "hello"), ("PING", ""), ("PING", "a", "b"), ("ECHO",), ("ECHO", "a", "b"),
    ("ECHO", ""), ("ECHO", b"\x00\xff\r\n"), ("RESET", "x"),
]


@pytest.mark.parametrize("argv", SAME_AS_REDIS, ids=lambda a: " ".join(x if isinstance(x, str) else repr(x)
                                                                         for x in a))
def test_same_reply_as_redis(both, argv):
    ours, theirs = both
    assert ours.cmd(*argv) == theirs.cmd(*argv)
    assert ours.cmd("PING") == b"+PONG\r\n"          # never a disconnect


def test_hello_reply_shape_matches_redis(both):
    ours, theirs = both
    for argv in (("HELLO",), ("HELLO", "2"), ("HELLO", "3"), ("HELLO", "3", "SETNAME", "x"),
                 ("HELLO", "2", "AUTH", "default", "anything")):
        a, b = ours.cmd(*argv), theirs.cmd(*argv)
        assert a[:1] == b[:1], argv                      # '*' flat array (RESP2) / '%' map (RESP3)
        mine, theirs_ = decode_flat(a), decode_flat(b)
        if isinstance(mine, dict):
            mine, theirs_ = [x for kv in mine.items() for x in kv], [x for kv in theirs_.items() for x in kv]
        keys, their_keys = mine[0::2], theirs_[0::2]
        assert keys[:len(their_keys)] == their_keys     # Redis's fields first, in Redis's order
        got = dict(zip(keys, mine[1::2]))
        assert got[b"server"] == b"redis" and got[b"mode"] == b"standalone" and got[b"role"] == b"master"
        assert isinstance(got[b"proto"], int) and isinstance(got[b"id"], int)
        assert isinstance(got[b"version"], bytes) and got[b"modules"] == []


def test_hello_noauth_without_password_matches_redis(make_server, real_redis):  # noqa: F811
    # Same script against both, each with requirepass set.
    s = make_server("--requirepass", "pw")
    ours, theirs = Raw(s.port), Raw(real_redis)
    try:
        assert theirs.cmd("CONFIG", "SET", "requirepass", "pw") == OK
        theirs = Raw(real_redis)
        for argv in (("PING",), ("GET", "a"), ("SET", "a", "b", "EX", "10"), ("CLIENT", "ID"),
                     ("HELLO", "3", "AUTH", "default", "wrong"), ("HELLO", "3", "AUTH", "nobody", "pw"),
                     ("AUTH", "wrong"), ("AUTH", "default", "wrong"), ("AUTH", "nobody", "pw"),
                     ("HELLO", "3", "SETNAME", "a b"), ("PING",), ("AUTH", "pw"), ("PING",),
                     ("AUTH", "default", "pw"), ("AUTH", "wrong"), ("PING",), ("RESET",), ("PING",),
                     ("AUTH", "default", "pw"), ("PING",)):
            assert ours.cmd(*argv) == theirs.cmd(*argv), argv
    finally:
        cleanup = Raw(real_redis)
        cleanup.cmd("AUTH", "pw")
        cleanup.cmd("CONFIG", "SET", "requirepass", "")


# --- HELLO -------------------------------------------------------------------------

def test_hello_switches_protocol(server):
    c = Raw(server.port)
    assert c.cmd("GET", "missing") == b"$-1\r\n"
    r2 = c.cmd("HELLO")
    assert r2.startswith(b"*16\r\n")                     # RESP2: flat array, protocol unchanged
    assert decode_flat(r2)[5] == 2
    r3 = c.cmd("HELLO", "3")
    assert r3.startswith(b"%8\r\n")
    info = decode_flat(r3)
    assert info[b"proto"] == 3 and info[b"version"] == b"7.4.0"
    assert info[b"id"] == int(c.cmd("CLIENT", "ID")[1:-2])
    assert c.cmd("GET", "missing") == b"_\r\n"
    assert c.cmd("HELLO", "4") == b"-NOPROTO unsupported protocol version\r\n"
    assert c.cmd("GET", "missing") == b"_\r\n"          # a refused HELLO changes nothing
    assert c.cmd("HELLO", "3", "FOO") == b"-ERR Syntax error in HELLO option 'FOO'\r\n"
    assert c.cmd("HELLO", "abc") == b"-ERR Protocol version is not an integer or out of range\r\n"
    assert c.cmd("HELLO").startswith(b"%8\r\n")           # no argument: stays RESP3
    assert decode_flat(c.cmd("HELLO", "2"))[5] == 2
    assert c.cmd("GET", "missing") == b"$-1\r\n"


def test_hello_setname_and_auth(make_server):
    s = make_server("--requirepass", "pw")
    c = Raw(s.port)
    expected = (b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                b"HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                b"select the RESP protocol version at the same time\r\n")
    assert c.cmd("HELLO", "3") == expected
    assert c.cmd("HELLO") == expected
    assert c.cmd("GET", "missing") == NOAUTH
    assert c.cmd("HELLO", "3", "AUTH", "default", "bad") == WRONGPASS
    assert c.cmd("PING") == NOAUTH
    reply = decode_flat(c.cmd("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "worker-1"))
    assert reply[b"proto"] == 3
    assert c.cmd("CLIENT", "GETNAME") == b"$8\r\nworker-1\r\n"
    assert c.cmd("GET", "missing") == b"_\r\n"
    # lowercase option names, SETNAME before AUTH
    c2 = Raw(s.port)
    assert isinstance(decode_flat(c2.cmd("hello", "2", "setname", "w2", "auth", "default", "pw")), list)
    assert c2.cmd("CLIENT", "GETNAME") == b"$2\r\nw2\r\n"


# --- AUTH ----------------------------------------------------------------------------

def test_auth_required(make_server):
    s = make_server("--requirepass", "pw")
    c = Raw(s.port)
    for argv in (("PING",), ("GET", "k"), ("SET", "k", "v", "EX", "10"), ("CLIENT", "SETINFO", "LIB-NAME", "x"),
                 ("MULTI",), ("SELECT", "0"), ("INFO",), ("CONFIG", "GET", "save"), ("DEL", "k")):
        assert c.cmd(*argv) == NOAUTH, argv
    # Redis looks the command up and checks its arity before AUTH (issue 7 fuzzing)
    assert c.cmd("NOSUCH") == b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
    assert c.cmd("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
    assert c.cmd("AUTH", "wrong") == WRONGPASS
    assert c.cmd("AUTH", "default", "wrong") == WRONGPASS
    assert c.cmd("AUTH", "admin", "pw") == WRONGPASS
    assert c.cmd("AUTH", "pw") == OK
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("SET", "k", "v", "EX", "10") == OK
    assert c.cmd("AUTH", "default", "pw") == OK
    assert c.cmd("AUTH", "wrong") == WRONGPASS
    assert c.cmd("GET", "k") == b"$1\r\nv\r\n"            # a failed re-AUTH does not log out
    # QUIT works before authentication
    c2 = Raw(s.port)
    assert c2.cmd("QUIT") == OK
    assert closed(c2)


def test_auth_without_password_configured(server):
    c = Raw(server.port)
    assert c.cmd("AUTH", "x") == (
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?\r\n")
    assert c.cmd("AUTH", "default", "anything") == OK     # the default user has no password
    assert c.cmd("AUTH", "other", "x") == WRONGPASS
    assert c.cmd("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_with_password(make_server, protocol):
    s = make_server("--requirepass", "s3cret")
    r = s.client(protocol=protocol, password="s3cret")
    assert r.set("k", "v", ex=10) and r.get("k") == b"v"
    assert s.client(protocol=protocol, username="default", password="s3cret").get("k") == b"v"
    no_retry = Retry(NoBackoff(), 0)          # redis-py 8 retries auth errors for seconds
    with pytest.raises(redis.AuthenticationError, match="^invalid username-password pair"):
        s.client(protocol=protocol, password="wrong", retry=no_retry).ping()
    with pytest.raises(redis.AuthenticationError):
        s.client(protocol=protocol, retry=no_retry).get("k")


# --- CLIENT ----------------------------------------------------------------------------

def test_client_setinfo_setname_info(server):
    c = Raw(server.port)
    assert c.cmd("CLIENT", "GETNAME") == b"$-1\r\n"
    assert c.cmd("CLIENT", "SETNAME", "agent-7") == OK
    assert c.cmd("CLIENT", "GETNAME") == b"$7\r\nagent-7\r\n"
    assert c.cmd("CLIENT", "SETINFO", "LIB-NAME", "mylib") == OK
    assert c.cmd("CLIENT", "SETINFO", "lib-ver", "1.2.3") == OK
    assert c.cmd("CLIENT", "SETINFO", "foo", "bar") == b"-ERR Unrecognized option 'foo'\r\n"
    assert c.cmd("CLIENT", "SETINFO", "LIB-NAME", "a b") == \
        b"-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n"
    assert c.cmd("CLIENT", "SETINFO", "lib-ver", "1\n2") == \
        b"-ERR lib-ver cannot contain spaces, newlines or special characters.\r\n"
    assert c.cmd("CLIENT", "SETINFO", "LIB-NAME") == \
        b"-ERR wrong number of arguments for 'client|setinfo' command\r\n"
    info = c.cmd("CLIENT", "INFO")
    assert info.startswith(b"$") and info.endswith(b"\n\r\n")
    line = decode_flat(info).decode()
    fields = dict(kv.split("=", 1) for kv in line.split())
    assert fields["name"] == "agent-7"
    assert fields["lib-name"] == "mylib" and fields["lib-ver"] == "1.2.3"
    assert fields["id"] == c.cmd("CLIENT", "ID")[1:-2].decode()
    assert fields["db"] == "0" and fields["resp"] == "2"
    assert fields["laddr"] == "127.0.0.1:%d" % server.port
    # an empty name clears it
    assert c.cmd("CLIENT", "SETNAME", "") == OK
    assert c.cmd("CLIENT", "GETNAME") == b"$-1\r\n"
    # RESP3: CLIENT INFO is a verbatim string
    c.cmd("HELLO", "3")
    assert c.cmd("CLIENT", "INFO").startswith(b"=")
    assert c.cmd("CLIENT", "GETNAME") == b"_\r\n"


def test_client_list_and_id(server):
    a, b = server.client(client_name="alpha"), server.client(client_name="beta", protocol=2)
    ida, idb = a.client_id(), b.client_id()
    assert ida != idb and ida > 0 and idb > 0
    listed = {c["name"]: c for c in a.client_list()}
    assert int(listed["alpha"]["id"]) == ida and int(listed["beta"]["id"]) == idb
    assert listed["alpha"]["lib-name"] == "redis-py"
    assert listed["alpha"]["resp"] == "3" and listed["beta"]["resp"] == "2"
    assert [c["name"] for c in a.client_list(client_id=[idb])] == ["beta"]
    assert {c["name"] for c in a.client_list(_type="normal")} >= {"alpha", "beta"}
    assert a.client_list(_type="pubsub") == []
    assert a.client_info()["name"] == "alpha"
    assert a.client_getname() in ("alpha", b"alpha")


def test_client_list_shows_last_command(server):
    c, other = Raw(server.port), Raw(server.port)
    other_id = other.cmd("CLIENT", "ID")[1:-2].decode()
    assert other.cmd("GET", "somekey") == b"$-1\r\n"
    line = decode_flat(c.cmd("CLIENT", "LIST", "ID", other_id)).decode()
    fields = dict(kv.split("=", 1) for kv in line.split())
    assert fields["cmd"] == "get"


def test_client_kill(server):
    me, victim, bystander = Raw(server.port), Raw(server.port), Raw(server.port)
    victim_id = victim.cmd("CLIENT", "ID")[1:-2].decode()
    my_id = me.cmd("CLIENT", "ID")[1:-2].decode()
    assert me.cmd("CLIENT", "KILL", "ID", victim_id) == b":1\r\n"
    assert closed(victim)
    assert me.cmd("CLIENT", "KILL", "ID", victim_id) == b":0\r\n"
    assert me.cmd("CLIENT", "KILL", "ID", my_id) == b":0\r\n"          # SKIPME yes by default
    assert bystander.cmd("PING") == b"+PONG\r\n"
    # old form: by address
    line = decode_flat(me.cmd("CLIENT", "LIST", "ID", bystander.cmd("CLIENT", "ID")[1:-2].decode()))
    addr = dict(kv.split("=", 1) for kv in line.decode().split())["addr"]
    assert me.cmd("CLIENT", "KILL", addr) == OK
    assert closed(bystander)
    # SKIPME no on oneself: the reply arrives, then the connection closes
    assert me.cmd("CLIENT", "KILL", "ID", my_id, "SKIPME", "no") == b":1\r\n"
    assert closed(me)


def test_client_maint_notifications_keeps_connection(server):
    c = Raw(server.port)
    reply = c.cmd("CLIENT", "MAINT_NOTIFICATIONS", "ON", "moving-endpoint-type", "internal-fqdn")
    assert reply.startswith(b"-ERR ")
    assert c.cmd("PING") == b"+PONG\r\n"


def test_client_help_and_unknown_subcommand(server):
    c = Raw(server.port)
    assert c.cmd("CLIENT", "NOPE") == b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP.\r\n"
    assert c.cmd("CLIENT", "foo") == b"-ERR unknown subcommand 'foo'. Try CLIENT HELP.\r\n"
    help_lines = decode_flat(c.cmd("CLIENT", "HELP"))
    assert isinstance(help_lines, list) and len(help_lines) > 5
    assert c.cmd("CLIENT", "NO-EVICT", "on") == OK
    assert c.cmd("CLIENT", "NO-TOUCH", "off") == OK


# --- SELECT, PING, ECHO, QUIT, RESET -------------------------------------------------------

def test_select(server):
    c = Raw(server.port)
    assert c.cmd("SELECT", "0") == OK
    for n in ("1", "9", "15", "16", "-1", "9223372036854775807"):
        assert c.cmd("SELECT", n) == b"-ERR DB index is out of range\r\n", n
    assert c.cmd("SELECT", "x") == b"-ERR value is not an integer or out of range\r\n"
    assert c.cmd("PING") == b"+PONG\r\n"


def test_ping_echo(server):
    c = Raw(server.port)
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("ping", "hello world") == b"$11\r\nhello world\r\n"
    assert c.cmd("ECHO", b"\x00\r\n\xff") == b"$4\r\n\x00\r\n\xff\r\n"
    c.cmd("HELLO", "3")
    assert c.cmd("PING") == b"+PONG\r\n"
    assert c.cmd("ECHO", "") == b"$0\r\n\r\n"


def test_quit(server):
    c = Raw(server.port)
    c.send("SET", "q", "1", "EX", "10")
    c.send("QUIT")
    c.send("SET", "q", "2", "EX", "10")     # after QUIT: never executed
    assert c.read() == OK
    assert c.read() == OK
    assert closed(c)
    assert server.client().get("q") == b"1"
    r = server.client()
    r.execute_command("QUIT")
    assert r.ping()                          # redis-py reconnects


def test_reset(server):
    c = Raw(server.port)
    c.cmd("HELLO", "3", "SETNAME", "n")
    c.cmd("MULTI")
    c.cmd("SET", "k", "1", "EX", "10")
    c.cmd("WATCH", "x")
    assert c.cmd("RESET") == b"+RESET\r\n"
    assert c.cmd("GET", "missing") == b"$-1\r\n"         # back to RESP2
    assert c.cmd("CLIENT", "GETNAME") == b"$-1\r\n"      # name cleared
    assert c.cmd("EXEC") == b"-ERR EXEC without MULTI\r\n"
    assert c.cmd("EXISTS", "k") == b":0\r\n"


def test_reset_logs_out(make_server):
    s = make_server("--requirepass", "pw")
    c = Raw(s.port)
    assert c.cmd("AUTH", "pw") == OK
    assert c.cmd("RESET") == b"+RESET\r\n"
    assert c.cmd("PING") == NOAUTH


def test_errors_never_close_the_connection(server):
    c = Raw(server.port)
    for argv in (("NOSUCH",), ("CLIENT", "BOGUS"), ("HELLO", "9"), ("SELECT", "3"), ("SET", "k"),
                 ("DEL", "k"), ("CONFIG", "NOPE"), ("COMMAND", "NOPE"), ("AUTH", "x"), ("EXEC",),
                 ("CLIENT", "MAINT_NOTIFICATIONS", "ON")):
        assert c.cmd(*argv).startswith(b"-"), argv
    assert c.cmd("PING") == b"+PONG\r\n"


# --- how real clients connect ---------------------------------------------------------

@pytest.mark.filterwarnings("ignore:Call to '__init__' function with deprecated usage")
@pytest.mark.parametrize("protocol", [2, 3])
def test_redis_py_connection_options(server, protocol):
    named = server.client(protocol=protocol, client_name="worker-9")
    assert named.ping()
    assert named.client_getname() in ("worker-9", b"worker-9")   # redis-py decodes only in RESP2
    assert server.client(protocol=protocol, db=0).set("k", "v", ex=10)
    bare = server.client(protocol=protocol, lib_name=None, lib_version=None)
    assert bare.get("k") == b"v"
    assert bare.client_info()["lib-name"] == ""
    default = server.client(protocol=protocol)
    info = default.client_info()
    assert info["lib-name"] == "redis-py" and info["lib-ver"] == redis.__version__
    assert info["resp"] == str(protocol)
    with pytest.raises((redis.ResponseError, redis.ConnectionError)):
        server.client(protocol=protocol, db=1).ping()


def test_redis_py_default_is_resp3(server):
    r = server.client()
    assert r.client_info()["resp"] == "3"
    assert r.get("missing") is None


def test_redis_py_from_url(server):
    r = redis.from_url("redis://127.0.0.1:%d/0?client_name=fromurl" % server.port)
    assert r.ping() and r.client_getname() in ("fromurl", b"fromurl")
    r.close()
