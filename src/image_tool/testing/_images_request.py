"""A request to FakeRelay's Images API, read and checked as OpenAI does: ``POST
/v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (``multipart/form-data``). A request
OpenAI refuses is an ``ImagesApiError`` naming the field."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from ._answers import GenerationRequest
from ._formats import OutputFormat, image_format
from ._multipart import is_multipart, read_form
from ._replies import ImageFormat

ImagesEndpoint = Literal["generations", "edits"]
ModelFamily = Literal["gpt-image", "dall-e-3", "other"]

GPT_IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
GPT_IMAGE_2_SIZES = (*GPT_IMAGE_SIZES, "2048x2048", "2048x1152", "1152x2048", "3840x2160", "2160x3840")
"""gpt-image-2's named sizes; it draws any other ``WxH`` that keeps ``_custom_size``'s rule too."""
DALL_E_3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
_OTHER_SIZES = (*DALL_E_3_SIZES, *GPT_IMAGE_SIZES[1:])
_GPT_IMAGE_QUALITIES = ("low", "medium", "high", "auto")
_DALL_E_3_QUALITIES = ("standard", "hd")
_STYLES = ("vivid", "natural")
_BACKGROUNDS = ("transparent", "opaque", "auto")
_GPT_IMAGE_2_BACKGROUNDS = ("opaque", "auto")
_OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp")
_MODERATIONS = ("low", "auto")
_RESPONSE_FORMATS: tuple[ImageFormat, ...] = ("url", "b64_json")
_EDIT_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "dall-e-2")
_IMAGE_FIELD = re.compile(r"^image(\[\d*\])?$")  # image, image[] (openai-python), image[0]

MAX_EDIT_IMAGES = 16


class ImagesApiError(ValueError):
    """A request the Images API refuses with a 400 whose error names the field (``param``)."""

    def __init__(self, message: str, param: str | None, code: str | None = "invalid_value") -> None:
        super().__init__(message)
        self.param = param
        self.code = code

    @property
    def body(self) -> bytes:
        error = {
            "message": str(self),
            "type": "invalid_request_error",
            "param": self.param,
            "code": self.code,
        }
        return json.dumps({"error": error}, ensure_ascii=False).encode()


@dataclass(frozen=True)
class ImagesRequest:
    """An Images API request, its defaults resolved (``auto`` size and quality included)."""

    endpoint: ImagesEndpoint
    model: str
    prompt: str
    n: int
    size: str
    """The drawn size, ``WxH``."""
    quality: str
    style: str
    background: str
    output_format: OutputFormat
    response_format: ImageFormat
    """How ``dall-e-3`` and other models send images (gpt-image models always send base64)."""
    stream: bool
    partial_images: int
    input_images: int = 0
    """For an edit: how many images came."""

    @property
    def family(self) -> ModelFamily:
        return model_family(self.model)

    @property
    def width(self) -> int:
        return int(self.size.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.size.split("x")[1])

    @property
    def revised_prompt(self) -> str:
        return f"{self.prompt}, {self.style} style, {self.size} frame"

    def token(self, index: int) -> str:
        seed = f"{self.endpoint}|{self.prompt}|{self.size}|{index}"
        return hashlib.sha256(seed.encode()).hexdigest()[:16]

    def as_generation(self) -> GenerationRequest:
        """The request as the relay profiles see one (they reshape the errors of every endpoint)."""
        return GenerationRequest(self.prompt, self.model, self.n, self.width, self.height, self.style, False)


def model_family(model: str) -> ModelFamily:
    if model.startswith("gpt-image"):
        return "gpt-image"
    return "dall-e-3" if model == "dall-e-3" else "other"


def read_images_request(endpoint: ImagesEndpoint, content_type: str | None, body: bytes) -> ImagesRequest:
    """The request's fields, checked; ``ImagesApiError`` says what OpenAI would refuse."""
    if endpoint == "generations":
        return _checked(endpoint, _json_fields(body), 0)
    if not is_multipart(content_type):
        raise ImagesApiError(
            f"Invalid Content-Type header ({content_type}), expected multipart/form-data.", None, None
        )
    try:
        form = read_form(content_type or "", body)
    except ValueError as error:
        raise ImagesApiError(f"Could not parse the multipart form: {error}", None, None) from error
    images = [file for file in form.files if _IMAGE_FIELD.match(file.name)]
    if not images:
        raise ImagesApiError("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > MAX_EDIT_IMAGES:
        raise ImagesApiError(
            f"Invalid 'image': array too long. Expected an array with maximum length {MAX_EDIT_IMAGES}, "
            f"but got an array with length {len(images)} instead.",
            "image",
            "array_above_max_length",
        )
    for image in images:
        if image_format(image.data) is None:
            raise ImagesApiError(
                f"Invalid file '{image.name}': unsupported image ({image.content_type}). Supported "
                "file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
                "image",
                "invalid_image_format",
            )
    for mask in form.files_named("mask"):
        if image_format(mask.data) != "png":
            raise ImagesApiError(
                "Invalid file 'mask': the mask must be a PNG image.", "mask", "invalid_image_format"
            )
    return _checked(endpoint, _typed_form_fields(form.fields), len(images))


def _checked(endpoint: ImagesEndpoint, fields: dict[str, Any], input_images: int) -> ImagesRequest:
    prompt = fields.get("prompt")
    if prompt is None or prompt == "":
        raise ImagesApiError("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if not isinstance(prompt, str):
        raise _type_error("prompt", "a string", prompt)
    model = fields.get("model") or "dall-e-2"  # OpenAI's default
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    family = model_family(model)
    if endpoint == "edits" and family == "dall-e-3":
        raise ImagesApiError(
            f"Invalid value: '{model}'. Supported values are: {_listing(_EDIT_MODELS)}.", "model"
        )
    n = _integer(fields, "n", 1, 1, 10)
    if family == "dall-e-3" and n != 1:
        raise ImagesApiError("You must provide n=1 for this model.", None, None)
    stream = fields.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    if stream and family != "gpt-image":
        raise ImagesApiError(f"Streaming is not supported for the model '{model}'.", "stream")
    response_format: ImageFormat
    if family == "gpt-image":
        second = model.startswith("gpt-image-2")
        size = _custom_size(fields) if second else _choice(fields, "size", GPT_IMAGE_SIZES, "auto")
        quality = _choice(fields, "quality", _GPT_IMAGE_QUALITIES, "auto")
        background = _choice(
            fields, "background", _GPT_IMAGE_2_BACKGROUNDS if second else _BACKGROUNDS, "auto"
        )
        output_format = _choice(fields, "output_format", _OUTPUT_FORMATS, "png")
        _integer(fields, "output_compression", 100, 0, 100)
        _choice(fields, "moderation", _MODERATIONS, "auto")
        partial_images = _integer(fields, "partial_images", 0, 0, 3)
        style, response_format = "vivid", "b64_json"
    else:
        dall_e_3 = family == "dall-e-3"
        size = _choice(fields, "size", DALL_E_3_SIZES if dall_e_3 else _OTHER_SIZES, "1024x1024")
        qualities = _DALL_E_3_QUALITIES if dall_e_3 else (*_DALL_E_3_QUALITIES, *_GPT_IMAGE_QUALITIES)
        quality = _choice(fields, "quality", qualities, "standard")
        style = _choice(fields, "style", _STYLES, "vivid")
        response_format = _choice(fields, "response_format", _RESPONSE_FORMATS, "url")
        background, output_format, partial_images = "auto", "png", 0
    return ImagesRequest(
        endpoint=endpoint,
        model=model,
        prompt=prompt,
        n=n,
        size="1024x1024" if size == "auto" else size,
        quality="medium" if quality == "auto" else quality,
        style=style,
        background="opaque" if background == "auto" else background,
        output_format=output_format,
        response_format=response_format,
        stream=bool(stream),
        partial_images=partial_images,
        input_images=input_images,
    )


def _json_fields(body: bytes) -> dict[str, Any]:
    try:
        fields = json.loads(body)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        raise ImagesApiError(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
            "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
            "sent was not valid JSON.)",
            None,
            None,
        )
    return fields


def _typed_form_fields(fields: dict[str, str]) -> dict[str, Any]:
    """A form's text fields with the numbers and booleans JSON would carry."""
    typed: dict[str, Any] = dict(fields)
    for name in ("n", "output_compression", "partial_images"):
        if re.fullmatch(r"-?\d{1,9}", fields.get(name, "")):
            typed[name] = int(fields[name])
    if fields.get("stream") in ("true", "false"):
        typed["stream"] = fields["stream"] == "true"
    return typed


def _custom_size(fields: dict[str, Any]) -> str:
    """gpt-image-2's size: a named one, or ``WxH`` with both edges multiples of 16, the longest at
    most 3840, at most 3:1, and 655,360 to 8,294,400 pixels (as the relays document the model)."""
    size = fields.get("size")
    if not isinstance(size, str) or size in GPT_IMAGE_2_SIZES:
        return str(_choice(fields, "size", GPT_IMAGE_2_SIZES, "auto"))
    match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", size)
    short, long = sorted((int(match[1]), int(match[2]))) if match else (0, 0)
    if not (
        short % 16 == 0
        and long % 16 == 0
        and long <= 3840
        and long <= 3 * short
        and 655_360 <= short * long <= 8_294_400
    ):
        raise ImagesApiError(
            f"Invalid size '{size}'. Requested resolution must have both dimensions divisible by 16, "
            "a maximum edge of 3840px, an aspect ratio of at most 3:1, and between 655,360 and "
            f"8,294,400 total pixels. Supported values also include: {_listing(GPT_IMAGE_2_SIZES)}.",
            "size",
        )
    return size


def _choice(fields: dict[str, Any], name: str, allowed: tuple[Any, ...], default: Any) -> Any:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _type_error(name, f"one of {_listing(allowed, 'or')}", value)
    if value not in allowed:
        raise ImagesApiError(f"Invalid value: '{value}'. Supported values are: {_listing(allowed)}.", name)
    return value


def _integer(fields: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(name, "an integer", value)
    if value < low:
        raise ImagesApiError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got "
            f"{value} instead.",
            name,
            "integer_below_min_value",
        )
    if value > high:
        raise ImagesApiError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got "
            f"{value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _type_error(name: str, expected: str, value: object) -> ImagesApiError:
    kinds = {bool: "a boolean", str: "a string", int: "an integer", float: "a decimal", list: "an array"}
    kind = kinds.get(type(value), "an object" if isinstance(value, dict) else "null")
    return ImagesApiError(
        f"Invalid type for '{name}': expected {expected}, but got {kind} instead.", name, "invalid_type"
    )


def _listing(values: tuple[Any, ...], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 2:
        return f"{quoted[0]} {last} {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", {last} {quoted[-1]}"
