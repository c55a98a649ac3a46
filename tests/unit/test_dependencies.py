"""What image-tool imports is what it declares, and the lowest versions CI tests are its bounds."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LOWEST_EXTRAS = ("agents", "progress", "ray", "otel")
"""The extras scripts/check_versions.sh installs at their lower bounds (see constraints/lowest.txt)."""
DISTRIBUTIONS = {"opentelemetry": "opentelemetry-api"}
"""The distribution of each module imported whose name is not its distribution's."""
TEST_PINS = {"opentelemetry-sdk": "opentelemetry-api"}
"""Also pinned there: the test group's packages that require one of the bounds at their own version."""


def requirements(*extras: str) -> list[Requirement]:
    """The runtime requirements, and those of ``extras``."""
    lines = PYPROJECT["dependencies"] + [
        line for extra in extras for line in PYPROJECT["optional-dependencies"][extra]
    ]
    return [Requirement(line) for line in lines]


def imported_distributions() -> dict[str, set[str]]:
    """Every distribution whose module ``src/`` imports (a module's name, canonicalised, is its
    distribution's here, but for ``DISTRIBUTIONS``), with the files that import it."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != "image_tool":
                    distribution = canonicalize_name(DISTRIBUTIONS.get(top, top))
                    found.setdefault(distribution, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_module_src_imports_is_declared() -> None:
    declared = {
        canonicalize_name(requirement.name)
        for requirement in requirements(*PYPROJECT["optional-dependencies"])
    }
    undeclared = {name: files for name, files in imported_distributions().items() if name not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_requirement_has_a_lower_bound_and_lowest_txt_pins_it() -> None:
    pinned = dict(
        line.split("==")
        for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for requirement in requirements(*LOWEST_EXTRAS):
        lower = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
        assert lower, f"{requirement} has no lower bound"
        pin = pinned.get(requirement.name)
        assert pin and Version(pin) == lower[0], f"constraints/lowest.txt does not pin {requirement}"
    for name, bound in TEST_PINS.items():
        assert pinned.get(name) == pinned[bound], f"constraints/lowest.txt pins {name} beside {bound}"
    assert len(pinned) == len(
        {requirement.name for requirement in requirements(*LOWEST_EXTRAS)} | TEST_PINS.keys()
    )


def test_the_supported_pythons_are_those_ci_runs() -> None:
    assert PYPROJECT["requires-python"] == ">=3.11"
    classifiers = [
        line for line in PYPROJECT["classifiers"] if line.startswith("Programming Language :: Python :: 3.")
    ]
    assert classifiers == [f"Programming Language :: Python :: 3.{minor}" for minor in (11, 12, 13)]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "3.11" in ci and "3.13" in ci and "3.10" not in ci
