"""Where the MCP tools' reads and writes go: the same four operations over
an embedded node (in-process), RESP (``redis://``) or REPRAM's HTTP API
(``http://``).  All three apply the same rules, so a prompt sees the same
results whatever the mode:

* a value over the value limit is refused as HTTP's 413 (the embedded
  node's ``http-max-body-bytes``; over RESP ``--max-value-bytes``, 10 MiB by
  default, checked before anything is sent);
* the TTL is clamped into the node's [min-ttl, max-ttl] and the TTL applied
  is returned (HTTP: the node's ``X-Original-TTL``; RESP: the bounds read
  once with ``CONFIG GET``), so ``expires_at`` is right;
* a full store is 507 (RESP: the ``OOM`` error).

Each method returns plain data or raises ``BackendError`` (with the HTTP
status and reason the tools report).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.parse

MAX_VALUE_BYTES = 10 * 1024 * 1024       # REPRAM's body limit, applied over RESP too


class BackendError(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__("%d %s" % (status, reason))
        self.status, self.reason = status, reason


class StoreRefused(BackendError):
    """The node answered a store with a status other than 201/202."""


# -- embedded: a full node in this process ------------------------------------------


class EmbeddedBackend:
    """Tools run on the node's own keyspace, through the HTTP surface's
    functions (the one write path, the quorum, the key listing)."""

    def __init__(self, server):
        self.server = server

    async def store(self, key: bytes, value: bytes, ttl_s: int) -> int:
        from ..http.api import clamp_ttl_ms, put_status
        cfg = self.server.config
        limit = min(cfg.http_max_body_bytes, cfg.proto_max_bulk_bytes)
        if len(value) > limit:
            raise StoreRefused(413, "Payload Too Large")
        ttl_ms = clamp_ttl_ms(cfg, ttl_s)
        r = put_status(self.server, key, value, ttl_ms)
        if r.__class__ is not int:
            r = await r
        if r == 507:
            raise StoreRefused(507, "Insufficient Storage")
        if r not in (201, 202):
            raise StoreRefused(500, "Internal Server Error (%s)" % r)
        return (ttl_ms + 500) // 1000

    async def retrieve(self, key: bytes):
        from ..http.api import VERSION_SHIFT, iso_ms
        s = self.server
        now = s.clock()
        e = s.keyspace.lookup(key, now)
        if e is None:
            return None
        return e[0], iso_ms(e[2] >> VERSION_SHIFT).decode(), max(0, (e[1] - now) // 1000)

    async def exists(self, key: bytes):
        s = self.server
        now = s.clock()
        e = s.keyspace.lookup(key, now)
        return None if e is None else max(0, (e[1] - now) // 1000)

    async def list_keys(self, prefix: bytes, limit: int | None, cursor: bytes | None) -> dict:
        from ..http.api import key_chunks
        parts = []
        for chunk in key_chunks(self.server, prefix, cursor, limit):
            parts.append(chunk)
            await asyncio.sleep(0)      # a big listing yields to the node between chunks
        return json.loads(b"".join(parts))

    async def close(self) -> None:
        pass


# -- RESP ---------------------------------------------------------------------------------


class RespBackend:
    def __init__(self, url: str, max_value_bytes: int = MAX_VALUE_BYTES):
        import redis.asyncio as aioredis
        self.r = aioredis.Redis.from_url(url, decode_responses=False)
        self.max_value_bytes = max_value_bytes
        self._bounds = None

    async def _ttl_bounds(self):
        if self._bounds is None:
            lo, hi = 1, None
            try:
                got = await self.r.config_get("min-ttl")
                v = got.get(b"min-ttl", got.get("min-ttl"))
                if v is not None:
                    lo = max(1, int(v))
                got = await self.r.config_get("max-ttl")
                v = got.get(b"max-ttl", got.get("max-ttl"))
                if v is not None:
                    hi = int(v)
            except Exception:
                pass            # not our node (or CONFIG refused): no clamping
            self._bounds = (lo, hi)
        return self._bounds

    async def store(self, key: bytes, value: bytes, ttl_s: int) -> int:
        import redis
        if len(value) > self.max_value_bytes:
            raise StoreRefused(413, "Payload Too Large")
        lo, hi = await self._ttl_bounds()
        ttl = max(ttl_s, lo)
        if hi is not None:
            ttl = min(ttl, hi)
        try:
            await self.r.set(key, value, ex=ttl)
        except redis.ResponseError as e:
            oom = getattr(redis.exceptions, "OutOfMemoryError", ())
            if isinstance(e, oom) or str(e).startswith("OOM"):
                raise StoreRefused(507, "Insufficient Storage") from None
            raise StoreRefused(500, "Internal Server Error (%s)" % e) from None
        return ttl

    async def retrieve(self, key: bytes):
        p = self.r.pipeline(transaction=False)
        p.get(key)
        p.pttl(key)
        value, pttl = await p.execute()
        if value is None:
            return None
        # RESP has no creation time; the HTTP surface and the embedded node do.
        return value, None, max(0, pttl // 1000)

    async def exists(self, key: bytes):
        pttl = await self.r.pttl(key)
        return None if pttl < 0 else pttl // 1000

    async def list_keys(self, prefix: bytes, limit: int | None, cursor: bytes | None) -> dict:
        pattern = _glob_escape(prefix) + b"*"
        keys = set()
        async for k in self.r.scan_iter(match=pattern, count=1000):
            if cursor is None or k > cursor:
                keys.add(k)
        out = sorted(keys)
        res = {"keys": [k.decode("utf-8", "surrogateescape") for k in out[:limit]]}
        if limit is not None and len(out) > limit:
            res["next_cursor"] = res["keys"][-1]
        return res

    async def close(self) -> None:
        await self.r.aclose()


def _glob_escape(s: bytes) -> bytes:
    out = bytearray()
    for ch in s:
        if ch in b"*?[]\\":
            out += b"\\"
        out.append(ch)
    return bytes(out)


# -- HTTP (REPRAM's API: this project's nodes and REPRAM's own) ---------------------------------


class HttpBackend:
    def __init__(self, url: str, timeout_s: float = 30.0):
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https"):
            raise ValueError("not an http(s) URL: %s" % url)
        self.https = u.scheme == "https"
        self.host = u.hostname or "localhost"
        self.port = u.port or (443 if self.https else 80)
        self.base = u.path.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = {}
        if u.password or u.username:
            # http://:password@host -> the bearer token of a node with requirepass
            self.headers["Authorization"] = "Bearer " + urllib.parse.unquote(u.password or u.username)

    def _call(self, method: str, path: str, body: bytes | None = None, headers=None):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        c = cls(self.host, self.port, timeout=self.timeout_s)
        try:
            h = dict(self.headers)
            h.update(headers or {})
            # http.client sends the whole body, then reads the answer: a node
            # that answers 413 and closes early still gets its answer read.
            try:
                c.request(method, self.base + path, body=body, headers=h)
            except (BrokenPipeError, ConnectionResetError):
                pass
            r = c.getresponse()
            return r.status, r.reason, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    async def _req(self, *args, **kw):
        return await asyncio.to_thread(self._call, *args, **kw)

    @staticmethod
    def _path(key: bytes) -> str:
        return "/v1/data/" + urllib.parse.quote(key, safe="-_.!~*'()")

    async def store(self, key: bytes, value: bytes, ttl_s: int) -> int:
        st, reason, h, _ = await self._req("PUT", self._path(key), value,
                                           {"X-TTL": str(ttl_s),
                                            "Content-Type": "application/octet-stream"})
        if st not in (201, 202):
            raise StoreRefused(st, reason)
        applied = h.get("x-original-ttl")
        return int(applied) if applied and applied.isdigit() else ttl_s

    async def retrieve(self, key: bytes):
        st, reason, h, body = await self._req("GET", self._path(key))
        if st == 404:
            return None
        if st != 200:
            raise BackendError(st, reason)
        return body, h.get("x-created-at"), _int(h.get("x-remaining-ttl"))

    async def exists(self, key: bytes):
        st, reason, h, _ = await self._req("HEAD", self._path(key))
        if st == 404:
            return None
        if st != 200:
            raise BackendError(st, reason)
        return _int(h.get("x-remaining-ttl"))

    async def list_keys(self, prefix: bytes, limit: int | None, cursor: bytes | None) -> dict:
        q = {}
        if prefix:
            q["prefix"] = prefix
        if limit is not None:
            q["limit"] = str(limit)
        if cursor:
            q["cursor"] = cursor
        path = "/v1/keys" + ("?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote) if q else "")
        st, reason, _, body = await self._req("GET", path)
        if st != 200:
            raise BackendError(st, reason)
        res = json.loads(body)
        if res.get("keys") is None:
            res["keys"] = []                 # REPRAM's Go node says null
        return res

    async def close(self) -> None:
        pass


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0
