"""ACL: users with Redis's rule language (the table and the checks: repram_resp/acl.py).

``SETUSER``, ``GETUSER``, ``DELUSER``, ``USERS``, ``LIST``, ``WHOAMI``, ``CAT``
(Redis's categories, from docs.json), ``DRYRUN``, ``GENPASS``, ``LOG`` (with
``RESET``) and ``HELP`` answer as Redis 7 does.  ``LOAD`` and ``SAVE`` are
refused with a reason: there is no ACL file, because REPRAM writes nothing to
disk -- users made with SETUSER live in memory until the node stops.
"""

from __future__ import annotations

import os
import time

from .. import acl as _acl
from .. import errors
from ..protocol import OK, bulk, integer, parse_ll
from . import TABLE, command, find
from . import docs as _docs

ACL_CATEGORIES = _acl.CATEGORIES


def _getuser(client, u):
    enc = client.enc

    def sel_map(s, root):
        pairs = []
        if root:
            pairs += [(bulk(b"flags"), enc.array([bulk(f.encode()) for f in u.flags()])),
                      (bulk(b"passwords"), enc.array([bulk(h.encode()) for h in u.passwords]))]
        pairs += [(bulk(b"commands"), bulk(s.commands_text().encode())),
                  (bulk(b"keys"), bulk(s.keys_text().encode("utf-8", "surrogateescape"))),
                  (bulk(b"channels"), bulk(s.channels_text().encode("utf-8", "surrogateescape")))]
        return pairs

    pairs = sel_map(u.root, True)
    pairs.append((bulk(b"selectors"), enc.array([enc.map(sel_map(s, False)) for s in u.selectors])))
    return enc.map(pairs)


def _log_entry(client, e, now_ms):
    enc = client.enc
    return enc.map([
        (bulk(b"count"), integer(e.count)),
        (bulk(b"reason"), bulk(e.reason.encode())),
        (bulk(b"context"), bulk(e.context.encode())),
        (bulk(b"object"), bulk(e.obj.encode("utf-8", "surrogateescape"))),
        (bulk(b"username"), bulk(e.username.encode("utf-8", "surrogateescape"))),
        (bulk(b"age-seconds"), enc.double((now_ms - e.ctime_ms) / 1000.0)),
        (bulk(b"client-info"), bulk(e.client_info.encode("utf-8", "surrogateescape"))),
    ])


def _setuser(client, argv):
    name = argv[2]
    if b" " in name or b"\0" in name:
        return client.error(errors.ACL_USERNAME_INVALID)
    rules = [a.decode("utf-8", "surrogateescape") for a in argv[3:]]
    try:
        client.server.acl.set_user(name, rules, client)
    except _acl.SelectorError as e:
        return client.error(errors.acl_unmatched_paren(e.args[0]))
    except _acl.RuleError as e:
        return client.error(errors.acl_setuser_error(*e.args))
    return OK


def _dryrun(client, argv):
    u = client.server.acl.users.get(argv[2])
    if u is None:
        return client.error(errors.acl_no_such_user(argv[2]))
    cmd = find(argv[3])
    if cmd is None:
        denied = _acl.user_check_unknown(u, argv[3:])     # Redis has it (HSET), REPRAM not
        if denied is None:
            return client.error(errors.acl_dryrun_no_command(argv[3]))
        return bulk(_acl.denial_text(_acl.DRYRUN_TEXT, *denied).encode())
    args = argv[3:]
    if (cmd.arity > 0 and len(args) != cmd.arity) or len(args) < -cmd.arity:
        return client.error(errors.wrong_arity(cmd.name))
    denied = _acl.user_check(u, cmd, args)
    if denied is None:
        return OK
    return bulk(_acl.denial_text(_acl.DRYRUN_TEXT, *denied).encode("utf-8", "surrogateescape"))


_ARITY = {b"CAT": -2, b"DELUSER": -3, b"GENPASS": -2, b"GETUSER": 3, b"LIST": 2, b"LOG": -2,
          b"USERS": 2, b"WHOAMI": 2, b"HELP": 2, b"SETUSER": -3, b"DRYRUN": -4, b"LOAD": 2,
          b"SAVE": 2}


