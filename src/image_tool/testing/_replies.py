"""Reply: what FakeRelay answers to one generation request, and the answers relays give in the field."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._image_jobs import ImageJobScript
from ._midjourney import MjScript

Shape = Literal["images_api", "markdown", "inline_data", "content_parts", "json_block"]
"""How a success is written: the documented ``data[]``; a chat completion whose content holds
markdown images (with progress text), inline ``data:`` images, a list of content parts, or
URLs only inside its fenced json block."""
ImageFormat = Literal["url", "b64_json"]
Locale = Literal["zh", "en"]
StreamFault = Literal["error_mid_stream", "done_without_image", "cut_before_done"]
"""How a streamed answer goes wrong: an error object mid-stream, ``[DONE]`` with no image, or the
connection closed before ``[DONE]``."""
TransportFault = Literal["reset_mid_body", "endless_stream", "huge_body", "drop_unanswered"]
"""How the connection itself goes wrong: reset halfway through the body; an event stream that
never ends (keep-alives only); a body far larger than any answer (256 MiB, written lazily); the
request read whole and drawn (counted as generated), then the connection closed with no answer."""
RelayRefusal = Literal["token_spent", "prompt_blocked"]
"""A refusal the relay software makes itself, in its own words: the key's own quota is spent; the
prompt was blocked (new-api's ``prompt_blocked``)."""
RelayProfile = Literal["vendor", "new-api", "one-api", "litellm", "gateway"]
"""The relay software FakeRelay answers as: the documented vendor (the replies as scripted),
new-api, one-api or the LiteLLM proxy in front of that vendor, or an OpenRouter-style gateway
that draws on the chat endpoint (images in ``message.images``)."""


@dataclass(frozen=True)
class Reply:
    """One scripted answer of FakeRelay to a generation request.

    The default is a success in the documented shape, for the request's prompt, ``n`` and
    ``size``. The class methods build the other shapes and the failures seen in the field.
    """

    status: int = 200
    body: bytes | None = None
    """A raw body, sent as it is (wins over everything below)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Headers added to the answer, a streamed one too (a relay echoing the key in one, say)."""
    delay: float = 0.0
    """Seconds to wait before answering."""
    shape: Shape = "images_api"
    image_format: ImageFormat = "url"
    """For ``images_api``: links served by the relay, or inline base64."""
    locale: Locale = "zh"
    """The language of the progress text of a ``markdown`` answer."""
    content: str | None = None
    """A chat completion with exactly this content (text without an image, a refusal...)."""
    model: str | None = None
    """The model the answer names; relays may answer with another than the one asked."""
    stream_fault: StreamFault | None = None
    fault: TransportFault | None = None
    pace: float = 0.0
    """Seconds between the events of a streamed answer."""
    relay_refusal: RelayRefusal | None = None
    """Made by the relay itself, not its upstream: under a relay profile, that software's own words
    for it replace ``body`` (see ``FakeRelay(profile=...)``)."""
    midjourney: MjScript | None = None
    """What a Midjourney submit does (``Reply.mj_task`` and its siblings); other endpoints ignore it."""
    async_job: ImageJobScript | None = None
    """What an asynchronous Images API submit does (``Reply.image_job``, ``Reply.image_job_failed``);
    other requests ignore it."""

    @classmethod
    def success(
        cls,
        shape: Shape = "images_api",
        *,
        image_format: ImageFormat = "url",
        locale: Locale = "zh",
        model: str | None = None,
        delay: float = 0.0,
        pace: float = 0.0,
    ) -> Reply:
        return cls(shape=shape, image_format=image_format, locale=locale, model=model, delay=delay, pace=pace)

    @classmethod
    def completion(cls, content: str) -> Reply:
        """A chat completion (or, streamed, its events) with this content. Streamed, text goes
        out a dozen characters an event, so a longer word is split across events."""
        return cls(shape="markdown", content=content)

    @classmethod
    def streamed_fault(cls, fault: StreamFault, *, locale: Locale = "zh") -> Reply:
        """A streamed markdown answer that goes wrong (a plain request gets the full answer)."""
        return cls(shape="markdown", locale=locale, stream_fault=fault)

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        *,
        code: str | None = None,
        error_type: str = "new_api_error",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An OpenAI-style error object, as relays pass it through."""
        error = {"message": message, "type": error_type, "param": None, "code": code}
        body = json.dumps({"error": error}, ensure_ascii=False).encode()
        return cls(status=status, body=body, headers=headers or {})

    @classmethod
    def unauthorized(cls) -> Reply:
        return cls.error(401, "Invalid token (request id: 20260311-fake)", code="invalid_api_key")

    @classmethod
    def content_policy(cls) -> Reply:
        return cls.error(
            400,
            "Your request was rejected as a result of our safety system. Your prompt may contain "
            "text that is not allowed by our safety system.",
            code="content_policy_violation",
            error_type="image_generation_user_error",
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Reply:
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls.error(
            429, "您已达到请求数限制：1分钟内最多请求10次", code="rate_limit_exceeded", headers=headers
        )

    @classmethod
    def bare_rate_limit(cls) -> Reply:
        """A limiter's 429 with an empty body."""
        return cls(status=429, body=b"")

    @classmethod
    def saturated(cls, status: int = 503) -> Reply:
        return cls.error(status, "当前分组上游负载已饱和，请稍后再试 (request id: 20260311-fake)")

    @classmethod
    def quota_exhausted(cls) -> Reply:
        return cls.error(
            403, "用户额度不足, 剩余额度: ＄0.012 (request id: 20260311-fake)", code="insufficient_user_quota"
        )

    @classmethod
    def model_unavailable(cls) -> Reply:
        return cls.error(
            503,
            "当前分组 default 下对于模型 gpt-4o-image 无可用渠道 (request id: 20260311-fake)",
            code="model_not_found",
            error_type="one_api_error",
        )

    @classmethod
    def token_spent(cls) -> Reply:
        """The key's own quota is spent (new-api: 401 "该令牌额度已用尽", no code); the relay
        refuses before asking its upstream."""
        error = {"message": "该令牌额度已用尽 (request id: 20260311-fake)", "type": "new_api_error"}
        body = json.dumps({"error": error}, ensure_ascii=False).encode()
        return cls(status=401, body=body, relay_refusal="token_spent")

    @classmethod
    def prompt_blocked(cls) -> Reply:
        """new-api's ``prompt_blocked``: the upstream blocked the prompt (a content-policy refusal)."""
        reply = cls.error(
            400,
            "request blocked by Gemini API: PROHIBITED_CONTENT (request id: 20260311-fake)",
            code="prompt_blocked",
            error_type="prompt_blocked",
        )
        return replace(reply, relay_refusal="prompt_blocked")

    @classmethod
    def server_error(cls) -> Reply:
        return cls.error(
            500,
            "upstream error: do request failed (request id: 20260311-fake)",
            code="do_request_failed",
            error_type="upstream_error",
        )

    @classmethod
    def bad_gateway(cls) -> Reply:
        """A gateway's HTML page."""
        page = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"
        return cls(status=502, body=page, headers={"Content-Type": "text/html"})

    @classmethod
    def error_with_200(cls) -> Reply:
        return cls.error(200, "用户额度不足", code="insufficient_user_quota")

    @classmethod
    def empty_link(cls) -> Reply:
        """A completion whose image link is empty: ``![image]()``."""
        return cls.completion(
            '```json\n{"prompt": "a cat"}\n```\n\n>🕐 排队中.\n\n>⚡ 生成中.....\n\n![image]()'
        )

    @classmethod
    def text_only(cls) -> Reply:
        """A completion with an id and a preview page, but no image."""
        return cls.completion("任务已提交，ID: task_01hx9\n预览页面: https://preview.example/task_01hx9")

    @classmethod
    def refusal(cls, locale: Locale = "zh") -> Reply:
        """A completion whose text is a content-policy refusal."""
        if locale == "en":
            return cls.completion(
                "Your request may contain content that is not allowed by our safety system."
            )
        return cls.completion(
            '```json\n{"prompt": "a cat"}\n```\n\n>🕐 排队中.\n\n'
            "> ❌ 图片检测系统认为内容可能违反相关政策，请更换提示词后重试。"
        )

    @classmethod
    def refusal_prompt(cls) -> Reply:
        """The other Chinese refusal: the prompt broke the upstream's policy."""
        return cls.completion("输入的提示词违反了OpenAI的相关服务政策，请调整提示词后进行重试")

    @classmethod
    def rate_limit_sentence(cls) -> Reply:
        """A completion whose text says the relay is saturated."""
        return cls.completion("当前分组上游负载已饱和，请稍后再试")

    @classmethod
    def slow(cls, seconds: float) -> Reply:
        return cls(delay=seconds)

    @classmethod
    def transport_fault(cls, fault: TransportFault) -> Reply:
        return cls(fault=fault)

    @classmethod
    def truncated_json(cls) -> Reply:
        """A body cut short by a proxy that still closed it cleanly."""
        return cls(body=b'{"created": 1725000000, "data": [{"url": "https://cdn.exa')

    @classmethod
    def mj_task(cls, polls: int = 3) -> Reply:
        """A Midjourney submit answered code 1 with a task id, the task reaching SUCCESS after
        ``polls`` fetches: each fetch shows the task's state, then moves it one step. The first
        shows new-api's empty status and ``"0%"``, the second ``SUBMITTED``, the next ones
        ``IN_PROGRESS`` with a rising percentage and a preview link; from the fetch after the
        ``polls``-th on, ``SUCCESS``, ``"100%"``, the image's link and its buttons. A large
        ``polls`` makes a slow task."""
        if polls < 0:
            raise ValueError(f"polls must be 0 or more, not {polls!r}")
        return cls(midjourney=MjScript(polls=polls))

    @classmethod
    def mj_failed(cls, reason: str, after: int = 2) -> Reply:
        """A Midjourney task that is ``IN_PROGRESS`` for ``after`` fetches, then ``FAILURE`` with
        this ``failReason`` and ``"100%"`` (new-api's progress of a failure). A moderation
        failure reads ``"[Banned prompt detected] Sorry! Our AI moderator thinks this prompt is
        probably against our community standards."``"""
        if after < 0:
            raise ValueError(f"after must be 0 or more, not {after!r}")
        return cls(midjourney=MjScript(polls=after, fail_reason=reason))

    @classmethod
    def mj_submit_refused(
        cls, code: int, description: str, properties: dict[str, Any] | None = None
    ) -> Reply:
        """A Midjourney submit refused by the upstream: HTTP 200, this ``code`` and ``description``,
        ``"result": null`` and no task. midjourney-proxy's codes: 23 (queue full, see
        ``mj_queue_full``), 24 ``可能包含敏感词`` (a banned word, ``properties``: ``promptEn`` and
        ``bannedWord``), 4 (a bad request, ``prompt不能为空``), 3 (no account), 9 (its own failure)."""
        if code == 1:
            raise ValueError("code 1 is a submitted task: use Reply.mj_task()")
        return cls(midjourney=MjScript(code=code, description=description, properties=dict(properties or {})))

    @classmethod
    def mj_queue_full(cls) -> Reply:
        """midjourney-proxy's queue is full: code 23."""
        return cls.mj_submit_refused(23, "队列已满，请稍后尝试")

    @classmethod
    def mj_banned(cls, word: str) -> Reply:
        """The prompt holds a banned ``word``: code 24 ``可能包含敏感词``, ``properties`` naming the
        word and the prompt as ``promptEn``."""
        return cls.mj_submit_refused(24, "可能包含敏感词", {"bannedWord": word})

    @classmethod
    def mj_quota_not_enough(cls) -> Reply:
        """new-api's own refusal when the balance cannot pay the submit: HTTP 400, JSON,
        ``{"code":4,"description":"quota_not_enough ","type":"upstream_error"}``."""
        return cls(midjourney=MjScript(relay_error="quota_not_enough"))

    @classmethod
    def image_job(cls, polls: int = 2) -> Reply:
        """An asynchronous submit (``"async": true``) answered 202 with a queued job that
        completes after ``polls`` in-progress polls: each poll shows the job, then moves it one
        step. The first shows ``queued`` and ``"0%"``, the next ``polls`` ones ``in_progress``
        (up to ``"80%"``), the ones after ``completed``, ``"100%"`` and the images' links in
        ``result``. Unscripted submits behave as ``image_job()``."""
        if polls < 0:
            raise ValueError(f"polls must be 0 or more, not {polls!r}")
        return cls(async_job=ImageJobScript(polls=polls))

    @classmethod
    def image_job_failed(cls, reason: str, after: int = 1) -> Reply:
        """An asynchronous job that is queued for one poll, ``in_progress`` for ``after``, then
        ``failed`` at ``"100%"`` with ``{"message": reason, "code": "image_generation_failed"}``."""
        if after < 0:
            raise ValueError(f"after must be 0 or more, not {after!r}")
        return cls(async_job=ImageJobScript(polls=after, fail_reason=reason))
