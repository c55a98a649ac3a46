"""The exceptions image-tool raises.

ImageToolError
├── ConfigurationError            settings missing or invalid, raised at construction
├── InvalidRequestError           an argument of a call is invalid, found before anything is sent
│   └── ReferenceImageError       a reference image (for an edit) cannot be used
├── SaveError                     an image was generated but could not be saved
└── APIError                      a generation request failed
    ├── APIConnectionError        the relay could not be reached, or the connection broke
    │   └── APITimeoutError       the relay did not answer in time
    ├── APIStatusError            the relay answered with an error
    │   ├── AuthenticationError   the key was refused
    │   ├── QuotaExceededError    the account behind the key has no quota left
    │   ├── ModelNotFoundError    the relay has no channel for the model
    │   ├── ContentPolicyError    the prompt was refused under the content policy
    │   └── RateLimitError        too many requests, or the relay is saturated
    └── MalformedResponseError    the answer could not be read
        └── NoImageError          the answer was readable but held no image
            └── StreamWithoutImageError  a stream ended cleanly with nothing in it

These are all a caller can catch. The internal exceptions (``_wire.body.UnreadableBodyError``,
``_policy.budget.BudgetExceededError``) subclass the tree and are turned into one of these before
they leave the package; the emulator of ``image_tool.testing`` keeps its private exceptions inside
its own threads.

A relay's error answer is read into this tree by ``_wire/failures.py``.
"""

from __future__ import annotations

from typing import Any

from ._wire.redaction import scrub
from ._wire.relay_text import request_id, summary


class ImageToolError(Exception):
    """Base class of every image-tool exception."""


class ConfigurationError(ImageToolError):
    """A setting is missing or invalid; the message names the variable or argument to set."""


class InvalidRequestError(ImageToolError):
    """An argument of a call is invalid (an empty prompt, ``n`` below 1); nothing was sent."""


class ReferenceImageError(InvalidRequestError):
    """A reference image cannot be used; the message says which one and why."""


class SaveError(ImageToolError):
    """An image was generated but could not be saved; the message says why.

    Saving never raises out of a generation: the reason goes to ``GeneratedImage.save_error``.
    """


class APIError(ImageToolError):
    """A generation request failed. Carries what the relay said, never the API key."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        answer_started: bool = False,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.message = message
        """The relay's own message, or a description of the failure."""
        self.status_code = status_code
        """The HTTP status of the answer, if one arrived."""
        self.code = scrub(code) if code else code
        """The relay's error code, such as ``content_policy_violation``."""
        self.error_type = scrub(error_type) if error_type else error_type
        """The relay's error type, such as ``new_api_error``."""
        self.answer_started = answer_started
        """Whether a successful answer had begun when this failed: such a generation may be
        billed, and is never retried."""
        self.sent_unanswered = False
        """Whether the request had gone out whole and no answer came (a dropped connection, a
        read timeout): the relay may have drawn (and billed) the image, so it is retried only
        with ``retry_unanswered=True``."""

    @property
    def summary(self) -> str:
        """The relay's message as a person or a model should read it: the innermost error a relay
        in the middle wrapped (``litellm.BadRequestError: OpenAIException - ...``), without the
        request id relays append."""
        return summary(self.message, self.code, self.status_code)

    @property
    def request_id(self) -> str | None:
        """The id a relay appended to its message (`` (request id: ...)``), for its support."""
        return request_id(self.message)

    def __str__(self) -> str:
        details = []
        if self.status_code is not None:
            details.append(f"HTTP {self.status_code}")
        if self.code:
            details.append(f"code {self.code}")
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def redact(self, secret: str) -> None:
        """Remove ``secret`` from every text of the error (relays sometimes echo keys)."""
        self.message = scrub(self.message, secret)
        self.code = scrub(self.code, secret) if self.code else self.code
        self.error_type = scrub(self.error_type, secret) if self.error_type else self.error_type
        self.args = (self.message,)


class APIConnectionError(APIError):
    """The relay could not be reached, or the connection broke before a full answer."""


class APITimeoutError(APIConnectionError):
    """The relay did not answer within the configured timeout."""


class APIStatusError(APIError):
    """The relay answered with an error (an error status, or an error body)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after
        """Seconds the relay asked to wait (``Retry-After`` or ``retry-after-ms``), when it said."""


class AuthenticationError(APIStatusError):
    """The relay refused the API key (HTTP 401 or 403)."""


class QuotaExceededError(APIStatusError):
    """The account behind the key has no quota left (``insufficient_user_quota``)."""


class ModelNotFoundError(APIStatusError):
    """The relay has no channel serving the model (``model_not_found``)."""


class ContentPolicyError(APIStatusError):
    """The relay refused the prompt under its content policy."""


class RateLimitError(APIStatusError):
    """Too many requests, or the relay's upstream is saturated (HTTP 429)."""


class MalformedResponseError(APIError):
    """The relay's answer could not be read as a generation result."""


class NoImageError(MalformedResponseError):
    """The relay's answer was readable but held no image."""


class StreamWithoutImageError(NoImageError):
    """A streamed answer ended cleanly but carried nothing: no image, no text.

    Not a refusal. Relays answer so when they cannot stream the model (LiteLLM drops an answer in
    the documented ``data[]`` shape; new-api sends a bare ``[DONE]``): ask with ``stream=False``.
    """
