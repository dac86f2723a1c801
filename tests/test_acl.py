"""ACL for the one user there is ('default'), driven by redis-py, replies checked against
redis-server (what redis-py's own suite found missing; docs/redis-py-suite.md)."""

import time

import pytest
import redis
from rawresp import Raw
from redis.backoff import NoBackoff
from redis.retry import Retry

NO_RETRY = Retry(NoBackoff(), 0)    # a refused AUTH fails at once (redis-py retries it)


def test_acl_read_only_surface_as_redis(server, real_redis):
    ours, theirs = server.client(), redis.Redis(port=real_redis)
    for call in (lambda c: c.acl_whoami(), lambda c: c.acl_users(), lambda c: c.acl_list(),
                 lambda c: c.acl_deluser("nobody"), lambda c: c.acl_getuser("nobody"),
                 lambda c: c.acl_log(), lambda c: c.acl_log_reset(),
                 lambda c: len(c.acl_genpass()), lambda c: len(c.acl_genpass(555)),
                 lambda c: sorted(c.acl_cat("read")) == sorted(set(c.acl_cat("read")))):
        assert call(ours) == call(theirs)
    assert ours.acl_whoami() in ("default", b"default")
    assert {"get", "mget"} <= {x.decode() if isinstance(x, bytes) else x for x in ours.acl_cat("read")}
    assert ours.acl_cat() == theirs.acl_cat()
    assert ours.acl_getuser("default") == theirs.acl_getuser("default")
    for args in (("ACL", "CAT", "nope"), ("ACL", "DELUSER", "default"), ("ACL", "GENPASS", "0"),
                 ("ACL", "LOG", "x"), ("ACL", "NOPE")):
        errs = []
        for c in (ours, theirs):
            with pytest.raises(redis.ResponseError) as e:
                c.execute_command(*args)
            errs.append(str(e.value))
        assert errs[0] == errs[1]


# -- users (ACL SETUSER) --------------------------------------------------------

