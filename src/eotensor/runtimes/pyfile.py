"""Python files as models: ``-model.dir calc.py`` serves a NumPy function like a SavedModel.

The file defines ``model(**inputs)`` (or the function named after ``::``, as in ``calc.py::ndvi``).
Its parameters are the model's inputs, in the order of sources when placeholders are left empty
(alphabetical, as for SavedModels); it returns a dict of arrays, or one array for a single output.
``OUTPUTS = ["name", ...]`` in the file names the outputs (default ``["y"]``); ``INPUT_DTYPES = {"x":
"uint16"}`` declares input dtypes (default float32). Pixel-wise "big calculator" math served this way
skips TensorFlow entirely; NumExpr inside the function makes it faster still.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from eotensor.errors import ModelError
from eotensor.runtimes.base import TensorSpec
from eotensor.runtimes.function import FunctionModel


def load_python_file(spec: str, param: str = "model.dir") -> FunctionModel:
    """Import ``file.py[::function]`` and wrap the function as a :class:`FunctionModel`."""
    path, _, name = spec.partition("::")
    name = name or "model"
    if not os.path.isfile(path):
        raise ModelError(f'{param}: "{path}" does not exist; expected a SavedModel directory or a .py file')
    module_spec = importlib.util.spec_from_file_location(f"eotensor_model_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module  # dataclasses and pickling look modules up there
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - user code: report any failure in one line
        sys.modules.pop(module_spec.name, None)
        raise ModelError(f'{param}: cannot import "{path}": {type(error).__name__}: {error}') from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ModelError(
            f'{param}: "{path}" defines no function "{name}"; define def {name}(x): ... or use file.py::name'
        )
    dtypes: Mapping[str, Any] = getattr(module, "INPUT_DTYPES", {})
    params = [p.name for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    inputs = [TensorSpec(p, np.dtype(dtypes.get(p, "float32")), None) for p in params]
    outputs = list(getattr(module, "OUTPUTS", ["y"]))

    def call(**feeds: np.ndarray) -> Mapping[str, np.ndarray]:
        result = fn(**feeds)
        return result if isinstance(result, Mapping) else {outputs[0]: result}

    return FunctionModel(call, inputs, outputs, name=f"{path}::{name}")
