"""Model runtimes: one protocol (:mod:`.base`), one file per framework, and :func:`load_model`."""

from __future__ import annotations

import os
from collections.abc import Sequence

from eotensor.errors import ModelError
from eotensor.runtimes.base import Model, TensorSpec
from eotensor.runtimes.function import FunctionModel

__all__ = ["FunctionModel", "Model", "TensorSpec", "load_model"]


def load_model(
    model: str | os.PathLike | Model, tags: Sequence[str] = (), param: str = "model.dir", jit: bool = False
) -> Model:
    """Load ``model`` with the runtime its path calls for; a loaded :class:`Model` passes through.

    A directory is a TensorFlow SavedModel (``jit``: compile it with XLA); ``file.py`` or
    ``file.py::function`` is a Python function.
    """
    if isinstance(model, Model):
        return model
    path = os.fspath(model)
    if path.partition("::")[0].endswith(".py"):
        from eotensor.runtimes.pyfile import load_python_file

        return load_python_file(path, param)
    if os.path.isdir(path):
        from eotensor.runtimes.tensorflow import load_saved_model

        return load_saved_model(path, tags, param=param, jit=jit)
    if not os.path.exists(path):
        raise ModelError(f'{param}: "{path}" does not exist; expected a SavedModel directory or a .py file')
    raise ModelError(f'{param}: "{path}" is neither a SavedModel directory nor a .py file')
