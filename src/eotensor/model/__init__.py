"""Model building blocks for Keras 3, as OTBTF's Python package has them: ``ModelBase`` (:mod:`.base`), layers
(:mod:`.layers`) and ops (:mod:`.ops`).

Importing this package does not import Keras; ``eotensor.model.layers`` does, and ``ModelBase`` does when a
model is built. ``from eotensor.model import ModelBase`` loads :mod:`.base` on first use.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("ModelBase", "cropped_tensor_name"):
        from eotensor.model import base

        return getattr(base, name)
    raise AttributeError(f"module 'eotensor.model' has no attribute {name!r}")
