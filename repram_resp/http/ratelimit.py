"""REPRAM's per-IP rate limit and scanner filter for the HTTP API
(reference/repram-reference-behaviour.md §4.2-4.4), both opt-in.

Rate limit (``http-rate-limit``, requests/s per client IP; 0 = off, the
default): a token bucket per IP as REPRAM's -- ``rate`` tokens a second,
``burst`` = 2 x rate, a new bucket starts full, a refill adds
``floor(elapsed x rate)`` tokens and moves the refill time only when it added
one (so the fractional remainder is lost, as in REPRAM), each request takes a
token or gets ``429 Too Many Requests`` / ``Rate limit exceeded``.
Differences from REPRAM, on purpose:
* 0 turns it off (REPRAM's 0 refuses every request);
* the table is bounded: at most ``http-rate-limit-max-ips`` buckets, least
  recently used first out.  A bucket idle long enough to be full again is
  the same as a new one, so forgetting it changes nothing; the sweep drops
  those, a bounded number per call, and a new IP at the cap evicts the least
  recently used (which, if it was not full, gets a fresh bucket next time);
* the client IP is the socket's, or with ``http-trust-proxy yes`` the first
  ``X-Forwarded-For`` entry, then ``X-Real-IP`` (REPRAM_TRUST_PROXY).

Scanner filter (``http-block-scanners``, default no): a User-Agent containing
one of REPRAM's six scanner names (case-insensitive) gets ``403 Forbidden``.
Off by default: any client can send another User-Agent, so it stops only the
politest scanners; it is here because REPRAM's nodes have it, for operators
who want the same answers.
"""

from __future__ import annotations

import re
from collections import OrderedDict

SCANNERS = (b"sqlmap", b"nikto", b"nmap", b"masscan", b"gobuster", b"dirbuster")
is_scanner = re.compile(b"|".join(SCANNERS), re.IGNORECASE).search

SWEEP_BATCH = 1000          # idle buckets dropped per sweep call at most


class RateLimiter:
    """Token buckets by client IP.  ``allow(ip, now)``: now in seconds
    (monotonic).  Buckets are ``[tokens, last_refill]`` in an OrderedDict
    kept in least-recently-used order."""

    def __init__(self, rate: int, max_ips: int):
        self.rate = rate
        self.burst = 2 * rate
        self.max_ips = max_ips
        self.buckets: OrderedDict = OrderedDict()    # O(1) move-to-end and pop-oldest
        self.limited = 0         # requests refused (429)
        self.evicted = 0         # buckets dropped at the cap while not full

    def allow(self, ip, now: float) -> bool:
        buckets = self.buckets
        b = buckets.get(ip)
        if b is None:
            while len(buckets) >= self.max_ips:
                _, old = buckets.popitem(last=False)
                if not self._full(old, now):
                    self.evicted += 1
            b = buckets[ip] = [self.burst, now]
        else:
            buckets.move_to_end(ip)  # most recently used last
            add = int((now - b[1]) * self.rate)
            if add > 0:
                b[0] = min(self.burst, b[0] + add)
                b[1] = now
        if b[0] >= 1:
            b[0] -= 1
            return True
        self.limited += 1
        return False

    def _full(self, b, now: float) -> bool:
        return b[0] + (now - b[1]) * self.rate >= self.burst

    def sweep(self, now: float) -> None:
        """Forget buckets that are full again (idle), oldest first, at most
        SWEEP_BATCH per call."""
        buckets = self.buckets
        for _ in range(min(SWEEP_BATCH, len(buckets))):
            ip, b = next(iter(buckets.items()))
            if not self._full(b, now):
                break       # the rest were used more recently
            del buckets[ip]


MAX_IP_CHARS = 64          # a forwarded "IP" is cut to this (IPv6 text is at most 45)


def client_ip(peer_ip, headers: dict, trust_proxy: bool):
    """The IP a request is counted for (a header's value cut to MAX_IP_CHARS,
    so the bucket table's memory stays bounded by http-rate-limit-max-ips)."""
    if trust_proxy:
        fwd = headers.get(b"x-forwarded-for")
        if fwd:
            first = fwd.split(b",", 1)[0].strip()
            if first:
                return first[:MAX_IP_CHARS].decode("latin-1")
        real = headers.get(b"x-real-ip")
        if real and real.strip():
            return real.strip()[:MAX_IP_CHARS].decode("latin-1")
    return peer_ip
