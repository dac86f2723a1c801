#!/usr/bin/env python3
"""Ablated copies of this checkout: the same code with one always-on feature
cut out, built like the real thing, so a benchmark can measure what the
feature costs against the code without it (rather than against an older
commit that differs in a hundred other ways).

    python benchmarks/ablate.py stats            # prints the tree's path

Features:

  stats  -- INFO commandstats / latencystats / SLOWLOG / LATENCY timing of
            command runs (introspect.Stats.end_run and the lane's _end_run
            with its clock readings).  Everything else (net byte counters,
            total_commands_processed, keyspace hits) stays.

A tree is built once per source state under $TMPDIR/repram-ablate/<feature>-
<hash of the sources> (the fast lane compiled in place with
``setup.py build_ext --inplace``) and reused.  Each patch must match exactly
once, so a change to the code it cuts fails here instead of silently
measuring nothing.  Import ``tree(feature)`` from other benchmarks.
stdlib only (plus Cython and a C compiler for the lane, as the install).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# (file, old, new): old must occur exactly `count` times.
PATCHES = {
    "stats": [
        # The lane: a run's statistics are never recorded ...
        ("repram_resp/_lane.pyx",
         '    slowlog / latency entry (the run\'s last command) past the threshold."""\n',
         '    slowlog / latency entry (the run\'s last command) past the threshold."""\n'
         '    return 0   # ablated (benchmarks/ablate.py: stats)\n', 1),
        # ... and runs are not timed (the clock readings exist only for them).
        ("repram_resp/_lane.pyx", "_c_perf_ns() - t_run", "0", 3),
        ("repram_resp/_lane.pyx", "t_run = _c_perf_ns()", "t_run = 0", 2),
        # The Python path: Stats.end_run returns at once (its result is the
        # next run's start, which nothing else reads).
        ("repram_resp/introspect.py",
         "    def end_run(self, client, cmd, cmds: list, lo: int, hi: int, t0: int) -> int:\n",
         "    def end_run(self, client, cmd, cmds: list, lo: int, hi: int, t0: int) -> int:\n"
         "        return t0   # ablated (benchmarks/ablate.py: stats)\n", 1),
    ],
}

SOURCES = ("repram_resp", "setup.py", "pyproject.toml", "README.md", "MANIFEST.in")


def _digest(feature: str) -> str:
    h = hashlib.sha256(feature.encode())
    for top in SOURCES:
        path = os.path.join(REPO, top)
        if os.path.isfile(path):
            files = [path]
        else:
            files = sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
                           if f.endswith((".py", ".pyx", ".json")))
        for f in files:
            h.update(os.path.relpath(f, REPO).encode())
            with open(f, "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()[:16]


def check(feature: str, root: str = REPO) -> None:
    """Raise SystemExit unless every patch of feature matches root's sources
    exactly as often as it expects (tests/test_ablate.py runs this)."""
    for rel, old, _new, count in PATCHES[feature]:
        with open(os.path.join(root, rel)) as fh:
            found = fh.read().count(old)
        if found != count:
            raise SystemExit("ablate %s: %s: expected %d occurrence(s) of %r, found %d -- update "
                             "benchmarks/ablate.py" % (feature, rel, count, old[:60], found))


def tree(feature: str) -> str:
    """The path of the ablated tree for feature, built if needed."""
    if feature not in PATCHES:
        raise SystemExit("unknown feature %r (known: %s)" % (feature, ", ".join(PATCHES)))
    root = os.path.join(tempfile.gettempdir(), "repram-ablate")
    dst = os.path.join(root, "%s-%s" % (feature, _digest(feature)))
    if os.path.exists(os.path.join(dst, ".built")):
        return dst
    tmp = dst + ".tmp%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for top in SOURCES:
        src = os.path.join(REPO, top)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(tmp, top),
                            ignore=shutil.ignore_patterns("*.so", "*.c", "__pycache__"))
        elif os.path.exists(src):
            shutil.copy2(src, os.path.join(tmp, top))
    check(feature, tmp)
    for rel, old, new, _count in PATCHES[feature]:
        path = os.path.join(tmp, rel)
        with open(path) as fh:
            text = fh.read()
        with open(path, "w") as fh:
            fh.write(text.replace(old, new))
    subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    open(os.path.join(tmp, ".built"), "w").close()
    shutil.rmtree(dst, ignore_errors=True)
    os.rename(tmp, dst)
    return dst


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(tree(sys.argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
