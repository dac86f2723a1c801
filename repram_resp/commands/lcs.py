"""LCS: the longest common subsequence of two values, with a work budget.

The answer is Redis 7's (t_string.c ``lcsCommand``) byte for byte: the same
dynamic-programming table of (len(a)+1) x (len(b)+1) lengths, the same
backtracking (ties go to b), the same ranges for ``IDX`` (longest-first, a
range cut at a non-contiguous match, ``MINMATCHLEN`` filter), the same
replies and errors.  Two things are REPRAM's:

* **Memory bound.**  The table holds 4 bytes per cell (``array('I')`` rows,
  Redis's ``uint32_t``); a table above ``lcs-max-table-memory`` bytes is
  refused before anything is allocated (Redis bounds it by
  ``proto-max-bulk-len`` and answers the same way).
* **Work budget.**  Filling the table costs one step per cell, so a big LCS
  does not run in one event-loop turn: at most ``lcs-turn-max-cells`` cells
  (a long row is cut in pieces; backtracking steps count the same) are done
  per turn, then the work yields to
  the loop (``call_soon``) and other clients are served in between.  The
  client waits for its reply as for any blocking command (its later commands
  run after it).  The values are the ones read when the command started.
  Inside MULTI/EXEC nothing may wait, so there an LCS larger than one turn's
  budget is refused with a reason instead.
"""

from __future__ import annotations

import asyncio
from array import array

from .. import errors
from ..protocol import bulk, integer, parse_ll
from . import command


class _Opts:
    __slots__ = ("getlen", "getidx", "withmatchlen", "minmatchlen")


def _parse(client, argv):
    o = _Opts()
    o.getlen = o.getidx = o.withmatchlen = False
    o.minmatchlen = 0
    j, n = 3, len(argv)
    while j < n:
        opt = argv[j].upper()
        if opt == b"IDX":
            o.getidx = True
        elif opt == b"LEN":
            o.getlen = True
        elif opt == b"WITHMATCHLEN":
            o.withmatchlen = True
        elif opt == b"MINMATCHLEN" and j + 1 < n:
            v = parse_ll(argv[j + 1])
            if v is None:
                return client.error(errors.NOT_INTEGER)
            o.minmatchlen = max(v, 0)
            j += 1
        else:
            return client.error(errors.SYNTAX)
        j += 1
    if o.getidx and o.getlen:
        return client.error(errors.LCS_LEN_AND_IDX)
    return o


def _work(a: bytes, b: bytes, o: _Opts, out: list, chunk: int = 8192):
    """The computation as a generator: it yields the work done (cells or
    steps) since its last yield, and leaves the reply's parts in out."""
    alen, blen = len(a), len(b)
    keep = o.getidx or not o.getlen       # LEN alone needs no table to walk back
    rows = [array("I", bytes(4 * (blen + 1)))]
    prev = [0] * (blen + 1)
    for i in range(1, alen + 1):
        ai = a[i - 1]
        cur = [0]
        append = cur.append
        left = 0
        for lo in range(1, blen + 1, chunk):     # a long row yields part way
            hi = min(lo + chunk, blen + 1)
            for j in range(lo, hi):
                if b[j - 1] == ai:
                    left = prev[j - 1] + 1
                else:
                    up = prev[j]
                    if up > left:
                        left = up
                append(left)
            yield hi - lo
        if keep:
            rows.append(array("I", cur))
        prev = cur
    total = prev[blen]
    if not keep:
        out.append(total)
        return
    result = bytearray(total)
    idx = total
    ranges = []
    ars, are, brs, bre = alen, 0, 0, 0       # ars == alen: no range open
    i, j = alen, blen
    steps = 0
    while i > 0 and j > 0:
        emit = False
        if a[i - 1] == b[j - 1]:
            result[idx - 1] = a[i - 1]
            if ars == alen:
                ars = are = i - 1
                brs = bre = j - 1
            elif ars == i and brs == j:
                ars -= 1
                brs -= 1
            else:
                emit = True
            if ars == 0 or brs == 0:
                emit = True
            idx -= 1
            i -= 1
            j -= 1
        else:
            if rows[i - 1][j] > rows[i][j - 1]:
                i -= 1
            else:
                j -= 1
            if ars != alen:
                emit = True
        if emit:
            mlen = are - ars + 1
            if o.minmatchlen == 0 or mlen >= o.minmatchlen:
                ranges.append((ars, are, brs, bre, mlen))
            ars = alen
        steps += 1
        if steps >= chunk:
            yield steps
            steps = 0
    out.append((total, bytes(result), ranges))


def _reply(client, o: _Opts, res) -> bytes:
    enc = client.enc
    if o.getlen and not o.getidx:
        return integer(res)
    total, text, ranges = res
    if not o.getidx:
        return bulk(text)
    matches = []
    for ars, are, brs, bre, mlen in ranges:
        item = [enc.array([integer(ars), integer(are)]), enc.array([integer(brs), integer(bre)])]
        if o.withmatchlen:
            item.append(integer(mlen))
        matches.append(enc.array(item))
    return enc.map([(bulk(b"matches"), enc.array(matches)), (bulk(b"len"), integer(total))])


@command("lcs", -3, "readonly", (1, 2, 1), group="string",
         summary="Longest common subsequence of two values", since="7.0.0")
def cmd_lcs(client, argv):
    o = _parse(client, argv)
    if o.__class__ is not _Opts:
        return o
    server = client.server
    ks, now = server.keyspace, server.now
    a = ks.get(argv[1], now) or b""
    b = ks.get(argv[2], now) or b""
    cfg = server.config
    cells = (len(a) + 1) * (len(b) + 1)
    if cells * 4 > cfg.lcs_max_table_bytes:
        return client.error(errors.LCS_TOO_BIG % (cells * 4, cfg.lcs_max_table_bytes))
    budget = cfg.lcs_turn_max_cells
    out: list = []
    gen = _work(a, b, o, out, max(1, min(budget, 8192)))
    done = 0
    for w in gen:
        done += w
        if done >= budget:
            break
    else:
        return _reply(client, o, out[0])
    if client.in_exec:
        gen.close()
        return client.error(errors.LCS_IN_MULTI % budget)
    # The rest runs on later loop turns, budget by budget.
    loop = asyncio.get_running_loop()
    fut = loop.create_future()

    def step():
        if fut.done():          # the client went away (its future was cancelled)
            gen.close()
            return
        spent = 0
        try:
            for w in gen:
                spent += w
                if spent >= budget:
                    loop.call_soon(step)
                    return
        except Exception as exc:    # a bug: the blocking machinery logs it
            fut.set_exception(exc)
            return
        fut.set_result(_reply(client, o, out[0]))

    loop.call_soon(step)
    return fut
