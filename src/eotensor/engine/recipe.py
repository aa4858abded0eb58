"""The picklable recipe of a served result, and the engine it rebuilds once per process.

A :class:`~eotensor.engine.serve.ServeEngine` holds a loaded model, locks and open GDAL handles: it cannot
travel to another process. A :class:`ServeSpec` is what a Dask worker needs to build the same engine itself
(xarray's ``CachingFileManager`` idea): the model's path and load options, each source's image list,
receptive field, input name and no-data value, the fields, output names, user placeholders, background,
batch size and layout, plus the sizes and modification times of its files as served.
:func:`build_engine` keeps the engines it built, keyed by the whole spec, so each worker process loads a
model once; a worker whose files differ from the served ones (size or mtime) refuses to compute.
Only results served from files with a model given by path have a recipe.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.errors import InputFileError
from eotensor.geometry import Window
from eotensor.geometry.fields import Fields
from eotensor.io.atomic import is_virtual_path


@dataclass(frozen=True)
class SourceSpec:
    """One source as files: the image list as given (extended filenames kept), RF (x, y), input name, no-data."""

    images: tuple[str, ...]
    rfield: tuple[int, int]
    placeholder: str
    nodata: float | None


@dataclass(frozen=True)
class ServeSpec:
    """Everything a process needs to rebuild a served result's engine (hashable and picklable)."""

    model: str
    """The model's path (a SavedModel directory, a model file, ``file.py[::function]``), made absolute."""
    load: tuple[tuple[str, Any], ...]
    """Keywords of :func:`~eotensor.runtimes.load_model` (runtime, tags, jit, threads, device)."""
    sources: tuple[SourceSpec, ...]
    fields: Fields
    output_names: tuple[str, ...]
    placeholders: tuple[tuple[str, bytes, str, tuple[int, ...]], ...]
    """User placeholders as (name, bytes, dtype, shape), so the spec stays hashable."""
    background: float
    batch_size: int
    layout: str | None
    stamps: tuple[Any, ...]
    """The model's and every source file's size and mtime when the result was served (see :func:`stamps`)."""


def _absolute(path: str) -> str:
    """``path`` made absolute unless it is a GDAL virtual path, so a worker with another cwd finds it."""
    return path if is_virtual_path(path) else os.path.abspath(path)


def make_spec(model: str | os.PathLike, load: Mapping[str, Any], sources: Sequence[Any], fields: Fields,
              output_names: Sequence[str], placeholders: Mapping[str, np.ndarray], background: float,
              batch_size: int, layout: str | None, model_stamp: str | None = None) -> ServeSpec:
    """The recipe of a result served from ``sources`` (:class:`~eotensor.engine.serve.Source` over files);
    ``model_stamp``: the model files' stamp when the served model was loaded (default: now)."""
    return ServeSpec(
        model=_absolute(os.fspath(model)),
        load=tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(load.items())),
        sources=tuple(SourceSpec(tuple(_absolute(p) for p in s.raster.specs), tuple(s.rfield), s.placeholder,
                                 s.nodata) for s in sources),
        fields=fields, output_names=tuple(output_names),
        placeholders=tuple((k, a.tobytes(), a.dtype.str, a.shape) for k, a in
                           ((k, np.ascontiguousarray(v)) for k, v in placeholders.items())),
        background=float(background), batch_size=int(batch_size), layout=layout,
        stamps=stamps(os.fspath(model), [s.raster for s in sources], model_stamp),
    )


_ENGINES: OrderedDict[str, Any] = OrderedDict()
_LOCK = threading.Lock()
KEEP_ENGINES = 4
"""Engines kept per process (each holds a loaded model)."""


def build_engine(spec: ServeSpec) -> Any:
    """The :class:`~eotensor.engine.serve.ServeEngine` of ``spec``, built once per process and kept.

    Refuses (one line) when the files this process sees are not the ones the result was served from.
    """
    key = repr(spec)  # not the spec itself: a NaN background or no-data value never equals itself
    with _LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _build(spec)
            seen = stamps(spec.model, [s.raster for s in engine.sources])
            if seen != spec.stamps:
                raise InputFileError(f'"{_changed(spec, seen)}" is not the file the result was served from (its size '
                                     f"or modification time differs on worker host {os.uname().nodename}): serve "
                                     "again once the files are settled")
            _ENGINES[key] = engine
            while len(_ENGINES) > KEEP_ENGINES:
                _ENGINES.popitem(last=False)
        else:
            _ENGINES.move_to_end(key)
        return engine


def stamps(model: str, rasters: Sequence[Any], model_stamp: str | None = None) -> tuple[Any, ...]:
    """The model's files' (``model_stamp``, else now) and the sources' images' sizes and mtimes (not devices or
    inodes: another host mounting the same files sees other ones); the images' as they were when opened."""
    from eotensor.runtimes.base import file_stamps

    images = tuple(None if image.stamp is None else image.stamp[2:] for r in rasters for image in r.images)
    return file_stamps(model.split("::")[0]) if model_stamp is None else model_stamp, images


def _changed(spec: ServeSpec, seen: tuple[Any, ...]) -> str:
    """The first file whose stamp in ``seen`` differs from the spec's: the model, else a source image."""
    if seen[0] != spec.stamps[0]:
        return spec.model
    names = [image for source in spec.sources for image in source.images]  # one stamp per image, in order
    return next(name for name, now, then in zip(names, seen[1], spec.stamps[1]) if now != then)


WORKER_THREADS_ENV = "EOTENSOR_WORKER_MODEL_THREADS"
"""Set by the local clusters eotensor starts (cores ÷ workers): a worker's model threads when the user gave none."""


def _build(spec: ServeSpec) -> Any:
    from eotensor.engine.serve import ServeEngine, Source
    from eotensor.io.raster import RasterSource
    from eotensor.runtimes import load_model
    from eotensor.runtimes.registry import find_runtime

    load = dict(spec.load)
    share = os.environ.get(WORKER_THREADS_ENV, "")
    if load.get("threads") is None and share.isdigit():
        if "threads" in find_runtime(spec.model.split("::")[0], load.get("runtime")).options:
            # N local workers each with a runtime sized for every core (ONNX Runtime spins its threads) ran
            # 1.3-1.8 x slower than one process
            load["threads"] = int(share)
    model = load_model(spec.model, **load)
    sources = [Source(RasterSource(list(s.images), f"source{k}.il"), s.rfield, s.placeholder, s.nodata)
               for k, s in enumerate(spec.sources, start=1)]
    placeholders = {name: np.frombuffer(data, dtype).reshape(shape) for name, data, dtype, shape in spec.placeholders}
    return ServeEngine(model, sources, spec.fields, list(spec.output_names), placeholders, spec.background,
                       spec.batch_size, spec.layout)


def compute_tile(spec: ServeSpec, window: Window) -> np.ndarray:
    """The pixels of ``window`` computed by this process's engine for ``spec`` (what a Dask task runs)."""
    return build_engine(spec).compute(window)
