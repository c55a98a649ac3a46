"""Deprecated path: ``AdaptiveLimit`` is imported from ``image_tool``."""

import warnings

from ._policy.limits import AdaptiveLimit, Slot

__all__ = ["AdaptiveLimit", "Slot"]

warnings.warn(
    "image_tool.limits is deprecated: use `from image_tool import AdaptiveLimit`",
    DeprecationWarning,
    stacklevel=2,
)
