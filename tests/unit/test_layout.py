"""The house keeps its shape: no import cycle, rooms small enough to read in one sitting, the wire
pure, and the sync core what the async one makes."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "image_tool"
ROOT = SOURCE.parents[1]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = ["image_tool", *path.relative_to(SOURCE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    path = SOURCE.parent / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def runtime_imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports when it runs (at its top or in a function); what
    only type checkers read (``if TYPE_CHECKING:``) is left out."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if is_module(submodule) else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {name for name in found if name.startswith("image_tool") and name != module}


GRAPH = {module_name(path): runtime_imports(path) for path in SOURCE.rglob("*.py")}


def test_no_module_imports_itself_through_others() -> None:
    def cycle_from(start: str, at: str, path: list[str]) -> list[str] | None:
        for next_module in sorted(GRAPH.get(at, ())):
            if next_module == start:
                return [*path, start]
            if next_module not in path and (found := cycle_from(start, next_module, [*path, next_module])):
                return found
        return None

    cycles = [cycle for module in sorted(GRAPH) if (cycle := cycle_from(module, module, [module]))]
    assert cycles == []


def test_the_wire_does_no_io_and_knows_no_caller() -> None:
    """Building requests and reading answers imports nothing that sends, waits, saves or decides."""
    outside = ("image_tool._io", "image_tool._policy", "image_tool._async", "image_tool._sync")
    callers = ("image_tool.client", "image_tool.tool", "image_tool._call", "image_tool.cli")
    wire = {module: imports for module, imports in GRAPH.items() if module.startswith("image_tool._wire")}
    assert len(wire) > 5
    assert {
        module: sorted(i for i in imports if i.startswith(outside + callers))
        for module, imports in wire.items()
    } == {module: [] for module in wire}


def test_no_module_is_longer_than_one_sitting() -> None:
    lengths = {
        path.relative_to(SOURCE).as_posix(): len(path.read_text().splitlines())
        for path in SOURCE.rglob("*.py")
    }
    assert {name: lines for name, lines in lengths.items() if lines > MAX_LINES} == {}


def test_contributing_maps_every_room() -> None:
    """CONTRIBUTING.md's tree names every module of the face, every private package, and each
    module of the three that hold the logic."""
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    tree = text.split("## Layout", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    names = {line.split()[0] for line in tree.splitlines() if line.strip()}
    rooms = {path.name for path in SOURCE.glob("*.py") if path.name != "_version.py"}
    rooms |= {f"{path.name}/" for path in SOURCE.iterdir() if (path / "__init__.py").exists()}
    rooms |= {
        path.name for folder in ("_wire", "_policy", "_io") for path in (SOURCE / folder).glob("[!_]*.py")
    }
    assert sorted(rooms - names) == []


def test_the_sync_core_is_what_the_async_one_makes() -> None:
    pytest.importorskip("unasync", reason="scripts/make_sync.py needs the dev group's unasync")
    made = subprocess.run(  # noqa: S603
        [sys.executable, str(ROOT / "scripts" / "make_sync.py"), "--check"], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stdout[-3000:] + made.stderr[-1000:]
