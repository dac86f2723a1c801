"""Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT, CLIENT.

Replies and errors follow Redis 7 byte for byte; what real clients send on
connect (HELLO 3, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS) is answered so
they never drop the connection."""

from __future__ import annotations

import time

from .. import REDIS_COMPAT_VERSION, __version__, errors
from ..protocol import OK, PONG, RESP2, RESP3, bulk, integer, parse_ll
from . import TABLE, command, tracking
from ..acl import DENIED_AUTH

_NAME_OK = bytes(range(33, 127))   # printable ASCII without space


def _valid_name(b: bytes) -> bool:
    # Issue 7: one C pass (delete every allowed byte; anything left is not),
    # not a Python step per byte -- a 20 MB name took seconds.
    return not b.translate(None, _NAME_OK)


@command("ping", -1, "fast", group="connection", summary="Ping the server")
def cmd_ping(client, argv):
    if len(argv) > 2:
        return client.error(errors.wrong_arity("ping"))
    if client.in_subscribed_resp2():
        return client.enc.array([bulk(b"pong"), bulk(argv[1] if len(argv) == 2 else b"")])
    if len(argv) == 2:
        return bulk(argv[1])
    return PONG


@command("echo", 2, "fast", group="connection", summary="Echo the given string")
def cmd_echo(client, argv):
    return bulk(argv[1])


@command("quit", -1, "fast", group="connection", summary="Close the connection")
def cmd_quit(client, argv):
    client.close_after()
    return OK


@command("reset", 1, "fast", group="connection", summary="Reset the connection", since="6.2.0")
def cmd_reset(client, argv):
    client.reset()
    return b"+RESET\r\n"


@command("select", 2, "fast", group="connection", summary="Select db 0 (the only one)")
def cmd_select(client, argv):
    n = parse_ll(argv[1])
    if n is None:
        return client.error(errors.NOT_INTEGER)
    if n != 0:
        return client.error(errors.DB_OUT_OF_RANGE)
    return OK


def authenticate(client, name: bytes, password: bytes, cmd_name: bytes) -> bool:
    """AUTH / HELLO AUTH: switch client to user name, or log the failure
    (server log, rate-limited, and ACL LOG; never the password)."""
    server = client.server
    user = server.acl.authenticate(name, password)
    if user is None:
        server.log_auth_failure(client)
        server.acl.log_denial(client, DENIED_AUTH, cmd_name, name)   # as the client spelled it
        return False
    client.auth_ok(user)
    return True


@command("auth", -2, "fast noauth", group="connection", summary="Authenticate", since="1.0.0")
def cmd_auth(client, argv):
    if len(argv) > 3:
        return client.error(errors.SYNTAX)
    server = client.server
    if len(argv) == 2 and server.acl.default.nopass:
        return client.error(errors.AUTH_NOT_CONFIGURED)
    user = argv[1] if len(argv) == 3 else b"default"
    if authenticate(client, user, argv[-1], argv[0]):
        return OK
    return client.error(errors.WRONGPASS)


@command("hello", -1, "fast noauth", group="connection", summary="Handshake", since="6.0.0")
def cmd_hello(client, argv):
    server = client.server
    ver = None
    if len(argv) >= 2:
        ver = parse_ll(argv[1])
        if ver is None:
            return client.error(errors.HELLO_PROTO_NOT_INT)
        if ver < 2 or ver > 3:
            return client.error(errors.NOPROTO)
    j = 2
    auth = None
    name = None
    while j < len(argv):
        opt = argv[j].upper()
        more = len(argv) - j - 1
        if opt == b"AUTH" and more >= 2:
            auth = (argv[j + 1], argv[j + 2])
            j += 3
        elif opt == b"SETNAME" and more >= 1:
            name = argv[j + 1]
            if not _valid_name(name):
                return client.error(errors.CLIENT_NAME_INVALID)
            j += 2
        else:
            return client.error(errors.hello_syntax(argv[j]))
    if auth is not None:
        if not authenticate(client, *auth, argv[0]):
            return client.error(errors.WRONGPASS)
    if not client.authenticated:
        return client.error(errors.HELLO_NOAUTH)
    if name is not None:
        client.name = name
    if ver is not None:
        client.enc = RESP3 if ver == 3 else RESP2
    enc = client.enc
    return enc.map([
        (bulk(b"server"), bulk(b"redis")),
        (bulk(b"version"), bulk(REDIS_COMPAT_VERSION.encode())),
        (bulk(b"proto"), integer(enc.version)),
        (bulk(b"id"), integer(client.id)),
        (bulk(b"mode"), bulk(b"standalone")),
        (bulk(b"role"), bulk(b"master")),
        (bulk(b"modules"), enc.array([])),
        (bulk(b"repram_version"), bulk(__version__.encode())),
    ])


_CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME", "    Return the name of the current connection.",
    "ID", "    Return the ID of the current connection.",
    "INFO", "    Return information about the current client connection.",
    "LIST [TYPE (NORMAL|PUBSUB)] [ID id [id ...]]", "    Return information about client connections.",
    "SETNAME <name>", "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>", "    Set client meta attr (LIB-NAME|LIB-VER).",
    "KILL <ip:port>", "    Kill the connection at this address.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections by ID, TYPE, ADDR, LADDR, USER, MAXAGE or SKIPME (yes|no); returns the count.",
    "NO-EVICT (ON|OFF)", "    Accepted; REPRAM never evicts.",
    "NO-TOUCH (ON|OFF)", "    Accepted; REPRAM keeps no access times.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
    "TRACKINGINFO", "    Report tracking status for the current connection.",
    "HELP", "    Print this help.",
]


# Redis's arity for each CLIENT subcommand we implement (N exact, -N at
# least); a known subcommand with the wrong count gets the 'client|sub' arity
# error, an unknown one "unknown subcommand" -- both keep the connection.
_CLIENT_ARITY = {b"ID": 2, b"GETNAME": 2, b"SETNAME": 3, b"SETINFO": 4, b"INFO": 2, b"LIST": -2,
                 b"KILL": -3, b"NO-EVICT": 3, b"NO-TOUCH": 3, b"HELP": 2}
_CLIENT_ARITY.update({b"TRACKING": -3, b"CACHING": 3, b"GETREDIR": 2, b"TRACKINGINFO": 2})
_TRACKING_SUBS = {b"TRACKING": tracking.client_tracking, b"CACHING": tracking.client_caching,
                  b"GETREDIR": tracking.client_getredir, b"TRACKINGINFO": tracking.client_trackinginfo}
_CLIENT_TYPES = (b"normal", b"pubsub", b"master", b"replica", b"slave")
# Subcommands with a handler of their own (sub -> handler(client, argv)),
# added by other modules (client_admin.py); checked after the arity table.
CLIENT_HANDLERS: dict = {}


def subcommand_arity_error(argv, table: dict, cmd: str) -> str | None:
    """The arity or unknown-subcommand error for ``cmd sub ...``, or None."""
    sub = argv[1].upper()
    arity = table.get(sub)
    if arity is None:
        return errors.unknown_subcommand(argv[1], cmd)
    n = len(argv)
    if (arity > 0 and n != arity) or n < -arity:
        return errors.wrong_arity("%s|%s" % (cmd, sub.decode("ascii", "replace").lower()))
    return None


def _type_matches(c, t: bytes) -> bool:
    # We have only normal and pub/sub clients (peers are not clients).
    if t == b"pubsub":
        return c.subscriptions() > 0 or bool(c.shard_channels)
    if t == b"normal":
        return c.subscriptions() == 0 and not c.shard_channels
    return False


