"""Relay profiles: the relay software in front of an upstream, and what it does to its answers.

With a profile other than ``vendor``, FakeRelay's scripted replies are its upstream's answers, and
the profile sends them on as that software does. The comment beside each behaviour names the file
it comes from, in:

- one-api: songquanpeng/one-api at 8df4a26 (February 2025);
- new-api: QuantumNous/new-api, which forked one-api and keeps its layout (files read at several
  commits; the 429 rewrite is controller/relay.go at c9b8af7, commented out in later versions);
- LiteLLM: the litellm proxy 1.108, also run in front of FakeRelay to compare the wire bytes.

``gateway`` changes the upstream instead: an OpenRouter-style gateway that draws on the chat
endpoint (``_gateway.py``), its errors sent on as scripted.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, get_args

from ._answers import (
    EVENT_STREAM_HEADERS,
    Answer,
    GenerationRequest,
    Plain,
    Stream,
    error_body,
    read_request,
    vendor_answer,
)
from ._gateway import gateway_answer, read_gateway_request
from ._replies import RelayProfile, RelayRefusal, Reply

SATURATED = "当前分组上游负载已饱和，请稍后再试"
DONE = b"data: [DONE]\n\n"


def profile_named(name: RelayProfile) -> Profile:
    profiles: dict[str, type[Profile]] = {
        "vendor": Profile,
        "new-api": NewApi,
        "one-api": OneApi,
        "litellm": LiteLLM,
        "gateway": Gateway,
    }
    if name not in profiles:
        raise ValueError(
            f"unknown relay profile {name!r}: expected one of {', '.join(get_args(RelayProfile))}"
        )
    return profiles[name]()


class Profile:
    """The vendor itself: every answer goes out as the reply scripts it."""

    def read(self, body: bytes) -> GenerationRequest:
        """A chat request's fields, as the upstream reads them (``ValueError`` names what is wrong)."""
        return read_request(body)

    def upstream(self, request: GenerationRequest, origin: str, reply: Reply) -> Answer:
        """The upstream's answer to a chat request, before the relay sends it on."""
        return vendor_answer(request, origin, reply)

    def deliver(self, answer: Answer, request: GenerationRequest) -> Answer:
        """What the relay sends for its upstream's ``answer`` to ``request``."""
        return answer

    def refuse(self, refusal: RelayRefusal) -> Plain | None:
        """The relay's own words for a refusal, or None: the reply's body stands (as the upstream's)."""
        return None

    def bad_key(self) -> Plain:
        """The answer to a wrong bearer key."""
        return Plain(401, error_body("Invalid token", "new_api_error", "invalid_api_key"))


class Gateway(Profile):
    """An OpenRouter-style gateway (OpenRouter, the Vercel AI Gateway): the chat endpoint draws
    when ``modalities`` holds ``"image"``, the images in ``message.images``; errors as the vendor's."""

    def read(self, body: bytes) -> GenerationRequest:
        return read_gateway_request(body)

    def upstream(self, request: GenerationRequest, origin: str, reply: Reply) -> Answer:
        return gateway_answer(request, origin, reply)


