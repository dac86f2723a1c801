"""ACL users: the user table, Redis's rule language, and the permission check.

Rules of this module:
* One table of users (``Acl.users``, name -> ``User``); ``default`` always
  exists and is tied to ``requirepass`` (set at startup and by CONFIG SET
  requirepass: ``nopass`` when it is empty, else that one password), as in
  Redis.  Nothing is persisted: ACL SAVE / LOAD are refused (REPRAM writes
  nothing to disk), users live until the node stops.
* Passwords are kept only as SHA-256 hex digests and compared with
  ``hmac.compare_digest``; neither passwords nor digests are ever logged.
* ``ACL SETUSER`` applies its rules to a copy and installs it only if every
  rule is valid (Redis: the user is unchanged after an error).  Command rules
  are kept in the order given, an earlier rule for the same command (or its
  subcommands) removed -- Redis 7.2's description, so ``ACL GETUSER`` shows
  the rules a client set (redis-py's suite reads them back).
* Cost: a user whose root selector allows every command, key and channel
  and who has no other selector is *unrestricted* (``User.unrestricted``);
  a connection of an unrestricted user is not gated, so the default
  configuration pays nothing and keeps the fast lane.  A connection of a
  restricted user is gated (``Client.update_gate``) and every command it
  sends is checked here (``check``) before it runs or is queued, and again
  when EXEC runs it, as Redis does.
* Checks follow Redis 7 (acl.c ``ACLCheckAllUserCommandPerm``): per selector,
  the command, then each key by the command's key specs (read = ``access``,
  write = ``insert``/``update``/``delete``), then each channel (PUBLISH /
  SUBSCRIBE: matched against the patterns; PSUBSCRIBE: a pattern must be one
  of them literally); the first selector that allows everything wins, else
  the most relevant denial (channel > key > command) is reported.
* Denials and failed AUTHs enter ``ACL LOG`` (``acllog-max-len`` entries,
  similar entries within 60 s grouped with a count, as Redis).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time

from . import errors
from .glob import compile_glob

READ, WRITE = 1, 2
ALL = READ | WRITE

# Redis 7.0's categories (ACL CAT), in Redis's order.
CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
              "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
              "blocking", "dangerous", "connection", "transaction", "scripting")

# Denial kinds, in Redis's order of relevance (acl.c ACL_DENIED_*).
DENIED_CMD, DENIED_KEY, DENIED_AUTH, DENIED_CHANNEL = 1, 2, 3, 4
_REASON = {DENIED_CMD: "command", DENIED_KEY: "key", DENIED_AUTH: "auth", DENIED_CHANNEL: "channel"}

LOG_GROUPING_MS = 60_000     # Redis's ACL_LOG_GROUPING_MAX_TIME_DELTA

_NAMES_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "commands",
                           "redis_names.json")
_redis_names: dict | None = None


def redis_names() -> dict:
    """Every command and subcommand name Redis 7.0.15 knows (``cmd|sub``) ->
    its categories: ACL rules may name commands REPRAM does not have
    (``-hset``), and a restricted user asking for one is refused by its rules
    first, as in Redis.  Written by ``python3 -m repram_resp.commands.gen_docs``."""
    global _redis_names
    if _redis_names is None:
        from .commands import all_commands
        with open(_NAMES_PATH) as f:
            names = {k: frozenset(v) for k, v in json.load(f)["names"].items()}
        for c in all_commands():
            names.setdefault(c.name, frozenset())
            for s in c.subcommands:
                names.setdefault("%s|%s" % (c.name, s.decode().lower()), frozenset())
        _redis_names = names
    return _redis_names


def sha256_hex(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


class RuleError(Exception):
    """An invalid SETUSER modifier (the message is Redis's reason)."""


_NO_SUCH_CMD = "Unknown command or category name in ACL"
_SYNTAX = "Syntax error"


class Selector:
    """Commands, keys and channels one selector allows."""

    __slots__ = ("allcommands", "rules", "firstargs", "allkeys", "keys", "allchannels",
                 "channels", "_cache")

    def __init__(self):
        self.allcommands = False
        self.rules: list = []        # [(allow, name)]: "get", "client|id", "@read", "select|0"
        self.firstargs: dict = {}    # command -> set of allowed first args (Redis's +cmd|arg)
        self.allkeys = False
        self.keys: list = []         # [[flags, pattern, matcher]]
        self.allchannels = False
        self.channels: list = []     # [(pattern, matcher)]
        self._cache: dict = {}

    def copy(self) -> "Selector":
        s = Selector()
        s.allcommands, s.rules = self.allcommands, list(self.rules)
        s.firstargs = {k: set(v) for k, v in self.firstargs.items()}
        s.allkeys, s.keys = self.allkeys, [list(k) for k in self.keys]
        s.allchannels, s.channels = self.allchannels, list(self.channels)
        return s

    @property
    def everything(self) -> bool:
        return self.allcommands and not self.rules and self.allkeys and self.allchannels

    # -- rules ---------------------------------------------------------------

    def apply(self, op: str) -> None:
        """One selector rule (commands, keys, channels); RuleError if invalid."""
        low = op.lower()
        if low in ("allcommands", "+@all"):
            self.allcommands, self.rules, self.firstargs = True, [], {}
        elif low in ("nocommands", "-@all"):
            self.allcommands, self.rules, self.firstargs = False, [], {}
        elif low in ("allkeys", "~*"):
            self.allkeys, self.keys = True, []
        elif low == "resetkeys":
            self.allkeys, self.keys = False, []
        elif low in ("allchannels", "&*"):
            self.allchannels, self.channels = True, []
        elif low == "resetchannels":
            self.allchannels, self.channels = False, []
        elif op[:1] == "~" or op[:1] == "%":
            self._add_key(op)
        elif op[:1] == "&":
            if self.allchannels:
                raise RuleError("Adding a pattern after the * pattern (or the 'allchannels' flag) "
                                "is not valid and does not have any effect. Try 'resetchannels' "
                                "to start with an empty list of channels")
            pat = op[1:].encode("utf-8", "surrogateescape")
            if all(p != pat for p, _ in self.channels):
                self.channels.append((pat, compile_glob(pat)))
        elif op[:1] in ("+", "-") and len(op) > 1:
            self._command_rule(op[0] == "+", low[1:])
        else:
            raise RuleError(_SYNTAX)
        self._cache = {}

    def _add_key(self, op: str) -> None:
        if op[0] == "%":
            tilde = op.find("~")
            if tilde < 2:
                raise RuleError(_SYNTAX)
            flags = 0
            for ch in op[1:tilde].upper():
                if ch == "R":
                    flags |= READ
                elif ch == "W":
                    flags |= WRITE
                else:
                    raise RuleError(_SYNTAX)
            pat = op[tilde + 1:]
        else:
            flags, pat = ALL, op[1:]
        if self.allkeys:
            raise RuleError("Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
                            "valid and does not have any effect. Try 'resetkeys' to start with an "
                            "empty list of patterns")
        raw = pat.encode("utf-8", "surrogateescape")
        for k in self.keys:
            if k[1] == raw:
                k[0] |= flags       # Redis merges the flags of one pattern
                return
        self.keys.append([flags, raw, compile_glob(raw)])

    def _command_rule(self, allow: bool, name: str) -> None:
        names = redis_names()
        if name.startswith("@"):
            if name[1:] not in CATEGORIES:
                raise RuleError(_NO_SUCH_CMD)
            for c in [c for c in self.firstargs if name in names.get(c, ())]:
                del self.firstargs[c]       # the category sets those commands' bits
        elif name not in names:
            parent, _, arg = name.partition("|")
            if not arg or parent not in names:
                raise RuleError(_NO_SUCH_CMD)
            if "|" in arg:
                raise RuleError("Allowing first-arg of a subcommand is not supported")
            if not allow or any(n.startswith(parent + "|") for n in names):
                raise RuleError(_NO_SUCH_CMD)
            # +cmd|firstarg (a command without subcommands): allowed for that
            # first argument only, while the command itself is not.
            self.firstargs.setdefault(parent, set()).add(arg.encode("utf-8", "surrogateescape"))
        else:
            self.firstargs.pop(name.partition("|")[0], None)
        self.rules = [r for r in self.rules
                      if r[1] != name and not r[1].startswith(name + "|")]
        self.rules.append((allow, name))

    # -- checks --------------------------------------------------------------

    def allows_command(self, full: str, parent: str, cats, argv) -> bool:
        ok = self._cache.get(full)
        if ok is None:
            ok = self.allcommands
            for allow, name in self.rules:
                if name[0] == "@":
                    if name in cats:
                        ok = allow
                elif name == full or name == parent:
                    ok = allow
            self._cache[full] = ok
        if not ok and self.firstargs and len(argv) > 1:
            fa = self.firstargs.get(parent)
            ok = fa is not None and argv[1].lower() in fa
        return ok

    def allows_key(self, key: bytes, flags: int) -> bool:
        if self.allkeys:
            return True
        for kflags, _, match in self.keys:
            if kflags & flags == flags and match(key):
                return True
        return False

    def allows_channel(self, channel: bytes, is_pattern: bool) -> bool:
        if self.allchannels:
            return True
        if is_pattern:
            return any(p == channel for p, _ in self.channels)
        return any(m(channel) for _, m in self.channels)

    # -- description ---------------------------------------------------------

    def commands_text(self) -> str:
        parts = ["+@all" if self.allcommands else "-@all"]
        parts += [("+" if a else "-") + n for a, n in self.rules]
        return " ".join(parts)

    def keys_text(self) -> str:
        if self.allkeys:
            return "~*"
        return " ".join(({ALL: "~", READ: "%R~", WRITE: "%W~"}[f]) + p.decode("utf-8", "replace")
                        for f, p, _ in self.keys)

    def channels_text(self) -> str:
        if self.allchannels:
            return "&*"
        return " ".join("&" + p.decode("utf-8", "replace") for p, _ in self.channels)

    def describe(self) -> str:
        """As in ACL LIST: keys, channels, commands."""
        out = []
        k = self.keys_text()
        if k:
            out.append(k)
        out.append("&*" if self.allchannels else " ".join(
            ["resetchannels"] + ["&" + p.decode("utf-8", "replace") for p, _ in self.channels]))
        out.append(self.commands_text())
        return " ".join(out)


class User:
    __slots__ = ("name", "enabled", "nopass", "passwords", "sanitize", "root", "selectors",
                 "unrestricted")

    def __init__(self, name: bytes):
        self.name = name
        self.enabled = False
        self.nopass = False
        self.passwords: dict = {}    # sha256 hex -> None (ordered set)
        self.sanitize = None         # None, "sanitize-payload" or "skip-sanitize-payload"
        self.root = Selector()
        self.selectors: list = []
        self.unrestricted = False

    def copy(self) -> "User":
        u = User(self.name)
        u.enabled, u.nopass, u.passwords = self.enabled, self.nopass, dict(self.passwords)
        u.sanitize, u.root = self.sanitize, self.root.copy()
        u.selectors = [s.copy() for s in self.selectors]
        return u

    def refresh(self) -> None:
        self.unrestricted = self.root.everything and not self.selectors

    def set_rules(self, rules: list) -> None:
        """Apply SETUSER's modifiers in order (RuleError(rule, why) on the first bad one).
        A selector ``(...)`` may span several arguments, as in Redis."""
        i = 0
        while i < len(rules):
            op = rules[i]
            if op.startswith("("):
                j = i
                parts = [op]
                while not rules[j].endswith(")"):
                    j += 1
                    if j == len(rules):
                        raise SelectorError(op)
                    parts.append(rules[j])
                body = " ".join(parts)[1:-1]
                sel = Selector()
                for r in body.split():
                    try:
                        sel.apply(r)
                    except RuleError as e:
                        raise RuleError("(%s)" % body, e.args[0]) from None
                self.selectors.append(sel)
                i = j + 1
                continue
            try:
                self.apply(op)
            except RuleError as e:
                raise RuleError(op, e.args[0]) from None
            i += 1
        self.refresh()

    def apply(self, op: str) -> None:
        low = op.lower()
        if low == "on":
            self.enabled = True
        elif low == "off":
            self.enabled = False
        elif low == "nopass":
            self.nopass, self.passwords = True, {}
        elif low == "resetpass":
            self.nopass, self.passwords = False, {}
        elif low in ("sanitize-payload", "skip-sanitize-payload"):
            self.sanitize = low
        elif low == "clearselectors":
            self.selectors = []
        elif low == "reset":
            self.nopass, self.passwords, self.enabled = False, {}, False
            self.sanitize = "sanitize-payload"
            self.selectors = []
            self.root = Selector()
        elif op[:1] in (">", "<"):
            h = sha256_hex(op[1:].encode("utf-8", "surrogateescape"))
            self._password(op[0] == ">", h)
        elif op[:1] in ("#", "!"):
            h = op[1:]
            if len(h) != 64 or h.strip("0123456789abcdef"):
                raise RuleError("The password hash must be exactly 64 characters and contain only "
                                "lowercase hexadecimal characters")
            self._password(op[0] == "#", h)
        else:
            self.root.apply(op)

    def _password(self, add: bool, h: str) -> None:
        if add:
            self.passwords[h] = None
            self.nopass = False
        elif h in self.passwords:
            del self.passwords[h]
        else:
            raise RuleError("The password you are trying to remove from the user does not exist")

    def password_ok(self, password: bytes) -> bool:
        if self.nopass:
            return True
        h = sha256_hex(password)
        ok = False
        for stored in self.passwords:       # constant time per stored digest, no early exit
            ok |= hmac.compare_digest(stored, h)
        return ok

    def flags(self) -> list[str]:
        out = ["on" if self.enabled else "off"]
        if self.nopass:
            out.append("nopass")
        if self.sanitize:
            out.append(self.sanitize)
        return out

    def describe(self) -> str:
        """The ACL LIST line."""
        parts = ["user", self.name.decode("utf-8", "replace")] + self.flags()
        parts += ["#" + h for h in self.passwords]
        parts.append(self.root.describe())
        parts += ["(%s)" % s.describe() for s in self.selectors]
        return " ".join(parts)


class SelectorError(RuleError):
    """An unterminated ``(`` selector."""


_info_cache: dict = {}


def command_info(cmd, argv):
    """(full name, parent name, categories) of the command argv runs; full
    name None for an unknown subcommand (the handler answers it)."""
    c = _info_cache.get(cmd.name)
    if c is None:
        from .commands import docs
        info = docs.info_node(cmd)
        c = _info_cache[cmd.name] = (
            frozenset(x["+"] for x in info[6]["~"]),
            {s[0]: frozenset(x["+"] for x in s[6]["~"]) for s in docs._items(info[9])},
            "noauth" in cmd.flags or any(x["+"] == "no_auth" for x in info[2]["~"]))
    cats, subs, no_auth = c
    if no_auth:
        return None, cmd.name, cats        # AUTH, HELLO, QUIT, RESET: any user may run them
    if subs and len(argv) > 1:
        want = "%s|%s" % (cmd.name, argv[1].decode("utf-8", "replace").lower())
        return want if want in subs else None, cmd.name, subs.get(want, frozenset())
    return cmd.name, cmd.name, cats


_CHANNEL_CMDS = {"publish": (1, 2, False), "spublish": (1, 2, False), "subscribe": (1, None, False),
                 "ssubscribe": (1, None, False), "psubscribe": (1, None, True)}


_plans: dict = {}
# commands.docs, imported by the first _key_plan (the command table imports
# this module, so it cannot be imported at the top); _keys uses it after.
_docs = None
_GENERAL = object()


def _spec_flags(kflags) -> int:
    f = 0
    if "access" in kflags:
        f |= READ
    if "insert" in kflags or "update" in kflags or "delete" in kflags:
        f |= WRITE
    return f


def _key_plan(full: str, argv):
    """The command's key specs compiled once: [(first, lastkey, keystep,
    limit, flags)] when every spec is index + range (nearly all commands;
    flags -1: SET's, which depend on GET), else _GENERAL (docs.get_keys)."""
    global _docs
    plan = _plans.get(full)
    if plan is None:
        from .commands import docs
        _docs = docs
        try:
            info = docs.resolve(argv)
        except docs.GetKeysError:
            info = None
        plan = []
        for spec in docs._items(info[8]) if info is not None else ():
            kflags = [f["+"] for f in docs._mget(spec, "flags", {"~": []})["~"]]
            if "not_key" in kflags:
                continue
            bs, fk = docs._mget(spec, "begin_search"), docs._mget(spec, "find_keys")
            if docs._mget(bs, "type") != "index" or docs._mget(fk, "type") != "range":
                plan = _GENERAL
                break
            fs = docs._mget(fk, "spec")
            flags = -1 if "variable_flags" in kflags and info[0] == "set" else _spec_flags(kflags)
            plan.append((docs._mget(docs._mget(bs, "spec"), "index"), docs._mget(fs, "lastkey"),
                         max(docs._mget(fs, "keystep"), 1), docs._mget(fs, "limit"), flags))
        _plans[full] = plan
    return plan


def _keys(cmd, argv, full):
    """[(argv index, key, READ/WRITE flags)] by the command's key specs."""
    plan = _key_plan(full or cmd.name, argv)
    n = len(argv)
    if plan is not _GENERAL:
        out = []
        for first, last, step, limit, f in plan:
            end = _docs.range_end(first, last, limit, n)
            if f < 0:       # SET: RW with GET, else OW (Redis's setGetKeys)
                f = ALL if any(a.upper() == b"GET" for a in argv[3:]) else WRITE
            for j in range(first, min(end, n - 1) + 1, step):
                out.append((j, argv[j], f))
        return out
    from .commands import docs
    try:
        found = docs.get_keys(argv)
    except docs.GetKeysError:
        return []
    return [(n + 1, key, _spec_flags(kflags)) for n, (key, kflags) in enumerate(found)
            if "not_key" not in kflags]


def selector_check(sel: Selector, cmd, argv, info):
    """(denial kind, argv index, object) or None if sel allows argv."""
    full, parent, cats = info
    if full is not None and not sel.allows_command(full, parent, cats, argv):
        return DENIED_CMD, 0, full
    if not sel.allkeys:
        for idx, key, f in _keys(cmd, argv, full):
            if not sel.allows_key(key, f):
                return DENIED_KEY, idx, key
    ch = _CHANNEL_CMDS.get(cmd.name)
    if ch is not None and not sel.allchannels:
        lo, hi, pattern = ch
        for idx in range(lo, hi if hi is not None else len(argv)):
            if idx < len(argv) and not sel.allows_channel(argv[idx], pattern):
                return DENIED_CHANNEL, idx, argv[idx]
    return None


def user_check_unknown(user: User, argv):
    """For a command REPRAM lacks but Redis has (HSET): (DENIED_CMD, name)
    if user's rules deny it, else None (then it is an unknown command)."""
    names = redis_names()
    parent = argv[0].decode("utf-8", "replace").lower()
    cats = names.get(parent)
    if cats is None:
        return None
    full = parent
    if len(argv) > 1 and any(n.startswith(parent + "|") for n in names):
        full = "%s|%s" % (parent, argv[1].decode("utf-8", "replace").lower())
        cats = names.get(full)
        if cats is None:
            return None
    for sel in [user.root] + user.selectors:
        if sel.allows_command(full, parent, cats, argv):
            return None
    return DENIED_CMD, full


def user_check(user: User, cmd, argv):
    """None if user may run argv, else (kind, object) of the most relevant denial."""
    info = command_info(cmd, argv)
    best = None
    for sel in [user.root] + user.selectors:
        r = selector_check(sel, cmd, argv, info)
        if r is None:
            return None
        if best is None or r[0] > best[0] or (r[0] == best[0] and r[1] > best[1]):
            best = r
    return best[0], best[2]


NOPERM_TEXT = {DENIED_CMD: errors.NOPERM_COMMAND, DENIED_KEY: errors.NOPERM_KEY,
               DENIED_CHANNEL: errors.NOPERM_CHANNEL}
DRYRUN_TEXT = {DENIED_CMD: errors.DRYRUN_COMMAND, DENIED_KEY: errors.DRYRUN_KEY,
               DENIED_CHANNEL: errors.DRYRUN_CHANNEL}


def denial_text(table: dict, kind: int, obj) -> str:
    t = table[kind]
    if "%s" not in t:
        return t
    return t % (obj if isinstance(obj, str) else obj.decode("utf-8", "surrogateescape"))


class LogEntry:
    __slots__ = ("count", "reason", "context", "obj", "username", "ctime_ms", "client_info")


class Acl:
    """The server's user table and ACL LOG."""

    def __init__(self, server):
        self.server = server
        d = User(b"default")
        d.enabled = True
        d.root.apply("+@all")
        d.root.apply("~*")
        d.root.apply("&*")
        self.default = d
        self.users: dict = {b"default": d}
        self.log: list = []          # newest first
        self.set_default_password(server.config.requirepass)

    def set_default_password(self, pw: str) -> None:
        """requirepass: the default user's one password (nopass when empty)."""
        d = self.default
        d.passwords = {}
        d.nopass = not pw
        if pw:
            d.passwords[sha256_hex(pw.encode("utf-8", "surrogateescape"))] = None
        d.refresh()

    def needs_auth(self) -> bool:
        """A new connection is authenticated as default iff default is on and nopass."""
        d = self.default
        return not (d.enabled and d.nopass)

    def authenticate(self, name: bytes, password: bytes):
        u = self.users.get(name)
        if u is None or not u.enabled:
            sha256_hex(password)    # the same work either way
            return None
        return u if u.password_ok(password) else None

    def set_user(self, name: bytes, rules: list, caller=None) -> None:
        """ACL SETUSER: all rules or none (RuleError)."""
        old = self.users.get(name)
        u = old.copy() if old is not None else User(name)
        u.set_rules(rules)
        if old is None:
            self.users[name] = u
            return
        # Connections hold the User object: change it in place.
        for attr in User.__slots__:
            setattr(old, attr, getattr(u, attr))
        self._regate(old, caller)

    def _regate(self, user: User, caller) -> None:
        sels = [user.root] + user.selectors
        for c in list(self.server.clients.values()):
            if c.user is not user:
                continue
            c.update_gate()
            # Redis 7 (ACLKillPubsubClientsIfNeeded): a subscriber whose user
            # no longer allows one of its subscriptions is disconnected.
            subs = [(ch, False) for ch in c.channels] + [(ch, False) for ch in c.shard_channels] \
                + [(p, True) for p in c.patterns]
            if subs and not all(any(s.allows_channel(ch, pat) for s in sels) for ch, pat in subs):
                if c is caller:
                    c.close_after()
                else:
                    c.kill()

    def delete(self, name: bytes, caller) -> bool:
        u = self.users.pop(name, None)
        if u is None:
            return False
        for c in list(self.server.clients.values()):
            if c.user is u:       # Redis disconnects the clients of a deleted user
                if c is caller:
                    c.close_after()     # its reply still leaves first
                else:
                    c.kill()
        return True

    # -- ACL LOG ----------------------------------------------------------

    def log_denial(self, client, kind: int, obj, username: bytes | None = None) -> None:
        limit = self.server.config.acllog_max_len
        if limit <= 0:
            return
        context = "multi" if client.multi is not None or client.in_exec else "toplevel"
        if isinstance(obj, bytes):
            obj = obj.decode("utf-8", "replace")
        user = (username if username is not None else client.user.name).decode("utf-8", "replace")
        now = int(time.time() * 1000)
        info = client.info_line(now)
        reason = _REASON[kind]
        for i, e in enumerate(self.log):
            if (e.reason == reason and e.context == context and e.obj == obj and e.username == user
                    and now - e.ctime_ms < LOG_GROUPING_MS):
                e.count += 1
                e.ctime_ms = now
                e.client_info = info
                del self.log[i]
                self.log.insert(0, e)
                return
        e = LogEntry()
        e.count, e.reason, e.context, e.obj, e.username = 1, reason, context, obj, user
        e.ctime_ms, e.client_info = now, info
        self.log.insert(0, e)
        del self.log[limit:]
