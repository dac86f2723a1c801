"""ACL, answered for the one user there is: ``default`` (password: ``requirepass``).

What is true here is read-only: ``WHOAMI``, ``USERS``, ``LIST``, ``GETUSER``, ``CAT``
(Redis's categories, from docs.json), ``GENPASS``, ``LOG`` (always empty: no command is
ever refused by an ACL rule), ``DELUSER`` (no other user exists, so 0; ``default`` cannot
be removed, as in Redis) and ``HELP``.  Creating or changing users (``SETUSER``,
``DRYRUN``, ``LOAD``, ``SAVE``) is refused with a reason: this server has no user table.
"""

from __future__ import annotations

import hashlib
import os

from .. import errors
from ..protocol import OK, bulk, integer, parse_ll
from . import TABLE, command
from . import docs as _docs

ACL_CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
                  "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
                  "blocking", "dangerous", "connection", "transaction", "scripting")   # Redis 7.0's


def _default_rule(server) -> bytes:
    pw = server.config.requirepass
    cred = (b"#" + hashlib.sha256(pw.encode("utf-8", "surrogateescape")).hexdigest().encode()
            if pw else b"nopass")
    return b"user default on " + cred + b" ~* &* +@all"


def _getuser_default(client):
    enc = client.enc
    pw = client.server.config.requirepass
    passwords = [bulk(hashlib.sha256(pw.encode("utf-8", "surrogateescape")).hexdigest().encode())] \
        if pw else []
    flags = [bulk(b"on")] + ([] if pw else [bulk(b"nopass")])
    return enc.map([
        (bulk(b"flags"), enc.array(flags)),
        (bulk(b"passwords"), enc.array(passwords)),
        (bulk(b"commands"), bulk(b"+@all")),
        (bulk(b"keys"), bulk(b"~*")),
        (bulk(b"channels"), bulk(b"&*")),
        (bulk(b"selectors"), enc.array([])),
    ])


_ARITY = {b"CAT": -2, b"DELUSER": -3, b"GENPASS": -2, b"GETUSER": 3, b"LIST": 2, b"LOG": -2,
          b"USERS": 2, b"WHOAMI": 2, b"HELP": 2, b"SETUSER": -3, b"DRYRUN": -4, b"LOAD": 2,
          b"SAVE": 2}


@command("acl", -2, "", group="server", summary="Access control: one user, 'default' "
         "(requirepass)", since="6.0.0")
def cmd_acl(client, argv):
    sub = argv[1].upper()
    arity = _ARITY.get(sub)
    if arity is None:
        return client.error(errors.unknown_subcommand(argv[1], "ACL"))
    n = len(argv)
    if (arity > 0 and n != arity) or n < -arity:
        return client.error(errors.wrong_arity("acl|" + sub.decode().lower()))
    enc = client.enc
    if sub == b"WHOAMI":
        return bulk(b"default")
    if sub == b"USERS":
        return enc.array([bulk(b"default")])
    if sub == b"LIST":
        return enc.array([bulk(_default_rule(client.server))])
    if sub == b"GETUSER":
        return _getuser_default(client) if argv[2] == b"default" else enc.null
    if sub == b"DELUSER":
        if b"default" in argv[2:]:
            return client.error(errors.ACL_DEFAULT_USER)
        return integer(0)
    if sub == b"CAT":
        if n == 2:
            return enc.array([bulk(c.encode()) for c in ACL_CATEGORIES])
        if n > 3:
            return client.error(errors.wrong_arity("acl|cat"))
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
            return client.error(errors.wrong_arity("acl|genpass"))
        chars = (bits + 3) // 4
        return bulk(os.urandom((chars + 1) // 2).hex()[:chars].encode())
    if sub == b"LOG":
        if n == 3 and argv[2].upper() == b"RESET":
            return OK
        if n == 3 and parse_ll(argv[2]) is None:
            return client.error(errors.NOT_INTEGER)
        if n > 3:
            return client.error(errors.wrong_arity("acl|log"))
        return enc.array([])
    if sub == b"HELP":
        return enc.array([b"+%s\r\n" % line for line in (
            b"ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            b"CAT [<category>]", b"    List all commands that belong to <category>, or all categories.",
            b"DELUSER <username> [<username> ...]", b"    Delete users (only 'default' exists).",
            b"GENPASS [<bits>]", b"    Generate a secure password.",
            b"GETUSER <username>", b"    Get the user's details.",
            b"LIST", b"    Show the user's rule.", b"LOG [<count> | RESET]", b"    Always empty.",
            b"USERS", b"    List the users.", b"WHOAMI", b"    Return the current username.",
            b"HELP", b"    Print this help.")])
    return client.error(errors.acl_no_users(sub.decode()))     # SETUSER DRYRUN LOAD SAVE


TABLE[b"acl"].subcommands = {k: v for k, v in _ARITY.items()
                             if k not in (b"SETUSER", b"DRYRUN", b"LOAD", b"SAVE")}