# Scripts run on both servers; every reply (errors included) must be equal.
# GETUSER/LIST of *commands* rules are left out: Redis 7.0 rebuilds them from
# a bitmap in its hash table's order (7.2 keeps them as given, as we do).
SETUSER_SCRIPT = [
    ("ACL", "SETUSER", "w", "bogus"), ("ACL", "SETUSER", "w", "+nocmd"),
    ("ACL", "SETUSER", "w", "+@nocat"), ("ACL", "SETUSER", "w", "get"),
    ("ACL", "SETUSER", "w", "%X~a"), ("ACL", "SETUSER", "w", "%~a"), ("ACL", "SETUSER", "w", "#abc"),
    ("ACL", "SETUSER", "w", "!abc"), ("ACL", "SETUSER", "w", "<nothere"),
    ("ACL", "SETUSER", "w", "+client|nosub"), ("ACL", "SETUSER", "w", "-@all|x"),
    ("ACL", "SETUSER", "w", "(+get"), ("ACL", "SETUSER", "w", "(+get", "~x)", "extra"),
    ("ACL", "SETUSER", "w", "(+get", "bogus)"), ("ACL", "SETUSER", "w", "+client|id|x"),
    ("ACL", "SETUSER", "w", "-select|1"), ("ACL", "SETUSER", "w", "~*", "~x"),
    ("ACL", "SETUSER", "w", "&*", "&x"), ("ACL", "SETUSER", "a b"), ("ACL", "GETUSER", "w"),
    ("ACL", "SETUSER", "w", "on", ">p", "nopass", "resetpass", ">q", "~k*", "%R~r*", "%R~b", "%W~b",
     "&ch*", "+get", "+set", "+client|id", "+multi", "+exec", "+mget", "+subscribe",
     "+psubscribe", "+publish"),
    ("ACL", "SETUSER", "w", "<p"), ("ACL", "SETUSER", "w", "!" + "0" * 64), ("ACL", "USERS"),
    ("ACL", "DRYRUN", "w", "get", "x"), ("ACL", "DRYRUN", "w", "get", "k1"),
    ("ACL", "DRYRUN", "w", "getrange", "k", "0", "1"), ("ACL", "DRYRUN", "w", "hset", "k", "a", "b"),
    ("ACL", "DRYRUN", "w", "client", "list"), ("ACL", "DRYRUN", "w", "client", "id"),
    ("ACL", "DRYRUN", "w", "publish", "zz", "m"), ("ACL", "DRYRUN", "w", "nope"),
    ("ACL", "DRYRUN", "nob", "get", "x"), ("ACL", "DRYRUN", "w", "get"),
    ("ACL", "DRYRUN", "w", "set", "r1", "x"), ("ACL", "DRYRUN", "w", "mget", "k1", "r1"),
    ("ACL", "DRYRUN", "w", "mget", "k1", "x"), ("ACL", "DRYRUN", "w", "set", "r1", "x", "GET"),
    ("ACL", "DRYRUN", "w", "psubscribe", "ch*"), ("ACL", "DRYRUN", "w", "psubscribe", "c*"),
    ("ACL", "DRYRUN", "w", "subscribe", "chx", "zz"),
    ("ACL", "SETUSER", "s", "on", "nopass", "~x*", "(+get ~app*)", "(+set", "%W~w*)"),
    ("ACL", "LIST"), ("ACL", "GETUSER", "s"),
    ("ACL", "DRYRUN", "s", "get", "app1"), ("ACL", "DRYRUN", "s", "get", "w1"),
    ("ACL", "DRYRUN", "s", "set", "w1", "v"), ("ACL", "DRYRUN", "s", "set", "x1", "v"),
    ("ACL", "DRYRUN", "s", "get", "zz"), ("ACL", "DRYRUN", "s", "set", "w1", "v", "GET"),
    ("ACL", "DRYRUN", "w", "set", "b", "x", "GET"), ("ACL", "DRYRUN", "w", "set", "k2", "x"),
    ("ACL", "SETUSER", "w", "+mset", "+getex", "+lcs", "+object|encoding"),
    ("ACL", "DRYRUN", "w", "mset", "k1", "a", "r1", "b"), ("ACL", "DRYRUN", "w", "mset", "k1", "a"),
    ("ACL", "DRYRUN", "w", "getex", "r1"), ("ACL", "DRYRUN", "w", "lcs", "k1", "r1"),
    ("ACL", "DRYRUN", "w", "lcs", "k1", "x"), ("ACL", "DRYRUN", "w", "object", "encoding", "x"),
    ("ACL", "DRYRUN", "w", "object", "encoding", "k1"), ("ACL", "DRYRUN", "w", "object", "help"),
    ("ACL", "DELUSER", "w", "nobody", "w"),
    ("ACL", "DELUSER", "default"), ("ACL", "USERS"), ("ACL", "LOG", "-1"), ("ACL", "LOG", "x"),
    ("ACL", "LOG", "1", "2"), ("ACL", "CAT", "a", "b"), ("ACL", "GENPASS", "1", "2"),
]

# What a restricted user sends (raw RESP, so the fast lane's spelling of SET
# is among them) and gets back; then ACL LOG without its times.
USER_RULES = ("reset", "on", ">pw", "+get", "+set", "+client|id", "+subscribe", "+publish",
              "+psubscribe", "~k*", "%R~r*", "&ch*", "+multi", "+exec", "+mget", "+acl|log")
USER_SCRIPT = [
    ("AUTH", "v", "nope"), ("AUTH", "v", "pw"), ("GET", "x"), ("SET", "x", "v", "EX", "100"),
    ("SET", "k1", "v", "EX", "100"), ("HSET", "k", "a", "b"), ("GETRANGE", "k1", "0", "1"),
    ("CLIENT", "LIST"), ("CLIENT", "NOPE"), ("PUBLISH", "zz", "m"), ("MULTI",), ("GET", "x"),
    ("GET", "k"), ("EXEC",), ("MULTI",), ("GET", "k1"), ("HSET", "k", "a", "b"), ("EXEC",),
    ("MGET", "k1", "r1", "x"), ("SET", "r1", "x"), ("GET", "r1"), ("AUTH", "nouser", "x"),
    ("AUTH", "v"), ("hello", "2", "AUTH", "nouser", "x"), ("ACL", "WHOAMI"), ("DEL", "k1"),
    ("GET",), ("SUBSCRIBE", "zz"),
    ("PSUBSCRIBE", "c*"), ("SUBSCRIBE", "ch1"), ("PSUBSCRIBE", "ch*"), ("RESET",),
    ("ACL", "WHOAMI"),
]


