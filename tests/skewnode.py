"""Start a repram-resp node whose clock runs REPRAM_TEST_CLOCK_OFFSET_MS off the
wall clock (tests and benchmarks only: the 'clock offset' fault).

    PYTHONPATH=<repo> REPRAM_TEST_CLOCK_OFFSET_MS=400 python3 tests/skewnode.py --port 0 ...

Everything else is ``python3 -m repram_resp``: same arguments, same logs.
"""

from __future__ import annotations

import os
import sys
import time

import repram_resp.server as server_module

OFFSET_MS = int(os.environ.get("REPRAM_TEST_CLOCK_OFFSET_MS", "0"))
_Server = server_module.Server


def skewed_ms() -> int:
    return time.time_ns() // 1_000_000 + OFFSET_MS


class SkewedServer(_Server):
    def __init__(self, config, clock=None):
        super().__init__(config, clock=skewed_ms)


server_module.Server = SkewedServer

if __name__ == "__main__":
    from repram_resp.cli import main
    sys.exit(main())
