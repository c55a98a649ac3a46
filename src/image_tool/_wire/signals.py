"""The signals of each kind of failure, one table per kind, each entry with where it comes from.

A relay says what went wrong in codes (``code``, ``type``, Google's ``status`` and ``ErrorInfo``
reasons), words (English and Chinese), finish reasons and statuses; relays in the middle keep some
and drop others. ``kind_of`` weighs them in one order (``docs/errors.md`` describes it):

1. the exceptions the field showed, written in as entries (``EXCEPTIONS``);
2. codes, by kind in the order of ``KINDS``: a provider's structured reason is a code too;
3. an error about the model: ``param`` is ``"model"``, or the words name a model and say it is not
   there (words alone, "not supported", decide nothing: a bad size is "not supported" too);
4. words, by kind in the order of ``BY_WORDS`` (a refusal's last);
5. the status (401/403: the key; 429: a rate limit);
6. else ``APIStatusError``: the relay's own words, nothing concluded.

A ``type`` alone decides nothing where providers reuse it for unlike failures: OpenAI's
``image_generation_user_error`` is the type of a refusal, a bad size and an unknown model alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import (
    APIStatusError,
    AuthenticationError,
    ContentPolicyError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
)


@dataclass(frozen=True)
class Kind:
    error: type[APIStatusError]
    codes: frozenset[str]
    """Codes, types, statuses and reasons, lower-cased, matched exactly."""
    words: tuple[str, ...] = ()
    """Lower-cased, matched anywhere in the messages."""
    statuses: frozenset[int] = frozenset()


REFUSAL = Kind(
    ContentPolicyError,
    frozenset(
        {
            "content_policy_violation",  # OpenAI (DALL-E)
            "moderation_blocked",  # OpenAI Images API (gpt-image), field sample 36
            "content_filter",  # Azure OpenAI; OpenAI's and OpenRouter's finish reason
            "sensitive_words_detected",  # one-api / new-api (relay/controller: CheckSensitive)
            "prompt_blocked",  # new-api
            "violation_fee.grok.csam",  # new-api (types/error.go)
            # Gemini's finish and block reasons (generativelanguage API reference: FinishReason,
            # BlockReason), as gateways pass them on
            "safety",
            "prohibited_content",
            "blocklist",
            "spii",
            "image_safety",
            "image_prohibited_content",
        }
    ),
    (
        "content policy",
        "safety system",
        "not allowed by our",
        "moderation",
        "违反",
        "违规",
        "敏感",  # also midjourney-proxy's banned prompt: "可能包含敏感词"
        "banned prompt",  # Midjourney's "Banned prompt detected" (midjourney-proxy ErrorMessageHandler)
        "output filters",  # Midjourney's "Request cancelled due to output filters" (trueai-org proxy)
    ),
)
QUOTA = Kind(
    QuotaExceededError,
    frozenset(
        {
            "insufficient_quota",  # OpenAI (error codes guide)
            "billing_hard_limit_reached",  # OpenAI
            "billing_not_active",  # OpenAI; see EXCEPTIONS for early one-api
            "insufficient_user_quota",  # new-api / one-api (types/error.go)
            "pre_consume_token_quota_failed",  # new-api
            "entitlement_required",  # new-api subscriptions
            "entitlement_inactive",
            "entitlement_daily_limit_exceeded",
            "entitlement_total_limit_exceeded",
            "budget_exceeded",  # LiteLLM proxy (ProxyException)
            "billing_disabled",  # Google ErrorInfo reason
            "quota_not_enough",  # new-api's Midjourney relay (relay/mjproxy_handler.go)
        }
    ),
    (
        "额度不足",  # one-api / new-api: "用户额度不足", "该令牌额度已用尽"
        "额度已用尽",
        "余额不足",
        "insufficient quota",
        "quota exceeded",
        "quota is not enough",  # new-api, field sample 49
        "exceeded your current quota",  # OpenAI
        "insufficient balance",
        "budget has been exceeded",  # LiteLLM proxy
    ),
)
MODEL = Kind(
    ModelNotFoundError,
    frozenset({"model_not_found", "model_not_available", "channel:no_available_key"}),  # OpenAI; new-api
    ("无可用渠道", "no available channel", "invalid model name", "model not found"),  # one-api; LiteLLM
)
KEY = Kind(
    AuthenticationError,
    frozenset(
        {
            "invalid_api_key",  # OpenAI
            "api_key_invalid",  # Google ErrorInfo reason
            "unauthenticated",  # Google status
            "permission_denied",  # Google status
        }
    ),
    ("无效的令牌", "invalid token", "incorrect api key"),  # one-api / new-api; OpenAI
    frozenset({401, 403}),
)
RATE_LIMIT = Kind(
    RateLimitError,
    frozenset(
        {
            "rate_limit_exceeded",  # OpenAI; Google ErrorInfo reason
            "rate_limit_error",  # Anthropic, LiteLLM
            "overloaded_error",  # Anthropic
            "token_concurrency_limit_reached",  # new-api
            "token_concurrency_unavailable",
            "all_deployments_in_cooldown",  # LiteLLM router
            "resource_exhausted",  # Google status (429)
            "unavailable",  # Google status (503: the model is overloaded)
        }
    ),
    (
        "rate limit",
        "too many requests",
        "overloaded",  # Gemini, OpenAI ("currently overloaded with other requests")
        "capacity",  # Google ("exhausted your capacity"), OpenAI ("at capacity")
        "cooldown",  # LiteLLM
        "resource exhausted",
        "temporarily unavailable",
        "server is busy",
        "请求数限制",
        "请求过于频繁",
        "频率限制",
        "负载已饱和",  # new-api / one-api: "当前分组上游负载已饱和"
        "繁忙",  # "服务繁忙", "系统繁忙"
        "队列已满",  # midjourney-proxy's queue full (ReturnCode 23)
        "queue full",  # Midjourney's "Queue full" (trueai-org proxy)
    ),
    frozenset({429}),
)

KINDS = (REFUSAL, QUOTA, MODEL, KEY, RATE_LIMIT)
"""In the order their codes are weighed."""
BY_WORDS = (QUOTA, MODEL, RATE_LIMIT, KEY, REFUSAL)
"""In the order their words are weighed: a refusal's words ("moderation") also name a setting, so
they count last."""


@dataclass(frozen=True)
class FieldException:
    """A combination the field showed, which the general order would read wrong."""

    codes: frozenset[str]
    words: tuple[str, ...]
    error: type[APIStatusError]


EXCEPTIONS = (
    # Early one-api sent its saturation words under OpenAI's billing code (field sample 03).
    FieldException(frozenset({"billing_not_active"}), ("负载已饱和", "负载饱和"), RateLimitError),
)

# "The model 'dall-e-3' does not exist", "models/gemini-1.5-pro is not found" (Google),
# "model gpt-x is not supported", "模型 x 不存在": the model named, then its absence, in one
# sentence (a dot inside a name does not end it).
MODEL_ABSENT = re.compile(
    r"\bmodels?\b(?:[^.\n]|\.(?=\S)){0,80}?"
    r"(?:does not exist|doesn't exist|not found|is not supported|not supported|is not available|"
    r"not available|unknown|requires an image model)"
    r"|\bunknown model\b|\bunsupported model\b|模型[^。\n]{0,40}?(?:不存在|不支持|不可用)",
    re.IGNORECASE,
)


def kind_of(status_code: int, codes: set[str], words: str, param: str | None) -> type[APIStatusError]:
    """The kind of an error from everything the relay said (see the module's docstring).
    ``codes`` holds the error's codes and those of errors embedded in its message, lower-cased;
    ``words`` its messages, outer and inner."""
    lowered = words.lower()
    for exception in EXCEPTIONS:
        if codes & exception.codes and any(word in lowered for word in exception.words):
            return exception.error
    for kind in KINDS:
        if codes & kind.codes:
            return kind.error
    if (param or "").lower() == "model" or MODEL_ABSENT.search(words):
        return ModelNotFoundError
    for kind in BY_WORDS:
        if any(word in lowered for word in kind.words):
            return kind.error
    for kind in KINDS:
        if status_code in kind.statuses:
            return kind.error
    return APIStatusError


def refusal_in(reasons: Iterable[object]) -> str | None:
    """The first finish or block reason (OpenAI's and OpenRouter's ``content_filter``, Gemini's
    ``SAFETY``, ``IMAGE_SAFETY``...) that is a refusal under the content policy, as the relay wrote it."""
    for reason in reasons:
        if isinstance(reason, str) and reason.strip().lower() in REFUSAL.codes:
            return reason.strip()
    return None


def refusal_error(reason: str, text: str) -> ContentPolicyError:
    said = f" It said: {text[:300]}" if text.strip() else ""
    return ContentPolicyError(
        f"The relay stopped the answer for its content policy (finish reason {reason}).{said}",
        status_code=200,
        code=reason,
    )


# one-api (relay/controller/helper.go isErrorHappened): a stream request answered with whole JSON
# by its upstream is an error, "bad response status code 200", sent with status 200.
_STREAM_REFUSED = re.compile(r"bad response status code 200\b")


def stream_unsupported(code: str | None, message: str, status_code: int | None) -> bool:
    """Whether the relay says it could not stream this answer (its upstream answered whole)."""
    return status_code == 200 and code == "bad_response_status_code" and bool(_STREAM_REFUSED.search(message))
