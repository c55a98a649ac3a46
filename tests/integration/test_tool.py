"""ImageGenerationTool: the schema a model sees, what it gets back, and how failures reach it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.utils.function_calling import convert_to_openai_tool

from image_tool import (
    ConfigurationError,
    GenerateImageInput,
    ImageClient,
    ImageGenerationResult,
    ImageGenerationTool,
    errors,
)
from image_tool._tool.advice import describe_failure
from image_tool._wire.failures import error_from_response
from image_tool.testing import FakeRelay, Reply

from ..conftest import RelayTarget
from ..helpers import tool_call


def invoke(tool: ImageGenerationTool, **args: Any) -> ToolMessage:
    message = tool.invoke(tool_call(**args))
    assert isinstance(message, ToolMessage)
    return message


# --- The schema the model sees ---


def test_schema_for_the_model() -> None:
    tool = ImageGenerationTool(api_key="k", base_url="https://relay.example.com/v1")
    function = convert_to_openai_tool(tool)["function"]
    assert function["name"] == "generate_image"
    assert "image" in function["description"]
    parameters = function["parameters"]
    assert parameters["required"] == ["prompt"]
    properties = {"prompt", "n", "size", "quality", "style", "image_urls"}
    assert set(parameters["properties"]) == properties  # no `user`: the application sets it
    assert parameters["properties"]["size"]["enum"] == ["1024x1024", "1024x1792", "1792x1024"]
    assert parameters["properties"]["quality"]["enum"] == ["standard", "hd"]
    assert parameters["properties"]["style"]["enum"] == ["vivid", "natural"]
    assert parameters["properties"]["size"]["default"] == "1024x1024"
    assert parameters["properties"]["n"]["default"] == 1
    for name, field in parameters["properties"].items():
        assert len(field.get("description", "")) > 40, f"{name} needs a description a model can act on"


def test_input_defaults_are_the_vendors() -> None:
    arguments = GenerateImageInput(prompt="  A cat  ")
    assert arguments.model_dump() == {
        "prompt": "A cat",
        "n": 1,
        "size": "1024x1024",
        "quality": "standard",
        "style": "vivid",
        "image_urls": None,
    }


# --- Success: content for the model, artifact for the application ---


@pytest.mark.vcr
def test_invoke_returns_every_image_with_its_revised_prompt(tool: ImageGenerationTool) -> None:
    message = invoke(tool, prompt="A watercolour fox in the snow", n=2, size="1024x1792")
    assert message.status == "success"
    result = message.artifact
    assert isinstance(result, ImageGenerationResult)
    assert len(result.images) == 2
    assert isinstance(message.content, str)
    for image in result.images:
        assert image.url and image.url in message.content
        assert image.revised_prompt and image.revised_prompt in message.content


@pytest.mark.vcr
async def test_ainvoke(tool: ImageGenerationTool) -> None:
    message = await tool.ainvoke(tool_call(prompt="A watercolour fox in the snow"))
    assert isinstance(message, ToolMessage)
    assert message.status == "success"
    assert len(message.artifact.images) == 1
    assert message.artifact.images[0].url in message.content


@pytest.mark.vcr
@pytest.mark.emulator_only
def test_content_never_holds_base64(tool: ImageGenerationTool, relay: RelayTarget) -> None:
    relay.queue(Reply.success(image_format="b64_json"))
    message = invoke(tool, prompt="A red bicycle")
    (image,) = message.artifact.images
    assert image.b64_json and len(image.b64_json) > 100
    assert image.b64_json[:40] not in message.content
    assert "inline image" in message.content
    assert len(message.content) < 500


@pytest.mark.vcr
def test_invoke_with_a_plain_dict_returns_the_content(tool: ImageGenerationTool) -> None:
    content = tool.invoke({"prompt": "A paper boat on a pond"})
    assert isinstance(content, str)
    assert content.startswith("Generated 1 image")


# --- Every input form BaseTool documents: a dict, a ToolCall, a plain string (the prompt) ---

INPUT_FORMS: dict[str, Any] = {
    "string": "A paper boat on a pond",
    "dict": {"prompt": "A paper boat on a pond"},
    "tool-call": tool_call(prompt="A paper boat on a pond"),
}


def content_of(answer: object) -> str:
    """The text the model reads: a ToolCall is answered with a ToolMessage, the rest with content."""
    content = answer.content if isinstance(answer, ToolMessage) else answer
    assert isinstance(content, str), content
    return content


@pytest.fixture
def live_tool(fake_relay: FakeRelay) -> ImageGenerationTool:
    return ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, max_retries=0)


@pytest.mark.parametrize("form", INPUT_FORMS)
def test_every_input_form_reaches_the_relay(
    live_tool: ImageGenerationTool, fake_relay: FakeRelay, form: str
) -> None:
    tool_input = INPUT_FORMS[form]
    answers = [live_tool.invoke(tool_input), *live_tool.batch([tool_input, tool_input])]
    if form != "tool-call":  # run() takes the tool's arguments, not a ToolCall
        answers.append(live_tool.run(tool_input))
    for answer in answers:
        assert content_of(answer).startswith("Generated 1 image")
    assert fake_relay.generated_prompts == ["A paper boat on a pond"] * len(answers)


@pytest.mark.parametrize("form", INPUT_FORMS)
async def test_every_input_form_reaches_the_relay_async(
    live_tool: ImageGenerationTool, fake_relay: FakeRelay, form: str
) -> None:
    tool_input = INPUT_FORMS[form]
    answers = [await live_tool.ainvoke(tool_input), *await live_tool.abatch([tool_input, tool_input])]
    if form != "tool-call":
        answers.append(await live_tool.arun(tool_input))
    for answer in answers:
        assert content_of(answer).startswith("Generated 1 image")
    assert fake_relay.generated_prompts == ["A paper boat on a pond"] * len(answers)


def test_a_string_input_takes_the_tools_settings(fake_relay: FakeRelay) -> None:
    """The string is the prompt; the rest is what a dict without options gets, the run's user too."""
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, user="app-user")
    config: RunnableConfig = {"configurable": {"image_tool_user": "end-user-7"}}
    assert content_of(tool.invoke("A paper boat", config=config)).startswith("Generated 1 image")
    sent = json.loads(fake_relay.requests[0].body)
    assert sent["messages"] == [{"role": "user", "content": "A paper boat"}]
    assert sent["user"] == "end-user-7"


