"""Pub/sub and keyspace notifications (SPEC §2-§3, reference §4.6).

* ``notify-keyspace-events`` takes Redis's flag syntax and CONFIG GET shows
  the canonical form (``Ex`` -> ``xE``, ``KEA`` -> ``AKE``).
* ``__keyevent@0__:expired`` fires when a key expires, close to its deadline
  (never before it), to RESP2 subscribers and as RESP3 push frames.  The
  latency test prints the observed p50/p99.
* ``$`` set events on both channel families, pattern subscriptions, the
  exact (UN)SUBSCRIBE replies, RESP2 subscribed-mode rules, PUBLISH counts.
* A subscriber that never reads is disconnected once its unsent output
  passes ``client-output-buffer-limit-pubsub``; everyone else is unaffected.
Ordering trick: after the actions under test, a PUBLISH on a sentinel channel
the subscriber also listens to; the server delivers in order, so once the
sentinel arrives, everything before it has arrived too.
"""

from __future__ import annotations

import threading
import time

import pytest
import redis

from rawresp import Raw
from repram_resp.keyspace import BUCKET_SHIFT

EXPIRED = b"__keyevent@0__:expired"
SENTINEL = b"test:sentinel"


# -- helpers -------------------------------------------------------------------

def b(s: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(s), s)


def msg(head: bytes, *parts: bytes) -> bytes:
    return head + b"".join(b(p) for p in parts)


def collect_until_sentinel(p, timeout_s=5.0):
    """Messages from a redis-py PubSub until the sentinel message arrives."""
    out = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = p.get_message(timeout=0.2)
        if m is None or m["type"] in ("subscribe", "psubscribe"):
            continue
        if m["channel"] == SENTINEL:
            return out
        out.append(m)
    raise AssertionError("sentinel never arrived; got %r" % out)


def subscribed(r, *, channels=(), patterns=()):
    """A confirmed redis-py PubSub.  It keeps ``r`` alive: redis-py closes a
    client's pool (and so the subscription) when the client is collected."""
    p = r.pubsub()
    p.keepalive = r
    if channels:
        p.subscribe(*channels, SENTINEL)
    else:
        p.subscribe(SENTINEL)
    if patterns:
        p.psubscribe(*patterns)
    want = len(channels) + 1 + len(patterns)
    got = 0
    deadline = time.monotonic() + 5
    while got < want:
        assert time.monotonic() < deadline, "subscriptions not confirmed"
        m = p.get_message(timeout=0.2)
        if m and m["type"] in ("subscribe", "psubscribe"):
            got += 1
    return p


# -- configuration -------------------------------------------------------------

@pytest.mark.parametrize("given,canonical", [
    ("Ex", "xE"), ("KEA", "AKE"), ("xE", "xE"), ("K$", "$K"), ("E$", "$E"), ("AK", "AK"),
    ("Kx$E", "$xKE"), ("", ""),
])
def test_config_notify_keyspace_events_canonical(server, given, canonical):
    r = server.client(protocol=2, decode_responses=True)
    assert r.config_set("notify-keyspace-events", given)
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": canonical}


def test_config_notify_keyspace_events_rejects_unknown_flag(server):
    r = server.client(protocol=2, decode_responses=True)
    r.config_set("notify-keyspace-events", "Ex")
    with pytest.raises(redis.ResponseError, match=r"^CONFIG SET failed \(possibly related to "
                                                  r"argument 'notify-keyspace-events'\)"):
        r.config_set("notify-keyspace-events", "Eq")
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "xE"}


def test_startup_flag_is_canonical(make_server):
    s = make_server("--notify-keyspace-events", "KEA")
    r = s.client(protocol=2, decode_responses=True)
    assert r.config_get("notify-keyspace-events") == {"notify-keyspace-events": "AKE"}


