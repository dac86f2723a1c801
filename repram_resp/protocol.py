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

Known leniencies of the fast path (malformed input no client sends; checking
for them would cost a Python step per argument): inside a multibulk read in
one piece, a ``+simple`` or ``(bignum`` element is taken as an argument and a
``=verbatim`` element as its text after the ``xxx:`` prefix; after a first
``*`` command in the same read, a RESP3 ``~set`` or ``|attribute`` of bulk
strings is taken as a command.  Redis (and the exact parser) reply
``expected '$'`` or treat such lines as inline commands.
"""

from __future__ import annotations

import hiredis

from . import errors

CRLF = b"\r\n"

# Redis's PROTO_INLINE_MAX_SIZE: longest inline line / count line accepted.
INLINE_MAX_BYTES = 64 * 1024
# Redis caps the multibulk count at INT_MAX; we make the cap a setting and
# default to 1 Mi arguments (far beyond any real client's MSET).
DEFAULT_MAX_ARGS = 1024 * 1024
DEFAULT_MAX_BULK_BYTES = 512 * 1024 * 1024          # proto-max-bulk-len
DEFAULT_QUERY_BUFFER_BYTES = 1024 * 1024 * 1024    # client-query-buffer-limit

_NEED = object()  # hiredis "need more data" sentinel (False is RESP3 #f)
# Fed to hiredis after a read it parsed, to learn whether the read ended on a
# command boundary: has_data() is False also when hiredis holds half an array
# (the read ended between two elements) or a type byte it already consumed.
# Only a reader in a clean state gives the integer 0 back; otherwise the probe
# becomes an array element (a list, or "need more") or malformed (an error).
_PROBE = b":0\r\n"
_STAR = ord("*")
_DOLLAR = ord("$")


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
                 "_args", "_args_bytes", "_bulklen", "_reader", "_fast_limit")

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

    def set_limits(self, max_bulk: int, max_args: int, max_query: int) -> None:
        self.max_bulk, self.max_args, self.max_query = max_bulk, max_args, max_query
        self._fast_limit = _fast_limit(max_bulk, max_args)

    def feed(self, data: bytes) -> list:
        if self.error is not None:
            return []
        # Only when the exact parser holds nothing: a read that continues a
        # command (e.g. a bulk payload that happens to start with '*', right
        # after its "$n\r\n" header arrived) must not be parsed as new input.
        if (not self._buf and self._argc == 0 and data[:1] == b"*"
                and len(data) <= self._fast_limit):
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
                    return self._fallback(data)
                reader.feed(_PROBE)
                clean = gets().__class__ is int
            except (hiredis.ProtocolError, MemoryError):
                # MemoryError: hiredis allocates a list for an array header
                # before its elements arrive, so "*4294967295" fails here;
                # the exact parser refuses it against max_args instead.
                return self._fallback(data)
            if not clean:
                return self._fallback(data)   # the read ended inside a command
            for cmd in out:
                if cmd.__class__ is not list or not cmd:
                    return self._fallback(data)
                for a in cmd:
                    if a.__class__ is not bytes:
                        return self._fallback(data)
            return out
        return self._slow(data)

    def _fallback(self, data: bytes) -> list:
        self._reader = hiredis.Reader(notEnoughData=_NEED)
        return self._slow(data)

    # -- the exact parser ---------------------------------------------------

    def _slow(self, data: bytes) -> list:
        buf = self._buf
        buf += data
        pos = self._pos
        end = len(buf)
        out: list = []
        err = None
        while pos < end:
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
                        err = errors.PROTO_INVALID_MBULK_LEN
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
                        err = errors.PROTO_INVALID_BULK_LEN
                        break
                    pos = nl + 2
                    self._bulklen = ll
                n = self._bulklen
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
        if len(buf) - pos + self._args_bytes > self.max_query:
            self.error = errors.PROTO_QUERY_BUFFER
            buf.clear()
            self._pos = 0
        return out

    @property
    def pending_bytes(self) -> int:
        return len(self._buf) - self._pos


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


def split_inline(line: bytes) -> list | None:
    """Redis ``sdssplitargs``: words, "double" (with \\xHH and \\n escapes) and
    'single' quotes.  Returns None on unbalanced quotes (or a closing quote
    not followed by a space)."""
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
