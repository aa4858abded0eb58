"""The TensorFlow runtime: SavedModels (TF2, Keras 3 ``export``, Keras-2 style, TF1 ``simple_save``).

TensorFlow is imported here only, on first use, with its start-up logging silenced (so one-line
errors stay one line). A model is served through one signature: ``serving_default`` when present,
else the alphabetically first. Inputs and outputs are the signature's keys, as OTBTF resolves them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import MissingDependencyError, ModelError
from eotensor.runtimes.base import TensorSpec

_tf: Any = None


def import_tensorflow() -> Any:
    """Import TensorFlow quietly (once), or raise MissingDependencyError naming the extra."""
    global _tf
    if _tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:
            pass
        try:
            import tensorflow as tf
        except ImportError:
            raise MissingDependencyError(
                "TensorFlow is not installed: pip install 'eotensor[tf]' to serve SavedModels"
            ) from None
        tf.get_logger().setLevel("ERROR")
        _tf = tf
    return _tf


def set_threads(intra_op: int | None = None, inter_op: int | None = None) -> None:
    """Size TensorFlow's thread pools (only possible before TF runs anything; silently kept otherwise)."""
    tf = import_tensorflow()
    try:
        if intra_op:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        if inter_op:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TF is already initialised: its pools cannot change any more


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _tag_sets(path: str) -> list[list[str]]:
    """Tag sets of a SavedModel's MetaGraphs, read from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.exists(pb):
        return []
    with open(pb, "rb") as f:
        proto.ParseFromString(f.read())
    return [list(mg.meta_info_def.tags) for mg in proto.meta_graphs]


def _spec(key: str, spec: Any) -> TensorSpec:
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(key, np.dtype(spec.dtype.as_numpy_dtype), shape)


class TensorflowModel:
    """A SavedModel signature exposed through the :class:`~eotensor.runtimes.base.Model` protocol."""

    def __init__(self, path: str, loaded: Any, signature_name: str) -> None:
        self.path = path
        self.signature_name = signature_name
        self._loaded = loaded  # keeps the variables alive
        self._fn = loaded.signatures[signature_name]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        self._inputs = {k: _spec(k, inputs[k]) for k in sorted(inputs)}
        self._outputs = {k: _spec(k, outputs[k]) for k in sorted(outputs)}

    @property
    def inputs(self) -> Mapping[str, TensorSpec]:
        """Signature inputs by key (sorted)."""
        return self._inputs

    @property
    def outputs(self) -> Mapping[str, TensorSpec]:
        """Signature outputs by key (sorted)."""
        return self._outputs

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the signature on ``feeds`` and return ``fetches`` as NumPy arrays."""
        tf = _tf
        try:
            result = self._fn(**{k: tf.convert_to_tensor(v) for k, v in feeds.items()})
        except (tf.errors.OpError, ValueError, TypeError) as error:
            shapes = ", ".join(f"{k} {tuple(np.shape(v))} {np.asarray(v).dtype}" for k, v in feeds.items())
            raise ModelError(
                f"model.dir {self.path}: the model call failed: {_first_line(error)} (inputs: {shapes})"
            ) from None
        return [result[k].numpy() for k in fetches]


def load_saved_model(path: str | os.PathLike, tags: Sequence[str] = (), param: str = "model.dir") -> TensorflowModel:
    """Load a SavedModel directory with the given tag set (default ``serve``) and pick its signature."""
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise ModelError(f'{param}: "{path}" does not exist or is not a directory; expected a SavedModel directory')
    if not any(os.path.exists(os.path.join(path, n)) for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelError(f'{param}: "{path}" has no saved_model.pb; expected a TensorFlow SavedModel directory')
    tf = import_tensorflow()
    tags = list(tags) or ["serve"]
    available = _tag_sets(path)
    if available and not any(sorted(t) == sorted(tags) for t in available):
        listed = "; ".join(",".join(t) for t in available)
        raise ModelError(f'{param}: "{path}" has no MetaGraph with tags {",".join(tags)}; model.tagsets: {listed}')
    try:
        loaded = tf.saved_model.load(path, tags=tags)
    except Exception as error:  # noqa: BLE001 - TF raises many kinds; one clear line for all
        raise ModelError(f'{param}: cannot load "{path}": {_first_line(error)}') from None
    names = sorted(getattr(loaded, "signatures", {}) or {})
    if not names:
        raise ModelError(
            f'{param}: "{path}" has no signatures to serve; inspect it with saved_model_cli show --dir {path} --all'
        )
    name = "serving_default" if "serving_default" in names else names[0]
    if name != "serving_default":
        warnings.warn(f'{path}: no "serving_default" signature, serving "{name}"', stacklevel=2)
    return TensorflowModel(path, loaded, name)
