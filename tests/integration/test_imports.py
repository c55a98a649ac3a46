"""The package's public face: every name it lists resolves, and the light parts stay light.

``from image_tool import ImageClient`` must not load LangChain (only the tool needs it), and
``image-tool --help`` loads neither LangChain nor the emulator. Each check runs in a fresh
interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

import image_tool
import image_tool.errors
import image_tool.testing


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)  # noqa: S603
    return set(json.loads(output.stdout.splitlines()[-1]))


def langchain(modules: set[str]) -> list[str]:
    return sorted(
        name for name in modules if name.split(".")[0] in ("langchain_core", "langchain", "langgraph")
    )


def test_the_client_loads_no_langchain() -> None:
    modules = loaded_after(
        "import image_tool\n"
        "from image_tool import ImageClient, ImageGenerationResult, ImageToolError\n"
        "import image_tool.client, image_tool.errors, image_tool.models, image_tool.settings\n"
        "import image_tool._policy.budget, image_tool._tool.advice  # the tool's parts below LangChain"
    )
    assert "image_tool.client" in modules
    assert langchain(modules) == []
    assert "image_tool.tool" not in modules
    assert "image_tool._io.network" not in modules  # with httpcore2, when the first client is made


def test_the_emulator_loads_no_langchain() -> None:
    modules = loaded_after("from image_tool.testing import FakeRelay, Reply")
    assert "image_tool.testing._relay" in modules
    assert langchain(modules) == []


def test_help_loads_neither_langchain_nor_the_emulator_nor_the_client() -> None:
    modules = loaded_after(
        "import contextlib, io\n"
        "from image_tool.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert langchain(modules) == []
    assert "image_tool.testing._relay" not in modules
    assert "image_tool.client" not in modules


def test_the_tool_loads_langchain() -> None:
    assert "langchain_core.tools" in loaded_after("from image_tool import ImageGenerationTool")


@pytest.mark.parametrize("package", [image_tool, image_tool.testing], ids=lambda package: package.__name__)
def test_every_listed_name_resolves_and_every_lazy_name_is_listed(package: ModuleType) -> None:
    names: list[str] = package.__all__
    for name in names:
        assert getattr(package, name) is not None, name
        assert name in dir(package)
    lazy = {name for module_names in package._HOMES.values() for name in module_names}
    assert lazy == set(names) - {"__version__"}


@pytest.mark.parametrize("package", [image_tool, image_tool.testing], ids=lambda package: package.__name__)
def test_the_imports_for_type_checkers_match_the_lazy_table(package: ModuleType) -> None:
    """Type checkers read the ``TYPE_CHECKING`` imports; users get the lazy table: the two name
    the same module for each name."""
    tree = ast.parse(Path(package.__file__ or "").read_text(encoding="utf-8"))
    guarded = next(
        node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
    )
    imported = {
        alias.name: node.module
        for node in ast.walk(guarded)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    table = {name: module for module, names in package._HOMES.items() for name in names}
    assert imported == table


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="ImageClinet"):
        image_tool.ImageClinet  # noqa: B018
    assert not hasattr(image_tool.testing, "NoSuchThing")


def test_the_face_offers_every_exception_class_of_the_errors_module() -> None:
    listed = [getattr(image_tool.errors, name) for name in image_tool._HOMES["errors"]]
    assert all(
        isinstance(kind, type) and issubclass(kind, image_tool.errors.ImageToolError) for kind in listed
    )
    defined = {
        name
        for name, value in vars(image_tool.errors).items()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == "image_tool.errors"
    }
    assert set(image_tool._HOMES["errors"]) == defined


WITHOUT_HTTPX = """
import sys

class NoHttpx:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("httpx", "httpcore"):
            raise ImportError(f"{name} is made unimportable by the test")

sys.meta_path.insert(0, NoHttpx())
"""


def test_the_client_runs_with_httpx_unimportable(tmp_path: Path) -> None:
    """Generations, sync and async, saved to disk, with ``import httpx`` failing. (LangChain is
    not loaded: some langsmith releases that langchain-core accepts still import httpx.)"""
    code = WITHOUT_HTTPX + textwrap.dedent(
        f"""
        import asyncio
        from image_tool import ImageClient
        from image_tool.testing import FakeRelay

        with FakeRelay(api_key="sk-test") as relay:
            settings = dict(api_key="sk-test", base_url=relay.base_url, save_dir={str(tmp_path)!r},
                            allow_private_downloads=True)
            with ImageClient(**settings) as client:
                saved = [image.path for image in client.generate("A cat", n=2).images]

            async def agenerate():
                async with ImageClient(**settings) as client:
                    return [image.path for image in (await client.agenerate("A dog")).images]

            saved += asyncio.run(agenerate())
        assert all(path is not None and path.exists() for path in saved), saved
        assert [name for name in sys.modules if name.split(".")[0] in ("httpx", "httpcore")] == []
        print(len(saved))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)  # noqa: S603
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["3"]
