"""The ``image-tool`` command: generate images at a terminal, serve the emulator, run the MCP server."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, get_args

from . import errors
from ._wire.imagetypes import image_extension
from .catalog import OPTION_NAMES
from .models import (
    DEFAULT_N,
    MAX_IMAGES,
    MAX_PROMPT_LENGTH,
    OPTION_VALUES,
    GenerationProgress,
    ImageGenerationResult,
)
from .settings import ClientSettings

if TYPE_CHECKING:
    from .batch import BatchProgress
from .testing import RelayProfile, Shape

# Each command imports what it runs when it runs: `--help` loads neither the client, the
# emulator, nor LangChain (only `mcp` needs it).

# One exit code per kind of failure, so scripts can tell them apart (most specific first); --help
# lists them from here. Usage errors share 2. SaveError is never raised out of a generation: its code
# is for images generated but not saved (GeneratedImage.save_error).
EXIT_CODES: tuple[tuple[type[BaseException], int, str], ...] = (
    # Nothing was sent
    (errors.ConfigurationError, 2, "configuration or usage"),
    (errors.InvalidRequestError, 2, "an invalid argument (nothing was sent)"),
    # The relay said no
    (errors.AuthenticationError, 3, "the key was refused"),
    (errors.ContentPolicyError, 4, "the prompt was refused under the content policy"),
    (errors.RateLimitError, 5, "rate-limited or saturated"),
    (errors.QuotaExceededError, 6, "the account's quota is spent"),
    (errors.ModelNotFoundError, 7, "no channel serves the model"),
    # No usable answer
    (errors.APITimeoutError, 8, "timed out"),
    (errors.APIConnectionError, 9, "the relay could not be reached"),
    (errors.APIStatusError, 10, "any other error answer"),
    (errors.MalformedResponseError, 11, "an unreadable answer, or no image"),
    # After the answer
    (errors.SaveError, 12, "generated, but not saved (see --save)"),
    (KeyboardInterrupt, 130, "interrupted (Ctrl-C)"),
)

# The client's settings that `generate` has a flag for. Each flag's default is the setting's
# (ClientSettings), and the library's messages that name a setting show its flag instead.
SETTING_FLAGS = {
    "model": "--model",
    "api": "--api",
    "save_dir": "--save",
    "stream": "--stream",
    "partial_images": "--partial-images",
    "max_retries": "--max-retries",
    "total_timeout": "--total-timeout",
    "allow_private_downloads": "--allow-private-downloads",
}

NOT_CONFIGURED = """\
image-tool needs an image relay. Set:
  export IMAGE_TOOL_API_KEY="sk-..."
  export IMAGE_TOOL_BASE_URL="https://relay.example.com/v1"
To try it offline, run the emulator in another terminal and follow what it prints:
  image-tool fake-relay"""

GENERATE_EXAMPLES = """\
examples:
  image-tool generate "A lighthouse on a cliff at dawn"
  image-tool generate "Two foxes in the snow" --n 2 --size 1792x1024 --save images
  image-tool generate "Make the cat wear a hat" --image images/3f2a.png --save images
  image-tool generate "A red kite" --stream --json | jq -r '.images[].url'

The relay comes from IMAGE_TOOL_API_KEY and IMAGE_TOOL_BASE_URL. Progress is drawn on stderr when it
is a terminal; images (saved paths, else URLs) and revised prompts go to stdout.

exit codes:
  0   success
