"""RESP wire format: a request parser and reply encoders.  No I/O here.

Parser rules (mirroring Redis's networking.c):

* Requests are multibulk arrays of bulk strings, or inline commands (a line of
  space-separated words, quotes as in ``sdssplitargs``; empty lines skipped).
* Every length is checked against its limit *before* anything is buffered for
  it: bulk length against ``proto-max-bulk-len``, argument count against
  ``max_args``, an unterminated inline line / count line against 64 KiB, the
  whole pending query against ``client-query-buffer-limit``.
* A protocol error is sticky: ``feed`` returns the commands complete before
  the error and sets ``error``; the connection replies once and closes.
* State is kept across ``feed`` calls, so a request split at any byte
  (including one byte at a time) parses the same, in O(bytes).

Speed: hiredis is a C *reply* parser.  When a read starts on a command
boundary with ``*`` and contains only complete, well-formed multibulk
commands, hiredis turns it into argument lists ~5x faster than Python.  Its
output is validated (non-empty list of bytes, and the reader left with no
half-read reply) and anything else — inline commands, partial commands,
nested arrays, integers, nulls, oversized input — is re-parsed from the start
of the read by the exact Python parser.  The fast path is only taken when the
exact parser holds no state (no buffered bytes, not inside a multibulk), so a
read that continues a command is never mistaken for a new one.

Cost before limits (issue 7): hiredis allocates a list for an aggregate
header (``*n``, ``~n``, ``>n``, ``%n``, ``|n``) as soon as it reads it, before
any element arrives, so ``*2147483648`` alone would cost seconds and
gigabytes.  Before a read reaches hiredis it is screened at C speed
(``_fast_ok``): no aggregate count with as many digits as the read has bytes
(so every count hiredis can see is smaller than the read itself), and no
element line starting with a type hiredis would turn into an argument that
Redis refuses (``+simple``, ``(bignum``, ``=verbatim``, a RESP3 aggregate).
A read that fails the screen -- or that makes hiredis raise anything at all
-- goes to the exact parser, which checks every count and length against its
limit before it keeps a byte, and answers with Redis's own error text.

Unauthenticated clients (``set_unauthenticated``) get Redis's pre-AUTH
limits (10 arguments, 16384-byte bulks, and here also 64 KiB of pending
query) and are parsed one command per ``feed`` step, so an AUTH takes effect
before the next command of the same read is parsed.

``feed(data, max_cmds)`` returns at most ``max_cmds`` commands from the exact
parser; the rest stays buffered and ``more`` is set: the connection feeds
``b""`` on a later loop turn (its per-turn budget).
"""

from __future__ import annotations

import re

import hiredis

from . import errors
from .native import Bulk as _Bulk

CRLF = b"\r\n"

# Redis's PROTO_INLINE_MAX_SIZE: longest inline line / count line accepted.
INLINE_MAX_BYTES = 64 * 1024
# Redis caps the multibulk count at INT_MAX; we make the cap a setting and
# default to 1 Mi arguments (far beyond any real client's MSET).
DEFAULT_MAX_ARGS = 1024 * 1024
DEFAULT_MAX_BULK_BYTES = 512 * 1024 * 1024          # proto-max-bulk-len
DEFAULT_QUERY_BUFFER_BYTES = 1024 * 1024 * 1024    # client-query-buffer-limit
# Redis's limits before AUTH (networking.c, CVE-2021-32675), plus a bound on
# everything an unauthenticated client may make us hold.
UNAUTH_MAX_ARGS = 10
UNAUTH_MAX_BULK_BYTES = 16384
UNAUTH_MAX_QUERY_BYTES = 64 * 1024

# Issue 7: a bulk announced at least this long is received straight into the
# ``bytes`` object that becomes its argument (native.Bulk, which allocates
# with what arrives, not with what the header announces):
# no second full copy, so a 100 MB SET peaks at ~1x its value.  Smaller
# bulks (and every bulk without the _native extension, which then peaks at
# ~2x) are cut out of the query buffer as before.  256 KiB is one transport
# read: below it the two copies cost nothing worth avoiding.
BIG_BULK_BYTES = 256 * 1024

