"""``ModelBase`` on Keras 3: OTBTF's way of writing a model that trains on patches and serves on whole images.

A subclass writes ``get_outputs`` (and usually ``normalize_inputs``); the base class builds the Keras model
from a dataset's element spec, with inputs whose rows and columns are free (any tile size at serving) and,
for every output and every crop ``c`` of ``inference_cropping``, an extra output ``<key>_crop<c>``: the
output without ``c`` pixels on each side. Keras 3's ``model.export()`` names signature outputs by these
dict keys (decision 7), so ``TensorflowModelServe -output.names <key>_crop16`` serves the centre that the
network computes without border effects, with RF = the training patch size and EF = RF - 2c.
``compile``, ``fit``, ``evaluate`` and ``save`` work on :attr:`ModelBase.training_model`, the same layers without
the crops (Keras 3 asks a target of every output): ``save("net.keras")`` writes the compiled model that
``TensorflowModelTrain`` trains further, while ``export`` (the serving artefact) keeps the crops. Other calls
(``predict``, ``export``, ``summary``...) go to the Keras model with the crops.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_CROPPING = (16, 32, 64, 96, 128)
"""OTBTF's default ``inference_cropping``."""


def cropped_tensor_name(name: str, crop: int) -> str:
    """The name of ``name`` cropped by ``crop`` pixels on each side: ``<name>_crop<crop>`` (OTBTF's)."""
    return f"{name}_crop{crop}"


def _is_chief(strategy: Any = None) -> bool:
    """Whether this process is the chief of a distribution ``strategy``: always without a cluster; else the
    chief, worker 0, or a task of no type."""
    resolver = getattr(strategy, "cluster_resolver", None) if strategy is not None else None
    if resolver is None:
        return True
    task_type = getattr(resolver, "task_type", None)
    return task_type is None or task_type == "chief" or (task_type == "worker" and getattr(resolver, "task_id", 0) == 0)


