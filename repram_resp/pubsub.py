"""Pub/sub hub and keyspace notifications.

* Channels and patterns map to the set of subscribed clients.  Delivery
  writes the encoded message straight to each subscriber (RESP2 array or
  RESP3 push, by the subscriber's protocol).
* A subscriber that does not read is disconnected once its unsent output
  passes ``client-output-buffer-limit-pubsub`` -- never unbounded memory, as
  Redis does for pub/sub clients.
* Keyspace notifications (``notify-keyspace-events``, Redis flag syntax):
  ``notify(cls, event, key)`` publishes ``__keyspace@0__:<key>`` (flag K) and
  ``__keyevent@0__:<event>`` (flag E) when class ``cls`` is enabled.
* Issue 7: patterns are indexed by their literal prefix (``_by_prefix``), so
  a PUBLISH or notification runs only the matchers of patterns whose prefix
  the channel starts with: one dict lookup per distinct prefix length, not
  one matcher call per pattern.
"""

from __future__ import annotations

from .glob import compile_glob, literal_prefix
from .protocol import bulk


class PubSub:
    def __init__(self) -> None:
        self.channels: dict[bytes, set] = {}
        self.patterns: dict[bytes, tuple] = {}   # pattern -> (matcher, clients)
        self.flags = ""                          # canonical notify-keyspace-events
        self._classes = frozenset()
        self._keyspace = self._keyevent = False
        self.output_limit_bytes = 32 * 1024 * 1024
        self.shard_channels: dict[bytes, set] = {}   # SSUBSCRIBE (one node = one shard)
        self.messages_published = 0
        self._by_prefix: dict[bytes, dict] = {}   # literal prefix -> {pattern: entry}
        self._prefix_lens: dict[int, int] = {}    # prefix length -> prefixes of that length

    def set_flags(self, canonical: str) -> None:
        self.flags = canonical
        expanded = set(canonical.replace("A", "g$lshzxetd"))
        self._keyspace = "K" in expanded
        self._keyevent = "E" in expanded
        self._classes = frozenset(expanded - {"K", "E"})

    def wants(self, cls: str) -> bool:
        return cls in self._classes and (self._keyspace or self._keyevent)

    def notify(self, cls: str, event: bytes, key: bytes) -> None:
        if cls not in self._classes:
            return
        if self._keyspace:
            self.publish(b"__keyspace@0__:" + key, event)
        if self._keyevent:
            self.publish(b"__keyevent@0__:" + event, key)

    # -- subscriptions -------------------------------------------------------

    def subscribe(self, client, channel: bytes) -> bool:
        subs = self.channels.setdefault(channel, set())
        if client in subs:
            return False
        subs.add(client)
        return True

    def unsubscribe(self, client, channel: bytes) -> bool:
        subs = self.channels.get(channel)
        if not subs or client not in subs:
            return False
        subs.discard(client)
        if not subs:
            del self.channels[channel]
        return True

    def psubscribe(self, client, pattern: bytes) -> bool:
        entry = self.patterns.get(pattern)
        if entry is None:
            entry = self.patterns[pattern] = (compile_glob(pattern), set())
            prefix = literal_prefix(pattern)
            group = self._by_prefix.get(prefix)
            if group is None:
                group = self._by_prefix[prefix] = {}
                self._prefix_lens[len(prefix)] = self._prefix_lens.get(len(prefix), 0) + 1
            group[pattern] = entry
        if client in entry[1]:
            return False
        entry[1].add(client)
        return True

    def punsubscribe(self, client, pattern: bytes) -> bool:
        entry = self.patterns.get(pattern)
        if entry is None or client not in entry[1]:
            return False
        entry[1].discard(client)
        if not entry[1]:
            del self.patterns[pattern]
            prefix = literal_prefix(pattern)
            group = self._by_prefix[prefix]
            del group[pattern]
            if not group:
                del self._by_prefix[prefix]
                n = self._prefix_lens[len(prefix)] - 1
                if n:
                    self._prefix_lens[len(prefix)] = n
                else:
                    del self._prefix_lens[len(prefix)]
        return True

    def ssubscribe(self, client, channel: bytes) -> None:
        self.shard_channels.setdefault(channel, set()).add(client)
        client.shard_channels.add(channel)

    def sunsubscribe(self, client, channel: bytes) -> None:
        subs = self.shard_channels.get(channel)
        if subs is not None:
            subs.discard(client)
            if not subs:
                del self.shard_channels[channel]
        client.shard_channels.discard(channel)

    def spublish(self, channel: bytes, message: bytes) -> int:
        """Sharded publish: shard subscribers only, never pattern ones."""
        subs = self.shard_channels.get(channel)
        if not subs:
            return 0
        body = bulk(b"smessage") + bulk(channel) + bulk(message)
        for c in list(subs):
            self._deliver(c, 3, body)
        return len(subs)

    def drop_client(self, client) -> None:
        for ch in list(client.shard_channels):
            self.sunsubscribe(client, ch)
        for ch in list(client.channels):
            self.unsubscribe(client, ch)
        for p in list(client.patterns):
            self.punsubscribe(client, p)
        client.channels.clear()
        client.patterns.clear()

    # -- delivery ------------------------------------------------------------

    def publish(self, channel: bytes, message: bytes) -> int:
        n = 0
        subs = self.channels.get(channel)
        if subs:
            body = bulk(b"message") + bulk(channel) + bulk(message)
            for c in list(subs):
                self._deliver(c, 3, body)
                n += 1
        if self.patterns:
            by_prefix = self._by_prefix
            clen = len(channel)
            for plen in list(self._prefix_lens):
                if plen > clen:
                    continue
                group = by_prefix.get(channel[:plen])
                if not group:
                    continue
                for pattern, (match, clients) in list(group.items()):
                    if match(channel):
                        body = bulk(b"pmessage") + bulk(pattern) + bulk(channel) + bulk(message)
                        for c in list(clients):
                            self._deliver(c, 4, body)
                            n += 1
        self.messages_published += 1
        return n

    def _deliver(self, client, count: int, body: bytes) -> None:
        head = b">%d\r\n" % count if client.enc.version == 3 else b"*%d\r\n" % count
        client.push(head + body, self.output_limit_bytes)
