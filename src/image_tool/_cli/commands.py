"""What each command of ``image-tool`` runs. Each imports what it needs when it runs: ``--help``
loads neither the client, the emulator, nor LangChain (only ``mcp`` needs it)."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import errors
from ..catalog import OPTION_NAMES
from ..models import ImageGenerationResult
from .displays import BatchDisplay, ProgressDisplay
from .terms import NOT_CONFIGURED, SETTING_FLAGS, exit_code, in_cli_terms

if TYPE_CHECKING:
    from ..client import ImageClient


def generate(args: argparse.Namespace) -> int:
    try:
        references = [_reference(value) for value in args.image]
    except errors.ReferenceImageError as error:
        print(f"image-tool: --image {error}", file=sys.stderr)
        return 2
    try:
        mask = _reference(args.mask) if args.mask else None
    except errors.ReferenceImageError as error:
        print(f"image-tool: --mask {error}", file=sys.stderr)
        return 2
    options = {name: getattr(args, name) for name in OPTION_NAMES}
    return _draw(
        args,
        lambda client, on_progress: client.generate(
            args.prompt, n=args.n, **options, image_urls=references, mask=mask, on_progress=on_progress
        ),
    )


def action(args: argparse.Namespace) -> int:
    """An action on a Midjourney grid: ``image-tool action TASK_ID U2``."""
    return _draw(
        args,
        lambda client, on_progress: client.run_action(args.task_id, args.action, on_progress=on_progress),
    )


def _draw(args: argparse.Namespace, draw: Callable[[ImageClient, Any], ImageGenerationResult]) -> int:
    """A client from the flags, ``draw`` with it (progress shown at a terminal), the result printed."""
    from ..client import ImageClient

    try:
        client = ImageClient(**{name: getattr(args, name) for name in SETTING_FLAGS if hasattr(args, name)})
    except errors.ConfigurationError as error:
        message = NOT_CONFIGURED if "No image relay is configured" in str(error) else in_cli_terms(str(error))
        print(message, file=sys.stderr)
        return 2
    # Checked before anything is sent: an image generated (and billed) that cannot be kept is lost.
    if args.save_dir is not None and (reason := _unwritable(args.save_dir)):
        flag = SETTING_FLAGS["save_dir"]
        print(
            f"image-tool: cannot write to {flag} {args.save_dir}: {reason}. Nothing was sent.",
            file=sys.stderr,
        )
        return 2
    display = ProgressDisplay(sys.stderr, args.save_dir) if sys.stderr.isatty() else None
    try:
        with client, display or contextlib.nullcontext():
            result = draw(client, display.update if display else None)
    except errors.ImageToolError as error:
        print(f"image-tool: {in_cli_terms(str(error))}", file=sys.stderr)
        return exit_code(error)
    result = _save_errorsin_cli_terms(result)
    print(_as_json(result) if args.json else _as_text(result))
    return _report_unsaved(result, args.save_dir)


def _save_errorsin_cli_terms(result: ImageGenerationResult) -> ImageGenerationResult:
    images = [
        image.model_copy(update={"save_error": in_cli_terms(image.save_error)}) if image.save_error else image
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


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written in ``folder`` (made if missing), or None when they can."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except FileExistsError:  # mkdir's word for a file standing where the folder should be
        return "it is a file, not a folder"
    except OSError as error:
        return error.strerror or str(error)
    return None


def _reference(value: str) -> str:
    """A local file given on the command line is the user's own: send it as a data URL."""
    from .._io.references import reference_urls

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
    if result.task_id and result.actions:
        lines.append(
            f"task {result.task_id}: image-tool action {result.task_id} ACTION ({', '.join(result.actions)})"
        )
    return "\n".join(lines)


def _as_json(result: ImageGenerationResult) -> str:
    # Inline base64 stays out of the JSON (use --save): scripts want paths and links.
    return json.dumps(result.model_dump(mode="json", exclude={"images": {"__all__": {"b64_json"}}}), indent=2)


