# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled fast lane.  The contract it implements is in lane.py (read
that first); this file is only the mechanism.

``execute(client, data, out_limit)`` walks ``data`` from its first byte.
Each complete command it fully recognises and may execute (lane.py, "What
the lane executes") is applied to the keyspace and its reply appended to one
buffer; at the first byte that is anything else it stops.  It writes the
replies of what it ran in one ``transport.write`` and returns the unread
rest of ``data`` (``None`` if it consumed everything, ``data`` itself if it
ran nothing), which the caller hands to the Python path.  Every decision to
stop is taken *before* the command changes anything.

It mirrors, statement for statement, these Python paths (keep them in step):
``Keyspace.get``/``cmd_get`` (hits, misses), ``Keyspace.put`` for an
overwrite of a live key whose new deadline is not earlier than its bucket
(version stamping = ``HLC.tick``, memory accounting, maxmemory), and
``Replicator.local_write`` (stream offsets, the entry encoding, the per-turn
flush).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.dict cimport PyDict_Contains, PyDict_GetItem, PyDict_SetItem, PyDict_Size
from cpython.list cimport PyList_GET_SIZE
from cpython.long cimport PyLong_AsLongLong, PyLong_AsLongLongAndOverflow, PyLong_FromLongLong
from cpython.object cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from time import monotonic as _monotonic

from .clock import wall_ms as _wall_ms
from .keyspace import BUCKET_SHIFT as _BUCKET_SHIFT, ENTRY_OVERHEAD_BYTES

cdef long long ENTRY_OVERHEAD = ENTRY_OVERHEAD_BYTES
cdef int BUCKET_SHIFT = _BUCKET_SHIFT

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_REALTIME
    int CLOCK_MONOTONIC

cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil

cdef extern from "Python.h":
    void PyObject_GC_UnTrack(object o)


cdef inline long long _c_wall_ms():
    # == clock.wall_ms() (time.time_ns() // 1_000_000): the same CLOCK_REALTIME
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return ts.tv_sec * 1000 + ts.tv_nsec // 1000000


cdef inline long long _c_perf_ns():
    # == time.perf_counter_ns() on Linux: CLOCK_MONOTONIC
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec


# Command statistics of lane runs, kept in C and added to the Command
# objects by flush_stats() -- which commands.all_commands() calls, so every
# reader (INFO commandstats / latencystats, LATENCY HISTOGRAM, CONFIG
# RESETSTAT) sees them -- instead of three Python attribute updates per run.
# Index 1: GET, 2: SET (the lane's `kind`).
HIST_BUCKETS = 256                # must equal commands.HIST_BUCKETS (lane.py checks)
cdef long long _calls[3]
cdef long long _ns[3]
cdef long long _hist[3][256]
cdef bint _pending = False


def flush_stats():
    """Add the lane's pending counters to GET's and SET's Command objects."""
    global _pending
    cdef int kind, i
    if not _pending:
        return
    _pending = False
    for kind in range(1, 3):
        if not _calls[kind]:
            continue
        cmd = GET_CMD if kind == 1 else SET_CMD
        cmd.calls += _calls[kind]
        cmd.ns += _ns[kind]
        hist = cmd.hist
        for i in range(256):
            if _hist[kind][i]:
                hist[i] += _hist[kind][i]
                _hist[kind][i] = 0
        _calls[kind] = 0
        _ns[kind] = 0


cdef int _end_run(object client, object stats, int kind, long long k, long long d,
                  long long watch_ns, bytes data, Py_ssize_t a, Py_ssize_t b) except -1:
    """introspect.Stats.end_run for a run of k lane commands of one kind
    that took d ns: calls, ns, the histogram of the per-call mean, and a
    slowlog / latency entry (the run's last command) past the threshold."""
    global _pending
    cdef long long m = d // k
    cdef int bl = 0
    cdef long long idx
    _calls[kind] += k
    _ns[kind] += d
    if m > 0:
        bl = 64 - __builtin_clzll(<unsigned long long>m)
    idx = (bl << 2) + ((m >> (bl - 3)) & 3) if bl >= 3 else m
    _hist[kind][idx] += k
    _pending = True
    if m >= watch_ns:
        from .protocol import RequestParser
        argv = RequestParser().feed(data[a:b])[0]
        stats.after_run(client, GET_CMD if kind == 1 else SET_CMD, [argv], 0, 1, m)
    return 0


# Must equal repram_resp.cluster.replicator.FLUSH_BYTES (tests/test_lane.py checks).
FLUSH_BYTES = 1024 * 1024
cdef long long _FLUSH_BYTES = FLUSH_BYTES
# Must equal repram_resp.cluster.replicator.MAX_BATCH_ENTRIES (checked too).
MAX_BATCH_ENTRIES = 65536
cdef Py_ssize_t _MAX_BATCH_ENTRIES = MAX_BATCH_ENTRIES
cdef int LOGICAL_BITS = 16        # repram_resp.clock.LOGICAL_BITS (checked by the tests too)
cdef int TTL_MAX_DIGITS = 12      # longer TTL arguments take the Python path

# The Command objects, so CLIENT LIST's cmd= is right (set by lane.py).
cdef object GET_CMD = None
cdef object SET_CMD = None


def set_commands(get_cmd, set_cmd):
    global GET_CMD, SET_CMD
    GET_CMD, SET_CMD = get_cmd, set_cmd


# -- an output buffer that starts on the stack --------------------------------

cdef struct Buf:
    char* p
    Py_ssize_t n
    Py_ssize_t cap
    bint heap


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = b.cap * 2
    cdef char* q
    while cap < b.n + need:
        cap *= 2
    if b.heap:
        q = <char*>realloc(b.p, cap)
    else:
        q = <char*>malloc(cap)
        if q != NULL:
            memcpy(q, b.p, b.n)
    if q == NULL:
        raise MemoryError()
    b.p = q
    b.cap = cap
    b.heap = True
    return 0


cdef inline int _put(Buf* b, const char* s, Py_ssize_t n) except -1:
    if b.n + n > b.cap:
        _grow(b, n)
    memcpy(b.p + b.n, s, n)
    b.n += n
    return 0


cdef inline int _put_int(Buf* b, long long v) except -1:
    # Decimal of v >= 0.
    cdef char tmp[24]
    cdef int i = 24
    if v == 0:
        return _put(b, "0", 1)
    while v:
        i -= 1
        tmp[i] = <char>(48 + v % 10)
        v //= 10
    return _put(b, tmp + i, 24 - i)


cdef inline int _put_bulk(Buf* b, const char* s, Py_ssize_t n) except -1:
    # "$<n>\r\n<bytes>\r\n"
    _put(b, "$", 1)
    _put_int(b, n)
    _put(b, "\r\n", 2)
    _put(b, s, n)
    return _put(b, "\r\n", 2)


# -- request scanning -----------------------------------------------------------

cdef inline Py_ssize_t _bulk(const unsigned char* p, Py_ssize_t i, Py_ssize_t end,
                             Py_ssize_t max_bulk, Py_ssize_t* start, Py_ssize_t* length):
    """Scan "$<n>\\r\\n<n bytes>\\r\\n" at i, exactly as Redis writes it
    (digits without sign or leading zero, n <= max_bulk, CRLF after the
    payload).  Returns the index after it, or -1 for anything else,
    including "not all here yet"."""
    cdef Py_ssize_t n = 0, d0
    if i >= end or p[i] != 36:           # '$'
        return -1
    i += 1
    d0 = i
    if i < end and p[i] == 48:           # "$0" only as itself
        i += 1
    else:
        while i < end and 48 <= p[i] <= 57 and i - d0 < 10:
            n = n * 10 + (p[i] - 48)
            i += 1
        if i == d0:
            return -1
    if i + 1 >= end or p[i] != 13 or p[i + 1] != 10 or n > max_bulk:
        return -1
    i += 2
    if end - i < n + 2 or p[i + n] != 13 or p[i + n + 1] != 10:
        return -1
    start[0] = i
    length[0] = n
    return i + n + 2


cdef inline int _name(const unsigned char* p, Py_ssize_t s):
    """1 for GET/get, 2 for SET/set (the spellings the command table holds
    without .upper()), 0 otherwise."""
    cdef unsigned char a = p[s], b = p[s + 1], c = p[s + 2]
    if a == 71 and b == 69 and c == 84 or a == 103 and b == 101 and c == 116:
        return 1
    if a == 83 and b == 69 and c == 84 or a == 115 and b == 101 and c == 116:
        return 2
    return 0


# -- the lane -------------------------------------------------------------------

# -- the digest ledger (cluster/ledger.py: PyLedger is the specification) ----
#
# Constants as ledger.py's (tests/test_ledger.py compares the two).
cdef enum:
    L_BUCKET_BITS = 11
    L_BUCKETS = 2048
    L_VQ_SHIFT = 23                 # QUANTUM_SHIFT 7 + LOGICAL_BITS 16
    L_SNAPSHOTS_KEPT = 32
    L_FUTURE_QUANTA_MAX = 1024
    L_PENDING_MAX = 4000000

cdef extern from "Python.h":
    unsigned long long PyLong_AsUnsignedLongLongMask(object o) except? <unsigned long long>-1

cdef extern from *:
    """
    /* CRC-32 (zlib's), slicing by 8 on little-endian machines. */
    static uint32_t repram_crc_t[8][256];
    static void repram_crc_init(void) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320U ^ (c >> 1) : c >> 1;
            repram_crc_t[0][n] = c;
        }
        for (uint32_t n = 0; n < 256; n++)
            for (int k = 1; k < 8; k++)
                repram_crc_t[k][n] = (repram_crc_t[k - 1][n] >> 8) ^ repram_crc_t[0][repram_crc_t[k - 1][n] & 0xFF];
    }
    static inline uint32_t repram_crc32(const unsigned char *p, Py_ssize_t n) {
        uint32_t c = 0xFFFFFFFFU;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        while (n >= 8) {
            uint32_t one, two;
            memcpy(&one, p, 4);
            memcpy(&two, p + 4, 4);
            one ^= c;
            c = repram_crc_t[7][one & 0xFF] ^ repram_crc_t[6][(one >> 8) & 0xFF]
              ^ repram_crc_t[5][(one >> 16) & 0xFF] ^ repram_crc_t[4][one >> 24]
              ^ repram_crc_t[3][two & 0xFF] ^ repram_crc_t[2][(two >> 8) & 0xFF]
              ^ repram_crc_t[1][(two >> 16) & 0xFF] ^ repram_crc_t[0][two >> 24];
            p += 8;
            n -= 8;
        }
    #endif
        while (n-- > 0) c = repram_crc_t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFU;
    }
    """
    void repram_crc_init()
    unsigned int repram_crc32(const unsigned char* p, Py_ssize_t n) nogil


repram_crc_init()


cdef inline unsigned int _adler32(const unsigned char* p, Py_ssize_t n) nogil:
    # == zlib.adler32 (reduced every 5552 bytes, as zlib does)
    cdef unsigned int a = 1, b = 0
    cdef Py_ssize_t i = 0, k
    while i < n:
        k = n - i if n - i < 5552 else 5552
        while k > 0:
            a += p[i]
            b += a
            i += 1
            k -= 1
        a %= 65521
        b %= 65521
    return (b << 16) | a


cdef extern from *:
    """
    static inline unsigned long long repram_contrib(unsigned long long h, unsigned long long v) {
        /* == ledger.contribution */
        if (v == 0) return 0;
        unsigned __int128 p = (unsigned __int128)(h ^ v) * 0x9E3779B97F4A7C15ULL;
        return (unsigned long long)(p >> 64) ^ (unsigned long long)p;
    }
    """
    unsigned long long repram_contrib(unsigned long long h, unsigned long long v) nogil


cdef inline unsigned long long _contrib(unsigned long long h, unsigned long long v) nogil:
    return repram_contrib(h, v)


cdef struct _Change:
    long long q
    unsigned long long d
    unsigned int b


cdef class Ledger:
    """ledger.PyLedger in C: the same digests, snapshots and bounds."""
    cdef unsigned long long dig[L_BUCKETS]
    cdef long long settled
    cdef _Change* pend
    cdef Py_ssize_t npend, cap
    cdef public object snapshots
    cdef public long long changes, folded_early

    def __cinit__(self):
        self.settled = -1
        self.pend = NULL
        self.npend = 0
        self.cap = 0
        self.snapshots = {}
        self.changes = 0
        self.folded_early = 0
        memset(self.dig, 0, sizeof(self.dig))

    def __dealloc__(self):
        free(self.pend)

    cdef int _note(self, const unsigned char* k, Py_ssize_t n, unsigned long long old,
                   unsigned long long new, unsigned long long tag) except -1:
        cdef unsigned int c, b
        cdef unsigned long long h, d
        cdef long long q, s
        cdef _Change* np
        if old == new:
            return 0
        c = repram_crc32(k, n)           # == zlib.crc32
        h = ((<unsigned long long>c) << 32) | _adler32(k, n)
        d = _contrib(h, old) ^ _contrib(h, new)
        b = c >> (32 - L_BUCKET_BITS)
        self.changes += 1
        q = <long long>(tag >> L_VQ_SHIFT)
        s = self.settled
        if s < 0 or q < s or q - s > L_FUTURE_QUANTA_MAX:
            self.dig[b] ^= d
            return 0
        if self.npend == self.cap:
            np = <_Change*>realloc(self.pend, (self.cap * 2 + 1024) * sizeof(_Change))
            if np == NULL:
                raise MemoryError()
            self.pend = np
            self.cap = self.cap * 2 + 1024
        self.pend[self.npend].q = q
        self.pend[self.npend].d = d
        self.pend[self.npend].b = b
        self.npend += 1
        if self.npend > L_PENDING_MAX:
            self._fold_oldest()
        return 0

    def note(self, bytes key, old, new, tag):
        self._note(<const unsigned char*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key),
                   PyLong_AsUnsignedLongLongMask(old), PyLong_AsUnsignedLongLongMask(new),
                   PyLong_AsUnsignedLongLongMask(tag))

    cdef void _fold_upto(self, long long q):
        """Fold every pending change of a quantum <= q into the digests."""
        cdef Py_ssize_t i, w = 0
        for i in range(self.npend):
            if self.pend[i].q <= q:
                self.dig[self.pend[i].b] ^= self.pend[i].d
            else:
                self.pend[w] = self.pend[i]
                w += 1
        self.npend = w

    cdef void _fold_oldest(self):
        cdef Py_ssize_t i
        cdef long long q = self.pend[0].q
        cdef Py_ssize_t before = self.npend
        for i in range(self.npend):
            if self.pend[i].q < q:
                q = self.pend[i].q
        self._fold_upto(q)
        self.folded_early += before - self.npend

    def advance(self, long long j):
        cdef long long s = self.settled
        if s < 0:
            self._fold_upto(1LL << 62)
            self.settled = j
            self.snapshots[j] = PyBytes_FromStringAndSize(<const char*>self.dig, sizeof(self.dig))
            return
        if j <= s:
            return
        if j - s > L_SNAPSHOTS_KEPT:
            self._fold_upto(j - L_SNAPSHOTS_KEPT - 1)
            s = j - L_SNAPSHOTS_KEPT
        while s < j:
            self._fold_upto(s)
            s += 1
            self.snapshots[s] = PyBytes_FromStringAndSize(<const char*>self.dig, sizeof(self.dig))
        self.settled = j
        for old in [q for q in self.snapshots if q <= j - L_SNAPSHOTS_KEPT]:
            del self.snapshots[old]

    def snapshot(self, long long j):
        if j > self.settled:
            self.advance(j)
        return self.snapshots.get(j)

    def latest(self):
        return self.settled

    @property
    def npending(self):
        return self.npend

    @property
    def digests(self):
        return PyBytes_FromStringAndSize(<const char*>self.dig, sizeof(self.dig))