def _rules_unordered(x):
    """A rules text (ACL LIST line, GETUSER's commands) as a sorted token list."""
    if isinstance(x, bytes) and b"@all" in x:
        return sorted(x.split())
    if isinstance(x, list):
        return [_rules_unordered(y) for y in x]
    if isinstance(x, dict):
        return {k: _rules_unordered(v) for k, v in x.items()}
    return x


def _replies(port, script, protocol=2):
    r = redis.Redis(port=port, protocol=protocol)
    out = []
    for c in script:
        try:
            out.append(r.execute_command(*c))
        except redis.ResponseError as e:
            out.append("error: %s" % e)
    return out


def _raw_replies(port, script):
    raw = Raw(port)
    try:
        return [raw.cmd(*c) for c in script]
    finally:
        raw.close()


def _log(port):
    return [{k: v for k, v in e.items() if k not in ("age-seconds", "client-info")}
            for e in redis.Redis(port=port).acl_log(count=100)]


@pytest.mark.parametrize("protocol", [2, 3])
def test_acl_setuser_dryrun_replies_as_redis(server, real_redis, protocol):
    ours = _replies(server.port, SETUSER_SCRIPT, protocol)
    theirs = _replies(real_redis, SETUSER_SCRIPT, protocol)
    for c, a, b in zip(SETUSER_SCRIPT, ours, theirs):
        assert _rules_unordered(a) == _rules_unordered(b), c
    redis.Redis(port=real_redis).acl_deluser("s")


def test_acl_user_commands_and_log_as_redis(server, real_redis):
    for port in (server.port, real_redis):
        r = redis.Redis(port=port)
        r.execute_command("ACL", "SETUSER", "v", *USER_RULES)
        r.acl_log_reset()
    ours, theirs = _raw_replies(server.port, USER_SCRIPT), _raw_replies(real_redis, USER_SCRIPT)
    for c, a, b in zip(USER_SCRIPT, ours, theirs):
        if c[0] == "HSET":       # no hashes here: the rules refuse it first, as in Redis
            assert a == b"-NOPERM this user has no permissions to run the 'hset' command\r\n"
        elif c[0] != "DEL":      # disabled here (no deletion); Redis deletes
            assert a == b, c
    assert _log(server.port) == _log(real_redis)
    entry = redis.Redis(port=server.port).acl_log(count=1)[0]
    assert entry["client-info"]["user"] == "v" and isinstance(entry["age-seconds"], float)
    redis.Redis(port=real_redis).acl_deluser("v")


def test_exec_rechecks_rules_changed_since_queued(server, real_redis):
    for port in (server.port, real_redis):
        admin = redis.Redis(port=port)
        admin.acl_setuser("t", enabled=True, nopass=True, keys=["*"], channels=["*"],
                          commands=["+get", "+multi", "+exec", "+publish", "+strlen"])
        raw = Raw(port)
        assert raw.cmd("AUTH", "t", "x") == b"+OK\r\n"
        raw.cmd("MULTI")
        for c in (("GET", "a"), ("PUBLISH", "c", "m"), ("STRLEN", "a")):
            assert raw.cmd(*c) == b"+QUEUED\r\n"
        admin.acl_setuser("t", reset_keys=True, reset_channels=True, commands=["-strlen"])
        why = b"-NOPERM ACLs rules changed between the moment the transaction was accumulated " \
              b"and the EXEC call. This command is no longer allowed for the following reason: "
        assert raw.cmd("EXEC") == b"*3\r\n" + why + b"no permission to touch the specified " \
            b"keys\r\n" + why + b"no permission to access one of the channels used as " \
            b"arguments\r\n" + why + b"no permission to execute the command or subcommand\r\n"
        assert admin.acl_log(count=1)[0]["context"] == "multi"
        raw.close()
        admin.acl_deluser("t")


