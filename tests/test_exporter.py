"""Prometheus' redis_exporter (Debian's prometheus-redis-exporter) scraping a
node and the real redis-server: the metric families operators look at exist
for us, with values that mean something."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request

from rawresp import free_port

EXPORTER = "prometheus-redis-exporter"

# What operators look at (issue 10): per-command calls / time / failures /
# rejections, errors, latency percentiles, CPU, network, memory peak,
# slowlog, reads/writes processed, plus the basics.
NEEDED = [
    "redis_up", "redis_commands_total", "redis_commands_duration_seconds_total",
    "redis_commands_failed_calls_total", "redis_commands_rejected_calls_total", "redis_errors_total",
    "redis_latency_percentiles_usec", "redis_cpu_sys_seconds_total", "redis_cpu_user_seconds_total",
    "redis_cpu_sys_children_seconds_total", "redis_net_input_bytes_total",
    "redis_net_output_bytes_total", "redis_memory_used_peak_bytes", "redis_memory_used_bytes",
    "redis_memory_max_bytes", "redis_slowlog_length", "redis_slowlog_last_id",
    "redis_last_slow_execution_duration_seconds", "redis_total_reads_processed",
    "redis_total_writes_processed", "redis_connected_clients", "redis_commands_processed_total",
    "redis_keyspace_hits_total", "redis_keyspace_misses_total", "redis_expired_keys_total",
    "redis_db_keys", "redis_db_keys_expiring", "redis_client_recent_max_input_buffer_bytes",
    "redis_client_recent_max_output_buffer_bytes",
    "redis_mem_clients_normal", "redis_unexpected_error_replies",
]


def scrape(redis_port: int) -> str:
    exe = shutil.which(EXPORTER)
    assert exe, "apt-get install -y prometheus-redis-exporter (.ci/run does)"
    web = free_port()
    proc = subprocess.Popen([exe, "-redis.addr", "redis://127.0.0.1:%d" % redis_port,
                             "-web.listen-address", "127.0.0.1:%d" % web],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=10).read().decode()
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "exporter did not serve"
                time.sleep(0.05)     # polling a starting process, bounded by the deadline
    finally:
        proc.terminate()
        proc.wait(10)


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


def value(text: str, metric: str) -> float:
    m = re.search(r"^%s (\S+)$" % re.escape(metric), text, re.M)
    assert m, metric
    return float(m.group(1))


def traffic(r):
    r.config_set("slowlog-log-slower-than", 0)
    r.set("e:1", "v", ex=100)
    r.get("e:1")
    r.get("e:none")
    try:
        r.execute_command("GET")
    except Exception:
        pass
    r.config_set("slowlog-log-slower-than", 10000)


def test_exporter_families_against_redis(server, real_redis):
    import redis
    traffic(server.client())
    rr = redis.Redis(port=real_redis)
    rr.flushall()
    traffic(rr)
    ours, theirs = scrape(server.port), scrape(real_redis)
    mine, real = families(ours), families(theirs)
    print("redis_exporter metric families: ours %d, redis-server %d" % (len(mine), len(real)))
    missing = [f for f in NEEDED if f not in mine]
    assert not missing, missing
    assert [f for f in NEEDED if f not in real] == []        # the same names Redis gives
    # What is left is persistence, defrag, allocator and replica-backlog state: none exists here.
    assert len(mine) >= 0.7 * len(real), (len(mine), len(real), sorted(real - mine))
    assert value(ours, "redis_up") == 1
    assert value(ours, 'redis_commands_total{cmd="set"}') >= 1
    assert value(ours, 'redis_commands_rejected_calls_total{cmd="get"}') == 1
    assert value(ours, 'redis_errors_total{err="ERR"}') >= 1
    assert value(ours, "redis_slowlog_length") >= 2
    assert value(ours, "redis_net_input_bytes_total") > 0
    assert value(ours, 'redis_db_keys{db="db0"}') == 1