# -- expired events ----------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_expired_events_arrive_close_to_the_deadline(make_server, protocol):
    s = make_server("--min-ttl", "0", "--notify-keyspace-events", "Ex")
    sub = s.client(protocol=protocol)
    p = sub.pubsub()
    p.subscribe(EXPIRED)
    received: dict[bytes, float] = {}
    stop = threading.Event()
    confirmed = threading.Event()
    errors = []

    def reader():
        try:
            while not stop.is_set():
                m = p.get_message(timeout=0.05)
                if m is None:
                    continue
                t = time.time() * 1000
                if m["type"] == "subscribe":
                    confirmed.set()
                elif m["type"] == "message":
                    assert m["channel"] == EXPIRED
                    assert m["data"] not in received, "duplicate expired event %r" % m["data"]
                    received[m["data"]] = t
        except Exception as e:  # surfaced below
            errors.append(e)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        assert confirmed.wait(5)
        w = s.client(protocol=protocol)
        deadlines: dict[bytes, int] = {}
        for wave in range(3):
            pipe = w.pipeline(transaction=False)
            names = [b"hb:%d:%02d" % (wave, i) for i in range(20)]
            for k in names:
                pipe.set(k, b"alive", px=300)
                pipe.pexpiretime(k)
            res = pipe.execute()
            for k, dl in zip(names, res[1::2]):
                deadlines[k] = dl
            # Next wave once this one has been reported (bounded wait).
            limit = time.monotonic() + 5
            while not all(k in received for k in names) and time.monotonic() < limit:
                time.sleep(0.005)
            for k in names:
                if k in received:
                    assert w.get(k) is None
    finally:
        stop.set()
        th.join(5)
    assert not errors, errors
    assert set(received) == set(deadlines), "missing: %r" % sorted(set(deadlines) - set(received))
    lat = sorted(received[k] - deadlines[k] for k in deadlines)
    p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print("\nexpired-event latency RESP%d: p50 %.1f ms, p99 %.1f ms, max %.1f ms (n=%d)"
          % (protocol, p50, p99, lat[-1], len(lat)))
    assert lat[0] >= 0, "an expired event arrived before the key's deadline"
    assert lat[-1] <= 200, lat[-10:]


@pytest.mark.parametrize("protocol", [2, 3])
def test_expired_event_raw_frames(make_server, fake_clock, protocol):
    s = make_server("--notify-keyspace-events", "KEx", clock=fake_clock)
    c = Raw(s.port)
    if protocol == 3:
        assert c.call("HELLO", "3").startswith(b"%")
    head = b">3\r\n" if protocol == 3 else b"*3\r\n"
    assert c.call("SUBSCRIBE", EXPIRED) == msg(head, b"subscribe", EXPIRED) + b":1\r\n"
    assert c.call("PSUBSCRIBE", b"__keyspace@0__:*") == \
        msg(head, b"psubscribe", b"__keyspace@0__:*") + b":2\r\n"
    r = s.client(protocol=2)
    r.set("tmpk", "v", px=1000)
    fake_clock.advance(1001)
    assert r.get("tmpk") is None
    # Reported by the background reclaimer once the key's 16 ms expiry bucket
    # is wholly in the past (with a real clock, at most ~16 ms later).
    fake_clock.advance(1 << BUCKET_SHIFT)
    got = {c.reply(), c.reply()}
    assert got == {
        msg(head, b"message", EXPIRED, b"tmpk"),
        msg(b">4\r\n" if protocol == 3 else b"*4\r\n", b"pmessage", b"__keyspace@0__:*",
            b"__keyspace@0__:tmpk", b"expired"),
    }
    c.close()


def test_overwriting_an_expired_key_reports_its_expiry(make_server, fake_clock):
    s = make_server("--notify-keyspace-events", "Ex", clock=fake_clock)
    r = s.client(protocol=2)
    p = subscribed(s.client(protocol=2), channels=[EXPIRED])
    r.set("k", "v1", px=1000)
    fake_clock.advance(1001)
    r.set("k", "v2", ex=100)                          # may beat the background reclaimer
    r.publish(SENTINEL, "done")
    got = collect_until_sentinel(p)
    assert [(m["channel"], m["data"]) for m in got] == [(EXPIRED, b"k")]
    assert r.get("k") == b"v2"


