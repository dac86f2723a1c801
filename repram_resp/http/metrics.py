"""``GET /v1/metrics``: the node in Prometheus text exposition format (0.0.4).

REPRAM's Go node exports only peer and middleware counters; this adds what it
lacks (reference §5.1): keys, memory, commands, expiries, keyspace hits,
replication offsets and lag per peer, peer states, HTTP responses by code.
Label values are escaped as the format requires (backslash, quote, newline).
"""

from __future__ import annotations

import time


def _esc(v) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(front) -> bytes:
    s = front.server
    ks = s.keyspace
    now = s.clock()
    out: list[str] = []

    def metric(name, kind, help_, samples):
        out.append("# HELP %s %s" % (name, help_))
        out.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples:
            if labels:
                lab = ",".join('%s="%s"' % (k, _esc(v)) for k, v in labels.items())
                out.append("%s{%s} %s" % (name, lab, value))
            else:
                out.append("%s %s" % (name, value))

    metric("repram_keys", "gauge", "Live keys.", [({}, ks.dbsize(now))])
    metric("repram_used_memory_bytes", "gauge", "Memory accounted to keys and values.",
           [({}, ks.used_bytes)])
    metric("repram_maxmemory_bytes", "gauge", "maxmemory (0 = unlimited).",
           [({}, s.config.maxmemory_bytes)])
    from ..server import rss_bytes
    metric("repram_rss_bytes", "gauge", "Resident set size of the process.", [({}, rss_bytes())])
    metric("repram_uptime_seconds", "gauge", "Seconds since the node started.",
           [({}, int(time.time() - s.started_at))])
    metric("repram_connected_clients", "gauge", "RESP client connections.", [({}, len(s.clients))])
    metric("repram_http_connections", "gauge", "HTTP connections (counted in maxclients).",
           [({}, len(front.connections))])
    metric("repram_commands_processed_total", "counter", "RESP commands processed.",
           [({}, s.stat_commands)])
    metric("repram_expired_keys_total", "counter", "Keys that expired.", [({}, ks.expired_keys)])
    metric("repram_keyspace_hits_total", "counter", "Reads that found their key.", [({}, ks.hits)])
    metric("repram_keyspace_misses_total", "counter", "Reads that did not.", [({}, ks.misses)])
    metric("repram_http_responses_total", "counter", "HTTP responses by status code.",
           [({"code": c}, n) for c, n in sorted(front.api.stats.items())] or [({"code": 200}, 0)])
    repl = s.replication
    rf = s.config.replication_factor
    if repl is None:
        size, peers, offset, streaming = 1, [], 0, []
    else:
        size = repl.enclave_size()
        peers = sorted(repl.peers.values(), key=lambda p: p.node_id)
        offset = repl.replicator.offset
        streaming = repl.replicator.streaming
    metric("repram_enclave_size", "gauge", "Live nodes of this enclave, this one included.",
           [({}, size)])
    metric("repram_quorum", "gauge", "REPRAM write quorum floor(min(n, RF)/2)+1.",
           [({}, min(size, rf) // 2 + 1)])
    metric("repram_peers_active", "gauge", "Peers up or suspect (all enclaves), as REPRAM's.",
           [({}, sum(1 for p in peers if p.state in ("up", "suspect")))])
    states = {}
    for p in peers:
        states[p.state] = states.get(p.state, 0) + 1
    metric("repram_peers", "gauge", "Known peers by state.",
           [({"state": st}, states.get(st, 0)) for st in ("up", "suspect", "down", "new")])
    metric("repram_peer_up", "gauge", "1 if the peer is up.",
           [({"peer": p.node_id, "enclave": p.enclave}, int(p.state == "up")) for p in peers])
    metric("repram_replication_offset", "counter", "Writes numbered on this node's stream.",
           [({}, offset)])
    mono = time.monotonic()
    lag = []
    behind = []
    for lk in streaming:
        pid = lk.peer.node_id if lk.peer is not None else "?"
        behind.append(({"peer": pid}, max(0, offset - lk.acked)))
        lag.append(({"peer": pid}, "%.3f" % max(0.0, mono - lk.last_ack_at)))
    metric("repram_replication_behind_writes", "gauge",
           "Writes streamed to the peer and not yet acknowledged.", behind)
    metric("repram_replication_ack_age_seconds", "gauge",
           "Seconds since the peer last acknowledged.", lag)
    return ("\n".join(out) + "\n").encode()
