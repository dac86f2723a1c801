"""MULTI / EXEC / DISCARD / WATCH / UNWATCH, raw and through redis-py pipelines.

Redis's split, which REPRAM keeps (SPEC §2, reference §4.8):
* queue-time errors (unknown command, wrong arity, and REPRAM's disabled
  commands) answer that command with its error and make EXEC reply
  EXECABORT: nothing in the transaction is applied;
* exec-time errors (invalid expire, TTL bounds, TTL required) go into that
  command's slot of EXEC's array and the other commands still apply;
* a watched key that was written -- or expired -- makes EXEC reply nil.
"""

from __future__ import annotations

import pytest
import redis

from rawresp import Raw
from test_strings import DISABLED

OK = b"+OK\r\n"
QUEUED = b"+QUEUED\r\n"
EXECABORT = b"-EXECABORT Transaction discarded because of previous errors.\r\n"


def run_both(both, script):
    ours, theirs = both
    for argv in script:
        assert ours.cmd(*argv) == theirs.cmd(*argv), argv


# --- differential: the same transaction scripts on both servers -------------------

SCRIPTS = {
    "exec-time error keeps the rest": [
        ("MULTI",), ("SET", "tx:a", "1", "EX", "0"), ("SET", "tx:b", "1", "EX", "10"), ("EXEC",),
        ("GET", "tx:a"), ("GET", "tx:b")],
    "syntax error at exec time": [
        ("MULTI",), ("SET", "tx:c", "1", "EX", "10", "NX", "XX"), ("SET", "tx:d", "1", "EX", "10"),
        ("SETEX", "tx:e", "abc", "v"), ("EXEC",), ("MGET", "tx:c", "tx:d", "tx:e")],
    "unknown command aborts": [
        ("MULTI",), ("SET", "tx:f", "1", "EX", "10"), ("NOSUCHCOMMAND", "x"), ("SET", "tx:g", "1", "EX", "10"),
        ("EXEC",), ("EXISTS", "tx:f", "tx:g")],
    "wrong arity aborts": [
        ("MULTI",), ("SET", "tx:h", "1", "EX", "10"), ("GET",), ("EXEC",), ("EXISTS", "tx:h")],
    "errors without MULTI": [("EXEC",), ("DISCARD",), ("exec",), ("DISCARD", "x")],
    "nested MULTI is an error, not an abort": [
        ("MULTI",), ("SET", "tx:i", "1", "EX", "10"), ("MULTI",), ("EXEC",), ("GET", "tx:i")],
    "WATCH inside MULTI is an error, not an abort": [
        ("MULTI",), ("WATCH", "tx:j"), ("SET", "tx:j", "1", "EX", "10"), ("EXEC",), ("GET", "tx:j")],
    "DISCARD": [
        ("MULTI",), ("SET", "tx:k", "1", "EX", "10"), ("DISCARD",), ("EXISTS", "tx:k"), ("EXEC",)],
    "empty transaction": [("MULTI",), ("EXEC",)],
    "replies inside": [
        ("MULTI",), ("PING",), ("ECHO", "hi"), ("SET", "tx:l", "", "PX", "10000"), ("GET", "tx:l"),
        ("GET", "tx:missing"), ("EXISTS", "tx:l", "tx:l"), ("TTL", "tx:missing"), ("TYPE", "tx:l"),
        ("SET", "tx:l", "x", "NX", "EX", "10"), ("SET", "tx:l", "y", "GET", "EX", "10"), ("EXEC",)],
    "watch then own write aborts": [
        ("SET", "tx:m", "1", "EX", "100"), ("WATCH", "tx:m"), ("SET", "tx:m", "2", "EX", "100"),
        ("MULTI",), ("SET", "tx:m", "3", "EX", "100"), ("EXEC",), ("GET", "tx:m")],
    "watch, read only, exec runs": [
        ("SET", "tx:n", "1", "EX", "100"), ("WATCH", "tx:n", "tx:n2"), ("GET", "tx:n"), ("EXISTS", "tx:n2"),
        ("MULTI",), ("SET", "tx:n", "2", "EX", "100"), ("EXEC",), ("GET", "tx:n")],
    "unwatch": [
        ("WATCH", "tx:o"), ("SET", "tx:o", "1", "EX", "100"), ("UNWATCH",), ("MULTI",),
        ("SET", "tx:o", "2", "EX", "100"), ("EXEC",), ("GET", "tx:o")],
    "discard unwatches": [
        ("WATCH", "tx:p"), ("MULTI",), ("DISCARD",), ("SET", "tx:p", "1", "EX", "100"), ("MULTI",),
        ("SET", "tx:p", "2", "EX", "100"), ("EXEC",), ("GET", "tx:p")],
    "exec unwatches": [
        ("WATCH", "tx:q"), ("SET", "tx:q", "1", "EX", "100"), ("MULTI",), ("EXEC",),
        ("SET", "tx:q", "2", "EX", "100"), ("MULTI",), ("GET", "tx:q"), ("EXEC",)],
    "a write that does not happen does not touch": [
        ("SET", "tx:r", "1", "EX", "100"), ("WATCH", "tx:r"), ("SET", "tx:r", "2", "NX", "EX", "100"),
        ("SET", "tx:r2", "2", "XX", "EX", "100"), ("SET", "tx:r", "3", "EX", "0"), ("MULTI",),
        ("GET", "tx:r"), ("EXEC",)],
    "arity of WATCH": [("WATCH",), ("UNWATCH", "x"), ("MULTI", "x")],
}


