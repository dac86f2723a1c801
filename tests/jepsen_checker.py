"""A checker over a recorded history of a replicated REPRAM run (Jepsen style).

Pure: a list of event dicts in, a ``Report`` out.  Times are milliseconds on
one monotonic clock (the test's).  Events:

* ``{"kind": "write", "key", "value", "node", "ttl", "t0", "t1", "status", "acks"}``
  -- ``status`` "ok" (the node said OK), "fail" (it said an error) or
  "unknown" (timeout / connection lost: it may or may not have happened);
  ``acks`` is WAIT's reply if one followed, else None.  Values are unique
  per write.
* ``{"kind": "read", "key", "node", "t0", "t1", "status", "value"}``
* ``{"kind": "fault", "fault", "t0", "t1", "down": [nodes]}`` -- ``t1`` is the
  heal; ``down`` lists nodes that could not serve during [t0, t1] (stopped,
  killed until restarted).
* ``{"kind": "kill", "node", "t"}``
* ``{"kind": "sweep", "heal", "t0", "t1", "values": {key: [value per node]}}``
  -- a read of every key on every node (all answered) while the workload is
  paused after the heal of fault number ``heal``.

What is checked (``tol`` = how far apart two writes must be to be ordered by
the test's clock despite node clock offsets; ``eps`` = deadline slack):

* ``past_deadline``: a read returned a write's value after that write's
  deadline (``t1 + ttl + eps``).
* ``phantom``: a read returned a value nobody wrote.
* ``regression``: a node returned value A after it had returned B, where A's
  write completed more than ``tol`` before B's began -- unless B may have been
  lost legitimately (not WAIT-acknowledged, and its node or B's origin was
  killed in between).
* ``resurrection``: a key read as nil on every node in a sweep later returned
  a value written before that sweep.
* ``not_converged``: after a heal, no sweep within ``bound_ms`` found every
  node agreeing on every key (keys whose deadline falls within ``eps_stable``
  of the sweep are ignored: they are expiring while we look).
* ``wrong_agreement`` / ``lost_ack``: the agreed value is not one of the
  *last* writes (those no other OK write definitely follows), or the agreed
  nil hides a last write that is certainly still alive and was
  WAIT-acknowledged; ``lost_ack`` when an acknowledged last write is the one
  missing.
* ``unavailable``: an operation failed on a node that was not down.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field


@dataclass
class Report:
    violations: dict = field(default_factory=dict)     # kind -> [description]
    agreement_ms: list = field(default_factory=list)   # per heal: ms to agreement (None: never)
    counts: dict = field(default_factory=dict)

    def add(self, kind: str, what: str) -> None:
        self.violations.setdefault(kind, []).append(what)

    def count(self, kind: str) -> int:
        return len(self.violations.get(kind, ()))

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self) -> str:
        parts = ["%s=%d" % (k, len(v)) for k, v in sorted(self.violations.items())]
        agreed = [a for a in self.agreement_ms if a is not None]
        return "%s; %s; max agreement %s ms over %d heals" % (
            ", ".join(parts) or "no violations",
            ", ".join("%s=%d" % kv for kv in sorted(self.counts.items())),
            "%.0f" % max(agreed) if agreed else "-", len(self.agreement_ms))


def check(events: list, tol_ms: float = 50.0, eps_ms: float = 10.0, bound_ms: float = 5000.0,
          eps_stable_ms: float = 150.0, conversion_ms: float = 50.0) -> Report:
    rep = Report()
    writes = [e for e in events if e["kind"] == "write"]
    reads = [e for e in events if e["kind"] == "read"]
    faults = [e for e in events if e["kind"] == "fault"]
    kills = [e for e in events if e["kind"] == "kill"]
    sweeps = [e for e in events if e["kind"] == "sweep"]
    by_value = {w["value"]: w for w in writes}
    rep.counts = {"writes": len(writes), "reads": len(reads), "faults": len(faults),
                  "sweeps": len(sweeps),
                  "acked": sum(1 for w in writes if (w.get("acks") or 0) >= 1)}
    by_key: dict = {}
    for w in writes:
        if w["status"] != "fail":
            by_key.setdefault(w["key"], []).append(w)

    def before(a, b) -> bool:
        """a certainly happened before b, whatever the node clocks."""
        return a["t1"] + tol_ms < b["t0"]

    def killed_between(nodes, t0, t1) -> bool:
        return any(k["node"] in nodes and t0 <= k["t"] <= t1 for k in kills)

    # -- per read ----------------------------------------------------------
    for r in reads:
        if r["status"] != "ok" or r["value"] is None:
            continue
        w = by_value.get(r["value"])
        if w is None or w["key"] != r["key"]:
            rep.add("phantom", "%s read %r on %s" % (r["key"], r["value"], r["node"]))
            continue
        if r["t0"] > w["t1"] + w["ttl"] + eps_ms:
            rep.add("past_deadline", "%s=%r on %s %.0f ms after its deadline" % (
                r["key"], r["value"], r["node"], r["t0"] - w["t1"] - w["ttl"]))

    # -- regression: per node and key, in time order -------------------------
    series: dict = {}
    for r in reads:
        if r["status"] == "ok" and r["value"] is not None and r["value"] in by_value:
            series.setdefault((r["node"], r["key"]), []).append(r)
    for (node, key), rs in series.items():
        rs.sort(key=lambda r: r["t0"])
        # The best witness against a read of write w is the latest-starting
        # write this node returned before: before(w, B) <=> w.t1 + tol < B.t0.
        best = best_read = None
        for r in rs:
            w = by_value[r["value"]]
            if best is not None and best_read["t1"] < r["t0"] and before(w, best):
                excused = (best.get("acks") or 0) < 1 and killed_between(
                    {node, best["node"]}, best["t0"], r["t0"])
                if not excused:
                    rep.add("regression", "%s on %s: %r after %r" % (key, node, r["value"],
                                                                     best["value"]))
            if best is None or w["t0"] > best["t0"]:
                best, best_read = w, r

    # -- sweeps ---------------------------------------------------------------
    read_times: dict = {}
    for r in reads:
        if r["status"] == "ok" and r["value"] is not None:
            read_times.setdefault(r["key"], []).append(r)
    for lst in read_times.values():
        lst.sort(key=lambda r: r["t0"])
    for s in sweeps:
        for key, vals in s["values"].items():
            if vals and all(v is None for v in vals):
                lst = read_times.get(key, [])
                i = bisect_left([r["t0"] for r in lst], s["t1"])
                for r in lst[i:]:
                    w = by_value.get(r["value"])
                    if w is not None and w["t1"] < s["t0"]:
                        rep.add("resurrection", "%s=%r on %s after it was nil everywhere" % (
                            key, r["value"], r["node"]))
                        break

    heals = sorted({s["heal"] for s in sweeps if s["heal"] is not None})
    heal_time = {i: f["t1"] for i, f in enumerate(faults)}
    for h in heals:
        mine = sorted((s for s in sweeps if s["heal"] == h), key=lambda s: s["t0"])
        t_heal = heal_time.get(h, mine[0]["t0"])
        agreed = None
        for s in mine:
            if s["t1"] - t_heal > bound_ms:
                break
            if _agrees(s, by_key, eps_stable_ms):
                agreed = s
                break
        if agreed is None:
            rep.agreement_ms.append(None)
            last = mine[-1] if mine else None
            rep.add("not_converged", "heal %d: no agreement within %.0f ms%s" % (
                h, bound_ms, "" if last is None else " (e.g. %s)" % _disagreeing(last, by_key, eps_stable_ms)))
            continue
        rep.agreement_ms.append(max(0.0, agreed["t1"] - t_heal))
        _check_agreed(rep, agreed, by_key, before, eps_stable_ms, conversion_ms)

    # -- availability --------------------------------------------------------
    down: dict = {}
    for f in faults:
        for n in f.get("down", ()):
            down.setdefault(n, []).append((f["t0"], f["t1"]))
    for e in reads + writes:
        if e["status"] == "ok":
            continue
        spans = down.get(e["node"], ())
        if not any(a - 50 <= e["t1"] and e["t0"] <= b + 2000 for a, b in spans):
            rep.add("unavailable", "%s %s on %s failed (%s)" % (
                e["kind"], e["key"], e["node"], e.get("error", e["status"])))
    return rep


def _stable(key, s, by_key, eps):
    for w in by_key.get(key, ()):
        lo, hi = w["t0"] + w["ttl"] - eps, w["t1"] + w["ttl"] + eps
        if lo <= s["t1"] and s["t0"] <= hi:
            return False
    return True


def _agrees(s, by_key, eps) -> bool:
    for key, vals in s["values"].items():
        if len(set(vals)) > 1 and _stable(key, s, by_key, eps):
            return False
    return True


def _disagreeing(s, by_key, eps) -> str:
    for key, vals in s["values"].items():
        if len(set(vals)) > 1 and _stable(key, s, by_key, eps):
            return "%s=%r" % (key, vals)
    return "-"


def _check_agreed(rep, s, by_key, before, eps, conversion_ms) -> None:
    for key, vals in s["values"].items():
        if not _stable(key, s, by_key, eps):
            continue
        v = vals[0]
        ws = [w for w in by_key.get(key, ()) if w["t0"] <= s["t0"]]
        oks = [w for w in ws if w["status"] == "ok"]
        last = [w for w in ws if not any(before(w, o) for o in oks)]
        if v is not None:
            if not any(w["value"] == v for w in last):
                acked = [w for w in last if (w.get("acks") or 0) >= 1
                         and w["t0"] + w["ttl"] - conversion_ms > s["t1"]]
                rep.add("lost_ack" if acked else "wrong_agreement",
                        "%s agreed on %r, last writes %r" % (key, v, [w["value"] for w in last]))
            continue
        if last and all(w["t0"] + w["ttl"] - conversion_ms > s["t1"] for w in last) and any(
                (w.get("acks") or 0) >= 1 for w in last):
            rep.add("lost_ack", "%s agreed on nil, last writes %r still alive" % (
                key, [w["value"] for w in last]))
