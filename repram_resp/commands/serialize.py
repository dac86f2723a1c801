"""DUMP and RESTORE: Redis's serialized form of a string value.

A payload is ``<type 0: string> <RDB string> <RDB version, 2 bytes LE> <CRC64, 8 bytes LE>``
(Redis's ``createDumpPayload`` / ``verifyDumpPayload``).  DUMP writes the value as a
plain length-prefixed RDB string with RDB version 10 (Redis 7.0; every later Redis
accepts it); RESTORE also reads Redis's integer and LZF-compressed encodings, so a
payload DUMPed by redis-server restores here.  Any other type byte is a value we do
not store: ``ERR Bad data format``, as Redis answers an unloadable payload.

REPRAM rules: RESTORE is a PUT.  ``ttl 0`` (Redis: no expiry) gets ``default-ttl``, a
positive TTL (``ABSTTL``: an absolute unix time in ms) goes through the same bounds as
``SET PX`` / ``PXAT``; ``REPLACE`` is a silent overwrite; ``IDLETIME`` / ``FREQ`` are
checked as Redis checks them and otherwise ignored (no access times are kept).
"""

from __future__ import annotations

import struct

from .. import errors
from ..protocol import OK, bulk, parse_ll
from . import command
from .strings import TTLError, _write, deadline_for

DUMP_RDB_VERSION = 10       # RDB version written by DUMP (Redis 7.0's)
MAX_RDB_VERSION = 12        # newest RDB version RESTORE accepts (Redis 7.4's)
_RDB_TYPE_STRING = 0


def _crc64_table():
    poly = 0x95AC9329AC4BC9B5   # Jones polynomial (0xad93d23594c935a9), reflected, as Redis's crc64
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc64_table()


def crc64(data: bytes, crc: int = 0) -> int:
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


def _len_prefix(n: int) -> bytes:
    if n < 1 << 6:
        return bytes((n,))
    if n < 1 << 14:
        return bytes((0x40 | (n >> 8), n & 0xFF))
    if n <= 0xFFFFFFFF:
        return b"\x80" + struct.pack(">I", n)
    return b"\x81" + struct.pack(">Q", n)


def dump_payload(value: bytes) -> bytes:
    body = bytes((_RDB_TYPE_STRING,)) + _len_prefix(len(value)) + value
    body += struct.pack("<H", DUMP_RDB_VERSION)
    return body + struct.pack("<Q", crc64(body))


class BadFormat(Exception):
    pass


def _read_len(p: bytes, i: int):
    """(length, encoded-kind or None, next index) of the RDB length at p[i]."""
    if i >= len(p):
        raise BadFormat
    b = p[i]
    kind = b >> 6
    if kind == 0:
        return b & 0x3F, None, i + 1
    if kind == 1:
        if i + 2 > len(p):
            raise BadFormat
        return ((b & 0x3F) << 8) | p[i + 1], None, i + 2
    if kind == 3:
        return None, b & 0x3F, i + 1
    if b == 0x80:
        if i + 5 > len(p):
            raise BadFormat
        return struct.unpack_from(">I", p, i + 1)[0], None, i + 5
    if b == 0x81:
        if i + 9 > len(p):
            raise BadFormat
        return struct.unpack_from(">Q", p, i + 1)[0], None, i + 9
    raise BadFormat


def _lzf_decompress(src: bytes, out_len: int) -> bytes:
    out = bytearray()
    i, n = 0, len(src)
    while i < n:
        ctrl = src[i]
        i += 1
        if ctrl < 32:                       # literal run of ctrl + 1 bytes
            run = ctrl + 1
            if i + run > n:
                raise BadFormat
            out += src[i:i + run]
            i += run
        else:                               # back reference
            length = ctrl >> 5
            if length == 7:
                if i >= n:
                    raise BadFormat
                length += src[i]
                i += 1
            if i >= n:
                raise BadFormat
            ref = len(out) - ((ctrl & 0x1F) << 8) - src[i] - 1
            i += 1
            if ref < 0:
                raise BadFormat
            for _ in range(length + 2):
                out.append(out[ref])
                ref += 1
        if len(out) > out_len:
            raise BadFormat
    if len(out) != out_len:
        raise BadFormat
    return bytes(out)


