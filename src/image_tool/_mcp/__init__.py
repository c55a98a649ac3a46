"""The MCP server's rooms beside ``mcp_server.py``: its clients' tokens, their limits, the HTTP app."""
