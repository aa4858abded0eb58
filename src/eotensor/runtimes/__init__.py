"""Model runtimes: one protocol (:mod:`.base`), one file per framework, and the registry that picks one
(:mod:`.registry`, :func:`load_model`)."""

from __future__ import annotations

from eotensor.runtimes.base import Model, TensorSpec
from eotensor.runtimes.function import FunctionModel
from eotensor.runtimes.registry import LoadOptions, Runtime, load_model, runtimes

__all__ = ["FunctionModel", "LoadOptions", "Model", "Runtime", "TensorSpec", "load_model", "runtimes"]
