"""Training a TF1 graph SavedModel, as OTBTF's TensorflowModelTrain does (behaviour reference §3).

The SavedModel is loaded into a ``tf.compat.v1`` Graph and Session. Sources feed the signature inputs their
``placeholder`` names (resolved as the serve app resolves them), user placeholders feed constants (cast exactly,
decision 5c), and every batch runs ``training.targetnodes``, graph node names such as ``optimizer``. Variables are
restored from and saved to checkpoints through the MetaGraph's ``saver_def`` (its filename tensor, restore op and
save tensor), so ``-model.saveto <model.dir>/variables/variables`` updates the SavedModel itself; the checkpoint
files are written under temporary names and renamed when complete.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import ModelError, OutputFileError, ParameterError
from eotensor.runtimes.base import TensorSpec
from eotensor.runtimes.signature import parse_user_placeholder, placeholder_feed, resolve_names
from eotensor.runtimes.tensorflow import (
    error_line,
    import_tensorflow,
    load_graph_session,
    tensor_info_spec,
    unfed_inputs,
)
from eotensor.training.base import Trainer, TrainOptions, check_fed_once
from eotensor.training.patches import batch_slices

__all__ = ["GraphTrainer", "user_constants"]


def _checkpoint_directory(prefix: str) -> str:
    """The directory of the checkpoint ``prefix`` (``model.saveto``): it must exist and be writable."""
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory):
        raise OutputFileError(f'model.saveto: cannot write "{prefix}": the directory "{directory}" does not exist')
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputFileError(f'model.saveto: cannot write "{prefix}": the directory "{directory}" is not writable')
    return directory


def user_constants(specs: Mapping[str, TensorSpec], items: Sequence[str], param: str) -> dict[str, np.ndarray]:
    """``name=value`` items -> {signature key: value cast exactly to the declared dtype}; a key given twice is an
    error."""
    parsed = [parse_user_placeholder(item, param) for item in items]
    resolved = resolve_names(specs, [name for name, _ in parsed], [param] * len(parsed))
    check_fed_once([(param, spec.key) for spec in resolved])
    return {spec.key: placeholder_feed(name, value, spec, param) for (name, value), spec in zip(parsed, resolved)}


class GraphTrainer(Trainer):
    """A TF1 graph, its sources, targets and saver: :meth:`train` runs the epochs, :meth:`save` the saver."""

    def __init__(self, options: TrainOptions, log: Callable[[str], None] | None = None) -> None:
        if options.export:
            raise ParameterError("model.export: only Keras models (.keras) are exported; a TF1 graph is already a "
                                 "SavedModel: save its variables with model.saveto <model.dir>/variables/variables")
        if not options.target_nodes:
            raise ParameterError("training.targetnodes: missing; name the graph nodes to run on every batch (e.g. "
                                 "optimizer)")
        if options.save_to:
            _checkpoint_directory(options.save_to)  # now, not after the epochs
        self.tf = import_tensorflow()
        self.session, meta, name = load_graph_session(options.model, options.tags)
        try:
            self._bind(options, meta, name)
            super().__init__(options, log)  # the patches are read once the graph accepts the parameters
            self.check_bands([self.inputs[key] for key in self.source_keys])
            self.valid_inputs: list[int] = []
            self._compared: list[tuple[int, str]] = []
            if self.validating:
                self._roles()
                self.check_compared(self.outputs)
            if options.restore_from:
                self._checkpoint("restore", options.restore_from)
        except BaseException:
            self.session.close()
            raise

    def _bind(self, options: TrainOptions, meta: Any, name: str) -> None:
        """Resolve the signature tensors, the user placeholders, the target nodes and the fetched outputs."""
        signature = meta.signature_def[name]
        self.inputs = {k: tensor_info_spec(k, v) for k, v in sorted(signature.inputs.items())}
        self.outputs = {k: tensor_info_spec(k, v) for k, v in sorted(signature.outputs.items())}
        self.tensor_names = {**{k: v.name for k, v in signature.inputs.items()},
                             **{k: v.name for k, v in signature.outputs.items()}}
        self.saver = meta.saver_def
        self.train_constants = user_constants(self.inputs, options.user_placeholders, "training.userplaceholders")
        specs = resolve_names(self.inputs, [s.name for s in options.training],
                              [f"{s.param}.placeholder" for s in options.training], exclude=list(self.train_constants))
        self.source_keys = [spec.key for spec in specs]
        check_fed_once([("training.userplaceholders", k) for k in self.train_constants]
                       + [(f"{s.param}.placeholder", k) for s, k in zip(options.training, self.source_keys)])
        self.targets = [self._operation(node, options.model) for node in options.target_nodes]
        self.fetches = [spec.key for spec in resolve_names(
            self.outputs, list(options.output_tensors), ["training.outputtensors"] * len(options.output_tensors))]

    def _operation(self, name: str, model: str) -> Any:
        """The graph node ``name`` (``training.targetnodes``); absent: an error listing close names."""
        graph = self.session.graph
        try:
            return graph.get_operation_by_name(name)
        except (KeyError, ValueError):
            names = [op.name for op in graph.get_operations()]
            close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else "; list its nodes with saved_model_cli"
            raise ParameterError(f'training.targetnodes: node "{name}" is not in the graph of '
                                 f'"{model}"{hint}') from None

    def _roles(self) -> None:
        """Validation source N with the training placeholder's name is an input; another name is an output to
        compare its patches with (behaviour reference §3.1)."""
        self.valid_constants = user_constants(self.inputs, self.options.validation_placeholders,
                                              "validation.userplaceholders")
        fed = [("validation.userplaceholders", k) for k in self.valid_constants]
        for i, (train, valid) in enumerate(zip(self.options.training, self.options.validation)):
            name = valid.name or train.name
            if name == train.name:
                self.valid_inputs.append(i)
                fed.append((f"{valid.param}.name", self.source_keys[i]))
            else:
                spec, = resolve_names(self.outputs, [name], [f"{valid.param}.name"])
                self._compared.append((i, spec.key))
        check_fed_once(fed)
        if not self._compared:
            raise ParameterError(f"validation.mode {self.options.validation_mode}: no validation.sourceN.name names "
                                 "an output to compare; give the reference source the output's name (e.g. "
                                 "-validation.source2.name prediction)")
        self._check_validation_feeds([key for _, key in fed])

    def _check_validation_feeds(self, fed: list[str]) -> None:
        """Every compared output must be computable from what validation feeds: the sources named after their
        training placeholder and ``validation.userplaceholders``."""
        inputs = {self.tensor_names[k]: k for k in self.inputs}
        feeding = {self.source_keys[i]: i for i in range(len(self.options.training))}
        for i, key in self._compared:
            unfed = unfed_inputs(self.session.graph, self.tensor_names[key], inputs,
                                  {self.tensor_names[k] for k in fed})
            if unfed:
                param = self.options.validation[i].param
                hints = [f"{self.options.validation[feeding[k]].param}.name makes the source of \"{k}\" an output"
                         for k in unfed if k in feeding]
                raise ParameterError(
                    f'{param}.name: output "{key}" needs model input(s) {", ".join(unfed)}, which validation does not '
                    f"feed (fed: {', '.join(sorted(fed)) or 'none'})" + (f"; {'; '.join(hints)}" if hints else "")
                    + "; a validation source named after its training placeholder feeds its input, "
                    "validation.userplaceholders feed constants")

    @property
    def compared(self) -> list[tuple[int, str]]:
        return self._compared

    def _feed(self, patches: Sequence[tuple[str, np.ndarray]], constants: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Graph feeds: ``(input key, patches)`` cast to the inputs' dtypes (as OTBTF's C cast), and the constants."""
        feed = {self.tensor_names[k]: v.astype(self.inputs[k].dtype, copy=False) for k, v in patches}
        feed.update({self.tensor_names[k]: v for k, v in constants.items()})
        return feed

    def _run(self, fetches: list[Any], feed: dict[str, Any]) -> list[Any]:
        try:
            return self.session.run(fetches, feed)
        except (self.tf.errors.OpError, ValueError, TypeError) as error:
            raise ModelError(f'model.dir "{self.options.model}": the graph failed: {error_line(error)}') from None

    def train(self) -> None:
        """``epochs`` passes over the shuffled training samples, ``ceil(N / B)`` batches each."""
        options = self.options
        order = self.train_data.shuffler(options.seed)
        fetched = [self.tensor_names[k] for k in self.fetches]
        for epoch in range(1, options.epochs + 1):
            indices = next(order)
            sums = np.zeros(len(fetched))
            for part in batch_slices(self.train_data.size, options.batch_size):
                batch = self.train_data.batch(indices[part])
                feed = self._feed(list(zip(self.source_keys, batch)), self.train_constants)
                values = self._run([*fetched, *self.targets], feed)[:len(fetched)]
                sums += [float(np.mean(v)) * len(batch[0]) for v in values]
            self.end_epoch(epoch, dict(zip(self.fetches, sums / max(self.train_data.size, 1))))

    def predict(self, batch: list[np.ndarray]) -> dict[str, np.ndarray]:
        feed = self._feed([(self.source_keys[i], batch[i]) for i in self.valid_inputs], self.valid_constants)
        keys = [key for _, key in self._compared]
        return dict(zip(keys, self._run([self.tensor_names[k] for k in keys], feed)))

    def _checkpoint(self, action: str, prefix: str) -> None:
        """Run the saver's restore op or save tensor with the checkpoint ``prefix``."""
        param = "model.restorefrom" if action == "restore" else "model.saveto"
        if not self.saver.filename_tensor_name:
            raise ModelError(f'{param}: the graph of "{self.options.model}" has no saver (its MetaGraph has no '
                             "saver_def); save it with a tf.compat.v1.train.Saver")
        if action == "restore" and not os.path.isfile(prefix + ".index"):
            raise ParameterError(f'{param}: no checkpoint "{prefix}" ("{prefix}.index" does not exist); give a '
                                 "checkpoint prefix such as <model.dir>/variables/variables")
        target = self.saver.restore_op_name if action == "restore" else self.saver.save_tensor_name
        try:
            self.session.run(target, {self.saver.filename_tensor_name: prefix})
        except self.tf.errors.OpError as error:
            raise ModelError(f'{param}: cannot {action} "{prefix}": {error_line(error)}') from None

    def save(self) -> list[str]:
        """Save the variables to ``model.saveto`` (a checkpoint prefix), complete or not at all."""
        prefix = self.options.save_to
        if not prefix:
            return []
        directory, base = _checkpoint_directory(prefix), os.path.basename(os.path.abspath(prefix))
        scratch = tempfile.mkdtemp(prefix=".eot-", suffix=".tmp", dir=directory)
        try:
            self._checkpoint("save", os.path.join(scratch, base))
            written = sorted(f for f in os.listdir(scratch) if f.startswith(base + ".")
                             and os.path.isfile(os.path.join(scratch, f)))
            stale = [f for f in os.listdir(directory) if f.startswith(base + ".data-") and f not in written]
            for name in sorted(written, key=lambda f: f.endswith(".index")):  # the index, which names the data, last
                os.replace(os.path.join(scratch, name), os.path.join(directory, name))
            for name in stale:
                os.remove(os.path.join(directory, name))
        except OSError as error:
            raise OutputFileError(f'model.saveto: cannot write "{prefix}" ({error})') from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self.log(f"Variables saved to {prefix}")
        return [prefix]

    def close(self) -> None:
        super().close()
        self.session.close()
