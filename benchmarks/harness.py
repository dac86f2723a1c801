"""Reusable helpers for repram-resp benchmark scripts (stdlib only, Linux).

Import from a script living in ``benchmarks/`` and run from the repo root as
``python benchmarks/<script>.py``; the script's directory is then ``sys.path[0]``
so ``from harness import ...`` just works.

What is here:

* :func:`free_port` -- ask the OS for a free loopback TCP port.
* :func:`start_server` -- start an arbitrary server command (template with a
  ``{port}`` placeholder), optionally pinned to a CPU with ``taskset``, wait
  until it answers ``PING`` with ``+PONG`` and return a :class:`ServerProcess`
  (``.port``, ``.pid``, ``.stop()``, ``.cpu_seconds()``, ``.rss_bytes()``).
  It is also a context manager.
* :func:`wait_ready` -- the PING/PONG readiness loop on its own.
* :func:`resp_command` -- a tiny blocking RESP client for probes / setup
  (``DBSIZE``, ``INFO``, prefilling keys, ...).
* :func:`proc_cpu_seconds`, :func:`proc_rss_bytes` -- /proc sampling.
* :func:`run_redis_benchmark` -- run ``redis-benchmark --csv`` and parse it.
* :func:`machine_facts` -- uname, CPU model, versions, git commit, ...
* :func:`install_sigterm_handler` -- turn SIGTERM into KeyboardInterrupt so
  ``finally:`` / ``with`` blocks stop the servers.
"""

from __future__ import annotations

import csv
import io
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

__all__ = [
    "CLK_TCK",
    "CSV_HEADER",
    "BenchmarkError",
    "BenchResult",
    "RespError",
    "ServerExited",
    "ServerNotReady",
    "ServerProcess",
    "build_command",
    "cpu_model",
    "descendant_pids",
    "free_port",
    "git_commit",
    "install_sigterm_handler",
    "machine_facts",
    "median",
    "parse_benchmark_csv",
    "other_cpu_seconds",
    "pin_command",
    "process_cpu_snapshot",
    "proc_cpu_seconds",
    "proc_rss_bytes",
    "resp_command",
    "resp_pipeline",
    "run_redis_benchmark",
    "start_server",
    "steal_fraction",
    "system_cpu_ticks",
    "wait_for_quiet",
    "wait_ready",
]

CLK_TCK: int = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------
# ports, commands
# --------------------------------------------------------------------------

def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free a moment ago (bind to port 0, read, close).

    There is an inherent race between closing the probe socket and the server
    binding it; :func:`start_server` retries with a fresh port if the server
    exits during startup.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def build_command(template: str | Sequence[str], **subst: Any) -> list[str]:
    """Split a command template and substitute ``{name}`` placeholders.

    ``template`` is a shell-like string (split with :func:`shlex.split`, so
    ``--save ""`` yields an empty argument) or an already split sequence.
    Placeholders are replaced literally inside each argument (no
    ``str.format``, so other braces in the command are left alone).
    No shell is involved: the first word is exec'ed directly, which keeps the
    returned pid equal to the server's pid.
    """
    argv = shlex.split(template) if isinstance(template, str) else list(template)
    out = []
    for arg in argv:
        for key, value in subst.items():
            arg = arg.replace("{%s}" % key, str(value))
        out.append(arg)
    return out


def pin_command(argv: Sequence[str], cpus: str | int | None) -> list[str]:
    """Prefix ``argv`` with ``taskset -c CPUS`` (taskset execs, pid unchanged)."""
    if cpus is None or cpus == "":
        return list(argv)
    if shutil.which("taskset") is None:
        raise RuntimeError("taskset not found (util-linux); use cpus=None to run unpinned")
    return ["taskset", "-c", str(cpus), *argv]


# --------------------------------------------------------------------------
# /proc sampling
# --------------------------------------------------------------------------

def _read_stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read().decode("ascii", "replace")
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return data[data.rindex(")") + 2:].split()


