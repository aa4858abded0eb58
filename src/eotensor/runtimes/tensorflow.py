"""The TensorFlow runtime: SavedModels (TF2, Keras 3 ``export``, Keras-2 style, TF1 ``simple_save``).

TensorFlow is imported here only, on first use, with its start-up logging silenced, so that importing
eotensor stays cheap and one-line errors stay one line. A model is served through one signature, as
OTBTF does: ``serving_default`` when present, else the alphabetically first key (with a warning).
Inputs and outputs are the signature's keys (``x``, ``x:0`` for TF1 graphs, ``output_0`` for Keras 3
list outputs), with the dtypes and static shapes the signature declares.

Calls go straight to the signature's concrete function (no tracing per call): NumPy arrays in,
NumPy arrays out, and any TensorFlow failure becomes one :class:`~eotensor.errors.ModelError` line.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import MissingDependencyError, ModelError
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

__all__ = ["TensorflowModel", "import_tensorflow", "load_saved_model", "set_threads"]

_tf: Any = None
_pending_threads: dict[str, int] = {}


def _quiet_import() -> Any:
    """``import tensorflow`` with its C++ start-up lines sent to /dev/null.

    TF 2.21 prints oneDNN notices through absl before its logging is initialised, which
    ``TF_CPP_MIN_LOG_LEVEL`` does not silence; file descriptor 2 is therefore redirected for the
    duration of the import only (Python exceptions still surface normally afterwards).
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable fd 2 (embedded interpreters): import as is
        import tensorflow

        return tensorflow
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow

        return tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_tensorflow() -> Any:
    """Import TensorFlow once, quietly, and return the module.

    Raises :class:`~eotensor.errors.MissingDependencyError` naming the ``eotensor[tf]`` extra when
    TensorFlow is not installed. Thread-pool sizes requested earlier with :func:`set_threads` are
    applied right after the import.
    """
    global _tf
    if _tf is not None:
        return _tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:
        pass
    try:
        if sys.modules.get("tensorflow") is not None:  # already imported by the caller: nothing to silence
            import tensorflow as tf
        else:
            tf = _quiet_import()
    except ImportError as error:
        raise MissingDependencyError(
            f"TensorFlow cannot be imported ({error}); pip install 'eotensor[tf]' to serve SavedModels"
        ) from None
    tf.get_logger().setLevel("ERROR")
    _tf = tf
    if _pending_threads:
        _apply_threads(tf, _pending_threads.get("intra_op"), _pending_threads.get("inter_op"))
        _pending_threads.clear()
    return tf


def _apply_threads(tf: Any, intra_op: int | None, inter_op: int | None) -> None:
    """Size the pools now; once TF's runtime has started they cannot change: a warning says so."""
    for pool, value in (("intra_op", intra_op), ("inter_op", inter_op)):
        if not value:
            continue
        threading = tf.config.threading
        try:
            getattr(threading, f"set_{pool}_parallelism_threads")(int(value))
        except RuntimeError:  # TF's context is initialised and the size differs from the one it runs with
            current = getattr(threading, f"get_{pool}_parallelism_threads")() or "its default number of"
            warnings.warn(
                f"TensorFlow already runs in this process with {current} {pool.replace('_', '-')} threads; "
                f"{value} cannot apply any more (the pool is sized once, before the first model runs)", stacklevel=3)


def set_threads(intra_op: int | None = None, inter_op: int | None = None) -> None:
    """Size TensorFlow's intra-op and inter-op thread pools, so TF does not oversubscribe the cores.

    ``None`` or 0 leaves a pool as it is. The pools are process-wide and fixed once TF runs its first
    operation: a later request for another size is ignored with a :class:`UserWarning` (asking again for
    the size in force is silent). It never imports TensorFlow: when TF is not loaded yet, the sizes are
    kept and applied when :func:`import_tensorflow` loads it. :func:`load_saved_model`'s ``threads``
    calls it.
    """
    if _tf is None and sys.modules.get("tensorflow") is None:
        for key, value in (("intra_op", intra_op), ("inter_op", inter_op)):
            if value:
                _pending_threads[key] = int(value)
        return
    _apply_threads(import_tensorflow(), intra_op, inter_op)


