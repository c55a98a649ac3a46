"""image-tool touches its dependencies through their public interfaces only.

Three rules, each with a test and a test that the check catches what it forbids:

1. no module imports a dependency's underscored module or name;
2. no code reads or writes an underscored attribute of an object image-tool did not define (its
   own ``self._x``, ``cls._x`` and the private names it defines are its own business);
3. no class overrides an underscored method a dependency's base class defines, except BaseTool's
   ``_run`` and ``_arun``, LangChain's documented extension points.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import image_tool

SOURCE = Path(image_tool.__file__).parent
EXTENSION_POINTS = {
    ("langchain_core.tools.base", "BaseTool"): {"_run", "_arun"},
    # What LangChain's guide to custom chat models has one implement (testing.ScriptedChatModel).
    ("langchain_core.language_models.chat_models", "BaseChatModel"): {"_generate", "_llm_type"},
}


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def sources() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(SOURCE.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def own_private_names(trees: list[ast.Module]) -> set[str]:
    """Every underscored name image-tool defines: functions, classes, assignments, attributes of
    ``self``/``cls``, fields."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                names.add(node.attr)
    return {name for name in names if private(name)}


def imported_modules(tree: ast.Module) -> set[str]:
    """Local names bound to a dependency (``import httpx2``, ``from x import y``)."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module != "__future__":
            bound.update(alias.asname or alias.name for alias in node.names)
    return bound


def private_imports(tree: ast.Module) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [alias.name for alias in node.names]
            modules = [node.module] if forbidden(node.module) else [f"{node.module}.{name}" for name in names]
        else:
            continue
        found.extend(f"line {node.lineno}: imports {module}" for module in modules if forbidden(module))
    return found


def forbidden(module: str) -> bool:
    """Whether ``module`` is a dependency's module with an underscored part."""
    parts = module.split(".")
    return parts[0] != "image_tool" and any(private(part) for part in parts)


def private_attributes(tree: ast.Module, own: set[str]) -> list[str]:
    dependencies = imported_modules(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not private(node.attr):
            continue
        holder = node.value.id if isinstance(node.value, ast.Name) else None
        if holder in ("self", "cls"):
            continue
        if node.attr in own and holder not in dependencies:
            continue
        found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_no_module_imports_a_dependency_s_private_module() -> None:
    found = [f"{path.name} {problem}" for path, tree in sources() for problem in private_imports(tree)]
    assert found == []


def test_no_code_touches_a_dependency_s_private_attribute() -> None:
    trees = list(sources())
    own = own_private_names([tree for _, tree in trees])
    found = [f"{path.name} {problem}" for path, tree in trees for problem in private_attributes(tree, own)]
    assert found == []


def test_the_source_checks_catch_what_they_forbid() -> None:
    tree = ast.parse(
        "import httpx2\n"
        "from httpcore2._async import pool\n"
        "from httpx2 import _config\n"
        "def f(client):\n"
        "    client._transport._pool = None\n"
        "    return httpx2._version, self._mine, client._mine\n"
    )
    assert private_imports(tree) == ["line 2: imports httpcore2._async", "line 3: imports httpx2._config"]
    assert private_attributes(tree, own={"_mine"}) == [
        "line 5: client._transport._pool",
        "line 5: client._transport",
        "line 6: httpx2._version",
    ]


def image_tool_classes() -> Iterator[type]:
    for module_info in pkgutil.walk_packages([str(SOURCE)], "image_tool."):
        try:
            module = importlib.import_module(module_info.name)
        except ImportError as error:  # an optional extra that is not installed
            if not error.name or error.name.split(".")[0] == "image_tool":
                raise
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__:
                yield value


def overridden_private_methods(cls: type) -> list[str]:
    found = []
    methods = [name for name, value in vars(cls).items() if private(name) and callable_member(value)]
    for name in methods:
        for base in cls.__mro__[1:]:
            if base.__module__.split(".")[0] == "image_tool" or name not in vars(base):
                continue
            if name not in EXTENSION_POINTS.get((base.__module__, base.__qualname__), set()):
                found.append(
                    f"{cls.__qualname__}.{name} overrides {base.__module__}.{base.__qualname__}.{name}"
                )
    return found


def callable_member(value: object) -> bool:
    return inspect.isfunction(value) or isinstance(value, staticmethod | classmethod | property)


def test_no_class_overrides_a_dependency_s_private_method() -> None:
    classes = list(image_tool_classes())
    assert len(classes) > 50  # the walk found the package
    assert [problem for cls in classes for problem in overridden_private_methods(cls)] == []


def test_the_override_check_catches_what_it_forbids() -> None:
    from langchain_core.tools import BaseTool

    class Overriding(BaseTool):
        name: str = "overriding"
        description: str = "a tool that overrides a private method"

        def _run(self) -> str:
            return ""

        def _to_args_and_kwargs(
            self, tool_input: str | dict[str, Any], tool_call_id: str | None
        ) -> tuple[tuple[str, ...], dict[str, Any]]:
            return (), {}

    assert overridden_private_methods(Overriding) == [
        "test_the_override_check_catches_what_it_forbids.<locals>.Overriding._to_args_and_kwargs "
        "overrides langchain_core.tools.base.BaseTool._to_args_and_kwargs"
    ]


@pytest.mark.parametrize("name", ["httpx", "httpcore"])
def test_image_tool_declares_httpx2_and_never_httpx(name: str) -> None:
    from importlib.metadata import requires

    declared = {re.split(r"[^A-Za-z0-9_.-]", requirement)[0] for requirement in requires("image-tool") or []}
    assert name not in declared
    assert f"{name}2" in declared
    found = [
        f"{path.name}: {module}"
        for path, tree in sources()
        for module in imported_modules(tree)
        if module == name
    ]
    assert found == []