def descendant_pids(pid: int) -> list[int]:
    """All live descendants of ``pid`` (by walking /proc/*/stat ppid fields)."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_read_stat_fields(int(name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, stack = [], [pid]
    while stack:
        for c in children.get(stack.pop(), ()):
            out.append(c)
            stack.append(c)
    return out


def proc_cpu_seconds(pid: int, tree: bool = False) -> float:
    """utime+stime of a process (all its threads) in seconds, from /proc/<pid>/stat.

    Resolution is one clock tick (1/CLK_TCK, usually 10 ms), so sample over
    runs of at least a second or so.  With ``tree=True`` live descendants are
    added (useful when the server command is a wrapper that forks).
    """
    pids = [pid] + (descendant_pids(pid) if tree else [])
    ticks = 0
    for i, p in enumerate(pids):
        try:
            fields = _read_stat_fields(p)
        except (OSError, ValueError):
            if i == 0:
                raise
            continue  # a descendant vanished meanwhile
        # fields[0] is field 3 (state); utime/stime are fields 14/15.
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


def process_cpu_snapshot(exclude: Iterable[int] = ()) -> dict[int, tuple[int, int]]:
    """{pid: (starttime, utime+stime ticks)} for every process except ``exclude``.

    Pair two snapshots with :func:`other_cpu_seconds` to see how much CPU
    *other* processes (e.g. a test suite running concurrently on a shared
    machine) burnt during a measurement.
    """
    skip = set(exclude)
    snap = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in skip:
            continue
        try:
            f = _read_stat_fields(int(name))
            snap[int(name)] = (int(f[19]), int(f[11]) + int(f[12]))
        except (OSError, ValueError, IndexError):
            continue
    return snap


def other_cpu_seconds(before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]]) -> float:
    """CPU seconds used between two :func:`process_cpu_snapshot` calls.

    Processes born in between count fully; ones that exited in between are
    missed (their time is not visible any more).
    """
    ticks = 0
    for pid, (start, t) in after.items():
        b = before.get(pid)
        ticks += t - b[1] if b is not None and b[0] == start else t
    return ticks / CLK_TCK


def wait_for_quiet(exclude: Iterable[int] = (), threshold: float = 0.05, window: float = 0.5,
                   timeout: float = 30.0) -> tuple[bool, float]:
    """Wait until other processes use less than ``threshold`` of a CPU.

    Measures :func:`other_cpu_seconds` over consecutive ``window``-second
    windows until one is below ``threshold`` (returns ``(True, fraction)``)
    or ``timeout`` passes (returns ``(False, last fraction)``).
    """
    exclude = set(exclude)
    deadline = time.monotonic() + timeout
    frac = 0.0
    while True:
        t0, b = time.monotonic(), process_cpu_snapshot(exclude)
        time.sleep(window)
        frac = other_cpu_seconds(b, process_cpu_snapshot(exclude)) / (time.monotonic() - t0)
        if frac < threshold:
            return True, frac
        if time.monotonic() >= deadline:
            return False, frac


def system_cpu_ticks() -> dict[str, list[int]]:
    """Per-CPU tick counters from /proc/stat: {"cpu": [...], "cpu0": [...], ...}.

    Columns: user nice system idle iowait irq softirq steal guest guest_nice.
    """
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu"):
                name, *vals = line.split()
                out[name] = [int(v) for v in vals]
    return out


def steal_fraction(before: Mapping[str, list[int]], after: Mapping[str, list[int]]) -> dict[str, float]:
    """Hypervisor steal time as a fraction of elapsed ticks, per CPU, between two samples."""
    res = {}
    for name, b in before.items():
        a = after.get(name)
        if a is None or len(a) < 8:
            continue
        total = sum(a) - sum(b)
        res[name] = (a[7] - b[7]) / total if total > 0 else 0.0
    return res


def proc_rss_bytes(pid: int, tree: bool = False) -> int:
    """Resident set size (VmRSS from /proc/<pid>/status) in bytes."""
    total = 0
    pids = [pid] + (descendant_pids(pid) if tree else [])
    for i, p in enumerate(pids):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            if i == 0:
                raise
    return total


# --------------------------------------------------------------------------
# minimal RESP client
# --------------------------------------------------------------------------

class RespError(Exception):
    """An error reply (``-ERR ...``) from the server."""


def _encode_command(args: Sequence[Any]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


class DropTransport:
    """An asyncio transport that drops what is written: for feeding a
    repram_resp Client in process (Client(server).connection_made(t))."""

    def write(self, data) -> None: pass
    def set_write_buffer_limits(self, **kw) -> None: pass
    def pause_reading(self) -> None: pass
    def resume_reading(self) -> None: pass
    def close(self) -> None: pass
    def is_closing(self) -> bool: return False
    def get_write_buffer_size(self) -> int: return 0
    def get_extra_info(self, name, default=None): return ("127.0.0.1", 1)


# In-process cost benchmarks (acl_cost.py, tracking_cost.py): a child
# process runs one variant of repram_resp (a source tree) through
# Client._run_batch, with no sockets.  Its source is INPROCESS_HEAD (argv,
# a server, client() with a discarding transport), the script's own setup,
# INPROCESS_WORKLOAD (SET / GET command lists, GC frozen), then the script's
# timing loop, which prints one JSON object.
INPROCESS_HEAD = r"""
import json, sys, time, gc
sys.path.insert(0, sys.argv[1])
variant, n, batch, reps = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
from repram_resp.config import load
from repram_resp.server import Server
from repram_resp.connection import Client