_FUNCTION_NODE = re.compile(r"\{\{function_node [^}]*\}\}\s*")
_OP_SUFFIX = re.compile(r"\s*\[Op:[^\]]*\](\s*name:.*)?$")
_HEADERS = ("Graph execution error:", "Detected at node", "<stack traces unavailable>")


def _first_line(error: BaseException) -> str:
    """The informative first line of a TensorFlow error, without its graph-execution boilerplate."""
    text = str(getattr(error, "message", None) or error)
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith(_HEADERS):
            continue
        line = _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", line)).strip()
        if line:
            return line
    return type(error).__name__


def _read_tag_sets(path: str) -> list[list[str]]:
    """Tag sets of the SavedModel's MetaGraphs, read from ``saved_model.pb`` (or ``.pbtxt``)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    pb = os.path.join(path, "saved_model.pb")
    if os.path.exists(pb):
        with open(pb, "rb") as f:
            proto.ParseFromString(f.read())
    else:
        from google.protobuf import text_format

        with open(os.path.join(path, "saved_model.pbtxt"), encoding="utf-8") as f:
            text_format.Parse(f.read(), proto)
    return [list(meta_graph.meta_info_def.tags) for meta_graph in proto.meta_graphs]


def _spec(key: str, spec: Any) -> TensorSpec:
    """Convert a TF ``TensorSpec`` (or a symbolic tensor, for TF1 outputs) to eotensor's TensorSpec."""
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(key, np.dtype(spec.dtype.as_numpy_dtype), shape)


