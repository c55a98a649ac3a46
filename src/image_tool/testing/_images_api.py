"""The OpenAI Images API as FakeRelay serves it: ``POST /v1/images/generations`` (JSON) and
``POST /v1/images/edits`` (``multipart/form-data``), read and checked as OpenAI does, answered
whole or as server-sent events.

Three model families: ``gpt-image*`` (base64 in the asked ``output_format``, usage, streaming),
``dall-e-3`` (links or base64 with a ``revised_prompt``, one image, no streaming, no edits), and
any other model, answered as ``dall-e-3`` but with up to ten images in the sizes of either family.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ._answers import Answer, GenerationRequest, Plain, Stream
from ._formats import OutputFormat, encoded_image, image_format
from ._multipart import is_multipart, read_form
from ._png import png_image
from ._replies import ImageFormat, Reply

ImagesEndpoint = Literal["generations", "edits"]
ModelFamily = Literal["gpt-image", "dall-e-3", "other"]

GPT_IMAGE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
DALL_E_3_SIZES = ("1024x1024", "1792x1024", "1024x1792")
_OTHER_SIZES = (*DALL_E_3_SIZES, *GPT_IMAGE_SIZES[1:])
_GPT_IMAGE_QUALITIES = ("low", "medium", "high", "auto")
_DALL_E_3_QUALITIES = ("standard", "hd")
_STYLES = ("vivid", "natural")
_BACKGROUNDS = ("transparent", "opaque", "auto")
_OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("png", "jpeg", "webp")
_MODERATIONS = ("low", "auto")
_RESPONSE_FORMATS: tuple[ImageFormat, ...] = ("url", "b64_json")
_EDIT_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "dall-e-2")
_IMAGE_FIELD = re.compile(r"^image(\[\d*\])?$")  # image, image[] (openai-python), image[0]

OUTPUT_TOKENS = {
    ("square", "low"): 272,
    ("square", "medium"): 1056,
    ("square", "high"): 4160,
    ("oblong", "low"): 408,
    ("oblong", "medium"): 1584,
    ("oblong", "high"): 6240,
}
"""gpt-image-1's output tokens per image, by shape (1024x1024 or 1536x1024 either way) and quality."""
INPUT_IMAGE_TOKENS = 194
"""Input tokens per image given to an edit: 65 + 129 for the one 512-pixel tile it is scaled to."""
MAX_EDIT_IMAGES = 16
PARTIAL_IMAGE_SIDE = 64
"""Streamed previews are small PNGs of their own, unlike the final image."""


class _ImagesApiError(ValueError):
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
        return _json({"error": error})


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
    """The request's fields, checked; ``_ImagesApiError`` says what OpenAI would refuse."""
    if endpoint == "generations":
        return _checked(endpoint, _json_fields(body), 0)
    if not is_multipart(content_type):
        raise _ImagesApiError(
            f"Invalid Content-Type header ({content_type}), expected multipart/form-data.", None, None
        )
    try:
        form = read_form(content_type or "", body)
    except ValueError as error:
        raise _ImagesApiError(f"Could not parse the multipart form: {error}", None, None) from error
    images = [file for file in form.files if _IMAGE_FIELD.match(file.name)]
    if not images:
        raise _ImagesApiError("Missing required parameter: 'image'.", "image", "missing_required_parameter")
    if len(images) > MAX_EDIT_IMAGES:
        raise _ImagesApiError(
            f"Invalid 'image': array too long. Expected an array with maximum length {MAX_EDIT_IMAGES}, "
            f"but got an array with length {len(images)} instead.",
            "image",
            "array_above_max_length",
        )
    for image in images:
        if image_format(image.data) is None:
            raise _ImagesApiError(
                f"Invalid file '{image.name}': unsupported image ({image.content_type}). Supported "
                "file formats are 'image/jpeg', 'image/png', and 'image/webp'.",
                "image",
                "invalid_image_format",
            )
    for mask in form.files_named("mask"):
        if image_format(mask.data) != "png":
            raise _ImagesApiError(
                "Invalid file 'mask': the mask must be a PNG image.", "mask", "invalid_image_format"
            )
    return _checked(endpoint, _typed_form_fields(form.fields), len(images))


def images_answer(request: ImagesRequest, origin: str, reply: Reply) -> Answer:
    """The Images API's answer, as the reply scripts it (transport faults aside)."""
    headers = tuple(reply.headers.items())
    if reply.body is not None:
        return Plain(reply.status, reply.body, headers)
    if request.stream:
        return Stream(_events(request, reply))
    return Plain(reply.status, images_body(request, origin), headers)


def images_body(request: ImagesRequest, origin: str) -> bytes:
    """The whole answer: gpt-image's base64 images with their settings and usage, or the
    ``dall-e-3`` shape (``url`` or ``b64_json``, and ``revised_prompt``)."""
    created = int(time.time())
    if request.family == "gpt-image":
        return _json(
            {
                "created": created,
                **_settings(request),
                "data": [{"b64_json": _base64(_image(request, index))} for index in range(request.n)],
                "usage": _usage(request, request.n),
            }
        )
    data = []
    for index in range(request.n):
        if request.response_format == "b64_json":
            item = {"b64_json": _base64(png_image(request.width, request.height, request.token(index)))}
        else:
            item = {"url": f"{origin}/images/{request.size}/{request.token(index)}.png"}
        data.append({**item, "revised_prompt": request.revised_prompt})
    return _json({"created": created, "data": data})


