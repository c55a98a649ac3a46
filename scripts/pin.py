"""Refresh the pinned versions CI installs: constraints/dev.txt and constraints/litellm-proxy.txt.

    python3 scripts/pin.py

For the oldest and the newest supported Python, it installs the project with its dev group (and,
apart, the litellm-proxy group) into a throwaway virtualenv, unconstrained, and records what pip
chose. A package pinned alike on both is one line; where they differ, each line carries a
``python_version`` marker. The files hold ``name==version`` lines only: no index address, no URL.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from interpreters import find_python

ROOT = Path(__file__).resolve().parent.parent
OLDEST, NEWEST = "3.11", "3.13"
GROUPS = {"dev.txt": ["--editable", str(ROOT), "--group", f"{ROOT / 'pyproject.toml'}:dev"]}
GROUPS["litellm-proxy.txt"] = ["--group", f"{ROOT / 'pyproject.toml'}:litellm-proxy"]
GROUPS["ray.txt"] = ["--editable", str(ROOT), "--group", f"{ROOT / 'pyproject.toml'}:ray"]
HEADER = "# Pinned versions for CI; refresh with `python3 scripts/pin.py` (see CONTRIBUTING.md).\n"


def frozen(python: str, install: list[str]) -> dict[str, str]:
    """``{name: "name==version"}`` of what pip installs for ``install`` under ``python``."""
    with tempfile.TemporaryDirectory() as venv:
        subprocess.run([python, "-m", "venv", venv], check=True)
        pip = [f"{venv}/bin/python", "-m", "pip", "--disable-pip-version-check", "--quiet"]
        subprocess.run([*pip, "install", "pip>=25.1"], check=True)
        subprocess.run([*pip, "install", *install], check=True)
        lines = subprocess.run(
            [*pip, "freeze", "--all", "--exclude-editable"], check=True, capture_output=True, text=True
        ).stdout.splitlines()
    return {line.split("==")[0].lower(): line for line in lines if "==" in line}


def merged(oldest: dict[str, str], newest: dict[str, str]) -> list[str]:
    lines = []
    for name in sorted(oldest.keys() | newest.keys()):
        old, new = oldest.get(name), newest.get(name)
        if old == new:
            lines.append(f"{old}\n")
            continue
        if old:
            lines.append(f'{old}; python_version < "{NEWEST}"\n')
        if new:
            lines.append(f'{new}; python_version >= "{NEWEST}"\n')
    return lines


def main() -> None:
    pythons = {version: find_python(version) for version in (OLDEST, NEWEST)}
    for file, install in GROUPS.items():
        oldest, newest = (frozen(pythons[version], install) for version in (OLDEST, NEWEST))
        path = ROOT / "constraints" / file
        path.parent.mkdir(exist_ok=True)
        path.write_text(HEADER + "".join(merged(oldest, newest)))
        print(f"{path.relative_to(ROOT)}: {len(oldest | newest)} packages", file=sys.stderr)


if __name__ == "__main__":
    main()
