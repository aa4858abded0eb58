"""The model runtime protocol: what the engine needs from any model, whatever framework runs it.

A runtime loads a model file or directory and returns a :class:`Model`: named input and output tensor
specifications (ordered by key) and one call on a dict of NumPy arrays. The engine never imports a
framework; TensorFlow, ONNX, PyTorch or plain Python each live in one file of this package that
implements this protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


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
    """A loaded model: signature inputs and outputs, and a call."""

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


class StaticSignature:
    """Base of runtimes whose inputs and outputs are known at load time: keeps them sorted by key."""

    def __init__(self, inputs: Iterable[TensorSpec], outputs: Iterable[TensorSpec]) -> None:
        self._inputs = {s.key: s for s in sorted(inputs, key=lambda s: s.key)}
        self._outputs = {s.key: s for s in sorted(outputs, key=lambda s: s.key)}

    @property
    def inputs(self) -> Mapping[str, TensorSpec]:
        """Inputs by key (byte order)."""
        return self._inputs

    @property
    def outputs(self) -> Mapping[str, TensorSpec]:
        """Outputs by key (byte order)."""
        return self._outputs
