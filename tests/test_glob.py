"""Tests for repram_resp.glob against Redis's stringmatchlen.

Ground truth was frozen from a real redis-server 7.0.15 (Debian
7.0.15-1~deb12u10, which carries the CVE-2024-31228 recursion cap):

* CASES: each pattern was run as ``KEYS pattern`` over a keyspace holding
  every listed key; the (pattern, b"") rows for ``*`` / ``**`` came from
  ``PUBSUB CHANNELS pattern`` with a subscriber on the empty channel, because
  KEYS short-circuits the exact pattern ``*`` without calling the matcher.
* NOCASE_CASES: ``COMMAND LIST FILTERBY PATTERN`` (Redis matches command
  names with nocase=1), so every key is a real command name.
* The nesting-cap rows were checked with KEYS on a 1100-byte key.

No redis-server is needed to run these tests.  ``_stringmatchlen`` below is a
line-by-line port of the C function; it is checked against the frozen tables
and then used as the oracle for hypothesis, which explores far more patterns
than the tables can hold.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings, strategies as st

from repram_resp import glob as glob_mod, native
from repram_resp.glob import compile_glob, compile_glob_py, is_match_all, literal_prefix

# Both matchers: the pure-Python one (glob.py's regex translation, the
# specification) and, when built, _native's port of stringmatchlen, which
# compile_glob uses then.  Without the extension (REPRAM_NO_EXTENSIONS=1)
# only the first exists, and compile_glob is it.
IMPLS = [pytest.param(compile_glob_py, id="py")]
if native.AVAILABLE:
    IMPLS.append(pytest.param(native.Glob, id="native"))

# (pattern, key, matches) -- case-sensitive, as KEYS / SCAN MATCH use it.
CASES = [
    (b'h[^e]llo', b'hello', False),
    (b'h[^e]llo', b'hallo', True),
    (b'h[^e]llo', b'hbllo', True),
    (b'h[^e]llo', b'a*b', False),
    (b'h[^e]llo', b'axb', False),
    (b'h[^e]llo', b'h!llo', True),
    (b'h[^e]llo', b'y', False),
    (b'h[!e]llo', b'hello', True),
    (b'h[!e]llo', b'hallo', False),
    (b'h[!e]llo', b'hbllo', False),
    (b'h[!e]llo', b'a*b', False),
    (b'h[!e]llo', b'axb', False),
    (b'h[!e]llo', b'h!llo', True),
    (b'h[!e]llo', b'y', False),
    (b'a\\*b', b'hello', False),
    (b'a\\*b', b'hallo', False),
    (b'a\\*b', b'hbllo', False),
    (b'a\\*b', b'a*b', True),
    (b'a\\*b', b'axb', False),
    (b'a\\*b', b'h!llo', False),
    (b'a\\*b', b'y', False),
    (b'[z-x]', b'hello', False),
    (b'[z-x]', b'hallo', False),
    (b'[z-x]', b'hbllo', False),
    (b'[z-x]', b'a*b', False),
    (b'[z-x]', b'axb', False),
    (b'[z-x]', b'h!llo', False),
    (b'[z-x]', b'y', True),
    (b'a*b', b'hello', False),
    (b'a*b', b'hallo', False),
    (b'a*b', b'hbllo', False),
    (b'a*b', b'a*b', True),
    (b'a*b', b'axb', True),
    (b'a*b', b'h!llo', False),
    (b'a*b', b'y', False),
    (b'h?llo', b'hello', True),
    (b'h?llo', b'hallo', True),
    (b'h?llo', b'hbllo', True),
    (b'h?llo', b'a*b', False),
    (b'h?llo', b'axb', False),
    (b'h?llo', b'h!llo', True),
    (b'h?llo', b'y', False),
    (b'h[a-b]llo', b'hello', False),
    (b'h[a-b]llo', b'hallo', True),
    (b'h[a-b]llo', b'hbllo', True),
    (b'h[a-b]llo', b'a*b', False),
    (b'h[a-b]llo', b'axb', False),
    (b'h[a-b]llo', b'h!llo', False),
    (b'h[a-b]llo', b'y', False),
    (b'*', b'', False),
    (b'*', b'a', True),
    (b'*', b'*', True),
    (b'**', b'', False),
    (b'**', b'abc', True),
    (b'', b'', True),
    (b'', b'a', False),
    (b'a*', b'a', True),
    (b'a*', b'ab', True),
    (b'a*', b'ba', False),
    (b'*a', b'a', True),
    (b'*a', b'ba', True),
    (b'*a', b'ab', False),
    (b'*a*', b'bab', True),
    (b'*a*', b'bbb', False),
    (b'*a*', b'a', True),
    (b'a**b', b'ab', True),
    (b'a**b', b'axyb', True),
    (b'a**b', b'a', False),
    (b'?', b'', False),
    (b'?', b'a', True),
    (b'?', b'ab', False),
    (b'?', b'\n', True),
    (b'?', b'\x00', True),
    (b'??', b'a', False),
    (b'??', b'ab', True),
    (b'*?', b'', False),
    (b'*?', b'a', True),
    (b'h*llo', b'hllo', True),
    (b'h*llo', b'heeello', True),
    (b'h*llo', b'hell', False),
    (b'*[', b'a[', False),
    (b'*[', b'a', False),
    (b'*a*a*a*b', b'aaaaaaab', True),
    (b'*a*a*a*b', b'aaaaaa', False),
    (b'*a*a*a*b', b'abababab', True),
    (b'*?*?*', b'a', False),
    (b'*?*?*', b'ab', True),
    (b'a*b*c', b'abc', True),
    (b'a*b*c', b'acb', False),
    (b'a*b*c', b'abbbcc', True),
    (b'a*b*c', b'abcb', False),
    (b'heartbeat:*', b'heartbeat:', True),
    (b'heartbeat:*', b'heartbeat:1', True),
    (b'heartbeat:*', b'heartbeat', False),
    (b'heartbeat:*', b'Heartbeat:1', False),
    (b'\\*', b'*', True),
    (b'\\*', b'a', False),
    (b'\\*', b'\\*', False),
    (b'\\?', b'?', True),
    (b'\\?', b'a', False),
    (b'\\[a]', b'[a]', True),
    (b'\\[a]', b'a', False),
    (b'\\a', b'a', True),
    (b'\\a', b'\\a', False),
    (b'\\\\', b'\\', True),
    (b'\\\\', b'\\\\', False),
    (b'\\\\*', b'\\', True),
    (b'\\\\*', b'\\x', True),
    (b'\\\\*', b'*', False),
    (b'\\', b'\\', True),
    (b'\\', b'', False),
    (b'a\\', b'a\\', True),
    (b'a\\', b'a', False),
    (b'*\\', b'x\\', True),
    (b'*\\', b'\\', True),
    (b'*\\', b'x', False),
    (b'a\\*b*', b'a*b', True),
    (b'a\\*b*', b'a*bc', True),
    (b'a\\*b*', b'axb', False),
    (b'[]abc]', b']', False),
    (b'[]abc]', b'a', False),
    (b'[]abc]', b']abc]', False),
    (b'[]abc]', b'abc]', False),
    (b'[^]abc]', b'xabc]', True),
    (b'[^]abc]', b']abc]', True),
    (b'[^]abc]', b'abc]', False),
    (b'[^]abc]', b'x', False),
    (b'[]', b']', False),
    (b'[]', b'[]', False),
    (b'[]', b'x', False),
    (b'[^]', b'a', True),
    (b'[^]', b']', True),
    (b'[^]', b'^', True),
    (b'[^]', b'', False),
    (b'[^]', b'ab', False),
    (b'a[]b', b'ab', False),
    (b'a[]b', b'a]b', False),
    (b'a[^]b', b'axb', True),
    (b'a[^]b', b'ab', False),
    (b'a[^]b', b'a]b', True),
    (b'[]-a]', b']-a]', False),
    (b'[]-a]', b'-a]', False),
    (b'[]-a]', b'-', False),
    (b'[^]-a]', b'x-a]', True),
    (b'[^]-a]', b'-a]', False),
    (b'[!a]', b'!', True),
    (b'[!a]', b'a', True),
    (b'[!a]', b'b', False),
    (b'[^^]', b'^', False),
    (b'[^^]', b'a', True),
    (b'[\\^a]', b'^', True),
    (b'[\\^a]', b'a', True),
    (b'[\\^a]', b'\\', False),
    (b'[a^]', b'^', True),
    (b'[a^]', b'a', True),
    (b'[^a]', b'a', False),
    (b'[^a]', b'b', True),
    (b'[^a]', b'^', True),
    (b'[^a-c]', b'b', False),
    (b'[^a-c]', b'd', True),
    (b'[*]', b'*', True),
    (b'[*]', b'a', False),
    (b'[?]', b'?', True),
    (b'[?]', b'a', False),
    (b'[[]', b'[', True),
    (b'[[]', b'a', False),
    (b'[', b'[', False),
    (b'[', b'a', False),
    (b'[', b'', False),
    (b'[^', b'a', True),
    (b'[^', b'^', True),
    (b'[^', b'ab', False),
    (b'a[', b'a', False),
    (b'a[', b'a[', False),
    (b'a[', b'ab', False),
    (b'[ab', b'a', True),
    (b'[ab', b'b', True),
    (b'[ab', b'[ab', False),
    (b'[ab', b'ab', False),
    (b'[a-', b'a', True),
    (b'[a-', b'-', True),
    (b'[a-', b'b', False),
    (b'[a-', b'[a-', False),
    (b'[a-b', b'a', True),
    (b'[a-b', b'b', True),
    (b'[a-b', b'c', False),
    (b'[a-b', b'-', False),
    (b'[^ab', b'a', False),
    (b'[^ab', b'c', True),
    (b'x[ab', b'xa', True),
    (b'x[ab', b'xab', False),
    (b'x[ab', b'x', False),
    (b'[\\]', b']', True),
    (b'[\\]', b'\\', False),
    (b'[\\', b'\\', True),
    (b'[\\', b'[', False),
    (b'[a\\]', b'a', True),
    (b'[a\\]', b']', True),
    (b'[a\\]', b'\\', False),
    (b'[z-a]', b'm', True),
    (b'[z-a]', b'a', True),
    (b'[z-a]', b'z', True),
    (b'[z-a]', b'-', False),
    (b'[a-]', b'a', True),
    (b'[a-]', b']', True),
    (b'[a-]', b'^', True),
    (b'[a-]', b'_', True),
    (b'[a-]', b'`', True),
    (b'[a-]', b'b', False),
    (b'[a-]', b'-', False),
    (b'[a-]x]', b'ax', False),
    (b'[a-]x]', b'x', True),
    (b'[a-]x]', b']', True),
    (b'[a-]x]', b'a', True),
    (b'[a-]x]', b'x]', False),
    (b'[a-]x]', b'_', True),
    (b'[a-]]', b'_', True),
    (b'[a-]]', b']', True),
    (b'[a-]]', b']]', False),
    (b'[a-]]', b'b', False),
    (b'[-a]', b'-', True),
    (b'[-a]', b'a', True),
    (b'[-a]', b'b', False),
    (b'[-]', b'-', True),
    (b'[-]', b'a', False),
    (b'[---]', b'-', True),
    (b'[---]', b']', False),
    (b'[ab-]', b'-', False),
    (b'[ab-]', b'b', True),
    (b'[ab-]', b'c', False),
    (b'[a-b-c]', b'c', True),
    (b'[a-b-c]', b'-', True),
    (b'[a-b-c]', b'b', True),
    (b'[a-b-c]', b'd', False),
    (b'[a-a]', b'a', True),
    (b'[a-a]', b'b', False),
    (b'[0-9]*', b'5x', True),
    (b'[0-9]*', b'x5', False),
    (b'[\\]]', b']', True),
    (b'[\\]]', b'\\', False),
    (b'[\\\\]', b'\\', True),
    (b'[\\\\]', b']', False),
    (b'[a\\-z]', b'-', True),
    (b'[a\\-z]', b'b', False),
    (b'[a\\-z]', b'a', True),
    (b'[a\\-z]', b'z', True),
    (b'[\\a-z]', b'a', True),
    (b'[\\a-z]', b'b', False),
    (b'[\\a-z]', b'-', True),
    (b'[\\a-z]', b'z', True),
    (b'[a-\\z]', b'z', True),
    (b'[a-\\z]', b'b', False),
    (b'[a-\\z]', b'^', True),
    (b'[a-\\z]', b'\\', True),
    (b'[a-\\z]', b'a', True),
    (b'[\\^]', b'^', True),
    (b'[\\^]', b'a', False),
    (b'[^\\]]', b']', False),
    (b'[^\\]]', b'a', True),
    (b'[\\-]', b'-', True),
    (b'[\\-]', b'\\', False),
    (b'a\x00b', b'a\x00b', True),
    (b'a\x00b', b'a', False),
    (b'a\x00b', b'a\x00', False),
    (b'[\x00-\x05]', b'\x03', True),
    (b'[\x00-\x05]', b'\x06', False),
    (b'*\n*', b'a\nb', True),
    (b'*\n*', b'ab', False),
    (b'[\n]', b'\n', True),
    (b'[\n]', b'n', False),
    (b'[a-\xff]', b'\x00', True),
    (b'[a-\xff]', b'\xff', True),
    (b'[a-\xff]', b'b', False),
    (b'[a-\xff]', b'\x80', False),
    (b'[a-\xff]', b'a', True),
    (b'[\x7f-\x80]', b'a', True),
    (b'[\x7f-\x80]', b'\xc3', True),
    (b'[\x7f-\x80]', b'\x00', True),
    (b'[\x80-\xff]', b'\x80', True),
    (b'[\x80-\xff]', b'\xc3', True),
    (b'[\x80-\xff]', b'\xff', True),
    (b'[\x80-\xff]', b'a', False),
    (b'[\x00-\x80]', b'a', False),
    (b'[\x00-\x80]', b'\x81', True),
    (b'[\x00-\x80]', b'\x7f', False),
    (b'\xc3\xa9*', b'\xc3\xa9t\xc3\xa9', True),
    (b'\xc3\xa9*', b'e', False),
    (b'[^\x80-\xff]', b'a', True),
    (b'[^\x80-\xff]', b'\x90', False),
]

# (pattern, key, matches) with nocase=1.
NOCASE_CASES = [
    (b'GET', b'get', True),
    (b'GET', b'set', False),
    (b'G?T', b'get', True),
    (b'\\GET', b'get', True),
    (b'G\\ET', b'get', True),
    (b'[G]et', b'get', True),
    (b'[\\G]et', b'get', False),
    (b'[\\g]et', b'get', True),
    (b'[^G]et', b'get', False),
    (b'[^G]et', b'set', True),
    (b'[A-Z]et', b'get', True),
    (b'[A-z]*', b'get', True),
    (b'[Z-a]*', b'get', False),
    (b'[Z-a]*', b'zadd', False),
    (b'[a-Z]*', b'get', False),
    (b'[@-A]cl', b'acl', True),
    (b'[_-a]cl', b'acl', True),
    (b'[[-`]cl', b'acl', False),
    (b'CONFIG|*', b'config|get', True),
    (b'CONFIG|*', b'config', False),
    (b'*|GET', b'config|get', True),
    (b'*|GET', b'get', False),
    (b'[F-H]ET*', b'get', True),
    (b'[F-H]ET*', b'getdel', True),
    (b'[F-H]ET*', b'set', False),
    (b'[^F-H]ET', b'get', False),
    (b'[^F-H]ET', b'set', True),
]


# --- oracle: line-by-line port of stringmatchlen_impl (redis src/util.c) ---


def _signed(b: int) -> int:
    return b - 256 if b >= 128 else b


def _tolower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c


def _stringmatchlen(pattern: bytes, string: bytes, nocase: bool = False) -> bool:
    # C reads one byte past the end of both buffers (their NUL terminators);
    # at() mimics that so the port keeps the exact control flow.
    def pat(i: int) -> int:
        return pattern[i] if 0 <= i < len(pattern) else 0

    def at(i: int) -> int:
        return string[i] if 0 <= i < len(string) else 0

    skip_longer = [False]

    def impl(pi: int, pl: int, si: int, sl: int, nesting: int) -> bool:
        if nesting > 1000:
            return False
        while pl and sl:
            c = pat(pi)
            if c == ord("*"):
                while pl and pat(pi + 1) == ord("*"):
                    pi += 1
                    pl -= 1
                if pl == 1:
                    return True
                while sl:
                    if impl(pi + 1, pl - 1, si, sl, nesting + 1):
                        return True
                    if skip_longer[0]:
                        return False
                    si += 1
                    sl -= 1
                skip_longer[0] = True
                return False
            elif c == ord("?"):
                si += 1
                sl -= 1
            elif c == ord("["):
                pi += 1
                pl -= 1
                negate = pat(pi) == ord("^")
                if negate:
                    pi += 1
                    pl -= 1
                match = False
                while True:
                    if pat(pi) == ord("\\") and pl >= 2:
                        pi += 1
                        pl -= 1
                        if pat(pi) == at(si):
                            match = True
                    elif pat(pi) == ord("]"):
                        break
                    elif pl == 0:
                        pi -= 1
                        pl += 1
                        break
                    elif pl >= 3 and pat(pi + 1) == ord("-"):
                        start, end, ch = _signed(pat(pi)), _signed(pat(pi + 2)), _signed(at(si))
                        if start > end:
                            start, end = end, start
                        if nocase:
                            start, end, ch = _tolower(start), _tolower(end), _tolower(ch)
                        pi += 2
                        pl -= 2
                        if start <= ch <= end:
                            match = True
                    elif not nocase:
                        if pat(pi) == at(si):
                            match = True
                    elif _tolower(_signed(pat(pi))) == _tolower(_signed(at(si))):
                        match = True
                    pi += 1
                    pl -= 1
                if negate:
                    match = not match
                if not match:
                    return False
                si += 1
                sl -= 1
            else:
                if c == ord("\\") and pl >= 2:
                    pi += 1
                    pl -= 1
                if not nocase:
                    if pat(pi) != at(si):
                        return False
                elif _tolower(_signed(pat(pi))) != _tolower(_signed(at(si))):
                    return False
                si += 1
                sl -= 1
            pi += 1
            pl -= 1
            if sl == 0:
                while pat(pi) == ord("*"):
                    pi += 1
                    pl -= 1
                break
        return pl == 0 and sl == 0

    return impl(0, len(pattern), 0, len(string), 0)


# --- frozen ground truth ---


def _ids(rows):
    return [f"{p!r}~{k!r}" for p, k, _ in rows]


@pytest.mark.parametrize("pattern,key,expected", CASES, ids=_ids(CASES))
def test_matches_redis(pattern, key, expected):
    assert compile_glob(pattern)(key) is expected


@pytest.mark.parametrize("pattern,key,expected", NOCASE_CASES, ids=_ids(NOCASE_CASES))
def test_matches_redis_nocase(pattern, key, expected):
    assert compile_glob(pattern, nocase=True)(key) is expected


def test_oracle_agrees_with_redis():
    for pattern, key, expected in CASES:
        assert _stringmatchlen(pattern, key) is expected, (pattern, key)
    for pattern, key, expected in NOCASE_CASES:
        assert _stringmatchlen(pattern, key, True) is expected, (pattern, key)


def test_table_is_substantial():
    assert len(CASES) >= 150
    assert any(e for *_, e in CASES) and not all(e for *_, e in CASES)


def test_documented_examples():
    keys = [b"hello", b"hallo", b"hbllo", b"a*b", b"axb", b"h!llo", b"y"]

    def sel(p):
        m = compile_glob(p)
        return sorted(k for k in keys if m(k))

    assert sel(rb"h[^e]llo") == [b"h!llo", b"hallo", b"hbllo"]
    assert sel(rb"h[!e]llo") == [b"h!llo", b"hello"]
    assert sel(rb"a\*b") == [b"a*b"]
    assert sel(rb"[z-x]") == [b"y"]
    assert sel(rb"a*b") == [b"a*b", b"axb"]
    assert sel(rb"h?llo") == [b"h!llo", b"hallo", b"hbllo", b"hello"]
    assert sel(rb"h[a-b]llo") == [b"hallo", b"hbllo"]


# Verified with KEYS on b"a" * 1100: Redis gives up once the recursion through
# non-trailing '*' groups exceeds 1000; a trailing '*' does not recurse.
@pytest.mark.parametrize(
    "pattern,expected",
    [
        (b"a*" * 999 + b"a", True),
        (b"a*" * 1000 + b"a", True),
        (b"a*" * 1001 + b"a", False),
        (b"a*" * 1002 + b"a", False),
        (b"a*" * 1001, True),
        (b"a*" * 1002, False),
        (b"a**" * 1001, True),
    ],
    ids=["999", "1000", "1001", "1002", "1001-trailing", "1002-trailing", "doubled-stars"],
)
def test_nesting_cap(pattern, expected):
    assert compile_glob(pattern)(b"a" * 1100) is expected


def test_hostile_pattern_is_fast():
    # Naive backtracking is polynomial in the number of stars here.
    pattern = b"*a" * 40 + b"*b*"
    key = b"a" * 20000
    m = compile_glob(pattern)
    t0 = time.perf_counter()
    assert m(key) is False
    assert m(key + b"bc") is True
    assert time.perf_counter() - t0 < 2.0


# --- literal_prefix / is_match_all ---


@pytest.mark.parametrize(
    "pattern,prefix",
    [
        (b"heartbeat:*", b"heartbeat:"),
        (rb"a\*b*", b"a*b"),
        (b"*x", b""),
        (b"", b""),
        (b"abc", b"abc"),
        (b"ab?c", b"ab"),
        (b"ab[c]d", b"ab"),
        (rb"a\[b]*", b"a[b]"),
        (rb"\\*", b"\\"),
        (b"ab\\", b"ab\\"),
        (b"a]b^-!*", b"a]b^-!"),
        (b"\xc3\xa9\x00*", b"\xc3\xa9\x00"),
    ],
)
def test_literal_prefix(pattern, prefix):
    assert literal_prefix(pattern) == prefix


@pytest.mark.parametrize(
    "pattern,expected",
    [(b"*", True), (b"**", True), (b"***", True), (b"", False), (b"*a", False),
     (b"?", False), (rb"\*", False), (b"*?*", False), (b"[*]", False)],
)
def test_is_match_all(pattern, expected):
    assert is_match_all(pattern) is expected


# --- properties ---

META = b"*?[]^-\\!"
pattern_bytes = st.binary(max_size=10) | st.lists(
    st.sampled_from(list(b"ab" + META + b"Az\x00\xff\x80")), max_size=12
).map(bytes)
key_bytes = st.binary(max_size=10) | st.lists(
    st.sampled_from(list(b"ab" + META + b"ABz\x00\xff\x80")), max_size=12
).map(bytes)
literal_bytes = st.lists(
    st.integers(0, 255).filter(lambda b: b not in b"*?[\\"), min_size=1, max_size=12
).map(bytes)


@settings(max_examples=1500, deadline=None)
@given(pattern_bytes, key_bytes, st.booleans())
def test_equals_stringmatchlen_port(pattern, key, nocase):
    assert compile_glob(pattern, nocase)(key) is _stringmatchlen(pattern, key, nocase)


@settings(max_examples=500, deadline=None)
@given(pattern_bytes, st.booleans())
def test_equals_port_on_keys_derived_from_pattern(pattern, nocase):
    # Random keys rarely match random patterns; keys carved from the pattern
    # itself exercise the matching branches.
    for key in {pattern, pattern.replace(b"*", b""), pattern.replace(b"*", b"ab"),
                pattern.replace(b"\\", b""), pattern.swapcase(), pattern[1:], pattern[:-1]}:
        assert compile_glob(pattern, nocase)(key) is _stringmatchlen(pattern, key, nocase)


@given(literal_bytes, key_bytes)
def test_literal_pattern_matches_only_itself(literal, key):
    m = compile_glob(literal)
    assert m(literal)
    assert m(key) is (key == literal)


@given(st.binary(min_size=1, max_size=20))
def test_fully_escaped_key_matches_only_itself(key):
    pattern = b"".join(b"\\" + bytes([b]) for b in key)
    assert compile_glob(pattern)(key)
    assert not compile_glob(pattern)(key + b"x")
    assert literal_prefix(pattern) == key


@settings(max_examples=1000)
@given(pattern_bytes, key_bytes)
def test_literal_prefix_prefixes_every_match(pattern, key):
    prefix = literal_prefix(pattern)
    if compile_glob(pattern)(key):
        assert key.startswith(prefix)


@given(st.binary(min_size=1, max_size=30), st.integers(1, 5))
def test_star_matches_every_nonempty_key(key, stars):
    pattern = b"*" * stars
    assert is_match_all(pattern)
    assert compile_glob(pattern)(key)


def test_star_does_not_match_empty_key():
    # stringmatchlen("*", "") is 0; KEYS/SCAN only see "" via their
    # exact-"*" shortcut (callers use is_match_all for that).
    assert not compile_glob(b"*")(b"")
    assert compile_glob(b"")(b"")


@given(pattern_bytes, key_bytes)
def test_nocase_is_superset_for_lowercase(pattern, key):
    # Folding can only widen matches for patterns without brackets.
    if b"[" not in pattern and compile_glob(pattern)(key):
        assert compile_glob(pattern, True)(key)


# --- both implementations against the port (issue 7) ---------------------------

@pytest.mark.parametrize("impl", IMPLS)
def test_tables_on_each_implementation(impl):
    for pattern, key, expected in CASES:
        assert impl(pattern, False)(key) is expected, (pattern, key)
    for pattern, key, expected in NOCASE_CASES:
        assert impl(pattern, True)(key) is expected, (pattern, key)


def test_compile_glob_uses_the_extension_when_built():
    m = compile_glob(b"a[b-c]*")
    if native.AVAILABLE:
        assert isinstance(m, native.Glob)
    else:
        assert native.Glob is None and m is compile_glob_py(b"a[b-c]*")    # the cached one


# Patterns rich in sets: ranges (reversed, ending in ']', crossing the signed
# 0x80 boundary), escapes inside and outside sets, '^', unterminated sets,
# letters of both cases for nocase.
SET_ALPHABET = list(b"abAZ[]^-\\*?!`@_{\x00\x7f\x80\xc3\xff")
set_patterns = st.lists(st.sampled_from(SET_ALPHABET), max_size=24).map(bytes)
set_keys = st.lists(st.sampled_from(list(b"abAZ[]^-\\*?!`@_{\x00\x7f\x80\xc3\xff")),
                    max_size=10).map(bytes)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=700, deadline=None)
@given(pattern=set_patterns, key=set_keys, nocase=st.booleans())
def test_each_implementation_equals_the_port(impl, pattern, key, nocase):
    assert impl(pattern, nocase)(key) is _stringmatchlen(pattern, key, nocase)


@pytest.mark.parametrize("impl", IMPLS)
@settings(max_examples=300, deadline=None)
@given(pattern=set_patterns, nocase=st.booleans(), data=st.data())
def test_each_implementation_on_keys_that_fit_the_pattern(impl, pattern, nocase, data):
    # A key built to match: each element replaced by a byte it may accept
    # (or a random one), so the set branches are exercised on both outcomes.
    key = bytes(data.draw(st.lists(st.sampled_from(list(b"aAbZ]^-\\\x80\xff")),
                                   min_size=len(pattern) // 3, max_size=len(pattern))))
    for k in (key, pattern.replace(b"[", b"").replace(b"]", b""), pattern[1:]):
        assert impl(pattern, nocase)(k) is _stringmatchlen(pattern, k, nocase)


def test_long_patterns_compile_without_per_byte_objects():
    # 60 KB of '[a-z]?' (the attack) and 64 KB of escapes: the Python path
    # tokenizes with one C regex pass and translates each distinct set once;
    # the native path compiles nothing at all.
    import tracemalloc
    pattern = b"[a-z]?" * 10000 + b"*"
    calls = []
    real = glob_mod._set_regex

    def counting(*a):
        calls.append(a)
        return real(*a)
    glob_mod._set_regex = counting
    try:
        segs = glob_mod._translate(pattern, False)
    finally:
        glob_mod._set_regex = real
    assert len(calls) == 1 and len(segs) == 2 and segs[0][1] == 20000
    for impl in [p.values[0] for p in IMPLS]:
        m = impl(pattern, False)
        key = b"k" * 20000 + b"tail"
        assert m(key) and not m(b"K" + key[1:]) and not m(key[:19999])
    if native.AVAILABLE:
        big = b"\\x" * 500_000 + b"[^a-z]*"
        yes, no = b"x" * 500_000 + b"!", b"x" * 500_000 + b"a"
        tracemalloc.start()
        try:
            m = native.Glob(big)
            assert m(yes) and not m(no)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 * 1024      # no copy of the pattern, no tokens


def test_native_matcher_takes_any_bytes_like_key():
    if not native.AVAILABLE:
        assert compile_glob(b"a?")(bytearray(b"ab"))
        return
    m = native.Glob(b"a?")
    assert m(bytearray(b"ab")) and m(memoryview(b"ax")) and not m(b"a")
