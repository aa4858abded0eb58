"""The Keras 3 runtime: ``.keras`` files on the TensorFlow backend (``pip install 'eotensor[tf]'``).

Inputs are the model's named inputs (the keys of a dict of inputs, else each input's name); outputs are the
keys of a dict of outputs, else ``output_0``, ``output_1``... as ``model.export`` names them (decision 7).
Keras declares no order that OTBTF users rely on, so sources bind alphabetically, as for SavedModels
(decision 33). Calls go through one ``tf.function`` (``jit`` compiles it with XLA), in inference mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import ModelError
from eotensor.io.atomic import error_text
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

__all__ = ["KerasModel", "load_keras"]


def _spec(key: str, tensor: Any) -> TensorSpec:
    shape = tuple(None if d is None else int(d) for d in tensor.shape)
    return TensorSpec(key, np.dtype(str(tensor.dtype)), shape)


def _named(structure: Any, default: str) -> list[tuple[str, Any]]:
    """(key, tensor) pairs of a Keras input/output structure: a dict's items, else ``default``-numbered."""
    if isinstance(structure, Mapping):
        return [(str(k), v) for k, v in structure.items()]
    items = list(structure) if isinstance(structure, (list, tuple)) else [structure]
    return [(default.format(i=i, name=getattr(t, "name", "")), t) for i, t in enumerate(items)]


class KerasModel(StaticSignature):
    """A loaded Keras 3 model behind the :class:`~eotensor.runtimes.base.Model` protocol."""

    def __init__(self, model: Any, path: str, jit: bool = False) -> None:
        from eotensor.runtimes.tensorflow import import_tensorflow

        tf = import_tensorflow()
        structure = getattr(model, "_inputs_struct", None)  # a dict, list or single KerasTensor (never test its truth)
        if structure is None:
            structure = model.inputs
        out_structure = getattr(model, "_outputs_struct", None)
        if out_structure is None:
            out_structure = model.outputs
        inputs = _named(structure, "{name}")
        outputs = _named(out_structure, "output_{i}")
        super().__init__((_spec(k, t) for k, t in inputs), (_spec(k, t) for k, t in outputs))
        self._dict_inputs = isinstance(structure, Mapping)
        self._input_keys = [k for k, _ in inputs]
        self._output_keys = [k for k, _ in outputs]
        self.model = model
        self.path = path
        self._call = tf.function(lambda feeds: model(feeds, training=False), reduce_retracing=True,
                                 jit_compile=bool(jit))
        self.token = f"keras:{os.path.abspath(path)}:{file_stamps(path)}:jit={bool(jit)}"

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """One call of the traced model; any failure is one :class:`ModelError` line."""
        arguments: Any = ({k: feeds[k] for k in self._input_keys} if self._dict_inputs
                          else [feeds[k] for k in self._input_keys])
        if not self._dict_inputs and len(arguments) == 1:
            arguments = arguments[0]
        try:
            result = self._call(arguments)
        except Exception as error:  # noqa: BLE001 - TensorFlow/Keras raise many kinds
            raise ModelError(f'Keras model "{self.path}" failed: {error_text(error)}') from None
        if isinstance(result, Mapping):
            named = {str(k): v for k, v in result.items()}
        else:
            named = dict(zip(self._output_keys, result if isinstance(result, (list, tuple)) else [result]))
        return [np.asarray(named[key]) for key in fetches]


def load_keras(path: str, jit: bool = False, threads: int | None = None, param: str = "model.dir") -> KerasModel:
    """Load a ``.keras`` file with the TensorFlow backend (``threads``: TensorFlow's intra-op pool)."""
    if not os.path.isfile(path):
        raise ModelError(f'{param}: "{path}" does not exist or is not a file; expected a .keras file')
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    from eotensor.runtimes.tensorflow import import_tensorflow, set_threads

    if threads:
        set_threads(threads)  # before TensorFlow runs anything: its pools are fixed then
    import_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ModelError(f'{param}: "{path}" needs Keras on the TensorFlow backend, but KERAS_BACKEND is '
                         f'"{keras.backend.backend()}"; unset it or set KERAS_BACKEND=tensorflow')
    try:
        model = keras.saving.load_model(path, compile=False)
        return KerasModel(model, path, jit)
    except Exception as error:  # noqa: BLE001 - a Sequential never built, an unusual structure, a corrupt file
        raise ModelError(f'{param}: cannot load "{path}" as a Keras model ({error_text(error)})') from None