def test_users_with_redis_py(server):
    r = server.client(decode_responses=True)
    assert r.acl_setuser("app", enabled=True, passwords=["+s3cret"], commands=["+@string", "+ping",
                         "-mget", "+client|list", "+publish"], keys=["%R~pub:*", "app:*"], channels=["news"])
    u = r.acl_getuser("app")
    assert u["enabled"] and u["keys"] == ["%R~pub:*", "~app:*"] and u["channels"] == ["&news"]
    assert set(u["categories"]) == {"-@all", "+@string"} and set(u["commands"]) == {
        "+ping", "-mget", "+client|list", "+publish"}
    with pytest.raises(redis.AuthenticationError):
        server.client(username="app", password="wrong", retry=NO_RETRY).ping()
    app = server.client(username="app", password="s3cret", decode_responses=True, retry=NO_RETRY)
    assert app.set("app:1", "v", ex=100) and app.get("app:1") == "v" and app.get("pub:x") is None
    with pytest.raises(redis.exceptions.NoPermissionError, match="keys used as arguments"):
        app.set("pub:x", "v", ex=100)                   # read-only pattern
    with pytest.raises(redis.exceptions.NoPermissionError, match="'mget' command"):
        app.mget("app:1")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'dbsize' command"):
        app.dbsize()
    me = [c for c in r.client_list() if c["user"] == "app"]
    assert len(me) == 1
    assert app.publish("news", "m") == 0
    with pytest.raises(redis.exceptions.NoPermissionError, match="channels used as arguments"):
        app.publish("sports", "m")
    assert [e["reason"] for e in r.acl_log()][:3] == ["channel", "command", "command"]
    # HELLO 3 AUTH user pass
    r3 = server.client(username="app", password="s3cret", protocol=3, decode_responses=True)
    assert r3.get("app:1") == "v"
    # A deleted user's connections are closed; a new connection cannot AUTH as it.
    assert r.acl_deluser("app") == 1
    with pytest.raises((redis.ConnectionError, redis.AuthenticationError)):
        app.execute_command("PING")
    assert r.client_kill_filter(user="default") >= 0
    with pytest.raises(redis.ResponseError, match="No such user 'app'"):
        r.client_kill_filter(user="app")


def test_kill_by_user_and_disabled_user(server):
    r = server.client(decode_responses=True)
    r.acl_setuser("k", enabled=True, nopass=True, commands=["+get", "+acl|whoami"], keys=["*"])
    k = server.client(username="k", password="x", decode_responses=True)
    assert k.acl_whoami() == "k"
    r.acl_setuser("k", enabled=False)       # as Redis: a connected client stays
    assert k.get("a") is None
    with pytest.raises(redis.AuthenticationError):
        server.client(username="k", password="x", retry=NO_RETRY).ping()
    r.acl_setuser("k", enabled=True)
    assert r.client_kill_filter(user="k") == 1
    assert all(c["user"] != "k" for c in r.client_list())


def test_restricted_user_gets_no_fast_lane_but_default_does(server):
    r = server.client()
    r.acl_setuser("lim", enabled=True, nopass=True, commands=["+set", "+get"], keys=["ok:*"])
    raw = Raw(server.port)
    assert raw.cmd("AUTH", "lim", "x") == b"+OK\r\n"
    # The lane's own spellings (SET k v EX n, GET k), pipelined: each is checked.
    raw.send("SET", "no:1", "v", "EX", "100")
    raw.send("SET", "ok:1", "v", "EX", "100")
    raw.send("GET", "no:1")
    raw.send("GET", "ok:1")
    assert [raw.read() for _ in range(4)] == [
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
        b"+OK\r\n",
        b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n",
        b"$1\r\nv\r\n"]
    raw.close()
    assert r.get("no:1") is None
    gates = server.call(lambda: sorted(str(c.gate) for c in server.server.clients.values()))
    assert gates == ["None"]                # the default user's connection: ungated
    # Restricting 'default' gates its connections at once; +@all ungates them.
    r.execute_command("ACL", "SETUSER", "default", "-dbsize")
    with pytest.raises(redis.exceptions.NoPermissionError):
        r.dbsize()
    fresh = Raw(server.port)                # a new connection as 'default' is gated too
    assert fresh.cmd("DBSIZE").startswith(b"-NOPERM")
    fresh.close()
    r.execute_command("ACL", "SETUSER", "default", "+@all")
    assert r.dbsize() == 1
    assert server.call(lambda: [c.gate for c in server.server.clients.values()]) == [None]


