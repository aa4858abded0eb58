"""Plain Python functions served as models: ``fn(**inputs) -> {name: array}`` over NumPy arrays.

No framework involved: this is the runtime of pixel-wise "big calculator" math and of the tests'
reference models. Inputs and outputs are declared with :class:`TensorSpec`; the function receives
NumPy arrays of the declared dtypes (images as ``[n, rows, cols, bands]``) and returns a dict of arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from eotensor.errors import ModelError
from eotensor.runtimes.base import StaticSignature, TensorSpec


class FunctionModel(StaticSignature):
    """A Python callable exposed through the :class:`~eotensor.runtimes.base.Model` protocol."""

    def __init__(
        self,
        fn: Callable[..., Mapping[str, np.ndarray]],
        inputs: Sequence[TensorSpec] | Sequence[str],
        outputs: Sequence[TensorSpec] | Sequence[str],
        name: str | None = None,
    ) -> None:
        def spec(item: TensorSpec | str) -> TensorSpec:
            return item if isinstance(item, TensorSpec) else TensorSpec(item, np.dtype(np.float32), None)

        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")
        super().__init__(map(spec, inputs), map(spec, outputs))

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the function with the feeds as keyword arguments and return the fetched outputs."""
        try:
            result = self.fn(**feeds)
        except Exception as error:  # noqa: BLE001 - any failure of user code becomes one clear line
            shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in feeds.items())
            raise ModelError(
                f"model {self.name}: the call failed: {type(error).__name__}: {error} (inputs: {shapes})"
            ) from error
        try:
            return [np.asarray(result[key]) for key in fetches]
        except (KeyError, TypeError) as error:
            raise ModelError(
                f"model {self.name}: the function must return a dict with keys {list(fetches)} ({error})"
            ) from None
