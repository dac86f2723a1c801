"""String commands: the REPRAM PUT (SET family) and GET family.

TTL policy (SPEC §2), applied to every write:
* no TTL given -> ``default-ttl``; if that is 0 -> ``ERR TTL required``;
* Redis's own checks first (non-integer, <= 0, overflow -> ``invalid expire
  time in '<cmd>'``), then the REPRAM bounds ``min-ttl`` / ``max-ttl``:
  out of bounds is refused with an error naming the bound, never clamped;
* an overwrite replaces value and deadline (KEEPTTL keeps the deadline of a
  live key, and uses the default TTL for an absent one).
Options are parsed into a typed value before anything changes (t_string.c).
"""

from __future__ import annotations

from .. import errors
from ..keyspace import OutOfMemory
from ..protocol import OK, ONE, ZERO, bulk, integer, parse_ll
from ..writes import local_write
from . import command

LLONG_MAX = (1 << 63) - 1

_NX, _XX, _GET, _KEEPTTL = 1, 2, 4, 8
_UNIT = {b"EX": 1000, b"PX": 1, b"EXAT": 1000, b"PXAT": 1}
_ABSOLUTE = {b"EXAT", b"PXAT"}
_RELATIVE_EXACT = {b"EX": 1000, b"PX": 1, b"ex": 1000, b"px": 1}
# b"1".."100000" -> int: TTL arguments repeat, so a dict lookup replaces parsing.
_SMALL_INTS = {b"%d" % i: i for i in range(1, 100_001)}


class TTLError(Exception):
    """Carries the error reply for a refused TTL."""


