"""Pure parts of the cluster layer: frames, proofs, clock offset, membership
rules, receiver validation.  No sockets, no event loop."""

from __future__ import annotations

import random

import pytest

from repram_resp.clock import HLC
from repram_resp.cluster import auth
from repram_resp.cluster import messages as m
from repram_resp.cluster.membership import DOWN, SUSPECT, UP, Peer, backoff_s, parse_address, peer_state
from repram_resp.cluster.replicator import TTL_SLACK_MS, Limits, apply_entries
from repram_resp.cluster.timesync import QUANTUM_MS, OffsetEstimator
from repram_resp.keyspace import Keyspace

NOW = 1_700_000_000_000
LIMITS = Limits(1000, 86_400_000, 512 * 1024 * 1024)


# --- frames -------------------------------------------------------------------

def feed_all(data: bytes, step: int | None = None, limit: int = 1 << 30) -> list:
    r = m.FrameReader(limit)
    if step is None:
        return r.feed(data)
    out = []
    for i in range(0, len(data), step):
        out += r.feed(data[i:i + step])
    return out


def test_batch_roundtrip_binary_safe_one_byte_at_a_time():
    entries = [(b"k\r\n\x00", b"\x00\xff" * 100, NOW + 5000, (NOW << 32) | 7),
               (b"", b"", 1, 0), (b"big", b"x" * 70000, NOW, 2 ** 90)]
    data = m.encode_batch(b"node-a", 41, NOW, entries)
    for step in (None, 1, 7, 4096):
        [f] = feed_all(data, step)
        assert f[:4] == [m.BATCH, b"node-a", 41, NOW]
        assert m.check_entries(f, m.BATCH_HEAD, "B") == 3
        assert m.decode_entries(f, m.BATCH_HEAD) == entries


def test_hello_welcome_auth_roundtrip():
    node = m.NodeInfo("n1", "run", "encl", "127.0.0.1", 17001, 7001)
    h = m.Hello(m.PROTO_VERSION, node, 1 << 29, b"n" * 16, 123)
    [f] = feed_all(m.encode_hello(h), 1)
    assert m.decode_hello(f) == h
    w = m.Welcome(m.PROTO_VERSION, node, 5, b"w" * 16, b"proof", 1, 2, 3)
    [f] = feed_all(m.encode_welcome(w))
    assert m.decode_welcome(f) == w
    a = m.Auth(b"p", 1, 2, 3)
    [f] = feed_all(m.encode_auth(a))
    assert m.decode_auth(f) == a
    nodes = [m.NodeInfo("a", "r", "e", "h", 1, 2, "up"), m.NodeInfo("b", "r", "e", "", 3, 4, "suspect")]
    [f] = feed_all(m.encode_nodes(nodes))
    assert m.decode_nodes(f) == nodes


def test_future_protocol_version_is_reported_not_parsed():
    [f] = feed_all(m.frame(m.HELLO, 99, b"anything"))
    assert m.decode_hello(f).proto == 99


@pytest.mark.parametrize("data", [
    b"+OK\r\n", b":1\r\n", b"*0\r\n", b"*1\r\n:5\r\n", b"*-1\r\n", b"*1\r\n*1\r\n$1\r\nx\r\n",
    b"$3\r\nabc\r\n", b"!!!!\r\n",
])
def test_reader_rejects_non_frames(data):
    with pytest.raises(m.MessageError):
        feed_all(data)


def test_reader_bounds_an_incomplete_frame():
    r = m.FrameReader(1000)
    r.feed(b"*2\r\n$1\r\nB\r\n$900\r\n")
    with pytest.raises(m.MessageError):
        for _ in range(10):
            r.feed(b"x" * 200)
    # a length past the limit is refused from its header alone
    with pytest.raises(m.MessageError):
        m.FrameReader(1000).feed(b"*2\r\n$1\r\nB\r\n$99999999999\r\n")


@pytest.mark.parametrize("frame, decode", [
    (m.frame(m.HELLO, 1, "a"), m.decode_hello),
    (m.frame(m.HELLO, 1, "a", "b", "c", "d", 1, 2, 3, b"short", 5), m.decode_hello),
    (m.frame(m.HELLO, b"1", "a", "b", "c", "d", 1, 2, 3, b"n" * 16, 5), m.decode_hello),
    (m.frame(m.WELCOME, 1), m.decode_welcome),
    (m.frame(m.AUTH, 1, 2, 3, 4), m.decode_auth),
    (m.frame(m.NODES, "a", "b"), m.decode_nodes),
])
def test_decoders_check_shapes(frame, decode):
    [f] = feed_all(frame)
    with pytest.raises(m.MessageError):
        decode(f)