""" + "\n".join(f"  {code:<3} {meaning}" for _, code, meaning in EXIT_CODES)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = _parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        command: int = args.run(args)
        return command
    except KeyboardInterrupt as interrupt:  # the progress line was cleared on the way out
        print("image-tool: interrupted", file=sys.stderr)
        return exit_code(interrupt)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse prints its whole usage above an error: one line, pointing at --help, reads better."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"image-tool: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="image-tool",
        description="Generate images through an OpenAI-compatible relay (gpt-4o-image and kin).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        help="generate images for a prompt",
        description="Generate images for a prompt, show progress, print where they are.",
        epilog=GENERATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument("prompt", type=_prompt, help="what to draw, in plain sentences")
    generate.add_argument(
        "--n",
        type=_whole_number(1, MAX_IMAGES),
        default=DEFAULT_N,
        help=f"how many images, 1 to {MAX_IMAGES} (default {DEFAULT_N})",
    )
    # The drawing options: each model takes some of them (the docs' model table); left out, the
    # model's default is used, and one the model does not take is refused before anything is sent.
    for option, values in OPTION_VALUES.items():
        choices = get_args(values)
        flag = f"--{option.replace('_', '-')}"
        generate.add_argument(flag, choices=choices, metavar=option.upper(), help=" | ".join(choices))
    generate.add_argument(
        "--output-compression", type=_whole_number(0, 100), metavar="PERCENT", help="JPEG/WebP, 0 to 100"
    )
    generate.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="URL_OR_FILE",
        help="an earlier image to edit or draw from (repeatable)",
    )
    generate.add_argument(
        "--mask", metavar="PNG", help="with --image: transparent where to draw (gpt-image models)"
    )
    generate.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
    _add_settings(generate, "model", "api", "save_dir", "stream", "partial_images", *_CALL_SETTINGS)
    generate.set_defaults(run=_generate)

    relay = commands.add_parser(
        "fake-relay",
        help="serve the relay emulator on 127.0.0.1, for offline demos",
        description="Serve FakeRelay, image-tool's relay emulator, until Ctrl-C.",
    )
    relay.add_argument("--port", type=int, default=8765, help="default 8765 (0: any free port)")
    relay.add_argument(
        "--shape",
        choices=get_args(Shape),
        default="markdown",
        help="how it answers (default markdown, with progress text when streamed)",
    )
    relay.add_argument(
        "--pace", type=float, default=0.05, help="seconds between streamed events (default 0.05)"
    )
    relay.add_argument("--latency", type=float, default=0.0, help="seconds before each answer (default 0)")
    relay.add_argument(
        "--rate-limit", type=float, metavar="PER_SECOND", help="answer at most this many a second"
    )
    relay.add_argument(
        "--quota-images", type=_whole_number(0), metavar="N", help="quota spent after N images"
    )
    relay.add_argument(
        "--max-concurrent", type=_whole_number(1), metavar="N", help="saturated past N at once"
    )
    relay.add_argument(
        "--profile",
        choices=get_args(RelayProfile),
        default="vendor",
        help="the relay software to answer as, in front of the vendor (default vendor: as documented)",
    )
    relay.set_defaults(run=_fake_relay)

    batch = commands.add_parser(
        "batch",
        help="generate every prompt of a JSONL file into a directory, resumably",
        description=(
            'Generate every prompt of PROMPTS (JSONL: one {"id", "prompt", options} per line) into '
            "DIR: images in DIR/images, one result line per prompt in DIR/results.jsonl. Run it again "
            "after a crash or Ctrl-C: it does only what is left, and never sends a prompt twice."
        ),
    )
    batch.add_argument("prompts", type=Path, metavar="PROMPTS", help="the JSONL file of prompts")
    batch.add_argument("--out", type=Path, required=True, metavar="DIR", help="where images and results go")
    batch.add_argument(
        "--concurrency",
        type=_whole_number(1, 1000),
        default=16,
        help="requests at once, at most (default 16)",
    )
    _add_settings(batch, "model", "api", *_CALL_SETTINGS)
    batch.set_defaults(run=_batch)

    mcp = commands.add_parser(
        "mcp",
        help="serve generate_image over MCP (stdio); needs the mcp extra",
        description="Serve generate_image to MCP clients over stdio (pip install 'image-tool[mcp]').",
    )
    mcp.add_argument("--save-dir", type=Path, help="save images here and return them to the client")
    mcp.add_argument("--allow-private-downloads", action="store_true")
    mcp.add_argument("--stream", action="store_true")
    mcp.add_argument("--model", help="the image model (default gpt-4o-image)")
    mcp.add_argument("--api", choices=("chat", "images"), help="the endpoint (default: the model's)")
    mcp.set_defaults(run=_mcp)
    return parser


_CALL_SETTINGS = ("max_retries", "total_timeout", "allow_private_downloads")


def _add_settings(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds the flags of these client settings, each with the setting's default (``{default}``)."""
    flags: dict[str, tuple[str, dict[str, Any]]] = {
        "model": ("the image model (default {default})", {"metavar": "MODEL"}),
        "api": ("the endpoint: chat or images (default: the model's)", {"choices": ("chat", "images")}),
        "save_dir": ("save the images here (links expire)", {"type": Path, "metavar": "DIR"}),
        "stream": ("stream the answer, with live progress and previews", {"action": "store_true"}),
        "partial_images": (
            "previews the Images API streams (default {default})",
            {"type": _whole_number(0, 3)},
        ),
        "max_retries": ("retries of safe failures (default {default})", {"type": _whole_number(0)}),
        "total_timeout": (
            "give up on a call after (default {default:g})",
            {"type": _seconds, "metavar": "SECONDS"},
        ),
        "allow_private_downloads": (
            "save images served from loopback or private addresses (local relays)",
            {"action": "store_true"},
        ),
    }
    for name in names:
        text, options = flags[name]
        default = ClientSettings.model_fields[name].get_default(call_default_factory=True)
        parser.add_argument(
            SETTING_FLAGS[name], dest=name, default=default, help=text.format(default=default), **options
        )


