# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Small compiled helpers (issue 7); the contract is in native.py.

* ``Glob``: Redis's ``stringmatchlen`` (src/util.c, 7.0.15 with its
  CVE-2022-36021 ``skipLongerMatches`` and CVE-2024-31228 nesting cap),
  ported statement for statement.  Nothing is compiled: a pattern of any
  length costs O(1) to "compile" and each match is the C loop Redis runs.
  Like Redis it reads the byte after the end of the pattern and of the key:
  both are ``bytes``, whose buffer CPython always ends with a NUL, exactly
  as an sds string is.
* ``Bulk``: a ``bytes`` object of a known size filled in place as a large
  bulk arrives, so it becomes an argument without a second full copy.  The
  object is never visible to other code until it is full.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_XDECREF
from libc.string cimport memcpy


cdef inline int _lower(int c) noexcept nogil:
    # tolower() in the C locale (what Redis runs in): ASCII letters only.
    if 65 <= c <= 90:
        return c + 32
    return c


cdef int _match(const char* pattern, Py_ssize_t patternLen,
                const char* string, Py_ssize_t stringLen,
                bint nocase, int* skipLonger, int nesting) noexcept nogil:
    cdef int match, negate, start, end, c, t
    if nesting > 1000:
        return 0
    while patternLen and stringLen:
        if pattern[0] == b'*':
            while patternLen and pattern[1] == b'*':
                pattern += 1
                patternLen -= 1
            if patternLen == 1:
                return 1
            while stringLen:
                if _match(pattern + 1, patternLen - 1, string, stringLen, nocase,
                          skipLonger, nesting + 1):
                    return 1
                if skipLonger[0]:
                    return 0
                string += 1
                stringLen -= 1
            skipLonger[0] = 1
            return 0
        elif pattern[0] == b'?':
            string += 1
            stringLen -= 1
        elif pattern[0] == b'[':
            pattern += 1
            patternLen -= 1
            negate = pattern[0] == b'^'
            if negate:
                pattern += 1
                patternLen -= 1
            match = 0
            while True:
                if pattern[0] == b'\\' and patternLen >= 2:
                    pattern += 1
                    patternLen -= 1
                    if pattern[0] == string[0]:
                        match = 1
                elif pattern[0] == b']':
                    break
                elif patternLen == 0:
                    pattern -= 1
                    patternLen += 1
                    break
                elif patternLen >= 3 and pattern[1] == b'-':
                    start = pattern[0]
                    end = pattern[2]
                    c = string[0]
                    if start > end:
                        t = start
                        start = end
                        end = t
                    if nocase:
                        start = _lower(start)
                        end = _lower(end)
                        c = _lower(c)
                    pattern += 2
                    patternLen -= 2
                    if start <= c <= end:
                        match = 1
                elif not nocase:
                    if pattern[0] == string[0]:
                        match = 1
                elif _lower(pattern[0]) == _lower(string[0]):
                    match = 1
                pattern += 1
                patternLen -= 1
            if negate:
                match = not match
            if not match:
                return 0
            string += 1
            stringLen -= 1
        else:
            if pattern[0] == b'\\' and patternLen >= 2:
                pattern += 1
                patternLen -= 1
            if not nocase:
                if pattern[0] != string[0]:
                    return 0
            elif _lower(pattern[0]) != _lower(string[0]):
                return 0
            string += 1
            stringLen -= 1
        pattern += 1
        patternLen -= 1
        if stringLen == 0:
            while pattern[0] == b'*':
                pattern += 1
                patternLen -= 1
            break
    if patternLen == 0 and stringLen == 0:
        return 1
    return 0


cdef class Glob:
    """``Glob(pattern, nocase)(key) -> bool``, Redis's stringmatchlen."""

    cdef bytes pattern
    cdef bint nocase

    def __cinit__(self, bytes pattern not None, bint nocase=False):
        self.pattern = pattern
        self.nocase = nocase

    def __call__(self, key):
        cdef bytes k = key if type(key) is bytes else bytes(key)
        cdef int skip = 0
        cdef const char* p = PyBytes_AS_STRING(self.pattern)
        cdef Py_ssize_t pn = PyBytes_GET_SIZE(self.pattern)
        cdef const char* s = PyBytes_AS_STRING(k)
        cdef Py_ssize_t sn = PyBytes_GET_SIZE(k)
        cdef int r
        with nogil:
            r = _match(p, pn, s, sn, self.nocase, &skip, 0)
        return r == 1


cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject** string, Py_ssize_t newsize) except -1

# First capacity of a Bulk; it doubles (realloc: for large blocks glibc moves
# pages with mremap, no copy) up to the announced size.
cdef Py_ssize_t BULK_FIRST_CAPACITY = 1 << 20


cdef class Bulk:
    """A bulk of ``size`` bytes received in pieces into the ``bytes`` object
    that ``finish()`` hands out -- no second full copy.  Capacity grows with
    what arrived (at most 2x of it, never more than ``size``), so a header
    announcing 1 GiB allocates nothing until its bytes come.  The object has
    one reference (ours) until finish(): it is never visible half-filled."""

    cdef PyObject* obj
    cdef readonly Py_ssize_t size, filled
    cdef Py_ssize_t cap

    def __cinit__(self, Py_ssize_t size):
        if size < 2:
            raise ValueError("Bulk needs size >= 2")
        self.obj = NULL
        self.size = size
        self.filled = 0
        self.cap = 0

    def __dealloc__(self):
        Py_XDECREF(self.obj)
        self.obj = NULL

    cdef int _reserve(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self.cap * 2 if self.cap else BULK_FIRST_CAPACITY
        while cap < need:
            cap *= 2
        if cap > self.size:
            cap = self.size
        if self.obj == NULL:
            o = PyBytes_FromStringAndSize(NULL, cap)
            Py_INCREF(o)
            self.obj = <PyObject*>o
        else:
            _PyBytes_Resize(&self.obj, cap)     # on failure: freed, NULL, MemoryError
        self.cap = cap
        return 0

    def fill(self, src, Py_ssize_t start, Py_ssize_t length):
        """Append src[start:start + length] (any buffer)."""
        cdef Py_buffer view
        if start < 0 or length < 0 or self.filled + length > self.size:
            raise ValueError("Bulk.fill out of range")
        if length == 0:
            return
        PyObject_GetBuffer(src, &view, PyBUF_SIMPLE)
        try:
            if start + length > view.len:
                raise ValueError("Bulk.fill source too short")
            if self.filled + length > self.cap:
                self._reserve(self.filled + length)
            memcpy(PyBytes_AS_STRING(<object>self.obj) + self.filled,
                   <const char*>view.buf + start, length)
            self.filled += length
        finally:
            PyBuffer_Release(&view)

    def finish(self):
        """The complete bytes (once every byte arrived); the Bulk is spent."""
        if self.filled != self.size or self.obj == NULL:
            raise ValueError("Bulk.finish before it is full")
        o = <object>self.obj
        Py_DECREF(o)        # our reference passes to the caller's
        self.obj = NULL
        return o
