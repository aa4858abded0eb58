"""Python files as models: ``-model.dir calc.py`` serves a NumPy function like a SavedModel.

The file defines ``model(x1, x2, ...)`` (or the function named after ``::``, as in ``calc.py::ndvi``).
Its parameters are the model's inputs, one per source or user placeholder; sources left without
``sourceN.placeholder`` bind to them in declaration order (``def model(red, nir)``: source1 is ``red``,
decision 33). It returns a dict of arrays, or one array, which is the first output. ``OUTPUTS = ["name",
...]`` in the file names the outputs (default ``["y"]``); ``INPUT_DTYPES = {"x": "uint16"}`` declares input
dtypes (default float32). Pixel-wise "big calculator" math served this way skips TensorFlow entirely;
NumExpr inside the function makes it faster still.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import ModelError
from eotensor.runtimes.base import TensorSpec
from eotensor.runtimes.function import NUMERIC_KINDS, FunctionModel


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
    except SystemExit as error:
        sys.modules.pop(module_spec.name, None)
        raise ModelError(f'{param}: importing "{path}" called sys.exit({error.code!r})') from None
    except Exception as error:  # noqa: BLE001 - user code: report any failure in one line
        sys.modules.pop(module_spec.name, None)
        raise ModelError(f'{param}: cannot import "{path}": {type(error).__name__}: {error}') from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ModelError(
            f'{param}: "{path}" defines no function "{name}"; define def {name}(x): ... or use file.py::name'
        )
    where = f'{param} "{spec}"'
    inputs = _inputs(fn, getattr(module, "INPUT_DTYPES", {}), where, name)
    outputs = getattr(module, "OUTPUTS", ["y"])
    if isinstance(outputs, str) or not isinstance(outputs, Sequence) or not outputs \
            or not all(isinstance(o, str) and o for o in outputs):
        raise ModelError(f'{where}: OUTPUTS = {outputs!r}; expected a list of output names, e.g. OUTPUTS = ["y"]')
    return FunctionModel(fn, inputs, list(outputs), name=f"{path}::{name}")


def _inputs(fn: Callable[..., Any], dtypes: Any, where: str, name: str) -> list[TensorSpec]:
    """The function's named parameters, in order, as float32 inputs or with their ``INPUT_DTYPES`` dtype."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as error:
        raise ModelError(f"{where}: cannot read the parameters of {name} ({error})") from None
    if any(p.kind is p.POSITIONAL_ONLY for p in parameters):
        raise ModelError(f"{where}: {name} has positional-only parameters; inputs are passed by name, "
                         f"remove the / from def {name}(...)")
    params = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if not params:
        raise ModelError(
            f"{where}: def {name}{inspect.signature(fn)} declares no named inputs; declare one parameter per "
            f"source and user placeholder, e.g. def {name}(x1, x2), which source1 and source2 feed in that order"
        )
    if not isinstance(dtypes, Mapping):
        raise ModelError(f'{where}: INPUT_DTYPES = {dtypes!r}; expected a dict such as {{"{params[0]}": "uint16"}}')
    unknown = [key for key in dtypes if key not in params]
    if unknown:
        raise ModelError(f'{where}: INPUT_DTYPES names "{unknown[0]}", which is not a parameter of '
                         f"{name}({', '.join(params)})")
    specs = []
    for p in params:
        value = dtypes.get(p, "float32")
        try:
            dtype = None if value is None else np.dtype(value)  # np.dtype(None) would be float64
        except (TypeError, ValueError):
            dtype = None
        if dtype is None or dtype.kind not in NUMERIC_KINDS:
            raise ModelError(f'{where}: INPUT_DTYPES["{p}"] = {value!r} is not a numeric NumPy dtype; expected '
                             'e.g. "float32", "uint16", "int32" or "bool"')
        specs.append(TensorSpec(p, dtype, None))
    return specs