@pytest.mark.parametrize("tool_input", ["", "   ", "x" * 40_000])
async def test_an_invalid_string_is_explained_not_raised(
    live_tool: ImageGenerationTool, tool_input: str
) -> None:
    for answer in (
        live_tool.invoke(tool_input),
        await live_tool.ainvoke(tool_input),
        live_tool.run(tool_input),
    ):
        assert content_of(answer).startswith("Invalid arguments for generate_image: prompt:")


async def test_a_failure_after_a_string_input_is_explained_not_raised(
    live_tool: ImageGenerationTool, fake_relay: FakeRelay
) -> None:
    fake_relay.default_reply = Reply.content_policy()
    answers = [
        live_tool.invoke("A cat"),
        await live_tool.ainvoke("A cat"),
        live_tool.run("A cat"),
        await live_tool.arun("A cat"),
    ]
    answers += [*live_tool.batch(["A cat", "A dog"]), *await live_tool.abatch(["A cat"])]
    for answer in answers:
        assert content_of(answer).startswith("The image service refused this prompt under its content policy")


# --- The end user's id: the application's, never the model's ---


@pytest.mark.vcr
def test_user_set_on_the_tool(client: ImageClient, vcr: Any) -> None:
    tool = ImageGenerationTool(client=client, user="end-user-42")
    assert invoke(tool, prompt="A cat").status == "success"
    assert json.loads(vcr.requests[0].body)["user"] == "end-user-42"


@pytest.mark.vcr
def test_user_set_per_run(client: ImageClient, vcr: Any) -> None:
    tool = ImageGenerationTool(client=client, user="default-user")
    config: RunnableConfig = {"configurable": {"image_tool_user": "end-user-7"}}
    assert tool.invoke(tool_call(prompt="A cat"), config=config).status == "success"
    assert json.loads(vcr.requests[0].body)["user"] == "end-user-7"


