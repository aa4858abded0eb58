"""The model runtime protocol: what the engine needs from any model, whatever framework runs it.

A runtime loads a model file or directory and returns a :class:`Model`: named input and output tensor
specifications and one call on a dict of NumPy arrays. The engine never imports a
framework; TensorFlow, ONNX, PyTorch or plain Python each live in one file of this package that
implements this protocol.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from eotensor.errors import ModelError


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor of a model's signature."""

    key: str
    """The signature key users type (e.g. ``x``, ``x:0`` for TF1 graphs, ``output_0`` for Keras 3)."""
    dtype: np.dtype
    """Element type the model declares; pixels are cast to it before the call."""
    shape: tuple[int | None, ...] | None
    """Static shape; ``None`` entries are unknown dimensions; ``None`` as a whole means unknown rank."""

    @property
    def rank(self) -> int | None:
        """Number of dimensions, or ``None`` when unknown."""
        return None if self.shape is None else len(self.shape)


@runtime_checkable
class Model(Protocol):
    """A loaded model: signature inputs and outputs, and a call.

    Optional attribute ``ordered_inputs`` (bool, default False): True when ``inputs`` lists the inputs
    in an order the model declares (a Python function's parameters, an ONNX graph's inputs, a PyTorch
    ``forward``); sources then bind to inputs in that order (decision 33). Without it the inputs are
    unordered (a TF SavedModel signature is a map) and sources bind alphabetically, as in OTBTF. It is
    not a protocol member, so objects that lack it still are models; read it with :func:`ordered_inputs`.

    Optional attribute ``limits`` (``{input key: {dimension: (min, max or None)}}``): the sizes an input
    accepts (a PyTorch program's range constraints), and ``steps`` (``{input key: {dimension: step}}``) the
    dimensions that must be multiples of a step; the engine never calls the model outside them.
    """

    @property
    def inputs(self) -> Mapping[str, TensorSpec]:
        """Signature inputs by key."""
        ...

    @property
    def outputs(self) -> Mapping[str, TensorSpec]:
        """Signature outputs by key."""
        ...

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the model on ``feeds`` (key -> array of the declared dtype); return ``fetches`` in order."""
        ...


def ordered_inputs(model: Model) -> bool:
    """Whether ``model.inputs`` is in the model's declared order (see :class:`Model`); False when undeclared."""
    return bool(getattr(model, "ordered_inputs", False))


class StaticSignature:
    """Base of runtimes whose inputs and outputs are known at load time.

    Outputs are sorted by key. Inputs are sorted by key too, unless ``ordered``: then they keep the
    order given, which is the model's declared order, and :attr:`ordered_inputs` is True.
    """

    def __init__(self, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec], ordered: bool = False) -> None:
        inputs = list(inputs)
        self.ordered_inputs = bool(ordered)
        """Whether :attr:`inputs` is in the model's declared order (sources bind in it)."""
        self._inputs = {s.key: s for s in (inputs if ordered else sorted(inputs, key=lambda s: s.key))}
        if len(self._inputs) != len(inputs):
            raise ModelError(f"model inputs must have distinct keys; got {[s.key for s in inputs]}")
        self._outputs = {s.key: s for s in sorted(outputs, key=lambda s: s.key)}

    @property
    def inputs(self) -> Mapping[str, TensorSpec]:
        """Inputs by key: in declared order when :attr:`ordered_inputs`, else in byte order."""
        return self._inputs

    @property
    def outputs(self) -> Mapping[str, TensorSpec]:
        """Outputs by key (byte order)."""
        return self._outputs


def file_stamps(path: str) -> str:
    """Size and modification time of ``path``, or of every file under it: part of a model's ``token``.

    A model's optional ``token`` attribute says what determines its results (plan fingerprints compare it);
    files rewritten in place (a retrained SavedModel, an edited ``.py``) change it.
    """
    if os.path.isdir(path):
        names = sorted(os.path.join(root, f) for root, _, files in os.walk(path) for f in files)
    else:
        names = [path]
    stamps = []
    for name in names:
        try:
            info = os.stat(name)
        except OSError:
            continue
        stamps.append(f"{os.path.relpath(name, path) if name != path else ''}:{info.st_size}:{info.st_mtime_ns}")
    return ";".join(stamps)