class Sink:
    def write(self, b): pass
    def get_write_buffer_size(self): return 0
    def close(self): pass

server = Server(load(["--port", "0"]))
def client():
    c = Client(server)
    c.transport = Sink()
    server.register(c)
    return c
"""

INPROCESS_WORKLOAD = r"""
keys = [b"key:%d" % (i % 100_000) for i in range(n)]
sets = [[b"SET", k, b"v", b"EX", b"60"] for k in keys]
gets = [[b"GET", k] for k in keys]
gc.collect(); gc.freeze()
"""


def run_inprocess(child: str, src: str, variant: str, n: int, batch: int, reps: int) -> dict:
    """Run an in-process child (above) on source tree src; its JSON output."""
    import json
    p = subprocess.run([sys.executable, "-c", child, src, variant, str(n), str(batch), str(reps)],
                       capture_output=True, text=True, check=True, cwd="/")
    return json.loads(p.stdout)


def encode_command(*args: Any) -> bytes:
    """RESP-encode one command (non-bytes arguments go through str())."""
    return _encode_command(args)


def _read_reply(f: io.BufferedReader) -> Any:
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed while reading reply")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode(errors="replace")
    if kind == b"-":
        return RespError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionError("connection closed while reading bulk string")
        return data[:-2]
    if kind in (b"*", b"~", b">"):
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    if kind == b"_":
        return None
    if kind == b"%":
        n = int(rest)
        items = [_read_reply(f) for _ in range(2 * n)]
        return dict(zip(items[::2], items[1::2]))
    raise ValueError(f"unsupported RESP reply type {line!r}")


def resp_command(port: int, *args: Any, host: str = LOOPBACK, timeout: float = 5.0,
                 raise_errors: bool = True) -> Any:
    """Send one command on a fresh connection and return the parsed reply.

    Bulk strings come back as ``bytes``, simple strings as ``str``.  Error
    replies raise :class:`RespError` (or are returned if ``raise_errors`` is
    false).  For many commands, use :func:`resp_pipeline`.
    """
    return resp_pipeline(port, [args], host=host, timeout=timeout, raise_errors=raise_errors)[0]


def resp_pipeline(port: int, commands: Iterable[Sequence[Any]], *, host: str = LOOPBACK,
                  timeout: float = 30.0, raise_errors: bool = True) -> list[Any]:
    """Send several commands pipelined on one connection; return all replies."""
    commands = list(commands)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"".join(_encode_command(c) for c in commands))
        f = s.makefile("rb")
        replies = [_read_reply(f) for _ in commands]
    if raise_errors:
        for r in replies:
            if isinstance(r, RespError):
                raise r
    return replies


# --------------------------------------------------------------------------
# server lifecycle
# --------------------------------------------------------------------------

class ServerNotReady(RuntimeError):
    """The server did not answer PING with +PONG before the deadline."""


class ServerExited(RuntimeError):
    """The server process exited during startup."""


def wait_ready(port: int, host: str = LOOPBACK, timeout: float = 10.0,
               proc: subprocess.Popen | None = None) -> float:
    """Poll ``PING`` until the reply is ``+PONG``; return seconds waited.

    Retries quickly (backoff 2 ms .. 50 ms) until ``timeout`` elapses.  If
    ``proc`` is given, the backoff waits on the process instead of sleeping,
    so an early exit is noticed immediately (raises :class:`ServerExited`).
    """
    start = time.monotonic()
    deadline = start + timeout
    delay = 0.002
    last_err: object = None
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerExited(f"server exited with code {proc.returncode} during startup")
        try:
            with socket.create_connection((host, port), timeout=max(0.05, min(1.0, deadline - time.monotonic()))) as s:
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                buf = b""
                while not buf.endswith(b"\r\n"):
                    chunk = s.recv(64)
                    if not chunk:
                        break
                    buf += chunk
                if buf == b"+PONG\r\n":
                    return time.monotonic() - start
                last_err = f"unexpected reply {buf!r}"
        except OSError as e:
            last_err = e
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServerNotReady(f"no +PONG from {host}:{port} within {timeout:.1f}s (last: {last_err})")
        step = min(delay, remaining)
        if proc is not None:
            try:
                proc.wait(timeout=step)
            except subprocess.TimeoutExpired:
                pass
        else:
            time.sleep(step)
        delay = min(delay * 2, 0.05)


def _pdeathsig_preexec() -> None:  # runs in the child between fork and exec
    """Ask the kernel to SIGTERM the server if the driver dies (Linux only)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