@pytest.mark.parametrize("name", list(SCRIPTS))
@pytest.mark.parametrize("proto", ["2", "3"])
def test_transaction_scripts_match_redis(both, name, proto):
    if proto == "3":
        for c in both:
            assert c.cmd("HELLO", "3").startswith(b"%")
    run_both(both, SCRIPTS[name])


def test_exec_time_error_exact_bytes(server):
    c = Raw(server.port)
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "a", "1", "EX", "0") == QUEUED
    assert c.cmd("SET", "b", "1", "EX", "10") == QUEUED
    assert c.cmd("EXEC") == b"*2\r\n-ERR invalid expire time in 'set' command\r\n+OK\r\n"
    assert c.cmd("GET", "b") == b"$1\r\n1\r\n"
    assert c.cmd("EXISTS", "a") == b":0\r\n"


# --- disabled commands abort the transaction ---------------------------------------

@pytest.mark.parametrize("argv", DISABLED, ids=" ".join)
def test_disabled_command_aborts_transaction(server, argv):
    c = Raw(server.port)
    assert c.cmd("SET", "k", "10", "EX", "100") == OK
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "before", "1", "EX", "100") == QUEUED
    reply = c.cmd(*argv)
    assert reply.startswith(b"-ERR %s is disabled: " % argv[0].upper().encode()), reply
    assert c.cmd("SET", "after", "1", "EX", "100") == QUEUED
    assert c.cmd("EXEC") == EXECABORT
    assert c.cmd("EXISTS", "before", "after") == b":0\r\n"      # nothing applied
    assert c.cmd("GET", "k") == b"$2\r\n10\r\n"
    assert c.cmd("TTL", "k") == b":100\r\n"
    assert c.cmd("EXEC") == b"-ERR EXEC without MULTI\r\n"       # the transaction is over
    assert c.cmd("PING") == b"+PONG\r\n"


@pytest.mark.parametrize("protocol", [2, 3])
def test_pipeline_with_disabled_command_raises_and_applies_nothing(server, protocol):
    r = server.client(protocol=protocol)
    p = r.pipeline()                     # transaction=True: MULTI ... EXEC
    p.set("x", "1", ex=100)
    p.delete("x")
    with pytest.raises(redis.ResponseError, match=r"DEL is disabled: "):
        p.execute()
    assert r.get("x") is None
    # An EXPIRE of a key the transaction does not write stays refused
    # (tests/test_tx_ttl.py covers the one it writes).
    p = r.pipeline()
    p.mset({"m1": "a", "m2": "b"})
    p.expire("other", 10)
    with pytest.raises(redis.ResponseError, match=r"EXPIRE is disabled: "):
        p.execute()
    assert r.exists("m1", "m2") == 0
    assert r.ping()


def test_unknown_command_in_pipeline_aborts(server):
    r = server.client()
    p = r.pipeline()
    p.set("x", "1", ex=100)
    p.execute_command("LPUSH", "l", "v")
    with pytest.raises(redis.ResponseError, match=r"unknown command 'LPUSH'"):
        p.execute()
    assert r.exists("x") == 0


