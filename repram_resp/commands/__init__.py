"""The command table: one registry of every command the server knows.

Each entry gives the handler, Redis's arity convention (N = exactly N
arguments including the name, -N = at least N), flags, the first/last/step
key positions (for COMMAND INFO), and for disabled commands the reason.

Handlers have the signature ``handler(client, argv) -> bytes`` and return the
already-encoded reply.  Arity, unknown-command and disabled-command errors are
produced once, centrally, in ``lookup_error``.  Family modules register their
commands with ``@command``; importing this package imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .. import errors


@dataclass(slots=True)
class Command:
    name: str                       # lower case, as Redis reports it
    handler: Callable
    arity: int
    flags: frozenset
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    group: str = "generic"
    summary: str = ""
    since: str = "1.0.0"
    disabled_why: str | None = None
    # Extra queue-time refusal for commands disabled only in some forms
    # (GETEX with options): argv -> error or None.
    queue_check: Callable | None = None
    # Arity as an inclusive range, for the connection's one-comparison fast
    # path; disabled commands get an empty range so they take the slow path.
    min_args: int = 0
    max_args: int = 0

    def __post_init__(self):
        if self.disabled_why is not None:
            self.min_args, self.max_args = 1, 0
        elif self.arity >= 0:
            self.min_args = self.max_args = self.arity
        else:
            self.min_args, self.max_args = -self.arity, 1 << 62
    subcommands: dict = field(default_factory=dict)


TABLE: dict[bytes, Command] = {}


def command(name: str, arity: int, flags: str = "", keys: tuple = (0, 0, 0),
            group: str = "generic", summary: str = "", since: str = "1.0.0", queue_check=None):
    def register(fn):
        cmd = Command(name, fn, arity, frozenset(flags.split()), *keys, group=group,
                      summary=summary, since=since, queue_check=queue_check)
        _add(cmd)
        return fn
    return register


def _add(cmd: Command) -> None:
    # Both spellings are keys, so the hot path finds "GET" or "get" without
    # calling .upper(); mixed case falls back to .upper() once.
    TABLE[cmd.name.encode()] = cmd
    TABLE[cmd.name.upper().encode()] = cmd


def disabled(names: str, why: str, group: str) -> None:
    for name in names.split():
        def handler(client, argv, _n=name, _w=why):
            return client.error(errors.disabled(_n, _w))
        _add(Command(name, handler, -1, frozenset({"write", "disabled"}), group=group,
                     summary="disabled in REPRAM: " + why, disabled_why=why))


def find(name: bytes) -> Command | None:
    cmd = TABLE.get(name)
    if cmd is None:
        cmd = TABLE.get(name.upper())
    return cmd


def lookup_error(cmd: Command | None, argv: list) -> str | None:
    """The queue-time error for argv, or None if it may run."""
    if cmd is None:
        return errors.unknown_command(argv[0], argv[1:])
    if cmd.disabled_why is not None:
        return errors.disabled(cmd.name, cmd.disabled_why)
    n = len(argv)
    if (cmd.arity > 0 and n != cmd.arity) or n < -cmd.arity:
        return errors.wrong_arity(cmd.name)
    if cmd.queue_check is not None:
        return cmd.queue_check(argv)
    return None


def all_commands() -> list[Command]:
    seen = {}
    for c in TABLE.values():
        seen[c.name] = c
    return [seen[k] for k in sorted(seen)]


# Import the families so they register (order does not matter).
from . import strings, keys, connection, server, transactions, pubsub, replication  # noqa: E402,F401

disabled("del unlink getdel flushdb flushall swapdb move rename renamenx copy",
         "REPRAM has no deletion; keys leave only by expiring", "keyspace")
disabled("expire pexpire expireat pexpireat persist",
         "REPRAM TTLs change only by overwriting the key", "keyspace")
disabled("incr incrby incrbyfloat decr decrby append setrange",
         "REPRAM values are opaque bytes it never interprets", "string")