@dataclass
class ServerProcess:
    """A running server started by :func:`start_server`."""

    name: str
    argv: list[str]
    port: int
    host: str
    popen: subprocess.Popen
    log_path: str
    ready_seconds: float = 0.0
    _own_log: bool = False
    _log_file: Any = None
    returncode: int | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def command_line(self) -> str:
        return shlex.join(self.argv)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_seconds(self, tree: bool = False) -> float:
        """Server utime+stime so far (seconds); see :func:`proc_cpu_seconds`."""
        return proc_cpu_seconds(self.pid, tree=tree)

    def rss_bytes(self, tree: bool = False) -> int:
        """Server VmRSS in bytes; see :func:`proc_rss_bytes`."""
        return proc_rss_bytes(self.pid, tree=tree)

    def command(self, *args: Any, timeout: float = 5.0, raise_errors: bool = True) -> Any:
        """Send one command with :func:`resp_command`."""
        return resp_command(self.port, *args, host=self.host, timeout=timeout, raise_errors=raise_errors)

    def log_tail(self, nbytes: int = 2000) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0, keep_log: bool = False) -> int | None:
        """SIGTERM the server (its whole process group), wait, SIGKILL if needed.

        Idempotent.  Returns the exit code.  A log file created by
        :func:`start_server` itself is removed unless ``keep_log``.
        """
        if self.popen.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait()
        self.returncode = self.popen.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
            if self._own_log and not keep_log:
                try:
                    os.unlink(self.log_path)
                except OSError:
                    pass
        return self.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)  # started with start_new_session: pgid == pid
        except ProcessLookupError:
            pass
        except PermissionError:
            self.popen.send_signal(sig)

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(template: str | Sequence[str], *, name: str = "server", cpus: str | int | None = None,
                 host: str = LOOPBACK, port: int | None = None, ready_timeout: float = 10.0,
                 log_dir: str | None = None, cwd: str | None = REPO_ROOT,
                 env: Mapping[str, str] | None = None, attempts: int = 3,
                 subst: Mapping[str, Any] | None = None) -> ServerProcess:
    """Start ``template`` on a free port and wait until it answers PING.

    ``template`` must contain ``{port}``; ``{host}`` and ``{python}``
    (``sys.executable``) are substituted too, plus anything in ``subst``.
    ``cpus`` pins the server with ``taskset -c``.  Output goes to a log file
    (in ``log_dir`` if given, else a temp file deleted on a clean stop).
    The server runs in its own session and gets SIGTERM if the driver dies.
    If it exits before becoming ready (e.g. the port was grabbed in between),
    it is retried on a new port up to ``attempts`` times.
    """
    tmpl_text = template if isinstance(template, str) else shlex.join(template)
    if "{port}" not in tmpl_text:
        raise ValueError(f"server command template has no {{port}} placeholder: {tmpl_text}")
    last_exc: Exception | None = None
    for attempt in range(attempts):
        p = port if port is not None else free_port(host)
        values = {"python": sys.executable, "host": host, "port": p, **(subst or {})}
        argv = pin_command(build_command(template, **values), cpus)
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            log_path = os.path.join(log_dir, f"{name}-{p}.log")
            log_file, own = open(log_path, "ab"), False
        else:
            fd, log_path = tempfile.mkstemp(prefix=f"bench-{name}-{p}-", suffix=".log")
            log_file, own = os.fdopen(fd, "ab"), True
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                 cwd=cwd, env=None if env is None else {**os.environ, **env},
                                 start_new_session=True, preexec_fn=_pdeathsig_preexec)
        srv = ServerProcess(name=name, argv=argv, port=p, host=host, popen=popen,
                            log_path=log_path, _own_log=own, _log_file=log_file)
        try:
            srv.ready_seconds = wait_ready(p, host, ready_timeout, proc=popen)
            return srv
        except ServerExited as e:
            srv.stop(keep_log=True)
            tail = srv.log_tail()
            last_exc = ServerExited(f"{name}: {e}; command: {srv.command_line}\n--- log {log_path} ---\n{tail}")
            # Retry on a fresh port only if it looks like we lost the free-port race.
            lost_race = any(s in tail.lower() for s in ("in use", "errno 98", "eaddrinuse"))
            if port is not None or not lost_race:
                break
        except BaseException as e:
            srv.stop(keep_log=True)
            if isinstance(e, ServerNotReady):
                raise ServerNotReady(f"{name}: {e}; command: {srv.command_line}\n--- log {log_path} ---\n{srv.log_tail()}") from None
            raise
    assert last_exc is not None
    raise last_exc


