"""Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE, ...).  No I/O here.

Rules: byte-for-byte the semantics of Redis's ``stringmatchlen`` (src/util.c,
checked against redis-server 7.0.15 with its CVE-2024-31228 backport):

* ``*`` any run of bytes, ``?`` any one byte, ``\\x`` the literal byte ``x``;
  a lone trailing ``\\`` is a literal backslash.
* ``[...]`` one byte from a set: ``[^...]`` negates (``!`` is an ordinary
  member), ``a-z`` is a range whose ends are swapped if reversed, ``\\x``
  inside a set is the literal ``x``.  A ``]`` directly after ``[`` / ``[^``
  closes the set (``[]`` is empty, ``[^]`` is any byte).  A range end may
  be ``]`` (``[a-]`` is the range ``]``..``a``).  A set left open at the end
  of the pattern is closed there.
* Range bounds compare C ``char``, which is signed on x86-64: bytes >= 0x80
  sort *below* 0x00 (``[a-\\xff]`` covers 0x00-0x61 and 0xff).
* nocase folds ASCII A-Z only (C locale ``tolower``), folds range ends after
  the swap, and does *not* apply to an escaped byte inside a set.
* A non-empty pattern never matches the empty string (the main loop needs
  both sides non-empty), so ``**`` does not match ``b""``.  Redis's callers
  special-case the exact pattern ``*`` to match every key; see is_match_all.
* More than 1000 ``*`` groups that are not at the end of the pattern never
  match: Redis caps its recursion there rather than blow the stack.

Every non-``*`` element consumes exactly one byte, so a pattern is a list of
fixed-length segments separated by ``*``.  The matcher anchors the first and
last segment and finds each middle segment leftmost with ``re.search`` —
the classic glob algorithm: O(len(key) * len(pattern)) worst case, no
recursion, and the per-byte work runs inside the C regex engine.  A plain
translation to one regex (``.*`` per star) would backtrack polynomially on
hostile patterns like ``*a*a*a*a*b``.

Cost (issue 7): a pattern without ``[`` or ``\\`` -- nearly all of them -- is
compiled without a Python step per byte (split on ``*`` runs, ``re.escape``,
``?`` -> ``.``: C loops); sets and escapes take the per-byte tokenizer, whose
range expansion is memoised.  Only patterns up to ``CACHE_PATTERN_MAX_BYTES``
are cached (here and in ``re``'s own cache), so caches stay bounded in bytes.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

__all__ = ["compile_glob", "literal_prefix", "is_match_all"]

_STAR = None  # token marker; every other token is a 256-entry membership set
CACHE_PATTERN_MAX_BYTES = 4096   # longer patterns are compiled each time, never kept
_MAX_NESTING = 1000
_ALL = frozenset(range(256))


def _signed(b: int) -> int:
    # Redis compares range bounds as (signed) char.
    return b - 256 if b >= 128 else b


def _lower(c: int) -> int:
    # tolower() in the C locale: only ASCII letters fold.
    return c + 32 if 65 <= c <= 90 else c


def _tokenize(pattern: bytes, nocase: bool) -> list:
    """Split ``pattern`` into _STAR markers and byte sets (frozensets)."""
    p = pattern
    n = len(p)
    i = 0
    tokens: list = []
    while i < n:
        c = p[i]
        if c == 0x2A:  # '*'
            while i + 1 < n and p[i + 1] == 0x2A:
                i += 1
            tokens.append(_STAR)
        elif c == 0x3F:  # '?'
            tokens.append(_ALL)
        elif c == 0x5B:  # '['
            i += 1
            negate = i < n and p[i] == 0x5E  # '^'
            if negate:
                i += 1
            members: set[int] = set()
            while True:
                if i < n and p[i] == 0x5C and n - i >= 2:  # '\\'
                    i += 1
                    # Escaped set members ignore nocase in Redis.
                    members.add(p[i])
                elif i < n and p[i] == 0x5D:  # ']'
                    break
                elif i == n:
                    # Open set at end of pattern: Redis steps back so the
                    # shared "pattern++" lands exactly on the end.
                    i -= 1
                    break
                elif n - i >= 3 and p[i + 1] == 0x2D:  # 'x-y'
                    members.update(_range_members(p[i], p[i + 2], nocase))
                    i += 2
                else:
                    members.update(_fold(p[i], nocase))
                i += 1
            tokens.append(frozenset(_ALL - members if negate else members))
        else:
            if c == 0x5C and n - i >= 2:  # '\\' escapes; a lone one is literal
                i += 1
                c = p[i]
            tokens.append(_fold(c, nocase))
        i += 1
    return tokens


@functools.lru_cache(maxsize=1024)
def _range_members(a: int, z: int, nocase: bool) -> frozenset:
    lo, hi = _signed(a), _signed(z)
    if lo > hi:
        lo, hi = hi, lo
    if nocase:
        lo, hi = _lower(lo), _lower(hi)
    out = set()
    for b in range(256):
        v = _signed(b)
        if nocase:
            v = _lower(v)
        if lo <= v <= hi:
            out.add(b)
    return frozenset(out)


def _fold(b: int, nocase: bool) -> frozenset:
    if nocase and (65 <= b <= 90 or 97 <= b <= 122):
        return frozenset((b | 0x20, b & ~0x20))
    return frozenset((b,))


def _token_regex(members: frozenset) -> bytes:
    if len(members) == 1:
        return b"\\x%02x" % next(iter(members))
    if len(members) == 256:
        return b"."  # compiled with DOTALL
    parts = []
    run_start = prev = None
    for b in sorted(members):
        if prev is not None and b == prev + 1:
            prev = b
            continue
        if run_start is not None:
            parts.append(_run(run_start, prev))
        run_start = prev = b
    parts.append(_run(run_start, prev))
    return b"[" + b"".join(parts) + b"]"


def _run(a: int, b: int) -> bytes:
    if a == b:
        return b"\\x%02x" % a
    return b"\\x%02x-\\x%02x" % (a, b)


def _segment_regex(seg: list) -> "re.Pattern[bytes]":
    return re.compile(b"".join(_token_regex(t) for t in seg), re.DOTALL)


def _never(key: bytes) -> bool:
    return False


def compile_glob(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """Return ``matcher(key) -> bool`` equal to Redis ``stringmatchlen``.

    Compiled matchers of short patterns are cached, so a repeated SCAN
    MATCH pays once; long ones are compiled in O(len) and not kept.
    """
    pattern = bytes(pattern)
    if len(pattern) <= CACHE_PATTERN_MAX_BYTES:
        return _compile_cached(pattern, nocase)
    m = _compile(pattern, nocase)
    re.purge()      # re keeps its last 512 compiled regexes: not these
    return m


@functools.lru_cache(maxsize=256)
def _compile_cached(pattern: bytes, nocase: bool) -> Callable[[bytes], bool]:
    return _compile(pattern, nocase)


def _plain_segments(pattern: bytes, nocase: bool):
    """Segments of a pattern with no '[' or '\\', as (regex, length), in C."""
    flags = re.DOTALL | (re.IGNORECASE if nocase else 0)
    parts = re.split(rb"\*+", pattern)
    # (bytes regexes fold ASCII only, like C tolower)
    return [(re.compile(re.escape(seg).replace(b"\\?", b"."), flags) if seg else None, len(seg))
            for seg in parts]


def _compile(pattern: bytes, nocase: bool) -> Callable[[bytes], bool]:
    if b"[" not in pattern and b"\\" not in pattern:
        return _compile_plain(pattern, nocase)
    tokens = _tokenize(pattern, nocase)

    # An empty set can never be satisfied, and since the empty key only
    # matches the empty pattern, such a pattern matches nothing at all.
    if any(t is not _STAR and not t for t in tokens):
        return _never

    segments: list[list] = [[]]
    for t in tokens:
        if t is _STAR:
            segments.append([])
        else:
            segments[-1].append(t)
    # len(segments) - 1 star groups; the last one recurses only if followed
    # by something, i.e. if the final segment is non-empty.
    recursing = len(segments) - 1 - (0 if segments[-1] else 1)
    if recursing > _MAX_NESTING:
        return _never
    return _lazy_matcher([len(g) for g in segments],
                         lambda: [_segment_regex(g) if g else None for g in segments])


def _compile_plain(pattern: bytes, nocase: bool) -> Callable[[bytes], bool]:
    if not pattern:
        return lambda key: not key
    # Redis's nesting cap, counted before anything is compiled (C scans).
    stars = len(re.findall(rb"\*+", pattern))
    if stars - (1 if pattern.endswith(b"*") else 0) > _MAX_NESTING:
        return _never
    parts = re.split(rb"\*+", pattern)
    return _lazy_matcher([len(p) for p in parts],
                         lambda: [r for r, _ in _plain_segments(pattern, nocase)])


def _lazy_matcher(lengths: list, compile_all) -> Callable[[bytes], bool]:
    """The matcher over fixed-length segments separated by stars.  The
    regexes are compiled on the first key long enough to match (issue 7: a
    60 KB pattern costs its compile only if some key could match it; re's
    own compiler is Python code, one step per regex item)."""
    state: list = []
    if len(lengths) == 1:
        total = lengths[0]

        def whole(key: bytes) -> bool:
            if len(key) != total:
                return False
            if not state:
                state.append(compile_all()[0].fullmatch)
            return state[0](key) is not None
        return whole
    head_len, tail_len = lengths[0], lengths[-1]
    min_len = max(1, sum(lengths))

    def matcher(key: bytes) -> bool:
        n = len(key)
        if n < min_len:
            return False
        if not state:
            regs = compile_all()
            state.append((regs[0].match if head_len else None, regs[-1].match if tail_len else None,
                          [r.search for r in regs[1:-1] if r is not None]))
        head_match, tail_match, middle_search = state[0]
        if head_match is not None and head_match(key) is None:
            return False
        end = n - tail_len
        if tail_match is not None and tail_match(key, end) is None:
            return False
        # Leftmost placement of each middle segment is optimal: it leaves
        # the most room for everything after it.
        pos = head_len
        for search in middle_search:
            m = search(key, pos, end)
            if m is None:
                return False
            pos = m.end()
        return True

    return matcher


def literal_prefix(pattern: bytes) -> bytes:
    """Bytes every key matching ``pattern`` (case-sensitively) starts with.

    Stops at the first unescaped ``*``, ``?`` or ``[``; ``\\x`` contributes
    ``x``.  Only valid for case-sensitive matching: with nocase a key may
    differ from the prefix in letter case, so callers must not use it then.
    """
    # Two C scans, not a Python step per byte (issue 7: PSUBSCRIBE and SCAN
    # compute this for every pattern, of any length).
    if b"\\" not in pattern:
        m = _FIRST_WILD.search(pattern)
        return pattern if m is None else pattern[:m.start()]
    lit = _LITERAL_RUN.match(pattern).group()
    return _UNESCAPE.sub(rb"\1", lit) if b"\\" in lit else lit


_LITERAL_RUN = re.compile(rb"(?:[^*?\[\\]|\\.|\\\Z)*", re.DOTALL)
_UNESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_FIRST_WILD = re.compile(rb"[*?\[]")


def is_match_all(pattern: bytes) -> bool:
    """True for ``*``, ``**``, ...: callers may skip matching entirely.

    Redis itself only short-circuits the exact pattern ``*``; ``**`` run
    through stringmatchlen excludes the empty key.  That one-key difference
    is accepted in exchange for letting callers skip the matcher.
    """
    return bool(pattern) and pattern.count(b"*") == len(pattern)
