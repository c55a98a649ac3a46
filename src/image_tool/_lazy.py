"""Names of a package imported on first use (PEP 562), so that importing it stays cheap."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_names(package: str, homes: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """The package's ``__getattr__``: each name in ``homes`` (module -> names) is imported from its
    module the first time it is asked for, then kept on the package."""
    module_of = {name: module for module, names in homes.items() for name in names}

    def import_on_first_use(name: str) -> Any:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # found once; later look-ups do not come back
        return value

    return import_on_first_use
