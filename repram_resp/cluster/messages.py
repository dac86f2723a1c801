"""Peer-link frames: what nodes say to each other on the cluster port.  No I/O.

Wire format (docs/PROTOCOL.md has the full table):

* Every frame is one RESP array.  Element 0 is the frame type, a short bulk
  string (``HELLO``, ``B``, ``ACK`` ...).  Keys and values are bulk strings,
  so they are binary-safe and cost their length plus a few header bytes (no
  base64, no JSON).  Counters, offsets, times and deadlines are RESP integers
  (``:n``); an HLC version does not fit in 64 bits, so it travels as a
  decimal bulk string.
* Frames are parsed by hiredis (C), which keeps its state across reads, so a
  peer stream split at any byte parses the same.  hiredis output is validated
  before use: a frame must be a non-empty array whose first element is a bulk
  string, and each decoder checks the count and type of every field it reads.
  Anything else is a ``MessageError`` and the link is closed -- never a crash.
* The bytes buffered for one incomplete frame are bounded
  (``FrameReader.max_pending_bytes``), so a peer cannot make us buffer
  ``$99999999999`` worth of promises.

Write entries (``B`` and ``CU`` frames) are flat groups of four elements:
``key value deadline_ms version``.  The deadline is absolute, in the sending
node's clock; the receiver converts it with the measured clock offset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hiredis

PROTO_VERSION = 1

# Frame types.  Short names on the hot path (B, ACK), words elsewhere.
HELLO = b"HELLO"        # dialer -> acceptor: who I am, my nonce
WELCOME = b"WELCOME"    # acceptor -> dialer: who I am, my nonce, my proof
AUTH = b"AUTH"          # dialer -> acceptor: my proof
READY = b"READY"        # acceptor -> dialer: link accepted
ERR = b"ERR"            # refusal, the sender closes right after
BYE = b"BYE"            # graceful leave
PING = b"PING"
PONG = b"PONG"
NODES = b"NODES"        # membership gossip
BATCH = b"B"            # write stream: origin's writes, in offset order
ACK = b"ACK"            # receiver -> sender: every offset <= n is processed
REJ = b"REJ"            # receiver -> sender: this write was refused, and why
SYNC = b"SYNC"          # receiver -> sender: send me your keys (catch-up)
CU = b"CU"              # sender -> receiver: a chunk of catch-up entries
CUEND = b"CUEND"        # sender -> receiver: the catch-up is complete
SYNCED = b"SYNCED"      # receiver -> sender: catch-up applied
FLOORS = b"FL"          # sender -> receiver: version floors (key, version pairs)
AE = b"AE"              # receiver -> sender: digests of key ranges (anti-entropy)
AEEND = b"AEEND"        # sender -> receiver: an anti-entropy round is answered
AES = b"AES"            # sender -> receiver: (key, version) of a range that differs
AEGET = b"AEGET"        # receiver -> sender: send me these keys (entries or floors)
AED = b"AED"            # receiver -> sender: the digest ledger's snapshot (anti-entropy)

ENTRY_FIELDS = 4        # key, value, deadline_ms, version
BATCH_HEAD = 4          # B origin first_offset sent_ms
CU_HEAD = 2             # CU sync_id
FLOOR_FIELDS = 2        # key, version
AE_HEAD = 4             # AE round last cutoff
AE_RANGE_FIELDS = 3     # lo, hi ('' = no upper bound), digest

# Refusal reasons carried by REJ.
R_ENCLAVE = b"enclave"
R_TTL = b"ttl"
R_SIZE = b"size"
R_OOM = b"oom"
REASONS = (R_ENCLAVE, R_TTL, R_SIZE, R_OOM)


class MessageError(Exception):
    """A malformed or unexpected frame: the link is closed."""


_NEED = object()   # hiredis "need more data" (False and None are RESP values)


# Issue 7: hiredis allocates for an aggregate header before its elements
# arrive, so every header is checked here, in Python, before hiredis sees the
# bytes.  Frames are flat: a top-level array of bulk strings and integers and
# nothing else (no nesting, no RESP3 types), whose element count and bulk
# lengths are within the reader's limits.  The walk costs one step per
# element (payloads are skipped by length, never scanned).
MAX_FRAME_ELEMENTS = 4 + 4 * 65536     # a B frame of MAX_BATCH_ENTRIES (replicator)
HANDSHAKE_MAX_ELEMENTS = 64            # HELLO has 11
_HEADER_MAX_BYTES = 24                 # "$" + 20 digits + CRLF, with room
# One element or frame header; "-?" so ":-5" passes (a negative count or
# length is refused below).  A RESP3 type byte never matches.
_HEADER = re.compile(rb"([*$:])(-?[0-9]{1,20})\r\n")


class FrameReader:
    """Incremental frame parser: ``feed(data)`` -> list of frames (lists)."""

    __slots__ = ("max_pending_bytes", "max_elements", "_reader", "_pending", "_skip",
                 "_left", "_line")

    def __init__(self, max_pending_bytes: int, max_elements: int = MAX_FRAME_ELEMENTS):
        self.max_pending_bytes = max_pending_bytes
        self.max_elements = max_elements
        self._reader = hiredis.Reader(notEnoughData=_NEED)
        self._pending = 0
        self._skip = 0          # payload bytes (with CRLF) still to come
        self._left = 0          # elements still to come in the current frame
        self._line = b""        # a header line split across reads

    def _check(self, data: bytes) -> None:
        """Walk every header in data (state kept across reads); raise
        MessageError on anything but a flat frame within the limits.
        (State in locals: this runs once per replicated element.)"""
        pos = 0
        n = len(data)
        if self._skip:
            pos = min(self._skip, n)
            self._skip -= pos
        if self._line and pos < n:
            nl = data.find(b"\n", pos, pos + _HEADER_MAX_BYTES)
            if nl < 0:
                self._line += data
                if len(self._line) > _HEADER_MAX_BYTES:
                    raise MessageError("header line too long")
                return
            line = self._line + data[:nl + 1]
            self._line = b""
            # re-walk the joined header as a read of its own, then go on
            self._check(line)
            pos = nl + 1
            if self._skip:
                step = min(self._skip, n - pos)
                self._skip -= step
                pos += step
        left = self._left
        max_el = self.max_elements
        max_len = self.max_pending_bytes
        match = _HEADER.match
        try:
            while pos < n:
                mm = match(data, pos)
                if mm is None:
                    if data.find(b"\n", pos, pos + _HEADER_MAX_BYTES) < 0 and n - pos < _HEADER_MAX_BYTES:
                        self._line = data[pos:]      # a header split across reads
                        return
                    raise MessageError("bad header %r" % data[pos:pos + 16])
                kind, num = mm.groups()
                pos = mm.end()
                if left:
                    left -= 1
                    if kind == b"$":
                        length = int(num)
                        if length < 0 or length > max_len:
                            raise MessageError("bulk of %d bytes (limit %d)" % (length, max_len))
                        pos += length + 2
                    elif kind != b":":
                        raise MessageError("nested array in a frame")
                    continue
                if kind != b"*":
                    raise MessageError("frame is not an array starting with a type")
                left = int(num)
                if left < 1 or left > max_el:
                    raise MessageError("frame of %d elements (limit %d)" % (left, max_el))
            if pos > n:
                self._skip = pos - n
        finally:
            self._left = left

    def idle(self) -> bool:
        """At a frame boundary with nothing buffered (the stream lane may run)."""
        return not (self._left or self._skip or self._line or self._reader.has_data())

    def feed(self, data: bytes) -> list:
        self._check(data)
        reader = self._reader
        reader.feed(data)
        out = []
        gets = reader.gets
        try:
            while True:
                f = gets()
                if f is _NEED:
                    break
                if f.__class__ is not list or not f or f[0].__class__ is not bytes:
                    raise MessageError("frame is not an array starting with a type")
                out.append(f)
        except MessageError:
            raise
        except Exception as e:      # hiredis: ProtocolError, or a value it cannot build
            raise MessageError("bad RESP: %s" % e) from None
        # hiredis does not say how much of its buffer is an incomplete frame;
        # after a complete frame at most this read's bytes can be left over.
        if out:
            self._pending = len(data) if reader.has_data() else 0
        else:
            self._pending += len(data)
        if self._pending > self.max_pending_bytes:
            raise MessageError("incomplete frame over %d bytes" % self.max_pending_bytes)
        return out


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------

def _item(x) -> bytes:
    c = x.__class__
    if c is int:
        return b":%d\r\n" % x
    if c is str:
        x = x.encode("utf-8", "surrogateescape")
    elif c is not bytes:
        x = bytes(x)
    return b"$%d\r\n%s\r\n" % (len(x), x)


def frame(*items) -> bytes:
    """One frame from ints (RESP integers) and bytes/str (bulk strings)."""
    return b"*%d\r\n" % len(items) + b"".join([_item(x) for x in items])


def entry(key: bytes, value: bytes, deadline_ms: int, version: int) -> bytes:
    """One write entry (4 elements) for a B or CU frame."""
    vb = b"%d" % version
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n$%d\r\n%s\r\n" % (
        len(key), key, len(value), value, deadline_ms, len(vb), vb)


def batch_head(origin: bytes, first_offset: int, sent_ms: int, n_entries: int) -> bytes:
    return b"*%d\r\n$1\r\nB\r\n$%d\r\n%s\r\n:%d\r\n:%d\r\n" % (
        BATCH_HEAD + ENTRY_FIELDS * n_entries, len(origin), origin, first_offset, sent_ms)


def cu_head(sync_id: int, n_entries: int) -> bytes:
    return b"*%d\r\n$2\r\nCU\r\n:%d\r\n" % (CU_HEAD + ENTRY_FIELDS * n_entries, sync_id)


def encode_batch(origin: bytes, first_offset: int, sent_ms: int, entries) -> bytes:
    """A whole B frame from (key, value, deadline, version) tuples (tests, tools)."""
    parts = [entry(*e) for e in entries]
    return batch_head(origin, first_offset, sent_ms, len(parts)) + b"".join(parts)


def floor_entry(key: bytes, version: int) -> bytes:
    vb = b"%d" % version
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(vb), vb)


def floors_head(n_floors: int) -> bytes:
    return b"*%d\r\n$2\r\nFL\r\n" % (1 + FLOOR_FIELDS * n_floors)


def encode_floors(pairs) -> bytes:
    parts = [floor_entry(k, v) for k, v in pairs]
    return floors_head(len(parts)) + b"".join(parts)


def decode_floors(f: list) -> list:
    """[(key, version)] from an FL frame, checking every field."""
    if (len(f) - 1) % FLOOR_FIELDS:
        raise MessageError("FL: floors are not groups of %d" % FLOOR_FIELDS)
    return [(as_bytes(f[i], "key"), as_version(f[i + 1])) for i in range(1, len(f), FLOOR_FIELDS)]


def summary_head(round_id: int, n_pairs: int) -> bytes:
    return b"*%d\r\n$3\r\nAES\r\n:%d\r\n" % (2 + FLOOR_FIELDS * n_pairs, round_id)


def decode_summary(f: list):
    """(round, [(key, version)]) from an AES frame."""
    if len(f) < 2 or len(f) % FLOOR_FIELDS:
        raise MessageError("AES: bad field count")
    return as_int(f[1], "round"), [(as_bytes(f[i], "key"), as_version(f[i + 1]))
                                   for i in range(2, len(f), FLOOR_FIELDS)]


def encode_aeget(keys) -> bytes:
    return frame(AEGET, *keys)


def decode_aeget(f: list) -> list:
    return [as_bytes(k, "key") for k in f[1:]]


def encode_ae(round_id: int, last: bool, cutoff: int, ranges) -> bytes:
    """ranges: [(lo, hi or None, digest)]; cutoff: the round's version
    cutoff (both sides digest only versions at or below it)."""
    items = [AE, round_id, int(last), b"%d" % cutoff]
    for lo, hi, dig in ranges:
        items += [lo, b"" if hi is None else hi, dig]
    return frame(*items)


def decode_ae(f: list):
    """(round, last, cutoff, [(lo, hi or None, digest)])."""
    if len(f) < AE_HEAD or (len(f) - AE_HEAD) % AE_RANGE_FIELDS:
        raise MessageError("AE: bad field count")
    rid = as_int(f[1], "round")
    last = as_int(f[2], "last")
    cutoff = as_version(f[3])
    out = []
    for i in range(AE_HEAD, len(f), AE_RANGE_FIELDS):
        lo, hi, dig = as_bytes(f[i], "lo"), as_bytes(f[i + 1], "hi"), as_bytes(f[i + 2], "digest")
        if len(dig) > 64:
            raise MessageError("AE: digest longer than 64 bytes")
        out.append((lo, hi if hi else None, dig))
    return rid, bool(last), cutoff, out


def encode_aed(round_id: int, cutoff: int, digests: bytes) -> bytes:
    """A ledger round (ledger.py): the snapshot whose newest version is
    ``cutoff``, its bucket digests as little-endian 64-bit words."""
    return frame(AED, round_id, b"%d" % cutoff, digests)


def decode_aed(f: list, size: int):
    """(round, cutoff, digests) from an AED frame; digests must be size bytes."""
    need(f, 4, "AED")
    dig = as_bytes(f[3], "digests")
    if len(dig) != size:
        raise MessageError("AED: digests of %d bytes, not %d" % (len(dig), size))
    return as_int(f[1], "round"), as_version(f[2]), dig


def encode_cu(sync_id: int, entries) -> bytes:
    parts = [entry(*e) for e in entries]
    return cu_head(sync_id, len(parts)) + b"".join(parts)


# --------------------------------------------------------------------------
# Decoding helpers: each checks count and types, raising MessageError.
# --------------------------------------------------------------------------

def need(f: list, n: int, name: str) -> None:
    if len(f) != n:
        raise MessageError("%s: expected %d fields, got %d" % (name, n, len(f)))


def need_either(f: list, n: int, n_longer: int, name: str) -> None:
    """n fields, or n_longer with the optional ones a later build added."""
    if len(f) != n and len(f) != n_longer:
        raise MessageError("%s: expected %d or %d fields, got %d" % (name, n, n_longer, len(f)))


def as_int(x, what: str) -> int:
    if x.__class__ is int:
        return x
    raise MessageError("%s is not an integer" % what)


def as_bytes(x, what: str) -> bytes:
    if x.__class__ is bytes:
        return x
    raise MessageError("%s is not a bulk string" % what)


def as_text(x, what: str, limit: int = 256) -> str:
    b = as_bytes(x, what)
    if len(b) > limit:
        raise MessageError("%s longer than %d bytes" % (what, limit))
    return b.decode("utf-8", "surrogateescape")


def as_version(x) -> int:
    """An HLC version: decimal digits in a bulk string, < 2^96."""
    if x.__class__ is not bytes or not x.isdigit() or len(x) > 29:
        raise MessageError("bad version")
    return int(x)


def check_entries(f: list, start: int, name: str) -> int:
    """Number of entries in f[start:], after checking the shape of each."""
    n, rem = divmod(len(f) - start, ENTRY_FIELDS)
    if rem or n < 0:
        raise MessageError("%s: entries are not groups of %d" % (name, ENTRY_FIELDS))
    for i in range(start, len(f), ENTRY_FIELDS):
        if (f[i].__class__ is not bytes or f[i + 1].__class__ is not bytes
                or f[i + 2].__class__ is not int or f[i + 3].__class__ is not bytes):
            raise MessageError("%s: malformed entry" % name)
    return n


def decode_entries(f: list, start: int):
    """[(key, value, deadline, version)] from a checked frame (tests, tools)."""
    return [(f[i], f[i + 1], f[i + 2], as_version(f[i + 3]))
            for i in range(start, len(f), ENTRY_FIELDS)]


@dataclass
class NodeInfo:
    """Who a node is: sent in HELLO / WELCOME and in NODES gossip."""
    node_id: str
    run_id: str
    enclave: str
    host: str           # announced address ('' = use the address seen)
    cport: int          # cluster port
    client_port: int
    state: str = "up"
    # The node's REPRAM HTTP API port (0 = none or not said): carried only
    # in HELLO / WELCOME, as an optional last field (not in NODES gossip).
    http_port: int = 0

    def fields(self) -> tuple:
        return (self.node_id, self.run_id, self.enclave, self.host, self.cport, self.client_port)


@dataclass
class Hello:
    proto: int
    node: NodeInfo
    max_bulk: int       # proto-max-bulk-len: the sender never sends a bigger value
    nonce: bytes
    t1: int             # sender's clock, microseconds


def _http_port(node: NodeInfo) -> tuple:
    """The optional last field of HELLO / WELCOME: sent only by a node that
    serves HTTP, so a node without it sends the frames of earlier builds."""
    return (node.http_port,) if node.http_port else ()


def _read_http_port(f: list, i: int, node: NodeInfo) -> None:
    if len(f) > i:
        p = as_int(f[i], "http port")
        if not 0 <= p <= 65535:
            raise MessageError("bad http port")
        node.http_port = p


def encode_hello(h: Hello) -> bytes:
    return frame(HELLO, h.proto, *h.node.fields(), h.max_bulk, h.nonce, h.t1, *_http_port(h.node))


def _node(f: list, i: int) -> NodeInfo:
    return NodeInfo(as_text(f[i], "node id", 128), as_text(f[i + 1], "run id", 128),
                    as_text(f[i + 2], "enclave", 256), as_text(f[i + 3], "host", 256),
                    as_int(f[i + 4], "cluster port"), as_int(f[i + 5], "client port"))


def decode_hello(f: list) -> Hello:
    if len(f) < 2:
        raise MessageError("HELLO: no version")
    proto = as_int(f[1], "protocol version")
    if proto != PROTO_VERSION:
        # Checked before the rest so that a future version can change the layout.
        return Hello(proto, NodeInfo("", "", "", "", 0, 0), 0, b"", 0)
    need_either(f, 11, 12, "HELLO")
    nonce = as_bytes(f[9], "nonce")
    if not 16 <= len(nonce) <= 64:
        raise MessageError("HELLO: bad nonce length")
    node = _node(f, 2)
    _read_http_port(f, 11, node)
    return Hello(proto, node, as_int(f[8], "max bulk"), nonce, as_int(f[10], "t1"))


@dataclass
class Welcome:
    proto: int
    node: NodeInfo
    max_bulk: int
    nonce: bytes
    proof: bytes        # empty when the acceptor has no secret
    t1: int             # echo of HELLO's t1
    t2: int             # acceptor's clock when HELLO arrived
    t3: int             # acceptor's clock when WELCOME left


def encode_welcome(w: Welcome) -> bytes:
    return frame(WELCOME, w.proto, *w.node.fields(), w.max_bulk, w.nonce, w.proof, w.t1, w.t2, w.t3,
                 *_http_port(w.node))


def decode_welcome(f: list) -> Welcome:
    need_either(f, 14, 15, "WELCOME")
    nonce = as_bytes(f[9], "nonce")
    if not 16 <= len(nonce) <= 64:
        raise MessageError("WELCOME: bad nonce length")
    node = _node(f, 2)
    _read_http_port(f, 14, node)
    return Welcome(as_int(f[1], "version"), node, as_int(f[8], "max bulk"), nonce,
                   as_bytes(f[10], "proof"), as_int(f[11], "t1"), as_int(f[12], "t2"),
                   as_int(f[13], "t3"))


@dataclass
class Auth:
    proof: bytes
    t1: int             # echo of WELCOME's t3
    t2: int             # dialer's clock when WELCOME arrived
    t3: int             # dialer's clock when AUTH left


def encode_auth(a: Auth) -> bytes:
    return frame(AUTH, a.proof, a.t1, a.t2, a.t3)


def decode_auth(f: list) -> Auth:
    need(f, 5, "AUTH")
    return Auth(as_bytes(f[1], "proof"), as_int(f[2], "t1"), as_int(f[3], "t2"), as_int(f[4], "t3"))


def encode_nodes(nodes) -> bytes:
    items = [NODES]
    for n in nodes:
        items.extend(n.fields())
        items.append(n.state)
    return frame(*items)


NODE_FIELDS = 7


def decode_nodes(f: list) -> list:
    if (len(f) - 1) % NODE_FIELDS:
        raise MessageError("NODES: entries are not groups of %d" % NODE_FIELDS)
    if len(f) > 1 + NODE_FIELDS * 4096:
        raise MessageError("NODES: more than 4096 nodes")
    out = []
    for i in range(1, len(f), NODE_FIELDS):
        n = _node(f, i)
        n.state = as_text(f[i + 6], "state", 16)
        out.append(n)
    return out
