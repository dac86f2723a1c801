"""Pure unit tests of the sans-I/O wire layer: ``RequestParser``,
``split_inline`` and the reply encoders.  No sockets, no event loop.

Rules checked here:
* every request parses the same fed whole, split at every byte position, and
  one byte at a time (the parser keeps its state across reads);
* Redis's protocol errors, word for word, are sticky, and the commands
  complete before the error are still returned;
* limits are checked on the header, before anything is buffered for it;
* the hiredis fast path accepts exactly what the Python parser accepts
  (hypothesis, including malformed elements hiredis would happily decode);
* inline splitting is Redis's ``sdssplitargs`` (checked against a line-by-line
  transliteration of the C function);
* RESP2 and RESP3 encodings are byte-exact.
"""

from __future__ import annotations

import tracemalloc

import hiredis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repram_resp import errors
from repram_resp.protocol import (
    INLINE_MAX_BYTES,
    OK,
    RESP2,
    RESP3,
    RequestParser,
    Resp2,
    Resp3,
    bulk,
    encode_command,
    encode_error,
    integer,
    parse_ll,
    simple,
    split_inline,
)

HYPO = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Redis's protocol error texts (networking.c), after "-ERR " on the wire.
INVALID_MBULK = "Protocol error: invalid multibulk length"
INVALID_BULK = "Protocol error: invalid bulk length"
INLINE_TOO_BIG = "Protocol error: too big inline request"
MBULK_COUNT_TOO_BIG = "Protocol error: too big mbulk count string"
BULK_COUNT_TOO_BIG = "Protocol error: too big bulk count string"
UNBALANCED = "Protocol error: unbalanced quotes in request"
QUERY_BUFFER = "Protocol error: query buffer limit exceeded (client-query-buffer-limit)"


def expected_dollar(c: str) -> str:
    return "Protocol error: expected '$', got '%s'" % c


# -- helpers -----------------------------------------------------------------

def run(chunks, **limits):
    """Feed chunks to a fresh parser: (all commands, error text or None)."""
    p = RequestParser(**limits)
    out = []
    for c in chunks:
        out += p.feed(c)
    return out, _msg(p.error)


def _msg(err):
    # errors.py may carry Redis's "ERR " word in the constant or leave it to
    # the writer; the text after it is what Redis defines.  The wire form is
    # checked on its own in test_protocol_errors_on_the_wire_start_with_err.
    if err is not None and err.startswith("ERR "):
        return err[4:]
    return err


def exact(data: bytes, **limits):
    """The exact (pure Python) parser on the whole input, no hiredis."""
    p = RequestParser(**limits)
    return p._slow(data), _msg(p.error)


def chunkings(data: bytes):
    """Whole, every two-way split, one byte at a time."""
    yield [data]
    for i in range(1, len(data)):
        yield [data[:i], data[i:]]
    yield [data[i:i + 1] for i in range(len(data))]


def check(data: bytes, cmds, err=None, **limits):
    """data parses to (cmds, err) however it is chunked, and the fast path
    agrees with the exact parser."""
    assert exact(data, **limits) == (cmds, err)
    for chunks in chunkings(data):
        got = run(chunks, **limits)
        assert got == (cmds, err), ("chunks", [len(c) for c in chunks])


def cmd(*args) -> bytes:
    return encode_command(*args)


# -- well-formed requests ------------------------------------------------------

def test_multibulk():
    check(cmd(b"GET", b"k"), [[b"GET", b"k"]])
    check(cmd(b"SET", b"key", b"value", b"EX", b"10"),
          [[b"SET", b"key", b"value", b"EX", b"10"]])


def test_multibulk_empty_argument():
    check(cmd(b"SET", b"", b""), [[b"SET", b"", b""]])


@pytest.mark.parametrize("line, argv", [
    (b"PING\r\n", [b"PING"]),
    (b"PING\n", [b"PING"]),                       # bare LF, as telnet/nc may send
    (b"  GET   k  \r\n", [b"GET", b"k"]),
    (b"\tGET\tk\r\n", [b"GET", b"k"]),
    (b'SET "a b" "c d" EX 10\r\n', [b"SET", b"a b", b"c d", b"EX", b"10"]),
    (b"GET a\rb\r\n", [b"GET", b"a", b"b"]),       # a lone CR separates words
])
def test_inline(line, argv):
    check(line, [argv])


def test_empty_inline_lines_are_skipped():
    check(b"\r\n\n   \r\nPING\r\n\r\n", [[b"PING"]])


