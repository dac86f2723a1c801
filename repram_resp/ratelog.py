"""Log lines that clients can trigger, rate-limited into summaries.

Rule (issue 7): a client must not be able to make the node write a log line
per request.  Every such event goes through a ``RateLog``: the first one of a
kind is logged at once, later ones within ``every_s`` are only counted, and
the next event after the window logs one summary line with the count.
Tracebacks are logged at most once per window per kind (``exc_info``), so a
bug that client input can reach cannot flood the log either.
"""

from __future__ import annotations

import logging
import time

SUMMARY_EVERY_S = 10.0       # at most one line per kind and per this many seconds
_MAX_KINDS = 256             # distinct kinds remembered (oldest forgotten)


class RateLog:
    def __init__(self, logger: logging.Logger, every_s: float = SUMMARY_EVERY_S,
                 clock=time.monotonic):
        self.log = logger
        self.every_s = every_s
        self.clock = clock
        self._kinds: dict = {}      # kind -> [last logged at, suppressed count]

    def event(self, level: int, kind, msg: str, *args, exc_info: bool = False) -> bool:
        """Log msg % args now, or count it; returns True when a line was written."""
        now = self.clock()
        st = self._kinds.get(kind)
        if st is not None and now - st[0] < self.every_s:
            st[1] += 1
            return False
        suppressed = st[1] if st is not None else 0
        if st is None and len(self._kinds) >= _MAX_KINDS:
            self._kinds.pop(next(iter(self._kinds)))
        self._kinds[kind] = [now, 0]
        if suppressed:
            msg += " (and %d more like it in the last %.0f s)" % (suppressed, self.every_s)
        self.log.log(level, msg, *args, exc_info=exc_info)
        return True

    def suppressed(self, kind) -> int:
        st = self._kinds.get(kind)
        return st[1] if st is not None else 0