def test_no_expired_events_without_the_x_flag(make_server, fake_clock):
    s = make_server("--notify-keyspace-events", "E$", clock=fake_clock)
    r = s.client(protocol=2)
    p = subscribed(s.client(protocol=2), patterns=[b"__key*__:*"])
    r.set("k", "v", px=1000)
    fake_clock.advance(1001 + (1 << BUCKET_SHIFT))
    assert r.get("k") is None
    r.dbsize()                                           # reclaims now
    r.publish(SENTINEL, "done")
    got = collect_until_sentinel(p)
    assert [(m["channel"], m["data"]) for m in got] == [(b"__keyevent@0__:set", b"k")]


# -- set events ----------------------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_set_events_keyspace_and_keyevent(make_server, protocol):
    s = make_server()
    r = s.client(protocol=protocol)
    p = subscribed(s.client(protocol=protocol), patterns=[b"__key*@0__:*"])
    r.config_set("notify-keyspace-events", "K$")
    r.set("a", "1", ex=100)
    r.config_set("notify-keyspace-events", "E$")
    r.set("b", "2", ex=100)
    r.config_set("notify-keyspace-events", "Ex")     # no '$': no set events
    r.set("c", "3", ex=100)
    r.config_set("notify-keyspace-events", "KE$")
    r.mset({"d": "4", "e": "5"})
    r.execute_command("SETEX", "f", 100, "6")
    r.psetex("g", 100000, "7")
    r.setnx("h", "8")
    r.set("i", "9", ex=100, nx=True)
    r.set("i", "9", ex=100, nx=True)                 # not written: no event
    r.publish(SENTINEL, "done")
    got = [(m["channel"], m["data"]) for m in collect_until_sentinel(p)]
    want = [(b"__keyspace@0__:a", b"set"), (b"__keyevent@0__:set", b"b")]
    for k in (b"d", b"e", b"f", b"g", b"h", b"i"):
        want += [(b"__keyspace@0__:" + k, b"set"), (b"__keyevent@0__:set", k)]
    assert got == want


def test_refused_write_fires_no_event(make_server):
    s = make_server("--notify-keyspace-events", "KE$", "--maxmemory", "1000")
    r = s.client(protocol=2)
    p = subscribed(s.client(protocol=2), patterns=[b"__key*@0__:*"])
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        r.set("big", "x" * 2000, ex=100)
    with pytest.raises(redis.ResponseError):
        r.set("bad", "x", ex=0)
    r.publish(SENTINEL, "done")
    assert collect_until_sentinel(p) == []


# -- subscribe / unsubscribe replies, subscribed mode -----------------------------------

def test_subscribe_unsubscribe_replies_resp2(server):
    c = Raw(server.port)
    c.send("SUBSCRIBE", "a", "b")
    assert c.reply() == msg(b"*3\r\n", b"subscribe", b"a") + b":1\r\n"
    assert c.reply() == msg(b"*3\r\n", b"subscribe", b"b") + b":2\r\n"
    assert c.call("PSUBSCRIBE", "n.*") == msg(b"*3\r\n", b"psubscribe", b"n.*") + b":3\r\n"
    assert c.call("SUBSCRIBE", "a") == msg(b"*3\r\n", b"subscribe", b"a") + b":3\r\n"
    assert c.call("UNSUBSCRIBE", "a") == msg(b"*3\r\n", b"unsubscribe", b"a") + b":2\r\n"
    assert c.call("UNSUBSCRIBE", "zz") == msg(b"*3\r\n", b"unsubscribe", b"zz") + b":2\r\n"
    assert c.call("PUNSUBSCRIBE") == msg(b"*3\r\n", b"punsubscribe", b"n.*") + b":1\r\n"
    assert c.call("PUNSUBSCRIBE") == b"*3\r\n" + b(b"punsubscribe") + b"$-1\r\n:1\r\n"
    assert c.call("UNSUBSCRIBE") == msg(b"*3\r\n", b"unsubscribe", b"b") + b":0\r\n"
    assert c.call("UNSUBSCRIBE") == b"*3\r\n" + b(b"unsubscribe") + b"$-1\r\n:0\r\n"
    # Out of subscribed mode: ordinary commands work again.
    assert c.call("GET", "x") == b"$-1\r\n"
    assert c.call("PING") == b"+PONG\r\n"
    c.close()