def test_inline_without_newline_waits():
    p = RequestParser()
    assert p.feed(b"PING") == []
    assert p.error is None
    assert p.pending_bytes == 4
    assert p.feed(b"\r\n") == [[b"PING"]]
    assert p.pending_bytes == 0


def test_zero_and_negative_multibulk_are_skipped():
    check(b"*0\r\n*-1\r\n*-5\r\n" + cmd(b"PING") + b"*0\r\n", [[b"PING"]])
    check(b"*0\r\n", [])
    check(b"*-1\r\n", [])


def test_mixed_pipeline():
    data = (cmd(b"SET", b"k", b"v", b"EX", b"10") + b"PING\r\n" + b"*0\r\n"
            + cmd(b"GET", b"k") + b"\r\n" + b'ECHO "x y"\r\n' + b"*-1\r\n"
            + cmd(b"MGET", b"a", b"b", b"c"))
    check(data, [[b"SET", b"k", b"v", b"EX", b"10"], [b"PING"], [b"GET", b"k"],
                 [b"ECHO", b"x y"], [b"MGET", b"a", b"b", b"c"]])


@pytest.mark.parametrize("value", [
    b"a\r\nb", b"\r\n", b"\x00", b"nul\x00in\x00side", b"\xff\xfe\x80",
    b"*1\r\n$1\r\na\r\n",            # a whole RESP command as a value
    b"$3\r\nabc", b"-ERR x\r\n", b"+OK", b"\r", b"\n",
])
def test_binary_safe_arguments(value):
    data = cmd(b"SET", value, value, b"EX", b"1") + cmd(b"GET", value)
    check(data, [[b"SET", value, value, b"EX", b"1"], [b"GET", value]])


def test_payload_starting_with_star_after_its_header():
    # A large value is often sent by clients in a separate write right after
    # its "$n\r\n" header; if it starts with '*' it must not be taken for a
    # new command (the fast path only runs when the parser holds nothing).
    value = b"*1\r\n$3\r\nabc"
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % len(value)
    assert run([head, value + b"\r\n"]) == ([[b"SET", b"k", value]], None)
    head = b"*2\r\n$3\r\nSET\r\n"
    assert run([head, b"$1\r\nk\r\n"]) == ([[b"SET", b"k"]], None)


def test_read_ending_between_two_elements():
    # hiredis keeps a half-read array in its task stack with has_data()
    # False; the rest of the command must not be lost.
    assert run([b"*2\r\n$3\r\nGET\r\n", b"$1\r\nk\r\n"]) == ([[b"GET", b"k"]], None)
    assert run([cmd(b"PING") + b"*2\r\n$3\r\nGET\r\n", b"$1\r\nk\r\n"]) == (
        [[b"PING"], [b"GET", b"k"]], None)
    # ... and a next read starting with '*' there is a protocol error, as in Redis.
    assert run([b"*2\r\n$3\r\nGET\r\n", cmd(b"PING")]) == ([], expected_dollar("*"))


def test_parser_is_reusable_after_many_reads():
    p = RequestParser()
    for i in range(2000):
        c = cmd(b"SET", b"k%d" % i, b"v" * (i % 50), b"EX", b"10")
        assert p.feed(c) == [[b"SET", b"k%d" % i, b"v" * (i % 50), b"EX", b"10"]]
    assert p.pending_bytes == 0 and p.error is None


def test_large_bulk_in_many_reads():
    value = bytes(range(256)) * 4096        # 1 MiB
    data = cmd(b"SET", b"big", value, b"EX", b"10")
    p = RequestParser()
    got = []
    for i in range(0, len(data), 65536):
        got += p.feed(data[i:i + 65536])
    assert got == [[b"SET", b"big", value, b"EX", b"10"]]
    assert p.pending_bytes == 0


# -- inline quoting: sdssplitargs -------------------------------------------------

