"""Node.js clients beyond redis-py: ioredis 6 and node-redis 6 (pinned in
tests/node/package.json) run tests/node/clients.js against a node started
here on port 0 -- connect with defaults, SET EX / GET, SCAN stream, pipeline,
MULTI with a refused command, MULTI MSET + EXPIRE, keyspace events, and
node-redis's clientSideCache (RESP3 + CLIENT TRACKING).  .ci/run installs
node/npm and runs ``npm ci``; this test runs ``npm ci`` itself if the
packages are missing, so the README's test command covers it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"
CHECKS = ["ioredis connect with defaults", "ioredis SET EX / GET", "ioredis scanStream",
          "ioredis pipeline", "ioredis MULTI with a refused command",
          "ioredis MULTI MSET + EXPIRE (set_many)", "ioredis keyspace events",
          "node-redis connect with defaults", "node-redis SET EX / GET", "node-redis scanIterator",
          "node-redis pipeline", "node-redis MULTI with a refused command",
          "node-redis keyspace events", "node-redis clientSideCache"]


def _node() -> str:
    node = shutil.which("node")
    assert node is not None and shutil.which("npm") is not None, \
        "node and npm are needed (apt-get install -y nodejs npm; .ci/run does)"
    if not (NODE_DIR / "node_modules" / "ioredis").is_dir() \
            or not (NODE_DIR / "node_modules" / "redis").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True,
                       timeout=300, stdout=subprocess.DEVNULL)
    return node


def test_ioredis_and_node_redis(node_proc):
    node = _node()
    n = node_proc()
    p = subprocess.run([node, "clients.js", str(n.port)], cwd=NODE_DIR, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.splitlines() == ["ok " + c for c in CHECKS] + ["all node client checks passed"]
    assert b"Traceback" not in n.log