def _events(request: ImagesRequest, reply: Reply) -> Iterator[bytes]:
    """The stream, and what its fault does to it: an error event after the first event, the
    last event missing, or final events without their image."""
    events = _image_events(request, with_images=reply.stream_fault != "done_without_image")
    if reply.stream_fault == "error_mid_stream":
        yield next(events)
        yield _stream_error()
    elif reply.stream_fault == "cut_before_done":
        held = next(events)
        for event in events:
            yield held
            held = event
    else:
        yield from events


def _image_events(request: ImagesRequest, *, with_images: bool) -> Iterator[bytes]:
    """For each image, ``partial_images`` previews then the final image with its usage; no ``[DONE]``."""
    kind = "image_generation" if request.endpoint == "generations" else "image_edit"
    for index in range(request.n):
        for partial in range(request.partial_images):
            preview = png_image(PARTIAL_IMAGE_SIDE, PARTIAL_IMAGE_SIDE, f"{request.token(index)}|{partial}")
            payload = {
                "type": f"{kind}.partial_image",
                "b64_json": _base64(preview),
                "partial_image_index": partial,
                "created_at": int(time.time()),
                **_settings(request, streamed=True),
            }
            yield _event(payload)
        image = {"b64_json": _base64(_image(request, index))} if with_images else {}
        completed = {
            "type": f"{kind}.completed",
            **image,
            "created_at": int(time.time()),
            **_settings(request, streamed=True),
            "usage": _usage(request, 1),  # each final image carries its own, as if asked alone
        }
        yield _event(completed)


def _checked(endpoint: ImagesEndpoint, fields: dict[str, Any], input_images: int) -> ImagesRequest:
    prompt = fields.get("prompt")
    if prompt is None or prompt == "":
        raise _ImagesApiError("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if not isinstance(prompt, str):
        raise _type_error("prompt", "a string", prompt)
    model = fields.get("model") or "dall-e-2"  # OpenAI's default
    if not isinstance(model, str):
        raise _type_error("model", "a string", model)
    family = model_family(model)
    if endpoint == "edits" and family == "dall-e-3":
        raise _ImagesApiError(
            f"Invalid value: '{model}'. Supported values are: {_listing(_EDIT_MODELS)}.", "model"
        )
    n = _integer(fields, "n", 1, 1, 10)
    if family == "dall-e-3" and n != 1:
        raise _ImagesApiError("You must provide n=1 for this model.", None, None)
    stream = fields.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean", stream)
    if stream and family != "gpt-image":
        raise _ImagesApiError(f"Streaming is not supported for the model '{model}'.", "stream")
    response_format: ImageFormat
    if family == "gpt-image":
        size = _choice(fields, "size", GPT_IMAGE_SIZES, "auto")
        quality = _choice(fields, "quality", _GPT_IMAGE_QUALITIES, "auto")
        background = _choice(fields, "background", _BACKGROUNDS, "auto")
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
        raise _ImagesApiError(
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


def _choice(fields: dict[str, Any], name: str, allowed: tuple[Any, ...], default: Any) -> Any:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _type_error(name, f"one of {_listing(allowed, 'or')}", value)
    if value not in allowed:
        raise _ImagesApiError(f"Invalid value: '{value}'. Supported values are: {_listing(allowed)}.", name)
    return value


def _integer(fields: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = fields.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise _type_error(name, "an integer", value)
    if value < low:
        raise _ImagesApiError(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got "
            f"{value} instead.",
            name,
            "integer_below_min_value",
        )
    if value > high:
        raise _ImagesApiError(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got "
            f"{value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def _type_error(name: str, expected: str, value: object) -> _ImagesApiError:
    kinds = {bool: "a boolean", str: "a string", int: "an integer", float: "a decimal", list: "an array"}
    kind = kinds.get(type(value), "an object" if isinstance(value, dict) else "null")
    return _ImagesApiError(
        f"Invalid type for '{name}': expected {expected}, but got {kind} instead.", name, "invalid_type"
    )


def _listing(values: tuple[Any, ...], last: str = "and") -> str:
    quoted = [f"'{value}'" for value in values]
    if len(quoted) == 2:
        return f"{quoted[0]} {last} {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", {last} {quoted[-1]}"


def _settings(request: ImagesRequest, *, streamed: bool = False) -> dict[str, Any]:
    """The resolved settings, in the order OpenAI writes them in a body or in an event."""
    names = ("size", "quality", "background", "output_format")
    values = {name: getattr(request, name) for name in names}
    return {name: values[name] for name in (names if streamed else sorted(names))}


def _usage(request: ImagesRequest, images: int) -> dict[str, Any]:
    text_tokens = max(1, len(request.prompt.split()))
    image_tokens = INPUT_IMAGE_TOKENS * request.input_images
    shape = "square" if request.width == request.height else "oblong"
    output_tokens = OUTPUT_TOKENS[shape, request.quality] * images
    return {
        "input_tokens": text_tokens + image_tokens,
        "input_tokens_details": {"text_tokens": text_tokens, "image_tokens": image_tokens},
        "output_tokens": output_tokens,
        "total_tokens": text_tokens + image_tokens + output_tokens,
    }


def _image(request: ImagesRequest, index: int) -> bytes:
    return encoded_image(request.output_format, request.width, request.height, request.token(index))


def _stream_error() -> bytes:
    error = {"message": "The server had an error while processing your request.", "type": "server_error"}
    return _event({"type": "error", "error": {**error, "param": None, "code": "server_error"}})


def _event(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return f"event: {payload['type']}\ndata: {data}\n\n".encode()


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()
