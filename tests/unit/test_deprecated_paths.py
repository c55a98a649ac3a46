"""Module paths that moved keep working: each old path warns, names the new way to import, and
offers the same objects."""

import importlib
import sys

import pytest

import image_tool

from ..helpers import DEPRECATED_MODULES


@pytest.mark.parametrize("path", sorted(DEPRECATED_MODULES))
def test_an_old_module_path_warns_and_offers_the_same_names(path: str) -> None:
    sys.modules.pop(path, None)
    with pytest.warns(DeprecationWarning, match=rf"{path} is deprecated: use `from image_tool import"):
        old = importlib.import_module(path)
    new = importlib.import_module(DEPRECATED_MODULES[path])
    assert old.__all__
    assert all(getattr(old, name) is getattr(new, name) for name in old.__all__)
    assert all(
        getattr(image_tool, name) is getattr(new, name) for name in old.__all__ if name in image_tool.__all__
    )
