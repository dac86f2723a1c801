"""Connection commands: PING, ECHO, QUIT, RESET, HELLO, AUTH, SELECT, CLIENT.

Replies and errors follow Redis 7 byte for byte; what real clients send on
connect (HELLO 3, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS) is answered so
they never drop the connection."""

from __future__ import annotations

import hmac

from .. import REDIS_COMPAT_VERSION, __version__, errors
from ..protocol import OK, PONG, RESP2, RESP3, bulk, integer, parse_ll
from . import command

_NAME_OK = set(range(33, 127))   # printable ASCII without space


def _valid_name(b: bytes) -> bool:
    return all(c in _NAME_OK for c in b)


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
    client.close_after_reply = True
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


def check_password(server, password: bytes) -> bool:
    want = server.config.requirepass.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(want, password)


@command("auth", -2, "fast noauth", group="connection", summary="Authenticate", since="1.0.0")
def cmd_auth(client, argv):
    if len(argv) > 3:
        return client.error(errors.SYNTAX)
    server = client.server
    if len(argv) == 2 and not server.config.requirepass:
        return client.error(errors.AUTH_NOT_CONFIGURED)
    user = argv[1] if len(argv) == 3 else b"default"
    password = argv[-1]
    if user == b"default" and (not server.config.requirepass or check_password(server, password)):
        client.authenticated = True
        return OK
    server.log_auth_failure(client)
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
            return client.error("ERR Syntax error in HELLO option '%s'" %
                                argv[j].decode("utf-8", "surrogateescape"))
    if auth is not None:
        user, password = auth
        if user != b"default" or (server.config.requirepass and not check_password(server, password)):
            server.log_auth_failure(client)
            return client.error(errors.WRONGPASS)
        client.authenticated = True
    if server.config.requirepass and not client.authenticated:
        return client.error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
            "select the RESP protocol version at the same time")
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
    "KILL ID <id>", "    Kill the connection with the given ID.",
    "NO-EVICT (ON|OFF)", "    Accepted; REPRAM never evicts.",
    "NO-TOUCH (ON|OFF)", "    Accepted; REPRAM keeps no access times.",
    "HELP", "    Print this help.",
]


@command("client", -2, "admin", group="connection", summary="Client connection commands", since="2.4.0")
def cmd_client(client, argv):
    sub = argv[1].upper()
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
            return client.error("ERR Unrecognized option '%s'" % argv[2].decode("utf-8", "replace"))
        if not _valid_name(argv[3]) and argv[3] != b"":
            return client.error("ERR %s cannot contain spaces, newlines or special characters." %
                                attr.decode().lower())
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
                if t not in (b"normal", b"pubsub", b"master", b"replica", b"slave"):
                    return client.error("ERR Unknown client type '%s'" % t.decode("utf-8", "replace"))
                clients = [c for c in clients if (c.subscriptions() > 0) == (t == b"pubsub")
                           and t in (b"normal", b"pubsub")]
                j += 2
            elif opt == b"ID":
                ids = set()
                for a in argv[j + 1:]:
                    v = parse_ll(a)
                    if v is None or v <= 0:
                        return client.error("ERR Invalid client ID")
                    ids.add(v)
                clients = [c for c in clients if c.id in ids]
                j = n
            else:
                return client.error(errors.SYNTAX)
        if j != n:
            return client.error(errors.SYNTAX)
        return client.enc.verbatim("".join(c.info_line(now) + "\n" for c in clients))
    if sub == b"KILL" and n == 4 and argv[2].upper() == b"ID":
        v = parse_ll(argv[3])
        target = server.clients.get(v) if v is not None else None
        if target is None:
            return client.error("ERR No such client")
        target.kill()
        return OK
    if sub in (b"NO-EVICT", b"NO-TOUCH") and n == 3:
        if argv[2].upper() not in (b"ON", b"OFF"):
            return client.error(errors.SYNTAX)
        return OK
    if sub == b"HELP" and n == 2:
        return client.enc.array([b"+" + line.encode() + b"\r\n" for line in _CLIENT_HELP])
    return client.error(errors.unknown_subcommand(argv[1], "client"))
