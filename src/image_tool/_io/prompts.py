"""A batch run's prompts file: one JSON object a line, read as a stream, each line a prompt or
the reason it cannot be one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..catalog import OPTION_NAMES
from .journal import digest

LINE_OPTIONS = ("n", *OPTION_NAMES)
"""What a prompt line may set beside ``id`` and ``prompt``."""


@dataclass(frozen=True)
class Prompt:
    """One line of the prompts file."""

    id: str
    prompt: str
    options: dict[str, Any]
    problem: str | None = None
    """Why the line cannot be sent (it is reported as failed, never sent)."""

    @property
    def digest(self) -> str:
        return digest(self.prompt, self.options)


def read_prompts(path: Path) -> Iterator[Prompt]:
    """Each non-blank line as a prompt; one that cannot be used is kept, to be reported as failed."""
    seen: set[str] = set()
    with path.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            item = _prompt_of(number, text)
            if item.id in seen:  # reported under a name of its own, never another prompt's
                problem = f"line {number} repeats the id {item.id!r}"
                renamed = f"{item.id}@line-{number}"
                while renamed in seen:
                    renamed += "+"
                item = Prompt(renamed, item.prompt, {}, problem)
            seen.add(item.id)
            yield item


def _prompt_of(number: int, text: str) -> Prompt:
    """``{"id": ..., "prompt": ..., options}``; the id defaults to ``line-<number>``."""
    try:
        entry = json.loads(text)
    except ValueError as error:
        return Prompt(f"line-{number}", "", {}, f"line {number} is not JSON: {error}")
    if not isinstance(entry, dict):
        return Prompt(f"line-{number}", "", {}, f"line {number} is not a JSON object")
    key, prompt = str(entry.get("id", f"line-{number}")), entry.get("prompt")
    if not (isinstance(prompt, str) and prompt.strip()):
        return Prompt(key, "", {}, f"line {number} has no prompt")
    if unknown := set(entry) - {"id", "prompt", *LINE_OPTIONS}:
        return Prompt(
            key, prompt, {}, f"line {number} has fields no generation takes: {', '.join(sorted(unknown))}"
        )
    return Prompt(key, prompt, {name: entry[name] for name in LINE_OPTIONS if name in entry})