@command("acl", -2, "", group="server", summary="Access control: users, their passwords and "
         "rules", since="6.0.0")
def cmd_acl(client, argv):
    sub = argv[1].upper()
    arity = _ARITY.get(sub)
    if arity is None:
        return client.error(errors.unknown_subcommand(argv[1], "ACL"))
    n = len(argv)
    if (arity > 0 and n != arity) or n < -arity:
        return client.error(errors.wrong_arity("acl|" + sub.decode().lower()))
    enc = client.enc
    table = client.server.acl
    if sub == b"WHOAMI":
        return bulk(client.user.name)
    if sub == b"USERS":
        return enc.array([bulk(name) for name in sorted(table.users)])
    if sub == b"LIST":
        return enc.array([bulk(table.users[name].describe().encode("utf-8", "surrogateescape"))
                          for name in sorted(table.users)])
    if sub == b"GETUSER":
        u = table.users.get(argv[2])
        return enc.null if u is None else _getuser(client, u)
    if sub == b"SETUSER":
        return _setuser(client, argv)
    if sub == b"DELUSER":
        if b"default" in argv[2:]:
            return client.error(errors.ACL_DEFAULT_USER)
        return integer(sum(table.delete(name, client) for name in dict.fromkeys(argv[2:])))
    if sub == b"DRYRUN":
        return _dryrun(client, argv)
    if sub == b"CAT":
        if n == 2:
            return enc.array([bulk(c.encode()) for c in ACL_CATEGORIES])
        if n > 3:
            return client.error(errors.subcommand_syntax(argv[1], "ACL"))
        cat = argv[2].decode("utf-8", "replace").lower()
        if cat not in ACL_CATEGORIES:
            return client.error(errors.acl_unknown_category(argv[2]))
        return enc.array([bulk(name.encode()) for name in _docs.names_in_category(cat)])
    if sub == b"GENPASS":
        bits = 256
        if n == 3:
            bits = parse_ll(argv[2])
            if bits is None:
                return client.error(errors.NOT_INTEGER)
            if bits <= 0 or bits > 4096:
                return client.error(errors.ACL_GENPASS_BITS)
        elif n > 3:
            return client.error(errors.subcommand_syntax(argv[1], "ACL"))
        chars = (bits + 3) // 4
        return bulk(os.urandom((chars + 1) // 2).hex()[:chars].encode())
    if sub == b"LOG":
        count = 10
        if n == 3 and argv[2].upper() == b"RESET":
            table.log.clear()
            return OK
        if n == 3:
            count = parse_ll(argv[2])
            if count is None:
                return client.error(errors.NOT_INTEGER)
        if n > 3:
            return client.error(errors.subcommand_syntax(argv[1], "ACL"))
        now = int(time.time() * 1000)
        return enc.array([_log_entry(client, e, now) for e in table.log[:max(count, 0)]])
    if sub == b"HELP":
        return enc.array([b"+%s\r\n" % line for line in (
            b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"CAT [<category>]", b"    List all commands that belong to <category>, or all categories.",
            b"DELUSER <username> [<username> ...]", b"    Delete a list of users.",
            b"DRYRUN <username> <command> [<arg> ...]",
            b"    Returns whether the user can execute the given command without executing it.",
            b"GETUSER <username>", b"    Get the user's details.",
            b"GENPASS [<bits>]", b"    Generate a secure password.",
            b"LIST", b"    Show users details in config file format.",
            b"LOG [<count> | RESET]", b"    Show the ACL log entries.",
            b"SETUSER <username> <attribute> [<attribute> ...]",
            b"    Create or modify a user with the specified attributes.",
            b"USERS", b"    List all the registered usernames.",
            b"WHOAMI", b"    Return the current connection username.",
            b"LOAD, SAVE", b"    Refused: REPRAM writes nothing to disk (no ACL file).",
            b"HELP", b"    Print this help.")])
    return client.error(errors.ACL_NO_FILE % sub.decode())     # LOAD SAVE


TABLE[b"acl"].subcommands = {k: v for k, v in _ARITY.items() if k not in (b"LOAD", b"SAVE")}