class _GoRelay(Profile):
    """What new-api and one-api share (one-api's paths; new-api kept them unless named)."""

    own_error_type = ""

    def bad_key(self) -> Plain:
        # middleware/auth.go TokenAuth -> model/token.go ValidateUserToken: "无效的令牌", 401
        return self._abort(401, "无效的令牌", self._request_id())

    def refuse(self, refusal: RelayRefusal) -> Plain | None:
        if refusal == "token_spent":  # model/token.go ValidateUserToken (RemainQuota <= 0)
            return self._abort(401, "该令牌额度已用尽", self._request_id())
        return None

    def _request_id(self) -> str:
        # middleware/request-id.go, common/helper/helper.go GenRequestID: the time, its
        # nanoseconds, 8 random digits
        now = time.time_ns()
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now / 1e9))
        return f"{stamp}{now % 1_000_000_000}{_random(string.digits)}"

    def _abort(self, status: int, message: str, request_id: str) -> Plain:
        # middleware/utils.go abortWithMessage: a gin.H without "code", the request id appended
        error = {"message": f"{message} (request id: {request_id})", "type": self.own_error_type}
        return _gin_json(status, {"error": error}, request_id)

    def _relay_error(self, status: int, error: dict[str, Any], request_id: str) -> Plain:
        # controller/relay.go Relay: every 429's message replaced, the request id appended, and the
        # error written alone (the upstream's headers, Retry-After among them, are not copied)
        message = SATURATED if status == 429 else error["message"]
        error = {**error, "message": f"{message} (request id: {request_id})"}
        return _gin_json(status, {"error": error}, request_id)

    def _passthrough(self, answer: Plain, request_id: str) -> Plain:
        # relay/adaptor/openai/main.go Handler: the upstream's headers (first value of each), its
        # status and its body, unchanged
        seen = {"content-type", "content-length", "x-oneapi-request-id"}
        headers = []
        for name, value in answer.headers:
            if name.lower() not in seen:
                headers.append((name, value))
                seen.add(name.lower())
        headers.append(("X-Oneapi-Request-Id", request_id))
        return Plain(answer.status, answer.body, tuple(headers), answer.content_type)

    def _event_stream(self, events: Iterator[bytes], request_id: str) -> Stream:
        # common/gin.go SetEventStreamHeaders (relay/helper/common.go in new-api): chunked, kept alive
        headers = (
            *EVENT_STREAM_HEADERS,
            ("Connection", "keep-alive"),
            ("X-Accel-Buffering", "no"),
            ("X-Oneapi-Request-Id", request_id),
        )
        return Stream(events, headers, chunked=True)


class OneApi(_GoRelay):
    """one-api (songquanpeng/one-api)."""

    own_error_type = "one_api_error"

    def deliver(self, answer: Answer, request: GenerationRequest) -> Answer:
        request_id = self._request_id()
        if isinstance(answer, Stream):
            return self._event_stream(self._events(answer.events), request_id)
        # relay/controller/helper.go isErrorHappened: any status but 200 (or 201), and JSON
        # answered to a stream request -> relay/controller/error.go RelayErrorHandler; for a 200
        # success that is {"error": {"message": "bad response status code 200", ...}} with 200
        if answer.status not in (200, 201) or (request.stream and _is_json(answer)):
            return self._relay_error(answer.status, _upstream_error(answer), request_id)
        if request.stream:
            return self._event_stream(self._events(iter([answer.body])), request_id)
        # relay/adaptor/openai/main.go Handler: an unreadable body is one-api's own 500; an error
        # object with a type is an error, with the upstream's status (200 stays 200)
        problem = _go_syntax_error(answer.body)
        if problem is not None:
            own = _error(problem, "one_api_error", "", "unmarshal_response_body_failed")
            return self._relay_error(500, own, request_id)
        if (error := _typed_error(answer.body)) is not None:
            return self._relay_error(answer.status, error, request_id)
        return self._passthrough(answer, request_id)

    def _events(self, events: Iterator[bytes]) -> Iterator[bytes]:
        # relay/adaptor/openai/main.go StreamHandler: a bufio.Scanner (lines of at most 64 KiB)
        done = False
        for line in _lines(events, limit=64 * 1024):
            if len(line) < 6 or line[:6] not in (b"data: ", b"[DONE]"):
                continue  # comments, blank lines, and "data:" without its space
            if line[6:].startswith(b"[DONE]"):
                done = True
            elif (chunk := _loads(line[6:])) is not _INVALID and _empty_chunk(chunk):
                continue  # neither choices nor usage: error chunks too ("this is for azure")
            yield _go_event(line.removeprefix(b"data: "))
        if not done:  # whatever ended the upstream (its end, a cut, a line too long)
            yield DONE


