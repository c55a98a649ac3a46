"""Tests over loopback: FakeRelay, raw hostile servers, cassettes, the CLI and MCP processes,
the LiteLLM proxy."""
