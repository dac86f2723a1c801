"""Pub/sub commands.  Keyspace notifications arrive through the same channels.

In RESP2 a subscribed connection may only send (P)SUBSCRIBE, (P)UNSUBSCRIBE,
PING, QUIT and RESET (Redis's rule and error); in RESP3 anything goes, and
messages arrive as push frames between replies."""

from __future__ import annotations

from ..protocol import bulk, integer
from . import command


def _confirm(client, kind: bytes, name, count: int) -> bytes:
    head = b">3\r\n" if client.enc.version == 3 else b"*3\r\n"
    return head + bulk(kind) + (client.enc.null if name is None else bulk(name)) + integer(count)


def _sub(client, argv, pattern: bool):
    hub = client.server.pubsub
    out = []
    for name in argv[1:]:
        if pattern:
            hub.psubscribe(client, name)
            client.patterns.add(name)
        else:
            hub.subscribe(client, name)
            client.channels.add(name)
        out.append(_confirm(client, b"psubscribe" if pattern else b"subscribe", name,
                            client.subscriptions()))
    client.update_gate()
    return b"".join(out)


def _unsub(client, argv, pattern: bool):
    hub = client.server.pubsub
    names = argv[1:] or list(client.patterns if pattern else client.channels)
    kind = b"punsubscribe" if pattern else b"unsubscribe"
    out = []
    for name in names:
        if pattern:
            hub.punsubscribe(client, name)
            client.patterns.discard(name)
        else:
            hub.unsubscribe(client, name)
            client.channels.discard(name)
        out.append(_confirm(client, kind, name, client.subscriptions()))
    if not out:
        out.append(_confirm(client, kind, None, client.subscriptions()))
    client.update_gate()
    return b"".join(out)


@command("subscribe", -2, "pubsub fast", group="pubsub", summary="Listen on channels", since="2.0.0")
def cmd_subscribe(client, argv):
    return _sub(client, argv, False)


@command("psubscribe", -2, "pubsub fast", group="pubsub", summary="Listen on patterns", since="2.0.0")
def cmd_psubscribe(client, argv):
    return _sub(client, argv, True)


@command("unsubscribe", -1, "pubsub fast", group="pubsub", summary="Stop listening", since="2.0.0")
def cmd_unsubscribe(client, argv):
    return _unsub(client, argv, False)


@command("punsubscribe", -1, "pubsub fast", group="pubsub", summary="Stop listening", since="2.0.0")
def cmd_punsubscribe(client, argv):
    return _unsub(client, argv, True)


@command("publish", 3, "pubsub fast", group="pubsub", summary="Post a message (this node only)",
         since="2.0.0")
def cmd_publish(client, argv):
    return integer(client.server.pubsub.publish(argv[1], argv[2]))


@command("pubsub", -2, "pubsub", group="pubsub", summary="Pub/sub introspection", since="2.8.0")
def cmd_pubsub(client, argv):
    from .. import errors
    from . import TABLE
    from .connection import subcommand_arity_error
    err = subcommand_arity_error(argv, TABLE[b"pubsub"].subcommands, "pubsub")
    if err is not None:
        return client.error(err)
    hub = client.server.pubsub
    sub = argv[1].upper()
    enc = client.enc
    if sub == b"CHANNELS" and len(argv) <= 3:
        chans = list(hub.channels)
        if len(argv) == 3:
            from ..glob import compile_glob
            m = compile_glob(argv[2])
            chans = [c for c in chans if m(c)]
        return enc.array([bulk(c) for c in chans])
    if sub == b"NUMSUB":
        out = []
        for ch in argv[2:]:
            out.append(bulk(ch))
            out.append(integer(len(hub.channels.get(ch, ()))))
        return enc.array(out)
    if sub == b"NUMPAT" and len(argv) == 2:
        return integer(sum(len(c) for _, c in hub.patterns.values()))
    r = pubsub_shard(client, argv, sub)
    if r is not None:
        return r
    if sub == b"HELP" and len(argv) == 2:
        return enc.array([b"+%s\r\n" % line for line in _PUBSUB_HELP])
    return client.error(errors.unknown_subcommand(argv[1], "pubsub"))


# Redis 7.0.15's text, line for line.
_PUBSUB_HELP = (
    b"PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"CHANNELS [<pattern>]",
    b"    Return the currently active channels matching a <pattern> (default: '*').",
    b"NUMPAT",
    b"    Return number of subscriptions to patterns.",
    b"NUMSUB [<channel> ...]",
    b"    Return the number of subscribers for the specified channels, excluding",
    b"    pattern subscriptions(default: no channels).",
    b"SHARDCHANNELS [<pattern>]",
    b"    Return the currently active shard level channels matching a <pattern> (default: '*').",
    b"SHARDNUMSUB [<shardchannel> ...]",
    b"    Return the number of subscribers for the specified shard level channel(s)",
    b"HELP",
    b"    Prints this help.",
)


# -- sharded pub/sub (Redis 7.0): one node is one shard, so a shard channel is
# a channel of its own namespace: SPUBLISH reaches SSUBSCRIBErs only, patterns
# never see it, and the counts in the replies are shard channels only.

@command("ssubscribe", -2, "pubsub fast", (1, -1, 1), group="pubsub",
         summary="Listen on shard channels", since="7.0.0")
def cmd_ssubscribe(client, argv):
    hub = client.server.pubsub
    out = []
    for name in argv[1:]:
        hub.ssubscribe(client, name)
        out.append(_confirm(client, b"ssubscribe", name, len(client.shard_channels)))
    client.update_gate()
    return b"".join(out)


@command("sunsubscribe", -1, "pubsub fast", (1, -1, 1), group="pubsub",
         summary="Stop listening on shard channels", since="7.0.0")
def cmd_sunsubscribe(client, argv):
    hub = client.server.pubsub
    out = []
    for name in argv[1:] or list(client.shard_channels):
        hub.sunsubscribe(client, name)
        out.append(_confirm(client, b"sunsubscribe", name, len(client.shard_channels)))
    if not out:
        out.append(_confirm(client, b"sunsubscribe", None, 0))
    client.update_gate()
    return b"".join(out)


@command("spublish", 3, "pubsub fast", (1, 1, 1), group="pubsub",
         summary="Post a message to a shard channel (this node only)", since="7.0.0")
def cmd_spublish(client, argv):
    return integer(client.server.pubsub.spublish(argv[1], argv[2]))


def pubsub_shard(client, argv, sub: bytes):
    """PUBSUB SHARDCHANNELS [pattern] / SHARDNUMSUB [channel ...], or None."""
    hub = client.server.pubsub
    enc = client.enc
    if sub == b"SHARDCHANNELS" and len(argv) <= 3:
        chans = list(hub.shard_channels)
        if len(argv) == 3:
            from ..glob import compile_glob
            m = compile_glob(argv[2])
            chans = [c for c in chans if m(c)]
        return enc.array([bulk(c) for c in chans])
    if sub == b"SHARDNUMSUB":
        out = []
        for ch in argv[2:]:
            out.append(bulk(ch))
            out.append(integer(len(hub.shard_channels.get(ch, ()))))
        return enc.array(out)
    return None