def _describe(feeds: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {tuple(np.shape(v))} {np.asarray(v).dtype}" for k, v in sorted(feeds.items()))


class TensorflowModel(StaticSignature):
    """One signature of a loaded SavedModel, exposed through the :class:`~eotensor.runtimes.base.Model` protocol.

    ``inputs`` and ``outputs`` map the signature keys (sorted in byte order) to their declared dtype and
    static shape; :meth:`run` calls the signature's concrete function directly.
    """

    def __init__(self, path: str, loaded: Any, signature_name: str, tags: Sequence[str] = ("serve",),
                 jit: bool = False) -> None:
        """Wrap ``loaded.signatures[signature_name]``; ``loaded`` is kept so its variables stay alive.

        ``jit`` compiles the signature with XLA (once per input shape; tiles come in few shapes).
        """
        self.path = path
        """The SavedModel directory."""
        self.signature_name = signature_name
        """The signature served (``serving_default`` unless the model has none)."""
        self.tags = tuple(tags)
        """The MetaGraph tag set loaded."""
        self._loaded = loaded
        self._fn = loaded.signatures[signature_name]
        inputs = self._fn.structured_input_signature[1]
        outputs = self._fn.structured_outputs
        super().__init__((_spec(k, v) for k, v in inputs.items()), (_spec(k, v) for k, v in outputs.items()))
        signature = self._fn
        self._jit = bool(jit)
        self._call = _tf.function(lambda **kw: signature(**kw), jit_compile=True) if jit else signature

    @property
    def token(self) -> str:
        """What determines the results: the path, tag set, signature, XLA, and every file's size and mtime."""
        return (f"tensorflow {self.path} tags={','.join(self.tags)} signature={self.signature_name} "
                f"jit={self._jit} {file_stamps(self.path)}")

    def __repr__(self) -> str:
        """Path, signature and keys, for logs and error reports."""
        return (
            f"TensorflowModel({self.path!r}, signature={self.signature_name!r}, "
            f"inputs={list(self._inputs)}, outputs={list(self._outputs)})"
        )

    def _fail(self, what: str, feeds: Mapping[str, Any]) -> ModelError:
        return ModelError(f"model.dir {self.path}: the model call failed: {what} (inputs: {_describe(feeds)})")

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the signature on ``feeds`` (key -> array of the declared dtype) and return ``fetches`` in order.

        Every signature input must be fed; rank-0 arrays are fed as true scalars. Python scalars are
        converted to the declared dtype. Raises :class:`~eotensor.errors.ModelError` (one line) for
        unknown keys, a dtype other than the declared one, or any failure inside TensorFlow.
        """
        tf = _tf
        missing = [k for k in self._inputs if k not in feeds]
        unknown = [k for k in feeds if k not in self._inputs]
        if missing or unknown:
            problem = "; ".join(
                part for part in (
                    f"missing input(s) {', '.join(missing)}" if missing else "",
                    f"unknown input(s) {', '.join(unknown)}" if unknown else "",
                ) if part
            )
            raise self._fail(f"{problem}; the signature inputs are {', '.join(self._inputs)}", feeds)
        bad = [k for k in fetches if k not in self._outputs]
        if bad:
            raise ModelError(
                f"model.dir {self.path}: output(s) {', '.join(bad)} not in the signature; "
                f"available: {', '.join(self._outputs)}"
            )
        tensors = {}
        for key, value in feeds.items():
            spec = self._inputs[key]
            if not isinstance(value, np.ndarray | np.generic):
                value = np.asarray(value, dtype=spec.dtype)
            elif value.dtype != spec.dtype:
                raise self._fail(f'input "{key}" is {value.dtype} but the signature declares {spec.dtype}', feeds)
            tensors[key] = tf.convert_to_tensor(value)
        try:
            result = self._call(**tensors)
        except (tf.errors.OpError, ValueError, TypeError) as error:
            raise self._fail(_first_line(error), feeds) from None
        return [result[k].numpy() for k in fetches]


def load_saved_model(
    path: str | os.PathLike, tags: Sequence[str] = (), *, param: str = "model.dir", jit: bool = False,
    threads: int | None = None,
) -> TensorflowModel:
    """Load a SavedModel directory with the MetaGraph of tag set ``tags`` and pick the signature to serve.

    ``jit`` compiles the signature with XLA. ``threads`` sizes TensorFlow's intra-op pool with
    :func:`set_threads` (process-wide; ignored with a warning once TF runs with another size).
    Empty ``tags`` means ``["serve"]``; several tags form one tag set that must match a MetaGraph
    exactly (order does not matter). The signature is ``serving_default`` when present, else the
    alphabetically first key (a :class:`UserWarning` names it). ``param`` names the parameter in errors.
    Every failure is a one-line :class:`~eotensor.errors.ModelError` naming ``param`` and the path.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise ModelError(f'{param}: "{path}" {what}; expected a TensorFlow SavedModel directory')
    if not any(os.path.isfile(os.path.join(path, n)) for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelError(
            f'{param}: "{path}" has no saved_model.pb or saved_model.pbtxt; expected a TensorFlow SavedModel directory'
        )
    set_threads(intra_op=threads)
    tf = import_tensorflow()
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    tags = tags or ["serve"]
    try:
        available = _read_tag_sets(path)
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds; one clear line for all
        raise ModelError(f'{param}: cannot read the SavedModel in "{path}": {_first_line(error)}') from None
    if not any(set(t) == set(tags) for t in available):
        listed = "; ".join(",".join(t) or "(empty)" for t in available) or "none"
        raise ModelError(
            f'{param}: "{path}" has no MetaGraph with tag set "{",".join(tags)}"; '
            f"its tag sets are: {listed} (choose one with model.tagsets)"
        )
    try:
        loaded = tf.saved_model.load(path, tags=tags)
    except Exception as error:  # noqa: BLE001 - TF raises many kinds; one clear line for all
        raise ModelError(f'{param}: cannot load the SavedModel "{path}": {_first_line(error)}') from None
    names = sorted(getattr(loaded, "signatures", None) or {})
    if not names:
        raise ModelError(
            f'{param}: "{path}" has no signatures to serve; inspect it with saved_model_cli show --dir {path} --all'
        )
    name = "serving_default" if "serving_default" in names else names[0]
    if name != "serving_default":
        warnings.warn(
            f'{param}: "{path}" has no "serving_default" signature; serving "{name}" '
            f"(signatures: {', '.join(names)})",
            stacklevel=2,
        )
    try:
        return TensorflowModel(path, loaded, name, tags, jit)
    except Exception as error:  # noqa: BLE001 - malformed signatures
        raise ModelError(f'{param}: cannot read signature "{name}" of "{path}": {_first_line(error)}') from None
