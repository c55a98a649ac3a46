"""A package's public face from one table (PEP 562): each name imported on first use, so that
importing the package stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_face(
    package: str, homes: dict[str, tuple[str, ...]], *eager: str
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """The package's ``__all__``, ``__getattr__`` and ``__dir__`` from ``homes`` (module -> the
    names it defines), the one table of the package's public names; ``eager`` are names the
    package defines itself. Each name is imported from its module the first time it is asked for,
    then kept on the package."""
    module_of = {name: module for module, names in homes.items() for name in names}
    public = sorted([*eager, *module_of])

    def import_on_first_use(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found once; later look-ups do not come back
        return value

    def names() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return public, import_on_first_use, names