@pytest.mark.parametrize("line, argv", [
    (b'"a b"', [b"a b"]),
    (b'""', [b""]),
    (b"''", [b""]),
    (b'GET ""', [b"GET", b""]),
    (b'"\\x41\\x4a\\x7a\\xff\\x00"', [b"AJz\xff\x00"]),
    (b'"\\x4"', [b"x4"]),                          # not two hex digits: plain escape
    (b'"\\xZZ"', [b"xZZ"]),
    (b'"\\n\\r\\t\\b\\a\\"\\\\\\z"', [b"\n\r\t\b\a\"\\z"]),
    (b"'it\\'s'", [b"it's"]),
    (b"'a\\nb'", [b"a\\nb"]),                      # no escapes in single quotes
    (b"'\\x41'", [b"\\x41"]),
    (b"'say \"hi\"'", [b'say "hi"']),
    (b'"it\'s"', [b"it's"]),
    (b'ab"cd"', [b"abcd"]),                        # a quote may open mid-word
    (b'ab"c d" e', [b"abc d", b"e"]),
    (b'"a"\tb', [b"a", b"b"]),
    (b'"a"\x0bb', [b"a", b"b"]),                   # isspace() after a closing quote
    (b"a\x0bb", [b"a\x0bb"]),                      # ...but \v does not end a bare word
    (b"\x0b\x0c a", [b"a"]),                       # leading isspace() is skipped
    (b"GET a\x00b c", [b"GET", b"a"]),             # NUL ends the C string
    (b'"a"\x00junk', [b"a"]),
    (b"", []),
    (b"   ", []),
])
def test_split_inline(line, argv):
    assert split_inline(line) == argv


@pytest.mark.parametrize("line", [
    b'"abc', b"'abc", b'"a"b', b"'a'b", b'"abc\\"', b"'abc\\'", b'a"b c"d',
    b'"a\x00b"', b'"a\\', b'x "', b"x '",
])
def test_split_inline_unbalanced(line):
    assert split_inline(line) is None


def sdssplitargs(line: bytes):
    """Line-by-line transliteration of Redis's sds.c ``sdssplitargs`` over a
    NUL-terminated buffer (C locale isspace)."""
    s = line + b"\0"
    p = 0
    vector = []

    def isspace(c):
        return c in b" \t\n\v\f\r"

    def is_hex(c):
        return c in b"0123456789abcdefABCDEF"
    while True:
        while s[p] and isspace(s[p]):
            p += 1
        if not s[p]:
            return vector
        inq = insq = done = False
        current = bytearray()
        while not done:
            c = s[p]
            if inq:
                if c == ord("\\") and s[p + 1] == ord("x") and is_hex(s[p + 2]) and is_hex(s[p + 3]):
                    current.append(int(s[p + 2:p + 4], 16))
                    p += 3
                elif c == ord("\\") and s[p + 1]:
                    p += 1
                    current.append({ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8,
                                    ord("a"): 7}.get(s[p], s[p]))
                elif c == ord('"'):
                    if s[p + 1] and not isspace(s[p + 1]):
                        return None
                    done = True
                elif not c:
                    return None
                else:
                    current.append(c)
            elif insq:
                if c == ord("\\") and s[p + 1] == ord("'"):
                    p += 1
                    current.append(ord("'"))
                elif c == ord("'"):
                    if s[p + 1] and not isspace(s[p + 1]):
                        return None
                    done = True
                elif not c:
                    return None
                else:
                    current.append(c)
            else:
                if c in b" \n\r\t\0":
                    done = True
                elif c == ord('"'):
                    inq = True
                elif c == ord("'"):
                    insq = True
                else:
                    current.append(c)
            if s[p]:
                p += 1
        vector.append(bytes(current))


@HYPO
@given(st.lists(st.sampled_from([b"a", b"b", b" ", b"\t", b"\x0b", b"\x0c", b"\r", b"\x00",
                                 b'"', b"'", b"\\", b"x", b"4", b"f", b"n", b"\xff"]),
                max_size=24).map(b"".join))
@example(b'"\\x4f"')
@example(b"'\\''")
def test_split_inline_matches_sdssplitargs(line):
    assert split_inline(line) == sdssplitargs(line)


# -- protocol errors ---------------------------------------------------------------

PREFIX = cmd(b"PING") + b"ECHO hi\r\n"     # complete before the error: still returned
PREFIX_CMDS = [[b"PING"], [b"ECHO", b"hi"]]