def load_payload(p: bytes) -> bytes:
    """The value in a verified payload, or raise BadFormat."""
    body = p[:-10]
    if not body or body[0] != _RDB_TYPE_STRING:
        raise BadFormat
    n, enc, i = _read_len(body, 1)
    if enc is None:
        value = body[i:i + n]
        if len(value) != n:
            raise BadFormat
        i += n
    elif enc in (0, 1, 2):                  # RDB_ENC_INT8 / INT16 / INT32
        size = 1 << enc
        if i + size > len(body):
            raise BadFormat
        value = b"%d" % int.from_bytes(body[i:i + size], "little", signed=True)
        i += size
    elif enc == 3:                          # RDB_ENC_LZF
        clen, e1, i = _read_len(body, i)
        ulen, e2, i = _read_len(body, i)
        if e1 is not None or e2 is not None or i + clen > len(body):
            raise BadFormat
        value = _lzf_decompress(body[i:i + clen], ulen)
        i += clen
    else:
        raise BadFormat
    if i != len(body):
        raise BadFormat
    return value


def payload_ok(p: bytes) -> bool:
    """Redis's verifyDumpPayload: footer version and CRC."""
    if len(p) < 10:
        return False
    version = struct.unpack_from("<H", p, len(p) - 10)[0]
    if version > MAX_RDB_VERSION:
        return False
    return crc64(p[:-8]) == struct.unpack_from("<Q", p, len(p) - 8)[0]


@command("dump", 2, "readonly", (1, 1, 1), "keyspace", "A key's value in Redis's serialized form",
         "2.6.0")
def cmd_dump(client, argv):
    server = client.server
    value = server.keyspace.get(argv[1], server.now)
    if value is None:
        return client.enc.null
    return bulk(dump_payload(value))


@command("restore", -4, "write denyoom", (1, 1, 1), "keyspace",
         "Store a value from its serialized form (a PUT with a TTL)", "2.6.0")
def cmd_restore(client, argv):
    server = client.server
    key, payload = argv[1], argv[3]
    replace = absttl = False
    idle = freq = None
    j = 4
    while j < len(argv):
        opt = argv[j].upper()
        more = j + 1 < len(argv)
        if opt == b"REPLACE":
            replace = True
        elif opt == b"ABSTTL":
            absttl = True
        elif opt == b"IDLETIME" and more and freq is None:
            idle = parse_ll(argv[j + 1])
            if idle is None:
                return client.error(errors.NOT_INTEGER)
            if idle < 0:
                return client.error(errors.RESTORE_BAD_IDLETIME)
            j += 1
        elif opt == b"FREQ" and more and idle is None:
            freq = parse_ll(argv[j + 1])
            if freq is None:
                return client.error(errors.NOT_INTEGER)
            if freq < 0 or freq > 255:
                return client.error(errors.RESTORE_BAD_FREQ)
            j += 1
        else:
            return client.error(errors.SYNTAX)
        j += 1
    ttl = parse_ll(argv[2])
    if ttl is None:
        return client.error(errors.NOT_INTEGER)
    if ttl < 0:
        return client.error(errors.RESTORE_BAD_TTL)
    now = server.now
    exists = server.keyspace.lookup(key, now) is not None
    if not replace and exists:
        return client.error(errors.BUSYKEY)
    if not payload_ok(payload):
        return client.error(errors.DUMP_PAYLOAD)
    try:
        value = load_payload(payload)
    except BadFormat:
        return client.error(errors.BAD_DATA_FORMAT)
    try:
        if ttl == 0:
            deadline = deadline_for(client, "restore", None, 1, False, now)
        else:
            deadline = deadline_for(client, "restore", argv[2], 1, absttl, now)
    except TTLError as e:
        return client.error(str(e))
    # Redis publishes 'restore' (class g), not 'set' / 'expire'; REPLACE
    # deletes and re-adds the key there, so an existing key gets 'new' too.
    if exists:
        server.pubsub.notify("n", b"new", key)
    return _write(client, key, value, deadline, now, ttl > 0, b"restore") or OK