_NEED = object()  # hiredis "need more data" sentinel (False is RESP3 #f)
# Fed to hiredis after a read it parsed, to learn whether the read ended on a
# command boundary: has_data() is False also when hiredis holds half an array
# (the read ended between two elements) or a type byte it already consumed.
# Only a reader in a clean state gives the integer 0 back; otherwise the probe
# becomes an array element (a list, or "need more") or malformed (an error).
_PROBE = b":0\r\n"
_STAR = ord("*")
_DOLLAR = ord("$")

# The fast-path screen (see the module header).  Index = digits in len(read):
# a "*" followed by that many digits announces at least as many elements as
# the read has bytes.  re finds the literal "*" with its fast search (~0.5 ns
# per byte); the other type bytes are rare, so memchr rules them out and only
# a read containing one of them pays for the exact regex.
_STAR_RUN = [None] + [re.compile(rb"\*[0-9]{%d}" % k) for k in range(1, 21)]
_RARE_BYTES = (b"%", b"~", b">", b"|", b"(", b"+", b"=")
_RARE_RUN = [None] + [re.compile(rb"\r\n[+(=~|>%%]|[%%~>|][0-9]{%d}" % k) for k in range(1, 21)]


def _fast_ok(data: bytes) -> bool:
    k = len(str(len(data)))
    if _STAR_RUN[k].search(data) is not None:
        return False
    find = data.find
    for c in _RARE_BYTES:
        if find(c) >= 0:
            return _RARE_RUN[k].search(data) is None
    return True


class ProtocolError(Exception):
    """Malformed request: reply with the message, then close."""


def _parse_ll(b) -> int | None:
    """Redis ``string2ll``: optional '-', digits, no '+', no leading zeros."""
    n = len(b)
    if n == 0 or n > 20:
        return None
    neg = b[0] == 45  # '-'
    digits = b[1:] if neg else b
    if not digits or not digits.isdigit() or (digits[0] == 48 and len(digits) > 1):
        return None
    v = int(digits)
    if neg:
        if v == 0:
            return None
        v = -v
    if not -(1 << 63) <= v < (1 << 63):
        return None
    return v


parse_ll = _parse_ll


