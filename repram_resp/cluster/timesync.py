"""Clock offset between two nodes, measured NTP-style on each link.

One sample is four timestamps in microseconds: t1 (we send), t2 (peer
receives), t3 (peer sends), t4 (we receive).  Then

    theta = ((t2 - t1) + (t3 - t4)) / 2     peer clock minus ours (estimate)
    delta = (t4 - t1) - (t3 - t2)           round trip, less the peer's time

and the true offset lies within theta +- delta/2 whatever the path asymmetry
(assuming the clocks tick at the same rate during the exchange).  Samples come
from the handshake and from every PING/PONG; we keep the last ``WINDOW`` and
use the one with the smallest delta (the NTP clock filter: queueing delay
only ever widens the interval).

Deadline rule.  A peer's absolute deadline D (its clock, ms) becomes, in our
clock, the *earliest* instant it could mean:

    local = floor((D * 1000 - theta - delta / 2) / 1000) - QUANTUM_MS

so a replica expires no later than the origin (REPRAM's reference restarts
the TTL on receipt; replicas outlived the origin).  ``QUANTUM_MS`` covers
millisecond clocks and integer-ms deadlines.  The price is that a replica
may expire up to ``delta + 2 * QUANTUM_MS`` earlier than the origin (about
1-3 ms on a LAN).  Until a link has a sample, nothing from it is applied.
"""

from __future__ import annotations

from collections import deque

WINDOW = 8
QUANTUM_MS = 1


class OffsetEstimator:
    __slots__ = ("samples", "theta_us", "delta_us", "adjust_ms")

    def __init__(self) -> None:
        self.samples: deque = deque(maxlen=WINDOW)
        self.theta_us: float | None = None
        self.delta_us: float | None = None
        # Add to a peer's deadline (ms) to get ours: see the module header.
        self.adjust_ms: int | None = None

    def add(self, t1: int, t2: int, t3: int, t4: int) -> None:
        delta = (t4 - t1) - (t3 - t2)
        if delta < 0:
            delta = 0       # clock resolution coarser than the exchange
        theta = ((t2 - t1) + (t3 - t4)) / 2
        self.samples.append((delta, theta))
        delta, theta = min(self.samples)
        self.theta_us, self.delta_us = theta, delta
        self.adjust_ms = int((-theta - delta / 2) // 1000) - QUANTUM_MS

    @property
    def ready(self) -> bool:
        return self.adjust_ms is not None

    def to_local_ms(self, remote_ms: int) -> int:
        return remote_ms + self.adjust_ms

    def uncertainty_ms(self) -> float:
        return 0.0 if self.delta_us is None else self.delta_us / 2000 + QUANTUM_MS
