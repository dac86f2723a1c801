"""A hypothesis state machine: random writes, reads and clock moves against a
real in-process server (fake clock, redis-py over TCP) and a plain-Python
model of SPEC §2; every reply is compared.

The model is the contract in a few lines:
* a key is live while ``now <= deadline`` (Redis's rule) and invisible to
  every read from ``deadline + 1`` on;
* every write sets the deadline (no TTL given -> ``default-ttl``); KEEPTTL
  keeps a live key's deadline and gives an absent key the default;
* Redis's expire checks first (``<= 0`` / overflow -> ``invalid expire time in
  '<cmd>' command``), then the REPRAM bounds, which refuse, never clamp;
* a refused write, or one whose NX / XX condition fails, changes nothing.

The clock only moves when a rule moves it, including to exactly a key's
deadline and 1 ms past it.  Each run starts and stops its own server.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

from conftest import ThreadedServer
from repram_resp.clock import FakeClock

LLONG_MAX = (1 << 63) - 1

KEYS = st.sampled_from([b"a", b"b", b"job:1", b"job:2", b"\x00k"])
VALUES = st.binary(max_size=6)
# Relative amounts, in the option's unit: edges of both bounds, Redis's own
# invalid values, overflows, and ordinary ones.
EX_AMOUNTS = st.one_of(
    st.sampled_from([0, -1, 1, 2, 4, 5, 6, 3600, 3601, LLONG_MAX // 1000 + 1, 9999999999999999]),
    st.integers(1, 20))
PX_AMOUNTS = st.one_of(
    st.sampled_from([0, -1, 1, 999, 1000, 1001, 4999, 5000, 5001, 3_600_000, 3_600_001,
                     LLONG_MAX]),
    st.integers(1, 20_000))
# EXAT / PXAT: offsets from "now" in ms (the rule turns them into absolute times).
AT_OFFSETS = st.one_of(st.sampled_from([-1000, -1, 0, 1, 999, 1000, 5000, 5001, 3_600_000]),
                       st.integers(-2000, 20_000))
ADVANCES = st.one_of(st.sampled_from([0, 1, 499, 500, 999, 1000, 1001, 5000, 3_600_000]),
                     st.integers(0, 20_000))


class Refused(Exception):
    """The model's expected error: kind and command name."""

    def __init__(self, kind: str, cmd: str):
        super().__init__(kind, cmd)
        self.kind, self.cmd = kind, cmd


def assert_error_matches(err: redis.ResponseError, expected: Refused) -> None:
    text = str(err)     # redis-py strips the leading "ERR "
    if expected.kind == "invalid":
        assert text == "invalid expire time in '%s' command" % expected.cmd
    else:
        bound = {"below": "TTL below min-ttl", "above": "TTL above max-ttl"}[expected.kind]
        assert text.startswith(bound), text
        assert "in '%s' command" % expected.cmd in text, text