# --- proofs ---------------------------------------------------------------------

def test_proofs_bind_role_nonces_and_ids():
    args = (b"d" * 16, b"a" * 16, "dialer-id", "acceptor-id", "e1", "e1")
    p = auth.proof("s3cret", "acceptor", *args)
    assert len(p) == 32
    assert auth.verify("s3cret", p, "acceptor", *args)
    assert not auth.verify("other", p, "acceptor", *args)
    assert not auth.verify("s3cret", p, "dialer", *args)              # no reflection
    assert not auth.verify("s3cret", p, "acceptor", b"x" * 16, *args[1:])   # fresh nonce: no replay
    assert not auth.verify("s3cret", p, "acceptor", *args[:4], "e2", "e1")
    assert not auth.verify("s3cret", b"", "acceptor", *args)
    assert auth.proof("", "acceptor", *args) == b""
    assert auth.verify("", b"", "acceptor", *args)
    assert len({auth.new_nonce() for _ in range(100)}) == 100


# --- clock offset -----------------------------------------------------------------

@pytest.mark.parametrize("offset_us, out_us, back_us", [
    (0, 100, 100), (5_000_000, 300, 50), (-2_000_000, 40, 900), (123_456, 0, 0)])
def test_offset_estimate_never_lets_a_replica_outlive_the_origin(offset_us, out_us, back_us):
    """Peer clock = ours + offset; one-way delays out/back.  The converted
    deadline must not be later (in true time) than the origin's."""
    est = OffsetEstimator()
    t1 = 10_000_000_000
    t2 = t1 + out_us + offset_us
    t3 = t2 + 20
    t4 = t3 - offset_us + back_us
    est.add(t1, t2, t3, t4)
    remote_deadline_ms = 1_700_000_000_000
    local = est.to_local_ms(remote_deadline_ms)
    true_local_us = remote_deadline_ms * 1000 - offset_us
    assert local * 1000 <= true_local_us
    # ... and not much earlier: within the round trip plus the quantum.
    assert true_local_us - local * 1000 <= (out_us + back_us) + 2000 * QUANTUM_MS + 1000


def test_offset_estimator_keeps_the_tightest_sample():
    est = OffsetEstimator()
    est.add(0, 50_000, 50_000, 100_000)      # 100 ms round trip
    wide = est.delta_us
    est.add(0, 500, 500, 1000)               # 1 ms round trip
    assert est.delta_us < wide
    est.add(0, 90_000, 90_000, 100_000)      # worse again: still the tight one
    assert est.delta_us == 1000


# --- membership rules ---------------------------------------------------------------

def test_peer_state_rules():
    p = Peer("x")
    assert peer_state(p, 100.0, 1, 3) == DOWN                  # never heard
    p.heard, p.out = 100.0, object()
    assert peer_state(p, 100.5, 1, 3) == UP
    assert peer_state(p, 102.0, 1, 3) == SUSPECT
    assert peer_state(p, 104.0, 1, 3) == DOWN
    p.out = None
    assert peer_state(p, 100.5, 1, 3) == SUSPECT               # link lost, heard lately
    p.dial_refused = True
    assert peer_state(p, 100.5, 1, 3) == DOWN                  # nothing listens there
    p.dial_refused, p.left = False, True
    assert peer_state(p, 100.5, 1, 3) == DOWN                  # said BYE


def test_backoff_grows_to_the_cap_with_jitter():
    rng = random.Random(1)
    delays = [backoff_s(n, 100, 2000, rng) for n in range(12)]
    assert 0.05 <= delays[0] <= 0.15
    assert all(1.0 <= d <= 3.0 for d in delays[6:])
    assert len(set(delays)) == len(delays)


@pytest.mark.parametrize("text, want", [("127.0.0.1:17001", ("127.0.0.1", 17001)),
                                        ("[::1]:9", ("::1", 9)), ("host.example:1", ("host.example", 1))])
def test_parse_address(text, want):
    assert parse_address(text) == want


@pytest.mark.parametrize("text", ["127.0.0.1", ":17001", "h:0", "h:99999", "h:x", "[::1]9"])
def test_parse_address_rejects(text):
    with pytest.raises(ValueError):
        parse_address(text)


# --- receiver validation -------------------------------------------------------------

def frame_of(entries, sent_ms=None):
    data = m.encode_batch(b"o", 1, NOW if sent_ms is None else sent_ms, entries)
    [f] = feed_all(data)
    return f


