"""Every error string the server sends, in one place.

Strings that Redis defines are copied byte for byte (clients map on the
first word: ERR, OOM, NOAUTH, WRONGPASS, EXECABORT, NOPROTO, NOREPLICAS ...).
Our own REPRAM refusals start with ``ERR`` so that every client treats them
as an ordinary command error.  Each constant is the text without the leading
``-`` and trailing CRLF; ``protocol.encode_error`` adds those.
"""

# --- protocol (reply, then close the connection; Redis's addReplyError adds
# the "ERR " prefix to these) -----------------------------------------------
PROTO_INLINE_TOO_BIG = "ERR Protocol error: too big inline request"
PROTO_UNBALANCED_QUOTES = "ERR Protocol error: unbalanced quotes in request"
PROTO_MBULK_COUNT_TOO_BIG = "ERR Protocol error: too big mbulk count string"
PROTO_INVALID_MBULK_LEN = "ERR Protocol error: invalid multibulk length"
PROTO_BULK_COUNT_TOO_BIG = "ERR Protocol error: too big bulk count string"
PROTO_INVALID_BULK_LEN = "ERR Protocol error: invalid bulk length"
PROTO_QUERY_BUFFER = "ERR Protocol error: query buffer limit exceeded (client-query-buffer-limit)"
# Redis's limits for a client that has not authenticated yet (CVE-2021-32675).
PROTO_UNAUTH_MBULK_LEN = "ERR Protocol error: unauthenticated multibulk length"
PROTO_UNAUTH_BULK_LEN = "ERR Protocol error: unauthenticated bulk length"


def proto_expected_dollar(got: int) -> str:
    # The raw byte, as Redis echoes it (encode_error round-trips surrogates).
    return "ERR Protocol error: expected '$', got '%s'" % bytes([got]).decode("utf-8", "surrogateescape")


# --- generic command errors (Redis wording) --------------------------------
SYNTAX = "ERR syntax error"
NOT_INTEGER = "ERR value is not an integer or out of range"
NOT_FLOAT = "ERR value is not a valid float"
WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
INVALID_CURSOR = "ERR invalid cursor"
OOM = "OOM command not allowed when used memory > 'maxmemory'."
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
AUTH_NOT_CONFIGURED = (
    "ERR AUTH <password> called without any password configured for the default user. "
    "Are you sure your configuration is correct?"
)
NOPROTO = "NOPROTO unsupported protocol version"
HELLO_PROTO_NOT_INT = "ERR Protocol version is not an integer or out of range"
DB_OUT_OF_RANGE = "ERR DB index is out of range"
EXEC_WITHOUT_MULTI = "ERR EXEC without MULTI"
DISCARD_WITHOUT_MULTI = "ERR DISCARD without MULTI"
MULTI_NESTED = "ERR MULTI calls can not be nested"
WATCH_IN_MULTI = "ERR WATCH inside MULTI is not allowed"
EXECABORT = "EXECABORT Transaction discarded because of previous errors."
NOREPLICAS = "NOREPLICAS Not enough good replicas to write."
TIMEOUT_NEGATIVE = "ERR timeout is negative"
TIMEOUT_NOT_INTEGER = "ERR timeout is not an integer or out of range"
CLIENT_NAME_INVALID = "ERR Client names cannot contain spaces, newlines or special characters."
MAX_CLIENTS = "ERR max number of clients reached"
# Redis 7.0's protected-mode refusal, byte for byte (typo included).
DENIED_PROTECTED_MODE = (
    'DENIED Redis is running in protected mode because protected mode is enabled and no passwor'
    'd is set for the default user. In this mode connections are only accepted from the loopbac'
    'k interface. If you want to connect from external computers to Redis you may adopt one of '
    "the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET pr"
    "otected-mode no' from the loopback interface by connecting to Redis from the same host the"
    ' server is running, however MAKE SURE Redis is not publicly accessible from internet if yo'
    'u do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just d'
    'isable the protected mode by editing the Redis configuration file, and setting the protect'
    "ed mode option to 'no', and then restarting the server. 3) If you started the server manua"
    "lly just for testing, restart it with the '--protected-mode no' option. 4) Setup a an auth"
    'entication password for the default user. NOTE: You only need to do one of the above thing'
    's in order for the server to start accepting connections from the outside.'
)
# Redis 7.2 wording (7.0 said "the HELLO AUTH <user> <pass> option").
HELLO_NOAUTH = (
    "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
    "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
    "select the RESP protocol version at the same time"
)
NO_SUCH_CLIENT = "ERR No such client"
CLIENT_ID_NOT_POSITIVE = "ERR client-id should be greater than 0"
CLIENT_ID_INVALID = "ERR Invalid client ID"
INVALID_COMMAND = "ERR Invalid command specified"
INVALID_COMMAND_ARGS = "ERR Invalid number of arguments specified for command"
COMMAND_NO_KEYS = "ERR The command has no key arguments"
NO_SHUTDOWN_IN_PROGRESS = "ERR No shutdown in progress."


