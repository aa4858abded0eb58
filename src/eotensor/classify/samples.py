"""Training and validation samples: the pixels under labelled geometries, how many per class, and their values.

Which pixels: a polygon's pixels whose centre lies inside it, a point's pixel (half-up rounding) and the pixels
a line touches (within its envelope's pixels), by the rules and the scan-line sweep of
:func:`eotensor.sampling.polygons.feature_spans` — those OTB's sampling (``PolygonClassStatistics``,
``SampleSelection``, hence ``TrainImagesClassifier``) takes; a pixel under two features is a candidate of each.
Geometries in another CRS are reprojected to the image's.

How many (OTB 8.1's TrainImagesClassifier, checked against ``otbcli_TrainImagesClassifier``): with
``sample.bm 1`` (the default) every class gets as many samples as the smallest class has pixels, and ``mt`` and
``mv`` are not used; with ``sample.bm 0`` the per-class total is capped from ``mt``, ``mv`` and ``vtr``
(:func:`sample_sizes`). Of each class's samples, ``floor(n x vtr)`` go to validation (vtr as OTB's float32), the
rest to training. With separate validation vectors (``io.valid``) each set is sized on its own. Samples are drawn
without replacement by NumPy's generator seeded with ``rand`` (OTB's periodic sampler differs in which pixels,
not in how many).

Values: only the selected pixels are read, tile by tile of the image's own plan (for a served model, the tiles
it computes), each tile reading just the box around its selected pixels, through the result's executor.

Memory: the drawn samples are held in memory (samples x features float32), as scikit-learn fits from memory;
OTB spills them to a file, but a spilled set would be read back whole by the fit anyway. So the need is
estimated before anything is read (:func:`check_sample_memory`: the values, and the copies a fit may make)
and a set that would not fit in the memory available (:func:`available_memory`: the system's, the container's
cgroup limit, ``ulimit -v``, whichever is smallest) is one clear error naming ``sample.mt``/``sample.mv``,
rather than a swap storm or an out-of-memory kill after the whole image was read.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.errors import InputFileError, ParameterError
from eotensor.geometry import Window

__all__ = ["Candidates", "SampleSet", "available_memory", "check_sample_memory", "memory_limit", "memory_readings",
           "read_pixels", "sample_sizes", "split_samples", "usable_memory"]

FIT_COPIES = 3
"""Bytes of memory per byte of drawn sample values, at most: the values themselves and a float64 copy (SVC,
k-NN and others convert float32 samples to double before fitting)."""


@dataclass(frozen=True)
class Candidates:
    """Every pixel under a labelled feature, as runs along rows: image index, class, row, first and last column + 1."""

    image: np.ndarray
    label: np.ndarray
    row: np.ndarray
    start: np.ndarray
    stop: np.ndarray

    @classmethod
    def from_vectors(cls, vectors: Sequence[str], grids: Sequence[Any], field: str, param: str,
                     field_param: str = "sample.vfn", ram_mb: float | None = None,
                     names: Sequence[str] = ()) -> Candidates:
        """The candidates of ``vectors`` (one per grid, or one for all) on ``grids`` (one per image), labelled
        by the integer field ``field``; features with a null label are left out."""
        from eotensor.io import vector
        from eotensor.sampling.polygons import feature_spans

        if len(vectors) not in (1, len(grids)):
            raise ParameterError(f"{param}: {len(vectors)} vector file(s) for {len(grids)} image(s); expected one per "
                                 "image, or one for all")
        parts = []
        for k, grid in enumerate(grids):
            path = vectors[k if len(vectors) > 1 else 0]
            layer = vector.read_vector(path, param, field, field_param)
            labels, present = vector.integer_values(layer, field_param)
            image_name = names[k] if k < len(names) else f"image {k + 1}"
            geometries = vector.reproject_geometries(layer.geometries, vector.target_crs(layer, grid.crs, image_name),
                                                     grid.crs)
            geometries = np.where(present, geometries, None)
            feature, row, start, stop = feature_spans(geometries, grid, ram_mb)
            parts.append((np.full(len(row), k, np.int64), labels[feature], row, start, stop))
        return cls(*(np.concatenate(arrays) for arrays in zip(*parts)))

    @property
    def per_class(self) -> dict[int, int]:
        """Class -> candidate pixels, classes ascending."""
        classes, index = np.unique(self.label, return_inverse=True)
        counts = np.bincount(index, weights=self.stop - self.start, minlength=len(classes)).astype(np.int64)
        return {int(c): int(n) for c, n in zip(classes, counts) if n > 0}

    def draw(self, sizes: dict[int, int], rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """For each class of ``sizes`` (ascending), ``sizes[c]`` of its pixels drawn without replacement, in drawn
        order: ``(image, row, col)`` arrays per class."""
        drawn = []
        for label in sorted(sizes):
            runs = np.flatnonzero(self.label == label)
            lengths = (self.stop - self.start)[runs]
            ends = np.cumsum(lengths)
            index = rng.choice(int(ends[-1]), size=sizes[label], replace=False) if len(runs) else np.zeros(0, np.int64)
            run = np.searchsorted(ends, index, side="right")
            offset = index - (ends[run] - lengths[run])
            picked = runs[run]
            drawn.append((self.image[picked], self.row[picked], self.start[picked] + offset))
        return drawn


def _floor_product(n: int, ratio: float) -> int:
    """``(long)(n * ratio)`` in double precision, the ratio a float32 (OTB's float parameter)."""
    return int(float(n) * float(np.float32(ratio)))


def sample_sizes(available: dict[int, int], mt: int, mv: int, bm: bool, vtr: float,
                 validation: dict[int, int] | None = None) -> tuple[dict[int, int], dict[int, int] | None]:
    """How many samples to draw per class: ``(training or total, validation)`` by OTB 8.1's rules.

    Without separate validation vectors (``validation`` None) the first map is each class's total, split later by
    :func:`split_samples`, and the second is None. With them, the first map sizes the training set (from
    ``available``) and the second the validation set (from ``validation``).
    """
    def capped(counts: dict[int, int], maximum: int) -> dict[int, int]:
        if bm:
            smallest = min(counts.values())
            return {c: smallest for c in counts}
        return {c: n if maximum < 0 else min(n, maximum) for c, n in counts.items()}

    ratio = float(np.float32(vtr))
    if validation is None:
        total = -1
        if not bm:
            if mt > -1 and ratio < 0.99999:
                total = int(mt / (1.0 - ratio))
            if mv > -1 and ratio > 0.00001:
                total = min(total, int(mv / ratio)) if total > -1 else int(mv / ratio)
        return capped(available, total), None
    train_max, valid_max = mt, mv
    if mt > -1 and mv <= -1 and ratio < 0.99999:
        valid_max = int(mt * ratio / (1.0 - ratio))
    if mt <= -1 and mv > -1 and ratio > 0.00001:
        train_max = int(mv * (1.0 - ratio) / ratio)
    return capped(available, train_max), capped(validation, valid_max)


def split_samples(n: int, vtr: float) -> tuple[int, int]:
    """``(training, validation)`` counts of ``n`` samples of one class: ``floor(n x vtr)`` for validation."""
    valid = _floor_product(n, vtr)
    return n - valid, valid


NO_LIMIT = 2**60
"""A memory limit this large or more is none: cgroup v1 writes "unlimited" as 2**63 less a page."""

CGROUP_FILES = (  # (limit, usage, statistics, the statistic of reclaimable page cache): v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes",
     "/sys/fs/cgroup/memory/memory.stat", "total_inactive_file"),
)


