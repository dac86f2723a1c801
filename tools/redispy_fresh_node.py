"""pytest plugin: run redis-py's own test suite against a fresh repram-resp node per test.

Load it into a checkout of redis-py's sources (see docs/redis-py-suite.md):

    cd /path/to/redis-py && python3 -m pytest -p redispy_fresh_node ...   (with tools/ on PYTHONPATH)

What it does, and nothing else (it contains no redis-py code):

* ``pytest_configure``: starts a *probe* node and points ``--redis-url`` at it, so
  redis-py's ``pytest_sessionstart`` reads INFO (version, arch_bits, cluster_enabled) from a
  real node.  The probe lives for the whole session (session-scoped fixtures use it).
* an autouse function-scoped fixture: before every test a fresh node is made and
  ``--redis-url`` pointed at it; after the test it is stopped.  By default
  (``REPRAM_NODE=thread``) the node is a new ``repram_resp.server.Server`` on its own event loop
  in a thread of this process, imported from ``REPRAM_TREE`` (milliseconds to start);
  ``REPRAM_NODE=process`` starts ``python3 -m repram_resp`` per test instead (``REPRAM_SPARES``,
  default 4, nodes kept starting ahead; about 1 s of wall time per test on a loaded machine).
* during a test's *teardown* only, ``Redis.flushdb`` is a no-op: redis-py's client fixtures
  FLUSHDB on teardown, which REPRAM refuses by design (no DELETE); the node is discarded anyway.
* ``EXCLUDE``: (regex on the test's node id, reason) pairs; matching tests are deselected and
  counted per reason in the terminal summary.
* ``CATEGORIES`` / ``NODEID_CATEGORIES``: each failing test is classified (by design: which README
  rule; environment; or NOT BY DESIGN, listed by id) in the terminal summary.
* redis-py's session-wide ``tracemalloc`` is turned off (``REPRAM_TRACEMALLOC=1`` keeps it).
* ``REPRAM_RESULTS=<file>``: one JSON line per test phase (nodeid, outcome, phase, message).

Nodes listen on 127.0.0.1, port 0; ``REPRAM_TREE`` (default: the repo this file lives in) is the
tree they import (process nodes run with it as cwd); extra directives in ``REPRAM_NODE_ARGS``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

TREE = os.environ.get("REPRAM_TREE") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NODE_ARGS = shlex.split(os.environ.get("REPRAM_NODE_ARGS", ""))
READY_RE = re.compile(rb"ready on \S+ port (\d+)")
START_DEADLINE = 20.0
IN_PROCESS = os.environ.get("REPRAM_NODE", "thread") == "thread"  # "process": a subprocess per test
SPARES = int(os.environ.get("REPRAM_SPARES", "4"))  # nodes kept starting ahead of the tests

# (pattern searched in the node id, reason).  Reasons name a README rule or the environment.
EXCLUDE = [
    # ---- whole files: other deployments, modules, other data types, by-design refusals
    (r"test_cluster|cluster_transaction|test_multidb|test_scenario|test_maint_notifications",
     "Redis Cluster / multi-database deployments: a single node runs with cluster-enabled off"),
    (r"test_sentinel", "Sentinel deployment: not a REPRAM topology"),
    (r"test_json|test_search|test_timeseries|test_bloom|test_vsets|test_graph",
     "modules (RedisJSON, search, timeseries, bloom, vector sets): Redis Stack only"),
    (r"test_hash\.py|test_himport", "hashes: REPRAM stores strings only (README: data model)"),
    (r"test_scripting|test_function\.py",
     "EVAL/SCRIPT/FUNCTION: refused by design, the store runs no server-side logic (README: scripting)"),
    (r"test_ssl|test_auth/|test_credentials|test_http/|test_observability|test_cwe_404",
     "environment: needs TLS certificates on port 6666, an IdP (redis_entraid), or proxies redis-py's CI sets up"),
    # ---- inside test_commands / pipelines: other data types
    (r"::test_(b?[lr]pop|blmove|blmpop|lmpop|l(index|insert|len|move|mpop|pop|pos|push|pushx|range|rem|set|trim)|r(push|pop)[a-z]*|rpoplpush|brpoplpush)(_[a-z_]*)?\b|::test_sort",
     "lists and SORT: REPRAM stores strings only"),
    (r"::test_h(set|get|del|exists|incr|incrby|incrbyfloat|keys|len|mget|mset|setnx|vals|scan|strlen|randfield|expire|pexpire|persist|ttl|pttl|getdel|getex|setex|getall|expireat|pexpireat|expiretime|pexpiretime|scan_iter)(_[a-z_]*)?\b|hset|hgetall",
     "hashes: REPRAM stores strings only"),
    (r"::test_s(add|card|diff|inter|ismember|members|mismember|move|pop|randmember|rem|union|scan|intercard)",
     "sets: REPRAM stores strings only"),
    (r"::test_[bz][a-z_]*z|::test_z[a-z_]+|zset|zadd|zrange|zscan",
     "sorted sets: REPRAM stores strings only"),
    (r"::test_x[a-z_]+|stream", "streams: REPRAM stores strings only"),
    (r"::test_geo", "geo (sorted sets): REPRAM stores strings only"),
    (r"::test_pf|hyperloglog", "HyperLogLog: REPRAM stores strings only"),
    (r"::test_(bit|setbit|getbit)", "bitmaps (SETBIT/BITFIELD/BITOP write in place): REPRAM writes are whole-value PUTs"),
    # ---- by-design refusals (README: REPRAM rules)
    (r"::test_(delete|del|unlink|getdel|flushdb|flushall|swapdb|move|rename|copy)\b|_delete|::test_(delitem|delete_items)",
     "DEL/UNLINK/GETDEL/FLUSH*/RENAME/COPY/MOVE/SWAPDB: no DELETE, keys only expire (README: REPRAM rules)"),
    (r"::test_(p?expire|persist|p?expireat)(_[a-z_]*)?\b|::test_getex",
     "EXPIRE/PERSIST/GETEX outside the write's transaction: a key's TTL is fixed at its PUT (README: REPRAM rules)"),
    (r"::test_(incr|decr|incrby|decrby|incrbyfloat|append|setrange)(_[a-z_]*)?\b",
     "INCR/DECR/APPEND/SETRANGE: disabled by design, REPRAM values are opaque bytes it never interprets"),
    (r"::test_(select|swapdb)", "SELECT n>0: one keyspace, database 0 only (README: one database)"),
]


# How a failure is classified, from its first failing phase's message: (regex, category).
# "by design: ..." names the README rule; "environment: ..." is redis-py's CI setup, not ours.
# Anything unmatched is "NOT BY DESIGN" and listed by node id in the summary.
_DATA_TYPES = ("LPUSH|RPUSH|LPOP|RPOP|BLPOP|BRPOP|BLMOVE|LMOVE|LRANGE|LLEN|LPOS|SADD|SMEMBERS|SINTERCARD|"
               "ZADD|ZRANGE|ZSCORE|XADD|XREAD|XRANGE|XGROUP|HSET|HGET|HGETALL|HMSET|HEXPIRE|GETBIT|"
               "SETBIT|BITCOUNT|BITOP|BITFIELD|BITFIELD_RO|BITPOS|PFADD|PFCOUNT|GEOADD|SORT|SORT_RO")
CATEGORIES = [
    (r"unknown command '(%s)'" % _DATA_TYPES,
     "by design: other data types do not exist (README: 'Other data types do not exist')"),
    (r"(XREAD|SORT) command doesn't exist in Redis commands",
     "by design: other data types do not exist (COMMAND lists strings only)"),
    (r"is disabled: REPRAM has no deletion",
     "by design: no deletion (DEL/UNLINK/FLUSH*/RENAME... disabled)"),
    (r"is disabled: REPRAM TTLs change only by overwriting",
     "by design: TTLs change only by overwriting (EXPIRE/PERSIST/GETEX options disabled)"),
    (r"is disabled: REPRAM values are opaque bytes",
     "by design: values are opaque bytes (INCR/APPEND/SETRANGE disabled)"),
    (r"is disabled: REPRAM runs no server-side code",
     "by design: no server-side code (EVAL/EVALSHA/SCRIPT/FUNCTION disabled; redis-py Lock "
     "release/extend use EVALSHA)"),
    (r"assert 3600 == -1|assert 3600000 == -1",
     "by design: every key expires (a write without TTL gets default-ttl, TTL is never -1)"),
    (r"DB index is out of range", "by design: one database (SELECT 0 only)"),
    (r"is disabled: REPRAM is ephemeral",
     "by design: nothing is persisted (SAVE/BGSAVE/BGREWRITEAOF disabled)"),
    (r"is disabled: the nodes of an enclave are equals",
     "by design: an enclave of equals (REPLICAOF/SLAVEOF disabled)"),
    (r"hash-max-listpack|list-max-listpack|set-max-intset|zset-max-listpack",
     "by design: other data types do not exist (their CONFIG parameters neither)"),
    (r"DEBUG command not allowed",
     "environment: needs DEBUG (redis-py's CI runs Redis with enable-debug-command; "
     "we refuse it as Redis does by default)"),
    (r"(localhost|127\.0\.0\.1):63\d\d\b",
     "environment: test hard-codes a localhost port (6379, or 6380 for a replica) instead of "
     "--redis-url"),
    (r"No SSL certificates found", "environment: needs redis-py's TLS certificates (dockers/)"),
    (r"MasterNotFoundError|No master found", "environment: needs Sentinel"),
]


# Failures whose message alone does not say why; each was read in redis-py's test source.
NODEID_CATEGORIES = [
    (r"::test_command_count$|::TestRedisCommands::test_command$|::test_command_list$",
     "by design: COMMAND lists our commands only (README: introspection), redis-py wants >= 100/300"),
    (r"::test_connect_with_retries$",
     "environment: test hard-codes a localhost port (6379, or 6380 for a replica) instead of "
     "--redis-url"),
    (r"::test_command_getkeysandflags$",
     "by design: other data types do not exist (COMMAND GETKEYSANDFLAGS LMOVE: no such command)"),
]


def categorise(msg, nodeid=""):
    for pattern, category in NODEID_CATEGORIES:
        if re.search(pattern, nodeid):
            return category
    for pattern, category in CATEGORIES:
        if re.search(pattern, msg):
            return category
    return "NOT BY DESIGN"


class _Outcomes:
    tests = {}          # nodeid -> {"passed"|"skipped"|"failed": first failing message}


class _Node:
    def __init__(self):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repram_resp", "--port", "0", "--bind", "127.0.0.1", *NODE_ARGS],
            cwd=TREE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.port = None
        self.log = b""
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            if self.port is None:
                self.log += line
                m = READY_RE.search(line)
                if m:
                    self.port = int(m.group(1))
                    self._ready.set()
        self._ready.set()

    def wait(self):
        if not self._ready.wait(START_DEADLINE) or self.port is None:
            self.stop()
            raise RuntimeError("repram-resp node did not start: %r" % self.log[-2000:])
        return self

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class _ThreadNode:
    """A node in this process: a fresh ``repram_resp.server.Server`` on its own event loop in a
    thread (as our own suite's ``server`` fixture).  Starting one costs milliseconds instead of
    a Python start-up, which is what makes a node per test affordable on a loaded machine."""

    def __init__(self):
        if TREE not in sys.path:
            sys.path.insert(0, TREE)
        import asyncio
        from repram_resp.config import load
        from repram_resp.server import Server
        self._asyncio = asyncio
        self.server = Server(load(["--port", "0", "--bind", "127.0.0.1", *NODE_ARGS]))
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error = None
        self.port = None
        self.thread = threading.Thread(target=self._run, daemon=True, name="repram-node")
        self.thread.start()

    def _run(self):
        asyncio = self._asyncio
        asyncio.set_event_loop(self.loop)
        self._halt = asyncio.Event()
        try:
            self.loop.run_until_complete(self.server.start())
            self.port = self.server.port
        except BaseException as e:  # surfaced by wait()
            self._error = e
            self._started.set()
            return
        self._started.set()
        self.loop.run_until_complete(self._halt.wait())
        try:
            self.loop.run_until_complete(asyncio.wait_for(self.server.stop(), 10))
        finally:
            self.loop.close()

    def wait(self):
        if not self._started.wait(START_DEADLINE) or self._error is not None:
            raise RuntimeError("repram-resp node did not start: %r" % (self._error,))
        return self

    url = _Node.url

    def stop(self):
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self._halt.set)
        self.thread.join(15)


class _State:
    probe = None
    spares = []
    excluded = Counter()
    results = None


def _take():
    """The oldest spare node; the pool is topped up first, so nodes start while tests run."""
    if IN_PROCESS:
        return _ThreadNode().wait()
    while len(_State.spares) < SPARES + 1:
        _State.spares.append(_Node())
    return _State.spares.pop(0).wait()


def _stop_later(node):
    threading.Thread(target=node.stop, daemon=True).start()


def pytest_configure(config):
    if os.environ.get("REPRAM_TRACEMALLOC") != "1":
        # redis-py's conftest starts tracemalloc for the session (a leak diagnostic that slows
        # every line of Python ~2x, the in-process nodes too); it changes no test's result.
        import tracemalloc
        tracemalloc.start = lambda *a, **k: None
    _State.probe = _Node().wait()
    config.option.redis_url = _State.probe.url
    path = os.environ.get("REPRAM_RESULTS")
    if path:
        _State.results = open(path, "w")


def pytest_unconfigure(config):
    for n in _State.spares + [_State.probe]:
        if n is not None:
            n.stop()
    if _State.results:
        _State.results.close()


def exclusion_reason(nodeid):
    for pattern, reason in EXCLUDE:
        if reason is not None and re.search(pattern, nodeid):
            return reason
    return None


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        reason = exclusion_reason(item.nodeid)
        if reason is None:
            keep.append(item)
        else:
            _State.excluded[reason] += 1
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    tr.section("repram-resp exclusions (deselected, by reason)")
    for reason, n in _State.excluded.most_common():
        tr.write_line("%5d  %s" % (n, reason))
    tests = _Outcomes.tests
    outcomes = Counter(t["outcome"] for t in tests.values())
    tr.section("repram-resp outcome (per test; a failure in any phase counts once)")
    tr.write_line("run %d: passed %d, skipped %d, failed %d" % (
        len(tests), outcomes["passed"], outcomes["skipped"], outcomes["failed"]))
    cats = Counter()
    notdesign = []
    for nodeid, t in tests.items():
        if t["outcome"] == "failed":
            c = categorise(t["msg"], nodeid.split("[")[0])
            cats[c] += 1
            if c == "NOT BY DESIGN":
                notdesign.append("%s  -- %s" % (nodeid, t["msg"][:160]))
    for c, n in sorted(cats.items()):
        tr.write_line("%5d  %s" % (n, c))
    for line in notdesign:
        tr.write_line("  not by design: " + line)


@pytest.fixture(autouse=True)
def _repram_fresh_node(request):
    node = _take()
    old = request.config.option.redis_url
    request.config.option.redis_url = node.url
    try:
        yield node
    finally:
        request.config.option.redis_url = old
        _stop_later(node)


def _noop_flushdb(self, *args, **kwargs):
    return True


async def _anoop_flushdb(self, *args, **kwargs):
    return True


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    import redis
    import redis.asyncio
    saved = [(cls, cls.__dict__.get("flushdb")) for cls in (redis.Redis, redis.asyncio.Redis)]
    redis.Redis.flushdb = _noop_flushdb
    redis.asyncio.Redis.flushdb = _anoop_flushdb
    try:
        yield
    finally:
        for cls, fn in saved:
            if fn is None:
                del cls.flushdb
            else:
                cls.flushdb = fn


def pytest_runtest_logreport(report):
    t = _Outcomes.tests.setdefault(report.nodeid, {"outcome": "passed", "msg": ""})
    if report.outcome == "failed" and t["outcome"] != "failed":
        crash = getattr(report.longrepr, "reprcrash", None)
        msg = crash.message if crash is not None else str(report.longrepr)[-500:]
        t.update(outcome="failed", msg=msg.splitlines()[0] if msg else "")
    elif report.outcome == "skipped" and t["outcome"] == "passed":
        t["outcome"] = "skipped"
    if _State.results is None:
        return
    if report.when == "call" or report.outcome != "passed":
        msg = ""
        if report.outcome == "failed":
            crash = getattr(report.longrepr, "reprcrash", None)
            msg = crash.message if crash is not None else str(report.longrepr)[-500:]
        elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
            msg = report.longrepr[2]
        _State.results.write(json.dumps({"nodeid": report.nodeid, "when": report.when,
                                         "outcome": report.outcome,
                                         "msg": msg.splitlines()[0][:300] if msg else ""}) + "\n")
        _State.results.flush()