@pytest.mark.parametrize("bad, err", [
    (b"*x\r\n", INVALID_MBULK),
    (b"*\r\n", INVALID_MBULK),
    (b"*1a\r\n", INVALID_MBULK),
    (b"*01\r\n", INVALID_MBULK),
    (b"*+1\r\n", INVALID_MBULK),
    (b"*-0\r\n", INVALID_MBULK),
    (b"* 1\r\n", INVALID_MBULK),
    (b"*99999999999999999999\r\n", INVALID_MBULK),   # overflows a long long
    (b"*1048577\r\n", INVALID_MBULK),                # > proto-max-multibulk-len
    (b"*4294967295\r\n", INVALID_MBULK),             # hiredis cannot allocate this
    (b"*1\r\n$99999999999\r\n", INVALID_BULK),       # > proto-max-bulk-len
    (b"*1\r\n$536870913\r\n", INVALID_BULK),
    (b"*1\r\n$-1\r\n", INVALID_BULK),
    (b"*1\r\n$-5\r\n", INVALID_BULK),
    (b"*1\r\n$x\r\n", INVALID_BULK),
    (b"*1\r\n$\r\n", INVALID_BULK),
    (b"*1\r\n$03\r\nabc\r\n", INVALID_BULK),
    (b"*1\r\n$+3\r\nabc\r\n", INVALID_BULK),
    (b"*1\r\nx\r\n", expected_dollar("x")),
    (b"*2\r\n$3\r\nGET\r\n:5\r\n", expected_dollar(":")),
    (b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nx\r\n", expected_dollar("*")),
    (b"*1\r\n-ERR boom\r\n", expected_dollar("-")),
    (b"*1\r\n_\r\n", expected_dollar("_")),
    (b"*1\r\n%1\r\n$1\r\na\r\n$1\r\nb\r\n", expected_dollar("%")),
    (b'SET "a b\r\n', UNBALANCED),
    (b"SET 'a'b\r\n", UNBALANCED),
])
def test_protocol_errors(bad, err):
    check(bad, [], err)
    check(PREFIX + bad, PREFIX_CMDS, err)


def test_error_is_sticky():
    p = RequestParser()
    assert p.feed(b"PING\r\n*1\r\n$x\r\nPING\r\n") == [[b"PING"]]
    assert _msg(p.error) == INVALID_BULK
    assert p.feed(b"PING\r\n") == []
    assert p.feed(cmd(b"PING")) == []
    assert p.pending_bytes == 0


def test_too_big_inline_request():
    # Redis refuses more than 64 KiB buffered without a '\n'; the parser
    # applies that to the line itself so the verdict never depends on how
    # the line was split into reads.
    line = b"x" * INLINE_MAX_BYTES
    p = RequestParser()
    assert p.feed(line) == [] and p.error is None          # exactly 64 KiB: still waiting
    assert p.feed(b"\n") == [[line]]
    ok = line[1:] + b"\r\n"                                 # 64 KiB including the '\r'
    for chunks in ([ok], [ok[:-1], ok[-1:]], [ok[:-2], ok[-2:]], [ok[:1000], ok[1000:]]):
        assert run(chunks) == ([[line[1:]]], None)
    for chunks in ([line + b"y"], [line, b"y"], [line + b"\r", b"\n"], [line + b"\r\n"],
                   [b"x" * 1000] * 66):
        assert run([PREFIX] + chunks) == (PREFIX_CMDS, INLINE_TOO_BIG)


def test_too_big_mbulk_count_string():
    digits = b"1" * INLINE_MAX_BYTES
    assert run([b"*" + digits]) == ([], MBULK_COUNT_TOO_BIG)
    assert run([PREFIX, b"*", digits]) == (PREFIX_CMDS, MBULK_COUNT_TOO_BIG)
    # A '\r' already there (waiting for '\n') is a count line, not "too big".
    data = b"*" + b"1" * (INLINE_MAX_BYTES - 1) + b"\r\n"
    for cut in (len(data) - 1, len(data)):
        assert run([data[:cut], data[cut:]]) == ([], INVALID_MBULK)


def test_too_big_bulk_count_string():
    digits = b"1" * INLINE_MAX_BYTES
    assert run([b"*1\r\n$" + digits]) == ([], BULK_COUNT_TOO_BIG)
    assert run([PREFIX, b"*1\r\n$", digits]) == (PREFIX_CMDS, BULK_COUNT_TOO_BIG)


def test_query_buffer_limit():
    limits = dict(max_query=1000)
    # one bulk that would exceed the limit, arriving
    assert run([PREFIX + b"*2\r\n$3\r\nSET\r\n$5000\r\n", b"v" * 990],
               **limits) == (PREFIX_CMDS, None)
    assert run([PREFIX + b"*2\r\n$3\r\nSET\r\n$5000\r\n", b"v" * 1001],
               **limits) == (PREFIX_CMDS, QUERY_BUFFER)
    # an unfinished inline line
    assert run([b"x" * 1001], **limits) == ([], QUERY_BUFFER)
    # the arguments already parsed out of an unfinished multibulk count too
    arg = b"$600\r\n" + b"v" * 600 + b"\r\n"
    assert run([b"*3\r\n" + arg, arg], **limits) == ([], QUERY_BUFFER)
    # complete commands are not pending
    assert run([cmd(b"SET", b"k", b"v" * 600)] * 5, **limits) == (
        [[b"SET", b"k", b"v" * 600]] * 5, None)


def test_protocol_errors_on_the_wire_start_with_err():
    # Redis's addReplyError() prefixes "-ERR " to a message that does not
    # start with '-': clients see "-ERR Protocol error: ...".
    p = RequestParser()
    p.feed(b"*1\r\n$x\r\n")
    assert encode_error(p.error) == b"-ERR Protocol error: invalid bulk length\r\n"
    for name in ("PROTO_INLINE_TOO_BIG", "PROTO_UNBALANCED_QUOTES", "PROTO_MBULK_COUNT_TOO_BIG",
                 "PROTO_INVALID_MBULK_LEN", "PROTO_BULK_COUNT_TOO_BIG", "PROTO_INVALID_BULK_LEN",
                 "PROTO_QUERY_BUFFER"):
        assert encode_error(getattr(errors, name)).startswith(b"-ERR Protocol error: "), name


def test_expected_dollar_shows_the_raw_byte():
    # Redis formats the byte with %c: a client sending 0xff sees 0xff back,
    # not its UTF-8 encoding.
    p = RequestParser()
    p.feed(b"*1\r\n\xff\r\n")
    assert encode_error(p.error).endswith(b"expected '$', got '\xff'\r\n")


# -- limits are checked on the header, before buffering --------------------------------

def test_oversized_bulk_header_is_refused_before_its_payload():
    p = RequestParser()
    assert p.feed(b"*2\r\n$3\r\nGET\r\n$600000000\r\n") == []
    assert _msg(p.error) == INVALID_BULK
    p = RequestParser()
    assert p.feed(b"*1\r\n") == [] and p.error is None
    assert p.feed(b"$99999999999\r\n") == []
    assert _msg(p.error) == INVALID_BULK


def test_declared_1gib_bulk_within_raised_limit_does_not_allocate():
    p = RequestParser(max_bulk=2 << 30, max_query=4 << 30)
    tracemalloc.start()
    try:
        assert p.feed(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1073741824\r\n") == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.error is None
    assert p.pending_bytes == 0
    assert peak < 1 << 20
    assert p.feed(b"v" * 65536) == []              # buffers what arrives, nothing more
    assert p.error is None and p.pending_bytes == 65536


def test_raised_and_lowered_limits_apply_to_the_next_header():
    p = RequestParser(max_bulk=10)
    assert p.feed(cmd(b"ECHO", b"x" * 10)) == [[b"ECHO", b"x" * 10]]
    p.set_limits(5, 1024, 1 << 20)
    assert p.feed(cmd(b"ECHO", b"x" * 10)) == []
    assert _msg(p.error) == INVALID_BULK
    p = RequestParser(max_args=2)
    assert p.feed(cmd(b"GET", b"k")) == [[b"GET", b"k"]]
    assert p.feed(cmd(b"MGET", b"a", b"b")) == []
    assert _msg(p.error) == INVALID_MBULK


# -- the hiredis fast path agrees with the exact parser -----------------------------

args_st = st.lists(st.binary(max_size=40) | st.sampled_from(
    [b"*", b"*1\r\n", b"$", b"\r\n", b"\r", b"\n", b"\x00", b"*1\r\n$1\r\na\r\n", b"+OK"]),
    min_size=1, max_size=6)


@st.composite
def chunked(draw, data: bytes):
    cuts = sorted(set(draw(st.lists(st.integers(0, len(data)), max_size=8))))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@HYPO
@given(st.data(), st.lists(args_st, min_size=1, max_size=8))
def test_multibulk_roundtrip_any_chunking(data, argvs):
    wire = b"".join(cmd(*a) for a in argvs)
    assert exact(wire) == (argvs, None)
    assert run([wire]) == (argvs, None)
    assert run(data.draw(chunked(wire))) == (argvs, None)


inline_word = st.text("abcdefXYZ019:_-", min_size=1, max_size=8).map(str.encode)
inline_st = st.lists(inline_word, min_size=1, max_size=4)


@HYPO
@given(st.data(), st.lists(st.one_of(args_st.map(lambda a: ("m", a)),
                                     inline_st.map(lambda a: ("i", a)),
                                     st.just(("e", None))), min_size=1, max_size=10))
def test_mixed_pipeline_any_chunking(data, items):
    wire = b""
    expected = []
    for kind, argv in items:
        if kind == "m":
            wire += cmd(*argv)
            expected.append(argv)
        elif kind == "i":
            wire += b" ".join(argv) + data.draw(st.sampled_from([b"\r\n", b"\n"]))
            expected.append(argv)
        else:
            wire += data.draw(st.sampled_from([b"\r\n", b"*0\r\n", b"*-1\r\n"]))
    assert run([wire]) == (expected, None)
    assert run(data.draw(chunked(wire))) == (expected, None)


# Elements hiredis decodes into non-bytes (or that are errors for Redis).
bad_element = st.sampled_from([
    b":5\r\n", b":-1\r\n", b"$-1\r\n", b"*-1\r\n", b"*0\r\n", b"_\r\n", b"#t\r\n", b"#f\r\n",
    b",1.5\r\n", b"-ERR boom\r\n", b"*1\r\n$1\r\nx\r\n", b"*2\r\n:1\r\n$1\r\nx\r\n",
    b"%1\r\n$1\r\na\r\n$1\r\nb\r\n", b"~1\r\n$1\r\na\r\n", b">1\r\n$1\r\na\r\n",
    b"$x\r\n", b"!3\r\nabc\r\n", b"$99999999999\r\n", b"*4294967295\r\n",
])
good_element = st.binary(max_size=12).map(lambda b: b"$%d\r\n%s\r\n" % (len(b), b))


@st.composite
def malformed_multibulk(draw):
    elems = draw(st.lists(good_element, max_size=3))
    elems.insert(draw(st.integers(0, len(elems))), draw(bad_element))
    return b"*%d\r\n" % len(elems) + b"".join(elems)


@HYPO
@given(st.data(), st.lists(args_st, max_size=3), malformed_multibulk(),
       st.lists(args_st, max_size=2))
@example(data=None, before=[], bad=b"*1\r\n:5\r\n", after=[])
@example(data=None, before=[[b"GET", b"k"]], bad=b"*2\r\n$3\r\nGET\r\n*1\r\n$1\r\nx\r\n",
         after=[])
@example(data=None, before=[], bad=b"*1\r\n$-1\r\n", after=[[b"PING"]])
@example(data=None, before=[], bad=b"*1\r\n-ERR x\r\n", after=[])
@example(data=None, before=[], bad=b"*2\r\n_\r\n*-1\r\n", after=[])
def test_fast_path_matches_exact_parser_on_malformed_input(data, before, bad, after):
    wire = b"".join(cmd(*a) for a in before) + bad + b"".join(cmd(*a) for a in after)
    want = exact(wire)
    assert want[1] is not None                 # every bad element is an error for Redis
    assert want[0] == before
    assert run([wire]) == want                 # one chunk: the hiredis fast path
    if data is not None:
        assert run(data.draw(chunked(wire))) == want


@pytest.mark.parametrize("wire", [
    cmd(b"PING") + b":5\r\n",                  # top-level non-array: an inline line for Redis
    cmd(b"PING") + b"+PING\r\n",
    cmd(b"PING") + b"-ERR x\r\n",
    cmd(b"PING") + b"$3\r\nabc\r\n",
    cmd(b"PING") + b">1\r\n$4\r\nPING\r\n",
    cmd(b"PING") + b"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
])
def test_fast_path_treats_non_array_lines_as_inline(wire):
    want = exact(wire)
    assert want[0][0] == [b"PING"] and len(want[0]) > 1
    assert run([wire]) == want


def test_fast_path_documented_leniency():
    # Documented in protocol.py: inside a multibulk read in one piece,
    # hiredis takes "+simple" / "(bignum" / "=verbatim" elements as text.
    # The exact parser (every other chunking) refuses them as Redis does.
    for wire, lenient in [(b"*1\r\n+PING\r\n", [[b"PING"]]),
                          (b"*1\r\n(12\r\n", [[b"12"]]),
                          (b"*1\r\n=8\r\ntxt:PING\r\n", [[b"PING"]])]:
        strict = exact(wire)
        assert strict[0] == [] and strict[1].startswith("Protocol error: expected '$'")
        assert run([wire]) in (strict, (lenient, None))
        assert run([wire[:3], wire[3:]]) == strict


# -- parse_ll: Redis string2ll ----------------------------------------------------------

@pytest.mark.parametrize("s, v", [
    (b"0", 0), (b"1", 1), (b"-1", -1), (b"123", 123),
    (b"9223372036854775807", (1 << 63) - 1), (b"-9223372036854775808", -(1 << 63)),
    (b"9223372036854775808", None), (b"-9223372036854775809", None),
    (b"", None), (b"-", None), (b"-0", None), (b"01", None), (b"+1", None), (b" 1", None),
    (b"1 ", None), (b"1.0", None), (b"0x1", None), (b"\xd9\xa1", None), (b"1" * 21, None),
])
def test_parse_ll(s, v):
    assert parse_ll(s) == v
    assert parse_ll(bytearray(s)) == v


# -- encoders -----------------------------------------------------------------------------

def test_scalar_encoders():
    assert bulk(b"") == b"$0\r\n\r\n"
    assert bulk(b"a\r\n\x00") == b"$4\r\na\r\n\x00\r\n"
    assert integer(0) == b":0\r\n"
    assert integer(-5) == b":-5\r\n"
    assert integer(1 << 62) == b":4611686018427387904\r\n"
    assert simple("OK") == OK == b"+OK\r\n"


def test_encode_error():
    assert encode_error("ERR x") == b"-ERR x\r\n"
    # CR / LF can never break the framing (Redis maps them to spaces)
    assert encode_error("ERR a\r\nb\nc\rd") == b"-ERR a  b c d\r\n"
    # a client's non-UTF-8 bytes come back as they were sent
    msg = errors.unknown_command(b"f\xffo", [b"\xfe"])
    assert encode_error(msg) == (b"-ERR unknown command 'f\xffo', with args beginning with: "
                                 b"'\xfe' \r\n")


def test_encode_command():
    assert encode_command(b"SET", "k", 10) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n10\r\n"


@pytest.mark.parametrize("enc, expected", [
    (RESP2, dict(
        null=b"$-1\r\n", null_array=b"*-1\r\n",
        bulks=b"*3\r\n$1\r\na\r\n$-1\r\n$2\r\n\xc3\xa9\r\n",
        map=b"*4\r\n$1\r\nk\r\n:1\r\n$1\r\nj\r\n$-1\r\n",
        set=b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
        push=b"*2\r\n$7\r\nmessage\r\n$1\r\nx\r\n",
        empty_map=b"*0\r\n", empty_set=b"*0\r\n",
        double=[(1.5, b"$3\r\n1.5\r\n"), (1.0, b"$1\r\n1\r\n"), (0.0, b"$1\r\n0\r\n"),
                (-2.25, b"$5\r\n-2.25\r\n"), (100.0, b"$3\r\n100\r\n"),
                (float("inf"), b"$3\r\ninf\r\n"), (float("-inf"), b"$4\r\n-inf\r\n"),
                (float("nan"), b"$3\r\nnan\r\n")],
        verbatim=b"$9\r\n# Server\n\r\n",
        verbatim_mkd=b"$2\r\n**\r\n",
        true=b":1\r\n", false=b":0\r\n")),
    (RESP3, dict(
        null=b"_\r\n", null_array=b"_\r\n",
        bulks=b"*3\r\n$1\r\na\r\n_\r\n$2\r\n\xc3\xa9\r\n",
        map=b"%2\r\n$1\r\nk\r\n:1\r\n$1\r\nj\r\n_\r\n",
        set=b"~2\r\n$1\r\na\r\n$1\r\nb\r\n",
        push=b">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n",
        empty_map=b"%0\r\n", empty_set=b"~0\r\n",
        double=[(1.5, b",1.5\r\n"), (1.0, b",1\r\n"), (0.0, b",0\r\n"),
                (-2.25, b",-2.25\r\n"), (100.0, b",100\r\n"),
                (float("inf"), b",inf\r\n"), (float("-inf"), b",-inf\r\n"),
                (float("nan"), b",nan\r\n")],
        verbatim=b"=13\r\ntxt:# Server\n\r\n",
        verbatim_mkd=b"=6\r\nmkd:**\r\n",
        true=b"#t\r\n", false=b"#f\r\n")),
], ids=["resp2", "resp3"])
def test_encoders_byte_exact(enc, expected):
    assert enc.null == expected["null"]
    assert enc.null_array == expected["null_array"]
    assert enc.array([bulk(b"a"), integer(1)]) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert enc.array([]) == b"*0\r\n"
    assert enc.bulks([b"a", None, "\u00e9"]) == expected["bulks"]
    assert enc.map([(bulk(b"k"), integer(1)), (bulk(b"j"), enc.null)]) == expected["map"]
    assert enc.map([]) == expected["empty_map"]
    assert enc.set([bulk(b"a"), bulk(b"b")]) == expected["set"]
    assert enc.set([]) == expected["empty_set"]
    assert enc.push([bulk(b"message"), bulk(b"x")]) == expected["push"]
    for x, wire in expected["double"]:
        assert enc.double(x) == wire, x
    assert enc.verbatim("# Server\n") == expected["verbatim"]
    assert enc.verbatim("**", "mkd") == expected["verbatim_mkd"]
    assert enc.boolean(True) == expected["true"]
    assert enc.boolean(False) == expected["false"]


def test_encoder_classes_and_versions():
    assert isinstance(RESP2, Resp2) and RESP2.version == 2
    assert isinstance(RESP3, Resp3) and RESP3.version == 3


def _decode(wire: bytes):
    r = hiredis.Reader(notEnoughData=Ellipsis)
    r.feed(wire)
    v = r.gets()
    assert v is not Ellipsis and not r.has_data()
    return v


def test_encodings_are_well_formed_resp():
    # A real RESP decoder reads each encoding as exactly one reply.
    assert _decode(RESP3.map([(bulk(b"proto"), integer(3))])) == {b"proto": 3}
    assert _decode(RESP2.map([(bulk(b"proto"), integer(3))])) == [b"proto", 3]
    assert _decode(RESP3.boolean(False)) is False
    assert _decode(RESP3.double(2.5)) == 2.5
    assert _decode(RESP3.null) is None and _decode(RESP2.null) is None
    assert _decode(RESP3.verbatim("hello")) == b"hello"
    assert _decode(RESP3.set([bulk(b"a")])) == [b"a"]
    assert _decode(RESP3.push([bulk(b"a")])) == [b"a"]


@HYPO
@given(st.lists(st.binary(max_size=20) | st.none(), max_size=8))
def test_bulks_roundtrip(items):
    assert _decode(RESP2.bulks(items)) == items
    assert _decode(RESP3.bulks(items)) == items


# -- large bulks received in place (issue 7) -------------------------------------

from repram_resp import native, protocol as protocol_mod   # noqa: E402


def _feed_all(p, data: bytes, cuts) -> list:
    out, i = [], 0
    for j in sorted(set(cuts)) + [len(data)]:
        if i < j:
            out += p.feed(data[i:j])
            i = j
    while p.more and p.error is None:
        out += p.feed(b"")
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.binary(max_size=40), min_size=1, max_size=4), min_size=1, max_size=5),
       st.lists(st.integers(0, 400), max_size=12), st.integers(2, 12))
