"""A repram-resp node that injects a divergence on SIGUSR1 (benchmarks only).

    python3 benchmarks/divergent_node.py --port 0 ...      (same arguments as python3 -m repram_resp)

On its n-th SIGUSR1 (n = 0, 1, ...) it writes 100 keys ``div:<node-id>:n:0`` ..
``:99`` (value ``v``, 600 s) straight into its own keyspace -- fresh versions,
not streamed to anyone -- and plants a version floor over ``victim:<node-id>:n`` newer than
any write of it, as if its newer write had expired here.  Only anti-entropy can
tell the other nodes.  Used by benchmarks/repair_bound.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import repram_resp.server as server_module  # noqa: E402

_Server = server_module.Server


class DivergentServer(_Server):
    planted = 0

    async def start(self):
        await super().start()
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self._plant)

    def _plant(self):
        n = self.planted
        self.planted += 1
        nid = self.node_id.encode()
        now = self.clock()
        ks = self.keyspace
        for j in range(100):
            ks.put(b"div:%s:%d:%d" % (nid, n, j), b"v", now + 600_000, None, now)
        ks.apply_floor(b"victim:%s:%d" % (nid, n), self.hlc.tick(now), now)


server_module.Server = DivergentServer

if __name__ == "__main__":
    from repram_resp.cli import main
    sys.exit(main())
