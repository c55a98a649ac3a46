"""The shared MCP server's parts alone: its clients' tokens, and the limits of each client and the server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from image_tool import ConfigurationError
from image_tool._mcp.limits import Gate, LimitReachedError, Limits
from image_tool._mcp.tokens import ClientTokens, read_tokens

ALICE, BOB = "a" * 20 + "-alice-token", "b" * 20 + "-bob-token"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_name_their_client_and_nothing_else_passes() -> None:
    tokens = ClientTokens({"alice": ALICE, "bob": BOB})
    assert tokens.client_of(ALICE) == "alice" and tokens.client_of(BOB) == "bob"
    for wrong in ("", ALICE[:-1], ALICE + "x", BOB.upper(), "\udcff"):
        assert tokens.client_of(wrong) is None


def test_tokens_are_the_mcp_sdks_token_verifier() -> None:
    pytest.importorskip("mcp", reason="the MCP SDK comes with the mcp extra (the dev group)")
    tokens = ClientTokens({"alice": ALICE, "bob": BOB})
    verified = asyncio.run(tokens.verify_token(BOB))
    assert verified is not None and verified.client_id == "bob"
    assert asyncio.run(tokens.verify_token("nope")) is None


def test_tokens_come_from_a_file_or_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"alice": ALICE}))
    assert read_tokens(path, {}) == {"alice": ALICE}
    assert read_tokens(None, {"IMAGE_TOOL_MCP_TOKENS": json.dumps({"bob": BOB})}) == {"bob": BOB}


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        (None, "needs client tokens"),
        ("not json", "JSON object of client name -> token"),
        ("{}", "JSON object of client name -> token"),
        (json.dumps({"alice": "short"}), "16 characters or more"),
        (json.dumps({"alice": 12345678901234567890}), "16 characters or more"),
        (json.dumps({"bad name!": ALICE}), "client names are"),
        (json.dumps({"alice": ALICE, "bob": ALICE}), "share a token"),
    ],
)
def test_bad_tokens_fail_at_start_naming_the_fix_and_no_token(text: str | None, fix: str) -> None:
    environ = {} if text is None else {"IMAGE_TOOL_MCP_TOKENS": text}
    with pytest.raises(ConfigurationError, match=fix) as raised:
        read_tokens(None, environ)
    assert ALICE not in str(raised.value)


def test_calls_at_once_per_client_and_for_the_server() -> None:
    gate = Gate(Limits(calls_at_once=2), Limits(calls_at_once=3))
    first, second = gate.admit("alice", 1), gate.admit("alice", 1)
    with pytest.raises(LimitReachedError, match="This client already has 2"):
        gate.admit("alice", 1)
    third = gate.admit("bob", 1)
    with pytest.raises(LimitReachedError, match="The server already has 3"):
        gate.admit("carol", 1)
    first.leave()
    gate.admit("carol", 1)
    second.leave()
    third.leave()
    assert gate.report("alice")["calls_running"] == 0


def test_images_per_minute_slide_and_count_what_was_drawn() -> None:
    clock = Clock()
    gate = Gate(Limits(images_per_minute=4), Limits(images_per_minute=6), clock)
    with gate.admit("alice", 4) as admitted:
        admitted.settle(3)  # the relay drew 3 of the 4 reserved
    with pytest.raises(LimitReachedError, match="may draw at most 4 image"):
        gate.admit("alice", 5)
    with pytest.raises(LimitReachedError, match=r"has drawn 3 image.* Wait 60 seconds"):
        gate.admit("alice", 2)
    gate.admit("alice", 1).leave()
    gate.admit("bob", 2).leave()
    with pytest.raises(LimitReachedError, match="The server has drawn 6"):
        gate.admit("bob", 1)
    clock.now += 30
    with pytest.raises(LimitReachedError, match="Wait 30 seconds"):
        gate.admit("alice", 1)
    clock.now += 30.5
    assert gate.report("alice")["images_last_minute"] == 0
    gate.admit("alice", 4).leave()
