"""REPRAM's HTTP API beside RESP, on the same keyspace and loop (``http-port``).

* ``wire.py``     -- sans-I/O requests/responses around httptools, with the limits;
* ``protocol.py`` -- the asyncio Protocol per connection and the listener;
* ``api.py``      -- REPRAM's endpoints (reference/repram-http-and-mcp.md §2);
* ``metrics.py``  -- ``/v1/metrics`` in Prometheus text format.
"""