class NewApi(_GoRelay):
    """new-api (QuantumNous/new-api), the one-api fork most image relays run."""

    own_error_type = "new_api_error"

    def refuse(self, refusal: RelayRefusal) -> Plain | None:
        if refusal == "prompt_blocked":
            # relay/channel/gemini/relay-gemini.go: types.NewOpenAIError(..., ErrorCodePromptBlocked,
            # 400), whose type is its code (types/error.go NewOpenAIError)
            message = "request blocked by Gemini API: PROHIBITED_CONTENT"
            error = _error(message, "prompt_blocked", "", "prompt_blocked")
            return self._relay_error(400, error, self._request_id())
        return super().refuse(refusal)

    def _request_id(self) -> str:
        # middleware/request-id.go: common.GetTimeString() + common.GetRandomString(8)
        return super()._request_id()[:-8] + _random(string.ascii_letters + string.digits)

    def deliver(self, answer: Answer, request: GenerationRequest) -> Answer:
        request_id = self._request_id()
        if isinstance(answer, Stream):
            return self._event_stream(self._events(answer.events, request.include_usage), request_id)
        # relay/relay-text.go TextHelper: any status but 200 -> service/error.go RelayErrorHandler
        if answer.status != 200:
            return self._relay_error(answer.status, _upstream_error(answer), request_id)
        if request.stream:  # a JSON body has no "data:" line: the stream is a bare [DONE]
            return self._event_stream(self._events(iter([answer.body]), request.include_usage), request_id)
        # relay/channel/openai/relay-openai.go OpenaiHandler; types/error.go NewOpenAIError
        problem = _go_syntax_error(answer.body)
        if problem is not None:
            own = _error(problem, "bad_response_body", "", "bad_response_body")
            return self._relay_error(500, own, request_id)
        if (error := _typed_error(answer.body)) is not None:
            return self._relay_error(answer.status, error, request_id)
        return self._passthrough(answer, request_id)

    def _events(self, events: Iterator[bytes], include_usage: bool) -> Iterator[bytes]:
        # relay/helper/stream_scanner.go StreamScannerHandler: "data:" with or without its space,
        # nothing after the upstream's [DONE]; relay-openai.go OaiStreamHandler sends each chunk
        # when the next arrives, and the last one only if it is not a usage-only chunk the client
        # did not ask for (stream_options.include_usage)
        last: bytes | None = None
        for line in _lines(events, limit=64 << 20):
            if len(line) < 6 or (line[:5] != b"data:" and line[:6] != b"[DONE]"):
                continue
            data = line[5:].strip()
            if not data:
                continue
            if data.startswith(b"[DONE]"):
                break
            if last is not None:
                yield _go_event(last)
            last = data
        if last is not None and (include_usage or not _usage_only(last)):
            yield _go_event(last)
        # relay/channel/openai/helper.go HandleFinalResponse: helper.Done, whatever ended the stream
        yield DONE


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
        parsed = _loads(answer.body)
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
    for raw in _lines(events):
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


def _is_json(answer: Plain) -> bool:
    return answer.content_type.startswith("application/json")


def _random(alphabet: str, length: int = 8) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _lines(events: Iterable[bytes], limit: int | None = None) -> Iterator[bytes]:
    """The lines of a byte stream, without their ``\\r\\n`` or ``\\n``, as Go's bufio.Scanner
    (ScanLines) gives them: it stops at a line of ``limit`` bytes or more (bufio.ErrTooLong)."""
    buffer = b""
    for event in events:
        buffer += event
        while (end := buffer.find(b"\n")) >= 0:
            if limit is not None and end >= limit:
                return
            line, buffer = buffer[:end], buffer[end + 1 :]
            yield line.removesuffix(b"\r")
        if limit is not None and len(buffer) >= limit:
            return
    if buffer:
        yield buffer.removesuffix(b"\r")


class _Invalid:
    """Not JSON."""


_INVALID = _Invalid()


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return _INVALID


def _empty_chunk(chunk: object) -> bool:
    """A stream chunk with neither choices nor usage (once one-api has read it into its struct)."""
    if not isinstance(chunk, dict):
        return False
    return not chunk.get("choices") and chunk.get("usage") is None


def _usage_only(data: bytes) -> bool:
    # relay/channel/openai/helper.go handleLastResponse: valid usage, and no choice with content
    chunk = _loads(data)
    if not isinstance(chunk, dict) or not isinstance(usage := chunk.get("usage"), dict):
        return False
    if not (usage.get("prompt_tokens") or usage.get("completion_tokens")):
        return False
    choices = chunk["choices"] if isinstance(chunk.get("choices"), list) else []
    return not any(
        isinstance(choice, dict) and isinstance(choice.get("delta"), dict) and choice["delta"].get("content")
        for choice in choices
    )