def memory_limit(value: str | int | None) -> int | None:
    """A limit as read (cgroup's text, ``resource.getrlimit``'s number) in bytes, or None for none: absent,
    ``max``, negative (``RLIM_INFINITY``) or at least :data:`NO_LIMIT`."""
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        return None  # "max", or unreadable
    return number if 0 <= number < NO_LIMIT else None


def usable_memory(available: int | None, cgroup_limit: int | None = None, cgroup_usage: int | None = None,
                  address_limit: int | None = None, address_used: int | None = None) -> int | None:
    """Bytes a new allocation can take: the smallest of the system's available memory (``available``), the
    cgroup's limit less its usage (a container's share: past it the kernel kills the process, whatever the host
    has free) and the address-space limit (``ulimit -v``) less the process's virtual size; each is left out when
    unknown or unlimited (None). None when none is known."""
    bounds = [available] if available is not None else []
    if cgroup_limit is not None and cgroup_usage is not None:
        bounds.append(max(0, cgroup_limit - cgroup_usage))
    if address_limit is not None and address_used is not None:
        bounds.append(max(0, address_limit - address_used))
    return min(bounds) if bounds else None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as stream:
            return stream.read()
    except (OSError, ValueError):
        return None


def memory_readings() -> dict[str, int | None]:
    """What :func:`usable_memory` takes, read from this system: ``/proc/meminfo``'s MemAvailable (free memory plus
    what the page cache can give back), the cgroup's ``memory.max``/``memory.current`` (v2) or
    ``memory.limit_in_bytes``/``memory.usage_in_bytes`` (v1), its usage less the page cache it can reclaim
    (``inactive_file``, as MemAvailable counts it), ``RLIMIT_AS`` and the process's virtual size. Each value
    that cannot be read is None."""
    readings: dict[str, int | None] = dict.fromkeys(
        ("available", "cgroup_limit", "cgroup_usage", "address_limit", "address_used"))
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:") and len(line.split()) > 1 and line.split()[1].isdigit():
            readings["available"] = int(line.split()[1]) * 1024
    if readings["available"] is None:
        try:
            readings["available"] = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    for limit_file, usage_file, stat_file, reclaimable in CGROUP_FILES:
        usage = memory_limit(_read(usage_file))
        if usage is None:
            continue
        for line in (_read(stat_file) or "").splitlines():
            key, _, value = line.partition(" ")
            if key == reclaimable and value.strip().isdigit():
                usage = max(0, usage - int(value))
        readings["cgroup_limit"], readings["cgroup_usage"] = memory_limit(_read(limit_file)), usage
        break
    try:
        import resource

        readings["address_limit"] = memory_limit(resource.getrlimit(resource.RLIMIT_AS)[0])
        statm = (_read("/proc/self/statm") or "").split()
        readings["address_used"] = int(statm[0]) * os.sysconf("SC_PAGE_SIZE") if statm else None
    except (ImportError, ValueError, OSError):
        pass
    return readings


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation here (:func:`usable_memory` of :func:`memory_readings`),
    or None where it cannot be known."""
    return usable_memory(**memory_readings())


def check_sample_memory(count: int, bands: int, param: str = "sample.mt", available: int | None = None) -> int:
    """The bytes ``count`` samples of ``bands`` features take with the fit's copies (:data:`FIT_COPIES`); a
    one-line error naming ``param`` when that is more than the memory available (``available``: default
    :func:`available_memory`)."""
    need = int(count) * int(bands) * 4 * FIT_COPIES
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise ParameterError(f"{param}: {count} samples of {bands} feature(s) need about {need / 2**30:.1f} GiB to "
                             f"read and fit (samples x features float32, and the copies a fit makes) but "
                             f"{available / 2**30:.1f} GiB of memory are available; expected a lower per-class "
                             "maximum (sample.mt, sample.mv with sample.bm 0), or fewer features")
    return need


@dataclass(frozen=True)
class SampleSet:
    """Samples: feature values (n, features) float32 and their labels (n,) int64."""

    features: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def per_class(self) -> dict[int, int]:
        """Class -> samples."""
        classes, counts = np.unique(self.labels, return_counts=True)
        return {int(c): int(n) for c, n in zip(classes, counts)}


def read_pixels(raster: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The values (n, bands) float32 of ``raster`` (a :class:`~eotensor.lazy.LazyRaster`) at the pixels
    ``(rows[i], cols[i])``: each tile of its plan that holds some computes only the box around them, in the
    result's executor; a tile holding none is never read."""
    out = np.empty((len(rows), raster.count), dtype=np.float32)
    if not len(rows):
        return out
    plan = raster.plan()
    tile_rows, tile_cols = plan.tile.rows, plan.tile.cols
    key = (rows // tile_rows) * (-(-raster.grid.width // tile_cols)) + cols // tile_cols
    order = np.argsort(key, kind="stable")
    keys, first = np.unique(key[order], return_index=True)
    groups = np.split(order, first[1:])
    windows, members = [], {}
    for group in groups:
        r, c = rows[group], cols[group]
        window = Window(int(r.min()), int(c.min()), int(r.max() - r.min() + 1), int(c.max() - c.min() + 1))
        windows.append(window)
        members[window] = group

    def sink(values: np.ndarray, window: Window) -> None:
        group = members[window]
        out[group] = values[:, rows[group] - window.row, cols[group] - window.col].T

    raster.executor(raster.compute, windows, sink, workers=raster.workers)
    raster._after_run()
    return out


def gather(rasters: Sequence[Any], drawn: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
           labels: Sequence[int]) -> list[SampleSet]:
    """The values of drawn pixels (:meth:`Candidates.draw`), one :class:`SampleSet` per class, each image's pixels
    read in one pass."""
    image = np.concatenate([d[0] for d in drawn])
    rows = np.concatenate([d[1] for d in drawn])
    cols = np.concatenate([d[2] for d in drawn])
    if len(rasters) == 1:  # no second copy of the values
        values = read_pixels(rasters[0], rows, cols)
    else:
        values = np.empty((len(rows), rasters[0].count), dtype=np.float32)
        for k, raster in enumerate(rasters):
            mine = np.flatnonzero(image == k)
            values[mine] = read_pixels(raster, rows[mine], cols[mine])
    bounds = np.cumsum([0] + [len(d[0]) for d in drawn])
    return [SampleSet(values[a:b], np.full(b - a, label, np.int64))
            for a, b, label in zip(bounds[:-1], bounds[1:], labels)]


def concat(sets: Sequence[SampleSet], bands: int) -> SampleSet:
    """One :class:`SampleSet` of ``sets``."""
    if not sets:
        return SampleSet(np.zeros((0, bands), np.float32), np.zeros(0, np.int64))
    return SampleSet(np.concatenate([s.features for s in sets]), np.concatenate([s.labels for s in sets]))


def check_classes(available: dict[int, int], param: str, vectors: Sequence[str | os.PathLike]) -> None:
    """A one-line error when no pixel or a single class lies under the geometries."""
    names = ", ".join(f'"{os.fspath(v)}"' for v in vectors)
    if not available:
        raise InputFileError(f"{param}: no pixel centre of the image(s) lies under a labelled geometry of {names}; "
                             "expected polygons, lines or points over the image (same CRS, or one that reprojects)")
    if len(available) < 2:
        label = next(iter(available))
        raise InputFileError(f"{param}: the geometries of {names} give samples of one class only ({label}); expected "
                             "at least two classes")
