"""Server-assisted client-side caching: CLIENT TRACKING, as Redis 7 does it.

* Default mode: every key a tracking client reads (a ``readonly`` command's
  keys, found by the command table's key positions) is remembered in
  ``table`` (key -> ids of the clients that read it).  The next change of the
  key -- overwrite, expiry, a write from a peer, any write that passes
  ``Keyspace.put`` -- sends each of those clients one invalidation message and
  forgets the key, until they read it again.  OPTIN / OPTOUT with CLIENT
  CACHING decide per command whether the keys are remembered.
* BCAST mode: nothing is remembered per key; a client registers prefixes
  ("" = every key) and gets, once per event-loop turn, the keys changed under
  each of its prefixes (one message per prefix, keys in byte order).
* Messages: RESP3 ``>2 invalidate [keys]``; with REDIRECT to a RESP2 client in
  subscribed mode, a pub/sub message on ``__redis__:invalidate``; a RESP2
  client without redirect gets nothing (RESP2 has no pushes).  A redirect to a
  client that has gone marks the tracker ``broken_redirect`` and tells it (in
  RESP3) ``tracking-redir-broken``.  NOLOOP skips changes made by the client
  itself; otherwise an invalidation caused by the client's own command is
  sent after that command's reply (Redis 7.0's pending-keys rule).
* ``tracking-table-max-keys`` bounds the table: when a tracking client's
  command starts (or the limit is lowered) with the table past it, remembered
  keys are invalidated, oldest first, to make room -- Redis does the same with
  random keys, with the same effort bound (100 x the runs still over it).
* Cost: while no client tracks, ``Keyspace.on_write`` stays None (one
  attribute check per write) and no client leaves the connection's fast path;
  a tracking client's commands take the gated path.  With default-mode
  trackers only, ``Keyspace.on_write`` is the table itself (a plain dict),
  so a write of a key nobody cached costs one dict lookup and no call.
"""

from __future__ import annotations

import asyncio

from .protocol import bulk, integer

INVALIDATE_CHANNEL = b"__redis__:invalidate"
_PUSH_HEAD = b">2\r\n$10\r\ninvalidate\r\n"
_MSG_HEAD = b"*3\r\n$7\r\nmessage\r\n" + bulk(INVALIDATE_CHANNEL)


class TrackState:
    """One client's tracking options (``client.tracking`` while ON)."""
    __slots__ = ("redirect", "bcast", "optin", "optout", "noloop", "caching", "broken", "prefixes")

    def __init__(self, redirect: int, bcast: bool, optin: bool, optout: bool, noloop: bool):
        self.redirect = redirect
        self.bcast = bcast
        self.optin = optin
        self.optout = optout
        self.noloop = noloop
        self.caching = False     # CLIENT CACHING given for the next command
        self.broken = False
        self.prefixes: list[bytes] = []


class _Prefix:
    __slots__ = ("clients", "keys")

    def __init__(self):
        self.clients: set = set()
        self.keys: dict = {}     # changed key -> the tracking client that changed it (or None)


def keys_of(cmd, argv: list) -> list:
    """The key arguments of argv, from the command table's positions."""
    first = cmd.first_key
    if first <= 0 or first >= len(argv):
        return []
    last = cmd.last_key
    if last < 0:
        last = len(argv) + last
    return argv[first:last + 1:cmd.step or 1]