class RequestParser:
    """Incremental request parser.  ``feed(data)`` -> list of argv lists."""

    __slots__ = ("max_bulk", "max_args", "max_query", "error", "_buf", "_pos", "_argc",
                 "_args", "_args_bytes", "_bulklen", "_reader", "_fast_limit", "unauth", "more",
                 "_limits", "_big", "_big_fill")

    def __init__(self, max_bulk: int = DEFAULT_MAX_BULK_BYTES, max_args: int = DEFAULT_MAX_ARGS,
                 max_query: int = DEFAULT_QUERY_BUFFER_BYTES):
        self.max_bulk = max_bulk
        self.max_args = max_args
        self.max_query = max_query
        self.error: str | None = None
        self._buf = bytearray()
        self._pos = 0
        self._argc = 0          # >0 while inside a multibulk
        self._args: list = []
        self._args_bytes = 0    # payload bytes held in _args (counts against max_query)
        self._bulklen = -1      # >=0 while waiting for a bulk payload
        self._reader = hiredis.Reader(notEnoughData=_NEED)
        self._fast_limit = _fast_limit(max_bulk, max_args)
        self.unauth = False     # Redis's pre-AUTH limits apply (set_unauthenticated)
        self.more = False       # feed stopped at max_cmds with input left over
        self._limits = (max_bulk, max_args, max_query)
        self._big = None        # native.Bulk a big bulk is being received into (BIG_BULK_BYTES)
        self._big_fill = 0      # ... and how much of it has arrived

    def set_limits(self, max_bulk: int, max_args: int, max_query: int) -> None:
        self._limits = (max_bulk, max_args, max_query)
        if not self.unauth:
            self.max_bulk, self.max_args, self.max_query = max_bulk, max_args, max_query
            self._fast_limit = _fast_limit(max_bulk, max_args)

    def set_unauthenticated(self, unauth: bool) -> None:
        """Redis's pre-AUTH limits on (True) or back to the configured ones."""
        self.unauth = unauth
        if unauth:
            self.max_bulk, self.max_args = UNAUTH_MAX_BULK_BYTES, UNAUTH_MAX_ARGS
            self.max_query = UNAUTH_MAX_QUERY_BYTES
            self._fast_limit = 0
        else:
            self.set_limits(*self._limits)

    def buffer(self, data: bytes) -> None:
        """Keep data for a later ``feed(b"")`` (the connection is not taking
        commands right now); the query limit applies to it at once."""
        if self.error is not None:
            return
        self._buf += data
        self.more = True
        if len(self._buf) - self._pos + self._args_bytes + self._big_fill > self.max_query:
            self.error = errors.PROTO_QUERY_BUFFER
            self._buf.clear()
            self._pos = 0
            self._big = None
            self._big_fill = 0

    def take_raw(self) -> bytes | None:
        """The buffered input, handed back (and forgotten) if the parser is on
        a command boundary with nothing else held; else None.  The connection
        gives it to the fast lane after a spent turn budget (issue 7)."""
        if self._argc or self.error is not None or self._pos >= len(self._buf):
            return None
        buf = self._buf
        data = bytes(buf) if self._pos == 0 else bytes(memoryview(buf)[self._pos:])
        buf.clear()
        self._pos = 0
        self.more = False
        return data

    def feed(self, data: bytes, max_cmds: int = 0, max_bytes: int = 0) -> list:
        """Commands complete so far.  The exact parser stops after max_cmds
        commands or max_bytes of input (0 = no limit) and sets ``more``; the
        fast path returns a whole read (one transport read, <= 256 KiB)."""
        if self.error is not None:
            return []
        # Only when the exact parser holds nothing: a read that continues a
        # command (e.g. a bulk payload that happens to start with '*', right
        # after its "$n\r\n" header arrived) must not be parsed as new input.
        if (not self._buf and self._argc == 0 and data[:1] == b"*"
                and len(data) <= self._fast_limit and _fast_ok(data)):
            reader = self._reader
            reader.feed(data)
            out = []
            gets = reader.gets
            try:
                while True:
                    cmd = gets()
                    if cmd is _NEED:
                        break
                    out.append(cmd)
                if reader.has_data():
                    return self._fallback(data, max_cmds, max_bytes)
                reader.feed(_PROBE)
                clean = gets().__class__ is int
            except Exception:
                # hiredis raises ProtocolError on bad framing, and TypeError
                # / ValueError / MemoryError from building Python objects
                # (a list as a map key, a 5000-digit bignum ...): never let
                # them out of data_received; the exact parser answers.
                return self._fallback(data, max_cmds, max_bytes)
            if not clean:
                return self._fallback(data, max_cmds, max_bytes)   # the read ended inside a command
            for cmd in out:
                if cmd.__class__ is not list or not cmd:
                    return self._fallback(data, max_cmds, max_bytes)
                for a in cmd:
                    if a.__class__ is not bytes:
                        return self._fallback(data, max_cmds, max_bytes)
            self.more = False
            return out
        if self.unauth:
            max_cmds = 1
        return self._slow(data, max_cmds, max_bytes)

    def _fallback(self, data: bytes, max_cmds: int, max_bytes: int = 0) -> list:
        self._reader = hiredis.Reader(notEnoughData=_NEED)
        return self._slow(data, 1 if self.unauth else max_cmds, max_bytes)

    # -- the exact parser ---------------------------------------------------

    def _slow(self, data: bytes, max_cmds: int = 0, max_bytes: int = 0) -> list:
        buf = self._buf
        if data:
            big = self._big
            if big is not None and not buf:
                # The middle of a big bulk: straight from the read into it.
                take = min(self._bulklen - big.filled, len(data))
                big.fill(data, 0, take)
                self._big_fill = big.filled
                if take < len(data):
                    with memoryview(data) as view:
                        buf += view[take:]
            else:
                buf += data
        pos = self._pos
        end = len(buf)
        out: list = []
        err = None
        self.more = False
        byte_stop = pos + max_bytes if max_bytes else end + 1
        while pos < end:
            if (max_cmds and len(out) >= max_cmds) or (pos >= byte_stop and self._argc == 0):
                self.more = True
                break
            if self._argc == 0:
                if buf[pos] == _STAR:
                    nl = buf.find(b"\r", pos, pos + INLINE_MAX_BYTES + 1)
                    if nl < 0 or nl + 1 >= end:
                        # Only a missing '\r' is "too big": a '\r' still
                        # waiting for its '\n' must give the same verdict as
                        # when both arrive in one read.
                        if nl < 0 and end - pos > INLINE_MAX_BYTES:
                            err = errors.PROTO_MBULK_COUNT_TOO_BIG
                        break
                    ll = _parse_ll(buf[pos + 1:nl])
                    if ll is None or ll > self.max_args:
                        err = (errors.PROTO_UNAUTH_MBULK_LEN if self.unauth and ll is not None
                               and ll <= (1 << 31) - 1 else errors.PROTO_INVALID_MBULK_LEN)
                        break
                    pos = nl + 2
                    if ll <= 0:
                        continue  # "*0" / "*-1": an empty command, skipped as Redis does
                    self._argc = ll
                    self._args = []
                    self._args_bytes = 0
                else:
                    nl = buf.find(b"\n", pos, pos + INLINE_MAX_BYTES + 1)
                    if nl < 0:
                        if end - pos > INLINE_MAX_BYTES:
                            err = errors.PROTO_INLINE_TOO_BIG
                        break
                    line = bytes(buf[pos:nl])
                    pos = nl + 1
                    if line.endswith(b"\r"):
                        line = line[:-1]
                    argv = split_inline(line)
                    if argv is None:
                        err = errors.PROTO_UNBALANCED_QUOTES
                        break
                    if argv:
                        out.append(argv)
                    continue
            # inside a multibulk: read "$len\r\n" then the payload
            args = self._args
            argc = self._argc
            while len(args) < argc:
                if self._bulklen < 0:
                    if pos >= end:
                        break
                    if buf[pos] != _DOLLAR:
                        err = errors.proto_expected_dollar(buf[pos])
                        break
                    nl = buf.find(b"\r", pos, pos + INLINE_MAX_BYTES + 1)
                    if nl < 0 or nl + 1 >= end:
                        if nl < 0 and end - pos > INLINE_MAX_BYTES:
                            err = errors.PROTO_BULK_COUNT_TOO_BIG
                        break
                    ll = _parse_ll(buf[pos + 1:nl])
                    if ll is None or ll < 0 or ll > self.max_bulk:
                        err = (errors.PROTO_UNAUTH_BULK_LEN if self.unauth and ll is not None
                               and 0 <= ll <= self._limits[0] else errors.PROTO_INVALID_BULK_LEN)
                        break
                    pos = nl + 2
                    self._bulklen = ll
                n = self._bulklen
                if n >= BIG_BULK_BYTES and _Bulk is not None:
                    big = self._big
                    if big is None:
                        big = self._big = _Bulk(n)
                    if big.filled < n:
                        take = min(n - big.filled, end - pos)
                        big.fill(buf, pos, take)
                        self._big_fill = big.filled
                        pos += take
                        if big.filled < n:
                            break
                    if end - pos < 2:
                        break       # its CRLF is still to come
                    args.append(big.finish())
                    self._big = None
                    self._big_fill = 0
                    self._args_bytes += n
                    pos += 2
                    self._bulklen = -1
                    continue
                if end - pos < n + 2:
                    break
                with memoryview(buf) as view:   # one copy, not two
                    args.append(bytes(view[pos:pos + n]))
                self._args_bytes += n
                pos += n + 2
                self._bulklen = -1
            if err is not None:
                break
            if len(args) < argc:
                break
            out.append(args)
            self._argc = 0
            self._args = []
            self._args_bytes = 0
        if err is not None:
            self.error = err
            buf.clear()
            self._pos = 0
            self._big = None
            self._big_fill = 0
            return out
        if pos >= end:
            buf.clear()
            pos = 0
        elif pos > 65536 or pos > (end >> 1):
            del buf[:pos]
            pos = 0
        self._pos = pos
        # The arguments already parsed out of an unfinished multibulk are
        # part of the pending query too: without them a client could hold
        # max_args x max_bulk bytes by never finishing a command.
        if not self.more and len(buf) - pos + self._args_bytes + self._big_fill > self.max_query:
            self.error = errors.PROTO_QUERY_BUFFER
            buf.clear()
            self._pos = 0
            self._big = None
            self._big_fill = 0
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf) - self._pos + self._big_fill

    @property
    def held_bytes(self) -> int:
        """Memory this parser holds for unfinished input (issue 7: counted
        in used_memory and against maxmemory-clients).  Of a big bulk, what
        has arrived: its untouched pages are not resident."""
        return len(self._buf) + self._args_bytes + self._big_fill