# argparse types: a bad value is a one-line usage error (exit 2) before anything is sent.
def _prompt(text: str) -> str:
    prompt = text.strip()
    if not prompt:
        raise argparse.ArgumentTypeError("empty: say what to draw")
    if len(prompt) > MAX_PROMPT_LENGTH:
        raise argparse.ArgumentTypeError(f"{len(prompt)} characters; at most {MAX_PROMPT_LENGTH}")
    return prompt


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    expected = (
        f"a whole number from {low} to {high}" if high is not None else f"a whole number, {low} or more"
    )

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, not {text!r}")
    return value


def _generate(args: argparse.Namespace) -> int:
    from .client import ImageClient

    try:
        client = ImageClient(**{name: getattr(args, name) for name in SETTING_FLAGS})
    except errors.ConfigurationError as error:
        message = NOT_CONFIGURED if "No image relay is configured" in str(error) else str(error)
        print(message, file=sys.stderr)
        return 2
    try:
        references = [_reference(value) for value in args.image]
        mask = _reference(args.mask) if args.mask else None
    except errors.ReferenceImageError as error:
        print(f"image-tool: --image {error}", file=sys.stderr)
        return 2
    display = _ProgressDisplay(sys.stderr, args.save_dir) if sys.stderr.isatty() else None
    options = {name: getattr(args, name) for name in OPTION_NAMES}
    try:
        with client, display or contextlib.nullcontext():
            result = client.generate(
                args.prompt,
                n=args.n,
                **options,
                image_urls=references,
                mask=mask,
                on_progress=display.update if display else None,
            )
    except errors.ImageToolError as error:
        print(f"image-tool: {_in_cli_terms(str(error))}", file=sys.stderr)
        return exit_code(error)
    result = _save_errors_in_cli_terms(result)
    print(_as_json(result) if args.json else _as_text(result))
    return _report_unsaved(result, args.save_dir)


def exit_code(error: BaseException) -> int:
    return next((code for kind, code, _ in EXIT_CODES if isinstance(error, kind)), 1)


def _in_cli_terms(message: str) -> str:
    """The library's messages name its settings (``ImageClient(total_timeout=...)``,
    ``allow_private_downloads=True``); here they name the flags."""
    for setting, flag in SETTING_FLAGS.items():
        for named in (f"ImageClient({setting}=...)", f"{setting}=True", f"{setting}=..."):
            message = message.replace(named, flag)
    return message


def _save_errors_in_cli_terms(result: ImageGenerationResult) -> ImageGenerationResult:
    images = [
        image.model_copy(update={"save_error": _in_cli_terms(image.save_error)})
        if image.save_error
        else image
        for image in result.images
    ]
    return result.model_copy(update={"images": images})


def _report_unsaved(result: ImageGenerationResult, save_dir: Path | None) -> int:
    """One line on stderr per image that was not saved; the exit code tells scripts."""
    reasons = [
        (number, image.save_error) for number, image in enumerate(result.images, 1) if image.save_error
    ]
    for number, reason in reasons:
        flag = SETTING_FLAGS["save_dir"]
        print(f"image-tool: image {number} was not saved to {save_dir} ({flag}): {reason}", file=sys.stderr)
    return exit_code(errors.SaveError()) if reasons else 0


def _reference(value: str) -> str:
    """A local file given on the command line is the user's own: send it as a data URL."""
    from ._io.references import reference_urls

    if value.startswith(("https://", "http://", "data:")):
        return value
    path = Path(value).resolve()
    return reference_urls([str(path)], [path.parent])[0]


def _as_text(result: ImageGenerationResult) -> str:
    lines = []
    for number, image in enumerate(result.images, start=1):
        lines.append(f"{number}. {image.path or image.url or '(inline image: use --save to keep it)'}")
        if image.path and image.url:
            lines.append(f"   from {image.url}")
        if image.revised_prompt:
            lines.append(f"   revised prompt: {image.revised_prompt}")
    return "\n".join(lines)


def _as_json(result: ImageGenerationResult) -> str:
    # Inline base64 stays out of the JSON (use --save): scripts want paths and links.
    return json.dumps(result.model_dump(mode="json", exclude={"images": {"__all__": {"b64_json"}}}), indent=2)


