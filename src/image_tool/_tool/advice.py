"""What the model reads from ``generate_image``: a result described, each kind of failure as a
sentence saying what to do next, and arguments that failed validation explained.

Pure text, bounded whatever the relay sent: it goes into the model's context (the tool's
artifact keeps everything).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import ValidationError

from .._policy.budget import BudgetExceededError
from .._wire.gateways import DRAWN_BEHIND_GATEWAY
from .._wire.signals import stream_unsupported
from ..errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConfigurationError,
    ContentPolicyError,
    InvalidRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    NoImageError,
    QuotaExceededError,
    RateLimitError,
    ReferenceImageError,
    StreamWithoutImageError,
)
from ..models import GeneratedImage, ImageGenerationResult

MAX_SHOWN_PROMPT = 1000
"""Characters of a revised prompt shown to the model (the artifact keeps it whole)."""
MAX_SHOWN_URL = 2048
"""A longer link is not put into the model's context (the artifact keeps it)."""


def describe_result(
    result: ImageGenerationResult,
    ids: Sequence[str] = (),
    images_left: int | None = None,
    cost_left: float | None = None,
) -> str:
    """The model's view of a result: each image's id (``ids``, one per image, when the tool gave
    them), link and revised prompt, never base64, and bounded whatever the relay sent (the
    artifact keeps everything); then what its budget has left, when it has limits."""
    count = len(result.images)
    lines = [f"Generated {count} image{'s' if count > 1 else ''} ({_brief(result.model, 100)}):"]
    labels = [f"{id_}:" for id_ in ids] if len(ids) == count else [f"{n}." for n in range(1, count + 1)]
    for label, image in zip(labels, result.images, strict=True):
        lines.append(f"{label} {_where(image)}")
        if image.path:
            lines.append(f"   Saved at: {image.path}")
        if image.save_error:
            lines.append(f"   Not saved: {_brief(image.save_error)}")
        if image.revised_prompt:
            lines.append(f"   Revised prompt: {_brief(image.revised_prompt, MAX_SHOWN_PROMPT)}")
    if result.dropped_images:
        lines.append(
            f"The service sent {result.dropped_images} more image(s) than could be kept; they were left out."
        )
    if result.urls:
        lines.append("Give the user these links; they expire after a while.")
    if len(ids) == count and count:
        lines.append(
            f"To edit or draw from one of these later, pass its id (such as {ids[0]!r}) in image_urls; "
            "no need to copy its link."
        )
    if result.task_id and result.actions:
        actions = ", ".join(result.actions)
        named = f" (or {ids[0]!r})" if len(ids) == count and count else ""
        lines.append(
            f"This is Midjourney task {result.task_id}. To act on it, call generate_image with "
            f"task_id={result.task_id!r}{named} and action one of: {_brief(actions, 200)} (U upscales "
            "one image of the grid, V draws variations of one, numbered left to right, top to bottom)."
        )
    left = [f"{images_left} image(s)"] if images_left is not None else []
    left += [f"{cost_left:.4g} to spend"] if cost_left is not None else []
    if left:
        lines.append(f"Left in this budget: {' and '.join(left)}.")
    return "\n".join(lines)


def _where(image: GeneratedImage) -> str:
    if image.url and len(image.url) > MAX_SHOWN_URL:
        return f"a link of {len(image.url)} characters (kept in the tool's artifact)"
    return image.url or "an inline image (kept in the tool's artifact)"


def describe_failure(error: Exception) -> str:
    """One sentence per kind of failure, telling the model what to do next."""
    if isinstance(error, BudgetExceededError):
        return str(error)  # written for the model already
    if isinstance(error, ReferenceImageError):
        return (
            f"Invalid image_urls: {error}. Pass an image id this tool reported (such as 'img_1'), an "
            "image URL or a saved path."
        )
    if isinstance(error, InvalidRequestError):
        return f"Invalid arguments for generate_image: {error} Correct them and call it again."
    if isinstance(error, ConfigurationError):
        return f"The image tool is set up wrongly: {error} Tell the user; do not retry."
    if not isinstance(error, APIError):
        return (
            f"The image tool failed unexpectedly ({type(error).__name__}). Tell the user that image "
            "generation failed; do not retry."
        )
    if isinstance(error, ContentPolicyError):
        return (
            f"The image service refused this prompt under its content policy ({_brief(error.summary)}). "
            "Rephrase the prompt without the disallowed content and try again, or ask the user "
            "for another idea."
        )
    if isinstance(error, RateLimitError):
        wait = f"{error.retry_after:.0f} seconds" if error.retry_after else "about a minute"
        return (
            f"The image service is rate-limiting requests ({_brief(error.summary)}). Wait {wait} before "
            "calling generate_image again; do not retry at once."
        )
    if isinstance(error, QuotaExceededError):
        return (
            f"The image service's account has run out of quota ({_brief(error.summary)}). Do not retry; "
            "tell the user that image generation is unavailable until the quota is topped up."
        )
    if isinstance(error, ModelNotFoundError):
        return (
            f"The image service has no model available for this request ({_brief(error.summary)}). "
            "Do not retry now; tell the user that image generation is unavailable at the moment."
        )
    if isinstance(error, AuthenticationError):
        return (
            "The image service rejected this application's credentials. Do not retry; tell the "
            "user that image generation is unavailable right now."
        )
    if error.status_code in DRAWN_BEHIND_GATEWAY:
        return (
            f"The image service failed after the relay took the request ({_brief(error.summary)}): "
            "the image may still have been drawn, and billed. Do not retry on your own; tell the "
            "user, who can try again."
        )
    if isinstance(error, APITimeoutError):
        return (
            "The image service did not answer in time. Tell the user the generation timed out; "
            "you may try once more with a simpler prompt or fewer images."
        )
    if isinstance(error, APIConnectionError):
        return (
            "The image service could not be reached. Tell the user that image generation is "
            "unavailable at the moment and can be tried again later."
        )
    if isinstance(error, StreamWithoutImageError) or stream_unsupported(
        error.code, error.message, error.status_code
    ):
        return (
            "The image service closed the stream without sending an image; it may not stream this "
            "model. This is not about the prompt: do not rephrase it. Tell the user, who can set "
            "stream=False for this service."
        )
    if isinstance(error, NoImageError):
        return (
            f"The image service answered without an image ({_brief(error.summary)}). Try the same "
            "request once more; if it fails again, tell the user."
        )
    if isinstance(error, MalformedResponseError):
        return (
            "The image service sent an answer that could not be read. Try again once; if it "
            "fails again, tell the user that image generation is failing."
        )
    status = f" with HTTP {error.status_code}" if error.status_code is not None else ""
    return (
        f"The image service failed{status} ({_brief(error.summary)}). Tell the user that image "
        "generation failed; retry later only if the message suggests a passing problem."
    )


def _brief(text: str, limit: int = 300) -> str:
    """The relay's own words, bounded: they go into the model's context."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_invalid_arguments(error: Exception) -> str:
    """The model's view of arguments that failed validation: which ones, and why."""
    if isinstance(error, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in issue['loc']) or 'arguments'}: {issue['msg']}"
            for issue in error.errors()
        )
    else:
        problems = str(error)
    return f"Invalid arguments for generate_image: {problems}. Correct them and call it again."
