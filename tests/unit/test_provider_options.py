"""gpt-image-2's sizes, the options the catalog knows beside the vendor's (``seed``,
``negative_prompt``, ``image_size``), and provider options (``extra_body``): where each goes in
the request, and what is refused before anything is sent."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from image_tool._wire.request import REFUSED_EXTRA_KEYS, build_request, extra_body_problem, merged
from image_tool.catalog import (
    GEMINI_2_5_IMAGE,
    GEMINI_3_IMAGE,
    GPT_IMAGE,
    GPT_IMAGE_2,
    IMAGE_ONLY_GATEWAY,
    MIDJOURNEY,
    UNKNOWN,
    ModelFamily,
    custom_size_problem,
    family_of,
)
from image_tool.errors import InvalidRequestError
from image_tool.testing import png_image

PNG_URL = "data:image/png;base64," + base64.b64encode(png_image(8, 8, "0123456789abcdef")).decode()
FLUX = "black-forest-labs/flux.2-pro"
GEMINI_3 = "google/gemini-3-pro-image-preview"


def request(model: str, family: ModelFamily, **arguments: Any) -> dict[str, Any]:
    """The JSON body ``build_request`` makes for a cat, with these arguments."""
    arguments = {"n": 1, "options": {}, **arguments}
    body = build_request(model, family, arguments.pop("prompt", "A cat"), **arguments).json
    assert body is not None
    return body


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-image-2", GPT_IMAGE_2),
        ("openai/gpt-image-2-2026-04-21", GPT_IMAGE_2),
        ("gpt-image-2.5-preview", GPT_IMAGE_2),
        ("gpt-image-1.5", GPT_IMAGE),
        ("nano-banana", GEMINI_2_5_IMAGE),
        ("google/gemini-2.5-flash-image-preview", GEMINI_2_5_IMAGE),
        ("nano-banana-pro", GEMINI_3_IMAGE),
        ("nano-banana-2", GEMINI_3_IMAGE),
        ("google/gemini-3.1-flash-image-preview", GEMINI_3_IMAGE),
        (GEMINI_3, GEMINI_3_IMAGE),
        ("mj_imagine", MIDJOURNEY),
    ],
)
def test_each_new_model_has_its_family(model: str, family: ModelFamily) -> None:
    assert family_of(model) is family


# gpt-image-2's sizes


@pytest.mark.parametrize("size", ["1024x768", "768x1024", "1024x1024", "3840x2160", "3840x1280", "816x816"])
def test_a_custom_size_that_keeps_the_rule(size: str) -> None:
    assert custom_size_problem(size) is None


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ("1000x1000", "not a multiple of 16"),
        ("1024x1000", "not a multiple of 16"),
        ("4096x2048", "longest edge is over 3840"),
        ("3856x2160", "longest edge is over 3840"),
        ("3840x1264", "longer than 3:1"),
        ("800x800", "640,000 pixels"),  # under 655,360
        ("auto", "not WIDTHxHEIGHT"),
        ("1024x", "not WIDTHxHEIGHT"),
        ("-1024x768", "not WIDTHxHEIGHT"),
        ("1024×768", "not WIDTHxHEIGHT"),  # a multiplication sign
        ("1024x²", "not WIDTHxHEIGHT"),  # a digit int() does not read
    ],
)
def test_a_custom_size_that_breaks_the_rule_says_how(size: str, problem: str) -> None:
    assert problem in (custom_size_problem(size) or "")


def test_gpt_image_2_sends_a_named_or_a_custom_size() -> None:
    assert request("gpt-image-2", GPT_IMAGE_2, options={"size": "3840x2160"})["size"] == "3840x2160"
    body = request("gpt-image-2", GPT_IMAGE_2, options={"size": "1024x768", "quality": "high"})
    assert body == {"model": "gpt-image-2", "prompt": "A cat", "n": 1, "size": "1024x768", "quality": "high"}


# seed, negative_prompt, image_size


def test_gemini_3_takes_the_image_size_beside_the_aspect_ratio() -> None:
    body = request(GEMINI_3, GEMINI_3_IMAGE, options={"aspect_ratio": "16:9", "image_size": "4K"})
    assert body["image_config"] == {"aspect_ratio": "16:9", "image_size": "4K"}
    assert request(GEMINI_3, GEMINI_3_IMAGE, options={"image_size": "2K"})["image_config"] == {
        "image_size": "2K"
    }
    assert "image_size" not in body


def test_flux_takes_a_top_level_seed() -> None:
    body = request(FLUX, IMAGE_ONLY_GATEWAY, options={"seed": 2**31 - 1, "aspect_ratio": "1:1"})
    assert body["seed"] == 2**31 - 1
    assert body["image_config"] == {"aspect_ratio": "1:1"}


def test_midjourney_ends_the_prompt_with_its_seed_and_no_parameters() -> None:
    options = {"seed": 4294967295, "negative_prompt": "  text, watermark \n"}
    built = build_request("mj_imagine", MIDJOURNEY, "a lighthouse --ar 16:9", n=1, options=options)
    assert built.path == "/mj/submit/imagine"
    assert built.json == {"prompt": "a lighthouse --ar 16:9 --seed 4294967295 --no text, watermark"}
    links = build_request(
        "mj_imagine",
        MIDJOURNEY,
        "a cat",
        n=1,
        options={"seed": 0},
        image_urls=["https://x.example/a.png", PNG_URL],
    )
    assert links.json == {"prompt": "https://x.example/a.png a cat --seed 0", "base64Array": [PNG_URL]}


@pytest.mark.parametrize(
    ("model", "family", "options", "says"),
    [
        ("gpt-image-2", GPT_IMAGE_2, {"size": "1000x1000"}, "multiples of 16, the longest at most 3840"),
        ("gpt-image-2", GPT_IMAGE_2, {"size": "1000x1000"}, "not '1000x1000': an edge is not a multiple"),
        ("gpt-image-2", GPT_IMAGE_2, {"size": 1024}, "takes size auto, 1024x1024"),
        ("gpt-image-2", GPT_IMAGE_2, {"background": "transparent"}, "takes background opaque, auto"),
        ("gpt-image-2", GPT_IMAGE_2, {"quality": "hd"}, "takes quality low, medium, high, auto"),
        ("gpt-image-1", GPT_IMAGE, {"size": "1024x768"}, "takes size 1024x1024, 1536x1024"),
        ("google/gemini-2.5-flash-image", GEMINI_2_5_IMAGE, {"image_size": "2K"}, "does not take image_size"),
        ("nano-banana", GEMINI_2_5_IMAGE, {"image_size": "1K"}, "does not take image_size"),
        (GEMINI_3, GEMINI_3_IMAGE, {"image_size": "8K"}, "takes image_size 1K, 2K, 4K; not '8K'"),
        (GEMINI_3, GEMINI_3_IMAGE, {"seed": 1}, "does not take seed"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"seed": 2**31}, "seed a whole number 0 to 2147483647"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"seed": -1}, "seed a whole number"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"seed": True}, "seed a whole number"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"seed": "7"}, "seed a whole number"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"negative_prompt": "cars"}, "does not take negative_prompt"),
        ("mj_imagine", MIDJOURNEY, {"seed": 2**32}, "seed a whole number 0 to 4294967295"),
        ("mj_imagine", MIDJOURNEY, {"negative_prompt": "   "}, "1 to 1000 characters"),
        ("mj_imagine", MIDJOURNEY, {"negative_prompt": "x" * 1001}, "1 to 1000 characters"),
        ("mj_imagine", MIDJOURNEY, {"negative_prompt": ["cars"]}, "1 to 1000 characters"),
        ("gpt-image-2", GPT_IMAGE_2, {"seed": 1}, "does not take seed"),
        ("my-house-model", UNKNOWN, {"negative_prompt": "cars"}, "does not take negative_prompt"),
    ],
)
def test_what_a_model_cannot_take_is_refused(
    model: str, family: ModelFamily, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        build_request(model, family, "A cat", n=1, options=options)


# extra_body


def test_extra_keys_go_top_level_as_they_are() -> None:
    extra = {"provider": {"order": ["openai"], "allow_fallbacks": False}, "response_format": "url", "x": None}
    body = request("gpt-image-2", GPT_IMAGE_2, options={"quality": "low"}, extra_body=extra)
    assert body == {"model": "gpt-image-2", "prompt": "A cat", "n": 1, "quality": "low", **extra}


def test_a_dict_both_have_is_merged_one_level_the_checked_options_winning() -> None:
    extra = {"image_config": {"image_size": "4K", "aspect_ratio": "1:1", "person_generation": "allow_adult"}}
    body = request(GEMINI_3, GEMINI_3_IMAGE, options={"aspect_ratio": "16:9"}, extra_body=extra)
    assert body["image_config"] == {
        "aspect_ratio": "16:9",
        "image_size": "4K",
        "person_generation": "allow_adult",
    }
    assert merged({"a": {"b": {"c": 1}}}, {"a": {"b": {"d": 2}}}) == {"a": {"b": {"c": 1}}}  # one level only


def test_extra_keys_replace_what_image_tool_sets_from_the_catalog() -> None:
    body = request("google/gemini-2.5-flash-image", GEMINI_2_5_IMAGE, extra_body={"modalities": ["image"]})
    assert body["modalities"] == ["image"]


def test_options_the_family_takes_are_checked_as_keywords_are() -> None:
    body = request(FLUX, IMAGE_ONLY_GATEWAY, extra_body={"seed": 42, "aspect_ratio": "16:9"})
    assert (body["seed"], body["image_config"]) == (42, {"aspect_ratio": "16:9"})
    assert "aspect_ratio" not in body
    body = request("gpt-image-2", GPT_IMAGE_2, options={"size": "1024x768"}, extra_body={"size": "1024x768"})
    assert body["size"] == "1024x768"
    midjourney = request(
        "mj_imagine", MIDJOURNEY, extra_body={"negative_prompt": " cars ", "botType": "NIJI_JOURNEY"}
    )
    assert midjourney == {"prompt": "A cat --no cars", "botType": "NIJI_JOURNEY"}


def test_options_the_family_does_not_take_pass_through() -> None:
    body = request("gpt-image-2", GPT_IMAGE_2, extra_body={"seed": 7, "style": "anything"})
    assert (body["seed"], body["style"]) == (7, "anything")
    assert request("my-house-model", UNKNOWN, extra_body={"size": "999x1"})["size"] == "999x1"


@pytest.mark.parametrize(
    ("model", "family", "arguments", "says"),
    [
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"size": "1000x1000"}}, "multiples of 16"),
        (GEMINI_3, GEMINI_3_IMAGE, {"extra_body": {"image_size": "3K"}}, "takes image_size 1K, 2K, 4K"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"extra_body": {"seed": 2**31}}, "seed a whole number"),
        (
            "gpt-image-2",
            GPT_IMAGE_2,
            {"options": {"quality": "low"}, "extra_body": {"quality": "high"}},
            "quality is given twice, as 'low' and in extra_body as 'high'",
        ),
        (
            "gpt-image-2",
            GPT_IMAGE_2,
            {"extra_body": {"model": "gpt-image-1"}},
            r"'model'.*ImageClient\(model=\.\.\.\)",
        ),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"image": "x"}}, "'image'.*use image_urls="),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"mask": "x"}}, "'mask'.*use mask="),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"async": True}}, "'async'.*image_jobs"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"extra_body": {"messages": []}}, "'messages'"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"extra_body": {"stream": True}}, "'stream'.*the stream setting"),
        (FLUX, IMAGE_ONLY_GATEWAY, {"extra_body": {"user": "u"}}, "'user'.*use user="),
        ("mj_imagine", MIDJOURNEY, {"extra_body": {"prompt": "a dog"}}, "'prompt'"),
        ("mj_imagine", MIDJOURNEY, {"extra_body": {"base64Array": []}}, "'base64Array'.*data: URLs"),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"when": {1, 2}}}, "only JSON values"),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {"ratio": float("nan")}}, "only JSON values"),
        ("gpt-image-2", GPT_IMAGE_2, {"extra_body": {1: "x"}}, "keys are the body's field names"),
    ],
)
def test_what_extra_body_may_not_say_is_refused_with_the_fix(
    model: str, family: ModelFamily, arguments: dict[str, Any], says: str
) -> None:
    with pytest.raises(InvalidRequestError, match=says):
        build_request(model, family, "A cat", n=1, **{"options": {}, **arguments})


def test_every_endpoint_refuses_the_keys_image_tool_sets() -> None:
    for api in ("chat", "images", "midjourney"):
        for key in REFUSED_EXTRA_KEYS:
            assert f"may not set {key!r}" in (extra_body_problem({key: 1}, api) or "")
    assert extra_body_problem({"image": "x"}, "chat") is None  # a chat body has no such field of ours
    assert extra_body_problem({"seed": 1, "provider": {"only": ["a"]}}, "images") is None


def test_an_edit_sends_extra_keys_as_form_fields_non_strings_as_json() -> None:
    extra = {"provider": {"order": ["openai"]}, "seed": 7, "watermark": False, "label": "plain text"}
    built = build_request(
        "gpt-image-2",
        GPT_IMAGE_2,
        "Add a hat",
        n=1,
        options={"size": "1024x768"},
        image_urls=[PNG_URL],
        extra_body=extra,
    )
    assert built.path == "/images/edits"
    assert built.fields == {
        "model": "gpt-image-2",
        "prompt": "Add a hat",
        "n": "1",
        "size": "1024x768",
        "provider": json.dumps({"order": ["openai"]}),
        "seed": "7",
        "watermark": "false",
        "label": "plain text",
    }


def test_an_edit_checks_known_options_given_in_extra_body() -> None:
    with pytest.raises(InvalidRequestError, match="takes background opaque, auto"):
        build_request(
            "gpt-image-2",
            GPT_IMAGE_2,
            "Add a hat",
            n=1,
            options={},
            image_urls=[PNG_URL],
            extra_body={"background": "transparent"},
        )