def test_default_user_follows_requirepass(server):
    r = server.client(decode_responses=True)
    with pytest.raises(redis.AuthenticationError):
        server.client(retry=NO_RETRY).auth("x")      # no password configured
    r.config_set("requirepass", "pw1")
    assert r.acl_list()[0].startswith("user default on #")
    assert r.auth("pw1") and r.auth("pw1", "default")
    with pytest.raises(redis.AuthenticationError):
        server.client(retry=NO_RETRY).ping()
    assert server.client(password="pw1").ping()
    r.execute_command("ACL", "SETUSER", "default", ">pw2")     # a second password, as Redis
    assert server.client(password="pw2").ping()
    r.config_set("requirepass", "")
    assert r.acl_list()[0] == "user default on nopass ~* &* +@all"
    assert server.client().ping()


def test_acl_file_commands_refused_with_reason(server):
    r = server.client()
    for sub in ("SAVE", "LOAD"):
        with pytest.raises(redis.ResponseError, match="REPRAM writes nothing to disk"):
            r.execute_command("ACL", sub)


def test_client_kill_maxage(server):
    r, old = server.client(), server.client()
    old.client_setname("old")
    r.client_setname("me")
    assert r.client_kill_filter(maxage=3600) == 0            # nobody is an hour old
    time.sleep(1.1)   # the filter compares connection ages in whole seconds; no readiness wait
    young = server.client()
    young.client_setname("young")
    assert r.client_kill_filter(maxage=1) == 1               # 'old' (the caller is skipped)
    assert sorted(c["name"] for c in r.client_list()) == ["me", "young"]


def test_rules_on_redis_commands_repram_lacks(server):
    """+@hash / -hset are Redis's names: accepted; a denied HSET is NOPERM (as
    from Redis), an allowed one is the usual unknown command."""
    r = server.client()
    r.acl_setuser("h", enabled=True, nopass=True, categories=["+@hash"], commands=["-hdel"],
                  keys=["*"])
    h = server.client(username="h", password="x")
    with pytest.raises(redis.ResponseError, match="unknown command 'HSET'"):
        h.execute_command("HSET", "k", "f", "v")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'hdel' command"):
        h.execute_command("HDEL", "k", "f")
    with pytest.raises(redis.exceptions.NoPermissionError, match="'lpush' command"):
        h.execute_command("LPUSH", "k", "v")
    assert r.acl_dryrun("h", "lpush", "k", "v") == b"This user has no permissions to run the " \
        b"'lpush' command"


def test_subscribers_losing_their_channels_are_disconnected(server, real_redis):
    """As Redis 7: after ACL SETUSER, a subscription the user no longer allows
    closes its connection; the others stay."""
    for port in (server.port, real_redis):
        admin = redis.Redis(port=port)
        admin.acl_setuser("ps", enabled=True, nopass=True, channels=["ch*"],
                          commands=["+subscribe", "+psubscribe", "+ping"])
        conns = [Raw(port) for _ in range(3)]
        for c in conns:
            assert c.cmd("AUTH", "ps", "x") == b"+OK\r\n"
        conns[0].cmd("SUBSCRIBE", "ch1")
        conns[1].cmd("PSUBSCRIBE", "ch*")
        admin.acl_setuser("ps", channels=["ch1"], reset_channels=True)
        assert conns[0].cmd("PING") == b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"
        with pytest.raises((ConnectionError, OSError)):
            conns[1].cmd("PING")
        assert conns[2].cmd("PING") == b"+PONG\r\n"
        for c in conns:
            c.close()
        admin.acl_deluser("ps")
