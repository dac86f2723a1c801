"""Sans-I/O HTTP/1.1 requests and responses, around the ``httptools`` parser.

``RequestParser.feed(bytes)`` returns events: complete ``Request`` objects
(pipelined requests come out in order), ``EXPECT_CONTINUE`` when a request
asks for ``100 Continue`` before sending its body, and at most one final
``HttpError``, after which the parser is dead (the connection answers it and
closes).  No asyncio here: tests feed bytes, one at a time if they like.

Limits, every one checked before the bytes it bounds are buffered:
* head (request line + headers): llhttp itself buffers nothing, but httptools
  accumulates a header's name and value until the header ends.  So while a
  head is incomplete, at most ``max_head_bytes`` of it are ever fed to the
  parser: the slice fed stops at the head's end (found by scanning for the
  blank line) or at the limit, and a head still incomplete at the limit is a
  431.  Bodies are fed exactly (Content-Length) or in small slices (chunked),
  so a pipelined head that follows a body is accounted the same way.
* header count: the ``max_headers + 1``-th header is a 431;
* body: a ``Content-Length`` above ``max_body_bytes`` is a 413 as soon as the
  head is complete (nothing of the body is read); a chunked body is a 413 at
  the chunk that passes the limit.
Anything llhttp refuses (bad request line, bad header syntax, conflicting
Content-Length / Transfer-Encoding, bare LF, ...) is a 400.
"""

from __future__ import annotations

import httptools

CHUNKED_FEED_BYTES = 4096   # slice of a chunked body fed per call (bounds head mis-accounting)

REASONS = {
    100: "Continue", 200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 503: "Service Unavailable", 505: "HTTP Version Not Supported",
    507: "Insufficient Storage",
}

CONTINUE_RESPONSE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """One parsed request (made by the parser, which sets every field)."""
    __slots__ = ("method", "target", "headers", "body", "keep_alive", "version")
    # method, target: bytes; headers: lower-case name -> value (repeats
    # joined by ", "); body: bytes; keep_alive: bool; version: "1.0" / "1.1",
    # always "1.1" for /v1/data/ paths (only a streamed listing looks at it:
    # chunked or not).


class HttpError:
    """A request the parser refuses: answered with ``status``, then close."""
    __slots__ = ("status", "message")

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message

    def __repr__(self) -> str:
        return "HttpError(%d, %r)" % (self.status, self.message)


EXPECT_CONTINUE = object()


