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

Cost (issue 7).  With the compiled extension, ``compile_glob`` returns
native.Glob: Redis's own stringmatchlen loop in C, so a pattern of any
length costs nothing to compile and a match costs what it costs Redis.
The pure-Python matcher (``compile_glob_py``, also the specification the
tests hold the extension to) tokenizes with one C regex pass
(``_TOKEN.findall``: a token is a run of literals and escapes, a run of
``?``, a run of ``*`` or one set), one Python step per token and none per
byte; each distinct set is translated once, in a few steps per member (a
range never expands to its 256 bytes).  A pattern without ``[`` or ``\\``
splits on ``*`` runs in C.  Segment regexes are compiled on the first key
long enough to match (re's compiler is Python code, per regex item: the
one cost left per byte, and only without the extension).  Only patterns up
to ``CACHE_PATTERN_MAX_BYTES`` are cached (here and in ``re``'s own cache),
so caches stay bounded in bytes.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from .native import Glob as _NativeGlob

__all__ = ["compile_glob", "compile_glob_py", "literal_prefix", "is_match_all"]

CACHE_PATTERN_MAX_BYTES = 4096   # longer patterns are compiled each time, never kept
_MAX_NESTING = 1000

# One token per match, found by the C regex engine in one pass (issue 7: no
# Python step per byte).  Alternatives, in stringmatchlen's order: a run of
# stars; a run of '?'; a set ('[', optional '^', members -- an escape, a
# range whose start is neither ']' nor '\\', any other byte but ']', or a
# '\\' ending the pattern -- up to ']' or the end of the pattern); a run of
# literal bytes and escapes (a lone trailing '\\' is a literal backslash).
_TOKEN = re.compile(rb"(\*+)|(\?+)|\[(\^?)((?:\\.|[^\]\\]-.|[^\]\\]|\\\Z)*)\]?"
                    rb"|((?:[^*?\[\\]|\\.|\\\Z)+)", re.DOTALL)
# A set's members, in the same order: escape, range, single byte.
_SET_ITEM = re.compile(rb"\\(.)|([^\]\\])-(.)|(.)", re.DOTALL)
# Unescape a literal run: each "\\x" -> "x" (a trailing lone "\\" stays).
_UNESCAPE1 = re.compile(rb"\\?(.)", re.DOTALL)
_NEVER = object()   # a set no byte can satisfy


def _signed(b: int) -> int:
    # Redis compares range bounds as (signed) char.
    return b - 256 if b >= 128 else b


def _lower(c: int) -> int:
    # tolower() in the C locale: only ASCII letters fold.
    return c + 32 if 65 <= c <= 90 else c


def _translate(pattern: bytes, nocase: bool):
    """The pattern's segments (split at star runs) as (regex pieces, length),
    or _NEVER if it can never match.  One Python step per token (a token is
    a run of literals, of '?', of stars, or one set), none per byte."""
    pieces: list = []
    segments = [(pieces, 0)]
    length = 0
    sets: dict = {}
    escape = re.escape
    for star, anys, neg, body, lit in _TOKEN.findall(pattern):
        if lit:
            if b"\\" in lit:
                lit = b"".join(_UNESCAPE1.findall(lit))
            pieces.append(b"(?i:%s)" % escape(lit) if nocase else escape(lit))
            length += len(lit)
        elif anys:
            pieces.append(b"." if len(anys) == 1 else b".{%d}" % len(anys))
            length += len(anys)
        elif star:
            segments[-1] = (pieces, length)
            pieces = []
            length = 0
            segments.append((pieces, 0))
        else:
            key = (neg, body)
            rx = sets.get(key)
            if rx is None:
                rx = sets[key] = _set_regex(bool(neg), body, nocase)
            if rx is _NEVER:
                return _NEVER
            pieces.append(rx)
            length += 1
    segments[-1] = (pieces, length)
    return segments


def _set_regex(negate: bool, body: bytes, nocase: bool):
    """Regex class of one '[...]' set: a few steps per member, whatever the
    range (no 256-byte expansion)."""
    if not nocase and not negate and body and b"\\" not in body and b"-" not in body:
        return b"[" + re.escape(body) + b"]"      # plain members: one C pass
    spans: list = []      # unsigned (lo, hi) byte intervals
    for esc, r0, r1, one in _SET_ITEM.findall(body):
        if esc:
            # Escaped set members ignore nocase in Redis.
            b = esc[0]
            spans.append((b, b))
        elif one:
            b = one[0]
            spans.append((b, b))
            if nocase and (65 <= b <= 90 or 97 <= b <= 122):
                spans.append((b ^ 0x20, b ^ 0x20))
        else:
            lo, hi = _signed(r0[0]), _signed(r1[0])
            if lo > hi:
                lo, hi = hi, lo
            if not nocase:
                _add_signed(spans, lo, hi)
                continue
            # Member c iff tolower(c) is within [tolower(lo), tolower(hi)].
            lo, hi = _lower(lo), _lower(hi)
            _add_signed(spans, lo, min(hi, 64))       # below 'A'
            _add_signed(spans, max(lo, 91), hi)       # above 'Z' (a-z included)
            _add_signed(spans, max(lo, 97) - 32, min(hi, 122) - 32)   # A-Z fold into a-z
    if not spans:
        return b"[\\x00-\\xff]" if negate else _NEVER
    return b"".join([b"[^" if negate else b"["] + [_run(a, z) for a, z in spans] + [b"]"])


def _add_signed(spans: list, lo: int, hi: int) -> None:
    """Add the signed-char interval [lo, hi] as unsigned byte intervals."""
    if lo > hi:
        return
    if hi < 0:
        spans.append((lo + 256, hi + 256))
    elif lo >= 0:
        spans.append((lo, hi))
    else:
        spans.append((lo + 256, 255))
        spans.append((0, hi))


def _run(a: int, b: int) -> bytes:
    if a == b:
        return b"\\x%02x" % a
    return b"\\x%02x-\\x%02x" % (a, b)


def _never(key: bytes) -> bool:
    return False


def compile_glob(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """Return ``matcher(key) -> bool`` equal to Redis ``stringmatchlen``.

    Compiled matchers of short patterns are cached, so a repeated SCAN
    MATCH pays once; long ones are compiled in O(len) and not kept.
    """
    pattern = bytes(pattern)
    if _NativeGlob is not None:
        return _NativeGlob(pattern, nocase)     # stringmatchlen itself, in C: nothing to compile
    return compile_glob_py(pattern, nocase)


def compile_glob_py(pattern: bytes, nocase: bool = False) -> Callable[[bytes], bool]:
    """The pure-Python matcher (the specification; used without _native)."""
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
    segments = _translate(pattern, nocase)
    # An empty set can never be satisfied, and since the empty key only
    # matches the empty pattern, such a pattern matches nothing at all.
    if segments is _NEVER:
        return _never
    # len(segments) - 1 star groups; the last one recurses only if followed
    # by something, i.e. if the final segment is non-empty.
    recursing = len(segments) - 1 - (0 if segments[-1][1] else 1)
    if recursing > _MAX_NESTING:
        return _never
    return _lazy_matcher([n for _, n in segments], lambda: _uncached(
        pattern, lambda: [re.compile(b"".join(p), re.DOTALL) if n else None for p, n in segments]))


def _compile_plain(pattern: bytes, nocase: bool) -> Callable[[bytes], bool]:
    if not pattern:
        return lambda key: not key
    # Redis's nesting cap, counted before anything is compiled (C scans).
    stars = len(re.findall(rb"\*+", pattern))
    if stars - (1 if pattern.endswith(b"*") else 0) > _MAX_NESTING:
        return _never
    parts = re.split(rb"\*+", pattern)
    return _lazy_matcher([len(p) for p in parts], lambda: _uncached(
        pattern, lambda: [r for r, _ in _plain_segments(pattern, nocase)]))


def _uncached(pattern: bytes, compile_all):
    """Compile a matcher's segment regexes; for a long pattern, keep none of
    them in re's own cache (it holds its last 512 regexes, of any size)."""
    regs = compile_all()
    if len(pattern) > CACHE_PATTERN_MAX_BYTES:
        re.purge()
    return regs


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