# --- redis-py pipelines --------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_transactional_pipeline(server, protocol):
    r = server.client(protocol=protocol)
    with r.pipeline() as p:
        p.set("a", "1", px=500_000).ttl("a").get("a").mget("a", "b").exists("a", "a")
        p.set("a", "2", ex=100, get=True).strlen("a").type("a")
        assert p.execute() == [True, 500, b"1", [b"1", None], 2, b"1", 1, b"string"]
    assert r.get("a") == b"2"


@pytest.mark.parametrize("protocol", [2, 3])
def test_plain_pipeline(server, protocol):
    r = server.client(protocol=protocol)
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set("k%d" % i, i, ex=100)
    p.set("bad", "v", ex=0)
    p.get("k7")
    p.dbsize()
    out = p.execute(raise_on_error=False)
    assert out[:200] == [True] * 200
    assert isinstance(out[200], redis.ResponseError)
    assert "invalid expire time in 'set' command" in str(out[200])
    assert out[201:] == [b"7", 200]


@pytest.mark.parametrize("protocol", [2, 3])
def test_exec_time_errors_in_pipeline(make_server, protocol):
    s = make_server("--min-ttl", "2", "--default-ttl", "0")
    r = s.client(protocol=protocol)
    p = r.pipeline()
    p.set("a", "1", ex=0)              # invalid expire: exec time
    p.set("b", "1", px=1000)           # below min-ttl: exec time
    p.set("c", "1")                    # TTL required: exec time
    p.set("d", "1", ex=10)
    out = p.execute(raise_on_error=False)
    assert [type(x) for x in out[:3]] == [redis.ResponseError] * 3
    assert "invalid expire time in 'set' command" in str(out[0])
    assert "min-ttl" in str(out[1])
    assert str(out[2]).startswith("TTL required: REPRAM keys always expire")
    assert out[3] is True
    assert r.get("d") == b"1"
    assert r.exists("a", "b", "c") == 0
    with pytest.raises(redis.ResponseError):
        r.pipeline().set("e", "1").set("f", "1", ex=10).execute()
    assert r.get("f") == b"1"          # raised, but the good command still ran


# --- WATCH ------------------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_watch_modified_by_another_client(server, protocol):
    c, other = Raw(server.port), Raw(server.port)
    if protocol == 3:
        c.cmd("HELLO", "3")
    nil = b"*-1\r\n" if protocol == 2 else b"_\r\n"
    assert c.cmd("SET", "w", "1", "EX", "100") == OK
    assert c.cmd("WATCH", "w", "w:absent") == OK
    assert other.cmd("SET", "w", "1", "EX", "100") == OK      # same value: still a write
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "w", "mine", "EX", "100") == QUEUED
    assert c.cmd("EXEC") == nil
    assert c.cmd("GET", "w") == b"$1\r\n1\r\n"
    # an absent watched key that gets created also aborts
    assert c.cmd("WATCH", "w:absent") == OK
    assert other.cmd("SET", "w:absent", "x", "EX", "100") == OK
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "w:absent", "mine", "EX", "100") == QUEUED
    assert c.cmd("EXEC") == nil
    # other writers: SETEX, MSET, GETSET, SETNX all count
    for argv in (("SETEX", "w", "10", "v"), ("MSET", "w", "v"), ("GETSET", "w", "v"),
                 ("SET", "w", "v", "KEEPTTL"), ("PSETEX", "w", "10000", "v")):
        assert c.cmd("WATCH", "w") == OK
        assert other.cmd(*argv).startswith((b"+", b"$")), argv
        assert c.cmd("MULTI") == OK
        assert c.cmd("PING") == QUEUED
        assert c.cmd("EXEC") == nil, argv


def test_watch_not_touched_by_reads_or_refused_writes(server):
    c, other = Raw(server.port), Raw(server.port)
    c.cmd("SET", "w", "1", "EX", "100")
    assert c.cmd("WATCH", "w") == OK
    for argv in (("GET", "w"), ("EXISTS", "w"), ("TTL", "w"), ("MGET", "w"), ("SCAN", "0"), ("KEYS", "*"),
                 ("SET", "w", "2", "NX", "EX", "10"), ("SETNX", "w", "2"), ("MSETNX", "w", "2"),
                 ("SET", "w", "2", "EX", "0"), ("SET", "w", "2", "EX", "999999"), ("DEL", "w"),
                 ("EXPIRE", "w", "5"), ("INCR", "w"), ("SET", "other", "1", "EX", "10")):
        other.cmd(*argv)
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "w", "mine", "EX", "100") == QUEUED
    assert c.cmd("EXEC") == b"*1\r\n+OK\r\n"