def fake_relay(args: argparse.Namespace) -> int:
    from ..testing import FakeRelay, Reply

    reply = Reply.success(args.shape, pace=args.pace, delay=args.latency)
    limits = {
        "rate_limit": args.rate_limit,
        "quota_images": args.quota_images,
        "max_concurrent": args.max_concurrent,
    }
    relay = FakeRelay(port=args.port, default_reply=reply, profile=args.profile, **limits)
    try:
        relay.start()
    except OSError as error:  # the port is taken, or not this user's to take
        print(f"image-tool: {_cannot_serve(args.port, error)}", file=sys.stderr)
        return 2
    as_relay = "" if args.profile == "vendor" else f", as {args.profile}"
    banner = (
        f"FakeRelay is serving {relay.base_url} (answers: {args.shape}{as_relay}). In another terminal:\n"
        f"  export IMAGE_TOOL_BASE_URL={relay.base_url}\n"
        f"  export IMAGE_TOOL_API_KEY={relay.api_key}\n"
        '  image-tool generate "A lighthouse at dawn" --stream --save images --allow-private-downloads\n'
        "Ctrl-C stops it."
    )
    # Ctrl-C is a clean stop from the moment the banner can be read, not only once it is waited for.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            print(banner, flush=True)
            threading.Event().wait()
    finally:
        relay.stop()
    return 0


def _cannot_serve(port: int, error: OSError) -> str:
    problem = (
        f"port {port} is already in use"
        if error.errno == errno.EADDRINUSE
        else f"cannot serve on port {port}: {error.strerror or error}"
    )
    return f"{problem}. Pick another with --port PORT, or --port 0 for any free port."


def batch(args: argparse.Namespace) -> int:
    from ..batch import run_batch

    settings = {name: getattr(args, name) for name in SETTING_FLAGS if hasattr(args, name)}
    if not args.prompts.is_file():
        print(f"image-tool: no such file: {args.prompts}", file=sys.stderr)
        return 2
    if reason := _unwritable(args.out):  # checked before anything is sent
        print(f"image-tool: cannot write to --out {args.out}: {reason}", file=sys.stderr)
        return 2
    try:
        with BatchDisplay(sys.stderr) as display:
            summary = run_batch(
                args.prompts,
                args.out,
                concurrency=args.concurrency,
                on_progress=display.update,
                resend_lost=args.resend_lost,
                **settings,
            )
    except errors.ConfigurationError as error:
        message = NOT_CONFIGURED if "No image relay is configured" in str(error) else str(error)
        print(message, file=sys.stderr)
        return 2
    except OSError as error:  # the output directory: unwritable, or a full disk
        print(
            f"image-tool: could not write to --out {args.out}: {error.strerror or error}. What was "
            "written is kept: the same command goes on from there.",
            file=sys.stderr,
        )
        return 2
    print(
        f"{summary.ok} ok, {summary.failed} failed, {summary.lost} lost"
        f"{f', cost {summary.cost:g}' if summary.cost else ''}: {summary.results}"
    )
    if summary.invalid_lines:
        shown = "; ".join(summary.invalid_lines[:3])
        print(
            f"image-tool: {len(summary.invalid_lines)} prompt line(s) could not be used: {shown}",
            file=sys.stderr,
        )
    if summary.lost:
        print(
            f"image-tool: {summary.lost} prompt(s) went out but their answers were not recorded; they "
            "may have been generated and billed. --resend-lost sends them again.",
            file=sys.stderr,
        )
    if summary.unsaved:
        reason = in_cli_terms(summary.unsaved[0])
        print(f"image-tool: {len(summary.unsaved)} image(s) were not saved: {reason}", file=sys.stderr)
        return exit_code(errors.SaveError())
    if summary.not_started:
        print(
            f"image-tool: stopped; {summary.not_started} prompt(s) not started: run the same command to go on"
        )
        return exit_code(KeyboardInterrupt())
    return 0 if summary.failed == summary.lost == 0 else 1


def mcp(args: argparse.Namespace) -> int:
    from ..mcp_server import serve

    return serve(args)