# --------------------------------------------------------------------------
# redis-benchmark
# --------------------------------------------------------------------------

CSV_HEADER = ["test", "rps", "avg_latency_ms", "min_latency_ms", "p50_latency_ms",
              "p95_latency_ms", "p99_latency_ms", "max_latency_ms"]


class BenchmarkError(RuntimeError):
    """redis-benchmark failed (non-zero exit, server errors, unparsable output)."""


@dataclass
class BenchResult:
    test: str
    rps: float
    avg_ms: float
    min_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    clients: int
    pipeline: int
    wall_seconds: float        # around the whole redis-benchmark process
    client_cpu_seconds: float  # redis-benchmark's own utime+stime
    argv: list[str]
    stderr: str = ""


def parse_benchmark_csv(text: str) -> list[dict[str, str]]:
    """Parse redis-benchmark 7.x ``--csv`` output into one dict per test row."""
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows or rows[0] != CSV_HEADER:
        raise BenchmarkError(f"unexpected redis-benchmark CSV header/output: {text[:500]!r}")
    return [dict(zip(CSV_HEADER, r)) for r in rows[1:]]


def run_redis_benchmark(port: int, command: Sequence[str] | None = None, *, requests: int,
                        clients: int = 50, pipeline: int = 1, keyspace: int | None = 100_000,
                        threads: int | None = 1, cpus: str | int | None = None,
                        host: str = LOOPBACK, tests: str | None = None,
                        extra_args: Sequence[str] = (), binary: str = "redis-benchmark",
                        timeout: float | None = 600.0) -> BenchResult:
    """Run one redis-benchmark invocation with ``--csv`` and return its result.

    ``command`` is an arbitrary command (e.g. ``["SET", "key:__rand_int__",
    "v"]``); alternatively pass ``tests="get"`` for ``-t``.  Exactly one result
    row is expected.  Raises :class:`BenchmarkError` if redis-benchmark exits
    non-zero (it does on any error reply from the server) or times out.
    """
    argv = [binary, "-h", host, "-p", str(port)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    if keyspace:
        argv += ["-r", str(keyspace)]
    argv += ["-n", str(requests), "-c", str(clients), "-P", str(pipeline), "--csv", *extra_args]
    if tests:
        argv += ["-t", tests]
    if command:
        argv += list(command)
    argv = pin_command(argv, cpus)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise BenchmarkError(f"redis-benchmark timed out after {timeout}s: {shlex.join(argv)}") from e
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    if proc.returncode != 0:
        raise BenchmarkError(f"redis-benchmark exited {proc.returncode}: {shlex.join(argv)}\n"
                             f"stderr: {proc.stderr.strip()[:2000]}\nstdout: {proc.stdout.strip()[:500]}")
    rows = parse_benchmark_csv(proc.stdout)
    if len(rows) != 1:
        raise BenchmarkError(f"expected 1 result row, got {len(rows)}: {proc.stdout[:500]!r}")
    r = rows[0]
    return BenchResult(test=r["test"], rps=float(r["rps"]), avg_ms=float(r["avg_latency_ms"]),
                       min_ms=float(r["min_latency_ms"]), p50_ms=float(r["p50_latency_ms"]),
                       p95_ms=float(r["p95_latency_ms"]), p99_ms=float(r["p99_latency_ms"]),
                       max_ms=float(r["max_latency_ms"]), requests=requests, clients=clients,
                       pipeline=pipeline, wall_seconds=wall, client_cpu_seconds=client_cpu,
                       argv=argv, stderr=proc.stderr)


# --------------------------------------------------------------------------
# facts, misc
# --------------------------------------------------------------------------

def median(values: Iterable[float]) -> float:
    vals = sorted(values)
    if not vals:
        return float("nan")
    mid = len(vals) // 2
    return vals[mid] if len(vals) % 2 else (vals[mid - 1] + vals[mid]) / 2


def _run_text(argv: Sequence[str], cwd: str | None = None) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return (out.stdout or out.stderr).strip()


def _module_version(dist: str) -> str:
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:
        return "not installed"


def git_commit(repo_root: str = REPO_ROOT) -> str:
    head = _run_text(["git", "-C", repo_root, "rev-parse", "HEAD"])
    if head is None:
        head = "none (no commits yet / not a git repo)"
    dirty = _run_text(["git", "-C", repo_root, "status", "--porcelain", "--untracked-files=no"])
    untracked = _run_text(["git", "-C", repo_root, "status", "--porcelain"])
    if dirty:
        head += " + uncommitted changes"
    elif untracked:
        head += " + untracked files"
    return head


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts(repo_root: str = REPO_ROOT, redis_server: str = "redis-server",
                  redis_benchmark: str = "redis-benchmark") -> list[tuple[str, str]]:
    """Ordered (label, value) facts describing the machine and toolchain."""
    uname = _run_text(["uname", "-a"]) or " ".join(platform.uname())
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = ["?"]
    return [
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())),
        ("uname -a", uname),
        ("CPU model", cpu_model()),
        ("nproc", f"{affinity} (os.cpu_count()={os.cpu_count()})"),
        ("load average at start", " ".join(load)),
        ("python", f"{platform.python_version()} ({platform.python_implementation()}) {sys.executable}"),
        ("redis-server --version", _run_text([redis_server, "--version"]) or "not found"),
        ("redis-benchmark --version", _run_text([redis_benchmark, "--version"]) or "not found"),
        ("hiredis", _module_version("hiredis")),
        ("uvloop", _module_version("uvloop")),
        ("git commit", git_commit(repo_root)),
    ]