def test_watch_expiry_counts_as_modification(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    c = Raw(s.port)
    assert c.cmd("SET", "lock", "me", "PX", "1000") == OK
    assert c.cmd("WATCH", "lock") == OK
    fake_clock.advance(1000)                 # at the deadline: still live
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "lock", "again", "PX", "1000") == QUEUED
    assert c.cmd("EXEC") == b"*1\r\n+OK\r\n"
    assert c.cmd("WATCH", "lock") == OK
    fake_clock.advance(1001)                 # expired while watched
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "lock", "stolen", "PX", "1000") == QUEUED
    assert c.cmd("EXEC") == b"*-1\r\n"
    assert c.cmd("EXISTS", "lock") == b":0\r\n"
    # a key already absent at WATCH that stays absent is not a modification
    assert c.cmd("WATCH", "lock") == OK
    fake_clock.advance(5000)
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "lock", "mine", "PX", "1000") == QUEUED
    assert c.cmd("EXEC") == b"*1\r\n+OK\r\n"


def test_watch_error_with_redis_py(server):
    r, other = server.client(), server.client()
    r.set("counter", "1", ex=100)
    with r.pipeline() as p:
        p.watch("counter")
        assert p.get("counter") == b"1"          # immediate mode after WATCH
        other.set("counter", "5", ex=100)
        p.multi()
        p.set("counter", "2", ex=100)
        with pytest.raises(redis.WatchError):
            p.execute()
    assert r.get("counter") == b"5"


def test_optimistic_transaction_retries(server):
    r, other = server.client(), server.client()
    r.set("state:job", "queued", ex=100)
    attempts = []

    def advance(pipe):
        attempts.append(pipe.get("state:job"))
        if len(attempts) == 1:
            other.set("state:job", "in_progress", ex=100)   # a competitor moves first
        pipe.multi()
        pipe.set("state:job", "complete", ex=100)

    assert r.transaction(advance, "state:job") == [True]
    assert attempts == [b"queued", b"in_progress"]
    assert r.get("state:job") == b"complete"


def test_unwatch_and_discard(server):
    r, other = server.client(), server.client()
    with r.pipeline() as p:
        p.watch("k")
        other.set("k", "x", ex=100)
        p.unwatch()
        p.multi()
        p.set("k", "mine", ex=100)
        assert p.execute() == [True]
    c = Raw(server.port)
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "d", "1", "EX", "100") == QUEUED
    assert c.cmd("DISCARD") == OK
    assert c.cmd("EXISTS", "d") == b":0\r\n"
    assert c.cmd("DISCARD") == b"-ERR DISCARD without MULTI\r\n"
    assert c.cmd("EXEC") == b"-ERR EXEC without MULTI\r\n"
    assert c.cmd("MULTI") == OK
    assert c.cmd("MULTI") == b"-ERR MULTI calls can not be nested\r\n"
    assert c.cmd("WATCH", "x") == b"-ERR WATCH inside MULTI is not allowed\r\n"
    assert c.cmd("EXEC") == b"*0\r\n"


def test_reset_leaves_multi(server):
    c = Raw(server.port)
    assert c.cmd("MULTI") == OK
    assert c.cmd("SET", "r", "1", "EX", "100") == QUEUED
    assert c.cmd("RESET") == b"+RESET\r\n"
    assert c.cmd("EXEC") == b"-ERR EXEC without MULTI\r\n"
    assert c.cmd("EXISTS", "r") == b":0\r\n"


def test_transaction_is_atomic_for_other_clients(server):
    # Another client never sees half of a transaction: all its writes land
    # in one turn of the event loop.
    r, other = server.client(), server.client()
    p = r.pipeline()
    for i in range(300):
        p.set("batch:%d" % i, "v", ex=100)
    p.execute()
    assert other.dbsize() == 300
    assert len(other.keys("batch:*")) == 300
