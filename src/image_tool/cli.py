"""The ``image-tool`` command: generate images at a terminal, serve the emulator, run the MCP server."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, get_args

from ._cli import commands
from ._cli.terms import EXIT_CODES, SETTING_FLAGS, exit_code, extra_body_flag, number, whole_number
from ._mcp.options import add_arguments as add_mcp_arguments
from .catalog import CUSTOM_SIZE_RULE
from .models import DEFAULT_N, MAX_IMAGES, MAX_PROMPT_LENGTH, OPTION_VALUES, ImageSize
from .settings import ClientSettings
from .testing import RelayProfile, Shape

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
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")

    generate = subcommands.add_parser(
        "generate",
        help="generate images for a prompt",
        description="Generate images for a prompt, show progress, print where they are.",
        epilog=GENERATE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument("prompt", type=_prompt, help="what to draw, in plain sentences")
    generate.add_argument(
        "--n",
        type=whole_number(1, MAX_IMAGES),
        default=DEFAULT_N,
        help=f"how many images, 1 to {MAX_IMAGES} (default {DEFAULT_N})",
    )
    # The drawing options: each model takes some of them (the docs' model table); left out, the
    # model's default is used, and one the model does not take is refused before anything is sent.
    for option, values in OPTION_VALUES.items():
        choices = get_args(values)
        flag = f"--{option.replace('_', '-')}"
        if option == "size":  # gpt-image-2 also draws sizes of its own
            text = f"{' | '.join(choices)}, or WxH (gpt-image-2: {CUSTOM_SIZE_RULE})"
            generate.add_argument(flag, type=_size, metavar="SIZE", help=text)
            continue
        generate.add_argument(flag, choices=choices, metavar=option.upper(), help=" | ".join(choices))
    generate.add_argument(
        "--output-compression", type=whole_number(0, 100), metavar="PERCENT", help="JPEG/WebP, 0 to 100"
    )
    generate.add_argument(
        "--seed",
        type=whole_number(0, 2**32 - 1),
        metavar="N",
        help="repeatable drawings (FLUX, Midjourney...)",
    )
    generate.add_argument("--negative-prompt", metavar="TEXT", help="what not to draw (Midjourney's --no)")
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
    _add_settings(
        generate, "model", "api", "save_dir", "stream", "partial_images", "extra_body", *_CALL_SETTINGS
    )
    generate.set_defaults(run=commands.generate)

    action = subcommands.add_parser(
        "action",
        help="upscale, vary or reroll a Midjourney grid",
        description="Do an action on the images of a Midjourney task (its id and actions are printed "
        "with the grid): U1-U4 upscale one image, V1-V4 draw variations of one, reroll draws again.",
    )
    action.add_argument("task_id", metavar="TASK_ID", help="the task of the grid")
    action.add_argument("action", metavar="ACTION", help="U1-U4, V1-V4 or reroll")
    action.add_argument("--json", action="store_true", help="print the result as JSON, for scripts")
    _add_settings(action, "model", "save_dir", *_CALL_SETTINGS)
    action.set_defaults(run=commands.action, model="mj_imagine")

    relay = subcommands.add_parser(
        "fake-relay",
        help="serve the relay emulator on 127.0.0.1, for offline demos",
        description="Serve FakeRelay, image-tool's relay emulator, until Ctrl-C.",
    )
    relay.add_argument(
        "--port", type=whole_number(0, 65535), default=8765, help="default 8765 (0: any free port)"
    )
    relay.add_argument(
        "--shape",
        choices=get_args(Shape),
        default="markdown",
        help="how it answers (default markdown, with progress text when streamed)",
    )
    relay.add_argument(
        "--pace", type=_seconds_or_zero, default=0.05, help="seconds between streamed events (default 0.05)"
    )
    relay.add_argument(
        "--latency", type=_seconds_or_zero, default=0.0, help="seconds before each answer (default 0)"
    )
    relay.add_argument(
        "--rate-limit", type=_per_second, metavar="PER_SECOND", help="answer at most this many a second"
    )
    relay.add_argument("--quota-images", type=whole_number(0), metavar="N", help="quota spent after N images")
    relay.add_argument("--max-concurrent", type=whole_number(1), metavar="N", help="saturated past N at once")
    relay.add_argument(
        "--profile",
        choices=get_args(RelayProfile),
        default="vendor",
        help="the relay software to answer as, in front of the vendor (default vendor: as documented)",
    )
    relay.set_defaults(run=commands.fake_relay)

    batch = subcommands.add_parser(
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
        type=whole_number(1, 1000),
        default=16,
        help="requests at once, at most (default 16)",
    )
    batch.add_argument(
        "--resend-lost",
        action="store_true",
        help="send again the prompts an earlier run sent but lost (they may be billed twice)",
    )
    _add_settings(batch, "model", "api", "extra_body", *_CALL_SETTINGS)
    batch.set_defaults(run=commands.batch)

    mcp = subcommands.add_parser(
        "mcp",
        help="serve generate_image over MCP (stdio, or HTTP for a team); needs the mcp extra",
        description="Serve generate_image to MCP clients over stdio, or over streamable HTTP with a "
        "token per client (pip install 'image-tool[mcp]'; docs/mcp.md).",
    )
    add_mcp_arguments(mcp)
    mcp.set_defaults(run=commands.mcp)
    return parser


_CALL_SETTINGS = ("max_retries", "retry_unanswered", "image_jobs", "total_timeout", "allow_private_downloads")


def _add_settings(parser: argparse.ArgumentParser, *names: str) -> None:
    """Adds the flags of these client settings, each with the setting's default (``{default}``)."""
    flags: dict[str, tuple[str, dict[str, Any]]] = {
        "model": ("the image model (default {default})", {"metavar": "MODEL"}),
        "api": ("the endpoint: chat or images (default: the model's)", {"choices": ("chat", "images")}),
        "save_dir": ("save the images here (links expire)", {"type": Path, "metavar": "DIR"}),
        "stream": ("stream the answer, with live progress and previews", {"action": "store_true"}),
        "partial_images": (
            "previews the Images API streams (default {default})",
            {"type": whole_number(0, 3)},
        ),
        "max_retries": ("retries of safe failures (default {default})", {"type": whole_number(0)}),
        "image_jobs": (
            "draw an Images API model's images as a job, submitted then polled (relays that take them)",
            {"action": "store_true"},
        ),
        "retry_unanswered": (
            "also retry a request the relay had whole and never answered (it may be billed twice)",
            {"action": "store_true"},
        ),
        "total_timeout": (
            "give up on a call after (default {default:g})",
            {"type": _seconds, "metavar": "SECONDS"},
        ),
        "allow_private_downloads": (
            "save images served from loopback or private addresses (local relays)",
            {"action": "store_true"},
        ),
        "extra_body": (
            "provider options sent with each request, a JSON object (docs/models.md)",
            {"type": extra_body_flag, "metavar": "JSON"},
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


def _size(text: str) -> str:
    """A size the client checks against the model: one of the named sizes, or ``WxH``."""
    if text in get_args(ImageSize) or re.fullmatch(r"\d{1,5}x\d{1,5}", text):
        return text
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(get_args(ImageSize))} or WxH, not {text!r}")


_seconds = number("a number of seconds")
_seconds_or_zero = number("a number of seconds", zero_allowed=True)
_per_second = number("a number of requests a second")


if __name__ == "__main__":
    sys.exit(main())
