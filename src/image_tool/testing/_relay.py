"""FakeRelay: a real HTTP server on loopback that behaves like an image relay."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import ThreadingHTTPServer

from ._admission import Admission
from ._handler import Handler, RecordedRequest, Server
from ._image_jobs import ImageJobs
from ._midjourney import MidjourneyTasks
from ._profiles import profile_named
from ._replies import RelayProfile, Reply


class FakeRelay:
    """An OpenAI-compatible image relay on ``127.0.0.1``, for tests and offline demos.

    ```python
    with FakeRelay() as relay:
        client = ImageClient(api_key=relay.api_key, base_url=relay.base_url)
        relay.queue(Reply.rate_limited())   # the next answer is a 429
        ...
        relay.requests                      # what the relay received
    ```

    It serves, each with a bearer check:

    - ``POST /v1/chat/completions``: answers in the documented shape with links to PNG images of
      the requested size that it serves itself (``GET /images/WxH/TOKEN.png``);
    - ``POST /v1/images/generations`` (JSON) and ``POST /v1/images/edits`` (``multipart/form-data``:
      ``image[]``, ``mask``), the OpenAI Images API: ``gpt-image*`` models answer base64 in the
      asked ``output_format`` with usage, and stream ``partial_images`` previews then the image as
      ``image_generation.*`` / ``image_edit.*`` events; ``dall-e-3`` answers links (or base64) with
      a ``revised_prompt``; values OpenAI refuses get its 400 naming the field (``param``).

    At its root (``origin``, beside ``/v1``), and under any mode prefix (``/mj-fast``,
    ``/mj-turbo``, ``/mj-relax``: new-api strips it), new-api's Midjourney routes, the key as a
    bearer or, without ``Authorization``, in ``mj-api-secret``:

    - ``POST /mj/submit/imagine`` (``prompt``, ``base64Array``) and ``POST /mj/submit/action``
      (``customId``, ``taskId``: UPSCALE, VARIATION, REROLL...) answer
      ``{"code":1,"description":"提交成功","result":"<task id>","properties":{}}``, sent on as
      new-api does (``text/plain; charset=utf-8`` under ``profile="new-api"``); new-api's own
      refusals are 400 ``{"code":4,"description":"task_not_found ","type":"upstream_error"}``;
    - ``GET /mj/task/{id}/fetch``: the task's every field, one step further each fetch (see
      ``Reply.mj_task``); a grid ends as a 1024x1024 PNG with U1-U4, reroll and V1-V4 buttons, an
      upscale as one 512x512 PNG, both served by the relay.

    A submit plays the next queued reply (``Reply.mj_*``; a raw ``body`` or a transport fault too,
    anything else is a task) and takes its place in the limits below; a fetch is free. A task's
    image is reserved of ``quota_images`` until it ends (past the quota, a submit gets new-api's
    ``quota_not_enough``), and counts as generated when it succeeds.

    Asynchronous Images API jobs, as a new-api fork serves them (lingozhi/new-api's ``async``),
    when a generation's body holds ``"async": true`` (without it, the request stays synchronous):

    - ``POST /v1/images/generations`` answers 202, ``Location: /v1/images/generations/<task_id>``,
      ``Retry-After: 2`` and ``{"task_id":"task_…","object":"image.generation.task",
      "status":"queued","progress":"0%","created_at":…}``; a ``response_format`` other than
      ``url``, or ``stream``, gets a 400. An ``Idempotency-Key`` (at most 256 characters) sent
      again with the same body (``async`` aside) replays the same job, 202 with
      ``Idempotency-Replayed: true``; with another body, a 409 ``idempotency_conflict``;
    - ``GET /v1/images/generations/{task_id}``: the job, one step further each poll (see
      ``Reply.image_job``), with ``Cache-Control: no-store`` and, until it ends, ``Retry-After:
      2``; once ``completed``, ``result`` holds the Images API answer with links to PNGs the relay
      serves; ``failed`` carries an ``error``; an unknown id gets a 404 ``image_task_error``.

    A new submit takes its place in the limits below and plays the next queued reply
    (``Reply.image_job*``; an error, a raw body or a fault answers the submit as it would a
    synchronous request). A replay or a conflict is answered before the limits. A job's images
    are reserved of ``quota_images`` until it ends, and count as generated when it completes.

    Every endpoint plays queued ``Reply`` objects, in order (errors, delays, transport faults, raw
    bodies, pace between events), before falling back to ordinary successes.

    ``profile`` puts relay software in front: the replies are then its upstream's answers, and
    FakeRelay sends them on as ``"new-api"``, ``"one-api"`` or the ``"litellm"`` proxy would
    (stream framing and ends, dropped chunks and headers, reshaped errors; on the Images API, its
    errors only). ``"gateway"`` answers the chat endpoint as OpenRouter or the Vercel AI Gateway
    draw: a request whose ``modalities`` holds ``"image"`` gets a sentence and inline PNGs in
    ``message.images`` (streamed: ``delta.images``), sized by ``image_config.aspect_ratio``. The
    default, ``"vendor"``, sends the replies as scripted.

    Limits, off by default, are checked on every generation endpoint (after the key and the
    request are read, before any queued reply), and answered by the relay itself, the same under
    every profile, in new-api's words (``_admission.py``):

    - ``rate_limit=R``: a token bucket of ``max(1, R)`` requests refilled at ``R`` a second; a
      request beyond it gets 429 ``rate_limit_exceeded`` with ``Retry-After``: the seconds until
      the next token, a decimal string such as ``"0.02"``, at least ``0.01``;
    - ``quota_images=Q``: each admitted request reserves its ``n`` images; once generated and
      reserved images would pass ``Q``, the request gets ``Reply.quota_exhausted()``'s answer (403
      ``insufficient_user_quota``), so at most ``Q`` images are ever generated;
    - ``max_concurrent=C``: a request arriving while ``C`` admitted requests are being answered gets
      new-api's saturation answer: 429, the message ``_go_relays.SATURATED`` and a request id,
      type ``upstream_error``, code ``bad_response_status_code``, param ``"429"``, no Retry-After.

    ``clock`` is what the rate limit reads (seconds, ``time.monotonic`` by default): a test that
    moves a clock of its own decides when tokens come, however fast its machine sends.

    ``relay.requests`` holds what came, an edit's form readable as ``request.form``;
    ``relay.generated`` counts the images answered, ``relay.generated_prompts`` lists the prompts of
    successful answers in order (one entry per answer).
    """

    def __init__(
        self,
        *,
        api_key: str = "fake-relay-key",
        port: int = 0,
        default_reply: Reply | None = None,
        profile: RelayProfile = "vendor",
        rate_limit: float | None = None,
        quota_images: int | None = None,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.port = port
        """The port to listen on; 0 picks a free one."""
        self.default_reply = default_reply or Reply()
        """The answer when no reply is queued."""
        self.profile: RelayProfile = profile
        """The relay software FakeRelay answers as (``"vendor"``: the replies as scripted)."""
        self._profile = profile_named(profile)
        self._midjourney = MidjourneyTasks(sniffed=profile == "new-api")
        self._image_jobs = ImageJobs()
        self._admission = Admission(
            rate_limit=rate_limit, quota_images=quota_images, max_concurrent=max_concurrent, clock=clock
        )
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        """The most generation requests the relay was handling at once."""
        self._replies: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeRelay is not running: use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """The base URL to give a client: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.origin}/v1"

    @property
    def rate_limit(self) -> float | None:
        """Requests a second the relay allows (a burst of ``max(1, rate_limit)``), or None."""
        return self._admission.rate_limit

    @property
    def quota_images(self) -> int | None:
        """Images the key may generate in all, or None."""
        return self._admission.quota_images

    @property
    def max_concurrent(self) -> int | None:
        """Generation requests answered at once before the relay is saturated, or None."""
        return self._admission.max_concurrent

    @property
    def generated(self) -> int:
        """Images answered so far (``n`` per successful answer)."""
        return self._admission.generated

    @property
    def generated_prompts(self) -> list[str]:
        """The prompts answered with images, in order, one entry per answer (a copy)."""
        return self._admission.generated_prompts

    def queue(self, *replies: Reply) -> None:
        """Answer the next generation requests with these replies, in order."""
        with self._lock:
            self._replies.extend(replies)

    def start(self) -> FakeRelay:
        handler = type("Handler", (Handler,), {"relay": self})
        self._server = Server(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._server = None

    def __enter__(self) -> FakeRelay:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._replies.popleft() if self._replies else self.default_reply