def _fast_limit(max_bulk: int, max_args: int) -> int:
    # A read no longer than this can only hold bulks / counts within our
    # limits, so hiredis may parse it without header checks: a complete
    # element takes at least 3 bytes ("+\r\n"), so a complete command read
    # in <= 3 * max_args bytes has fewer than max_args arguments.
    return min(max_bulk, max_args * 3)


_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
# sdssplitargs skips blanks and checks "closing quote followed by a space"
# with C isspace(); an unquoted word ends only at ' ', '\n', '\r', '\t'
# (so "a\vb" is one word, while a leading '\v' is skipped).
_ISSPACE = b" \t\n\v\f\r"
_WORD_END = b" \n\r\t"
_HEX = b"0123456789abcdefABCDEF"
_WORD_RE = re.compile(rb"[^ \t\n\v\f\r][^ \n\r\t]*")


def split_inline(line: bytes) -> list | None:
    """Redis ``sdssplitargs``: words, "double" (with \\xHH and \\n escapes) and
    'single' quotes.  Returns None on unbalanced quotes (or a closing quote
    not followed by a space)."""
    # Most lines have no quotes: then a word is a non-blank byte followed by
    # anything but ' ', \n, \r, \t (exactly the loop below), found by one C
    # regex scan instead of a Python step per byte (a 64 KiB inline line
    # took ~20 ms that way).
    if b'"' not in line and b"'" not in line and b"\0" not in line:
        return _WORD_RE.findall(line)
    out = []
    # sdssplitargs walks a C string: the first NUL ends the line (an open
    # quote at that point is unbalanced; anything after it is ignored).
    n = line.find(b"\0")
    if n < 0:
        n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _ISSPACE:
            i += 1
        if i >= n:
            return out
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    return None
                c = line[i]
                if (c == 92 and i + 3 < n and line[i + 1] == 120
                        and line[i + 2] in _HEX and line[i + 3] in _HEX):
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    cur.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None
                    i += 1
                    break
                else:
                    cur.append(c)
            elif insq:
                if i >= n:
                    return None
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    cur.append(39)
                elif c == 39:
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        return None
                    i += 1
                    break
                else:
                    cur.append(c)
            else:
                if i >= n:
                    break
                c = line[i]
                if c in _WORD_END:
                    break
                if c == 34:
                    inq = True
                elif c == 39:
                    insq = True
                else:
                    cur.append(c)
            i += 1
        out.append(bytes(cur))


