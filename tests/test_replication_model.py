"""Convergence, checked against a model: the same set of writes delivered to
several replicas in different orders, with duplicates, through
``Keyspace.apply_remote`` directly and through the peer-link path (frames
split at random points, parsed, validated, applied), always ends in the same
state -- the write that is greatest by (version, value, deadline) among those
not expired on arrival, for every key.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from repram_resp.clock import HLC
from repram_resp.cluster import messages as m
from repram_resp.cluster.replicator import Limits, apply_entries
from repram_resp.keyspace import Keyspace

NOW = 1_700_000_000_000
LIMITS = Limits(0, 86_400_000, 1 << 20)

writes_st = st.lists(
    st.tuples(
        st.sampled_from([b"k1", b"k2", b"lock:x", b"\x00bin"]),
        st.sampled_from([b"", b"a", b"b", b"\xff" * 3]),
        st.integers(-3, 50),                     # deadline, relative to NOW (<0: expired)
        st.integers(0, 6),                       # version: small, so ties happen
    ),
    min_size=1, max_size=30)


def model(writes):
    best = {}
    for k, v, d, ver in writes:
        if NOW > NOW + d:
            continue
        cand = (ver, v, NOW + d)
        if k not in best or cand > best[k]:
            best[k] = cand
    return {k: (v, d, ver) for k, (ver, v, d) in best.items()}


def state(ks):
    return {k: e[:3] for k, e in ks.data.items()}


def deliveries(draw, n):
    """A delivery order: every write at least once, some twice, shuffled."""
    order = list(range(n)) + draw(st.lists(st.integers(0, n - 1), max_size=n))
    return draw(st.permutations(order))


@settings(max_examples=300, deadline=None)
@given(writes=writes_st, data=st.data())
def test_apply_remote_converges_in_any_order_with_duplicates(writes, data):
    want = model(writes)
    for _ in range(3):
        ks = Keyspace()
        for i in deliveries(data.draw, len(writes)):
            k, v, d, ver = writes[i]
            ks.apply_remote(k, v, NOW + d, ver, NOW)
        assert state(ks) == want


@settings(max_examples=200, deadline=None)
@given(writes=writes_st, data=st.data())
def test_peer_link_path_converges(writes, data):
    """Batches and catch-up chunks, split at arbitrary bytes, in any order."""
    want = model(writes)
    for _ in range(3):
        order = deliveries(data.draw, len(writes))
        # Group the deliveries into frames of random sizes, alternating
        # stream batches and catch-up chunks.
        blobs = []
        i = 0
        while i < len(order):
            n = data.draw(st.integers(1, 5))
            group = [(writes[j][0], writes[j][1], NOW + writes[j][2], writes[j][3])
                     for j in order[i:i + n]]
            if data.draw(st.booleans()):
                blobs.append((m.BATCH_HEAD, m.encode_batch(b"origin", i + 1, NOW - 10_000, group)))
            else:
                blobs.append((m.CU_HEAD, m.encode_cu(7, group)))
            i += n
        stream = b"".join(b for _, b in blobs)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
        reader = m.FrameReader(1 << 24)
        frames = []
        prev = 0
        for c in cuts + [len(stream)]:
            frames += reader.feed(stream[prev:c])
            prev = c
        assert len(frames) == len(blobs)
        ks = Keyspace()
        for (head, _), f in zip(blobs, frames):
            sent = NOW - 10_000 if head == m.BATCH_HEAD else None
            apply_entries(ks, f, head, 0, NOW, LIMITS, sent_ms=sent)
        assert state(ks) == want


@settings(max_examples=100, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 2), st.sampled_from([b"a", b"b"]),
                              st.integers(0, 5)), min_size=1, max_size=25),
       skews=st.tuples(st.integers(-3000, 3000), st.integers(-3000, 3000), st.integers(-3000, 3000)),
       data=st.data())
def test_concurrent_writes_on_skewed_nodes_converge(ops, skews, data):
    """Three nodes with skewed clocks write the same keys concurrently (HLC
    versions, each node applying its own writes at once); after every node
    received every write, in any order, all agree."""
    hlcs = [HLC("node-%d" % i) for i in range(3)]
    nodes = [Keyspace() for _ in range(3)]
    written = []
    for step, (who, key, val) in enumerate(ops):
        now = NOW + step + skews[who]
        ver = hlcs[who].tick(now)
        value = b"%s-%d-%d" % (key, who, val)
        entry = (key, value, NOW + 60_000, ver)
        nodes[who].apply_remote(*entry, NOW)
        written.append((who, entry))
        # Some replication happens while writes go on: observing versions.
        if data.draw(st.booleans()):
            other = data.draw(st.integers(0, 2))
            if other != who:
                nodes[other].apply_remote(*entry, NOW)
                hlcs[other].observe(ver)
    for i in range(3):
        mine = [e for who, e in written]
        for e in data.draw(st.permutations(mine)):
            nodes[i].apply_remote(*e, NOW)
    assert state(nodes[0]) == state(nodes[1]) == state(nodes[2])
    # The winner of each key is its highest version: the causally last write.
    for key in {e[0] for _, e in written}:
        assert nodes[0].data[key][2] == max(e[3] for _, e in written if e[0] == key)
