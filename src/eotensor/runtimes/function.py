"""Plain Python functions served as models: ``fn(x1, x2, ...) -> {name: array}`` over NumPy arrays.

No framework involved: this is the runtime of pixel-wise "big calculator" math and of the tests'
reference models. Inputs and outputs are declared with :class:`TensorSpec`; the function receives
NumPy arrays of the declared dtypes (images as ``[n, rows, cols, bands]``) as keyword arguments and
returns a dict of arrays, or one array, which is the first declared output. The inputs keep the order they
are declared in, so sources bind to them in that order (decision 33).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import ModelError
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

NUMERIC_KINDS = "biuf"
"""NumPy dtype kinds a model may take and return: bool, signed and unsigned integers, floats."""


def _describe_dtype(dtype: np.dtype) -> str:
    """A dtype in words for error messages: ``strings (<U3)``, ``Python objects (object)``, ``int64``."""
    kind = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers", "M": "datetimes",
            "m": "time deltas", "V": "structured records"}.get(dtype.kind)
    return f"{kind} ({dtype})" if kind else str(dtype)


class FunctionModel(StaticSignature):
    """A Python callable exposed through the :class:`~eotensor.runtimes.base.Model` protocol.

    ``inputs`` are in the function's order: source N feeds the N-th input not named elsewhere.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        inputs: Sequence[TensorSpec] | Sequence[str],
        outputs: Sequence[TensorSpec] | Sequence[str],
        name: str | None = None,
    ) -> None:
        def spec(item: TensorSpec | str) -> TensorSpec:
            return item if isinstance(item, TensorSpec) else TensorSpec(item, np.dtype(np.float32), None)

        self.fn = fn
        self.name = name or getattr(fn, "__name__", "function")
        outputs = [spec(item) for item in outputs]
        self._first_output = outputs[0].key if outputs else ""
        super().__init__(map(spec, inputs), outputs, ordered=True)

    @property
    def token(self) -> str:
        """What determines the results: the name, the function's code, and its source file's size and mtime.

        Data the function captures (a closure's arrays) is not part of it.
        """
        code = getattr(self.fn, "__code__", None)
        digest = hashlib.sha256(repr((code.co_code, code.co_consts)).encode()).hexdigest()[:16] if code else ""
        try:
            source = inspect.getsourcefile(self.fn) or ""
        except TypeError:  # builtins, callable objects
            source = ""
        return f"function {self.name} {digest} {file_stamps(source) if source else ''}"

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the function with the feeds as keyword arguments and return the fetched outputs.

        Any failure of the function, ``sys.exit()`` included, and any result other than numeric arrays
        under the output keys is a one-line :class:`~eotensor.errors.ModelError`.
        """
        try:
            result = self.fn(**feeds)
        except SystemExit as error:  # a model must not end the process, least of all silently
            raise ModelError(
                f"model {self.name}: the model called sys.exit({error.code!r}); a model must return its outputs "
                "(raise an exception to report a failure)"
            ) from None
        except Exception as error:  # noqa: BLE001 - any failure of user code becomes one clear line
            shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in feeds.items())
            raise ModelError(
                f"model {self.name}: the call failed: {type(error).__name__}: {error} (inputs: {shapes})"
            ) from error
        return [self._output(result, key) for key in fetches]

    def _output(self, result: Any, key: str) -> np.ndarray:
        """Output ``key`` of the function's ``result`` as a numeric array, or a one-line error."""
        expected = f"a dict of numeric arrays with keys {list(self.outputs)}"
        if result is None:
            raise ModelError(f"model {self.name}: the function returned None (no return?); expected {expected}")
        if isinstance(result, Mapping):
            if key not in result:
                got = ", ".join(map(str, result)) or "none"
                raise ModelError(f'model {self.name}: the result has no output "{key}" (keys: {got}); '
                                 f"expected {expected}")
            value = result[key]
        elif key == self._first_output:
            value = result  # one array: the first declared output
        else:
            raise ModelError(
                f'model {self.name}: the function returned one {type(result).__name__}, which is output '
                f'"{self._first_output}"; output "{key}" needs {expected}'
            )
        try:
            array = np.asarray(value)
        except (ValueError, TypeError) as error:  # ragged lists and the like
            raise ModelError(f'model {self.name}: output "{key}" is not an array ({error}); expected {expected}') \
                from None
        if array.dtype.kind not in NUMERIC_KINDS:
            raise ModelError(
                f'model {self.name}: output "{key}" holds {_describe_dtype(array.dtype)}; expected numeric arrays '
                "(bool, integer or float)"
            )
        return array
