"""Which runtime opens which model: a registry in the style of xarray's backends.

Each :class:`Runtime` declares the suffixes it opens (for messages), a cheap ``can_open(path)`` that never
imports its framework, the options it understands, and the pip extra that installs it. The first runtime
whose ``can_open`` accepts a path loads it, unless ``-model.runtime NAME`` forces one. Other packages add
runtimes through the ``eotensor.runtimes`` entry-point group (``name = "package.module:RUNTIME"``, a
:class:`Runtime`). Nothing here imports TensorFlow, ONNX Runtime or PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from eotensor.errors import EotensorError, MissingDependencyError, ModelError
from eotensor.io.atomic import error_text
from eotensor.runtimes.base import Model

ENTRY_POINT_GROUP = "eotensor.runtimes"
DEVICES = ("cpu", "cuda", "auto")
"""``-model.device`` values (``cuda:N`` picks a GPU); ``auto``: a GPU when the runtime has one, else the CPU."""


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model; each runtime uses the options it lists in :attr:`Runtime.options`."""

    tags: tuple[str, ...] = ()
    """SavedModel tag set (TensorFlow)."""
    jit: bool = False
    """Compile with XLA (TensorFlow)."""
    threads: int | None = None
    """The runtime's intra-op thread pool (``-optim.modelthreads``)."""
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (``-model.device``)."""

    def given(self) -> list[str]:
        """Names of the options that differ from their defaults."""
        defaults = LoadOptions()
        return [name for name in ("tags", "jit", "threads", "device")
                if getattr(self, name) != getattr(defaults, name)]


@dataclass(frozen=True)
class Runtime:
    """A model runtime as the registry sees it."""

    name: str
    """What ``-model.runtime`` calls it."""
    description: str
    """What it opens, for ``-help`` and errors (``ONNX graphs (.onnx)``)."""
    can_open: Callable[[str], bool]
    """Whether a path looks like one of its models; cheap, never imports the framework."""
    load: Callable[[str, LoadOptions, str], Model]
    """``load(path, options, param)``: the loaded model, or a one-line :class:`ModelError` naming ``param``."""
    options: frozenset[str] = field(default_factory=frozenset)
    """The :class:`LoadOptions` it applies; others given are ignored with a warning."""
    requires: str | None = None
    """The module it needs (``onnxruntime``); checked before loading."""
    extra: str | None = None
    """The pip extra that installs it (``onnx`` for ``pip install eotensor[onnx]``)."""


def _is_saved_model(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, name))
                                       for name in ("saved_model.pb", "saved_model.pbtxt"))


def _load_saved_model(path: str, options: LoadOptions, param: str) -> Model:
    from eotensor.runtimes.tensorflow import load_saved_model

    return load_saved_model(path, options.tags, param=param, jit=options.jit, threads=options.threads)


def _load_python(path: str, options: LoadOptions, param: str) -> Model:
    from eotensor.runtimes.pyfile import load_python_file

    return load_python_file(path, param)


def _load_onnx(path: str, options: LoadOptions, param: str) -> Model:
    from eotensor.runtimes.onnx import load_onnx

    return load_onnx(path, threads=options.threads, device=options.device, param=param)


def _load_keras(path: str, options: LoadOptions, param: str) -> Model:
    from eotensor.runtimes.keras import load_keras

    return load_keras(path, jit=options.jit, threads=options.threads, param=param)


def _load_torch(path: str, options: LoadOptions, param: str) -> Model:
    from eotensor.runtimes.torch import load_torch

    return load_torch(path, threads=options.threads, device=options.device, param=param)


BUILTIN: tuple[Runtime, ...] = (
    Runtime("python", "Python functions (file.py or file.py::function)",
            lambda path: path.partition("::")[0].lower().endswith(".py"), _load_python),
    Runtime("tensorflow", "TensorFlow SavedModel directories", _is_saved_model, _load_saved_model,
            frozenset({"tags", "jit", "threads"}), "tensorflow", "tf"),
    Runtime("keras", "Keras 3 models (.keras, TensorFlow backend)", lambda path: path.lower().endswith(".keras"),
            _load_keras, frozenset({"jit", "threads"}), "tensorflow", "tf"),
    Runtime("onnx", "ONNX graphs (.onnx)", lambda path: path.lower().endswith(".onnx"), _load_onnx,
            frozenset({"threads", "device"}), "onnxruntime", "onnx"),
    Runtime("torch", "PyTorch programs (.pt2 from torch.export, .pt TorchScript)",
            lambda path: path.lower().endswith((".pt2", ".pt")), _load_torch,
            frozenset({"threads", "device"}), "torch", "torch"),
)


def runtimes() -> dict[str, Runtime]:
    """Every runtime by name: the built-in ones, then those of the ``eotensor.runtimes`` entry points."""
    found = {runtime.name: runtime for runtime in BUILTIN}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        try:
            runtime = ep.load()
        except Exception as error:  # noqa: BLE001 - a broken plug-in must not hide the others
            warnings.warn(f"runtime {ep.name} ({ep.value}) cannot be loaded: {type(error).__name__}: {error}",
                          stacklevel=2)
            continue
        if isinstance(runtime, Runtime):
            found[ep.name] = runtime
        else:
            warnings.warn(f"runtime {ep.name} ({ep.value}) is a {type(runtime).__name__}, not an eotensor Runtime",
                          stacklevel=2)
    return found


def _listing(available: dict[str, Runtime]) -> str:
    return "; ".join(f"{r.name}: {r.description}" for r in available.values())


def find_runtime(path: str, name: str | None = None, param: str = "model.dir",
                 runtime_param: str = "model.runtime") -> Runtime:
    """The runtime named ``name``, else the first that can open ``path``; one-line errors listing them all."""
    available = runtimes()
    if name:
        if name not in available:
            raise ModelError(f'{runtime_param}: unknown runtime "{name}"; installed: {_listing(available)}')
        return available[name]
    for runtime in available.values():
        try:
            claims = runtime.can_open(path)
        except Exception as error:  # noqa: BLE001 - a plug-in's bug must not hide the others
            warnings.warn(f"runtime {runtime.name}: can_open failed on \"{path}\" ({error_text(error)})", stacklevel=2)
            continue
        if claims:
            return runtime
    if not os.path.exists(path.partition("::")[0]):
        raise ModelError(f'{param}: "{path}" does not exist; expected a model: {_listing(available)}')
    raise ModelError(f'{param}: no runtime opens "{path}"; expected one of: {_listing(available)}')


def load_model(
    model: str | os.PathLike | Model,
    *,
    runtime: str | None = None,
    tags: Sequence[str] = (),
    jit: bool = False,
    threads: int | None = None,
    device: str = "cpu",
    param: str = "model.dir",
) -> Model:
    """Load ``model`` with the runtime its path calls for (or ``runtime``); a loaded :class:`Model` passes through.

    ``tags`` picks a SavedModel's MetaGraph, ``jit`` compiles it with XLA, ``threads`` sizes the runtime's
    intra-op pool and ``device`` places it (``cpu``, ``cuda``, ``cuda:N``, ``auto``). Options the chosen runtime
    cannot use, and any option given with an already-loaded model, are ignored with a :class:`UserWarning`
    naming them. ``param`` names the model parameter in errors.
    """
    options = LoadOptions(tuple(tags), bool(jit), threads, str(device or "cpu").strip().lower())
    _check_device(options.device)
    if isinstance(model, Model):
        _warn_ignored(f"{param} is an already-loaded model", options.given())
        return model
    if not isinstance(model, (str, os.PathLike)):
        raise ModelError(
            f"{param}: {type(model).__name__} {model!r:.60} is not a model; expected a model file or directory "
            "(see -model.runtime) or an object with inputs, outputs and run(feeds, fetches)"
        )
    path = os.fspath(model)
    chosen = find_runtime(path, runtime, param)
    if chosen.requires and importlib.util.find_spec(chosen.requires) is None:
        extra = f"pip install 'eotensor[{chosen.extra}]'" if chosen.extra else f"pip install {chosen.requires}"
        raise MissingDependencyError(f'{param}: "{path}" needs the {chosen.name} runtime ({chosen.requires}), which '
                                     f"is not installed; {extra}")
    if options.device not in ("cpu", "auto") and "device" not in chosen.options:
        raise ModelError(f'model.device: "{options.device}" asked for, but the {chosen.name} runtime does not place '
                         "models on devices; use -model.device cpu or auto")
    ignored = [name for name in options.given() if name not in chosen.options and name != "device"]
    _warn_ignored(f'{param} "{path}" is served by the {chosen.name} runtime', ignored)
    try:
        loaded = chosen.load(path, options, param)
    except EotensorError:
        raise
    except Exception as error:  # noqa: BLE001 - a plug-in's failure is one line, never a traceback
        raise ModelError(f'{param}: the {chosen.name} runtime failed on "{path}" ({error_text(error)})') from None
    try:
        _ORIGINS[loaded] = (path, {"runtime": runtime, "tags": options.tags, "jit": options.jit,
                                   "threads": options.threads, "device": options.device})
    except TypeError:
        pass  # a plug-in's model that takes no weak reference: it has no origin, and is served locally
    return loaded


_ORIGINS: weakref.WeakKeyDictionary[Any, tuple[str, dict[str, Any]]] = weakref.WeakKeyDictionary()


def model_origin(model: Any) -> tuple[str, dict[str, Any]] | None:
    """The path and :func:`load_model` keywords ``model`` was loaded with, or None when it was not loaded from a
    path: what another process needs to load the same model (the Dask executor's recipes)."""
    try:
        return _ORIGINS.get(model)
    except TypeError:
        return None


def _check_device(device: str) -> None:
    base, _, index = device.partition(":")
    if base not in DEVICES or (":" in device and (base != "cuda" or not index.isdigit())):
        raise ModelError(f'model.device: "{device}" is not a device; expected cpu, cuda, cuda:N or auto')


def _warn_ignored(what: str, names: Sequence[str]) -> None:
    """Warn, in one line, about the options given that the runtime in use cannot apply."""
    if names:
        warnings.warn(f"{what}: {', '.join(names)} ignored (not options of this runtime)", stacklevel=3)