def test_model_cannot_set_the_user(fake_relay: FakeRelay) -> None:
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, user="app-user")
    refused = invoke(tool, prompt="A cat", user="chosen-by-the-model")
    assert refused.status == "error"
    assert "user: Extra inputs are not permitted" in str(refused.content)
    assert fake_relay.requests == []  # nothing was sent
    assert invoke(tool, prompt="A cat").status == "success"
    tool.client.close()
    assert fake_relay.requests[0].json["user"] == "app-user"


# --- Failures: one ToolMessage with status="error" and a distinct sentence for each kind ---

FAILURES = {
    "content_policy": (Reply.content_policy(), "Rephrase the prompt"),
    "rate_limited": (Reply.rate_limited(retry_after=30), "Wait 30 seconds"),
    "rate_limited_no_retry_after": (Reply.rate_limited(), "Wait about a minute"),
    "unauthorized": (Reply.unauthorized(), "tell the user that image generation is unavailable"),
    "quota_exhausted": (Reply.quota_exhausted(), "until the quota is topped up"),
    "model_unavailable": (Reply.model_unavailable(), "no model available"),
    "refusal_in_text": (Reply.refusal(), "Rephrase the prompt"),
    "text_without_image": (Reply.text_only(), "answered without an image"),
    "server_error": (Reply.server_error(), "failed with HTTP 500"),
    "no_image": (Reply(body=b'{"created": 1725000000, "data": []}'), "answered without an image"),
    "malformed": (Reply(body=b"<html>oops</html>"), "could not be read"),
}


@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.parametrize("failure", FAILURES)
def test_failures_become_error_messages(tool: ImageGenerationTool, relay: RelayTarget, failure: str) -> None:
    reply, advice = FAILURES[failure]
    relay.queue(reply)
    message = invoke(tool, prompt="A cat in a tree")
    assert message.status == "error"
    assert advice in message.content
    assert message.artifact is None


@pytest.mark.vcr
@pytest.mark.emulator_only
@pytest.mark.parametrize("failure", ["content_policy", "rate_limited", "unauthorized"])
async def test_failures_become_error_messages_async(
    tool: ImageGenerationTool, relay: RelayTarget, failure: str
) -> None:
    reply, advice = FAILURES[failure]
    relay.queue(reply)
    message = await tool.ainvoke(tool_call(prompt="A cat in a tree"))
    assert message.status == "error"
    assert advice in message.content


def test_timeout_and_unreachable_become_error_messages(fake_relay: FakeRelay) -> None:
    fake_relay.queue(Reply.slow(5))
    slow = ImageGenerationTool(
        api_key=fake_relay.api_key, base_url=fake_relay.base_url, timeout=0.2, max_retries=0
    )
    timed_out = invoke(slow, prompt="A cat")
    slow.client.close()
    base_url = fake_relay.base_url
    fake_relay.stop()
    unreachable = invoke(ImageGenerationTool(api_key="k", base_url=base_url, max_retries=0), prompt="A cat")
    assert timed_out.status == unreachable.status == "error"
    assert "did not answer in time" in timed_out.content
    assert "could not be reached" in unreachable.content


def test_every_failure_kind_has_its_own_sentence() -> None:
    kinds = [
        errors.ContentPolicyError("m", status_code=400),
        errors.RateLimitError("m", status_code=429),
        errors.AuthenticationError("m", status_code=401),
        errors.QuotaExceededError("m", status_code=403),
        errors.ModelNotFoundError("m", status_code=503),
        errors.APITimeoutError("m"),
        errors.APIConnectionError("m"),
        errors.NoImageError("m"),
        errors.StreamWithoutImageError("m"),
        errors.MalformedResponseError("m"),
        errors.APIStatusError("m", status_code=500),
    ]
    sentences = [describe_failure(error) for error in kinds]
    assert len({sentence.split(".")[0] for sentence in sentences}) == len(kinds)
    # Only a failure about the prompt asks the model to change it.
    asks_to_rephrase = [kind for kind, text in zip(kinds, sentences, strict=True) if "Rephrase" in text]
    assert [type(kind) for kind in asks_to_rephrase] == [errors.ContentPolicyError]
    assert "do not rephrase" in describe_failure(errors.StreamWithoutImageError("m"))
    assert "stream=False" in describe_failure(errors.StreamWithoutImageError("m"))


