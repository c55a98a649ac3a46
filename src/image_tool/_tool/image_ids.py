"""Short ids for the images the tool returned (``img_1``, ``img_2``...), one series per
conversation, so the model names an earlier image instead of copying its link.

A conversation is a LangGraph thread (``thread_id`` in the run's config) with its end user; calls
outside any thread share one conversation per tool. An id resolves only in the conversation that
was shown it. With ``save_dir``, a thread's ids are also written beside its images
(``.image-ids/<hash of the thread and user>.jsonl``, a line per image), so they still resolve after
a restart; without it they live as long as the tool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._io.references import reference_urls
from ..errors import InvalidRequestError, ReferenceImageError
from ..models import GeneratedImage

Conversation = tuple[str | None, str | None]
"""``(thread_id, user)``: whose ids these are. ``(None, user)``: calls outside any thread."""

MAX_CONVERSATIONS = 1024
"""Conversations kept in memory; the least recently used is read again from disk when needed."""
MAX_IDS = 10_000
"""Ids a conversation keeps; past this the oldest are forgotten."""
MAX_INDEX_BYTES = 4 * 1024 * 1024
"""Of a longer index, only the newest lines are read."""
MAX_LINK = 2048
"""A longer link (or a ``data:`` URL) is not remembered: the saved file stands for the image."""
INDEX_DIR = ".image-ids"

logger = logging.getLogger("image_tool")

_ID = re.compile(r"img_([1-9][0-9]{0,8})", re.IGNORECASE)
_SAVED_NAME = re.compile(r"[0-9a-f]{32}\.(png|jpg|webp|gif)")  # _io/storage.py's names


def image_number(value: str) -> int | None:
    """The number of an image id (``img_3`` -> 3); ``None`` for anything else."""
    match = _ID.fullmatch(value.strip())
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Remembered:
    """What an id stands for: the saved file's name, the link, the relay's task."""

    file: str | None = None
    link: str | None = None
    task_id: str | None = None

    @classmethod
    def of(cls, image: GeneratedImage, task_id: str | None) -> Remembered:
        link = image.url if image.url and image.url.startswith(("https://", "http://")) else None
        return cls(
            file=image.path.name if image.path else None,
            link=link if link and len(link) <= MAX_LINK else None,
            task_id=task_id,
        )

    @classmethod
    def from_line(cls, line: str) -> tuple[int, Remembered] | None:
        """An index line read back, or ``None`` when it is not one this module wrote."""
        try:
            entry = json.loads(line)
            number, file, link, task_id = entry["id"], entry.get("file"), entry.get("link"), entry.get("task")
        except (ValueError, TypeError, KeyError):
            return None
        if not (isinstance(number, int) and 0 < number < 10**9):
            return None
        if not (file is None or (isinstance(file, str) and _SAVED_NAME.fullmatch(file))):
            return None  # never a path out of the folder
        if not (link is None or (isinstance(link, str) and link.startswith(("https://", "http://")))):
            return None
        return number, cls(file, link, task_id if isinstance(task_id, str) else None)

    def line(self, number: int) -> str:
        entry = {"id": number, "file": self.file, "link": self.link, "task": self.task_id}
        return json.dumps({key: value for key, value in entry.items() if value is not None}) + "\n"


class ImageIds:
    """The ids one tool has shown, by conversation; safe to use from several threads at once."""

    def __init__(self, save_dir: Path | None) -> None:
        self.save_dir = save_dir
        self._lock = threading.Lock()
        self._conversations: OrderedDict[Conversation, dict[int, Remembered]] = OrderedDict()

    def name(
        self, conversation: Conversation, images: Sequence[GeneratedImage], task_id: str | None
    ) -> list[str]:
        """Gives each image the next id of ``conversation`` (written to its index when it has
        one), and returns the ids."""
        entries = [Remembered.of(image, task_id) for image in images]
        with self._lock:
            known = self._known(conversation)
            first = max(known, default=0) + 1
            numbered = dict(enumerate(entries, start=first))
            known.update(numbered)
            for number in sorted(known)[: max(0, len(known) - MAX_IDS)]:
                del known[number]
            if (index := self._index(conversation)) is not None:
                _append(index, "".join(entry.line(number) for number, entry in numbered.items()))
        return [f"img_{number}" for number in numbered]

    def on_disk(self, conversation: Conversation) -> bool:
        """Whether naming or resolving in ``conversation`` may read or write its index."""
        return self._index(conversation) is not None

    def resolve(self, conversation: Conversation, value: str) -> str:
        """``value`` as a reference to send: an id's saved file (a ``data:`` URL) or its link;
        anything that is not an id, unchanged."""
        number = image_number(value)
        if number is None:
            return value
        remembered = self._remembered(conversation, number)
        if remembered.file and self.save_dir is not None and (self.save_dir / remembered.file).is_file():
            return reference_urls([str(self.save_dir / remembered.file)], [self.save_dir])[0]
        if remembered.link:
            return remembered.link
        raise ReferenceImageError(
            f"img_{number} was not saved and has no link to send: pass the image again, as a URL "
            "or a saved path"
        )

    def task_of(self, conversation: Conversation, value: str) -> str:
        """The relay's task id behind an image id (a Midjourney grid); other values unchanged."""
        number = image_number(value)
        if number is None:
            return value
        task_id = self._remembered(conversation, number, InvalidRequestError).task_id
        if task_id is None:
            raise InvalidRequestError(
                f"task_id img_{number} is not a Midjourney grid: give the task_id it reported."
            )
        return task_id

    def _remembered(
        self, conversation: Conversation, number: int, error: type[InvalidRequestError] = ReferenceImageError
    ) -> Remembered:
        with self._lock:
            known = self._known(conversation)
            remembered = known.get(number)
        if remembered is not None:
            return remembered
        if not known:
            where = (
                "ids outlive a restart only with save_dir set"
                if self._index(conversation) is None and conversation[0] is not None
                else "this tool has shown no image in this conversation"
            )
            raise error(
                f"img_{number} is not known ({where}): pass the image again, as a URL or a saved path"
            )
        raise error(
            f"img_{number} is not an image of this conversation (its images run from "
            f"img_{min(known)} to img_{max(known)}): use one of those, or pass a URL"
        )

    def _known(self, conversation: Conversation) -> dict[int, Remembered]:
        """The ids of ``conversation`` (under the lock), read from its index on first use."""
        known = self._conversations.get(conversation)
        if known is None:
            index = self._index(conversation)
            known = _read(index) if index is not None else {}
            self._conversations[conversation] = known
            if len(self._conversations) > MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
        self._conversations.move_to_end(conversation)
        return known

    def _index(self, conversation: Conversation) -> Path | None:
        """Where a thread's ids are written; ``None`` outside a thread or without ``save_dir``."""
        thread_id, user = conversation
        if self.save_dir is None or thread_id is None:
            return None
        digest = hashlib.sha256(f"{thread_id}\0{user or ''}".encode()).hexdigest()[:32]
        return self.save_dir / INDEX_DIR / f"{digest}.jsonl"


def _read(index: Path) -> dict[int, Remembered]:
    try:
        with index.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - MAX_INDEX_BYTES))
            text = file.read().decode("utf-8", "replace")
    except OSError:
        return {}  # none yet, or unreadable: the ids start again, and an old one is refused
    lines = text.splitlines()[1:] if size > MAX_INDEX_BYTES else text.splitlines()  # a cut first line
    read = (Remembered.from_line(line) for line in lines[-MAX_IDS:])
    return dict(entry for entry in read if entry is not None)


def _append(index: Path, lines: str) -> None:
    """Lines appended in one write; an index that cannot be written leaves the ids in memory."""
    try:
        index.parent.mkdir(parents=True, exist_ok=True)
        with index.open("a", encoding="utf-8") as file:
            file.write(lines)
    except OSError as error:
        logger.warning("image ids not written to %s (%s): they last until a restart", index, error.strerror)
