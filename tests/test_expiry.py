"""Active expiry over the network (SPEC §2: "Memory of expired keys is
reclaimed promptly in the background"; reference §4.5).

* Real clock: thousands of short-TTL keys are reclaimed with no access at
  all -- the test polls only ``INFO memory`` / ``INFO stats`` (which never
  reclaim) until memory is back and the expiry count is complete, and only
  then looks at ``INFO keyspace``.
* Fake clock: expired data is invisible from the first millisecond past its
  deadline on every read path; the background reclaimer still gets the
  memory back though nobody reads.
* Overwrites: extending a deadline never loses the key, and heavy overwriting
  leaves no stale expiry bookkeeping behind.
All waits are bounded polling loops with deadlines.
"""

from __future__ import annotations

import time

from repram_resp.keyspace import BUCKET_SHIFT, ENTRY_OVERHEAD_BYTES


def poll(fn, timeout_s=5.0, interval_s=0.01):
    """Call fn() until it returns a truthy value; return it, or the last value
    once the deadline passes (the caller asserts on it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval_s)


def memory_and_expired(r):
    info = r.info("memory")
    stats = r.info("stats")
    return info["used_memory"], stats["expired_keys"]


def test_active_expiry_returns_memory_without_access(make_server):
    s = make_server("--min-ttl", "0")
    r = s.client(protocol=2)
    base_used, base_expired = memory_and_expired(r)
    assert (base_used, base_expired) == (0, 0)
    pipe = r.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(b"hb:%04d" % i, b"x" * 50, px=200)
    assert all(pipe.execute())
    deadline_ms = time.time() * 1000 + 200
    used, expired = memory_and_expired(r)
    if expired == 0:                                   # nothing reclaimed yet: exact accounting
        assert used == 2000 * (7 + 50 + ENTRY_OVERHEAD_BYTES)
    state = poll(lambda: (lambda u, e: (u, e) if (u, e) == (base_used, 2000) else None)(
        *memory_and_expired(r)), timeout_s=5.0)
    assert state == (base_used, 2000), "memory/expired_keys now %r" % (memory_and_expired(r),)
    took_ms = time.time() * 1000 - deadline_ms
    assert took_ms < 4000
    info = r.info("keyspace")
    assert "db0" not in info
    assert r.dbsize() == 0
    assert s.call(lambda: (len(s.server.keyspace.data), len(s.server.keyspace.index),
                           len(s.server.keyspace._buckets))) == (0, 0, 0)


def test_info_keyspace_line(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client(protocol=2)
    assert "db0" not in r.info("keyspace")
    for i in range(5):
        r.set("k%d" % i, "v", ex=100)
    db0 = r.info("keyspace")["db0"]
    assert db0["keys"] == 5 and db0["expires"] == 5
    assert 99_000 <= db0["avg_ttl"] <= 100_000


def test_expired_key_is_invisible_one_ms_past_deadline(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    r.set("k", "v", px=1000)
    r.set("keep", "v", ex=100)
    fake_clock.advance(1000)
    assert r.get("k") == b"v" and r.pttl("k") == 0 and r.exists("k") == 1
    fake_clock.advance(1)
    assert r.get("k") is None
    assert r.mget("k", "keep") == [None, b"v"]
    assert r.exists("k") == 0
    assert r.ttl("k") == -2 and r.pttl("k") == -2
    assert r.type("k") == b"none"
    assert r.strlen("k") == 0
    assert r.keys("*") == [b"keep"]
    assert r.scan(0, count=100) == (0, [b"keep"])
    assert r.dbsize() == 1
    # SET NX succeeds on an expired key; SET XX does not.
    r.set("k2", "v", px=1000)
    fake_clock.advance(1001)
    assert r.set("k2", "w", px=1000, xx=True) is None
    assert r.set("k2", "w", px=1000, nx=True) is True


def test_fake_clock_reclaimer_gets_memory_back_without_reads(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client(protocol=2)
    for i in range(300):
        r.set(b"k%03d" % i, b"v" * 100, ex=10)
    assert r.info("memory")["used_memory"] > 300 * 100
    fake_clock.advance(10_001 + (1 << BUCKET_SHIFT))
    # The timer sleeps at most a second between looks; no command here reclaims.
    used = poll(lambda: (lambda u: u == 0 and "done")(r.info("memory")["used_memory"]), timeout_s=5)
    assert used == "done", r.info("memory")["used_memory"]
    assert r.info("stats")["expired_keys"] == 300


def test_overwrite_with_later_deadline_survives_the_old_one(make_server, fake_clock):
    s = make_server(clock=fake_clock)
    r = s.client()
    ks = s.server.keyspace
    r.set("state:job", "queued", ex=2)
    r.set("state:job", "in_progress", ex=60)         # REPRAM: overwrite resets the TTL
    new_bucket = s.call(lambda: ks.data[b"state:job"][1] >> BUCKET_SHIFT)
    fake_clock.advance(5000)                            # well past the first deadline
    # Wait for the reclaimer to visit the old bucket and re-file the key.
    refiled = poll(lambda: s.call(lambda: ks.data[b"state:job"][3] >> BUCKET_SHIFT == new_bucket), timeout_s=5)
    assert refiled
    assert r.get("state:job") == b"in_progress"
    assert 54 <= r.ttl("state:job") <= 55
    assert r.info("stats")["expired_keys"] == 0
    fake_clock.advance(55_001)
    assert r.get("state:job") is None


def test_overwrites_leave_no_stale_bucket_entries(make_server):
    s = make_server("--min-ttl", "0")
    r = s.client(protocol=2)
    ks = s.server.keyspace
    pipe = r.pipeline(transaction=False)
    peak = [0, 0]

    def sizes():
        # One reading on the server loop: buckets, heap, filed entries, keys.
        return (len(ks._buckets), len(ks._bucket_heap),
                sum(len(b) for b in ks._buckets.values()), len(ks.data))

    for i in range(100_000):
        # Mostly later deadlines (a heartbeat rewritten before it expires),
        # with a shorter one now and then (the key must move).
        px = 1500 + (i * 7919) % 500 if i % 10 else 1000 + i % 100
        pipe.set(b"hb:%02d" % (i % 100), b"alive", px=px)
        if i % 5000 == 4999:
            assert all(pipe.execute())
            nb, nh, filed, live = s.call(sizes)
            # Lists of filings: a move leaves a stale filing behind, bounded
            # per bucket (keyspace.py header), so never more than ~2x + slack.
            assert live <= 100 and live <= filed <= 2 * live + 33 * nb, (
                "filings bounded: %d entries, %d keys, %d buckets" % (filed, live, nb))
            peak = [max(peak[0], nb), max(peak[1], nh)]
    assert peak[0] <= 100
    assert peak[1] <= 4 * 100 + 4096 + 1, peak
    assert r.dbsize() <= 100
    done = poll(lambda: s.call(lambda: (not ks.data and not ks._buckets and ks.used_bytes == 0)),
                timeout_s=5)
    assert done, s.call(sizes)
    assert r.info("memory")["used_memory"] == 0


def test_expiry_keeps_serving_clients(make_server):
    # A large expiry wave is reclaimed in batches; clients are served meanwhile.
    s = make_server("--min-ttl", "0", "--active-expire-batch-keys", "500")
    r = s.client(protocol=2)
    pipe = r.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(b"w:%05d" % i, b"v", px=100)
    pipe.execute()
    r.set("keep", "v", ex=100)
    ok = poll(lambda: r.info("stats")["expired_keys"] == 20_000, timeout_s=10)
    assert ok, r.info("stats")["expired_keys"]
    assert r.get("keep") == b"v"
    assert r.dbsize() == 1
    assert r.info("memory")["used_memory"] == s.call(lambda: s.server.keyspace.used_bytes)
