"""Model runtimes: one protocol (:mod:`.base`), one file per framework, and :func:`load_model`."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

from eotensor.errors import ModelError
from eotensor.runtimes.base import Model, TensorSpec
from eotensor.runtimes.function import FunctionModel

__all__ = ["FunctionModel", "Model", "TensorSpec", "load_model"]


def load_model(
    model: str | os.PathLike | Model,
    *,
    tags: Sequence[str] = (),
    jit: bool = False,
    threads: int | None = None,
    param: str = "model.dir",
) -> Model:
    """Load ``model`` with the runtime its path calls for; a loaded :class:`Model` passes through.

    A directory is a TensorFlow SavedModel: ``tags`` picks its MetaGraph (default ``serve``), ``jit``
    compiles it with XLA and ``threads`` sizes TensorFlow's intra-op pool (process-wide; see
    :func:`~eotensor.runtimes.tensorflow.set_threads`). ``file.py`` or ``file.py::function`` is a Python
    function. Options the chosen runtime cannot use, and any option given with an already-loaded model,
    are ignored with a :class:`UserWarning` naming them. ``param`` names the model parameter in errors.
    """
    options = {"tags": tags, "jit": jit, "threads": threads}
    if isinstance(model, Model):
        _warn_ignored(f"{param} is an already-loaded model", options)
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"{param}: {type(model).__name__} {model!r:.60} is not a model; expected a SavedModel directory, a "
            "file.py[::function] or an object with inputs, outputs and run(feeds, fetches)"
        )
    path = os.fspath(model)
    if path.partition("::")[0].endswith(".py"):
        from eotensor.runtimes.pyfile import load_python_file

        _warn_ignored(f'{param} "{path}" is a Python function', options)
        return load_python_file(path, param)
    if os.path.isdir(path):
        from eotensor.runtimes.tensorflow import load_saved_model

        return load_saved_model(path, tags, param=param, jit=jit, threads=threads)
    if not os.path.exists(path):
        raise ModelError(f'{param}: "{path}" does not exist; expected a SavedModel directory or a .py file')
    raise ModelError(f'{param}: "{path}" is neither a SavedModel directory nor a .py file')


def _warn_ignored(what: str, options: dict[str, object]) -> None:
    """Warn, in one line, about the options given (non-empty) that the runtime in use cannot apply."""
    given = [name for name, value in options.items() if value]
    if given:
        warnings.warn(f"{what}: {', '.join(given)} ignored (options of TensorFlow SavedModels, applied at loading)",
                      stacklevel=3)