def unknown_command(name: bytes, args) -> str:
    # Redis: "unknown command '%.128s', with args beginning with: " then each
    # of the first args as "'%.*s' " (the total capped at 128 bytes).
    shown = ""
    for a in args:
        if len(shown) >= 128:
            break
        shown += "'%s' " % _printable(a)[: 128 - len(shown)]
    return "ERR unknown command '%s', with args beginning with: %s" % (_printable(name)[:128], shown)


def unknown_subcommand(sub: bytes, cmd: str) -> str:
    return "ERR unknown subcommand '%s'. Try %s HELP." % (_printable(sub)[:128], cmd.upper())


def hello_syntax(opt: bytes) -> str:
    return "ERR Syntax error in HELLO option '%s'" % _printable(opt)


def unknown_client_type(t: bytes) -> str:
    return "ERR Unknown client type '%s'" % _printable(t)


def unrecognized_option(opt: bytes) -> str:
    return "ERR Unrecognized option '%s'" % _printable(opt)


def client_attr_invalid(attr: bytes) -> str:
    # Redis names the attribute as the client spelled it (LIB-NAME / lib-name).
    return "ERR %s cannot contain spaces, newlines or special characters." % _printable(attr)


def wrong_arity(name: str) -> str:
    return "ERR wrong number of arguments for '%s' command" % name


def invalid_expire(cmd: str) -> str:
    return "ERR invalid expire time in '%s' command" % cmd


def config_set_unknown(name: bytes) -> str:
    return "ERR Unknown option or number of arguments for CONFIG SET - '%s'" % _printable(name)


def config_set_failed(name: str, why: str) -> str:
    return "ERR CONFIG SET failed (possibly related to argument '%s') - %s" % (name, why)


def subscribed_context(name: str) -> str:
    return (
        "ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET "
        "are allowed in this context" % name
    )


# --- REPRAM's own refusals --------------------------------------------------
TTL_REQUIRED = "ERR TTL required: REPRAM keys always expire; use SET key value EX seconds"


def ttl_below_min(cmd: str, min_ms: int) -> str:
    return "ERR TTL below min-ttl (%s) in '%s' command: REPRAM refuses rather than clamps" % (
        _fmt_ms(min_ms), cmd)


def ttl_above_max(cmd: str, max_ms: int) -> str:
    return "ERR TTL above max-ttl (%s) in '%s' command: REPRAM refuses rather than clamps" % (
        _fmt_ms(max_ms), cmd)


def disabled(name: str, why: str) -> str:
    return "ERR %s is disabled: %s" % (name.upper(), why)