def test_subscribe_unsubscribe_replies_resp3(server):
    c = Raw(server.port)
    assert c.call("HELLO", "3").startswith(b"%")
    assert c.call("SUBSCRIBE", "a") == msg(b">3\r\n", b"subscribe", b"a") + b":1\r\n"
    assert c.call("PSUBSCRIBE", "n.*") == msg(b">3\r\n", b"psubscribe", b"n.*") + b":2\r\n"
    # RESP3: any command works while subscribed, PING is a plain PONG.
    assert c.call("PING") == b"+PONG\r\n"
    assert c.call("GET", "x") == b"_\r\n"
    assert c.call("PUNSUBSCRIBE", "n.*") == msg(b">3\r\n", b"punsubscribe", b"n.*") + b":1\r\n"
    assert c.call("UNSUBSCRIBE") == msg(b">3\r\n", b"unsubscribe", b"a") + b":0\r\n"
    assert c.call("PUNSUBSCRIBE") == b">3\r\n" + b(b"punsubscribe") + b"_\r\n:0\r\n"
    c.close()


def test_resp2_subscribed_mode_rules(server):
    c = Raw(server.port)
    c.call("SUBSCRIBE", "ch")
    assert c.call("GET", "k") == (b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / "
                                  b"(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this "
                                  b"context\r\n")
    assert c.call("SET", "k", "v").startswith(b"-ERR Can't execute 'set': only (P|S)SUBSCRIBE")
    assert c.call("PING") == b"*2\r\n" + b(b"pong") + b(b"")
    assert c.call("PING", "hello") == b"*2\r\n" + b(b"pong") + b(b"hello")
    # Still subscribed after the refusals: a message arrives.
    assert server.client().publish("ch", "m1") == 1
    assert c.reply() == msg(b"*3\r\n", b"message", b"ch", b"m1")
    assert c.call("RESET") == b"+RESET\r\n"
    assert c.call("GET", "k") == b"$-1\r\n"
    assert server.client().publish("ch", "m2") == 0
    c.close()


def test_redis_py_pubsub_ping_and_messages(server):
    for protocol in (2, 3):
        r = server.client(protocol=protocol)
        p = subscribed(r, channels=[b"news"])
        p.ping()
        deadline = time.monotonic() + 5
        pong = None
        while pong is None and time.monotonic() < deadline:
            m = p.get_message(timeout=0.2)
            if m is not None and m["type"] == "pong":
                pong = m
        assert pong is not None
        assert r.publish("news", "hello") == 1
        r.publish(SENTINEL, "done")
        got = collect_until_sentinel(p)
        assert [(m["type"], m["channel"], m["data"]) for m in got] == [("message", b"news", b"hello")]
        p.close()


# -- patterns and PUBLISH counts ----------------------------------------------------------

