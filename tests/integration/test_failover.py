"""Several relays behind one client: when the next is tried, when never, resting a failed relay,
which relay answered and what it cost; from code and from the environment; the tool's spending
limit."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from image_tool import (
    APIConnectionError,
    ConfigurationError,
    ContentPolicyError,
    Fallback,
    ImageClient,
    ImageGenerationTool,
    QuotaExceededError,
)
from image_tool._policy.failover import FALLBACKS_ENV
from image_tool.testing import FakeRelay, Reply

UNREACHABLE = "http://127.0.0.1:9/v1"


@pytest.fixture
def relays() -> Iterator[tuple[FakeRelay, FakeRelay]]:
    with FakeRelay(api_key="key-a") as first, FakeRelay(api_key="key-b") as second:
        yield first, second


def posts(relay: FakeRelay) -> int:
    return len([request for request in relay.requests if request.method == "POST"])


def client_over(first: FakeRelay, second: FakeRelay, **settings: Any) -> ImageClient:
    fallback = Fallback(base_url=second.base_url, api_key="key-b", name="b", price_per_image=0.05)
    settings = {"max_retries": 0, "name": "a", "price_per_image": 0.04, **settings}
    return ImageClient(api_key="key-a", base_url=first.base_url, fallbacks=[fallback], **settings)


@pytest.mark.parametrize(
    "failure",
    [
        Reply.quota_exhausted(),
        Reply.rate_limited(retry_after=600),  # longer than any retry waits
        Reply.error(503, "当前分组上游负载已饱和，请稍后再试", code="upstream_error"),
        Reply.error(404, "model gpt-4o-image not found", code="model_not_found"),
        Reply.unauthorized(),
        Reply.error(500, "internal error"),
    ],
    ids=["quota", "rate_limited", "saturated", "no_model", "key_refused", "5xx"],
)
def test_the_next_relay_answers_when_one_cannot(relays: tuple[FakeRelay, FakeRelay], failure: Reply) -> None:
    first, second = relays
    first.queue(failure)
    with client_over(first, second) as client:
        result = client.generate("A cat", n=2)
    assert (posts(first), posts(second)) == (1, 1)
    assert result.target == "b"
    assert result.cost == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("failure", "error"),
    [(Reply.content_policy(), ContentPolicyError), (Reply.error(400, "bad size"), Exception)],
    ids=["refusal", "bad_request"],
)
def test_never_after_a_refusal_or_a_bad_request(
    relays: tuple[FakeRelay, FakeRelay], failure: Reply, error: type[Exception]
) -> None:
    first, second = relays
    first.queue(failure)
    with client_over(first, second) as client, pytest.raises(error):
        client.generate("A cat")
    assert posts(second) == 0


def test_never_once_an_answer_began(relays: tuple[FakeRelay, FakeRelay]) -> None:
    first, second = relays
    first.queue(Reply.streamed_fault("cut_before_done"))
    with client_over(first, second, stream=True) as client, pytest.raises(APIConnectionError) as caught:
        client.generate("A cat")
    assert caught.value.answer_started
    assert posts(second) == 0  # the cut generation may be billed: it is not made again elsewhere


def test_an_unreachable_relay_is_passed_over_then_rested(
    relays: tuple[FakeRelay, FakeRelay], caplog: pytest.LogCaptureFixture
) -> None:
    _, second = relays
    fallback = Fallback(base_url=second.base_url, api_key="key-b")
    caplog.set_level(logging.WARNING, logger="image_tool")

    def passed_over() -> int:
        """How many times the client left the unreachable relay for the next (it logs each)."""
        return sum("trying the next" in record.getMessage() for record in caplog.records)

    # Counted, not timed. The rest (1 s) outlasts the calls between, tens of ms on a quiet machine.
    with ImageClient(
        api_key="k", base_url=UNREACHABLE, fallbacks=[fallback], max_retries=0, cooldown=1.0
    ) as client:
        assert client.generate("A cat").target == "127.0.0.1"
        assert passed_over() == 1
        client.generate("A cat")  # the failed relay rests: the fallback is asked first, at once
        assert passed_over() == 1  # the resting relay was not tried
        assert posts(second) == 2
        time.sleep(1.0)
        client.generate("A cat")  # rested enough: tried first again (and passed over again)
        assert passed_over() == 2
    assert posts(second) == 3


async def test_async_calls_fail_over_too(relays: tuple[FakeRelay, FakeRelay]) -> None:
    first, second = relays
    first.queue(Reply.quota_exhausted(), Reply.quota_exhausted())
    async with client_over(first, second, cooldown=0) as client:
        results = await asyncio.gather(client.agenerate("A cat"), client.agenerate("A dog"))
    assert sorted(result.target or "" for result in results) == ["b", "b"]
    assert posts(second) == 2


def test_when_every_relay_fails_the_last_failure_is_raised(relays: tuple[FakeRelay, FakeRelay]) -> None:
    first, second = relays
    first.queue(Reply.error(500, "first is down"))
    second.queue(Reply.quota_exhausted())
    with client_over(first, second) as client, pytest.raises(QuotaExceededError):
        client.generate("A cat")


def test_a_fallback_with_its_own_model_uses_that_models_endpoint(relays: tuple[FakeRelay, FakeRelay]) -> None:
    first, second = relays
    first.queue(Reply.quota_exhausted())
    fallback = Fallback(base_url=second.base_url, api_key="key-b", model="gpt-image-1")
    with ImageClient(api_key="key-a", base_url=first.base_url, fallbacks=[fallback], max_retries=0) as client:
        result = client.generate("A cat")
        # A request the fallback's model cannot take passes it over: the first relay's failure stands.
        first.queue(Reply.quota_exhausted())
        with pytest.raises(QuotaExceededError):
            client.generate("A cat", style="natural")
    assert result.model == "gpt-image-1"
    assert [request.path for request in second.requests] == ["/v1/images/generations"]


def test_fallbacks_from_the_environment(
    relays: tuple[FakeRelay, FakeRelay], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = relays
    monkeypatch.setenv("RELAY_B_KEY", "key-b")
    relay_b = {
        "base_url": second.base_url,
        "api_key_env": "RELAY_B_KEY",
        "name": "b",
        "price_per_million_tokens": 2.5,
    }
    monkeypatch.setenv(FALLBACKS_ENV, json.dumps([relay_b]))
    first.queue(Reply.quota_exhausted())
    second.default_reply = Reply.success("markdown")  # a chat completion, with its usage
    with ImageClient(api_key="key-a", base_url=first.base_url, max_retries=0) as client:
        assert "key-b" not in repr(client)
        result = client.generate("A cat")
    assert result.target == "b"
    assert result.cost == pytest.approx(92 * 2.5 / 1_000_000)  # FakeRelay's chat answers bill 92 tokens


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("not json", "must be a JSON list"),
        ('{"base_url": "https://b.example/v1"}', "must be a JSON list"),
        ('[{"url": "https://b.example/v1"}]', "must be a JSON list"),
        (
            '[{"base_url": "https://b.example/v1", "api_key_env": "NOT_SET_ANYWHERE"}]',
            "NOT_SET_ANYWHERE is not",
        ),
    ],
)
def test_a_bad_fallback_setting_fails_at_construction(
    value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FALLBACKS_ENV, value)
    with pytest.raises(ConfigurationError, match=says):
        ImageClient(api_key="k", base_url="https://a.example/v1")


def invoke(tool: ImageGenerationTool, **arguments: Any) -> ToolMessage:
    message = tool.invoke({"name": tool.name, "args": arguments, "id": "call_1", "type": "tool_call"})
    assert isinstance(message, ToolMessage)
    return message


def test_the_tools_spending_limit(relays: tuple[FakeRelay, FakeRelay]) -> None:
    first, second = relays
    tool = ImageGenerationTool(client=client_over(first, second), max_cost=0.15)
    assert invoke(tool, prompt="A cat", n=2).status == "success"  # 0.08 spent
    refused = invoke(tool, prompt="A cat", n=2)  # 2 x 0.05 (the dearest relay) would pass 0.15
    assert refused.status == "error"
    assert "allows 1 more image" in str(refused.content)
    first.queue(Reply.content_policy())
    assert invoke(tool, prompt="A cat").status == "error"  # a failed call spends nothing
    assert invoke(tool, prompt="A cat").status == "success"  # 0.12 spent
    assert "spending limit of 0.15 is reached" in str(invoke(tool, prompt="A cat").content)
    assert posts(first) == 3
    tool.client.close()


def test_a_spending_limit_needs_prices() -> None:
    with pytest.raises(ConfigurationError, match="max_cost and max_cost_per_user need the relays' prices"):
        ImageGenerationTool(api_key="k", base_url="https://a.example/v1", max_cost=1.0)


def test_the_command_line_takes_fallbacks_from_the_environment(
    relays: tuple[FakeRelay, FakeRelay], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from image_tool.cli import main

    first, second = relays
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "key-a")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", first.base_url)
    monkeypatch.setenv("RELAY_B_KEY", "key-b")
    monkeypatch.setenv(
        FALLBACKS_ENV, json.dumps([{"base_url": second.base_url, "api_key_env": "RELAY_B_KEY", "name": "b"}])
    )
    first.queue(Reply.quota_exhausted())
    assert main(["generate", "A cat", "--json", "--max-retries", "0"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["target"] == "b"
    assert "key-b" not in out + err
