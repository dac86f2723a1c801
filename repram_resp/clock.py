"""Time: the wall clock in integer Unix milliseconds, a fake for tests, and the
hybrid logical clock that versions writes.

Every command reads the clock once (``now = clock()``) and uses that reading
for all its checks, so a command sees one consistent instant.
"""

from __future__ import annotations

import time
import zlib


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class FakeClock:
    """A clock tests move by hand: ``clock()`` returns ``clock.now_ms``."""

    def __init__(self, now_ms: int = 1_700_000_000_000):
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


# version = ((physical_ms << 16 | logical) << 16) | node_tag
# * physical_ms / logical: a hybrid logical clock, so versions respect
#   causality across nodes even with clock skew, and stay close to wall time;
# * node_tag: 16 bits of the origin's node id, so two nodes never produce the
#   same version for concurrent writes unless their tags collide (then the
#   value bytes break the tie; see replication's apply rule).
LOGICAL_BITS = 16
TAG_BITS = 16


def node_tag(node_id: str) -> int:
    return zlib.crc32(node_id.encode()) & ((1 << TAG_BITS) - 1)


class HLC:
    def __init__(self, node_id: str, clock=wall_ms):
        self.tag = node_tag(node_id)
        self.clock = clock
        self._last = 0          # (physical << LOGICAL_BITS) | logical

    def tick(self, now_ms: int) -> int:
        """Version for a local write at now_ms."""
        t = now_ms << LOGICAL_BITS
        last = self._last
        self._last = t if t > last else last + 1
        return (self._last << TAG_BITS) | self.tag

    def observe(self, version: int) -> None:
        """Merge a remote version so later local writes order after it."""
        hl = version >> TAG_BITS
        if hl > self._last:
            self._last = hl

    @staticmethod
    def physical_ms(version: int) -> int:
        return version >> (TAG_BITS + LOGICAL_BITS)