class Model:
    def __init__(self, clock: FakeClock, min_ttl_ms: int, max_ttl_ms: int, default_ttl_ms: int):
        self.clock = clock
        self.min_ttl_ms, self.max_ttl_ms, self.default_ttl_ms = min_ttl_ms, max_ttl_ms, default_ttl_ms
        self.data: dict[bytes, tuple[bytes, int]] = {}

    @property
    def now(self) -> int:
        return self.clock.now_ms

    def live(self, key: bytes):
        e = self.data.get(key)
        if e is None or self.now > e[1]:
            return None
        return e

    def live_keys(self) -> list[bytes]:
        return sorted(k for k in self.data if self.live(k) is not None)

    def deadline(self, cmd: str, amount: int | None, unit_ms: int, absolute: bool) -> int:
        now = self.now
        if amount is None:
            return now + self.default_ttl_ms
        if amount <= 0 or (unit_ms == 1000 and amount > LLONG_MAX // 1000):
            raise Refused("invalid", cmd)
        ms = amount * unit_ms
        if absolute:
            deadline, ttl = ms, ms - now
        else:
            if ms > LLONG_MAX - now:
                raise Refused("invalid", cmd)
            deadline, ttl = now + ms, ms
        if ttl < self.min_ttl_ms:
            raise Refused("below", cmd)
        if ttl > self.max_ttl_ms:
            raise Refused("above", cmd)
        return deadline

    def ttl(self, key: bytes, ms: bool) -> int:
        e = self.live(key)
        if e is None:
            return -2
        rem = e[1] - self.now
        return rem if ms else (rem + 500) // 1000     # Redis rounds TTL to nearest


class RepramModelMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.srv = None
        self.r = None

    @initialize(bounds=st.sampled_from([(0, 5, 3), (1, 5, 5), (1, 3600, 1), (0, 3600, 3600)]),
                protocol=st.sampled_from([2, 3]))
    def start(self, bounds, protocol):
        min_ttl, max_ttl, default_ttl = bounds
        self.clock = FakeClock()
        self.srv = ThreadedServer(["--min-ttl", str(min_ttl), "--max-ttl", str(max_ttl),
                                   "--default-ttl", str(default_ttl)], clock=self.clock)
        self.r = self.srv.client(protocol=protocol)
        self.model = Model(self.clock, min_ttl * 1000, max_ttl * 1000, default_ttl * 1000)

    def teardown(self):
        if self.r is not None:
            self.r.close()
        if self.srv is not None:
            self.srv.stop()

    def expect(self, fn, compute):
        """Run the model's ``compute`` (which may raise Refused) and the
        server's ``fn``; compare reply or error."""
        try:
            expected = compute()
        except Refused as refused:
            with pytest.raises(redis.ResponseError) as info:
                fn()
            assert_error_matches(info.value, refused)
            return
        assert fn() == expected

    # -- writes --------------------------------------------------------------

    @rule(key=KEYS, value=VALUES,
          ttl=st.one_of(st.none(), st.just("KEEPTTL"), st.tuples(st.just("EX"), EX_AMOUNTS),
                        st.tuples(st.just("PX"), PX_AMOUNTS),
                        st.tuples(st.sampled_from(["EXAT", "PXAT"]), AT_OFFSETS)),
          cond=st.sampled_from([None, "NX", "XX"]), get=st.booleans())
    def set(self, key, value, ttl, cond, get):
        m = self.model
        kwargs = {"nx": cond == "NX", "xx": cond == "XX", "get": get}
        if ttl == "KEEPTTL":
            kwargs["keepttl"] = True
        elif ttl is not None:
            opt, amount = ttl
            if opt == "EXAT":
                amount = (m.now + amount) // 1000
            elif opt == "PXAT":
                amount = m.now + amount
            kwargs[opt.lower()] = amount

        def compute():
            old = m.live(key)
            if ttl == "KEEPTTL":
                deadline = old[1] if old is not None else m.deadline("set", None, 1, False)
            elif ttl is None:
                deadline = m.deadline("set", None, 1, False)
            else:
                deadline = m.deadline("set", kwargs[opt.lower()], 1000 if opt in ("EX", "EXAT") else 1,
                                      opt in ("EXAT", "PXAT"))
            old_value = None if old is None else old[0]
            if (cond == "NX" and old is not None) or (cond == "XX" and old is None):
                return old_value if get else None
            m.data[key] = (value, deadline)
            return old_value if get else True

        self.expect(lambda: self.r.set(key, value, **kwargs), compute)

    @rule(key=KEYS, value=VALUES, amount=EX_AMOUNTS)
    def setex(self, key, value, amount):
        m = self.model

        def compute():
            m.data[key] = (value, m.deadline("setex", amount, 1000, False))
            return True
        self.expect(lambda: self.r.execute_command("SETEX", key, amount, value), compute)

    @rule(key=KEYS, value=VALUES, amount=PX_AMOUNTS)
    def psetex(self, key, value, amount):
        m = self.model

        def compute():
            m.data[key] = (value, m.deadline("psetex", amount, 1, False))
            return True
        self.expect(lambda: self.r.execute_command("PSETEX", key, amount, value), compute)

    @rule(key=KEYS, value=VALUES)
    def setnx(self, key, value):
        m = self.model

        def compute():
            if m.live(key) is not None:
                return False
            m.data[key] = (value, m.deadline("setnx", None, 1, False))
            return True
        self.expect(lambda: self.r.setnx(key, value), compute)

    @rule(pairs=st.dictionaries(KEYS, VALUES, min_size=1, max_size=3))
    def mset(self, pairs):
        m = self.model

        def compute():
            deadline = m.deadline("mset", None, 1, False)
            for k, v in pairs.items():
                m.data[k] = (v, deadline)
            return True
        self.expect(lambda: self.r.mset(pairs), compute)

    # -- reads ---------------------------------------------------------------

    @rule(key=KEYS)
    def get(self, key):
        e = self.model.live(key)
        assert self.r.get(key) == (None if e is None else e[0])

    @rule(keys=st.lists(KEYS, min_size=1, max_size=4))
    def mget(self, keys):
        expected = [None if self.model.live(k) is None else self.model.live(k)[0] for k in keys]
        assert self.r.mget(keys) == expected

    @rule(key=KEYS)
    def ttl(self, key):
        assert self.r.ttl(key) == self.model.ttl(key, ms=False)

    @rule(key=KEYS)
    def pttl(self, key):
        assert self.r.pttl(key) == self.model.ttl(key, ms=True)

    @rule(key=KEYS)
    def pexpiretime(self, key):
        e = self.model.live(key)
        assert self.r.pexpiretime(key) == (-2 if e is None else e[1])

    @rule(keys=st.lists(KEYS, min_size=1, max_size=4))
    def exists(self, keys):
        assert self.r.exists(*keys) == sum(1 for k in keys if self.model.live(k) is not None)

    @rule(key=KEYS)
    def strlen(self, key):
        e = self.model.live(key)
        assert self.r.strlen(key) == (0 if e is None else len(e[0]))

    # -- time ----------------------------------------------------------------

    @rule(ms=ADVANCES)
    def advance(self, ms):
        self.clock.advance(ms)

    @precondition(lambda self: self.model.live_keys())
    @rule(data=st.data(), past=st.sampled_from([0, 1]))
    def advance_to_deadline(self, data, past):
        """Move to exactly a live key's deadline (still visible, TTL 0), or
        1 ms past it (gone everywhere)."""
        key = data.draw(st.sampled_from(self.model.live_keys()), label="key")
        value, deadline = self.model.data[key]
        self.clock.now_ms = deadline + past
        if past:
            assert self.r.get(key) is None
            assert self.r.pttl(key) == -2
        else:
            assert self.r.get(key) == value
            assert self.r.pttl(key) == 0
            assert self.r.ttl(key) == 0

    # -- after every step ----------------------------------------------------

    @invariant()
    def listing_matches(self):
        if self.srv is None:
            return
        live = self.model.live_keys()
        assert self.r.dbsize() == len(live)
        assert sorted(self.r.scan_iter(count=2)) == live
        assert sorted(self.r.keys("*")) == live


RepramModelMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_model = RepramModelMachine.TestCase
