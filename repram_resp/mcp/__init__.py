"""MCP server with REPRAM's four tools (optional extra ``[mcp]``).

* ``server.py``   -- the tools on the ``mcp`` SDK's MCPServer, and the
  ``repram-resp-mcp`` command line (embedded node, or ``--url``);
* ``backends.py`` -- the same operations over the embedded node, RESP or HTTP.
"""
