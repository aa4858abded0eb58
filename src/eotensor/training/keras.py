"""Training a Keras 3 ``.keras`` file with TensorflowModelTrain (decision 25; beyond OTBTF).

The file is loaded with ``keras.saving.load_model`` on the TensorFlow backend, compiled as saved (its loss,
optimizer and metrics). A source whose ``placeholder`` names a model input feeds it; one that names a model output
is that output's target (names as :class:`~eotensor.runtimes.keras.KerasModel` gives them: dict keys, input names,
``output_0``...). ``fit`` runs over the same batches as the TF1 trainer (every sample once per epoch, shuffled with
``-rand``), validation uses the same passes, and the result is saved as a ``.keras`` file and/or exported as a
SavedModel ready for TensorflowModelServe, each written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from eotensor.errors import EotensorError, ModelError, OutputFileError, ParameterError
from eotensor.io.atomic import AtomicOutput, check_outputs, error_text
from eotensor.runtimes.keras import KerasModel, _named
from eotensor.runtimes.signature import resolve_names
from eotensor.runtimes.tensorflow import error_line, import_tensorflow
from eotensor.training.base import Trainer, TrainOptions, check_fed_once
from eotensor.training.patches import batch_slices

__all__ = ["KerasTrainer"]


def _load(path: str) -> Any:
    """The compiled Keras model in ``path``; one-line errors naming ``model.dir``."""
    if not os.path.isfile(path):
        raise ModelError(f'model.dir: "{path}" does not exist or is not a file; expected a .keras file')
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import_tensorflow()
    import keras

    import eotensor.model.layers  # noqa: F401 - registers OTBTF's layers, which saved models may use

    try:
        with warnings.catch_warnings():  # a model saved before any training has no optimizer state to restore
            warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
            model = keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 - a corrupt file, an unknown layer: one line for all
        raise ModelError(f'model.dir: cannot load "{path}" as a Keras model ({error_text(error)})') from None
    if not getattr(model, "compiled", False) or model.optimizer is None:
        raise ModelError(f'model.dir: "{path}" was saved without compile(); compile it with a loss and an optimizer '
                         "before saving it to train it here")
    return model


SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra"})
"""What a SavedModel directory holds: an export replaces a directory holding these alone, nothing else."""


def _export_target(target: str) -> tuple[str, str]:
    """Check ``model.export`` before any work: a new name in an existing writable directory, an empty directory
    or a SavedModel directory holding nothing else (replaced). Returns (absolute path, its directory)."""
    final = os.path.abspath(target)
    parent = os.path.dirname(final)
    if os.path.exists(final):
        entries = set(os.listdir(final)) if os.path.isdir(final) else None
        if entries is None or (entries and ("saved_model.pb" not in entries or entries - SAVED_MODEL_ENTRIES)):
            other = sorted(entries - SAVED_MODEL_ENTRIES) if entries else []
            why = (f"holds {', '.join(other[:3])}, which is not part of a SavedModel" if other
                   else "is not a SavedModel directory")
            raise OutputFileError(f'model.export: "{target}" exists and {why}; it is replaced only when it holds '
                                  "a SavedModel alone; choose another name")
    if not os.path.isdir(parent):
        raise OutputFileError(f'model.export: cannot write "{target}": the directory "{parent}" does not exist')
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputFileError(f'model.export: cannot write "{target}": the directory "{parent}" is not writable')
    return final, parent


def _pack(structure: Any, keys: Sequence[str], arrays: dict[str, np.ndarray]) -> Any:
    """Arrays by key in the structure the model takes: a dict, a list in declared order, or one array."""
    if isinstance(structure, dict):
        return {k: arrays[k] for k in keys if k in arrays}
    if isinstance(structure, (list, tuple)):
        return [arrays[k] for k in keys]
    return arrays[keys[0]]


class KerasTrainer(Trainer):
    """A compiled Keras 3 model and its sources: :meth:`train` runs ``fit``, :meth:`save` writes the results."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None] | None = None) -> None:
        for key, value in (("model.restorefrom", options.restore_from), ("training.targetnodes", options.target_nodes),
                           ("training.outputtensors", options.output_tensors),
                           ("training.userplaceholders", options.user_placeholders),
                           ("validation.userplaceholders", options.validation_placeholders)):
            if value:
                raise ParameterError(f"{key}: applies to TF1 graphs only; a Keras model is trained with its compiled "
                                     "loss and optimizer")
        if options.save_to and not options.save_to.lower().endswith(".keras"):
            raise ParameterError(f'model.saveto: "{options.save_to}" must end in .keras (a Keras model is saved as a '
                                 ".keras file)")
        if options.save_to:  # the outputs are checked now, not after the epochs
            check_outputs([("model.saveto", options.save_to)], [p for s in options.training for p in s.images])
        if options.export:
            _export_target(options.export)
        self.model = _load(options.model)  # the model, then the patches: a wrong model fails before any read
        self.served = KerasModel(self.model, options.model)
        inputs = getattr(self.model, "_inputs_struct", None)
        self._in_structure = self.model.inputs if inputs is None else inputs
        outputs = getattr(self.model, "_outputs_struct", None)
        self._out_structure = self.model.outputs if outputs is None else outputs
        self._in_keys = [k for k, _ in _named(self._in_structure, "{name}")]
        self._out_keys = [k for k, _ in _named(self._out_structure, "output_{i}")]
        self.roles = [self._role(s.name, f"{s.param}.placeholder") for s in options.training]
        check_fed_once([(f"{s.param}.placeholder", key) for s, (_, key) in zip(options.training, self.roles)])
        unfed = [k for k in self._in_keys if ("input", k) not in self.roles]
        if unfed:
            raise ParameterError(f"training.sourceN.placeholder: model input(s) {', '.join(unfed)} get no source; "
                                 f"the model's inputs are {', '.join(self._in_keys)}")
        if not any(role == "output" for role, _ in self.roles):
            raise ParameterError(f"training.sourceN.placeholder: no source names a model output (outputs: "
                                 f"{', '.join(self._out_keys)}); the targets are the sources named after outputs")
        self.valid_roles: list[tuple[str, str]] = []
        if options.validation_mode != "none":
            self._validation_roles(options)
        super().__init__(options, log)
        self.check_bands([self.served.inputs[key] if role == "input" else None for role, key in self.roles])
        if self.validating:
            self.check_compared(self.served.outputs)
        if options.seed is not None:
            import keras

            keras.utils.set_random_seed(options.seed)

    def _validation_roles(self, options: TrainOptions) -> None:
        """Validation source N is an input (named after its training placeholder, or unnamed) or the output it is
        compared with; every model input must still get a source."""
        pairs = list(zip(options.training, options.validation))
        self.valid_roles = [self._role(v.name or t.name, f"{v.param}.name") for t, v in pairs]
        check_fed_once([(f"{v.param}.name", key) for (_, v), (role, key) in zip(pairs, self.valid_roles)
                        if role == "input"])
        for i, ((train, valid), role) in enumerate(zip(pairs, self.valid_roles)):
            if self.roles[i][0] == "input" and role != ("input", self.roles[i][1]):
                raise ParameterError(
                    f'{valid.param}.name: "{valid.name}" leaves model input "{self.roles[i][1]}" (fed by '
                    f'{train.param}) without a source while validating; leave it empty (or "{train.name}") to feed '
                    "the input, and name the compared output on the reference source")

    def _role(self, name: str, param: str) -> tuple[str, str]:
        """``("input", key)`` when ``name`` names a model input, ``("output", key)`` when it names an output."""
        for role, specs in (("input", self.served.inputs), ("output", self.served.outputs)):
            if any(key == name or key.split(":", 1)[0] == name for key in specs):
                return role, resolve_names(specs, [name], [param])[0].key
        raise ParameterError(f'{param}: "{name}" is neither a model input ({", ".join(self._in_keys)}) nor a model '
                             f"output ({', '.join(self._out_keys)})")

    @property
    def compared(self) -> list[tuple[int, str]]:
        return [(i, key) for i, (role, key) in enumerate(self.valid_roles) if role == "output"]

    def _split(self, batch: list[np.ndarray], roles: list[tuple[str, str]]) -> tuple[dict, dict]:
        """(inputs, targets) by key; inputs cast to the dtypes the model declares."""
        inputs, targets = {}, {}
        for (role, key), patches in zip(roles, batch):
            if role == "input":
                inputs[key] = patches.astype(self.served.inputs[key].dtype, copy=False)
            else:
                targets[key] = patches
        return inputs, targets

    def predict(self, batch: list[np.ndarray]) -> dict[str, np.ndarray]:
        inputs, _ = self._split(batch, self.valid_roles)
        keys = [key for _, key in self.compared]
        return dict(zip(keys, self.served.run(inputs, keys)))

    def _batches(self) -> Any:
        """The training batches as a ``keras.utils.PyDataset``: ``ceil(N / B)`` per epoch, a new order each."""
        import keras

        trainer = self
        data, size = self.train_data, self.train_data.size
        parts = batch_slices(size, self.options.batch_size)

        class Batches(keras.utils.PyDataset):
            def __init__(self) -> None:
                super().__init__()
                self.order = data.shuffler(trainer.options.seed)
                self.indices = next(self.order)

            def __len__(self) -> int:
                return len(parts)

            def __getitem__(self, index: int) -> tuple[Any, Any]:
                inputs, targets = trainer._split(data.batch(self.indices[parts[index]]), trainer.roles)
                return (_pack(trainer._in_structure, trainer._in_keys, inputs),
                        _pack(trainer._out_structure, trainer._out_keys, targets))

            def on_epoch_end(self) -> None:
                self.indices = next(self.order)

        return Batches()

    def train(self) -> None:
        """``fit`` for ``epochs`` epochs; the logs (loss, metrics) and validation after each epoch."""
        import keras

        done = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: self.end_epoch(
            epoch + 1, {k: float(v) for k, v in (logs or {}).items()}))
        tf = import_tensorflow()
        try:  # shuffle=False: the batches come shuffled (and seeded) from Batches, the short one last
            self.model.fit(self._batches(), epochs=self.options.epochs, verbose=0, callbacks=[done], shuffle=False)
        except EotensorError:
            raise  # a validation pass's own one-line error
        except (tf.errors.OpError, ValueError, TypeError, KeyError) as error:
            raise ModelError(f'model.dir "{self.options.model}": training failed: {error_line(error)}') from None

    def save(self) -> list[str]:
        """``model.saveto`` (a .keras file) and ``model.export`` (a SavedModel directory), each complete or absent."""
        written = []
        if self.options.save_to:
            with AtomicOutput(self.options.save_to, "model.saveto") as out:
                scratch = out.scratch(".keras")
                self.model.save(scratch)
                os.replace(scratch, out.temp_path)
            written.append(self.options.save_to)
            self.log(f"Model saved to {self.options.save_to}")
        if self.options.export:
            written.append(self._export(self.options.export))
            self.log(f"Model exported to {self.options.export}")
        return written

    def _export(self, target: str) -> str:
        """``model.export()`` into a temporary directory next to ``target``, then renamed onto it. An existing
        ``target`` is replaced only when it is empty or holds a SavedModel alone (see :func:`_export_target`);
        if the new one cannot take its place, the old one is put back."""
        final, parent = _export_target(target)
        scratch = tempfile.mkdtemp(prefix=".eot-", suffix=".tmp", dir=parent)
        try:
            try:
                self.model.export(os.path.join(scratch, "new"), verbose=False)
            except Exception as error:  # noqa: BLE001 - Keras/TF raise many kinds
                raise ModelError(f'model.export: cannot export "{self.options.model}": {error_text(error)}') from None
            old = os.path.join(scratch, "old")
            if os.path.exists(final):
                os.replace(final, old)
            try:
                os.replace(os.path.join(scratch, "new"), final)
            except OSError:
                if os.path.exists(old):
                    os.replace(old, final)
                raise
        except OSError as error:
            raise OutputFileError(f'model.export: cannot write "{target}" ({error_text(error)}); the previous '
                                  "export, if any, is unchanged") from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return target