def test_apply_entries_validates_and_applies():
    ks = Keyspace(maxmemory_bytes=0)
    v = lambda t: (t << 32) | 1     # noqa: E731
    f = frame_of([
        (b"ok", b"v", NOW + 10_000, v(NOW)),
        (b"expired", b"v", NOW - 1, v(NOW)),
        (b"too-long", b"v", NOW + LIMITS.max_ttl_ms + TTL_SLACK_MS + 10, v(NOW)),
        (b"too-short", b"v", NOW + 10, v(NOW)),
    ])
    applied, expired, refusals, top = apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, LIMITS, sent_ms=NOW)
    assert (applied, expired) == (1, 1)
    assert [(f[i], r) for i, r in refusals] == [(b"too-long", m.R_TTL), (b"too-short", m.R_TTL)]
    assert top == v(NOW)
    assert ks.data[b"ok"][:3] == (b"v", NOW + 10_000, v(NOW))
    # Catch-up entries are only held to max-ttl: an old key may have little left.
    applied, _, refusals, _ = apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, LIMITS)
    assert [f[i] for i, _ in refusals] == [b"too-long"]
    assert b"too-short" in ks.data


def test_apply_entries_size_and_memory_refusals_never_raise():
    ks = Keyspace(maxmemory_bytes=2000)
    small = Limits(0, 86_400_000, 100)
    f = frame_of([(b"big", b"x" * 101, NOW + 5000, 5), (b"a", b"y" * 50, NOW + 5000, 5),
                  (b"b", b"z" * 1900, NOW + 5000, 5)])
    small2 = Limits(0, 86_400_000, 10_000)
    _, _, refusals, _ = apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, small)
    assert [(f[i], r) for i, r in refusals] == [(b"big", m.R_SIZE), (b"b", m.R_SIZE)]
    _, _, refusals, _ = apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, small2)
    assert [(f[i], r) for i, r in refusals] == [(b"b", m.R_OOM)]
    assert set(ks.data) == {b"a", b"big"}


def test_apply_entries_converts_deadlines_by_the_offset():
    ks = Keyspace()
    f = frame_of([(b"k", b"v", NOW + 10_000, 1)])
    apply_entries(ks, f, m.BATCH_HEAD, -5000, NOW, LIMITS)
    assert ks.data[b"k"][1] == NOW + 5000


def test_apply_entries_rejects_malformed_entries():
    ks = Keyspace()
    [f] = feed_all(m.frame(m.BATCH, b"o", 1, NOW, b"k", b"v", b"notint", b"1"))
    with pytest.raises(m.MessageError):
        apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, LIMITS)
    [f] = feed_all(m.frame(m.BATCH, b"o", 1, NOW, b"k", b"v", NOW + 5000, b"x1"))
    with pytest.raises(m.MessageError):
        apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, LIMITS)
    [f] = feed_all(m.frame(m.BATCH, b"o", 1, NOW, b"k", b"v", NOW + 5000))
    with pytest.raises(m.MessageError):
        apply_entries(ks, f, m.BATCH_HEAD, 0, NOW, LIMITS)


def test_hlc_observe_orders_later_local_writes_after_remote_ones():
    a, b = HLC("a"), HLC("b")
    va = a.tick(NOW + 5000)          # a's clock runs 5 s ahead
    b.observe(va)
    assert b.tick(NOW) > va


# --- directives -------------------------------------------------------------------

@pytest.mark.parametrize("argv, name", [
    (["--peers", "127.0.0.1"], "peers"),
    (["--peers", "a:1,b:x"], "peers"),
    (["--cluster-ping-interval-ms", "2000"], "cluster-suspect-after-ms"),
    (["--cluster-suspect-after-ms", "5000"], "cluster-down-after-ms"),
    (["--cluster-reconnect-min-ms", "5000"], "cluster-reconnect-min-ms"),
    (["--cluster-peer-queue-limit", "1kb"], "cluster-peer-queue-limit"),
])
def test_bad_cluster_directives_name_themselves(argv, name):
    from repram_resp.config import ConfigError, load
    with pytest.raises(ConfigError, match="'%s'" % name):
        load(argv)


def test_cluster_directive_defaults_and_units():
    from repram_resp.config import load
    cfg = load([])
    assert (cfg.cluster_ping_interval_ms, cfg.cluster_suspect_after_ms, cfg.cluster_down_after_ms) == \
        (250, 1000, 3000)
    assert cfg.cluster_peer_queue_limit_bytes == 64 * 1024 * 1024
    assert load(["--cluster-peer-queue-limit", "1mb"]).cluster_peer_queue_limit_bytes == 1024 * 1024