def install_sigterm_handler() -> None:
    """Make SIGTERM/SIGHUP raise KeyboardInterrupt so cleanup code runs."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):
            pass


# --------------------------------------------------------------------------
# small generic helpers for the data-loading benchmarks (scan_prefix.py,
# memory_per_key.py, expiry_lag.py)
# --------------------------------------------------------------------------

def encode_commands(commands: Iterable[Sequence[Any]]) -> bytes:
    """RESP-encode several commands into one buffer (for pipelining)."""
    return b"".join(_encode_command(c) for c in commands)


def resp_bulk_load(port: int, batches: Iterable[tuple[bytes, int]], *, host: str = LOOPBACK,
                   timeout: float = 120.0) -> tuple[int, list[str]]:
    """Send pre-encoded command batches on one connection, one batch in flight.

    ``batches`` yields ``(payload, n_commands)``.  Every command must have a
    single-line reply (``+OK``, ``-ERR ...``, ``:n``), e.g. ``SET`` without
    ``GET``.  Each batch is followed by ``ECHO <unique token>``; reading up to
    the token's reply delimits the batch even if the server sends more or
    fewer replies than commands (a misparsed request), and replies are
    counted by line, which is what makes this fast.
    Returns ``(single-line replies read, up to 10 distinct error lines)``;
    replies != commands sent means the server misbehaved.
    """
    total, errors = 0, []
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for bno, (payload, _n) in enumerate(batches):
            token = b"__bulk_load_%d_%d__" % (os.getpid(), bno)
            s.sendall(payload + _encode_command([b"ECHO", token]))
            chunks: list[bytes] = []
            last = b""
            while True:
                try:
                    chunk = s.recv(1 << 20)
                except OSError as e:
                    raise ConnectionError(f"{e} (during load batch {bno}, after {total} complete-batch replies)") from e
                if not chunk:
                    raise ConnectionError(f"server closed the connection during load batch {bno} "
                                          f"(after {total} complete-batch replies)")
                chunks.append(chunk)
                window = last + chunk
                # The token ends the batch: normally as "$len\r\ntoken\r\n"; if the ECHO
                # itself was misparsed, inside an error line -- either way it is last.
                if token in window and window.endswith(b"\r\n"):
                    break
                last = window[-(len(token) + 4):]
            lines = b"".join(chunks).split(b"\r\n")[:-1]
            cut = next(i for i in range(len(lines) - 1, -1, -1) if token in lines[i])
            if cut > 0 and lines[cut - 1] == b"$%d" % len(token):
                cut -= 1
            total += cut
            for line in lines[:cut + 1]:
                if line.startswith(b"-") and len(errors) < 10:
                    msg = line.decode(errors="replace")
                    if msg not in errors:
                        errors.append(msg)
    return total, errors


def info_fields(port: int, section: str | None = None, host: str = LOOPBACK) -> dict[str, str]:
    """``INFO [section]`` parsed into {field: value} (values as text)."""
    raw = resp_command(port, *(("INFO", section) if section else ("INFO",)), host=host)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if text.startswith("txt:"):  # RESP3 verbatim prefix, just in case
        text = text[4:]
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def wait_rss_stable(pid: int, *, interval: float = 0.25, tolerance: float = 0.002, samples: int = 4,
                    timeout: float = 15.0) -> tuple[int, bool]:
    """Poll VmRSS until ``samples`` consecutive readings stay within ``tolerance``
    (relative) of each other, or ``timeout`` passes.  Returns (last RSS, stable?)."""
    deadline = time.monotonic() + timeout
    window = [proc_rss_bytes(pid)]
    while True:
        if len(window) >= samples and (max(window) - min(window)) <= tolerance * max(window):
            return window[-1], True
        if time.monotonic() >= deadline:
            return window[-1], False
        time.sleep(interval)
        window = (window + [proc_rss_bytes(pid)])[-samples:]


def pin_self(cpus: str | int | None) -> str:
    """Pin the calling process to a CPU list like ``"1"`` or ``"2-3"``; returns a description."""
    if cpus is None or cpus == "":
        return "unpinned"
    cpu_set: set[int] = set()
    for part in str(cpus).split(","):
        a, _, b = part.partition("-")
        cpu_set.update(range(int(a), int(b or a) + 1))
    os.sched_setaffinity(0, cpu_set)
    return f"sched_setaffinity({sorted(cpu_set)})"


def repro_command(argv: Sequence[str] | None = None) -> str:
    """The shell command that reruns the current script from the repo root."""
    argv = list(sys.argv if argv is None else argv)
    return shlex.join([sys.executable, os.path.relpath(os.path.abspath(argv[0]), REPO_ROOT), *argv[1:]])


def emit_markdown(md: str, path: str | None, mode: str = "append") -> None:
    """Print ``md`` to stdout and, if ``path``, append it to (or overwrite) that file."""
    print(md, flush=True)
    if not path:
        return
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    with open(path, "a" if mode == "append" else "w") as f:
        if exists and mode == "append":
            f.write("\n")
        f.write(md if md.endswith("\n") else md + "\n")
    print(f"markdown {'appended' if mode == 'append' else 'written'} to {path}", file=sys.stderr)


def facts_markdown(facts: Sequence[tuple[str, str]]) -> list[str]:
    """Machine facts as Markdown bullet lines."""
    return [f"- {k}: `{v}`" for k, v in facts]


def source_digest(package_dir: str = os.path.join(REPO_ROOT, "repram_resp")) -> str:
    """Short sha256 over the package's *.py files (path + content), to pin down
    exactly which server code a run measured when the tree has uncommitted edits."""
    import hashlib
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(package_dir):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = os.path.join(dirpath, name)
                h.update(os.path.relpath(path, package_dir).encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read() + b"\0")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------
# what every benchmark script shares
# --------------------------------------------------------------------------

# The baseline: a real redis-server with persistence off, loopback only.
REDIS_SERVER_CMD = "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_main(main, *errors: type) -> None:
    """Exit with main()'s code; 130 on Ctrl-C; 2 (one line on stderr) when a
    server fails to start or one of ``errors`` is raised."""
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
    except (ServerExited, ServerNotReady, *errors) as exc:
        log(f"error: {exc}")
        sys.exit(2)
