"""Make the sync core (src/image_tool/_sync/) from the async one (src/image_tool/_async/).

    python scripts/make_sync.py           # write _sync/
    python scripts/make_sync.py --check   # exit 1 when _sync/ is not what _async/ makes (CI)

unasync drops ``async``/``await``, turns ``async with``/``async for`` into their sync forms and
``AsyncX`` names into ``SyncX``; the names below are the rest of what differs. A generated file is
formatted with ruff, so it reads as if written by hand; it is never edited.
"""

from __future__ import annotations

import argparse
import difflib
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "image_tool" / "_async"
TARGET = ROOT / "src" / "image_tool" / "_sync"

REPLACEMENTS = {
    # httpx2 and httpcore2: the sync class of each async one
    "AsyncBaseTransport": "BaseTransport",
    "handle_async_request": "handle_request",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncNetworkStream": "NetworkStream",
    "AsyncNetworkBackend": "NetworkBackend",
    "AnyIOBackend": "SyncBackend",
    "aclose": "close",
    "AsyncClient": "Client",
    "AbstractAsyncContextManager": "AbstractContextManager",
    # tenacity
    "AsyncRetrying": "Retrying",
    # image-tool's own async names
    "araw_chunks": "raw_chunks",
    "atrace": "trace",
    "AsyncPools": "SyncPool",  # the sync side has one pool for every thread: its own current()
}
PACKAGE_DOCSTRING = '"""The sync core of a call, made from ``_async/`` by ``scripts/make_sync.py``."""\n'
HEADER = "# Made from _async/{name} by scripts/make_sync.py: edit that file, then run the script.\n"


def generated(directory: Path) -> dict[str, str]:
    """Each file of ``_sync/`` as ``_async/`` makes it, written under ``directory``."""
    source = directory / "_async"
    target = directory / "_sync"
    source.mkdir(parents=True)
    for path in SOURCE.glob("*.py"):
        (source / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    rule = unasync.Rule(str(source) + "/", str(target) + "/", additional_replacements=REPLACEMENTS)
    unasync.unasync_files([str(path) for path in sorted(source.glob("*.py"))], [rule])
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--quiet",
            f"--config={ROOT / 'pyproject.toml'}",
            str(target),
        ],
        check=True,
    )
    files = {path.name: HEADER.format(name=path.name) + path.read_text() for path in target.glob("*.py")}
    files["__init__.py"] = PACKAGE_DOCSTRING
    return files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when _sync/ is stale; write nothing")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as directory:
        files = generated(Path(directory))
    present = {path.name: path.read_text(encoding="utf-8") for path in TARGET.glob("*.py")}
    if check:
        stale = sorted(name for name in files.keys() | present.keys() if files.get(name) != present.get(name))
        for name in stale:
            sys.stdout.writelines(
                difflib.unified_diff(
                    present.get(name, "").splitlines(keepends=True),
                    files.get(name, "").splitlines(keepends=True),
                    f"_sync/{name} (committed)",
                    f"_sync/{name} (made from _async/{name})",
                )
            )
        if stale:
            print(f"_sync/ is stale ({', '.join(stale)}): run python scripts/make_sync.py", file=sys.stderr)
        return 1 if stale else 0
    TARGET.mkdir(exist_ok=True)
    for name in present.keys() - files.keys():
        (TARGET / name).unlink()
    for name, text in files.items():
        (TARGET / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
