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
import threading
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eotensor.errors import MissingDependencyError, ModelError
from eotensor.runtimes.base import StaticSignature, TensorSpec, file_stamps

__all__ = ["TensorflowModel", "error_line", "import_tensorflow", "load_graph_session", "load_saved_model",
           "set_threads", "tensor_info_spec"]

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
_HEADERS = ("Graph execution error:", "Detected at node", "Node: '", "Original stack trace for",
            "<stack traces unavailable>")
"""Lines of TensorFlow's error boilerplate: where (a node name) rather than why (the message after them)."""
_LONGEST = 300
"""The longest line kept: TensorFlow may list every value of a batch."""


def _first_line(error: BaseException) -> str:
    """The informative first line of a TensorFlow error, without its graph-execution boilerplate."""
    text = str(getattr(error, "message", None) or error)
    for line in text.splitlines():
        if not line.strip() or line[0].isspace() or line.startswith(_HEADERS):
            continue
        line = _OP_SUFFIX.sub("", _FUNCTION_NODE.sub("", line)).strip()
        if line:
            return line if len(line) <= _LONGEST else line[:_LONGEST - 3] + "..."  # e.g. every label of a batch
    return type(error).__name__


def error_line(error: BaseException) -> str:
    """The informative first line of a TensorFlow error (for one-line errors raised elsewhere)."""
    return _first_line(error)


def _read_meta_graphs(path: str) -> list[Any]:
    """The MetaGraphDefs of the SavedModel, read from ``saved_model.pb`` (or ``.pbtxt``)."""
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
    return list(proto.meta_graphs)


def _open_meta_graph(path: str, tags: Sequence[str] | str, param: str) -> tuple[list[str], Any]:
    """Check that ``path`` is a SavedModel with a MetaGraph of tag set ``tags`` (empty: ``serve``); return the
    tags and that MetaGraphDef. Every failure is one :class:`~eotensor.errors.ModelError` line naming ``param``."""
    if not os.path.isdir(path):
        what = "is not a directory" if os.path.exists(path) else "does not exist"
        raise ModelError(f'{param}: "{path}" {what}; expected a TensorFlow SavedModel directory')
    if not any(os.path.isfile(os.path.join(path, n)) for n in ("saved_model.pb", "saved_model.pbtxt")):
        raise ModelError(
            f'{param}: "{path}" has no saved_model.pb or saved_model.pbtxt; expected a TensorFlow SavedModel directory'
        )
    import_tensorflow()
    tags = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    tags = tags or ["serve"]
    try:
        metas = _read_meta_graphs(path)
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds; one clear line for all
        raise ModelError(f'{param}: cannot read the SavedModel in "{path}": {_first_line(error)}') from None
    meta = next((m for m in metas if set(m.meta_info_def.tags) == set(tags)), None)
    if meta is None:
        listed = "; ".join(",".join(m.meta_info_def.tags) or "(empty)" for m in metas) or "none"
        raise ModelError(
            f'{param}: "{path}" has no MetaGraph with tag set "{",".join(tags)}"; '
            f"its tag sets are: {listed} (choose one with model.tagsets)"
        )
    return tags, meta


def _pick_signature(names: Sequence[str], path: str, param: str) -> str:
    """``serving_default`` if present, else the alphabetically first signature (with a warning), as OTBTF."""
    names = sorted(names)
    if not names:
        raise ModelError(
            f'{param}: "{path}" has no signatures to serve; inspect it with saved_model_cli show --dir {path} --all'
        )
    name = "serving_default" if "serving_default" in names else names[0]
    if name != "serving_default":
        warnings.warn(
            f'{param}: "{path}" has no "serving_default" signature; serving "{name}" '
            f"(signatures: {', '.join(names)})",
            stacklevel=3,
        )
    return name