# --------------------------------------------------------------------------
# Encoders.  A connection holds RESP2 or RESP3; both have the same surface.
# Handlers return already-encoded bytes, so EXEC and pipelines just join.
# --------------------------------------------------------------------------

def encode_error(msg: str) -> bytes:
    # Redis maps CR/LF to spaces so an error can never break the framing.
    if "\r" in msg or "\n" in msg:
        msg = msg.replace("\r", " ").replace("\n", " ")
    return b"-" + msg.encode("utf-8", "surrogateescape") + CRLF


# "$<n>\r\n" for small n, so a short bulk reply is two concatenations
# instead of a %-format (74 vs 104 ns); long values take one join (one copy).
BULK_HEADERS = [b"$%d\r\n" % n for n in range(1024)]


def bulk(b: bytes) -> bytes:
    n = len(b)
    if n < 1024:
        return BULK_HEADERS[n] + b + CRLF
    return b"".join((b"$%d\r\n" % n, b, CRLF))


def integer(n: int) -> bytes:
    return b":%d\r\n" % n


def simple(s: str) -> bytes:
    return b"+" + s.encode() + CRLF


OK = b"+OK\r\n"
QUEUED = b"+QUEUED\r\n"
PONG = b"+PONG\r\n"
ZERO = b":0\r\n"
ONE = b":1\r\n"


