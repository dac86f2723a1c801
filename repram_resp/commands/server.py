"""Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN."""

from __future__ import annotations

import time

from .. import config as configmod
from .. import errors
from ..glob import compile_glob
from ..protocol import OK, bulk, integer
from . import all_commands, command, find


@command("info", -1, "fast", group="server", summary="Server information and statistics")
def cmd_info(client, argv):
    text = client.server.info_text([a.decode("utf-8", "replace").lower() for a in argv[1:]])
    return client.enc.verbatim(text)


@command("time", 1, "fast", group="server", summary="The server time", since="2.6.0")
def cmd_time(client, argv):
    ns = time.time_ns()
    return client.enc.array([bulk(b"%d" % (ns // 1_000_000_000)), bulk(b"%d" % (ns // 1000 % 1_000_000))])


@command("lastsave", 1, "fast", group="server", summary="REPRAM never saves: the start time")
def cmd_lastsave(client, argv):
    return integer(int(client.server.started_at))


@command("shutdown", -1, "admin", group="server", summary="Stop the server gracefully")
def cmd_shutdown(client, argv):
    for a in argv[1:]:
        if a.upper() not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT"):
            return client.error(errors.SYNTAX)
    client.server.request_shutdown("SHUTDOWN command")
    client.close_after_reply = True
    return OK


@command("config", -2, "admin", group="server", summary="Read or change settings", since="2.0.0")
def cmd_config(client, argv):
    sub = argv[1].upper()
    server = client.server
    cfg = server.config
    if sub == b"GET":
        if len(argv) < 3:
            return client.error(errors.wrong_arity("config|get"))
        out = {}
        for pat in argv[2:]:
            match = compile_glob(pat.lower())
            for d in configmod.DIRECTIVES:
                if match(d.name.encode()):
                    out[d.name] = cfg.get_text(d)
        enc = client.enc
        return enc.map([(bulk(k.encode()), bulk(v.encode("utf-8", "surrogateescape")))
                        for k, v in out.items()])
    if sub == b"SET":
        if len(argv) < 4 or len(argv) % 2:
            return client.error(errors.wrong_arity("config|set"))
        pairs = [(argv[i].decode("utf-8", "surrogateescape"), argv[i + 1].decode("utf-8", "surrogateescape"))
                 for i in range(2, len(argv), 2)]
        for name, _ in pairs:
            d = configmod.BY_NAME.get(name.lower())
            if d is None or not d.mutable:
                return client.error(errors.config_set_unknown(name.encode("utf-8", "surrogateescape")))
        done = []
        for name, value in pairs:
            old = cfg.get_text(configmod.BY_NAME[name.lower()])
            try:
                cfg.set_runtime(name, value, server.apply_config)
            except configmod.ConfigError as e:
                for n2, v2 in reversed(done):   # all or nothing, like Redis 7
                    cfg.set_runtime(n2, v2, server.apply_config)
                return client.error(errors.config_set_failed(name, str(e)))
            done.append((name, old))
        return OK
    if sub == b"RESETSTAT" and len(argv) == 2:
        server.reset_stats()
        return OK
    if sub == b"REWRITE" and len(argv) == 2:
        return client.error("ERR CONFIG REWRITE is not supported: edit the config file")
    if sub == b"HELP" and len(argv) == 2:
        return client.enc.array([b"+%s\r\n" % line for line in (
            b"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"GET <pattern>", b"SET <directive> <value>", b"RESETSTAT", b"HELP")])
    return client.error(errors.unknown_subcommand(argv[1], "config"))


def _flags_reply(enc, cmd):
    return enc.set([b"+%s\r\n" % f.encode() for f in sorted(cmd.flags) if f != "disabled"])


def _info_reply(enc, cmd):
    return enc.array([
        bulk(cmd.name.encode()), integer(cmd.arity), _flags_reply(enc, cmd),
        integer(cmd.first_key), integer(cmd.last_key), integer(cmd.step),
        enc.set([]), enc.set([]), enc.array([]), enc.array([]),
    ])


def _docs_reply(enc, cmd):
    return enc.map([
        (bulk(b"summary"), bulk(cmd.summary.encode())),
        (bulk(b"since"), bulk(cmd.since.encode())),
        (bulk(b"group"), bulk(cmd.group.encode())),
    ])


@command("command", -1, "fast", group="server", summary="Command introspection", since="2.8.13")
def cmd_command(client, argv):
    enc = client.enc
    cmds = all_commands()
    if len(argv) == 1:
        return enc.array([_info_reply(enc, c) for c in cmds])
    sub = argv[1].upper()
    if sub == b"COUNT" and len(argv) == 2:
        return integer(len(cmds))
    if sub == b"INFO":
        picked = [find(n) for n in argv[2:]] if len(argv) > 2 else cmds
        return enc.array([enc.null_array if c is None else _info_reply(enc, c) for c in picked])
    if sub == b"DOCS":
        picked = [c for c in (find(n) for n in argv[2:]) if c is not None] if len(argv) > 2 else cmds
        return enc.map([(bulk(c.name.encode()), _docs_reply(enc, c)) for c in picked])
    if sub == b"LIST" and len(argv) == 2:
        return enc.array([bulk(c.name.encode()) for c in cmds])
    if sub == b"GETKEYS" and len(argv) >= 3:
        c = find(argv[2])
        if c is None:
            return client.error("ERR Invalid command specified")
        if c.first_key == 0:
            return client.error("ERR The command has no key arguments")
        args = argv[2:]
        last = c.last_key if c.last_key >= 0 else len(args) + c.last_key
        return enc.array([bulk(args[i]) for i in range(c.first_key, last + 1, c.step) if i < len(args)])
    if sub == b"HELP" and len(argv) == 2:
        return enc.array([b"+COMMAND [COUNT|INFO|DOCS|LIST|GETKEYS|HELP]\r\n"])
    return client.error(errors.unknown_subcommand(argv[1], "command"))
