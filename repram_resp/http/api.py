"""REPRAM's HTTP API on this node's keyspace (reference/repram-http-and-mcp.md §2).

``Api.handle(request)`` returns the complete response bytes, a Future of
them (a PUT waiting for its quorum) or a ``Stream`` (a key listing too big for
one response).  No sockets here: protocol.py owns the connection.

Where REPRAM's contract differs from ours, REPRAM's wins on this surface:
* TTL: ``?ttl=`` wins over ``X-TTL`` (an invalid ``?ttl`` means the header is
  ignored); integers as Go's ``Atoi`` reads them; junk or <= 0 -> the default
  (``default-ttl``, or 3600 when that is 0); then **clamped** into
  ``[min-ttl, max-ttl]`` -- never refused.  ``X-Original-TTL`` reports what was
  applied.
* A PUT is ``SET key value PX ttl`` through the one write path
  (writes.local_write): replicated, versioned, notified.  Then **201** once the
  REPRAM quorum ``floor(min(enclave size, replication-factor)/2)+1`` (this node
  included) acknowledged within ``http-quorum-timeout-ms`` -- WAIT's own
  machinery -- else **202**.  A single node answers 201 at once.  maxmemory ->
  **507**; NOREPLICAS -> 500 ``Write failed: ...``.
* Metadata headers come from the entry itself, so every replica reports the
  same: ``X-Created-At`` = the HLC version's physical ms (ISO 8601 with ms, as
  the TS node), ``X-Original-TTL`` = round((deadline - created) / 1 s),
  ``X-Remaining-TTL`` = floor((deadline - now) / 1 s).
* ``requirepass``, when set, is required as ``Authorization: Bearer <pass>``
  (401 otherwise; CORS preflights excepted).  REPRAM itself has no client auth.
* There is no deletion: DELETE (and any other method on a data path) is 405.
Keys are the path after ``/v1/data/``, percent-decoded to raw bytes (so
``a/b``, ``a%2Fb`` and any escaped byte work); a malformed escape is a 400.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time

from .. import __version__, errors
from ..writes import local_write
from . import wire
from .ratelimit import RateLimiter, client_ip, is_scanner
from .wire import response

log = logging.getLogger("repram.http")
_monotonic = time.monotonic

VERSION_SHIFT = 16            # version >> 16 = the HLC's physical ms (clock.py)
KEYS_CHUNK = 1000             # keys per chunk of a streamed listing
SCAN_CHUNK = 4 * KEYS_CHUNK   # index entries examined per chunk (expired ones are skipped)
TTL_CACHE_MAX = 256           # distinct X-TTL values whose TTL is remembered
CREATED_CACHE_MAX = 256       # distinct TTLs whose 201 answer is kept (per second)
DEFAULT_TTL_MS = 3_600_000    # REPRAM's default when default-ttl is 0 (HTTP never refuses)

_INT_RE = re.compile(rb"[+-]?[0-9]{1,18}\Z")     # Go strconv.Atoi, within int64
_HEX = frozenset(b"0123456789abcdefABCDEF")
_plain_data = re.compile(rb"/v1/data/[^%?]+\Z").match     # a key without escapes or query

DATA_PREFIX = b"/v1/data/"
DATA_METHODS = b"GET, HEAD, PUT, OPTIONS"
SECURITY_HEADERS = (
    b"X-Content-Type-Options: nosniff\r\n"
    b"X-Frame-Options: DENY\r\n"
    b"X-XSS-Protection: 1; mode=block\r\n"
    b"Referrer-Policy: strict-origin-when-cross-origin\r\n"
    b"Content-Security-Policy: default-src 'self'\r\n"
    b"X-REPRAM-Node: repram-resp/" + __version__.encode() + b"\r\n"
    # REPRAM sends none; without it browser code cannot read the metadata.
    b"Access-Control-Expose-Headers: X-Created-At, X-Original-TTL, X-Remaining-TTL\r\n"
)
CORS_PREFLIGHT = (
    b"Access-Control-Allow-Methods: GET, HEAD, PUT, OPTIONS\r\n"
    b"Access-Control-Allow-Headers: Content-Type, X-TTL, X-Repram-Signature, Authorization\r\n"
    b"Access-Control-Max-Age: 3600\r\n"
)
TEXT = b"Content-Type: text/plain; charset=utf-8\r\n"
JSON = b"Content-Type: application/json\r\n"
OCTETS = b"Content-Type: application/octet-stream\r\n"
PROMETHEUS = b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"


class BadRequest(Exception):
    pass


def unquote(s: bytes, plus: bool = False) -> bytes:
    """Strict percent-decoding to raw bytes; ValueError on a malformed escape.
    ``plus``: '+' is a space (query strings, as URLSearchParams / Go read them)."""
    if plus and b"+" in s:
        s = s.replace(b"+", b" ")
    if b"%" not in s:
        return s
    parts = s.split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        if len(part) < 2 or part[0] not in _HEX or part[1] not in _HEX:
            raise ValueError("malformed percent-escape")
        out.append(bytes.fromhex(part[:2].decode("ascii")))
        out.append(part[2:])
    return b"".join(out)


def parse_query(q: bytes) -> dict:
    """name -> first value, both percent-decoded (raw bytes)."""
    out: dict = {}
    if not q:
        return out
    for item in q.split(b"&"):
        if not item:
            continue
        k, _, v = item.partition(b"=")
        k = unquote(k, True)
        if k not in out:
            out[k] = unquote(v, True)
    return out


def atoi(v: bytes | None) -> int | None:
    if v is None:
        return None
    if v.isdigit() and len(v) <= 18:      # the usual case, without the regex
        return int(v)
    if not _INT_RE.match(v):
        return None
    return int(v)


_ISO_CACHE: dict = {}


def iso_ms(ms: int) -> bytes:
    """ISO 8601 UTC with milliseconds, as the TS node's toISOString()."""
    sec = ms // 1000
    head = _ISO_CACHE.get(sec)
    if head is None:
        if len(_ISO_CACHE) > 4096:
            _ISO_CACHE.clear()
        head = _ISO_CACHE[sec] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(sec)).encode()
    return b"%s%03dZ" % (head, ms % 1000)


