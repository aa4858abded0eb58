"""The ONNX runtime: ``.onnx`` graphs through ONNX Runtime (``pip install 'eotensor[onnx]'``).

Inputs and outputs are the graph's, in the graph's declared order (sources bind to them in that order,
decision 33), with the element types and static shapes it declares (symbolic dimensions are unknown).
``threads`` sets ONNX Runtime's intra-op pool; ``device`` picks its execution provider: ``cpu``, ``cuda``
(``cuda:N``) when ONNX Runtime has CUDA (an error otherwise, never a silent fallback), or ``auto``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import MissingDependencyError, ModelError
from eotensor.io.atomic import error_text
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

__all__ = ["OnnxModel", "load_onnx"]

_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int8)": np.int8, "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8, "tensor(uint16)": np.uint16, "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_,
}


def _import() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError("the ONNX runtime needs onnxruntime: pip install 'eotensor[onnx]'") from None
    return onnxruntime


def _spec(arg: Any, param: str, path: str) -> TensorSpec:
    if arg.type not in _TYPES:
        raise ModelError(f'{param}: "{path}": tensor "{arg.name}" has type {arg.type}; expected a numeric tensor')
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorSpec(arg.name, np.dtype(_TYPES[arg.type]), shape)


def _providers(ort: Any, device: str, param: str) -> list[Any]:
    """The execution providers for ``device``; CUDA asked for but absent is an error naming what exists."""
    available = ort.get_available_providers()
    base, _, index = device.partition(":")
    cuda = "CUDAExecutionProvider" in available
    if base == "cpu" or (base == "auto" and not cuda):
        return ["CPUExecutionProvider"]
    if not cuda:
        raise ModelError(f'model.device: "{device}" asked for, but ONNX Runtime has no CUDA provider (it has '
                         f"{', '.join(available)}); install onnxruntime-gpu, or use -model.device cpu or auto")
    return [("CUDAExecutionProvider", {"device_id": int(index or 0)}), "CPUExecutionProvider"]


class OnnxModel(StaticSignature):
    """An ONNX graph in an ONNX Runtime session."""

    layout = None
    """NHWC or NCHW is inferred from the declared channels (:func:`eotensor.runtimes.layout.infer_layout`)."""

    def __init__(self, session: Any, path: str, param: str) -> None:
        super().__init__((_spec(a, param, path) for a in session.get_inputs()),
                         (_spec(a, param, path) for a in session.get_outputs()), ordered=True)
        self.session = session
        self.path = path
        self.token = f"onnx:{os.path.abspath(path)}:{file_stamps(path)}:{session.get_providers()}"
        """What determines the results: the file (and its size and time stamp) and the providers."""

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """One session call; any ONNX Runtime failure is one :class:`ModelError` line."""
        try:
            return self.session.run(list(fetches), dict(feeds))
        except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidArgument/RuntimeException
            # ONNX Runtime puts the telling part (index: 2 Got: 3 Expected: 5) on the lines after the first
            raise ModelError(f'ONNX model "{self.path}" failed: {" ".join(str(error).split())}') from None


def load_onnx(path: str, threads: int | None = None, device: str = "cpu", param: str = "model.dir") -> OnnxModel:
    """Open ``path`` in an ONNX Runtime session (``threads`` intra-op threads, ``device``'s provider)."""
    ort = _import()
    if not os.path.isfile(path):
        raise ModelError(f'{param}: "{path}" does not exist or is not a file; expected an .onnx file')
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings would break one-line messages
    if threads:
        options.intra_op_num_threads = int(threads)
    providers = _providers(ort, device, param)
    try:
        session = ort.InferenceSession(path, options, providers=providers)
    except Exception as error:  # noqa: BLE001
        raise ModelError(f'{param}: cannot load "{path}" as an ONNX graph ({error_text(error)})') from None
    return OnnxModel(session, path, param)
