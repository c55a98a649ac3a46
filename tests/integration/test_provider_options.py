"""gpt-image-2, the options the catalog knows beside the vendor's (``seed``, ``negative_prompt``,
``image_size``) and provider options (``extra_body``), end to end against FakeRelay, sync and
async: what the relay received, what was drawn, what was refused before anything was sent."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import ToolMessage

from image_tool import (
    ConfigurationError,
    Fallback,
    GenerationProgress,
    ImageClient,
    ImageGenerationResult,
    ImageGenerationTool,
    InvalidRequestError,
)
from image_tool.testing import FakeRelay, Reply, png_image, png_size

from ..helpers import call, tool_call

FLUX = "black-forest-labs/flux.2-pro"
GEMINI_3 = "google/gemini-3-pro-image-preview"
PNG_URL = "data:image/png;base64," + base64.b64encode(png_image(64, 64, "00112233445566ff")).decode()

both = pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])


@pytest.fixture
def gateway() -> Iterator[FakeRelay]:
    with FakeRelay(profile="gateway") as relay:
        yield relay


def client_for(relay: FakeRelay, model: str, **settings: Any) -> ImageClient:
    return ImageClient(api_key=relay.api_key, base_url=relay.base_url, model=model, max_retries=0, **settings)


def sent(relay: FakeRelay) -> dict[str, Any]:
    """The JSON body of the last POST the relay received."""
    body: dict[str, Any] = [request for request in relay.requests if request.method == "POST"][-1].json
    return body


def drawn_sizes(result: ImageGenerationResult) -> list[tuple[int, int]]:
    return [png_size(base64.b64decode(image.b64_json or "")) for image in result.images]


# gpt-image-2 on the Images API


@both
async def test_gpt_image_2_draws_a_custom_size(fake_relay: FakeRelay, asynchronous: bool) -> None:
    client = client_for(fake_relay, "gpt-image-2")
    result = await call(client, asynchronous, size="1024x768", quality="low", background="opaque")
    assert drawn_sizes(result) == [(1024, 768)]
    assert fake_relay.requests[-1].path == "/v1/images/generations"
    assert sent(fake_relay) == {
        "model": "gpt-image-2",
        "prompt": "A cat",
        "n": 1,
        "size": "1024x768",
        "quality": "low",
        "background": "opaque",
    }


@both
async def test_gpt_image_2_draws_a_named_large_size(fake_relay: FakeRelay, asynchronous: bool) -> None:
    result = await call(client_for(fake_relay, "gpt-image-2"), asynchronous, size="2048x1152", n=2)
    assert drawn_sizes(result) == [(2048, 1152)] * 2


@both
@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"background": "transparent"}, "takes background opaque, auto; not 'transparent'"),
        ({"size": "1000x1000"}, "multiples of 16"),
        ({"extra_body": {"size": "4096x2048"}}, "the longest edge is over 3840"),
    ],
)
async def test_gpt_image_2_refuses_before_sending(
    fake_relay: FakeRelay, asynchronous: bool, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        await call(client_for(fake_relay, "gpt-image-2"), asynchronous, **options)
    assert fake_relay.requests == []


@both
async def test_gpt_image_2_edits_with_extra_fields_in_the_form(
    fake_relay: FakeRelay, asynchronous: bool
) -> None:
    client = client_for(fake_relay, "gpt-image-2", extra_body={"provider": {"order": ["openai"]}})
    result = await call(
        client, asynchronous, image_urls=[PNG_URL], size="1536x1024", extra_body={"input_fidelity": "high"}
    )
    assert drawn_sizes(result) == [(1536, 1024)]
    (edit,) = fake_relay.requests
    assert edit.path == "/v1/images/edits"
    assert edit.form is not None
    assert edit.form.fields == {
        "model": "gpt-image-2",
        "prompt": "A cat",
        "n": "1",
        "size": "1536x1024",
        "provider": '{"order": ["openai"]}',
        "input_fidelity": "high",
    }


# seed, negative_prompt, image_size on their families


@both
async def test_gemini_3_draws_at_the_image_size_asked(gateway: FakeRelay, asynchronous: bool) -> None:
    result = await call(client_for(gateway, GEMINI_3), asynchronous, aspect_ratio="16:9", image_size="2K")
    assert drawn_sizes(result) == [(2688, 1536)]  # twice 16:9 at 1K
    body = sent(gateway)
    assert body["image_config"] == {"aspect_ratio": "16:9", "image_size": "2K"}
    assert body["modalities"] == ["image", "text"]


@both
async def test_flux_sends_its_seed_top_level(gateway: FakeRelay, asynchronous: bool) -> None:
    await call(client_for(gateway, FLUX), asynchronous, seed=1234, aspect_ratio="1:1")
    body = sent(gateway)
    assert (body["seed"], body["image_config"], body["modalities"]) == (
        1234,
        {"aspect_ratio": "1:1"},
        ["image"],
    )


@both
@pytest.mark.usefixtures("quick_polls")
async def test_midjourney_takes_seed_and_negative_prompt_as_its_parameters(asynchronous: bool) -> None:
    with FakeRelay(profile="new-api") as relay:
        relay.queue(Reply.mj_task(polls=1))
        client = client_for(relay, "mj_imagine", extra_body={"botType": "NIJI_JOURNEY"})
        result = await call(client, asynchronous, prompt="a lighthouse", seed=7, negative_prompt=" gulls ")
    assert result.task_id
    (submit,) = [request for request in relay.requests if request.method == "POST"]
    assert submit.path == "/mj/submit/imagine"
    assert submit.json == {"prompt": "a lighthouse --seed 7 --no gulls", "botType": "NIJI_JOURNEY"}


@both
@pytest.mark.parametrize(
    ("model", "options", "says"),
    [
        ("google/gemini-2.5-flash-image", {"image_size": "2K"}, "does not take image_size"),
        (FLUX, {"seed": 2**31}, "seed a whole number 0 to 2147483647"),
        (FLUX, {"negative_prompt": "cars"}, "does not take negative_prompt"),
        ("gpt-image-1", {"extra_body": {"model": "gpt-image-2"}}, "may not set 'model'"),
    ],
)
async def test_options_a_model_does_not_take_are_refused_before_sending(
    gateway: FakeRelay, asynchronous: bool, model: str, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        await call(client_for(gateway, model), asynchronous, **options)
    assert gateway.requests == []


# extra_body


@both
async def test_extra_body_of_the_setting_and_of_the_call_reach_the_relay(
    gateway: FakeRelay, asynchronous: bool
) -> None:
    setting = {"provider": {"order": ["google-vertex"]}, "usage": {"include": True}, "watermark": False}
    client = client_for(gateway, GEMINI_3, extra_body=setting)
    per_call = {"watermark": True, "image_config": {"image_size": "1K", "person_generation": "allow_adult"}}
    await call(client, asynchronous, aspect_ratio="3:2", extra_body=per_call)
    body = sent(gateway)
    assert body["provider"] == {"order": ["google-vertex"]}
    assert body["usage"] == {"include": True}
    assert body["watermark"] is True  # the call's key over the setting's
    assert body["image_config"] == {
        "image_size": "1K",
        "person_generation": "allow_adult",
        "aspect_ratio": "3:2",
    }
    assert client.extra_body == setting  # the setting itself is left as it was


@both
async def test_extra_body_options_are_checked_as_the_keywords(gateway: FakeRelay, asynchronous: bool) -> None:
    client = client_for(gateway, FLUX, extra_body={"seed": 5})
    await call(client, asynchronous, seed=5)  # the same value both ways
    assert sent(gateway)["seed"] == 5
    with pytest.raises(InvalidRequestError, match="seed is given twice, as 6 and in extra_body as 5"):
        await call(client_for(gateway, FLUX, extra_body={"seed": 5}), asynchronous, seed=6)


def test_a_fallback_relay_gets_the_extra_body_too() -> None:
    with FakeRelay(api_key="key-a") as first, FakeRelay(api_key="key-b") as second:
        first.queue(Reply.quota_exhausted())
        fallback = Fallback(base_url=second.base_url, api_key="key-b")
        client = ImageClient(
            api_key="key-a",
            base_url=first.base_url,
            model="gpt-image-2",
            fallbacks=[fallback],
            max_retries=0,
            extra_body={"vendor_option": 1},
        )
        with client:
            client.generate("A cat")
        assert sent(first)["vendor_option"] == sent(second)["vendor_option"] == 1


@pytest.mark.parametrize(
    ("extra_body", "says"),
    [
        ({"model": "x"}, r"may not set 'model'.*ImageClient\(model=\.\.\.\)"),
        ({"prompt": "x"}, "may not set 'prompt'"),
        ({"n": 2}, "may not set 'n'.*use n="),
        ({"stream": True}, "may not set 'stream'"),
        ({"partial_images": 3}, "may not set 'partial_images'"),
        ({"mask": "x"}, "may not set 'mask'"),
        ({"when": object()}, "only JSON values"),
    ],
)
def test_a_refused_extra_body_setting_is_a_configuration_error(extra_body: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        ImageClient(api_key="k", base_url="http://127.0.0.1:9/v1", model="gpt-image-2", extra_body=extra_body)
    with pytest.raises(ConfigurationError, match=says):
        ImageGenerationTool(
            api_key="k", base_url="http://127.0.0.1:9/v1", model="gpt-image-2", extra_body=extra_body
        )


def test_midjourney_refuses_its_own_keys_in_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="may not set 'base64Array'"):
        ImageClient(
            api_key="k", base_url="http://127.0.0.1:9/v1", model="mj_imagine", extra_body={"base64Array": []}
        )


# The tool


def test_the_tool_offers_and_passes_on_the_seed(gateway: FakeRelay) -> None:
    tool = ImageGenerationTool(
        api_key=gateway.api_key,
        base_url=gateway.base_url,
        model=FLUX,
        extra_body={"provider": {"sort": "price"}},
    )
    assert "seed" in tool.tool_call_schema.model_json_schema()["properties"]  # type: ignore[union-attr]
    message = tool.invoke(tool_call(prompt="A fox", seed=99, aspect_ratio="16:9"))
    assert isinstance(message, ToolMessage) and message.status == "success"
    body = sent(gateway)
    assert (body["seed"], body["provider"], body["image_config"]) == (
        99,
        {"sort": "price"},
        {"aspect_ratio": "16:9"},
    )


async def test_the_tool_passes_on_the_image_size(gateway: FakeRelay) -> None:
    tool = ImageGenerationTool(api_key=gateway.api_key, base_url=gateway.base_url, model="nano-banana-pro")
    message = await tool.ainvoke(tool_call(prompt="A fox", image_size="2K"))
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert sent(gateway)["image_config"] == {"image_size": "2K"}
    await tool.client.aclose()


def test_the_tool_passes_on_a_custom_gpt_image_2_size_only_from_its_presets(fake_relay: FakeRelay) -> None:
    tool = ImageGenerationTool(api_key=fake_relay.api_key, base_url=fake_relay.base_url, model="gpt-image-2")
    message = tool.invoke(tool_call(prompt="A fox", size="3840x2160", quality="low"))
    assert isinstance(message, ToolMessage) and message.status == "success"
    assert sent(fake_relay)["size"] == "3840x2160"
    refused = tool.invoke(tool_call(prompt="A fox", size="1024x768"))  # the model picks among the presets
    assert isinstance(refused, ToolMessage) and refused.status == "error"
    assert len(fake_relay.requests) == 1


@both
async def test_gpt_image_2_streams_previews_at_a_custom_size(
    fake_relay: FakeRelay, asynchronous: bool
) -> None:
    updates: list[GenerationProgress] = []
    client = client_for(fake_relay, "gpt-image-2", stream=True, partial_images=1)
    result = await call(client, asynchronous, size="1280x720", on_progress=updates.append)
    assert drawn_sizes(result) == [(1280, 720)]
    assert [update.preview_b64 is not None for update in updates].count(True) == 1
    assert sent(fake_relay)["partial_images"] == 1