class Stream:
    """A response sent in chunks across loop turns: ``head`` then each bytes
    chunk of ``chunks`` (an iterator), framed as chunked transfer-encoding
    when ``chunked`` (HTTP/1.1), else delimited by closing the connection."""
    __slots__ = ("head", "chunks", "chunked")

    def __init__(self, head: bytes, chunks, chunked: bool):
        self.head, self.chunks, self.chunked = head, chunks, chunked


class _Writer:
    """Whom WAIT counts an HTTP write for (the fields Replicator reads from
    a RESP client): one per PUT, so its quorum covers exactly that write."""
    __slots__ = ("write_offset", "repl_lo", "created", "in_exec")

    def __init__(self):
        self.write_offset = 0
        self.repl_lo = 0
        self.created = time.monotonic()
        self.in_exec = False


class Api:
    def __init__(self, front):
        self.front = front
        self.server = front.server
        # Responses by status code (the usual ones present, so the hot paths
        # can just add).
        self.stats: dict[int, int] = dict.fromkeys((200, 201, 202, 404), 0)
        self._created_cache: dict[int, bytes] = {}    # TTL ms -> the whole 201
        self._created_common = None                    # ... for this common block
        self._ttls: dict = {}                          # X-TTL value (or None) -> TTL ms
        self.guard = None        # True when a request must pass guarded() first
        self.limiter = None      # ratelimit.RateLimiter, with http-rate-limit > 0
        self.config_changed("http-rate-limit")

    # -- entry point -------------------------------------------------------------

    def guarded(self, req: wire.Request, peer_ip):
        """REPRAM's security checks before the handler (ratelimit.py), while
        one of them is on: the rate limit (429), then the scanner filter
        (403).  A CORS preflight passes, as in REPRAM."""
        if req.method != b"OPTIONS":
            cfg = self.server.config
            lim = self.limiter
            if lim is not None and not lim.allow(
                    client_ip(peer_ip, req.headers, cfg.http_trust_proxy), _monotonic()):
                return self._refuse(req, 429, b"Retry-After: 1\r\n", b"Rate limit exceeded\n")
            if cfg.http_block_scanners:
                ua = req.headers.get(b"user-agent")
                if ua is not None and is_scanner(ua):
                    return self._refuse(req, 403, b"", b"Forbidden\n")
        return self.handle(req)

    def _refuse(self, req, status: int, extra: bytes, body: bytes) -> bytes:
        origin = req.headers.get(b"origin")
        common = self.front.common_any_origin if origin is None else (
            self.front.common + b"Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n" % origin)
        return self._reply(status, common + extra, TEXT, body, req.method == b"HEAD")

    def handle(self, req: wire.Request):
        """The response to one request: bytes, a Future of bytes, or a Stream."""
        method = req.method
        target = req.target
        origin = req.headers.get(b"origin")
        if origin is None:
            common = self.front.common_any_origin
        else:
            common = self.front.common + b"Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n" % origin
        try:
            if _plain_data(target) is not None and not self.server.config.requirepass:
                # The hot paths: GET and PUT /v1/data/<plain key> (no escape,
                # no query, so a PUT's TTL is X-TTL's).
                if method == b"GET":
                    return self._get(target[9:], common, False)
                if method == b"PUT":
                    x_ttl = req.headers.get(b"x-ttl")
                    ttl = self._ttls.get(x_ttl)
                    if ttl is None:
                        ttl = self._ttl_of(x_ttl)
                    return self._put_ttl(req, target[9:], ttl, common, origin is None)
            head = method == b"HEAD"
            if target[:1] == b"/":
                path, _, query = target.partition(b"?")
            elif target == b"*":
                path, query = b"*", b""
            else:
                try:
                    u = wire.httptools.parse_url(target)
                except wire.httptools.HttpParserInvalidURLError:
                    raise BadRequest("bad request target") from None
                path, query = u.path or b"/", u.query or b""
            if method == b"OPTIONS":
                return self._reply(200, common + CORS_PREFLIGHT, b"", b"", False)
            cfg = self.server.config
            if cfg.requirepass and not self._authorized(req, cfg.requirepass):
                return self._reply(401, common + b'WWW-Authenticate: Bearer realm="repram"\r\n',
                                   TEXT, b"Unauthorized: requirepass is set; send "
                                   b"Authorization: Bearer <password>\n", head)
            if path.startswith(DATA_PREFIX):
                try:
                    key = unquote(path[len(DATA_PREFIX):])
                except ValueError:
                    raise BadRequest("malformed percent-escape in the key") from None
                if not key:
                    return self._reply(404, common, TEXT, b"Not found\n", head)
                if method == b"GET" or head:
                    return self._get(key, common, head)
                if method == b"PUT":
                    return self._put(req, key, parse_query(query), common)
                return self._reply(405, common + b"Allow: " + DATA_METHODS + b"\r\n", TEXT,
                                   b"Method not allowed: REPRAM has no deletion; keys leave "
                                   b"only by expiring\n" if method == b"DELETE" else
                                   b"Method not allowed\n", head)
            route = _ROUTES.get(path)
            if route is None:
                return self._reply(404, common, TEXT, b"Not found\n", head)
            if method != b"GET" and not head:
                return self._reply(405, common + b"Allow: GET, HEAD, OPTIONS\r\n", TEXT,
                                   b"Method not allowed\n", head)
            return route(self, req, parse_query(query), common, head)
        except (BadRequest, ValueError) as e:
            return self._reply(400, common, TEXT, ("Bad request: %s\n" % e).encode(),
                               method == b"HEAD")
        except Exception:   # a bug must cost one reply, not the connection
            log.exception("internal error serving %s", method.decode("latin-1"))
            return self._reply(500, common, TEXT, b"Internal server error (see server log)\n",
                               method == b"HEAD")

    def _reply(self, status: int, headers: bytes, ctype: bytes, body: bytes, head: bool,
               length: int | None = None) -> bytes:
        st = self.stats
        st[status] = st.get(status, 0) + 1
        return response(status, headers, ctype, body, head, length=length)

    @staticmethod
    def _authorized(req, password: str) -> bool:
        got = req.headers.get(b"authorization", b"")
        scheme, _, token = got.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(
            token.strip(), password.encode("utf-8", "surrogateescape"))

    # -- /v1/data/{key} ------------------------------------------------------------

    def _get(self, key: bytes, common: bytes, head: bool) -> bytes:
        server = self.server
        now = server.clock()
        ks = server.keyspace
        e = ks.lookup(key, now)
        if e is None:
            ks.misses += 1
            return self._reply(404, common, b"", b"", head)
        ks.hits += 1
        value, deadline, version = e[0], e[1], e[2]
        created = version >> VERSION_SHIFT
        self.stats[200] += 1
        # The hottest answer, built in one step (wire.response's layout).
        return b"HTTP/1.1 200 OK\r\n%sX-Created-At: %s\r\nX-Original-TTL: %d\r\nX-Remaining-TTL: " \
            b"%d\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n%s" % (
                common, iso_ms(created), (deadline - created + 500) // 1000,
                max(0, (deadline - now) // 1000), len(value), b"" if head else value)

    def _ttl_of(self, x_ttl: bytes | None) -> int:
        """X-TTL's TTL in ms, remembered (the usual PUTs repeat a few TTLs;
        forgotten when min-ttl / max-ttl / default-ttl change)."""
        ttl = clamp_ttl_ms(self.server.config, atoi(x_ttl))
        if x_ttl is None or len(x_ttl) <= 20:     # an integer's length: junk is not kept
            if len(self._ttls) >= TTL_CACHE_MAX:
                self._ttls.clear()
            self._ttls[x_ttl] = ttl
        return ttl

    def config_changed(self, name: str) -> None:
        cfg = self.server.config
        if name in ("min-ttl", "max-ttl", "default-ttl"):
            self._ttls.clear()
        elif name == "http-rate-limit":
            rate = cfg.http_rate_limit
            self.limiter = RateLimiter(rate, cfg.http_rate_limit_max_ips) if rate else None
        elif name == "http-rate-limit-max-ips" and self.limiter is not None:
            self.limiter.max_ips = cfg.http_rate_limit_max_ips
        self.guard = True if self.limiter is not None or cfg.http_block_scanners else None

    def ttl_ms(self, req, query: dict) -> int:
        """The TTL a PUT gets: ``?ttl=`` else ``X-TTL`` (REPRAM's rules)."""
        if b"ttl" in query:
            s = atoi(query[b"ttl"])
        else:
            s = atoi(req.headers.get(b"x-ttl"))
        return clamp_ttl_ms(self.server.config, s)

    def _put(self, req, key: bytes, query: dict, common: bytes):
        return self._put_ttl(req, key, self.ttl_ms(req, query), common, False)

    def _put_ttl(self, req, key: bytes, ttl: int, common: bytes, shared: bool):
        """``shared``: ``common`` is the frontend's block of this second (no
        Origin to reflect), so a 201's whole answer can come from a cache."""
        r = put_status(self.server, key, req.body, ttl)
        if r == 201 and shared:
            self.stats[201] += 1
            if self._created_common is common:
                done = self._created_cache.get(ttl)
                if done is not None:
                    return done
            return self._created(ttl, common)
        common += b"X-Original-TTL: %d\r\n" % ((ttl + 500) // 1000)
        if r.__class__ is int:
            return self._status_reply(r, common)
        fut = asyncio.get_running_loop().create_future()
        r.add_done_callback(lambda f: fut.done() or fut.set_result(
            self._status_reply(f.result(), common)))
        return fut

    def _created(self, ttl: int, common: bytes) -> bytes:
        """The 201 for this TTL, made once per TTL and second (the Date line
        is the only other variable part)."""
        cache = self._created_cache
        if self._created_common is not common:
            self._created_common = common
            cache.clear()
        r = cache.get(ttl)
        if r is None:
            if len(cache) >= CREATED_CACHE_MAX:
                cache.clear()
            r = cache[ttl] = b"HTTP/1.1 201 Created\r\n%sX-Original-TTL: %d\r\n" \
                b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nOK\n" % (
                    common, (ttl + 500) // 1000)
        return r

    def _status_reply(self, status, common: bytes) -> bytes:
        if status == 201:
            self.stats[201] += 1
            return b"HTTP/1.1 201 Created\r\n%sContent-Type: text/plain; charset=utf-8\r\n" \
                b"Content-Length: 3\r\n\r\nOK\n" % common
        if status == 202:
            return self._reply(202, common, TEXT, b"Accepted (quorum pending)\n", False)
        if status == 507:
            return self._reply(507, common, TEXT, b"Node storage capacity exceeded\n", False)
        return self._reply(500, common, TEXT, b"Write failed: %s\n" % status.encode(), False)

    # -- /v1/keys ------------------------------------------------------------------

    def _keys(self, req, query: dict, common: bytes, head: bool):
        prefix = query.get(b"prefix", b"")
        limit = atoi(query.get(b"limit"))
        if limit is not None and limit <= 0:
            limit = None
        cursor = query.get(b"cursor") or None
        pages = key_chunks(self.server, prefix, cursor, limit)
        first = next(pages)
        try:
            second = next(pages)
        except StopIteration:
            # The whole answer fits one chunk: a plain response.
            return self._reply(200, common, JSON, first, head)
        st = self.stats
        st[200] = st.get(200, 0) + 1
        chunked = req.version != "1.0"
        hdr = wire.status_line(200) + common + JSON + (
            b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n")
        if head:
            return hdr

        def chunks():
            yield first
            yield second
            yield from pages
        return Stream(hdr, chunks(), chunked)

    # -- node information ------------------------------------------------------------

    def _health(self, req, query, common, head):
        s = self.server
        body = json.dumps({"status": "healthy", "node_id": s.node_id, "network": "private",
                           "enclave": s.config.enclave}).encode()
        return self._reply(200, common, JSON, body, head)

    def _peers(self):
        repl = self.server.replication
        if repl is None:
            return []
        return sorted(repl.peers.values(), key=lambda p: p.node_id)

    def _status(self, req, query, common, head):
        s = self.server
        from ..server import rss_bytes
        now = s.clock()
        repl = s.replication
        size = repl.enclave_size() if repl is not None else 1
        rf = s.config.replication_factor
        body = {
            "status": "healthy", "node_id": s.node_id, "network": "private",
            "enclave": s.config.enclave, "uptime": "%ds" % int(time.time() - s.started_at),
            "version": __version__,
            "memory": {"rss": rss_bytes(), "used_memory": s.keyspace.used_bytes,
                       "maxmemory": s.config.maxmemory_bytes},
            "keys": s.keyspace.dbsize(now),
            "connections": {"http": len(self.front.connections), "resp": len(s.clients),
                            "maxclients": s.config.maxclients,
                            "http_maxclients": s.config.http_maxclients},
            "enclave_size": size, "replication_factor": rf, "quorum": min(size, rf) // 2 + 1,
            "peers": [{"id": p.node_id, "address": p.address, "client_port": p.client_port,
                       "http_port": p.http_port or None,
                       "enclave": p.enclave, "state": p.state} for p in self._peers()],
        }
        return self._reply(200, common, JSON, json.dumps(body).encode(), head)

    def _topology(self, req, query, common, head):
        s = self.server
        body = {"node_id": s.node_id, "enclave": s.config.enclave,
                "peers": [{"id": p.node_id, "address": p.host or "?", "http_port": p.http_port or None,
                           "cluster_port": p.cport, "client_port": p.client_port,
                           "enclave": p.enclave, "state": p.state} for p in self._peers()]}
        return self._reply(200, common, JSON, json.dumps(body).encode(), head)

    def _metrics(self, req, query, common, head):
        from .metrics import render
        return self._reply(200, common, PROMETHEUS, render(self.front), head)


def key_chunks(server, prefix: bytes, cursor: bytes | None, limit: int | None):
    """The JSON body in pieces of up to KEYS_CHUNK keys, walking the
    sorted index from the last key visited (as SCAN does), so each piece
    costs O(log N + KEYS_CHUNK) whatever the keyspace does in between:
    ``keys > cursor`` under ``prefix``, the first ``limit`` of them, and
    ``next_cursor`` (the page's last key) only if more remain."""
    ks = server.keyspace
    last = cursor            # last key visited (returned or skipped as expired)
    returned = None          # last key returned
    left = limit
    opening = b'{"keys":['
    emitted = False
    while True:
        index, data = ks.index, ks.data
        now = server.clock()
        pos = index.bisect_left(prefix) if prefix else 0
        if last is not None:
            pos = max(pos, index.bisect_right(last))
        want = KEYS_CHUNK if left is None else min(KEYS_CHUNK, left)
        batch = list(index.islice(pos, pos + SCAN_CHUNK))
        ended = len(batch) < SCAN_CHUNK
        out = []
        more = False
        for k in batch:
            if prefix and not k.startswith(prefix):
                ended = True
                break
            if now > data[k][1]:
                last = k
                continue
            if len(out) == want:
                more = True     # a live key beyond this piece exists
                break
            out.append(k)
            last = k
        piece = opening
        opening = b""
        if out:
            returned = out[-1]
            text = json.dumps([k.decode("utf-8", "surrogateescape") for k in out],
                              separators=(",", ":"))[1:-1].encode()
            piece += (b"," + text) if emitted else text
            emitted = True
            if left is not None:
                left -= len(out)
        if more and left == 0:
            yield piece + b'],"next_cursor":' + json.dumps(
                returned.decode("utf-8", "surrogateescape")).encode() + b"}"
            return
        if ended and not more:
            yield piece + b"]}"
            return
        yield piece


def clamp_ttl_ms(cfg, seconds: int | None) -> int:
    """REPRAM's TTL rule: junk / none / <= 0 -> the default (default-ttl, or
    3600 s when that is 0, since this surface never refuses), then clamped
    into [min-ttl, max-ttl]."""
    if seconds is None or seconds <= 0:
        ms = cfg.default_ttl_ms or DEFAULT_TTL_MS
    else:
        ms = seconds * 1000
    return min(max(ms, cfg.min_ttl_ms, 1), cfg.max_ttl_ms)


def put_status(server, key: bytes, value: bytes, ttl_ms: int):
    """A REPRAM PUT: the one local write (writes.local_write, as SET), then
    the REPRAM quorum through WAIT's machinery.  Returns 201, 202, 507 or the
    refusal text (500 "Write failed"), or a Future of one of them while the
    quorum is pending (at most http-quorum-timeout-ms)."""
    now = server.now = server.clock()
    repl = server.replication
    if repl is None:
        # A single node: no writer for WAIT to count, no quorum to wait for.
        err = local_write(server, None, key, value, now + ttl_ms, now)
        if err is None:
            return 201
        return 507 if err == errors.OOM else err
    want = min(repl.enclave_size(), server.config.replication_factor) // 2   # quorum - self
    writer = _Writer() if want > 0 else None    # alone in its enclave: nothing to wait for
    err = local_write(server, writer, key, value, now + ttl_ms, now)
    if err is not None:
        return 507 if err == errors.OOM else err
    if want <= 0:
        return 201
    r = repl.replicator.wait(writer, want, server.config.http_quorum_timeout_ms)
    if r.__class__ is bytes:
        return 201 if _resp_int(r) >= want else 202
    fut = asyncio.get_running_loop().create_future()

    def done(f):
        if not fut.done():
            ok = not f.cancelled() and f.exception() is None and _resp_int(f.result()) >= want
            fut.set_result(201 if ok else 202)
    r.add_done_callback(done)
    return fut


def _resp_int(reply: bytes) -> int:
    """The count in WAIT's RESP integer reply (b':2\\r\\n')."""
    return int(reply[1:-2])


_ROUTES = {
    b"/v1/keys": Api._keys,
    b"/v1/health": Api._health,
    b"/v1/status": Api._status,
    b"/v1/topology": Api._topology,
    b"/v1/metrics": Api._metrics,
}