def _fmt_ms(ms: int) -> str:
    return "%d s" % (ms // 1000) if ms % 1000 == 0 else "%d ms" % ms


def _printable(b) -> str:
    if isinstance(b, str):
        return b
    # surrogateescape so that encode_error() gives back the client's exact bytes
    return b.decode("utf-8", "surrogateescape")


# --- CLIENT TRACKING (networking.c, Redis 7) ---------------------------------
TRACKING_ONE_REDIRECT = "ERR A client can only redirect to a single other client"
TRACKING_NO_REDIRECT_CLIENT = "ERR The client ID you want redirect to does not exist"
TRACKING_PREFIX_NEEDS_BCAST = "ERR PREFIX option requires BCAST mode to be enabled"
TRACKING_BCAST_SWITCH = ("ERR You can't switch BCAST mode on/off before disabling tracking for this "
                         "client, and then re-enabling it with a different mode.")
TRACKING_BCAST_OPTIN = "ERR OPTIN and OPTOUT are not compatible with BCAST"
TRACKING_OPTIN_AND_OPTOUT = "ERR You can't specify both OPTIN mode and OPTOUT mode"
TRACKING_OPT_SWITCH = ("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
                       "client, and then re-enabling it with a different mode.")
CACHING_NOT_TRACKING = ("ERR CLIENT CACHING can be called only when the client is in tracking mode "
                        "with OPTIN or OPTOUT mode enabled")
CACHING_YES_NEEDS_OPTIN = "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
CACHING_NO_NEEDS_OPTOUT = "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."

# DUMP / RESTORE (cluster.c restoreCommand, verifyDumpPayload).
BUSYKEY = "BUSYKEY Target key name already exists."
DUMP_PAYLOAD = "ERR DUMP payload version or checksum are wrong"
BAD_DATA_FORMAT = "ERR Bad data format"
RESTORE_BAD_TTL = "ERR Invalid TTL value, must be >= 0"
RESTORE_BAD_IDLETIME = "ERR Invalid IDLETIME value, must be >= 0"
RESTORE_BAD_FREQ = "ERR Invalid FREQ value, must be >= 0 and <= 255"
MODULES_UNSUPPORTED = "ERR MODULE LOAD is disabled: REPRAM runs no server-side code (no modules)"

# ACL (acl.c), for the one user 'default'.
ACL_DEFAULT_USER = "ERR The 'default' user cannot be removed"
ACL_GENPASS_BITS = ("ERR ACL GENPASS argument must be the number of bits for the output password, "
                    "a positive number up to 4096")


def acl_unknown_category(cat: bytes) -> str:
    return "ERR Unknown category '%s'" % _printable(cat)


# LCS (t_string.c lcsCommand; the bounds are REPRAM's, commands/lcs.py).
LCS_LEN_AND_IDX = "ERR If you want both the length and indexes, please just use IDX."
LCS_TOO_BIG = ("ERR Insufficient memory, transient memory for LCS exceeds lcs-max-table-memory "
               "(%d bytes needed, %d allowed)")
LCS_IN_MULTI = ("ERR LCS needing more than lcs-turn-max-cells (%d) cannot run inside MULTI/EXEC: "
                "it runs across event-loop turns; send it outside the transaction")

# ACL users (acl.c, Redis 7.0.15's texts).
NOPERM_COMMAND = "NOPERM this user has no permissions to run the '%s' command"
NOPERM_KEY = "NOPERM this user has no permissions to access one of the keys used as arguments"
NOPERM_CHANNEL = "NOPERM this user has no permissions to access one of the channels used as arguments"
NOPERM_EXEC = ("NOPERM ACLs rules changed between the moment the transaction was accumulated "
               "and the EXEC call. This command is no longer allowed for the following reason: %s")
NOPERM_EXEC_WHY = {1: "no permission to execute the command or subcommand",
                   2: "no permission to touch the specified keys",
                   4: "no permission to access one of the channels used as arguments"}
DRYRUN_COMMAND = "This user has no permissions to run the '%s' command"
DRYRUN_KEY = "This user has no permissions to access the '%s' key"
DRYRUN_CHANNEL = "This user has no permissions to access the '%s' channel"
ACL_USERNAME_INVALID = "ERR Usernames can't contain spaces or null characters"
# REPRAM: no aclfile (nothing is ever written to disk).
ACL_NO_FILE = ("ERR ACL %s is not supported: REPRAM writes nothing to disk, so there is no ACL "
               "file; users made with ACL SETUSER live in memory until the node stops")


def subcommand_syntax(sub: bytes, cmd: str) -> str:
    """Redis's addReplySubcommandSyntaxError (sub as the client wrote it)."""
    return "ERR unknown subcommand or wrong number of arguments for '%s'. Try %s HELP." % (
        _printable(sub)[:128], cmd.upper())


def acl_setuser_error(rule: str, why: str) -> str:
    return "ERR Error in ACL SETUSER modifier '%s': %s" % (rule, why)


def acl_unmatched_paren(rule: str) -> str:
    return "ERR Unmatched parenthesis in acl selector starting at '%s'." % rule


def acl_no_such_user(name: bytes) -> str:
    return "ERR User '%s' not found" % _printable(name)


def acl_dryrun_no_command(name: bytes) -> str:
    return "ERR Command '%s' not found" % _printable(name)


def no_such_user(name: bytes) -> str:
    return "ERR No such user '%s'" % _printable(name)


CLIENT_KILL_MAXAGE = "ERR maxage is not an integer or out of range"
