"""The PyTorch runtime: ``torch.export`` programs (``.pt2``) and TorchScript modules (``.pt``).

``pip install 'eotensor[torch]'`` (the CPU wheel ``torch==2.13.0``, decision 16). Inputs are the program's
positional parameters, in declared order (decision 33); outputs are the keys of a returned dict, else
``output_0``, ``output_1``... for a tuple or a single tensor. A ``.pt2`` declares dtypes, static dimensions and
the **range constraints** of its dynamic dimensions (``Dim("h", min=16, max=1024)``): calls outside them are
refused before they reach the program, with a message saying what sizes fit. TorchScript declares no shapes:
``-model.layout`` must then be given for NCHW models.

Calls run under ``torch.inference_mode``; ``threads`` sets ``torch.set_num_threads`` (process-wide) and
``device`` places the model (``cpu``, ``cuda``, ``cuda:N``, ``auto``; CUDA asked for but absent is an error).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import MissingDependencyError, ModelError
from eotensor.io.atomic import error_text
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

__all__ = ["TorchModel", "load_torch"]

Limits = dict[str, dict[int, tuple[int, int | None]]]
"""Per input key, per dimension: the (min, max) a program accepts (max None: unbounded)."""


def _import() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("the PyTorch runtime needs torch: pip install 'eotensor[torch]'") from None
    return torch


def _device(torch: Any, device: str) -> Any:
    base, _, index = device.partition(":")
    if base == "cpu" or (base == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ModelError(f'model.device: "{device}" asked for, but PyTorch sees no CUDA device; use -model.device '
                         "cpu or auto")
    return torch.device(f"cuda:{index or 0}")


def _output_names(spec: Any, count: int, param: str, path: str) -> list[str]:
    """Output keys from a program's output tree: a flat dict's keys, else ``output_<i>`` for a tensor or a flat
    tuple/list; nested outputs are refused (one line)."""
    children = list(spec.children()) if spec is not None else []
    if any(not child.is_leaf() for child in children):
        raise ModelError(f'{param}: "{path}" returns nested outputs ({spec.type.__name__} of containers); return '
                         "one tensor, a flat tuple or a flat dict of tensors")
    if spec is not None and spec.type is dict:
        return [str(key) for key in spec.context]
    return [f"output_{i}" for i in range(count)]


def _finite(bound: Any) -> int | None:
    """A range bound as an int, None when unbounded (sympy's ``oo``/``int_oo``)."""
    try:
        value = int(bound)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return value if abs(value) < 2**62 else None


def _dims(torch: Any, shape: Any, constraints: Mapping[Any, Any]) -> tuple[tuple[int | None, ...],
                                                                           dict[int, tuple[int, int | None]],
                                                                           dict[int, int]]:
    """Static shape (None for dynamic dims), the range constraints of the dynamic ones, and the step of those
    exported as multiples (``2 * Dim("h")``: a U-Net's pooling needs even sizes)."""
    dims, limits, steps = [], {}, {}
    for k, dim in enumerate(shape):
        if isinstance(dim, torch.SymInt):
            dims.append(None)
            expr = dim.node.expr
            bounds = constraints.get(expr)
            if bounds is not None:
                lower, upper = int(bounds.lower), _finite(bounds.upper)
                if lower > 0 or upper is not None:
                    limits[k] = (lower, upper)
            coefficient, rest = expr.as_coeff_Mul()
            if rest.is_Symbol and int(coefficient) == coefficient and int(coefficient) > 1:
                steps[k] = int(coefficient)
        else:
            dims.append(int(dim))
    return tuple(dims), limits, steps


class TorchModel(StaticSignature):
    """A PyTorch program (exported or scripted) behind the :class:`~eotensor.runtimes.base.Model` protocol."""

    layout = None
    """NHWC or NCHW is inferred from the declared channels (``.pt2``), or given with ``-model.layout``."""

    def __init__(self, call: Callable[..., Any], inputs: list[TensorSpec], outputs: list[TensorSpec],
                 output_order: list[str], limits: Limits, device: Any, path: str,
                 steps: dict[str, dict[int, int]] | None = None) -> None:
        super().__init__(inputs, outputs, ordered=True)
        self._call = call
        self._output_order = output_order
        self.limits = limits
        """Range constraints of dynamic dimensions, per input key and dimension."""
        self.steps = steps or {}
        """Dimensions that must be multiples of a step, per input key and dimension."""
        self.device = device
        self.path = path
        self.token = f"torch:{os.path.abspath(path)}:{file_stamps(path)}:{device}"

    def check_shape(self, key: str, shape: Sequence[int]) -> None:
        """Refuse a feed outside the program's range constraints, saying what fits."""
        for dim, step in self.steps.get(key, {}).items():
            if dim < len(shape) and shape[dim] % step:
                raise ModelError(
                    f'PyTorch model "{self.path}": input "{key}" accepts multiples of {step} in dimension {dim} (the '
                    f"program's constraints) but a call would have {shape[dim]} (shape {tuple(shape)}); choose "
                    "receptive fields, expression fields and tiles whose model inputs are multiples of it")
        for dim, (lower, upper) in self.limits.get(key, {}).items():
            if dim < len(shape) and not (lower <= shape[dim] and (upper is None or shape[dim] <= upper)):
                allowed = f"{lower}..{upper}" if upper is not None else f">= {lower}"
                raise ModelError(
                    f'PyTorch model "{self.path}": input "{key}" accepts sizes {allowed} in dimension {dim} (the '
                    f"program's range constraints) but a call would have {shape[dim]} (shape {tuple(shape)}); choose "
                    "-optim.tilesizex/y and receptive fields whose model inputs fall in that range, or export the "
                    "model with a wider range"
                )

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """One call under ``torch.inference_mode``; any PyTorch failure is one :class:`ModelError` line."""
        torch = _import()
        missing = [key for key in self.inputs if key not in feeds]
        if missing:
            raise ModelError(f'PyTorch model "{self.path}": input(s) {", ".join(missing)} not fed; bind them with '
                             "sourceN.placeholder or -model.userplaceholders")
        for key in self.inputs:
            self.check_shape(key, feeds[key].shape)
        try:
            with torch.inference_mode():
                args = [torch.from_numpy(np.ascontiguousarray(feeds[key])).to(self.device) for key in self.inputs]
                result = self._call(*args)
            if isinstance(result, Mapping):
                named = {str(k): v for k, v in result.items()}
            else:
                named = dict(zip(self._output_order, result if isinstance(result, (tuple, list)) else [result]))
            return [named[key].detach().cpu().numpy() for key in fetches]
        except Exception as error:  # noqa: BLE001 - PyTorch raises many kinds
            raise ModelError(f'PyTorch model "{self.path}" failed: {error_text(error)}') from None


def _load_exported(torch: Any, path: str, device: Any, param: str) -> TorchModel:
    program = torch.export.load(path)
    signature = program.graph_signature
    nodes = {node.name: node for node in program.graph.nodes}
    inputs, limits, steps = [], {}, {}
    for name in signature.user_inputs:
        value = nodes[name].meta["val"]
        shape, bounds, multiples = _dims(torch, value.shape, program.range_constraints)
        if multiples:
            steps[name] = multiples
        inputs.append(TensorSpec(name, np.dtype(str(value.dtype).removeprefix("torch."))
                                 if value.dtype != torch.bool else np.dtype(bool), shape))
        if bounds:
            limits[name] = bounds
    output_node = next(node for node in program.graph.nodes if node.op == "output")
    values = [arg.meta["val"] for arg in output_node.args[0]]
    names = _output_names(program.call_spec.out_spec, len(values), param, path)
    outputs = [TensorSpec(key, np.dtype(str(v.dtype).removeprefix("torch.")), _dims(torch, v.shape, {})[0])
               for key, v in zip(names, values)]
    module = program.module().to(device)
    return TorchModel(module, inputs, outputs, names, limits, device, path, steps)


def _load_scripted(torch: Any, path: str, device: Any, param: str) -> TorchModel:
    module = torch.jit.load(path, map_location=device).eval()
    schema = module.forward.schema
    returns = str(schema.returns[0].type) if schema.returns else "Tensor"
    flat_tuple = returns.startswith("Tuple[") and returns[6:-1].replace(" ", "").split(",") == \
        ["Tensor"] * returns.count("Tensor")
    if returns != "Tensor" and not flat_tuple:
        raise ModelError(f'{param}: "{path}" is a TorchScript module returning {returns}; serve modules returning a '
                         "tensor or a flat tuple of tensors, or export it with torch.export (.pt2)")
    count = returns.count("Tensor")
    names = [f"output_{i}" for i in range(count)]
    inputs = [TensorSpec(arg.name, np.dtype(np.float32), None) for arg in schema.arguments[1:]]
    outputs = [TensorSpec(name, np.dtype(np.float32), None) for name in names]
    return TorchModel(module, inputs, outputs, names, {}, device, path)


def load_torch(path: str, threads: int | None = None, device: str = "cpu", param: str = "model.dir") -> TorchModel:
    """Load a ``.pt2`` exported program or a ``.pt`` TorchScript module onto ``device``."""
    torch = _import()
    if not os.path.isfile(path):
        raise ModelError(f'{param}: "{path}" does not exist or is not a file; expected a .pt2 or .pt file')
    if threads:
        torch.set_num_threads(int(threads))
    place = _device(torch, device)
    exported = path.lower().endswith(".pt2")
    try:
        return (_load_exported if exported else _load_scripted)(torch, path, place, param)
    except ModelError:
        raise
    except Exception as error:  # noqa: BLE001
        kind = "a torch.export program" if exported else "a TorchScript module"
        raise ModelError(f'{param}: cannot load "{path}" as {kind} ({error_text(error)})') from None