# The deadline int of the last entry the lane stored, reused by the next one
# with the same deadline: writes with one TTL in one millisecond (a pipeline,
# a stream batch) share one int object instead of one each.  Ints are
# immutable, so nothing can tell -- except the cache: an overwrite reads the
# old entry's deadline, and the few hundred objects of the last moments stay
# in it where a hundred thousand distinct ones would not.  (Keyspace.put
# makes its own; the values are what the store holds either way.)
cdef object _dl_obj = None
cdef long long _dl_val = -1


cdef inline object _deadline_obj(long long d):
    global _dl_obj, _dl_val
    if d != _dl_val or _dl_obj is None:
        _dl_obj = PyLong_FromLongLong(d)
        _dl_val = d
    return _dl_obj


def execute(client, bytes data, Py_ssize_t out_limit, long long max_cmds, Py_ssize_t max_bytes):
    """Run the lane over data; see the module header and lane.py."""
    # Per-client conditions (the caller checked server.lane_ok and that no
    # batch or turn is waiting): plain execution, not paused, and the parser
    # on a command boundary holding nothing.
    if client.gate is not None or client._paused:
        return data
    parser = client.parser
    if parser._argc or len(parser._buf) or parser.error is not None:
        return data

    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(data)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(data)
    if end < 14 or p[0] != 42:          # the shortest command we run is 14 bytes
        return data

    server = client.server
    ks = server.keyspace
    cdef dict store = ks.data
    cdef Py_ssize_t max_bulk = parser.max_bulk
    if parser.max_args < 5:
        return data
    clock = server.clock
    cdef bint wall = clock is _wall_ms
    cdef long long now = _c_wall_ms() if wall else clock()
    null = client.enc.null
    cdef const char* null_p = PyBytes_AS_STRING(null)
    cdef Py_ssize_t null_n = PyBytes_GET_SIZE(null)

    # What only SETs need is read at the first SET (writes_read).
    cdef bint writes_read = False, writes = False
    cdef long long min_ttl = 0, max_ttl = 0, maxmem = 0, used = 0
    hlc = None
    watched = None
    # Replication (Replicator.local_write).
    cdef bint hooks = False
    rep = None
    parts = None
    cdef long long rep_off = 0, rep_bytes = 0, min_peer_bulk = 0, client_off = 0
    cdef bint streaming = False, scheduled = False, lo_unset = False

    # Counters written back at the end.
    cdef long long hits = 0, misses = 0, used_delta = 0, ncmds = 0
    cdef long long hlc_last = 0
    cdef bint stamped = False
    cdef int last_kind = 0
    # Command statistics by runs of one kind (introspect.py).
    stats = server.stats
    cdef long long watch_ns = stats.watch_ns
    cdef int run_kind = 0
    cdef long long run_n = 0, t_run = 0
    cdef Py_ssize_t cmd_a = 0, cmd_b = 0

    cdef char stack[8192]
    cdef Buf out
    out.p = stack
    out.n = 0
    out.cap = 8192
    out.heap = False
    cdef Buf ent
    cdef char ent_stack[512]

    cdef Py_ssize_t pos = 0, q, ks_, kn, vs, vn, os_, on, ts, tn, j
    cdef int kind, argc
    cdef long long ttl, unit, deadline, d0, sched, version, delta
    cdef PyObject* e
    cdef object key, value, entry, old_value
    cdef bint trivial
    cdef long long ob
    cdef unsigned long long ov
    ledger = ks.ledger
    cdef Ledger cledger = ledger if type(ledger) is Ledger else None

    try:
        while pos < end and out.n < out_limit and ncmds < max_cmds and pos < max_bytes:
            # "*2\r\n" or "*5\r\n"
            if end - pos < 14 or p[pos] != 42 or p[pos + 2] != 13 or p[pos + 3] != 10:
                break
            if p[pos + 1] == 50:
                argc = 2
            elif p[pos + 1] == 53:
                argc = 5
            else:
                break
            # the name: "$3\r\nGET\r\n" / SET
            q = pos + 4
            if p[q] != 36 or p[q + 1] != 51 or p[q + 2] != 13 or p[q + 3] != 10 \
                    or p[q + 7] != 13 or p[q + 8] != 10:
                break
            kind = _name(p, q + 4)
            if kind == 0 or (kind == 1) != (argc == 2):
                break
            q = _bulk(p, q + 9, end, max_bulk, &ks_, &kn)
            if q < 0:
                break
            if not (ncmds & 31) and ncmds:
                now = _c_wall_ms() if wall else clock()   # one reading per 32 commands, as _run_batch
            if kind != run_kind and kind == 1:
                if run_n:
                    _end_run(client, stats, 2, run_n, _c_perf_ns() - t_run, watch_ns, data, cmd_a, cmd_b)
                run_kind = 1
                run_n = 0
                t_run = _c_perf_ns()
            if kind == 1:
                # GET key (Keyspace.get)
                key = PyBytes_FromStringAndSize(<const char*>p + ks_, kn)
                e = PyDict_GetItem(store, key)
                if e == NULL:
                    misses += 1
                    _put(&out, null_p, null_n)
                else:
                    entry = <object>e
                    if type(entry) is not tuple or len(entry) != 4:
                        break
                    value = (<tuple>entry)[0]
                    if type(value) is not bytes:
                        break
                    # alive: now < filed bucket start, or now <= deadline
                    if now < PyLong_AsLongLong((<tuple>entry)[3]) or now <= PyLong_AsLongLong((<tuple>entry)[1]):
                        hits += 1
                        _put_bulk(&out, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
                    else:
                        misses += 1
                        _put(&out, null_p, null_n)
                last_kind = 1
                ncmds += 1
                run_n += 1
                cmd_a = pos
                cmd_b = q
                pos = q
                continue
            # SET key value EX|PX n
            if not writes_read:
                writes_read = True
                writes = server.write_refusal is None
                cfg = server.config
                min_ttl = cfg.min_ttl_ms
                max_ttl = cfg.max_ttl_ms
                maxmem = ks.maxmemory_bytes
                used = ks.used_bytes
                hlc = ks.hlc
                watched = ks.on_write       # keys the write hook must see (tracking, 'new')
                hooks = server.write_hooks
                if hooks:
                    rep = server.replication.replicator
                    rep_off = rep.offset
                    streaming = PyList_GET_SIZE(rep.streaming) > 0
                    if streaming:
                        parts = rep._parts
                        rep_bytes = rep._bytes
                        scheduled = rep._scheduled
                        min_peer_bulk = rep._min_peer_bulk
                    client_off = client.write_offset
                    lo_unset = client_off == 0
            if not writes:
                break
            q = _bulk(p, q, end, max_bulk, &vs, &vn)
            if q < 0:
                break
            q = _bulk(p, q, end, max_bulk, &os_, &on)
            if q < 0 or on != 2:
                break
            if (p[os_] == 69 and p[os_ + 1] == 88) or (p[os_] == 101 and p[os_ + 1] == 120):
                unit = 1000                      # EX / ex
            elif (p[os_] == 80 and p[os_ + 1] == 88) or (p[os_] == 112 and p[os_ + 1] == 120):
                unit = 1                         # PX / px
            else:
                break
            q = _bulk(p, q, end, max_bulk, &ts, &tn)
            if q < 0 or tn < 1 or tn > TTL_MAX_DIGITS or p[ts] == 48:
                break
            ttl = 0
            for j in range(ts, ts + tn):
                if not 48 <= p[j] <= 57:
                    break
                ttl = ttl * 10 + (p[j] - 48)
            else:
                j = ts + tn
            if j != ts + tn:
                break
            ttl *= unit
            if ttl < min_ttl or ttl > max_ttl:
                break
            key = PyBytes_FromStringAndSize(<const char*>p + ks_, kn)
            deadline = now + ttl
            # The trivial case (a live key whose new deadline keeps it in its
            # bucket) is applied here; a new key, an expired one or a bucket
            # move goes through Keyspace.put itself (index, buckets, expiry
            # notification), called from here with the lane's state written
            # back first.  Every refusal is decided before either.
            trivial = False
            e = PyDict_GetItem(store, key)
            if e == NULL:
                delta = kn + vn + ENTRY_OVERHEAD
            else:
                entry = <object>e
                if type(entry) is not tuple or len(entry) != 4:
                    break
                old_value = (<tuple>entry)[0]
                if type(old_value) is not bytes:
                    break
                d0 = PyLong_AsLongLong((<tuple>entry)[1])
                sched_obj = (<tuple>entry)[3]
                sched = PyLong_AsLongLong(sched_obj)
                trivial = not (now >= sched and now > d0) and deadline >= sched
                if trivial and watched is not None:
                    # Keyspace.put runs the write hook (invalidation) for a
                    # watched key.  The tracking table is a dict: one C-level
                    # lookup with the hash the store lookup cached, none while
                    # it is empty.
                    if type(watched) is dict:
                        if PyDict_Size(watched) and PyDict_Contains(watched, key):
                            trivial = False
                    elif key in watched:
                        trivial = False
                delta = vn - PyBytes_GET_SIZE(old_value)
            if delta > 0 and maxmem and used + delta > maxmem:
                break                            # OOM reply (Python)
            if streaming and (vn > min_peer_bulk or kn > min_peer_bulk):
                break                            # Replicator._oversize (Python)
            # -- apply (nothing below refuses) --
            if run_kind != 2:
                if run_n:
                    _end_run(client, stats, 1, run_n, _c_perf_ns() - t_run, watch_ns, data, cmd_a, cmd_b)
                run_kind = 2
                run_n = 0
                t_run = _c_perf_ns()
            value = PyBytes_FromStringAndSize(<const char*>p + vs, vn)
            if trivial:
                version = now << LOGICAL_BITS         # HLC.tick
                if not stamped:
                    hlc_last = hlc.last
                    stamped = True
                if version <= hlc_last:
                    version = hlc_last + 1
                hlc_last = version
                if ledger is not None:
                    # Keyspace.put's note (cluster/ledger.py)
                    ov = PyLong_AsUnsignedLongLongMask(<object>PyTuple_GET_ITEM(entry, 2))
                    if cledger is not None:
                        cledger._note(p + ks_, kn, ov, version, version)
                    else:
                        ledger.note(key, (<tuple>entry)[2], version, version)
                PyDict_SetItem(store, key, (value, _deadline_obj(deadline),
                                            PyLong_FromLongLong(version), sched_obj))
                # Keyspace._ext (DBSIZE's count of keys extended past their
                # bucket), as put keeps it: changes only when a key first
                # extends past its bucket or comes back into it.
                ob = sched >> BUCKET_SHIFT
                if ((deadline >> BUCKET_SHIFT) > ob) != ((d0 >> BUCKET_SHIFT) > ob):
                    if (d0 >> BUCKET_SHIFT) > ob:
                        ks._ext_drop(ob, key)
                    else:
                        ks._ext_add(ob, key)
                used += delta
                used_delta += delta
            else:
                if used_delta:
                    ks.used_bytes += used_delta
                    used_delta = 0
                if stamped:
                    hlc.last = hlc_last
                    stamped = False
                ks.put(key, value, deadline, None, now)
                used = ks.used_bytes
                version = PyLong_AsLongLong((<tuple>store[key])[2])
            if hooks:
                rep_off += 1
                if lo_unset:
                    client.repl_lo = rep_off
                    lo_unset = False
                client_off = rep_off
                if streaming:
                    # b"$%d\r\n%s\r\n$%d\r\n%s\r\n:%d\r\n$%d\r\n%s\r\n" % (klen, key, vlen, value, deadline, len(vb), vb)
                    ent.p = ent_stack
                    ent.n = 0
                    ent.cap = 512
                    ent.heap = False
                    try:
                        _put_bulk(&ent, <const char*>p + ks_, kn)
                        _put_bulk(&ent, <const char*>p + vs, vn)
                        _put(&ent, ":", 1)
                        _put_int(&ent, deadline)
                        _put(&ent, "\r\n$", 3)
                        _put_int(&ent, _digits(version))
                        _put(&ent, "\r\n", 2)
                        _put_int(&ent, version)
                        _put(&ent, "\r\n", 2)
                        if PyList_GET_SIZE(parts) == 0:
                            rep._first = rep_off
                        parts.append(PyBytes_FromStringAndSize(ent.p, ent.n))
                    finally:
                        if ent.heap:
                            free(ent.p)
                    rep_bytes += vn + kn
                    if not scheduled:
                        scheduled = True
                        rep._scheduled = True
                        rep.cluster.loop.call_soon(rep.flush)
                    elif rep_bytes > _FLUSH_BYTES or PyList_GET_SIZE(parts) >= _MAX_BATCH_ENTRIES:
                        rep._bytes = rep_bytes
                        rep.offset = rep_off
                        rep.flush()
                        parts = rep._parts
                        rep_bytes = rep._bytes
                        scheduled = rep._scheduled
            _put(&out, "+OK\r\n", 5)
            last_kind = 2
            ncmds += 1
            run_n += 1
            cmd_a = pos
            cmd_b = q
            pos = q

        if ncmds == 0:
            return data
        if run_n:
            _end_run(client, stats, run_kind, run_n, _c_perf_ns() - t_run,
                     watch_ns, data, cmd_a, cmd_b)
        # Write the counters back.
        if hits:
            ks.hits += hits
        if misses:
            ks.misses += misses
        if used_delta:
            ks.used_bytes += used_delta
        if stamped:
            hlc.last = hlc_last
        if hooks and rep_off:
            rep.offset = rep_off
            client.write_offset = client_off
            if streaming:
                rep._bytes = rep_bytes
        server.stat_commands += ncmds
        client.last_cmd = GET_CMD if last_kind == 1 else SET_CMD
        if client._push_buf:
            client._flush_pushes()       # pushes queued earlier go out first
        stats.net_out += out.n           # Client._write
        stats.writes += 1
        client.transport.write(PyBytes_FromStringAndSize(out.p, out.n))
    finally:
        if out.heap:
            free(out.p)
    if pos >= end:
        return None
    rest = data[pos:]
    if ncmds >= max_cmds or pos >= max_bytes:
        # This turn's budget is spent (connection.py, issue 7): the rest
        # waits in the parser for the next turn, as the Python path does.
        client.parser.buffer(rest)
        client._yield_turn()
        return None
    client._lane_ran = ncmds
    return rest


cdef inline long long _digits(long long v):
    cdef long long n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


# -- the replicated stream on the receiving peer (cluster/link.py) ----------------
#
# stream(link, data) mirrors Link.data_received -> FrameReader.feed ->
# Replicator.on_batch -> _apply -> apply_entries -> Keyspace.apply_remote ->
# Keyspace.put for the common case (lane.py, "The replicated stream").

# Must equal repram_resp.cluster.replicator's constants (tests/test_lane_stream.py checks).
RECORRECT_DELTA_US = 10_000
RECORRECT_MAX = 50_000
RECORRECT_WINDOW_S = 30.0
TTL_SLACK_MS = 1000
MIN_TTL_SLACK_MS = 250
cdef int HDR_MAX_DIGITS = 18      # longer numbers (legal for the Python path) go to it


cdef inline int _hdr(const unsigned char* p, Py_ssize_t i, Py_ssize_t end, unsigned char* kind,
                     long long* num, Py_ssize_t* after):
    """One header "<*$:><1-18 digits>\\r\\n" at i: 1 if it is one, 0 if the
    data ends inside it, -1 for anything else (a sign, a RESP3 type, too
    many digits: the Python path decides what that is)."""
    cdef Py_ssize_t j = i + 1, d0 = i + 1
    cdef long long n = 0
    if i >= end:
        return 0
    kind[0] = p[i]
    if p[i] != 42 and p[i] != 36 and p[i] != 58:    # * $ :
        return -1
    while j < end and 48 <= p[j] <= 57:
        if j - d0 >= HDR_MAX_DIGITS:
            return -1
        n = n * 10 + (p[j] - 48)
        j += 1
    if j >= end:
        return 0
    if j == d0 or p[j] != 13:
        return -1
    if j + 1 >= end:
        return 0
    if p[j + 1] != 10:
        return -1
    num[0] = n
    after[0] = j + 2
    return 1


cdef Py_ssize_t _scan(const unsigned char* p, Py_ssize_t i, Py_ssize_t end, long long* left,
                      long long max_el, long long max_len, Py_ssize_t* at):
    """Walk one flat frame from i, *left of its elements still to come (0: its
    header is next).  The frame's end once complete (*left = 0); -1 when the
    data ends first (*at: where to resume, *left kept); -2 for anything that
    is not a flat frame of bulks and integers within the reader's limits as
    the lane reads them."""
    cdef unsigned char kind = 0
    cdef long long num = 0
    cdef Py_ssize_t after = 0
    cdef int r
    if left[0] == 0:
        r = _hdr(p, i, end, &kind, &num, &after)
        if r <= 0:
            at[0] = i
            return -1 if r == 0 else -2
        if kind != 42 or num < 1 or num > max_el:
            return -2
        left[0] = num
        i = after
    while left[0] > 0:
        r = _hdr(p, i, end, &kind, &num, &after)
        if r == 0:
            at[0] = i
            return -1
        if r < 0:
            return -2
        if kind == 36:
            if num > max_len:
                return -2
            if end - after < num + 2:
                at[0] = i                  # the header is re-read then (<= 22 bytes)
                return -1
            if p[after + num] != 13 or p[after + num + 1] != 10:
                return -2
            i = after + num + 2
        elif kind == 58:
            i = after
        else:
            return -2
        left[0] -= 1
    return i


cdef inline Py_ssize_t _fbulk(const unsigned char* p, Py_ssize_t i, Py_ssize_t* s, Py_ssize_t* n):
    """A bulk at i of a frame _scan accepted; -1 if the element is not a bulk."""
    cdef unsigned char kind = 0
    cdef long long num = 0
    cdef Py_ssize_t after = 0
    _hdr(p, i, i + 24, &kind, &num, &after)
    if kind != 36:
        return -1
    s[0] = after
    n[0] = num
    return after + num + 2


cdef inline Py_ssize_t _fint(const unsigned char* p, Py_ssize_t i, long long* v):
    """An integer at i of a frame _scan accepted; -1 if it is not one."""
    cdef unsigned char kind = 0
    cdef Py_ssize_t after = 0
    _hdr(p, i, i + 24, &kind, v, &after)
    if kind != 58:
        return -1
    return after


# Prefetching a batch's store lookups (_b_frame).  A peer applies random keys
# of a big store: every lookup is a few dependent cache misses (the index
# slot, the entry, the key, then the value tuple and its ints), ~100 ns each
# here, and they were most of its CPU.  Walking the batch once per step --
# hash all keys, then prefetch every first index slot, then every entry,
# then keys and tuples, then the tuples' items -- issues the misses of
# hundreds of lookups at once instead of one after another; the lookups
# proper (PyDict_GetItem) then hit the cache.  This reads CPython's dict
# layout (3.11 and 3.12, the same there), only for addresses to prefetch:
# no result depends on it, and any other version skips the prefetch.
cdef extern from *:
    """
    #if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030D0000
    typedef struct { Py_hash_t me_hash; PyObject *me_key; PyObject *me_value; } repram_dentry;
    typedef struct {
        Py_ssize_t dk_refcnt; uint8_t dk_log2_size; uint8_t dk_log2_index_bytes; uint8_t dk_kind;
        uint32_t dk_version; Py_ssize_t dk_usable; Py_ssize_t dk_nentries; char dk_indices[];
    } repram_dkeys;
    typedef struct { PyObject_HEAD Py_ssize_t ma_used; uint64_t ma_version_tag;
                     repram_dkeys *ma_keys; void *ma_values; } repram_dict;
    static inline repram_dkeys* repram_dict_keys(PyObject *d) {
        repram_dict *o = (repram_dict *)d;
        /* a combined table of general (non-str) keys: what the store is */
        if (!PyDict_CheckExact(d) || o->ma_values != NULL || o->ma_keys->dk_kind != 0) return NULL;
        return o->ma_keys;
    }
    static inline size_t repram_dict_mask(repram_dkeys *k) { return ((size_t)1 << k->dk_log2_size) - 1; }
    /* The index slot a lookup of hash h probes after slot i (dictobject.c's first step). */
    static inline size_t repram_dict_next(repram_dkeys *k, Py_hash_t h, size_t i) {
        return (i * 5 + (((size_t)h) >> 5) + 1) & repram_dict_mask(k);
    }
    static inline const void* repram_dict_slot_at(repram_dkeys *k, size_t i) {
        return k->dk_indices + (i << (k->dk_log2_index_bytes - k->dk_log2_size));
    }
    /* The entry index slot i points to; NULL if it is empty or a dummy. */
    static inline repram_dentry* repram_dict_entry_at(repram_dkeys *k, size_t i) {
        Py_ssize_t ix;
        switch (k->dk_log2_index_bytes - k->dk_log2_size) {
            case 0: ix = ((const int8_t *)k->dk_indices)[i]; break;
            case 1: ix = ((const int16_t *)k->dk_indices)[i]; break;
            case 2: ix = ((const int32_t *)k->dk_indices)[i]; break;
            default: ix = ((const int64_t *)k->dk_indices)[i]; break;
        }
        if (ix < 0 || ix >= k->dk_nentries) return NULL;
        return (repram_dentry *)(k->dk_indices + ((size_t)1 << k->dk_log2_index_bytes)) + ix;
    }
    #else
    typedef struct { Py_hash_t me_hash; PyObject *me_key; PyObject *me_value; } repram_dentry;
    typedef struct { int unused; } repram_dkeys;
    static inline repram_dkeys* repram_dict_keys(PyObject *d) { return NULL; }
    static inline size_t repram_dict_mask(repram_dkeys *k) { return 0; }
    static inline size_t repram_dict_next(repram_dkeys *k, Py_hash_t h, size_t i) { return 0; }
    static inline const void* repram_dict_slot_at(repram_dkeys *k, size_t i) { return NULL; }
    static inline repram_dentry* repram_dict_entry_at(repram_dkeys *k, size_t i) { return NULL; }
    #endif
    """
    ctypedef struct repram_dentry:
        Py_hash_t me_hash
        PyObject* me_key
        PyObject* me_value
    ctypedef struct repram_dkeys:
        pass
    repram_dkeys* repram_dict_keys(PyObject* d)
    size_t repram_dict_mask(repram_dkeys* k)
    size_t repram_dict_next(repram_dkeys* k, Py_hash_t h, size_t i)
    const void* repram_dict_slot_at(repram_dkeys* k, size_t i)
    repram_dentry* repram_dict_entry_at(repram_dkeys* k, size_t i)
    void __builtin_prefetch(const void* p) nogil
    bint PyTuple_CheckExact(PyObject* o)
    Py_ssize_t PyTuple_GET_SIZE_RAW "PyTuple_GET_SIZE" (PyObject* o)
    PyObject* PyTuple_GET_ITEM_RAW "PyTuple_GET_ITEM" (PyObject* o, Py_ssize_t i)
    PyObject* PyList_GET_ITEM_RAW "PyList_GET_ITEM" (object l, Py_ssize_t i)

cdef enum:
    PREFETCH_MAX = 1024          # entries of a B frame whose lookups are prefetched


cdef int _prefetch_lookups(dict store, list keys, Py_ssize_t n) except -1:
    """Prefetch what looking up keys[:n] in store will read (see above)."""
    cdef repram_dkeys* dk = repram_dict_keys(<PyObject*>store)
    cdef Py_hash_t hs[PREFETCH_MAX]
    cdef repram_dentry* es[PREFETCH_MAX]
    cdef size_t nx[PREFETCH_MAX]           # first the slot probed first, then the second
    cdef size_t mask
    cdef Py_ssize_t j
    cdef repram_dentry* e
    cdef PyObject* t
    if dk == NULL:
        return 0
    mask = repram_dict_mask(dk)
    if n > PREFETCH_MAX:
        n = PREFETCH_MAX
    for j in range(n):
        hs[j] = hash(<object>PyList_GET_ITEM_RAW(keys, j))     # cached in the key, used by the lookup
        nx[j] = (<size_t>hs[j]) & mask
        __builtin_prefetch(repram_dict_slot_at(dk, nx[j]))
    for j in range(n):
        e = es[j] = repram_dict_entry_at(dk, nx[j])
        if e != NULL:
            __builtin_prefetch(e)
            # the next slot probed, in case this entry is another key's
            nx[j] = repram_dict_next(dk, hs[j], nx[j])
            __builtin_prefetch(repram_dict_slot_at(dk, nx[j]))
    for j in range(n):
        e = es[j]
        if e != NULL and e.me_hash != hs[j]:
            e = es[j] = repram_dict_entry_at(dk, nx[j])
            if e != NULL:
                __builtin_prefetch(e)
    for j in range(n):
        e = es[j]
        if e != NULL:
            __builtin_prefetch(e.me_key)
            __builtin_prefetch(<char*>e.me_key + 40)    # the key's bytes (objects are 16-aligned)
            __builtin_prefetch(e.me_value)
    for j in range(n):
        e = es[j]
        if e != NULL and e.me_hash == hs[j]:
            t = e.me_value
            if PyTuple_CheckExact(t) and PyTuple_GET_SIZE_RAW(t) == 4:
                __builtin_prefetch(PyTuple_GET_ITEM_RAW(t, 0))
                __builtin_prefetch(PyTuple_GET_ITEM_RAW(t, 1))
                __builtin_prefetch(PyTuple_GET_ITEM_RAW(t, 2))
                __builtin_prefetch(<char*>PyTuple_GET_ITEM_RAW(t, 2) + 24)   # its digits
    return 0


cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(object o)
    void PyTuple_SET_ITEM_RAW "PyTuple_SET_ITEM" (object t, Py_ssize_t i, PyObject* v)
    void Py_INCREF_RAW "Py_INCREF" (PyObject* o)
    void Py_DECREF_RAW "Py_DECREF" (PyObject* o)


cdef inline void _tuple_swap(object t, Py_ssize_t i, object v):
    """t[i] = v in place, for a tuple nothing else can see (see the caller)."""
    cdef PyObject* was = PyTuple_GET_ITEM_RAW(<PyObject*>t, i)
    Py_INCREF_RAW(<PyObject*>v)
    PyTuple_SET_ITEM_RAW(t, i, <PyObject*>v)
    Py_DECREF_RAW(was)


cdef inline int _cmp_tail(long long version, bytes value, long long deadline, object old) except -2:
    """(version, value, deadline) <= (old[2], old[0], old[1]) with the
    versions equal: the Python comparison itself (rare: a duplicate)."""
    return (version, value, deadline) <= (old[2], old[0], old[1])


cdef int _b_frame(object link, object server, const unsigned char* p, Py_ssize_t s,
                  Py_ssize_t e) except -1:
    """Apply the complete B frame p[s:e] as Replicator.on_batch would, if it
    is the common case; 1 if it did, 0 if the Python path must (nothing
    changed then)."""
    cdef Py_ssize_t i, ks_, kn, vs, vn, ts, tn, q, body
    cdef PyObject* fp
    cdef object old, old_value, sched_obj, key, value, entry
    cdef long long nel = 0, first = 0, sent = 0, d = 0, version, local, top = 0, total = 0
    cdef long long nent, now, adjust, min_ttl, max_ttl, max_bulk, max_remaining, min_origin_ttl
    cdef long long maxmem, used, ov, d0, sched, ob, applied = 0, fv
    cdef int overflow, j
    cdef unsigned char kind = 0
    cdef Py_ssize_t after = 0
    cdef PyObject* ep
    cdef bint trivial
    # "*N\r\n$1\r\nB\r\n"
    _hdr(p, s, e, &kind, &nel, &after)
    i = after
    if nel < 4 or (nel - 4) % 4 or e - i < 7 or p[i] != 36 or p[i + 1] != 49 or p[i + 2] != 13 \
            or p[i + 3] != 10 or p[i + 4] != 66 or p[i + 5] != 13 or p[i + 6] != 10:
        return 0
    nent = (nel - 4) // 4
    peer = link.peer
    cluster = link.cluster
    ck = link.clock
    delta_us = ck.delta_us
    if peer is None or peer.enclave != cluster.enclave or ck.adjust_ms is None or delta_us is None \
            or server.pubsub.wants("$"):
        return 0
    i = _fbulk(p, i + 7, &ks_, &kn)
    if i < 0:
        return 0
    origin = peer.node_id_bytes
    if PyBytes_GET_SIZE(origin) != kn or memcmp(PyBytes_AS_STRING(origin), p + ks_, kn) != 0:
        return 0                                    # MessageError (Python)
    i = _fint(p, i, &first)
    if i < 0:
        return 0
    i = _fint(p, i, &sent)
    if i < 0:
        return 0
    body = i
    cfg = server.config
    min_ttl = cfg.min_ttl_ms
    max_ttl = cfg.max_ttl_ms
    max_bulk = cfg.proto_max_bulk_bytes
    max_remaining = max_ttl + TTL_SLACK_MS
    min_origin_ttl = min_ttl - MIN_TTL_SLACK_MS
    adjust = ck.adjust_ms
    clock = server.clock
    now = _c_wall_ms() if clock is _wall_ms else clock()
    # Pass 1: every entry is one the lane applies (apply_entries' checks),
    # and the whole frame fits maxmemory even if every key were new.  (The
    # keys are made here already, for the prefetch below.)
    cdef list keys = []
    for j in range(nent):
        i = _fbulk(p, i, &ks_, &kn)
        if i < 0:
            return 0
        keys.append(PyBytes_FromStringAndSize(<const char*>p + ks_, kn))
        i = _fbulk(p, i, &vs, &vn)
        if i < 0:
            return 0
        i = _fint(p, i, &d)
        if i < 0:
            return 0
        q = _fbulk(p, i, &ts, &tn)              # the version: 1-18 digits
        if q < 0 or tn < 1 or tn > HDR_MAX_DIGITS:
            return 0
        version = 0
        for i in range(ts, ts + tn):
            if not 48 <= p[i] <= 57:
                return 0
            version = version * 10 + (p[i] - 48)
        i = q
        local = d + adjust
        if now > local:
            return 0                                # expired on arrival: a floor (Python)
        if local - now > max_remaining or d - sent < min_origin_ttl:
            return 0                                # refused: ttl
        if vn > max_bulk or kn > max_bulk:
            return 0                                # refused: size
        total += kn + vn + ENTRY_OVERHEAD
        if version > top:
            top = version
    ks = server.keyspace
    maxmem = ks.maxmemory_bytes
    if maxmem and ks.used_bytes + total > maxmem:
        return 0                                    # maybe an OOM refusal (Python)
    # Pass 2: apply (nothing below declines).
    store = ks.data
    floors = ks.floors
    watched = ks.on_write
    used = ks.used_bytes
    ledger = ks.ledger
    cdef Ledger cledger = ledger if type(ledger) is Ledger else None
    _prefetch_lookups(store, keys, nent)
    i = body
    for j in range(nent):
        i = _fbulk(p, i, &ks_, &kn)
        i = _fbulk(p, i, &vs, &vn)
        i = _fint(p, i, &d)
        q = _fbulk(p, i, &ts, &tn)
        version = 0
        for i in range(ts, ts + tn):
            version = version * 10 + (p[i] - 48)
        i = q
        local = d + adjust
        key = <object>PyList_GET_ITEM_RAW(keys, j)
        value = PyBytes_FromStringAndSize(<const char*>p + vs, vn)
        # Keyspace.apply_remote: last writer wins by (version, value, deadline).
        ep = PyDict_GetItem(store, key)
        trivial = False
        if ep != NULL:
            old = <object>ep
            if type(old) is not tuple or PyTuple_GET_SIZE(old) != 4:
                ks.used_bytes = used
                if ks.apply_remote(key, value, local, PyLong_FromLongLong(version), now):
                    applied += 1
                used = ks.used_bytes
                continue
            ov = PyLong_AsLongLongAndOverflow(<object>PyTuple_GET_ITEM(old, 2), &overflow)
            if overflow > 0 or version < ov:
                continue
            if version == ov and _cmp_tail(version, value, local, old):
                continue
            old_value = <object>PyTuple_GET_ITEM(old, 0)
            if type(old_value) is bytes:
                d0 = PyLong_AsLongLong(<object>PyTuple_GET_ITEM(old, 1))
                sched_obj = <object>PyTuple_GET_ITEM(old, 3)
                sched = PyLong_AsLongLong(sched_obj)
                trivial = not (now >= sched and now > d0) and local >= sched
                if trivial and watched is not None and key in watched:
                    trivial = False     # Keyspace.put runs the write hook (invalidation)
        elif floors:
            fp = PyDict_GetItem(floors, key)
            if fp != NULL and version <= <object>fp:
                continue
        if trivial:
            # Keyspace.put's overwrite of a live key that stays in its bucket.
            if ledger is not None:
                # Keyspace.put's note (cluster/ledger.py)
                if cledger is not None:
                    cledger._note(p + ks_, kn, <unsigned long long>ov, version, version)
                else:
                    ledger.note(key, ov, version, version)
            if Py_REFCNT(old) == 2:
                # Only the store and `old` hold the entry (a 4-tuple, checked
                # above): nothing can see it change, so its items are
                # replaced in place -- the state the store below would hold,
                # without a new tuple and a second lookup.
                _tuple_swap(old, 0, value)
                _tuple_swap(old, 1, _deadline_obj(local))
                _tuple_swap(old, 2, PyLong_FromLongLong(version))
            else:
                # (The tuple holds bytes and ints only, so it is untracked at
                # once, as the collector itself would on its first pass.)
                entry = (value, _deadline_obj(local), PyLong_FromLongLong(version), sched_obj)
                PyObject_GC_UnTrack(entry)
                PyDict_SetItem(store, key, entry)
            used += vn - PyBytes_GET_SIZE(old_value)
            ob = sched >> BUCKET_SHIFT
            if ((local >> BUCKET_SHIFT) > ob) != ((d0 >> BUCKET_SHIFT) > ob):
                if (d0 >> BUCKET_SHIFT) > ob:
                    ks._ext_drop(ob, key)
                else:
                    ks._ext_add(ob, key)
        else:
            ks.used_bytes = used
            ks.put(key, value, local, PyLong_FromLongLong(version), now)
            used = ks.used_bytes
        applied += 1
    ks.used_bytes = used
    # Replicator._apply and on_batch
    if top:
        server.hlc.observe(top)
    if applied and delta_us > RECORRECT_DELTA_US:
        _note_converted(link, p, body, nent)
    st = cluster.replicator.stats
    st["writes_received"] += nent
    st["writes_applied"] += applied
    st["batches_received"] += 1
    st["batches_lane"] += 1
    if sent > link.seen_upto_ms:
        link.seen_upto_ms = sent
    if nent:
        link.ack_due = first + nent - 1
    return 1


cdef int _note_converted(object link, const unsigned char* p, Py_ssize_t i, long long nent) except -1:
    """Replicator._note_converted: while the link's clock sample is poor,
    remember (key, version, sender deadline) of the frame's entries."""
    cdef Py_ssize_t ks_, kn, vs, vn, ts, tn
    cdef long long d = 0, room, j
    lst = link.converted
    if lst is None:
        if _monotonic() - link.created > RECORRECT_WINDOW_S:
            return 0
        lst = link.converted = []
        link.converted_adjust = link.clock.adjust_ms
    room = RECORRECT_MAX - len(lst)
    if room <= 0:
        return 0
    for j in range(min(nent, room)):
        i = _fbulk(p, i, &ks_, &kn)
        i = _fbulk(p, i, &vs, &vn)
        i = _fint(p, i, &d)
        i = _fbulk(p, i, &ts, &tn)
        lst.append((PyBytes_FromStringAndSize(<const char*>p + ks_, kn),
                    PyBytes_FromStringAndSize(<const char*>p + ts, tn), d))
    return 0


def stream(link, data):
    """Link.data_received's lane: run the frames of ``data`` (bytes), the
    common B frames here, every other complete frame through
    ``link._lane_frame`` (the Python path, one frame at a time); keep an
    incomplete last frame in ``link.lane_hold`` for the next read.  Returns
    what the Python reader must take from here on (it stays with it), or
    None.  The caller checked: ready, receiving side, the Python reader idle.

    As FrameReader.feed does, the whole read is checked before any frame of
    it runs: anything the lane does not read as flat frames within the limits
    hands all of it (with what it held) to the Python reader, and an
    incomplete frame past ``max_pending_bytes`` (counted as feed counts it)
    is the same MessageError."""
    cdef object buf
    cdef const unsigned char* p
    cdef Py_ssize_t n, pos, at, end, done, at0, tail_at
    cdef long long left, left0, pending, tail_left
    cdef bint completes = False
    reader = link.reader
    cdef long long max_el = reader.max_elements
    cdef long long max_len = reader.max_pending_bytes
    server = link.cluster.server
    hold = link.lane_hold
    if hold is not None:
        hold += data
        buf = hold
        p = <const unsigned char*>PyByteArray_AS_STRING(hold)
        n = PyByteArray_GET_SIZE(hold)
        at0 = link.lane_at
        left0 = link.lane_left
    else:
        buf = data
        p = <const unsigned char*>PyBytes_AS_STRING(data)
        n = PyBytes_GET_SIZE(data)
        at0 = 0
        left0 = 0
    # The check of the whole read (FrameReader._check, then feed's bound).
    at = at0
    left = left0
    done = 0
    while done < n:
        end = _scan(p, at, n, &left, max_el, max_len, &at)
        if end == -2:
            link.lane_hold = None           # the Python reader takes it all from here
            link.lane_pending = 0
            return bytes(buf) if hold is not None else data
        if end == -1:
            break
        completes = True
        done = at = end
        left = 0
    tail_at = at                 # where the incomplete last frame resumes
    tail_left = left
    if done < n:
        # feed's count: after a complete frame, the read's length if hiredis
        # kept bytes back (it consumes an element's type byte at once and the
        # rest once the element is whole), else 0
        if completes:
            pending = PyBytes_GET_SIZE(data) if n - tail_at > 1 else 0
        else:
            pending = (link.lane_pending if hold is not None else 0) + PyBytes_GET_SIZE(data)
        if pending > max_len:
            from .cluster.messages import MessageError
            raise MessageError("incomplete frame over %d bytes" % max_len)
    else:
        pending = 0
    # Run the complete frames.
    pos = 0
    at = at0
    left = left0
    while pos < done:
        end = _scan(p, at, n, &left, max_el, max_len, &at)
        if not _b_frame(link, server, p, pos, end):
            link._lane_frame(PyBytes_FromStringAndSize(<const char*>p + pos, end - pos))
            if link.state != "ready":
                link.lane_hold = None
                link.lane_pending = 0
                return None
        pos = at = end
        left = 0
    if done < n:
        # Keep the incomplete last frame (scanned up to tail_at, tail_left elements to come).
        if hold is None:
            link.lane_hold = bytearray(data[done:] if done else data)
        elif done:
            del hold[:done]
        link.lane_at = tail_at - done
        link.lane_left = tail_left
        link.lane_pending = pending
    else:
        link.lane_hold = None
        link.lane_pending = 0
    return None