def _client_kill(client, argv):
    server = client.server
    n = len(argv)
    if n == 3:
        # Old form: CLIENT KILL ip:port -> +OK or an error.
        addr = argv[2].decode("utf-8", "surrogateescape")
        target = next((c for c in server.clients.values() if c.addr == addr), None)
        if target is None:
            return client.error(errors.NO_SUCH_CLIENT)
        _kill(client, target)
        return OK
    if n % 2:
        return client.error(errors.SYNTAX)
    # New form: filter pairs, reply with the number killed; SKIPME defaults
    # to yes (the caller is never killed unless it says SKIPME no).
    ids = None
    ctype = addr = laddr = user = maxage = None
    skipme = True
    for j in range(2, n, 2):
        opt, val = argv[j].upper(), argv[j + 1]
        if opt == b"ID":
            v = parse_ll(val)
            if v is None or v <= 0:
                return client.error(errors.CLIENT_ID_NOT_POSITIVE)
            ids = v
        elif opt == b"TYPE":
            ctype = val.lower()
            if ctype not in _CLIENT_TYPES:
                return client.error(errors.unknown_client_type(val))
        elif opt == b"ADDR":
            addr = val.decode("utf-8", "surrogateescape")
        elif opt == b"LADDR":
            laddr = val.decode("utf-8", "surrogateescape")
        elif opt == b"USER":
            user = server.acl.users.get(val)
            if user is None:
                return client.error(errors.no_such_user(val))
        elif opt == b"MAXAGE":             # Redis 7.4: clients connected >= maxage seconds
            maxage = parse_ll(val)
            if maxage is None:
                return client.error(errors.CLIENT_KILL_MAXAGE)
        elif opt == b"SKIPME":
            low = val.lower()
            if low not in (b"yes", b"no"):
                return client.error(errors.SYNTAX)
            skipme = low == b"yes"
        else:
            return client.error(errors.SYNTAX)
    killed = 0
    now = time.monotonic()
    for c in list(server.clients.values()):
        if (maxage is not None and maxage > 0 and now - c.created < maxage) \
                or (ids is not None and c.id != ids) or (addr is not None and c.addr != addr) \
                or (laddr is not None and c.laddr != laddr) \
                or (ctype is not None and not _type_matches(c, ctype)) \
                or (user is not None and c.user is not user) or (skipme and c is client):
            continue
        _kill(client, c)
        killed += 1
    return integer(killed)


def _kill(client, target) -> None:
    if target is client:
        client.close_after()    # the reply still leaves first
    else:
        target.kill()


@command("client", -2, "admin", group="connection", summary="Client connection commands", since="2.4.0")
def cmd_client(client, argv):
    err = subcommand_arity_error(argv, _CLIENT_ARITY, "client")
    if err is not None:
        return client.error(err)
    sub = argv[1].upper()
    handler = CLIENT_HANDLERS.get(sub)
    if handler is not None:
        return handler(client, argv)
    n = len(argv)
    server = client.server
    if sub == b"ID" and n == 2:
        return integer(client.id)
    if sub == b"GETNAME" and n == 2:
        return client.enc.null if not client.name else bulk(client.name)
    if sub == b"SETNAME" and n == 3:
        if not _valid_name(argv[2]):
            return client.error(errors.CLIENT_NAME_INVALID)
        client.name = argv[2]
        return OK
    if sub == b"SETINFO" and n == 4:
        attr = argv[2].upper()
        if attr not in (b"LIB-NAME", b"LIB-VER"):
            return client.error(errors.unrecognized_option(argv[2]))
        if not _valid_name(argv[3]):
            return client.error(errors.client_attr_invalid(argv[2]))
        if attr == b"LIB-NAME":
            client.lib_name = argv[3]
        else:
            client.lib_ver = argv[3]
        return OK
    if sub == b"INFO" and n == 2:
        return client.enc.verbatim(client.info_line(server.clock()) + "\n")
    if sub == b"LIST":
        now = server.clock()
        clients = list(server.clients.values())
        j = 2
        while j + 1 < n:
            opt = argv[j].upper()
            if opt == b"TYPE":
                t = argv[j + 1].lower()
                if t not in _CLIENT_TYPES:
                    return client.error(errors.unknown_client_type(argv[j + 1]))
                clients = [c for c in clients if _type_matches(c, t)]
                j += 2
            elif opt == b"ID":
                ids = set()
                for a in argv[j + 1:]:
                    v = parse_ll(a)
                    if v is None:
                        return client.error(errors.CLIENT_ID_INVALID)
                    ids.add(v)
                clients = [c for c in clients if c.id in ids]
                j = n
            else:
                return client.error(errors.SYNTAX)
        if j != n:
            return client.error(errors.SYNTAX)
        return client.enc.verbatim("".join(c.info_line(now) + "\n" for c in clients))
    if sub == b"KILL":
        return _client_kill(client, argv)
    if sub in (b"NO-EVICT", b"NO-TOUCH") and n == 3:
        if argv[2].upper() not in (b"ON", b"OFF"):
            return client.error(errors.SYNTAX)
        return OK
    if sub == b"HELP" and n == 2:
        return client.enc.array([b"+" + line.encode() + b"\r\n" for line in _CLIENT_HELP])
    handler = _TRACKING_SUBS.get(sub)
    if handler is not None:
        return handler(client, argv)
    return client.error(errors.unknown_subcommand(argv[1], "client"))


TABLE[b"client"].subcommands = _CLIENT_ARITY