def _go_event(data: bytes) -> bytes:
    # common/render/render.go StringData: "data: " + the upstream's data, as it came
    return b"data: " + data + b"\n\n"


def _gin_json(status: int, payload: dict[str, Any], request_id: str) -> Plain:
    # gin's c.JSON: encoding/json, compact, with <, > and & escaped; X-Oneapi-Request-Id from
    # middleware/request-id.go
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    for plain, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(plain, escaped)
    return Plain(
        status, text.encode(), (("X-Oneapi-Request-Id", request_id),), "application/json; charset=utf-8"
    )


def _error(message: str, error_type: str, param: str, code: object) -> dict[str, Any]:
    """An error in one-api's relay/model/misc.go Error (new-api's dto.OpenAIError) field order."""
    return {"message": message, "type": error_type, "param": param, "code": code}


def _upstream_error(answer: Plain) -> dict[str, Any]:
    # relay/controller/error.go RelayErrorHandler (new-api: service/error.go): the upstream's
    # OpenAI error when it has a message, else its message under another key, else "bad response
    # status code N"; a body Go cannot read into its struct (empty, HTML, a field of another type)
    # returns early, with an empty message
    error = _error("", "upstream_error", str(answer.status), "bad_response_status_code")
    parsed = _go_error_response(answer.body)
    if parsed is None:
        return error
    upstream = parsed.get("error")
    if isinstance(upstream, dict) and upstream.get("message"):
        return _error(
            upstream["message"], upstream.get("type") or "", upstream.get("param") or "", upstream.get("code")
        )
    header, response = parsed.get("header"), parsed.get("response")
    candidates = [parsed.get(key) for key in ("message", "msg", "err", "error_msg")]
    candidates.append(header.get("message") if isinstance(header, dict) else None)
    nested = response.get("error") if isinstance(response, dict) else None
    candidates.append(nested.get("message") if isinstance(nested, dict) else None)
    message = next((text for text in candidates if text), "")
    return {**error, "message": message or f"bad response status code {answer.status}"}


def _go_error_response(body: bytes) -> dict[str, Any] | None:
    """The body read into relay/controller/error.go GeneralErrorResponse, or None when Go's
    json.Unmarshal reports an error (bad JSON, or a field of another type)."""
    parsed = _loads(body)
    if parsed is None:
        return {}
    if not isinstance(parsed, dict):
        return None
    strings = ("message", "msg", "err", "error_msg")
    if any(not isinstance(parsed.get(key), str | None) for key in strings):
        return None
    error = parsed.get("error")
    if error is not None and not (
        isinstance(error, dict)
        and all(isinstance(error.get(key), str | None) for key in ("message", "type", "param"))
    ):
        return None
    for key, inner in (("header", None), ("response", "error")):
        value = parsed.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            return None
        if inner is not None:
            value = value.get(inner)
            if value is not None and not isinstance(value, dict):
                return None
        if isinstance(value, dict) and not isinstance(value.get("message"), str | None):
            return None
    return parsed


def _typed_error(body: bytes) -> dict[str, Any] | None:
    """A success body's error object, when it has a type (one-api Handler, new-api OpenaiHandler)."""
    parsed = _loads(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("type"), str) or not error["type"]:
        return None
    message = error.get("message")
    param = error.get("param")
    return _error(
        message if isinstance(message, str) else "",
        error["type"],
        param if isinstance(param, str) else "",
        error.get("code"),
    )


def _go_syntax_error(body: bytes) -> str | None:
    """encoding/json's error for a body that is not JSON, or None."""
    try:
        json.loads(body)
    except ValueError as error:
        text = body.decode("utf-8", "replace").rstrip()
        position = getattr(error, "pos", len(text))
        if str(error).startswith("Unterminated string") or position >= len(text):
            return "unexpected end of JSON input"
        return f"invalid character {text[position]!r} looking for beginning of value"
    return None