class _Refuse(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


_HEAD, _LENGTH, _CHUNKED = 0, 1, 2
# Content-Length values of small bodies, parsed once (int() of bytes is dear).
_LENGTHS = {b"%d" % n: n for n in range(4097)}
SMALL_BODY_BYTES = 4096     # the fast path copies a body this small rather than slice a view


class RequestParser:
    def __init__(self, max_head_bytes: int, max_headers: int, max_body_bytes: int):
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self.max_body_bytes = max_body_bytes
        self._p = httptools.HttpRequestParser(self)
        self._events: list = []
        self.error: HttpError | None = None
        self.in_message = False       # between a request's first byte and its end
        self._mode = _HEAD
        self._head_fed = 0
        self._tail = b""
        self._cl_total = 0
        self._url = b""
        self._headers: dict = {}
        self._nheaders = 0
        self._req: Request | None = None
        self._body = None             # bytes, or a list of them (several body callbacks)
        self._body_bytes = 0
        self.upgrade = False          # an Upgrade request ended the HTTP stream

    # -- feeding ---------------------------------------------------------------

    def feed(self, data: bytes) -> list:
        out = self._events = []
        if self.error is not None or self.upgrade:
            return out
        n = len(data)
        pos = 0
        mv = None
        p = self._p
        try:
            if self._mode == _HEAD and not self._tail and not self.in_message and \
                    n <= self.max_head_bytes:
                # Fast path, the usual read: one whole head (a GET), or one head
                # and then exactly its Content-Length body (a PUT): fed in one
                # or two calls, the limits holding as on the general path.
                j = data.find(b"\r\n\r\n")
                if j >= 0:
                    pos = j + 4
                    if pos == n:
                        p.feed_data(data)
                        return out
                    if n - pos <= SMALL_BODY_BYTES:
                        # A small body: copies are cheaper than views.
                        p.feed_data(data[:pos])
                        if self._mode == _LENGTH and self._cl_total - self._body_bytes == n - pos:
                            p.feed_data(data[pos:])
                            return out
                    else:
                        mv = memoryview(data)
                        p.feed_data(mv[:pos])
                        if self._mode == _LENGTH and self._cl_total - self._body_bytes == n - pos:
                            p.feed_data(mv[pos:])
                            return out
            if mv is None:
                mv = memoryview(data)
            while pos < n:
                mode = self._mode
                if mode == _HEAD:
                    room = self.max_head_bytes - self._head_fed
                    end = min(n, pos + room)
                    stop = -1
                    tail = self._tail
                    if tail:
                        j = (tail + bytes(mv[pos:pos + 3])).find(b"\r\n\r\n")
                        if j >= 0:
                            stop = pos + j + 4 - len(tail)
                    if stop < 0:
                        j = data.find(b"\r\n\r\n", pos, end)
                        stop = end if j < 0 else j + 4
                    if stop > end:
                        stop = end
                    p.feed_data(mv[pos:stop])
                    if self._mode == _HEAD and self.in_message:
                        self._head_fed += stop - pos
                        self._tail = (tail + bytes(mv[max(pos, stop - 3):stop]))[-3:]
                        if self._head_fed >= self.max_head_bytes:
                            raise _Refuse(431, "request head over http-max-header-bytes (%d)"
                                          % self.max_head_bytes)
                    pos = stop
                elif mode == _LENGTH:
                    stop = min(n, pos + max(self._cl_total - self._body_bytes, 1))
                    p.feed_data(mv[pos:stop])
                    pos = stop
                else:
                    stop = min(n, pos + CHUNKED_FEED_BYTES)
                    p.feed_data(mv[pos:stop])
                    pos = stop
        except _Refuse as e:
            self._fail(e.status, e.message)
        except httptools.HttpParserUpgrade:
            # An Upgrade (WebSocket) request: served as a plain request, and
            # the connection closes after it (nothing here speaks WebSocket).
            self.upgrade = True
            for ev in out:
                if isinstance(ev, Request):
                    ev.keep_alive = False
        except httptools.HttpParserCallbackError as e:
            cause = e.__context__
            if isinstance(cause, _Refuse):
                self._fail(cause.status, cause.message)
            else:   # pragma: no cover - a bug in our callbacks
                raise
        except httptools.HttpParserError as e:
            self._fail(400, "malformed request (%s)" % _reason(e))
        return out

    def _fail(self, status: int, message: str) -> None:
        self.error = HttpError(status, message)
        self._events.append(self.error)
        self._body = None
        self.in_message = False

    # -- httptools callbacks -------------------------------------------------------

    def on_message_begin(self):
        self.in_message = True
        self._url = b""
        self._headers = {}
        self._nheaders = 0
        self._body = None
        self._body_bytes = 0

    def on_url(self, url: bytes):
        self._url += url

    def on_header(self, name: bytes, value: bytes):
        n = self._nheaders = self._nheaders + 1
        if n > self.max_headers:
            raise _Refuse(431, "more than http-max-headers (%d) headers" % self.max_headers)
        name = name.lower()
        h = self._headers
        if name in h:
            h[name] += b", " + value
        else:
            h[name] = value

    def on_headers_complete(self):
        p = self._p
        h = self._headers
        url = self._url
        req = self._req = Request()
        req.method = p.get_method()
        req.target = url
        req.headers = h
        req.body = b""
        # The HTTP version matters only to a streamed listing; a data path
        # never streams, so the hot path skips asking.
        req.version = "1.1" if url.startswith(b"/v1/data/") else p.get_http_version()
        self._tail = b""
        self._head_fed = 0
        te = h.get(b"transfer-encoding")
        if te is not None and b"chunked" in te.lower():
            self._mode = _CHUNKED
        else:
            cl = h.get(b"content-length")
            if cl is not None:
                n = _LENGTHS.get(cl)
                if n is None and cl.isdigit():
                    n = int(cl)
                if n:
                    if n > self.max_body_bytes:
                        raise _Refuse(413, "body of %d bytes over http-max-body-bytes (%d)"
                                      % (n, self.max_body_bytes))
                    self._mode = _LENGTH
                    self._cl_total = n
        if self._mode != _HEAD:
            expect = h.get(b"expect")
            if expect is not None and expect.lower() == b"100-continue":
                self._events.append(EXPECT_CONTINUE)

    def on_body(self, body: bytes):
        n = self._body_bytes = self._body_bytes + len(body)
        if n > self.max_body_bytes:
            raise _Refuse(413, "body over http-max-body-bytes (%d)" % self.max_body_bytes)
        b = self._body
        if b is None:
            self._body = body
        elif b.__class__ is list:
            b.append(body)
        else:
            self._body = [b, body]

    def on_message_complete(self):
        req = self._req
        self._req = None
        body = self._body
        if body is not None:
            req.body = body if body.__class__ is not list else b"".join(body)
            self._body = None
        req.keep_alive = self._p.should_keep_alive()
        self._mode = _HEAD
        self._head_fed = 0
        self._tail = b""
        self.in_message = False
        self._events.append(req)


def _reason(e: Exception) -> str:
    s = str(e) or type(e).__name__
    return s[:120]


# -- responses -----------------------------------------------------------------


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, "Unknown").encode())


_STATUS_LINES = {code: status_line(code) for code in REASONS}


def response(status: int, common: bytes, extra: bytes, body: bytes, head: bool = False,
             close: bool = False, length: int | None = None) -> bytes:
    """One complete response.  ``common`` and ``extra`` are ready header
    lines (each ending CRLF); ``head`` omits the body but keeps its
    Content-Length (``length`` overrides it, for HEAD of a stored value)."""
    sl = _STATUS_LINES.get(status) or status_line(status)
    n = len(body) if length is None else length
    return b"%s%s%sContent-Length: %d\r\n%s\r\n%s" % (
        sl, common, extra, n, b"Connection: close\r\n" if close else b"",
        b"" if head else body)