class ModelBase(abc.ABC):
    """Base of a Keras 3 model built from a dataset's element spec (OTBTF's ``otbtf.ModelBase``).

    ``dataset_element_spec``: ``tf_dataset.element_spec`` of a dataset yielding ``(inputs, targets)`` (only the
    inputs are used); ``input_keys``: the inputs to use (default: all); ``inference_cropping``: the crops of
    the extra outputs (default :data:`DEFAULT_CROPPING`). Under a distribution strategy, create the model
    inside ``strategy.scope()``.
    """

    def __init__(self, dataset_element_spec: Any, input_keys: Sequence[str] | None = None,
                 inference_cropping: Sequence[int] | None = None) -> None:
        specs = dataset_element_spec[0] if isinstance(dataset_element_spec, (tuple, list)) else dataset_element_spec
        if not isinstance(specs, Mapping):
            raise ValueError("dataset_element_spec: expected the element spec of a dataset of (inputs dict, "
                             "targets dict), e.g. ds.get_tf_dataset(...).element_spec")
        keys = list(input_keys) if input_keys is not None else list(specs)
        missing = [key for key in keys if key not in specs]
        if missing:
            raise ValueError(f"input_keys: {', '.join(missing)} not in the dataset's inputs ({', '.join(specs)})")
        self.input_keys = keys
        self.inputs_shapes = {key: tuple(specs[key].shape[1:]) for key in keys}
        self.inputs_dtypes = {key: specs[key].dtype for key in keys}
        self.inference_cropping = list(DEFAULT_CROPPING if inference_cropping is None else inference_cropping)
        self.model = self.create_network()
        self.training_model = self._without_crops(self.model)
        """The same layers without the ``_crop<N>`` outputs: what ``compile``/``fit``/``evaluate`` train, since Keras 3
        asks a target (and metrics) of every output. ``self.model`` (crops included) predicts and exports."""

    def _without_crops(self, model: Any) -> Any:
        import keras

        outputs = model.output
        if not isinstance(outputs, Mapping):
            return model
        crops = {cropped_tensor_name(key, crop) for key in outputs for crop in self.inference_cropping}
        kept = {key: tensor for key, tensor in outputs.items() if key not in crops}
        if len(kept) == len(outputs):
            return model
        return keras.Model(model.input, kept, name=model.name)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """Keras ``compile``, on :attr:`training_model` (losses and metrics for the outputs, not their crops)."""
        self.training_model.compile(*args, **kwargs)

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        """Keras ``fit`` on :attr:`training_model`; the layers are shared, so the exported model is trained."""
        return self.training_model.fit(*args, **kwargs)

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """Keras ``evaluate`` on :attr:`training_model`."""
        return self.training_model.evaluate(*args, **kwargs)

    def train_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Keras ``train_on_batch`` on :attr:`training_model`."""
        return self.training_model.train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args: Any, **kwargs: Any) -> Any:
        """Keras ``test_on_batch`` on :attr:`training_model`."""
        return self.training_model.test_on_batch(*args, **kwargs)

    def save(self, filepath: Any, *args: Any, **kwargs: Any) -> None:
        """Keras ``save`` of :attr:`training_model`: compiled (loss, optimizer and its state), without the
        ``_crop<N>`` outputs, so ``TensorflowModelTrain -model.dir net.keras`` trains it further. Serve the
        ``export()`` of this object (crops included); a ``.keras`` file re-exported elsewhere has no crops."""
        self.training_model.save(filepath, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if "model" not in self.__dict__:  # still building: an attribute the subclass has not set yet
            raise AttributeError(f"{type(self).__name__}.{name} is not set when create_network runs; set it before "
                                 "calling super().__init__()")
        return getattr(self.model, name)

    def get_inputs(self) -> dict[str, Any]:
        """One ``keras.Input`` per input key; rows and columns are free for images (any size when served)."""
        import keras

        inputs = {}
        for key in self.input_keys:
            shape = list(self.inputs_shapes[key])
            if len(shape) > 2:
                shape[0] = shape[1] = None
            dtype = self.inputs_dtypes[key]
            inputs[key] = keras.Input(shape=tuple(shape), name=key, dtype=getattr(dtype, "name", dtype))
        return inputs

    def normalize_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Radiometric scaling inside the graph (so serving can feed raw pixels); the default changes nothing."""
        warnings.warn("ModelBase.normalize_inputs is not overridden: the inputs are used as they are",
                      stacklevel=2)
        return inputs

    @abc.abstractmethod
    def get_outputs(self, normalized_inputs: dict[str, Any]) -> dict[str, Any]:
        """The network: ``{output key: tensor}`` from the normalized inputs."""

    def postprocess_outputs(self, outputs: dict[str, Any], inputs: dict[str, Any] | None = None,
                            normalized_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """For every image output and crop ``c``, the output without ``c`` pixels on each side, keyed
        ``cropped_tensor_name(key, c)``."""
        from eotensor.model.layers import Crop

        cropped = {}
        for key, tensor in outputs.items():
            if len(tensor.shape) != 4:
                continue
            for crop in self.inference_cropping:
                name = cropped_tensor_name(key, crop)
                cropped[name] = Crop(crop, name=name)(tensor)  # Cropping2D refuses crops larger than a patch
        return cropped

    def create_network(self) -> Any:
        """inputs -> ``normalize_inputs`` -> ``get_outputs`` -> ``postprocess_outputs``: the Keras model, named
        after the class."""
        import keras

        inputs = self.get_inputs()
        normalized = self.normalize_inputs(dict(inputs))
        outputs = dict(self.get_outputs(normalized))
        outputs.update(self.postprocess_outputs(outputs, inputs, normalized))
        return keras.Model(inputs, outputs, name=type(self).__name__)

    def summary(self, strategy: Any = None) -> None:
        """The Keras summary (150 columns), printed by the chief only."""
        if _is_chief(strategy):
            self.model.summary(line_length=150)

    def plot(self, output_path: str, strategy: Any = None, show_shapes: bool = False) -> None:
        """A drawing of the network (needs pydot and graphviz), by the chief only."""
        if _is_chief(strategy):
            import keras

            keras.utils.plot_model(self.model, output_path, show_shapes=show_shapes)