def _spec(key: str, spec: Any) -> TensorSpec:
    """Convert a TF ``TensorSpec`` (or a symbolic tensor, for TF1 outputs) to eotensor's TensorSpec."""
    shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
    return TensorSpec(key, np.dtype(spec.dtype.as_numpy_dtype), shape)


def _describe(feeds: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {tuple(np.shape(v))} {np.asarray(v).dtype}" for k, v in sorted(feeds.items()))


def unfed_inputs(graph: Any, fetch: str, inputs: Mapping[str, str], fed: set[str]) -> list[str]:
    """The keys of ``inputs`` (tensor name -> signature key) outside ``fed`` (tensor names) that the tensor
    ``fetch`` depends on: a walk up a TF1 graph through data and control inputs, stopped at fed tensors. Serving
    prunes a graph to what it is fed; training checks its validation feeds with it."""
    seen, stack, needed = set(), [graph.get_tensor_by_name(fetch).op], set()
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        needed.update(inputs[t.name] for t in op.outputs if t.name in inputs and t.name not in fed)
        stack.extend(t.op for t in op.inputs if t.name not in fed)
        stack.extend(op.control_inputs)
    return sorted(needed)


class TensorflowModel(StaticSignature):
    """One signature of a loaded SavedModel, exposed through the :class:`~eotensor.runtimes.base.Model` protocol.

    ``inputs`` and ``outputs`` map the signature keys (sorted in byte order) to their declared dtype and
    static shape; :meth:`run` calls the signature's concrete function directly.

    A TF1 graph's signature often lists training-only inputs (labels, a learning rate, ``is_training``) that
    serving leaves unfed. OTBTF runs the graph, so it serves such a model as long as the outputs asked for do
    not depend on them; so does :meth:`run`: with inputs missing, it calls the graph pruned to the inputs fed
    and the outputs fetched (one pruned function per combination, made once), and an output that really needs
    a missing input is a one-line error naming both.
    """

    def __init__(self, path: str, loaded: Any, signature_name: str, tags: Sequence[str] = ("serve",),
                 jit: bool = False, signature_def: Any = None) -> None:
        """Wrap ``loaded.signatures[signature_name]``; ``loaded`` is kept so its variables stay alive.

        ``jit`` compiles the signature with XLA (once per input shape; tiles come in few shapes).
        ``signature_def`` (the SignatureDef proto) gives the graph's tensor names, used to prune TF1 graphs.
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
        prunable = signature_def is not None and callable(getattr(loaded, "prune", None))  # TF1 graphs only
        self._tensor_names: dict[str, str] = {}
        if prunable:
            self._tensor_names = {**{k: v.name for k, v in signature_def.inputs.items()},
                                  **{k: v.name for k, v in signature_def.outputs.items()}}
        self._pruned: dict[tuple[tuple[str, ...], tuple[str, ...]], Any] = {}
        self._prune_lock = threading.Lock()

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

    def _needs(self, fetch: str, fed: Sequence[str]) -> list[str]:
        """The signature inputs outside ``fed`` that output ``fetch`` depends on (a walk up the TF1 graph)."""
        inputs = {self._tensor_names[k]: k for k in self._inputs}
        return unfed_inputs(self._loaded.graph, self._tensor_names[fetch], inputs,
                            {self._tensor_names[k] for k in fed})

    def _pruned_call(self, fed: tuple[str, ...], fetches: tuple[str, ...]) -> Any:
        """The graph pruned to inputs ``fed`` (positional, in that order) and outputs ``fetches`` (a dict)."""
        with self._prune_lock:
            if (fed, fetches) in self._pruned:
                return self._pruned[fed, fetches]
            try:
                pruned = self._loaded.prune(feeds=[self._tensor_names[k] for k in fed],
                                            fetches={k: self._tensor_names[k] for k in fetches})
            except Exception:  # noqa: BLE001 - an output depends on an unfed input (op_selector.UnliftableError)
                needs = {k: self._needs(k, fed) for k in fetches}
                blocked = "; ".join(f'output "{k}" needs unfed input(s) {", ".join(v)}' for k, v in needs.items() if v)
                raise ModelError(
                    f"model.dir {self.path}: {blocked or 'the graph cannot be pruned to the inputs fed'} "
                    f"(fed: {', '.join(fed) or 'nothing'}); "
                    "feed it with a source or model.userplaceholders, or ask for other outputs") from None
            if self._jit:
                pruned = _tf.function(pruned, jit_compile=True)
            self._pruned[fed, fetches] = pruned
            return pruned

    def run(self, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]) -> list[np.ndarray]:
        """Call the signature on ``feeds`` (key -> array of the declared dtype) and return ``fetches`` in order.

        Every signature input must be fed, except, in a TF1 graph, inputs the fetched outputs do not depend
        on. Rank-0 arrays are fed as true scalars; Python scalars are converted to the declared dtype. Raises
        :class:`~eotensor.errors.ModelError` (one line) for unknown keys, missing inputs, a dtype other than
        the declared one, or any failure inside TensorFlow.
        """
        tf = _tf
        missing = [k for k in self._inputs if k not in feeds]
        unknown = [k for k in feeds if k not in self._inputs]
        if (missing and not self._tensor_names) or unknown:
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
        if missing:
            fed = tuple(sorted(tensors))
            call = self._pruned_call(fed, tuple(dict.fromkeys(fetches)))
            try:
                result = call(*(tensors[k] for k in fed))
            except (tf.errors.OpError, ValueError, TypeError) as error:
                raise self._fail(_first_line(error), feeds) from None
            return [result[k].numpy() for k in fetches]
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
    set_threads(intra_op=threads)
    tf = import_tensorflow()
    tags, meta = _open_meta_graph(path, tags, param)
    try:
        loaded = tf.saved_model.load(path, tags=tags)
    except Exception as error:  # noqa: BLE001 - TF raises many kinds; one clear line for all
        raise ModelError(f'{param}: cannot load the SavedModel "{path}": {_first_line(error)}') from None
    name = _pick_signature(list(getattr(loaded, "signatures", None) or {}), path, param)
    try:
        return TensorflowModel(path, loaded, name, tags, jit, meta.signature_def.get(name))
    except Exception as error:  # noqa: BLE001 - malformed signatures
        raise ModelError(f'{param}: cannot read signature "{name}" of "{path}": {_first_line(error)}') from None


def tensor_info_spec(key: str, info: Any) -> TensorSpec:
    """The :class:`~eotensor.runtimes.base.TensorSpec` of a SignatureDef's ``TensorInfo`` (its dtype and shape)."""
    tf = import_tensorflow()
    shape = tf.TensorShape(info.tensor_shape)
    return TensorSpec(key, np.dtype(tf.dtypes.as_dtype(info.dtype).as_numpy_dtype),
                      None if shape.rank is None else tuple(shape.as_list()))


def load_graph_session(path: str | os.PathLike, tags: Sequence[str] = (), *,
                       param: str = "model.dir") -> tuple[Any, Any, str]:
    """Load a TF1 SavedModel into its own ``tf.compat.v1`` Graph and Session, for training.

    Returns ``(session, meta_graph_def, signature name)``; the signature is chosen as :func:`load_saved_model`
    does. The variables are restored from the SavedModel. Errors are one-line ModelErrors naming ``param``.
    """
    path = os.fspath(path)
    tf = import_tensorflow()
    tags, meta = _open_meta_graph(path, tags, param)
    name = _pick_signature(list(meta.signature_def), path, param)
    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        with graph.as_default():
            meta = tf.compat.v1.saved_model.loader.load(session, tags, path)
    except Exception as error:  # noqa: BLE001 - TF raises many kinds; one clear line for all
        session.close()
        raise ModelError(f'{param}: cannot load the SavedModel "{path}" as a TF1 graph: {_first_line(error)}') \
            from None
    return session, meta, name
