"""The cluster layer: nodes of an enclave replicate to each other as equals.

Modules:

* ``node``        -- ``Cluster``: this node in the enclave (listener, links,
  membership table, catch-up policy, housekeeping, INFO)
* ``messages``    -- frames on the wire, sans I/O
* ``auth``        -- challenge-response proofs (HMAC-SHA256)
* ``timesync``    -- clock offset per link, deadline conversion
* ``link``        -- one peer connection (asyncio Protocol)
* ``membership``  -- peers, seeds, failure-detection and backoff rules
* ``replicator``  -- the data path: write stream, acks, WAIT, catch-up
"""

from .node import Cluster, ClusterRefused

__all__ = ["Cluster", "ClusterRefused"]
