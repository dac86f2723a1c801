"""Helpers for the multi-node tests: fast failure-detection settings, start a
mesh of in-process nodes, read INFO replication, wait for conditions by
polling with a deadline (never a fixed sleep)."""

from __future__ import annotations

import time

import redis

# Short intervals so that a test sees suspect/down/reconnect in well under a
# second (the defaults are 250 / 1000 / 3000 ms).  Clustering is opt-in, so
# every node of these tests says cluster-enabled.
FAST = ["--cluster-enabled", "yes", "--cluster-ping-interval-ms", "40", "--cluster-suspect-after-ms", "300",
        "--cluster-down-after-ms", "800", "--cluster-reconnect-min-ms", "20",
        "--cluster-reconnect-max-ms", "200", "--cluster-rebootstrap-interval-ms", "300",
        "--cluster-handshake-timeout-ms", "1000"]


def wait_for(pred, timeout: float = 10.0, what: str = "condition", interval: float = 0.01):
    """Poll pred() until it returns a truthy value (returned) or fail."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s (last: %r)" % (timeout, what, last))


def cport(node) -> int:
    return node.server.replication.cport


def seed_of(node, host: str = "127.0.0.1") -> str:
    return "%s:%d" % (host, cport(node))


def client(node, host: str = "127.0.0.1", **kw) -> redis.Redis:
    return redis.Redis(host=host, port=node.port, socket_timeout=10, **kw)


def repl_info(node, host: str = "127.0.0.1") -> dict:
    r = client(node, host)
    try:
        return r.info("replication")
    finally:
        r.close()


def peers(node, host: str = "127.0.0.1") -> dict:
    """node id -> the fields of its peerN line."""
    info = repl_info(node, host)
    return {v["id"]: v for k, v in info.items() if k.startswith("peer") and isinstance(v, dict)}


def mesh_state(node):
    """(peers up with both links, streaming links that completed catch-up),
    read on the node's own loop thread."""
    def read():
        c = node.server.replication
        up = sum(1 for p in c.peers.values() if p.state == "up" and p.inn is not None
                 and p.out is not None)
        synced = sum(1 for lk in c.replicator.streaming if lk.synced)
        return up, synced
    return node.call(read)


def wait_mesh(nodes, timeout: float = 10.0) -> None:
    n = len(nodes) - 1
    for node in nodes:
        wait_for(lambda: mesh_state(node) == (n, n), timeout,
                 "node on port %d to link with %d peers" % (node.port, n))


def start_mesh(make_server, n: int, *extra, per_node=None):
    """n in-process nodes n1..nN; each seeds with the first; all linked."""
    nodes = []
    for i in range(n):
        args = [*FAST, "--node-id", "n%d" % (i + 1), *extra]
        if per_node is not None:
            args += list(per_node(i))
        if nodes:
            args += ["--peers", seed_of(nodes[0])]
        nodes.append(make_server(*args))
    wait_mesh(nodes)
    return nodes


def proxied_cluster(make_server, proxies, n, *extra, per_node=None):
    """n nodes on 127.0.0.11.. whose peer traffic all goes through one proxy
    in front of each node (announced as its cluster address)."""
    ps = proxies(n)
    nodes, hosts = [], []
    for i in range(n):
        ip = "127.0.0.%d" % (11 + i)
        args = [*FAST, "--node-id", "n%d" % (i + 1), "--bind", ip,
                "--cluster-announce-ip", "127.0.0.1", "--cluster-announce-port", str(ps[i].port),
                *extra]
        if per_node is not None:
            args += list(per_node(i))
        if i:
            args += ["--peers", "127.0.0.1:%d" % ps[0].port]
        node = make_server(*args)
        ps[i].set_target(ip, node.server.replication.cport)
        nodes.append(node)
        hosts.append(ip)
    wait_mesh(nodes)
    return nodes, ps, hosts
