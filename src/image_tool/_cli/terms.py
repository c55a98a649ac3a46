"""The command line's own terms: an exit code per kind of failure, the flags that stand for the
client's settings in what it prints, and the types of the flags' values (here, as the MCP
server's flags take them too)."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

from .. import errors

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
    "retry_unanswered": "--retry-unanswered",
    "image_jobs": "--image-jobs",
    "total_timeout": "--total-timeout",
    "allow_private_downloads": "--allow-private-downloads",
    "extra_body": "--extra-body",
}

NOT_CONFIGURED = """\
image-tool needs an image relay. Set:
  export IMAGE_TOOL_API_KEY="sk-..."
  export IMAGE_TOOL_BASE_URL="https://relay.example.com/v1"
To try it offline, run the emulator in another terminal and follow what it prints:
  image-tool fake-relay"""


# argparse types: a bad value is a one-line usage error (exit 2) before anything is sent.
def whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``)."""
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


def number(what: str, *, zero_allowed: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number above 0 (or 0 or more), as ``what`` names it."""
    expected = f"{what}, 0 or more" if zero_allowed else f"{what} above 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > 0 or (zero_allowed and value == 0))):
            raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
        return value

    return parse


def extra_body_flag(text: str) -> dict[str, Any]:
    """``--extra-body``'s value: a JSON object (argparse's type; a bad one is a usage error)."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"not JSON ({error}): give an object, such as '{{\"seed\": 7}}'"
        ) from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object is needed, such as '{{\"seed\": 7}}'; not {text!r}")
    return value


def exit_code(error: BaseException) -> int:
    return next((code for kind, code, _ in EXIT_CODES if isinstance(error, kind)), 1)


def in_cli_terms(message: str) -> str:
    """The library's messages name its settings (``ImageClient(total_timeout=...)``,
    ``allow_private_downloads=True``); here they name the flags, or the environment variables."""
    for setting, flag in SETTING_FLAGS.items():
        for named in (f"ImageClient({setting}=...)", f"{setting}=True", f"{setting}=..."):
            message = message.replace(named, flag)
    # The key and the address have no flags: the command reads them from the environment only.
    for setting in ("api_key", "base_url"):
        message = message.replace(f"{setting}= or ", "")
    return message