def test_big_bulks_parse_like_small_ones(commands, cuts, threshold):
    # With the threshold lowered, most bulks take the in-place path: split
    # anywhere, the commands and the accounting are the plain parser's.
    data = b"".join(encode_command(*c) for c in commands)
    cuts = [c for c in cuts if c < len(data)]
    want = _feed_all(RequestParser(), data, cuts)
    saved = protocol_mod.BIG_BULK_BYTES
    protocol_mod.BIG_BULK_BYTES = threshold
    try:
        p = RequestParser()
        got = _feed_all(p, data, cuts)
    finally:
        protocol_mod.BIG_BULK_BYTES = saved
    assert got == want == commands
    assert all(type(a) is bytes for c in got for a in c)
    assert p.held_bytes == p.pending_bytes == 0 and p.error is None


def test_big_bulk_is_accounted_while_it_arrives():
    p = RequestParser(max_query=3 << 20)
    head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n" % (5 << 20)
    assert p.feed(head + b"v" * (1 << 20)) == []
    # (without the extension the query buffer may still hold the header)
    assert 1 << 20 <= p.pending_bytes <= p.held_bytes <= (1 << 20) + 64
    assert p.feed(b"v" * (1 << 20)) == [] and 2 << 20 <= p.held_bytes <= (2 << 20) + 64
    assert p.feed(b"v" * (1 << 20)) == []           # past client-query-buffer-limit
    assert p.error == errors.PROTO_QUERY_BUFFER


def test_big_bulk_peaks_at_about_its_size():
    value = b"v" * (20 << 20)
    frame = encode_command(b"SET", b"k", value)
    chunks = [frame[i:i + 262144] for i in range(0, len(frame), 262144)]
    del frame
    p = RequestParser()
    out = []
    tracemalloc.start()
    try:
        for c in chunks:
            out += p.feed(c)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out == [[b"SET", b"k", value]]
    # Received into its final bytes with the extension; without it the
    # bulk is cut out of the query buffer: a documented second copy.
    assert peak < (1.1 if native.AVAILABLE else 2.6) * len(value)
    if native.AVAILABLE:
        assert peak < 1.1 * len(value) and type(out[0][2]) is bytes