class Tracking:
    def __init__(self, server):
        self.server = server
        self.table: dict[bytes, set] = {}   # key -> ids of the clients that cached it
        self.items = 0                      # client ids summed over table (INFO)
        self.prefixes: dict[bytes, _Prefix] = {}
        self.clients = 0                    # clients with tracking ON
        self.current = None                 # tracking client whose command is running
        self.pending: list[bytes] = []      # its own invalidations, sent after its reply
        self._bcast_due = False
        self._over_limit_runs = 0

    # -- enabling ----------------------------------------------------------------

    def enable(self, client, st: TrackState, prefixes: list) -> None:
        old = client.tracking
        if old is None:
            self.clients += 1
        else:
            st.prefixes = old.prefixes      # re-enabling keeps registered prefixes
        client.tracking = st
        if st.bcast:
            for p in (prefixes or [b""]):     # no PREFIX: every key (Redis adds "" even then)
                if p in st.prefixes:
                    continue
                entry = self.prefixes.get(p)
                if entry is None:
                    entry = self.prefixes[p] = _Prefix()
                entry.clients.add(client)
                st.prefixes.append(p)
        client.update_gate()
        self.server.update_write_hooks()

    def disable(self, client) -> None:
        st = client.tracking
        if st is None:
            return
        for p in st.prefixes:
            entry = self.prefixes.get(p)
            if entry is not None:
                entry.clients.discard(client)
                if not entry.clients:
                    del self.prefixes[p]
        client.tracking = None
        self.clients -= 1
        if self.clients == 0:
            # Nobody can be told any more: forget everything (Redis keeps the
            # table and skips the gone clients lazily; the outcome is the same).
            self.table.clear()
            self.items = 0
        client.update_gate()
        self.server.update_write_hooks()

    def overlap(self, client, prefixes: list):
        """Redis's prefix-collision error for CLIENT TRACKING ON BCAST, or None."""
        have = client.tracking.prefixes if client.tracking is not None else []
        for i, p in enumerate(prefixes):
            for q in have:
                if q.startswith(p) or p.startswith(q):
                    return ("ERR Prefix '%s' overlaps with an existing prefix '%s'. Prefixes for a "
                            "single client must not overlap." % (_s(p), _s(q)))
            for q in prefixes[i + 1:]:
                if q.startswith(p) or p.startswith(q):
                    return ("ERR Prefix '%s' overlaps with another provided prefix '%s'. Prefixes "
                            "for a single client must not overlap." % (_s(p), _s(q)))
        return None

    # -- running a tracking client's command --------------------------------------

    def run(self, client, cmd, argv, call) -> bytes:
        """Run call() (the command) for a tracking client: remember the keys it
        read, reset CLIENT CACHING, and append its own invalidations after
        its reply."""
        limit = self.server.config.tracking_table_max_keys
        if limit and len(self.table) > limit:
            self.enforce_limit()     # before the command, as Redis's processCommand
        prev = self.current
        self.current = client
        try:
            r = call()
        finally:
            self.current = prev
        st = client.tracking
        if st is not None and not st.bcast and "readonly" in cmd.flags and cmd.first_key > 0 \
                and (not st.optin or st.caching) and not (st.optout and st.caching):
            self.remember(client.id, keys_of(cmd, argv))
        if client.in_exec:
            return r            # inside EXEC: EXEC's own reply comes first
        if st is not None and cmd.name != "client" and client.multi is None:
            st.caching = False
        if self.pending and prev is None:
            keys, self.pending = self.pending, []
            extra = []
            for k in keys:
                target, msg = self.message(client, _array([k]))
                if msg is None:
                    continue
                if target is client and r.__class__ is bytes:
                    extra.append(msg)
                else:
                    target.push(msg, self.server.pubsub.output_limit_bytes)
            if extra:
                r = r + b"".join(extra)
        return r

    def remember(self, cid: int, keys: list) -> None:
        table = self.table
        for k in keys:
            ids = table.get(k)
            if ids is None:
                ids = table[k] = set()
            if cid not in ids:
                ids.add(cid)
                self.items += 1

    def enforce_limit(self) -> None:
        limit = self.server.config.tracking_table_max_keys
        table = self.table
        if not limit or len(table) <= limit:
            self._over_limit_runs = 0
            return
        effort = 100 * (self._over_limit_runs + 1)
        while effort > 0 and len(table) > limit:
            effort -= 1
            self.invalidate(next(iter(table)), bcast=False)
        self._over_limit_runs = 0 if len(table) <= limit else self._over_limit_runs + 1

    # -- invalidation ----------------------------------------------------------

    def invalidate(self, key: bytes, bcast: bool = True) -> None:
        """key changed (written, expired): tell whoever cached it."""
        if bcast and self.prefixes:
            self._note_bcast(key)
        ids = self.table.pop(key, None)
        if ids is None:
            return
        self.items -= len(ids)
        clients = self.server.clients
        current = self.current
        limit = self.server.pubsub.output_limit_bytes
        for cid in ids:
            c = clients.get(cid)
            if c is None:
                continue
            st = c.tracking
            if st is None or st.bcast:
                continue
            if c is current:
                if not st.noloop:
                    self.pending.append(key)
                continue
            target, msg = self.message(c, _array([key]))
            if msg is not None:
                target.push(msg, limit)

    def _note_bcast(self, key: bytes) -> None:
        writer = self.current
        for p, entry in self.prefixes.items():
            if key.startswith(p):
                entry.keys[key] = writer
                if not self._bcast_due:
                    self._bcast_due = True
                    asyncio.get_running_loop().call_soon(self.flush_bcast)

    def flush_bcast(self) -> None:
        self._bcast_due = False
        limit = self.server.pubsub.output_limit_bytes
        for _, entry in sorted(self.prefixes.items()):     # Redis's order: by prefix
            if not entry.keys:
                continue
            changed = sorted(entry.keys.items())
            entry.keys = {}
            common = None
            for c in list(entry.clients):
                st = c.tracking
                if st is None:
                    continue
                if st.noloop:
                    keys = [k for k, w in changed if w is not c]
                    if not keys:
                        continue
                    payload = _array(keys)
                else:
                    if common is None:
                        common = _array([k for k, _ in changed])
                    payload = common
                target, msg = self.message(c, payload)
                if msg is not None:
                    target.push(msg, limit)

    def message(self, c, payload: bytes):
        """(client to write to, bytes) of an invalidation for tracker c, or
        (None, None) when it cannot be delivered (Redis's sendTrackingMessage)."""
        st = c.tracking
        target = c
        redirected = False
        if st.redirect:
            target = self.server.clients.get(st.redirect)
            if target is None or target.closed:
                st.broken = True
                if c.enc.version == 3:
                    return c, b">2\r\n$21\r\ntracking-redir-broken\r\n" + integer(st.redirect)
                return None, None
            redirected = True
        if target.enc.version == 3:
            return target, _PUSH_HEAD + payload
        if redirected and (target.channels or target.patterns or target.shard_channels):
            return target, _MSG_HEAD + payload
        return None, None

    # -- introspection ---------------------------------------------------------

    def info(self, client, enc) -> bytes:
        st = client.tracking
        flags = [b"on" if st is not None else b"off"]
        if st is not None:
            if st.bcast:
                flags.append(b"bcast")
            if st.optin:
                flags.append(b"optin")
                if st.caching:
                    flags.append(b"caching-yes")
            if st.optout:
                flags.append(b"optout")
                if st.caching:
                    flags.append(b"caching-no")
            if st.noloop:
                flags.append(b"noloop")
            if st.broken:
                flags.append(b"broken_redirect")
        prefixes = st.prefixes if st is not None else []
        return enc.map([
            (bulk(b"flags"), enc.set([bulk(f) for f in flags])),
            (bulk(b"redirect"), integer(st.redirect if st is not None else -1)),
            (bulk(b"prefixes"), enc.array([bulk(p) for p in sorted(prefixes)])),
        ])


def _array(keys: list) -> bytes:
    return b"*%d\r\n" % len(keys) + b"".join([bulk(k) for k in keys])


def _s(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")
