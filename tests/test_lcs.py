"""LCS: Redis's replies (differential against redis-server), its memory bound
and its work budget across event-loop turns (commands/lcs.py)."""

import random

import pytest
import redis
from rawresp import Raw

OPTIONS = ((), ("LEN",), ("IDX",), ("IDX", "WITHMATCHLEN"), ("IDX", "MINMATCHLEN", "2"),
           ("IDX", "MINMATCHLEN", "3", "WITHMATCHLEN"), ("len",), ("LEN", "IDX"), ("MINMATCHLEN",),
           ("MINMATCHLEN", "x"), ("FOO",), ("IDX", "MINMATCHLEN", "-5"))


def _call(r, *args):
    try:
        return r.execute_command(*args)
    except redis.ResponseError as e:
        return "error: %s" % e


@pytest.mark.parametrize("protocol", [2, 3])
def test_lcs_replies_as_redis(server, real_redis, protocol):
    ours, theirs = server.client(protocol=protocol), redis.Redis(port=real_redis, protocol=protocol)
    rnd = random.Random(7)
    pairs = [(b"ohmytext", b"mynewtext"), (b"", b"abc"), (b"same", b"same"), (b"\x00\xff", b"\xff")]
    pairs += [(bytes(rnd.choice(b"abc") for _ in range(rnd.randint(0, 25))),
               bytes(rnd.choice(b"abc") for _ in range(rnd.randint(0, 25)))) for _ in range(40)]
    for a, b in pairs:
        for r in (ours, theirs):
            r.set("a", a, ex=100)
            r.set("b", b, ex=100)
        for opts in OPTIONS:
            assert _call(ours, "LCS", "a", "b", *opts) == _call(theirs, "LCS", "a", "b", *opts), \
                (a, b, opts)
    assert _call(ours, "LCS", "nokey", "b") == _call(theirs, "LCS", "nokey", "b")
    assert _call(ours, "LCS", "a") == _call(theirs, "LCS", "a")
    # redis-py's own call, as its suite makes it
    ours.mset({"foo": "ohmytext", "bar": "mynewtext"})
    assert ours.lcs("foo", "bar", idx=True, minmatchlen=3) in (
        [b"matches", [[[4, 7], [5, 8]]], b"len", 6], {b"matches": [[[4, 7], [5, 8]]], b"len": 6})


def test_lcs_table_memory_is_bounded(server):
    r = server.client()
    r.set("a", b"x" * 1000, ex=100)
    r.set("b", b"y" * 1000, ex=100)
    r.config_set("lcs-max-table-memory", "1mb")     # 1001 * 1001 * 4 bytes is more
    with pytest.raises(redis.ResponseError, match=r"exceeds lcs-max-table-memory \(4008004 bytes "
                       r"needed, 1048576 allowed\)"):
        r.lcs("a", "b")
    r.config_set("lcs-max-table-memory", "4008004")
    assert r.lcs("a", "b") == b""


def test_big_lcs_runs_across_turns_and_others_are_served(server, real_redis):
    r = server.client()
    rnd = random.Random(3)
    a = bytes(rnd.choice(b"acgt") for _ in range(1500))
    b = bytes(rnd.choice(b"acgt") for _ in range(1500))
    for c in (r, redis.Redis(port=real_redis)):
        c.set("a", a, ex=100)
        c.set("b", b, ex=100)
    want = redis.Redis(port=real_redis).lcs("a", "b", idx=True, withmatchlen=True)
    r.config_set("lcs-turn-max-cells", "1000")       # 2.25M cells: > 2000 loop turns
    slow, other = Raw(server.port), Raw(server.port)
    slow.send("LCS", "a", "b", "IDX", "WITHMATCHLEN")
    slow.send("ECHO", "after")                        # answered after the LCS, in order
    for _ in range(3):
        assert other.cmd("PING") == b"+PONG\r\n"
    slow.sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        slow.sock.recv(1)                            # still computing while PING was served
    slow.sock.setblocking(True)
    reply = slow.read()
    assert redis.Redis(port=server.port).lcs("a", "b", idx=True, withmatchlen=True) == want
    assert reply.startswith(b"*4\r\n$7\r\nmatches\r\n") and slow.read() == b"$5\r\nafter\r\n"
    # A client that leaves mid-way: the work stops, the node is fine.
    gone = Raw(server.port)
    gone.send("LCS", "a", "b")
    gone.close()
    assert r.ping() and r.info("stats")["unexpected_error_replies"] == 0
    slow.close()
    other.close()


def test_lcs_inside_multi(server):
    r = server.client()
    r.set("a", b"ohmytext", ex=100)
    r.set("b", b"mynewtext", ex=100)
    p = r.pipeline(transaction=True)
    p.lcs("a", "b")
    p.lcs("a", "b", len=True)
    assert p.execute() == [b"mytext", 6]
    r.config_set("lcs-turn-max-cells", "10")
    p = r.pipeline(transaction=True)
    p.lcs("a", "b")
    with pytest.raises(redis.ResponseError, match="cannot run inside MULTI/EXEC"):
        p.execute()


def test_lcs_long_row_yields_inside_it(server, real_redis):
    """One short value and one long: each row is long, the budget still holds."""
    rnd = random.Random(5)
    a, b = b"xy", bytes(rnd.choice(b"xyz") for _ in range(50_000))
    for c in (server.client(), redis.Redis(port=real_redis)):
        c.set("a", a, ex=100)
        c.set("b", b, ex=100)
    r = server.client()
    r.config_set("lcs-turn-max-cells", "1000")
    assert r.lcs("a", "b", idx=True) == redis.Redis(port=real_redis).lcs("a", "b", idx=True)
    assert r.lcs("b", "a", len=True) == 2
