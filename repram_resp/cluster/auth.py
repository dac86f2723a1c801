"""Peer authentication: mutual challenge-response over a shared secret.

Each side of a new link sends a fresh random nonce (16 bytes from
``os.urandom``) and proves it knows ``cluster-secret`` by returning
HMAC-SHA256(secret, transcript), where the transcript binds:

* a role label (``acceptor`` / ``dialer``), so one side's proof can never be
  reflected back as the other's;
* both nonces, so a proof is only good for this one handshake: a recorded
  handshake replayed later meets a different nonce and fails;
* both node ids and both enclaves, so they cannot be swapped in flight.

Proofs are compared with ``hmac.compare_digest``.  Without a secret the proof
is empty and any peer is accepted (loopback or ``cluster-trusted-network``).
What this does not give: integrity of the frames after the handshake against
an attacker on the path -- that is what ``tls-cluster`` is for.
"""

from __future__ import annotations

import hashlib
import hmac
import os

NONCE_BYTES = 16
_LABEL = b"repram-cluster-v1"


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)


def _transcript(role: bytes, dialer_nonce: bytes, acceptor_nonce: bytes, dialer_id: str,
                acceptor_id: str, dialer_enclave: str, acceptor_enclave: str) -> bytes:
    parts = [_LABEL, role, dialer_nonce, acceptor_nonce]
    parts += [s.encode("utf-8", "surrogateescape") for s in
              (dialer_id, acceptor_id, dialer_enclave, acceptor_enclave)]
    # Length-prefix every part so that no two transcripts share an encoding.
    return b"".join(b"%d:%s" % (len(p), p) for p in parts)


def proof(secret: str, role: str, dialer_nonce: bytes, acceptor_nonce: bytes, dialer_id: str,
          acceptor_id: str, dialer_enclave: str, acceptor_enclave: str) -> bytes:
    """The proof one side sends ('' secret -> b'')."""
    if not secret:
        return b""
    msg = _transcript(role.encode(), dialer_nonce, acceptor_nonce, dialer_id, acceptor_id,
                      dialer_enclave, acceptor_enclave)
    return hmac.new(secret.encode("utf-8", "surrogateescape"), msg, hashlib.sha256).digest()


def verify(secret: str, got: bytes, role: str, dialer_nonce: bytes, acceptor_nonce: bytes,
           dialer_id: str, acceptor_id: str, dialer_enclave: str, acceptor_enclave: str) -> bool:
    """True if ``got`` is the right proof, or if we have no secret."""
    if not secret:
        return True
    want = proof(secret, role, dialer_nonce, acceptor_nonce, dialer_id, acceptor_id,
                 dialer_enclave, acceptor_enclave)
    return hmac.compare_digest(want, got)