@pytest.mark.parametrize("protocol", [2, 3])
def test_psubscribe_patterns(server, protocol):
    r = server.client(protocol=protocol)
    p = subscribed(server.client(protocol=protocol), patterns=[b"news.*", b"h[ae]llo", b"x\\*"])
    assert r.publish("news.tech", "1") == 1
    assert r.publish("news", "2") == 0
    assert r.publish("hallo", "3") == 1
    assert r.publish("hillo", "4") == 0
    assert r.publish("x*", "5") == 1
    assert r.publish("xy", "6") == 0
    r.publish(SENTINEL, "done")
    got = [(m["type"], m["pattern"], m["channel"], m["data"]) for m in collect_until_sentinel(p)]
    assert got == [("pmessage", b"news.*", b"news.tech", b"1"),
                   ("pmessage", b"h[ae]llo", b"hallo", b"3"),
                   ("pmessage", b"x\\*", b"x*", b"5")]


def test_publish_returns_receiver_count(server):
    r = server.client()
    assert r.publish("chan", "nobody") == 0
    c1 = Raw(server.port)
    c1.call("SUBSCRIBE", "chan")
    c2 = Raw(server.port)
    c2.call("PSUBSCRIBE", "ch*")
    c2.call("PSUBSCRIBE", "c*n")
    c3 = Raw(server.port)
    c3.call("SUBSCRIBE", "chan")
    c3.call("PSUBSCRIBE", "*")
    # c1 once, c2 via two patterns, c3 via its channel and its pattern.
    assert r.publish("chan", "m") == 5
    assert r.pubsub_numsub("chan") == [(b"chan", 2)]
    assert r.pubsub_numpat() == 3
    c3.close()
    deadline = time.monotonic() + 5
    while r.pubsub_numsub("chan") != [(b"chan", 1)]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert r.publish("chan", "m") == 3
    c1.close()
    c2.close()


# -- slow subscribers ---------------------------------------------------------------------

def test_slow_subscriber_is_disconnected_and_others_keep_working(server):
    r = server.client(protocol=2)
    assert r.config_set("client-output-buffer-limit-pubsub", "1mb")
    limit = 1024 * 1024
    slow = Raw(server.port, rcvbuf=4096)
    assert slow.call("SUBSCRIBE", "firehose") == msg(b"*3\r\n", b"subscribe", b"firehose") + b":1\r\n"
    good = subscribed(server.client(protocol=2), channels=[b"calm"])
    chunk = b"x" * (64 * 1024)
    srv = server.server

    def max_pubsub_buffer():
        return max((c.transport.get_write_buffer_size() for c in srv.clients.values()
                    if c.transport is not None and c.channels), default=0)

    published = 0
    peak = 0
    dropped = False
    while published < 2000:                            # 125 MB at most: far beyond any buffer
        n = r.publish("firehose", chunk)
        published += 1
        if published % 16 == 0:
            peak = max(peak, server.call(max_pubsub_buffer))
            if n == 0 and r.pubsub_numsub("firehose") == [(b"firehose", 0)]:
                dropped = True
                break
    assert dropped, "slow subscriber never disconnected after %d MB" % (published * 64 // 1024)
    assert published * len(chunk) < 64 * limit, "dropped only after %d messages" % published
    assert peak <= limit + len(chunk) + 64, peak
    # The server keeps serving everyone else.
    assert r.set("k", "v", ex=10) and r.get("k") == b"v"
    assert r.publish("calm", "still here") == 1
    r.publish(SENTINEL, "done")
    got = collect_until_sentinel(good)
    assert [(m["channel"], m["data"]) for m in got] == [(b"calm", b"still here")]
    # The slow client's connection is closed: reading drains what the kernel
    # held, then hits EOF or a reset.
    slow.sock.settimeout(10)
    closed = False
    try:
        while True:
            data = slow.sock.recv(1 << 20)
            if not data:
                closed = True
                break
    except (ConnectionResetError, BrokenPipeError):
        closed = True
    assert closed
    deadline = time.monotonic() + 5
    while server.call(lambda: sum(1 for c in srv.clients.values() if "firehose".encode() in c.channels)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert r.info("clients")["pubsub_clients"] == 1          # only the good subscriber
    slow.close()
