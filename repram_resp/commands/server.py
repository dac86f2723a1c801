"""Server commands: INFO, CONFIG, COMMAND, TIME, SHUTDOWN."""

from __future__ import annotations

import time

from .. import config as configmod
from .. import errors
from ..glob import compile_glob
from ..protocol import OK, bulk, integer
from . import TABLE, all_commands, command, docs, find
from .connection import subcommand_arity_error


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
    # Redis 7 grammar: [NOSAVE|SAVE] [NOW] [FORCE] | ABORT.  REPRAM has
    # nothing to save, so SAVE and NOSAVE mean the same.
    opts = [a.upper() for a in argv[1:]]
    if any(o not in (b"NOSAVE", b"SAVE", b"NOW", b"FORCE", b"ABORT") for o in opts) \
            or (b"NOSAVE" in opts and b"SAVE" in opts) or (b"ABORT" in opts and len(opts) != 1):
        return client.error(errors.SYNTAX)
    if opts == [b"ABORT"]:
        # Our shutdown starts at once, so there is never one to abort.
        return client.error(errors.NO_SHUTDOWN_IN_PROGRESS)
    client.server.request_shutdown("SHUTDOWN command")
    # Like Redis, a successful SHUTDOWN sends no reply: the client sees the
    # connection close (redis-py treats any reply as failure).
    client.close_after()
    return b""


# Redis 7.0.15's arity per subcommand (COMMAND GETKEYS needs a command and
# at least one argument for it).
_CONFIG_ARITY = {b"GET": -3, b"SET": -4, b"RESETSTAT": 2, b"REWRITE": 2, b"HELP": 2}
_COMMAND_ARITY = {b"COUNT": 2, b"INFO": -2, b"DOCS": -2, b"LIST": -2, b"GETKEYS": -4,
                  b"GETKEYSANDFLAGS": -4, b"HELP": 2}
_GLOB_CHARS = frozenset(b"*?[")


@command("config", -2, "admin", group="server", summary="Read or change settings", since="2.0.0")
def cmd_config(client, argv):
    err = subcommand_arity_error(argv, _CONFIG_ARITY, "config")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    server = client.server
    cfg = server.config
    if sub == b"GET":
        out = {}
        for pat in argv[2:]:
            if not _GLOB_CHARS.intersection(pat):
                # An exact name is echoed as the client spelled it (Redis 7).
                d = configmod.BY_NAME.get(pat.lower().decode("utf-8", "surrogateescape"))
                if d is not None:
                    out.setdefault(pat.decode("utf-8", "surrogateescape"), cfg.get_text(d))
                continue
            match = compile_glob(pat.lower())
            for d in configmod.DIRECTIVES:
                if match(d.name.encode()):
                    out.setdefault(d.name, cfg.get_text(d))
        enc = client.enc
        return enc.map([(bulk(k.encode("utf-8", "surrogateescape")),
                         bulk(v.encode("utf-8", "surrogateescape"))) for k, v in out.items()])
    if sub == b"SET":
        if len(argv) % 2:
            return client.error(errors.SYNTAX)
        pairs = [(argv[i].decode("utf-8", "surrogateescape"), argv[i + 1].decode("utf-8", "surrogateescape"))
                 for i in range(2, len(argv), 2)]
        seen = set()
        for name, _ in pairs:
            d = configmod.BY_NAME.get(name.lower())
            if d is None:
                return client.error(errors.config_set_unknown(name.encode("utf-8", "surrogateescape")))
            if not d.mutable:
                return client.error(errors.config_set_failed(name, "can't set immutable config"))
            if d.name in seen:
                return client.error(errors.config_set_failed(name, "duplicate parameter"))
            seen.add(d.name)
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
    if sub == b"RESETSTAT":
        server.reset_stats()
        return OK
    if sub == b"REWRITE":
        return client.error("ERR CONFIG REWRITE is not supported: edit the config file")
    return client.enc.array([b"+%s\r\n" % line for line in (
        b"CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        b"GET <pattern>", b"SET <directive> <value>", b"RESETSTAT", b"HELP")])


@command("command", -1, "fast", group="server", summary="Command introspection", since="2.8.13")
def cmd_command(client, argv):
    enc = client.enc
    cmds = all_commands()
    if len(argv) == 1:
        return enc.array([docs.info_reply(enc, c) for c in cmds])
    err = subcommand_arity_error(argv, _COMMAND_ARITY, "command")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    if sub == b"COUNT":
        return integer(len(cmds))
    if sub == b"INFO":
        picked = [find(n) for n in argv[2:]] if len(argv) > 2 else cmds
        return enc.array([enc.null if c is None else docs.info_reply(enc, c) for c in picked])
    if sub == b"DOCS":
        picked = [c for c in (find(n) for n in argv[2:]) if c is not None] if len(argv) > 2 else cmds
        return enc.map([(bulk(c.name.encode()), docs.docs_reply(enc, c)) for c in picked])
    if sub == b"LIST":
        names = docs.all_names()
        if len(argv) == 2:
            return enc.array([bulk(n.encode()) for n in names])
        if len(argv) != 5 or argv[2].upper() != b"FILTERBY":
            return client.error(errors.SYNTAX)
        kind, val = argv[3].upper(), argv[4]
        if kind == b"MODULE":
            picked = []                     # no modules
        elif kind == b"ACLCAT":
            picked = docs.names_in_category(val.decode("utf-8", "replace"))
        elif kind == b"PATTERN":
            match = compile_glob(val.lower())
            picked = [n for n in names if match(n.encode())]
        else:
            return client.error(errors.SYNTAX)
        return enc.array([bulk(n.encode()) for n in picked])
    if sub in (b"GETKEYS", b"GETKEYSANDFLAGS"):
        try:
            keys = docs.get_keys(argv[2:])
        except docs.GetKeysError as e:
            return client.error(str(e))
        if sub == b"GETKEYS":
            return enc.array([bulk(k) for k, _ in keys])
        return enc.array([enc.array([bulk(k), enc.set([b"+%s\r\n" % f.encode() for f in flags])])
                          for k, flags in keys])
    return enc.array([b"+%s\r\n" % line for line in _COMMAND_HELP])


_COMMAND_HELP = (
    b"COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    b"(no subcommand)", b"    Return details about all Redis commands.",
    b"COUNT", b"    Return the total number of commands in this Redis server.",
    b"LIST", b"    Return a list of all commands in this Redis server.",
    b"INFO [<command-name> ...]",
    b"    Return details about multiple Redis commands.",
    b"    If no command names are given, documentation details for all",
    b"    commands are returned.",
    b"DOCS [<command-name> ...]",
    b"    Return documentation details about multiple Redis commands.",
    b"    If no command names are given, documentation details for all",
    b"    commands are returned.",
    b"GETKEYS <full-command>",
    b"    Return the keys from a full Redis command.",
    b"GETKEYSANDFLAGS <full-command>",
    b"    Return the keys and the access flags from a full Redis command.",
    b"LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
    b"    Return a list of all commands in this Redis server.",
    b"HELP",
    b"    Print this help.",
)


TABLE[b"config"].subcommands = _CONFIG_ARITY
TABLE[b"command"].subcommands = _COMMAND_ARITY