def test_the_model_reads_the_relays_words_without_wrappers_or_request_ids() -> None:
    error = error_from_response(
        429,
        b'{"error": {"message": "litellm.RateLimitError: \\u5f53\\u524d (request id: 2024121602163)"}}',
    )
    sentence = describe_failure(error)
    assert "当前" in sentence
    assert "2024121602163" not in sentence and "litellm" not in sentence
    assert error.request_id == "2024121602163"  # kept for the relay's support


# --- Invalid arguments from the model come back as readable messages ---


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ({}, ["prompt", "Field required"]),
        ({"prompt": "   "}, ["prompt", "at least 1 character"]),
        ({"prompt": "x" * 4001}, ["prompt", "at most 4000 characters"]),
        ({"prompt": "A cat", "n": 0}, ["n", "greater than or equal to 1"]),
        ({"prompt": "A cat", "n": 9}, ["n", "less than or equal to 4"]),
        ({"prompt": "A cat", "size": "512x512"}, ["size", "'1024x1024', '1024x1792' or '1792x1024'"]),
        ({"prompt": "A cat", "quality": "ultra"}, ["quality", "'standard' or 'hd'"]),
        ({"prompt": "A cat", "style": "noir"}, ["style", "'vivid' or 'natural'"]),
    ],
)
def test_invalid_arguments_are_explained_to_the_model(args: dict[str, Any], names: list[str]) -> None:
    tool = ImageGenerationTool(api_key="k", base_url="http://127.0.0.1:9/v1")  # never reached
    message = invoke(tool, **args)
    assert message.status == "error"
    assert isinstance(message.content, str)
    assert message.content.startswith("Invalid arguments for generate_image")
    for name in names:
        assert name in message.content


# --- Construction ---


def test_construct_from_keyword_settings() -> None:
    tool = ImageGenerationTool(
        api_key="k", base_url="https://relay.example.com//v1", model="gpt-4o-image-vip"
    )
    assert tool.client.base_url == "https://relay.example.com/v1"
    assert tool.client.model == "gpt-4o-image-vip"


def test_construct_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGE_TOOL_API_KEY", "env-key")
    monkeypatch.setenv("IMAGE_TOOL_BASE_URL", "https://relay.example.com/v1")
    assert ImageGenerationTool().client.api_key.get_secret_value() == "env-key"


def test_construct_around_a_client() -> None:
    client = ImageClient(api_key="k", base_url="https://relay.example.com/v1")
    tool = ImageGenerationTool(client=client, user="u")
    assert tool.client is client


def test_missing_configuration_fails_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL"):
        ImageGenerationTool()


def test_client_and_settings_together_are_refused() -> None:
    client = ImageClient(api_key="k", base_url="https://relay.example.com/v1")
    with pytest.raises(ConfigurationError, match="either client= or client settings"):
        ImageGenerationTool(client=client, model="other")


def test_relay_messages_are_bounded_for_the_model() -> None:
    sentence = describe_failure(errors.ContentPolicyError("x" * 5000, status_code=400))
    assert len(sentence) < 500
    assert "Rephrase the prompt" in sentence


def test_the_openai_function_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    tool = ImageGenerationTool(api_key="k", base_url="https://relay.example.com/v1")
    parameters = convert_to_openai_tool(tool)["function"]["parameters"]
    Draft202012Validator.check_schema(parameters)
    validator = Draft202012Validator(parameters)
    assert validator.is_valid(
        {"prompt": "A cat", "size": "1024x1792", "image_urls": ["https://x.example/a.png"]}
    )
    assert not validator.is_valid({"size": "1024x1792"})  # the prompt is required
    assert not validator.is_valid({"prompt": "A cat", "size": "512x512"})
    assert not validator.is_valid({"prompt": "A cat", "n": 9})
