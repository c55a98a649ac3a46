"""ImageIds alone: numbering, scoping, and an index on disk read back within bounds."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from image_tool import InvalidRequestError, ReferenceImageError
from image_tool._tool import image_ids
from image_tool._tool.image_ids import INDEX_DIR, ImageIds, image_number
from image_tool.models import GeneratedImage

CHAT = ("chat-1", None)


def linked(count: int) -> list[GeneratedImage]:
    return [GeneratedImage(url=f"https://cdn.example/{index}.png") for index in range(count)]


def saved(save_dir: Path, name: str) -> GeneratedImage:
    path = save_dir / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return GeneratedImage(url="https://cdn.example/x.png", path=path)


@pytest.mark.parametrize(
    ("value", "number"),
    [("img_1", 1), ("IMG_12", 12), (" img_3 ", 3), ("img_0", None), ("img_01", None), ("img_1x", None)],
)
def test_what_is_an_id(value: str, number: int | None) -> None:
    assert image_number(value) == number


def test_ids_count_on_per_conversation_and_other_values_pass_unchanged() -> None:
    ids = ImageIds(None)
    assert ids.name(CHAT, linked(2), None) == ["img_1", "img_2"]
    assert ids.name(CHAT, linked(1), None) == ["img_3"]
    assert ids.name(("chat-2", None), linked(1), None) == ["img_1"]
    assert ids.resolve(CHAT, "img_3") == "https://cdn.example/0.png"
    assert ids.resolve(CHAT, "https://elsewhere/a.png") == "https://elsewhere/a.png"
    assert ids.task_of(CHAT, "1234") == "1234"


def test_a_task_id_is_found_by_the_grids_image_id() -> None:
    ids = ImageIds(None)
    ids.name(CHAT, linked(1), "1700000000000001")
    ids.name(CHAT, linked(1), None)
    assert ids.task_of(CHAT, "img_1") == "1700000000000001"
    with pytest.raises(InvalidRequestError, match="img_2 is not a Midjourney grid"):
        ids.task_of(CHAT, "img_2")


def test_threads_naming_at_once_get_distinct_ids() -> None:
    ids, names = ImageIds(None), []
    lock = threading.Lock()

    def name() -> None:
        for _ in range(50):
            got = ids.name(CHAT, linked(2), None)
            with lock:
                names.extend(got)

    workers = [threading.Thread(target=name) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(names) == sorted(f"img_{number}" for number in range(1, 801))


def test_the_index_is_read_back_and_counts_on(tmp_path: Path) -> None:
    name = "0123456789abcdef0123456789abcdef.png"
    ImageIds(tmp_path).name(CHAT, [saved(tmp_path, name)], None)
    again = ImageIds(tmp_path)
    assert again.resolve(CHAT, "img_1").startswith("data:image/png;base64,")
    assert again.name(CHAT, linked(1), None) == ["img_2"]
    assert len(list((tmp_path / INDEX_DIR).iterdir())) == 1


def test_a_tampered_index_never_reaches_outside_the_folder(tmp_path: Path) -> None:
    index_dir = tmp_path / INDEX_DIR
    ImageIds(tmp_path).name(CHAT, linked(1), None)
    (index,) = index_dir.iterdir()
    secret = tmp_path.parent / "secret.png"
    secret.write_bytes(b"\x89PNG\r\n\x1a\n")
    index.write_text(
        "not json\n"
        '{"id": 2, "file": "../secret.png"}\n'
        '{"id": 3, "link": "file:///etc/passwd"}\n'
        '{"id": "4", "link": "https://cdn.example/4.png"}\n'
        '{"id": 5, "link": "https://cdn.example/5.png"}\n'
        "[1, 2]\n"
    )
    ids = ImageIds(tmp_path)
    for refused in ("img_2", "img_3", "img_4"):
        with pytest.raises(ReferenceImageError, match="img_5 to img_5"):
            ids.resolve(CHAT, refused)
    assert ids.resolve(CHAT, "img_5") == "https://cdn.example/5.png"


def test_a_huge_index_is_read_within_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_ids, "MAX_INDEX_BYTES", 10_000)
    monkeypatch.setattr(image_ids, "MAX_IDS", 50)
    ids = ImageIds(tmp_path)
    for _ in range(300):
        ids.name(CHAT, linked(1), None)
    assert ids.resolve(CHAT, "img_300") == "https://cdn.example/0.png"
    with pytest.raises(ReferenceImageError, match="img_251 to img_300"):
        ids.resolve(CHAT, "img_1")  # forgotten in memory past MAX_IDS
    reread = ImageIds(tmp_path)
    assert reread.resolve(CHAT, "img_300") == "https://cdn.example/0.png"
    with pytest.raises(ReferenceImageError, match="img_251 to img_300"):
        reread.resolve(CHAT, "img_100")  # and on disk, only the newest lines are read


def test_long_links_and_data_urls_are_not_remembered() -> None:
    ids = ImageIds(None)
    ids.name(
        CHAT,
        [
            GeneratedImage(url="https://cdn.example/" + "a" * 3000),
            GeneratedImage(url="data:image/png;base64,AA"),
        ],
        None,
    )
    for number in (1, 2):
        with pytest.raises(ReferenceImageError, match="was not saved and has no link"):
            ids.resolve(CHAT, f"img_{number}")


def test_an_index_that_cannot_be_written_leaves_the_ids_in_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / INDEX_DIR).write_text("a file where the folder should be")
    ids = ImageIds(tmp_path)
    assert ids.name(CHAT, linked(1), None) == ["img_1"]
    assert ids.resolve(CHAT, "img_1") == "https://cdn.example/0.png"
    assert "image ids not written" in caplog.text


def test_memory_holds_a_bounded_number_of_conversations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_ids, "MAX_CONVERSATIONS", 3)
    ids = ImageIds(None)
    for thread in range(5):
        ids.name((f"chat-{thread}", None), linked(1), None)
    with pytest.raises(ReferenceImageError, match="only with save_dir"):
        ids.resolve(("chat-0", None), "img_1")  # the least recently used is forgotten
    assert ids.resolve(("chat-4", None), "img_1") == "https://cdn.example/0.png"