class _ProgressDisplay:
    """One line on a terminal, redrawn in place: a spinner, the stage, the percent, the time, and
    where the latest preview is (its link, or the file a partial image was written to)."""

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO, save_dir: Path | None = None) -> None:
        self._stream = stream
        self._preview_dir = save_dir or Path(tempfile.gettempdir())
        self._preview = ""
        self._state = "waiting for the relay"
        self._started = time.monotonic()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._draw_until_done, daemon=True)

    def __enter__(self) -> _ProgressDisplay:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def update(self, progress: GenerationProgress) -> None:
        if progress.stage == "saving":  # the relay's "done 100%" came before the downloads
            self._state = "saving images"
            return
        percent = f" {progress.percent}%" if progress.percent is not None else ""
        if where := self._where_preview(progress):
            self._preview = f"  preview: {where}"
        self._state = f"{progress.stage}{percent}{self._preview}"

    def _where_preview(self, progress: GenerationProgress) -> str | None:
        if progress.preview_b64:
            try:
                data = base64.b64decode(progress.preview_b64)
                path = self._preview_dir / f"image-tool-preview{image_extension(data[:16]) or '.png'}"
                path.write_bytes(data)
            except (ValueError, OSError):
                return None
            return str(path)
        return progress.preview_url

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        self._stream.write("\r\033[K")
        self._stream.flush()

    def _draw_until_done(self) -> None:
        frame = 0
        while not self._done.is_set():
            elapsed = time.monotonic() - self._started
            self._stream.write(
                f"\r\033[K{self.FRAMES[frame % len(self.FRAMES)]} {self._state}  {elapsed:.0f} s"
            )
            self._stream.flush()
            frame += 1
            self._done.wait(0.1)


def _fake_relay(args: argparse.Namespace) -> int:
    from .testing import FakeRelay, Reply

    reply = Reply.success(args.shape, pace=args.pace, delay=args.latency)
    limits = {
        "rate_limit": args.rate_limit,
        "quota_images": args.quota_images,
        "max_concurrent": args.max_concurrent,
    }
    relay = FakeRelay(port=args.port, default_reply=reply, profile=args.profile, **limits)
    # Ctrl-C is a clean stop from the moment the banner can be read, not only once it is waited for.
    with relay, contextlib.suppress(KeyboardInterrupt):
        as_relay = "" if args.profile == "vendor" else f", as {args.profile}"
        print(
            f"FakeRelay is serving {relay.base_url} (answers: {args.shape}{as_relay}). In another terminal:\n"
            f"  export IMAGE_TOOL_BASE_URL={relay.base_url}\n"
            f"  export IMAGE_TOOL_API_KEY={relay.api_key}\n"
            '  image-tool generate "A lighthouse at dawn" --stream --save images --allow-private-downloads\n'
            "Ctrl-C stops it.",
            flush=True,
        )
        threading.Event().wait()
    return 0


def _batch(args: argparse.Namespace) -> int:
    from .batch import run_batch

    settings = {name: getattr(args, name) for name in SETTING_FLAGS if hasattr(args, name)}
    if not args.prompts.is_file():
        print(f"image-tool: no such file: {args.prompts}", file=sys.stderr)
        return 2
    try:
        with _BatchDisplay(sys.stderr) as display:
            summary = run_batch(
                args.prompts, args.out, concurrency=args.concurrency, on_progress=display.update, **settings
            )
    except errors.ConfigurationError as error:
        message = NOT_CONFIGURED if "No image relay is configured" in str(error) else str(error)
        print(message, file=sys.stderr)
        return 2
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.lost} lost"
        f"{f', cost {summary.cost:g}' if summary.cost else ''}: {summary.results}"
    )
    return 0 if summary.failed == summary.lost == 0 else 1


class _BatchDisplay:
    """A progress bar (rich's, when installed: the ``progress`` extra) or a line every few
    seconds: done, failed, rate, time left, spend."""

    EVERY = 2.0

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = 0.0
        try:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
        except ImportError:
            self._bar: Any = None
            return
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[failed]} failed  {task.fields[rate]:.1f}/s  spend {task.fields[cost]:g}"
            ),
            TimeRemainingColumn(),
            console=Console(file=stream),
        )
        self._task = self._bar.add_task("generating", total=None, failed=0, rate=0.0, cost=0.0)

    def __enter__(self) -> _BatchDisplay:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def update(self, progress: BatchProgress) -> None:
        ended = progress.skipped + progress.done + progress.failed
        if self._bar is not None:
            self._bar.update(
                self._task,
                total=progress.total,
                completed=ended,
                failed=progress.failed,
                rate=progress.rate,
                cost=progress.cost,
            )
            return
        now = time.monotonic()
        if now - self._shown < self.EVERY and ended < progress.total:
            return
        self._shown = now
        eta = f", {progress.eta:.0f} s left" if progress.eta is not None else ""
        self._stream.write(
            f"{ended}/{progress.total} done, {progress.failed} failed, {progress.rate:.1f}/s{eta}, "
            f"spend {progress.cost:g}\n"
        )
        self._stream.flush()


def _mcp(args: argparse.Namespace) -> int:
    from .mcp_server import main as serve

    argv = [*(["--save-dir", str(args.save_dir)] if args.save_dir else [])]
    argv += ["--allow-private-downloads"] if args.allow_private_downloads else []
    argv += ["--stream"] if args.stream else []
    argv += [*(["--model", args.model] if args.model else []), *(["--api", args.api] if args.api else [])]
    return serve(argv)


if __name__ == "__main__":
    sys.exit(main())