def deadline_for(client, cmd: str, amount: bytes | None, unit_ms: int, absolute: bool, now: int) -> int:
    """Absolute deadline (ms) for a write, or raise TTLError(message)."""
    cfg = client.server.config
    if amount is None:
        ttl = cfg.default_ttl_ms
        if ttl <= 0:
            raise TTLError(errors.TTL_REQUIRED)
        return now + ttl
    v = parse_ll(amount)
    if v is None:
        raise TTLError(errors.NOT_INTEGER)
    if v <= 0 or (unit_ms == 1000 and v > LLONG_MAX // 1000):
        raise TTLError(errors.invalid_expire(cmd))
    ms = v * unit_ms
    if absolute:
        deadline = ms
        ttl = deadline - now
    else:
        if ms > LLONG_MAX - now:
            raise TTLError(errors.invalid_expire(cmd))
        deadline = now + ms
        ttl = ms
    if ttl < cfg.min_ttl_ms:
        raise TTLError(errors.ttl_below_min(cmd, cfg.min_ttl_ms))
    if ttl > cfg.max_ttl_ms:
        raise TTLError(errors.ttl_above_max(cmd, cfg.max_ttl_ms))
    return deadline


def _write(client, key: bytes, value: bytes, deadline: int, now: int,
           ttl_given: bool = False, event: bytes | None = None) -> bytes | None:
    """Apply one local write (writes.local_write, the path HTTP shares);
    returns an error reply or None.  ttl_given: the command set the TTL
    itself (Redis then publishes 'expire')."""
    ov = client.ttl_override
    if ov is not None and key in ov:
        # EXEC: an EXPIRE later in this transaction sets this write's TTL
        # (transactions.py); the write is stored and replicated with it.
        deadline = ov[key]
        client.ttl_applied.add(key)
    err = local_write(client.server, client, key, value, deadline, now, ttl_given, event)
    return None if err is None else client.error(err)


@command("set", -3, "write denyoom", (1, 1, 1), "string", "Set a key's value with a TTL", "1.0.0")
def cmd_set(client, argv):
    server = client.server
    n = len(argv)
    if n == 5:
        # Fast path for the overwhelmingly common "SET key value EX|PX n"
        # with a TTL inside the bounds; anything unusual takes the full path.
        unit = _RELATIVE_EXACT.get(argv[3])
        amount = _SMALL_INTS.get(argv[4]) if unit is not None else None
        if amount is not None:
            ms = amount * unit
            cfg = server.config
            if cfg.min_ttl_ms <= ms <= cfg.max_ttl_ms and server.write_refusal is None:
                now = server.now
                try:
                    server.keyspace.put(argv[1], argv[2], now + ms, None, now)
                except OutOfMemory:
                    return client.error(errors.OOM)
                if server.write_hooks:
                    server.wrote(client, argv[1], True)
                return OK
    return set_full(client, argv)


def set_full(client, argv):
    """SET with every option (the fast path above handles SET k v EX|PX n)."""
    server = client.server
    n = len(argv)
    now = server.now
    flags = 0
    exp_opt = None
    exp_arg = None
    j = 3
    while j < n:
        opt = argv[j].upper()
        nxt = argv[j + 1] if j + 1 < n else None
        if opt == b"NX" and not flags & _XX:
            flags |= _NX
        elif opt == b"XX" and not flags & _NX:
            flags |= _XX
        elif opt == b"GET":
            flags |= _GET
        elif opt == b"KEEPTTL" and exp_opt is None:
            flags |= _KEEPTTL
        elif opt in _UNIT and exp_opt in (None, opt) and not flags & _KEEPTTL and nxt is not None:
            # Redis lets the same expire option repeat (the last one wins).
            exp_opt, exp_arg = opt, nxt
            j += 1
        else:
            return client.error(errors.SYNTAX)
        j += 1
    key, value = argv[1], argv[2]
    ks = client.server.keyspace
    old = ks.lookup(key, now)
    try:
        # TTL first, as Redis validates it before NX/XX; a command without a
        # TTL is refused under default-ttl 0 whatever NX/XX would decide, so
        # the answer does not depend on the key's state.
        if exp_opt is not None:
            deadline = deadline_for(client, "set", exp_arg, _UNIT[exp_opt], exp_opt in _ABSOLUTE, now)
        elif flags & _KEEPTTL and old is not None:
            deadline = old[1]
        else:
            deadline = deadline_for(client, "set", None, 1, False, now)
    except TTLError as e:
        return client.error(str(e))
    enc = client.enc
    if (flags & _NX and old is not None) or (flags & _XX and old is None):
        if flags & _GET:
            return enc.null if old is None else bulk(old[0])
        return enc.null
    err = _write(client, key, value, deadline, now, exp_opt is not None)
    if err is not None:
        return err
    if flags & _GET:
        return enc.null if old is None else bulk(old[0])
    return OK


def _setex(client, argv, cmd: str, unit: int):
    now = client.server.now
    try:
        deadline = deadline_for(client, cmd, argv[2], unit, False, now)
    except TTLError as e:
        return client.error(str(e))
    return _write(client, argv[1], argv[3], deadline, now, True) or OK


@command("setex", 4, "write denyoom", (1, 1, 1), "string", "Set a key's value and TTL in seconds", "2.0.0")
def cmd_setex(client, argv):
    return _setex(client, argv, "setex", 1000)


@command("psetex", 4, "write denyoom", (1, 1, 1), "string", "Set a key's value and TTL in ms", "2.6.0")
def cmd_psetex(client, argv):
    return _setex(client, argv, "psetex", 1)


@command("setnx", 3, "write denyoom fast", (1, 1, 1), "string",
         "Set a key (default TTL) only if it does not exist", "1.0.0")
def cmd_setnx(client, argv):
    now = client.server.now
    try:
        deadline = deadline_for(client, "setnx", None, 1, False, now)
    except TTLError as e:
        return client.error(str(e))
    if client.server.keyspace.lookup(argv[1], now) is not None:
        return ZERO
    return _write(client, argv[1], argv[2], deadline, now) or ONE


@command("getset", 3, "write denyoom fast", (1, 1, 1), "string",
         "Set a key (default TTL) and return its old value", "1.0.0")
def cmd_getset(client, argv):
    now = client.server.now
    old = client.server.keyspace.lookup(argv[1], now)
    try:
        deadline = deadline_for(client, "getset", None, 1, False, now)
    except TTLError as e:
        return client.error(str(e))
    err = _write(client, argv[1], argv[2], deadline, now)
    if err is not None:
        return err
    return client.enc.null if old is None else bulk(old[0])


def _mset(client, argv, cmd: str, nx: bool):
    if len(argv) % 2 == 0:
        return client.error(errors.wrong_arity(cmd))
    server = client.server
    ks = server.keyspace
    now = server.now
    try:
        deadline = deadline_for(client, cmd, None, 1, False, now)
    except TTLError as e:
        return client.error(str(e))
    pairs = dict(zip(argv[1::2], argv[2::2]))   # last value of a repeated key wins
    if nx and any(ks.lookup(k, now) is not None for k in pairs):
        return ZERO
    # All or nothing under maxmemory: check the total before writing any;
    # then the writes run in argument order (Redis's order of events, a
    # repeated key written twice) with the per-write check off, since an
    # intermediate total above the final one is no reason to stop half way.
    mm = ks.maxmemory_bytes
    if mm and not ks.fits(sum(ks.size_delta(k, v) for k, v in pairs.items())):
        return client.error(errors.OOM)
    ks.maxmemory_bytes = 0
    try:
        for j in range(1, len(argv), 2):
            err = _write(client, argv[j], argv[j + 1], deadline, now)
            if err is not None:
                return err
    finally:
        ks.maxmemory_bytes = mm
    return ONE if nx else OK


@command("mset", -3, "write denyoom", (1, -1, 2), "string", "Set several keys (default TTL)", "1.0.1")
def cmd_mset(client, argv):
    return _mset(client, argv, "mset", False)


@command("msetnx", -3, "write denyoom", (1, -1, 2), "string",
         "Set several keys (default TTL) only if none exists", "1.0.1")
def cmd_msetnx(client, argv):
    return _mset(client, argv, "msetnx", True)


@command("get", 2, "readonly fast", (1, 1, 1), "string", "Get the value of a key", "1.0.0")
def cmd_get(client, argv):
    # The specification of the fast lane's GET (lane.py); the lane runs the
    # plain ones, so this is no longer hand-inlined.
    server = client.server
    v = server.keyspace.get(argv[1], server.now)
    return client.enc.null if v is None else bulk(v)


_GETEX_DISABLED = errors.disabled("getex", "with options it would change a TTL; REPRAM TTLs change "
                                  "only by overwriting the key")


def _getex_queue_check(argv):
    return _GETEX_DISABLED if len(argv) > 2 else None


@command("getex", -2, "write fast", (1, 1, 1), "string", "Get the value of a key", "6.2.0",
         queue_check=_getex_queue_check)
def cmd_getex(client, argv):
    # Options are refused here and, inside MULTI, at queue time (queue_check).
    if len(argv) > 2:
        return client.error(_GETEX_DISABLED)
    return cmd_get(client, argv)


@command("mget", -2, "readonly fast", (1, -1, 1), "string", "Get the values of keys", "1.0.0")
def cmd_mget(client, argv):
    server = client.server
    ks = server.keyspace
    now = server.now
    return client.enc.bulks([ks.get(k, now) for k in argv[1:]])


@command("strlen", 2, "readonly fast", (1, 1, 1), "string", "Length of a key's value", "2.2.0")
def cmd_strlen(client, argv):
    server = client.server
    e = server.keyspace.lookup(argv[1], server.now)
    return integer(0 if e is None else len(e[0]))


@command("getrange", 4, "readonly", (1, 1, 1), "string", "A substring of a key's value", "2.4.0")
def cmd_getrange(client, argv):
    start, end = parse_ll(argv[2]), parse_ll(argv[3])
    if start is None or end is None:
        return client.error(errors.NOT_INTEGER)
    server = client.server
    e = server.keyspace.lookup(argv[1], server.now)
    v = b"" if e is None else e[0]
    n = len(v)
    if start < 0 and end < 0 and start > end:
        return bulk(b"")
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    end = min(end, n - 1)
    if start > end or n == 0:
        return bulk(b"")
    return bulk(v[start:end + 1])
