"""Who the peers are, whether they are alive, and when to dial them.

Rules:
* A peer is known by its node id.  Its *incarnation* is its run id (new for
  every process): a known id with a new run id is a restarted node, whose old
  links are closed and which is re-synchronised like a newcomer.
* Membership starts from the ``peers`` seeds (addresses, ids unknown until a
  handshake) and spreads by gossip: every node periodically sends ``NODES``
  (itself plus every peer it currently sees up or suspect, of every
  enclave) on each link, and a node dials every id it has not met.  Down
  peers are not gossiped, so a dead node is not resurrected by hearsay.
* Failure detection: any frame heard on any link of the peer counts.  State
  is ``up`` (a link is ready and the peer was heard within
  ``cluster-suspect-after-ms``), ``suspect`` (heard within
  ``cluster-down-after-ms``), else ``down``.  A dial refused outright
  (nothing listens: the process is gone) or a ``BYE`` makes it ``down`` at
  once.  Links of a peer silent past the down threshold are aborted, which
  also clears black-holed connections.
* Reconnection: exponential backoff from ``cluster-reconnect-min-ms`` to
  ``cluster-reconnect-max-ms`` with +-50 % jitter (so restarted clusters do
  not dial in lockstep); a down peer keeps being retried at the cap until
  ``cluster-forget-after-ms``.  Seeds are re-dialed every
  ``cluster-rebootstrap-interval-ms`` whenever no live peer answers at
  their address, so a healed partition rejoins without a restart.
"""

from __future__ import annotations

import random

UP, SUSPECT, DOWN, NEW = "up", "suspect", "down", "new"


class Peer:
    def __init__(self, node_id: str):
        self.node_id = node_id
        self.node_id_bytes = node_id.encode("utf-8", "surrogateescape")
        self.run_id = ""
        self.enclave = ""
        self.host = ""
        self.cport = 0
        self.client_port = 0
        self.http_port = 0           # its REPRAM HTTP API port, from the handshake (0 = none)
        self.out = None              # ready Link we dialed (our stream to it)
        self.inn = None              # ready Link it dialed (its stream to us)
        self.dialing = None          # Link in handshake / connect in progress
        self.state = NEW
        self.heard = 0.0             # monotonic; 0 = never
        self.fails = 0               # consecutive failed dials
        self.next_dial = 0.0         # monotonic
        self.dial_refused = False    # last dial: connection refused
        self.left = False            # said BYE
        self.state_since = 0.0
        # Receiving its stream: from which of its clock's ms we may be missing
        # its writes (None = stream up and caught up).
        self.gap_since_ms: int | None = None
        self.gap_covered = False
        self.seen_upto_ms = 0        # watermark carried over from its last link
        self.refused: dict = {}      # writes of ours it refused, by reason
        self.refused_from: dict = {}  # its writes we refused, by reason
        self.drops = 0               # dropped from streaming (queue limit)
        self.restarts = 0
        self.clock_refused = False   # its clock was beyond cluster-max-clock-skew-ms (last sample)

    @property
    def address(self) -> str:
        if not self.host:
            return "?"
        return ("[%s]:%d" % (self.host, self.cport)) if ":" in self.host else \
            "%s:%d" % (self.host, self.cport)

    def links(self):
        return [lk for lk in (self.out, self.inn, self.dialing) if lk is not None]


class Seed:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.node_id: str | None = None     # learned at handshake ("" = ourselves)
        self.dialing = False
        self.fails = 0
        self.next_dial = 0.0


def parse_address(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); ValueError if bad."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]:")
        if not sep:
            raise ValueError("'%s' is not [host]:port" % text)
    else:
        host, sep, rest = text.rpartition(":")
        if not sep:
            raise ValueError("'%s' is not host:port" % text)
    if not host or not rest.isdigit() or not 0 < int(rest) < 65536:
        raise ValueError("'%s' is not host:port" % text)
    return host, int(rest)


def peer_state(peer: Peer, now: float, suspect_s: float, down_s: float) -> str:
    """The state failure detection gives a peer at monotonic time ``now``."""
    age = now - peer.heard if peer.heard else float("inf")
    connected = peer.out is not None or peer.inn is not None
    if connected and age <= suspect_s:
        return UP
    if peer.left or (peer.dial_refused and not connected):
        return DOWN
    if age <= down_s:
        return SUSPECT
    return DOWN


def backoff_s(fails: int, min_ms: int, max_ms: int, rng=random) -> float:
    """Delay before the next dial after ``fails`` consecutive failures."""
    base = min(max_ms, min_ms * (2 ** min(fails, 20)))
    return base * rng.uniform(0.5, 1.5) / 1000.0