def _bulk_or_str(x) -> bytes:
    if x.__class__ is bytes:
        return bulk(x)
    if x.__class__ is str:
        return bulk(x.encode("utf-8", "surrogateescape"))
    raise TypeError(x)


class Resp2:
    version = 2
    null = b"$-1\r\n"
    null_array = b"*-1\r\n"

    @staticmethod
    def array(items) -> bytes:
        """items: already-encoded replies."""
        return b"*%d\r\n" % len(items) + b"".join(items)

    @staticmethod
    def bulks(items) -> bytes:
        return b"*%d\r\n" % len(items) + b"".join(
            [b"$-1\r\n" if x is None else _bulk_or_str(x) for x in items])

    def map(self, pairs) -> bytes:
        """pairs: list of (encoded key, encoded value)."""
        return b"*%d\r\n" % (2 * len(pairs)) + b"".join([k + v for k, v in pairs])

    def set(self, items) -> bytes:
        return self.array(items)

    def push(self, items) -> bytes:
        return self.array(items)

    @staticmethod
    def double(x: float) -> bytes:
        return bulk(_fmt_double(x))

    @staticmethod
    def verbatim(text: str, fmt: str = "txt") -> bytes:
        return bulk(text.encode("utf-8", "surrogateescape"))

    @staticmethod
    def boolean(v: bool) -> bytes:
        return ONE if v else ZERO


class Resp3(Resp2):
    version = 3
    null = b"_\r\n"
    null_array = b"_\r\n"

    @staticmethod
    def bulks(items) -> bytes:
        return b"*%d\r\n" % len(items) + b"".join(
            [b"_\r\n" if x is None else _bulk_or_str(x) for x in items])

    def map(self, pairs) -> bytes:
        return b"%%%d\r\n" % len(pairs) + b"".join([k + v for k, v in pairs])

    def set(self, items) -> bytes:
        return b"~%d\r\n" % len(items) + b"".join(items)

    def push(self, items) -> bytes:
        return b">%d\r\n" % len(items) + b"".join(items)

    @staticmethod
    def double(x: float) -> bytes:
        return b"," + _fmt_double(x) + CRLF

    @staticmethod
    def verbatim(text: str, fmt: str = "txt") -> bytes:
        body = fmt.encode() + b":" + text.encode("utf-8", "surrogateescape")
        return b"=%d\r\n%s\r\n" % (len(body), body)

    @staticmethod
    def boolean(v: bool) -> bytes:
        return b"#t\r\n" if v else b"#f\r\n"


def _fmt_double(x: float) -> bytes:
    # Shortest round-trip digits, as Redis 7.2's fpconv_dtoa; Redis prints
    # integral values without a fraction ("1", not Python's "1.0").
    if x != x:
        return b"nan"
    if x in (float("inf"), float("-inf")):
        return b"inf" if x > 0 else b"-inf"
    r = repr(x)
    if r.endswith(".0"):
        r = r[:-2]
    return r.encode()


RESP2 = Resp2()
RESP3 = Resp3()


def encode_command(*args) -> bytes:
    """Encode a request (used by the peer channel and tests)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if a.__class__ is not bytes:
            a = str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)
