"""new-api and one-api, the Go relays: what they do to their upstream's answers (see
``_profiles.py`` for the sources the comments name)."""

from __future__ import annotations

import json
import secrets
import string
import time
from collections.abc import Iterator
from typing import Any

from ._answers import (
    EVENT_STREAM_HEADERS,
    Answer,
    GenerationRequest,
    Plain,
    Stream,
)
from ._profile import DONE, INVALID, Profile, error_payload, event_lines, loads
from ._replies import RelayRefusal

SATURATED = "当前分组上游负载已饱和，请稍后再试"


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
        return gin_json(status, {"error": error}, request_id)

    def _relay_error(self, status: int, error: dict[str, Any], request_id: str) -> Plain:
        # controller/relay.go Relay: every 429's message replaced, the request id appended, and the
        # error written alone (the upstream's headers, Retry-After among them, are not copied)
        message = SATURATED if status == 429 else error["message"]
        error = {**error, "message": f"{message} (request id: {request_id})"}
        return gin_json(status, {"error": error}, request_id)

    def _whole(self, answer: Plain, request_id: str, own_type: str, own_code: str) -> Plain:
        """A whole successful answer as the relay sends it on: an unreadable body is the relay's
        own 500 (``own_type``, ``own_code``); an error object with a type is an error, with the
        upstream's status (200 stays 200); anything else goes through unchanged."""
        problem = _go_syntax_error(answer.body)
        if problem is not None:
            own = error_payload(problem, own_type, "", own_code)
            return self._relay_error(500, own, request_id)
        if (error := _typed_error(answer.body)) is not None:
            return self._relay_error(answer.status, error, request_id)
        return self._passthrough(answer, request_id)

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
            return self._relay_error(answer.status, upstream_error(answer), request_id)
        if request.stream:
            return self._event_stream(self._events(iter([answer.body])), request_id)
        # relay/adaptor/openai/main.go Handler
        return self._whole(answer, request_id, "one_api_error", "unmarshal_response_body_failed")

    def _events(self, events: Iterator[bytes]) -> Iterator[bytes]:
        # relay/adaptor/openai/main.go StreamHandler: a bufio.Scanner (lines of at most 64 KiB)
        done = False
        for line in event_lines(events, limit=64 * 1024):
            if len(line) < 6 or line[:6] not in (b"data: ", b"[DONE]"):
                continue  # comments, blank lines, and "data:" without its space
            if line[6:].startswith(b"[DONE]"):
                done = True
            elif (chunk := loads(line[6:])) is not INVALID and _empty_chunk(chunk):
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
            error = error_payload(message, "prompt_blocked", "", "prompt_blocked")
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
            return self._relay_error(answer.status, upstream_error(answer), request_id)
        if request.stream:  # a JSON body has no "data:" line: the stream is a bare [DONE]
            return self._event_stream(self._events(iter([answer.body]), request.include_usage), request_id)
        # relay/channel/openai/relay-openai.go OpenaiHandler; types/error.go NewOpenAIError
        return self._whole(answer, request_id, "bad_response_body", "bad_response_body")

    def _events(self, events: Iterator[bytes], include_usage: bool) -> Iterator[bytes]:
        # relay/helper/stream_scanner.go StreamScannerHandler: "data:" with or without its space,
        # nothing after the upstream's [DONE]; relay-openai.go OaiStreamHandler sends each chunk
        # when the next arrives, and the last one only if it is not a usage-only chunk the client
        # did not ask for (stream_options.include_usage)
        last: bytes | None = None
        for line in event_lines(events, limit=64 << 20):
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


def _is_json(answer: Plain) -> bool:
    return answer.content_type.startswith("application/json")


def _random(alphabet: str, length: int = 8) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _empty_chunk(chunk: object) -> bool:
    """A stream chunk with neither choices nor usage (once one-api has read it into its struct)."""
    if not isinstance(chunk, dict):
        return False
    return not chunk.get("choices") and chunk.get("usage") is None


def _usage_only(data: bytes) -> bool:
    # relay/channel/openai/helper.go handleLastResponse: valid usage, and no choice with content
    chunk = loads(data)
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


def gin_json(status: int, payload: dict[str, Any], request_id: str) -> Plain:
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


def upstream_error(answer: Plain) -> dict[str, Any]:
    # relay/controller/error.go RelayErrorHandler (new-api: service/error.go): the upstream's
    # OpenAI error when it has a message, else its message under another key, else "bad response
    # status code N"; a body Go cannot read into its struct (empty, HTML, a field of another type)
    # returns early, with an empty message
    error = error_payload("", "upstream_error", str(answer.status), "bad_response_status_code")
    parsed = _go_error_response(answer.body)
    if parsed is None:
        return error
    upstream = parsed.get("error")
    if isinstance(upstream, dict) and upstream.get("message"):
        return error_payload(
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
    parsed = loads(body)
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
    parsed = loads(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("type"), str) or not error["type"]:
        return None
    message = error.get("message")
    param = error.get("param")
    return error_payload(
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
