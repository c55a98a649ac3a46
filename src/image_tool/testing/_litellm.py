"""The LiteLLM proxy: what it does to its upstream's answers (see ``_profiles.py`` for the
release the comments name)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ._answers import (
    Answer,
    GenerationRequest,
    Plain,
    Stream,
)
from ._profile import DONE, Profile, event_lines, loads
from ._replies import RelayRefusal


class LiteLLM(Profile):
    """The LiteLLM proxy (BerriAI/litellm), with an ``openai/`` model in front of the vendor."""

    def bad_key(self) -> Plain:
        # litellm/proxy/auth/user_api_key_auth.py: a key other than the master key, without a database
        return self._error(400, "No connected db.", "no_db_connection", ())

    def refuse(self, refusal: RelayRefusal) -> Plain | None:
        if refusal == "token_spent":
            # litellm/proxy/auth/auth_checks.py virtual key max budget; auth_exception_handler.py;
            # litellm/__init__.py budget_exceeded_status_code = 422
            message = "Budget has been exceeded! Key=key Current cost: 1.0002, Max budget: 1.0"
            return self._error(422, message, "budget_exceeded", ())
        return None

    def deliver(self, answer: Answer, request: GenerationRequest) -> Answer:
        if isinstance(answer, Stream):
            upstream = (*answer.headers, ("Connection", "close"))
            return self._stream(self._events(answer.events, request), request, upstream)
        if answer.status >= 400:
            return self._status_error(answer, request)
        if request.stream:
            # the openai SDK finds no event in a JSON body; litellm_core_utils/streaming_handler.py
            # still ends the stream with a stop chunk
            stop = _stop_chunk(f"chatcmpl-{uuid.uuid4()}", int(time.time()), request.model)
            return self._stream(iter([stop, DONE]), request, _all_headers(answer))
        return self._completion(answer, request)

    def _completion(self, answer: Plain, request: GenerationRequest) -> Plain:
        # litellm_core_utils/llm_response_utils/convert_dict_to_response.py
        try:
            response = json.loads(answer.body)
        except ValueError as error:
            return self._failure(500, str(error), request)
        if not isinstance(response, dict):
            return self._failure(500, "Invalid response object", request, suffix=False)
        if (failure := self._error_in_response(response.get("error"), request)) is not None:
            return failure
        choices = response.get("choices")
        if not isinstance(choices, list):
            keys = list(response)
            if "choices" not in response:
                text = f"LiteLLM: provider returned a response with no 'choices'. Raw keys: {keys}"
            else:
                kind = type(choices).__name__
                text = f"LiteLLM: provider returned 'choices' that is not a list ({kind}). Raw keys: {keys}"
            return self._failure(500, f"litellm.APIError: {text}", request)
        rebuilt = []
        for index, choice in enumerate(choices):
            message = choice.get("message") if isinstance(choice, dict) else None
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(message, dict) or not isinstance(content, str | None):
                # content parts (a list) are no message litellm can build
                return self._failure(500, "Invalid response object", request, suffix=False)
            rebuilt.append(
                {
                    "finish_reason": choice.get("finish_reason"),
                    "index": choice.get("index", index),
                    "message": {"content": content, "role": message.get("role") or "assistant"},
                    "provider_specific_fields": {},
                }
            )
        usage = response["usage"] if isinstance(response.get("usage"), dict) else {}
        body = {
            "id": response.get("id"),
            "created": response.get("created"),
            "model": response.get("model"),
            "object": "chat.completion",
            "choices": rebuilt,
            "usage": {
                key: usage.get(key, 0) for key in ("completion_tokens", "prompt_tokens", "total_tokens")
            },
        }
        headers = (*_provider_headers(_all_headers(answer)), *_litellm_headers(request))
        return Plain(200, _compact(body), headers)

    def _error_in_response(self, error: object, request: GenerationRequest) -> Plain | None:
        # convert_dict_to_response.py "CHECK IF ERROR IN RESPONSE": a 200 carrying an error raises
        # with the error's code as the status; a code that is no number fails in the comparison
        # that follows, and that TypeError's text is all the client gets
        meaningful = (
            bool(error.get("message")) or error.get("code") is not None
            if isinstance(error, dict)
            else bool(error)
        )
        if not meaningful:
            return None
        status: object = 422
        message = "Error in response object"
        if isinstance(error, dict):
            status = error.get("code") if "code" in error else 422
            if "message" in error:
                text = error["message"]
                message = json.dumps(text) if isinstance(text, dict) else str(text)
        elif isinstance(error, str):
            message = error
        if status is None:
            return self._mapped(500, message, None, request, (), "APIError")
        if not isinstance(status, int) or isinstance(status, bool):
            text = f"'>=' not supported between instances of '{type(status).__name__}' and 'int'"
            return self._failure(500, text, request, suffix=False, prefixed=False)
        return self._mapped(status, message, None, request, ())

    def _status_error(self, answer: Plain, request: GenerationRequest) -> Plain:
        # litellm/litellm_core_utils/exception_mapping_utils.py get_error_message / exception_type
        # (the upstream's message; without one, as with an empty or HTML body, only its status)
        parsed = loads(answer.body)
        inner = parsed.get("error", parsed) if isinstance(parsed, dict) else None
        message, upstream_type = None, None
        if isinstance(inner, dict):
            nested = inner.get("error")
            message = inner.get("message") or (nested.get("message") if isinstance(nested, dict) else None)
            upstream_type = inner.get("type")
        text = str(message or f"Error code: {answer.status}")
        provider = _provider_headers(_all_headers(answer))
        return self._mapped(answer.status, text, upstream_type, request, provider)

    def _mapped(
        self,
        status: int,
        message: str,
        upstream_type: object,
        request: GenerationRequest,
        headers: Iterable[tuple[str, str]],
        kind: str | None = None,
    ) -> Plain:
        # exception_mapping_utils.py exception_type: "<class>: OpenAIException - <message>", and
        # litellm/exceptions.py prefixes "litellm.<class>: "
        kind, status, prefixed = (kind, status, True) if kind else _litellm_class(status, message)
        if kind == "Timeout":  # with the deployment's timeouts (litellm/router.py)
            text = f"litellm.Timeout: Timeout Error: OpenAIException - {message}"
            text += "\n\nDeployment Info: request_timeout: None\ntimeout: None"
        else:
            text = f"litellm.{kind}: {kind + ': ' if prefixed else ''}OpenAIException - {message}"
        text += _no_fallback(request)
        if kind == "RateLimitError":  # litellm/exceptions.py RateLimitError.type
            error_type = "throttling_error"
        elif kind == "InternalServerError":
            error_type = "internal_server_error"
        elif kind in ("BadRequestError", "ContentPolicyViolationError") and isinstance(upstream_type, str):
            error_type = upstream_type or _type_for_status(status)  # the upstream body's own type
        else:
            error_type = _type_for_status(status)
        return self._error(status, text, error_type, headers)

    def _failure(
        self,
        status: int,
        message: str,
        request: GenerationRequest,
        *,
        suffix: bool = True,
        prefixed: bool = True,
    ) -> Plain:
        """An answer litellm could not read: an InternalServerError of its own."""
        text = (
            f"litellm.InternalServerError: InternalServerError: OpenAIException - {message}"
            if prefixed
            else message
        )
        return self._error(
            status, text + (_no_fallback(request) if suffix else ""), "internal_server_error", ()
        )

    def _error(self, status: int, message: str, error_type: str, headers: Iterable[tuple[str, str]]) -> Plain:
        # litellm/proxy/_types.py ProxyException.to_dict: "code" is the status, as a string
        error = {"message": message, "type": error_type, "param": None, "code": str(status)}
        call_id = (("x-litellm-call-id", str(uuid.uuid4())),)
        return Plain(status, _compact({"error": error}), (*headers, *call_id))

    def _stream(
        self, events: Iterator[bytes], request: GenerationRequest, upstream: Iterable[tuple[str, str]]
    ) -> Stream:
        headers = (
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-accel-buffering", "no"),
            *_provider_headers(upstream),
            *_litellm_headers(request),
        )
        return Stream(events, headers, chunked=True)

    def _events(self, events: Iterator[bytes], request: GenerationRequest) -> Iterator[bytes]:
        # litellm/proxy/proxy_server.py async_data_generator: each chunk rebuilt and written as
        # "data: " + compact JSON (_serialize_streaming_chunk); the openai SDK's SSE decoder has
        # already dropped comments and read "data:" with or without its space
        ident: tuple[Any, Any, Any] = (f"chatcmpl-{uuid.uuid4()}", int(time.time()), request.model)
        finished = False
        for data in _sse_data(events):
            if data.startswith("[DONE]"):
                break
            try:
                chunk = json.loads(data)
            except ValueError as error:
                yield _litellm_stream_error(str(error))
                return
            if isinstance(chunk, dict) and chunk.get("error"):
                # the openai SDK raises on an error event; async_data_generator writes it and stops,
                # without [DONE]
                failure = chunk["error"]
                text = failure.get("message") if isinstance(failure, dict) else None
                yield _litellm_stream_error(
                    text if isinstance(text, str) else "An error occurred during streaming"
                )
                return
            if not isinstance(chunk, dict):
                continue
            ident = (chunk.get("id", ident[0]), chunk.get("created", ident[1]), chunk.get("model", ident[2]))
            choices = _stream_choices(chunk.get("choices"))
            if not choices:  # usage-only chunks (streaming_handler.py _record_usage_only_chunk) and
                continue  # deltas whose content is no text (content parts) go no further
            finished = finished or any("finish_reason" in choice for choice in choices)
            yield _sse(
                {
                    "id": ident[0],
                    "object": "chat.completion.chunk",
                    "created": ident[1],
                    "model": ident[2],
                    "choices": choices,
                }
            )
        if not finished:
            # streaming_handler.py CustomStreamWrapper: a stream that ended without a finish reason
            # (cut, timed out) gets a stop chunk, then [DONE]: it looks complete
            yield _stop_chunk(*ident)
        yield DONE


def _litellm_class(status: int, message: str) -> tuple[str, int, bool]:
    """The exception litellm raises for an upstream error: its class, status, and whether its
    message repeats the class name (exception_mapping_utils.py exception_type: the message's
    words first, then the status)."""
    lowered = message.lower()
    if re.search(r"rate[\s_\-]*limit", lowered) or (status == 429 and re.search(r"\b429\b", message)):
        return "RateLimitError", 429, True
    if ("invalid_request_error" in message and "content_policy_violation" in message) or (
        "request was rejected as a result of the safety system" in lowered
    ):
        return "ContentPolicyViolationError", 400, True
    if "invalid_request_error" in message and "model_not_found" in message:
        return "NotFoundError", 404, False
    if "invalid_request_error" in message and "Incorrect API key provided" not in message:
        return "BadRequestError", 400, False
    kind, prefixed = _LITELLM_CLASSES.get(status, ("APIError", True))
    return kind, status, prefixed


_LITELLM_CLASSES: dict[int, tuple[str, bool]] = {
    400: ("BadRequestError", False),
    401: ("AuthenticationError", True),
    404: ("NotFoundError", True),
    408: ("Timeout", True),
    422: ("BadRequestError", False),
    429: ("RateLimitError", True),
    500: ("InternalServerError", True),
    502: ("BadGatewayError", True),
    503: ("ServiceUnavailableError", True),
    504: ("Timeout", True),
}


def _type_for_status(status: int) -> str:
    # litellm/proxy/common_utils/openai_error_payload.py openai_error_type_for_status
    named = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
    return named.get(status, "invalid_request_error" if status < 500 else "internal_server_error")


def _no_fallback(request: GenerationRequest) -> str:
    # litellm/router_utils/common_utils.py format_fallback_outcome_message
    return (
        f"\n\nLiteLLM: model group '{request.model}' failed with the error above. No fallback was attempted."
    )


def _litellm_stream_error(message: str) -> bytes:
    # proxy_server.py async_data_generator: json.dumps of ProxyException.to_dict (default separators)
    error = {
        "message": f"litellm.APIConnectionError: APIConnectionError: OpenAIException - {message}",
        "type": None,
        "param": None,
        "code": "500",
    }
    return f"data: {json.dumps({'error': error})}\n\n".encode()


def _stream_choices(choices: object) -> list[dict[str, Any]]:
    rebuilt = []
    for index, choice in enumerate(choices if isinstance(choices, list) else []):
        if not isinstance(choice, dict):
            continue
        delta = choice["delta"] if isinstance(choice.get("delta"), dict) else {}
        out: dict[str, Any] = {}
        if delta.get("role"):
            out["role"] = delta["role"]
        content = delta.get("content")
        if isinstance(content, str) and (content or out):
            out["content"] = content
        finish = choice.get("finish_reason")
        if not out and finish is None:
            continue
        item: dict[str, Any] = {"index": choice.get("index", index), "delta": out}
        if finish is not None:
            item["finish_reason"] = finish
        rebuilt.append(item)
    return rebuilt


def _stop_chunk(chunk_id: Any, created: Any, model: Any) -> bytes:
    choice = {"index": 0, "delta": {}, "finish_reason": "stop"}
    return _sse(
        {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
    )


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + _compact(payload) + b"\n\n"


def _compact(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _sse_data(events: Iterable[bytes]) -> Iterator[str]:
    """The data of each server-sent event, as the openai SDK's SSE decoder reads them."""
    lines: list[str] = []
    for raw in event_lines(events):
        line = raw.decode("utf-8", "replace")
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value.removeprefix(" "))
    if lines:
        yield "\n".join(lines)


def _provider_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    # litellm/litellm_core_utils/llm_response_utils/get_headers.py: every upstream header comes back
    # as llm_provider-<name> (Retry-After as llm_provider-retry-after), repeated ones joined
    joined: dict[str, str] = {}
    for name, value in headers:
        key = f"llm_provider-{name.lower()}"
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return tuple(joined.items())


def _litellm_headers(request: GenerationRequest) -> tuple[tuple[str, str], ...]:
    return (("x-litellm-call-id", str(uuid.uuid4())), ("x-litellm-model-group", request.model))


def _all_headers(answer: Plain) -> tuple[tuple[str, str], ...]:
    """Every header the upstream sent with a plain answer, as FakeRelay writes them."""
    return (("Content-Type", answer.content_type), ("Content-Length", str(len(answer.body))), *answer.headers)
