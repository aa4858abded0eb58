"""Patches readers: OTBTF's ``PatchesReaderBase`` and ``PatchesImagesReader`` (otbtf.dataset, §9.2).

A *patches image* is what PatchesExtraction writes: a raster one patch wide whose patches are stacked along
rows, patch k in rows ``[k * patch_height, (k + 1) * patch_height)``. A reader serves sample ``i`` as a dict
``{source: array (patch_height, patch_width, bands)}`` (plus the scalars of its file), in memory or read on the
fly (streaming), with the file's dtype kept: an int16 patches image gives int16 samples.

Pixels are read with rasterio directly, not through :class:`~eotensor.io.raster.RasterSource`, because that
reads float32 (the engine's working type) while OTBTF's readers keep the stored dtype; files are opened with
:func:`~eotensor.io.raster.open_raster` for its one-line errors. Beyond OTBTF: rectangular patches
(``patch_height``), checks with one-line errors where OTBTF would silently truncate, a streaming maximum right
for negative data, and statistics that need no scalar-free dataset.
"""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from rasterio.errors import RasterioError
from rasterio.windows import Window as RioWindow

from eotensor.errors import InputFileError, ParameterError
from eotensor.io.atomic import error_text
from eotensor.io.raster import open_raster

__all__ = ["PatchesImagesReader", "PatchesReaderBase"]

_STATS_BLOCK_BYTES = 32 * 2**20
"""About how many bytes of patches one statistics step reads at once in streaming mode."""


class PatchesReaderBase(ABC):
    """What a :class:`~eotensor.dataset.Dataset` reads samples from: ``get_sample``, ``get_stats``, ``get_size``."""

    @abstractmethod
    def get_sample(self, index: int) -> dict[str, Any]:
        """Sample ``index`` (``0 <= index < get_size()``), e.g. a dict of arrays."""

    @abstractmethod
    def get_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """``{source: {"min", "max", "mean", "std"}}``, one value per band."""

    @abstractmethod
    def get_size(self) -> int:
        """The number of samples."""


def _files_dict(filenames_dict: Any, filename_dict: Any) -> dict[str, list[str]]:
    """OTBTF's ``filenames_dict`` or the talk's ``filename_dict`` (either, not both), checked and copied."""
    if filenames_dict is not None and filename_dict is not None:
        raise ParameterError("filenames_dict: given twice (as filenames_dict and filename_dict); give one")
    files = filenames_dict if filenames_dict is not None else filename_dict
    if not isinstance(files, Mapping) or not files:
        raise ParameterError(f"filenames_dict: expected {{source: [patches images]}} with at least one source, "
                             f"got {files!r}")
    checked = {}
    for key, paths in files.items():
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        paths = [os.fspath(p) for p in paths]
        if not paths:
            raise ParameterError(f'filenames_dict["{key}"]: no patches image given')
        checked[str(key)] = paths
    return checked


def _patch_heights(patch_height: int | Mapping[str, int] | None, keys: Sequence[str]) -> dict[str, int | None]:
    """Per source, the patch height asked for (None: square patches, the height is the width)."""
    heights = dict(patch_height) if isinstance(patch_height, Mapping) else dict.fromkeys(keys, patch_height)
    unknown = sorted(set(heights) - set(keys))
    if unknown:
        raise ParameterError(f"patch_height: {', '.join(unknown)} is not a source (sources: {', '.join(keys)})")
    for key, height in heights.items():
        if height is not None and (isinstance(height, bool) or not isinstance(height, (int, np.integer))
                                   or height < 1):
            raise ParameterError(f'patch_height: "{key}": expected a positive integer, got {height!r}')
    return {key: heights.get(key) for key in keys}


class _Moments:
    """Per-band min, max, mean and population variance of blocks of patches, merged block by block (Chan et
    al.), so that streaming and in-memory statistics agree to rounding whatever the block sizes."""

    def __init__(self) -> None:
        self.count = 0
        self.min: np.ndarray | None = None
        self.max: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add(self, block: np.ndarray) -> None:
        """Merge ``block`` (..., bands) in."""
        values = block.reshape(-1, block.shape[-1])
        n = values.shape[0]
        if n == 0:
            return
        low, high = values.min(axis=0), values.max(axis=0)
        mean = values.mean(axis=0, dtype=np.float64)
        m2 = np.square(values - mean).sum(axis=0)
        if self.count == 0:
            self.min, self.max, self.mean, self.m2, self.count = low, high, mean, m2, n
            return
        total = self.count + n
        delta = mean - self.mean
        self.m2 = self.m2 + m2 + np.square(delta) * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.min, self.max, self.count = np.minimum(self.min, low), np.maximum(self.max, high), total

    def stats(self) -> dict[str, np.ndarray]:
        """OTBTF's ``{"min", "max", "mean", "std"}``: std is the population one, ``sqrt(E[x²] - E[x]²)``."""
        return {"min": self.min, "max": self.max, "mean": self.mean, "std": np.sqrt(self.m2 / self.count)}


class PatchesImagesReader(PatchesReaderBase):
    """Samples from patches images: several sources, several files per source, in memory or streaming.

    ``filenames_dict = {source: [patches image 1, ..., patches image K]}``: every source lists the same number K
    of files and file i of every source holds the same number of patches (sample ``i`` of the dataset is patch
    ``i`` of every source). Within a source, files share their width, band count and dtype. ``scalar_dict =
    {key: [v_1, ..., v_K]}`` gives one value per file to each of its patches (as NumPy arrays).

    Patches are square (height = width, OTBTF's assumption) unless ``patch_height`` gives their height, for every
    source (an int) or per source (a dict). An image height that is not a multiple of the patch height is an error.
    With ``use_streaming`` each sample is read from disk when asked for; otherwise every patch is read up front.
    ``filename_dict`` is accepted as an alias of ``filenames_dict`` (the spelling of OTBTF's talk).
    """

    def __init__(
        self,
        filenames_dict: Mapping[str, Sequence[str | os.PathLike]] | None = None,
        use_streaming: bool = False,
        scalar_dict: Mapping[str, Sequence[Any]] | None = None,
        patch_height: int | Mapping[str, int] | None = None,
        *,
        filename_dict: Mapping[str, Sequence[str | os.PathLike]] | None = None,
    ) -> None:
        self.filenames = _files_dict(filenames_dict, filename_dict)
        self.use_streaming = bool(use_streaming)
        keys = list(self.filenames)
        # one array per key: one dtype for all its files (1 and 2.5 are both float64, never 2.5 truncated to 2)
        self.scalar_dict = {str(key): np.asarray(list(values)) for key, values in (scalar_dict or {}).items()}
        clash = sorted(set(self.scalar_dict) & set(keys))
        if clash:
            raise ParameterError(f"scalar_dict: {', '.join(clash)} is also a source of filenames_dict; "
                                 "give scalars their own keys")
        counts = {**{k: len(v) for k, v in self.filenames.items()}, **{k: len(v) for k, v in self.scalar_dict.items()}}
        first = keys[0]
        for key, count in counts.items():
            if count != counts[first]:
                where = "scalar_dict" if key in self.scalar_dict else "filenames_dict"
                raise ParameterError(f'{where}["{key}"]: {count} value(s) but source "{first}" has '
                                     f"{counts[first]} patches image(s); every source and scalar lists one per file")
        heights = _patch_heights(patch_height, keys)
        self.patch_shapes: dict[str, tuple[int, int, int]] = {}
        """Per source, the ``(height, width, bands)`` of its patches."""
        self.dtypes: dict[str, np.dtype] = {}
        """Per source, the dtype of its patches (the files')."""
        sizes: dict[str, list[int]] = {}
        for key, paths in self.filenames.items():
            sizes[key] = [self._check_file(key, k, path, heights[key]) for k, path in enumerate(paths)]
        for key in keys[1:]:
            for k, (n, n0) in enumerate(zip(sizes[key], sizes[first])):
                if n != n0:
                    raise InputFileError(
                        f'filenames_dict["{key}"][{k}]: "{self.filenames[key][k]}" holds {n} patches but '
                        f'"{self.filenames[first][k]}" of source "{first}" holds {n0}; sources must have the same '
                        "number of patches, file by file")
        self.ds_sizes = sizes[first]
        """Patches per file (the same for every source)."""
        self.size = sum(self.ds_sizes)
        self._starts = np.cumsum([0, *self.ds_sizes])
        self._handles: dict[str, list[Any]] | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.patches_buffer: dict[str, np.ndarray] = {}
        """Without streaming: per source, every patch, ``(size, height, width, bands)``."""
        if not self.use_streaming:
            try:
                self.patches_buffer = {key: np.concatenate([self._read(key, k, 0, n) for k, n in enumerate(
                    self.ds_sizes)]) for key in keys}
            finally:
                self.close()

    def _check_file(self, key: str, k: int, path: str, patch_height: int | None) -> int:
        """Open file ``k`` of source ``key``, check it against the source's first file; its number of patches."""
        param = f'filenames_dict["{key}"][{k}]'
        with open_raster(path, param) as ds:
            width, height, dtypes = ds.width, ds.height, set(ds.dtypes)
            count = ds.count
        if len(dtypes) != 1:
            raise InputFileError(f'{param}: "{path}" has bands of different types ({", ".join(sorted(dtypes))}); '
                                 "a patches image has one pixel type")
        try:
            dtype = np.dtype(dtypes.pop())
        except TypeError:
            raise InputFileError(f'{param}: "{path}" has pixels of type {ds.dtypes[0]}, which NumPy cannot hold') \
                from None
        psy = patch_height or width
        if height % psy:
            raise InputFileError(f'{param}: "{path}" is {height} rows high, not a multiple of the patch height {psy}'
                                 + ("" if patch_height else " (its width: patches are square unless patch_height "
                                    "is given)"))
        shape = (psy, width, count)
        if key not in self.patch_shapes:
            self.patch_shapes[key], self.dtypes[key] = shape, dtype
        elif (shape, dtype) != (self.patch_shapes[key], self.dtypes[key]):
            h0, w0, c0 = self.patch_shapes[key]
            raise InputFileError(
                f'{param}: "{path}" has {width}-pixel wide {count}-band {dtype} patches but the first file of source '
                f'"{key}" has {w0}-pixel wide {c0}-band {self.dtypes[key]} ones; all files of a source must match')
        return height // psy

    def _datasets(self, key: str) -> list[Any]:
        """The open files of source ``key`` (opened on first use, again in a forked process)."""
        if self._handles is None or self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        if key not in self._handles:
            handles = []
            try:
                for k, path in enumerate(self.filenames[key]):
                    handles.append(open_raster(path, f'filenames_dict["{key}"][{k}]'))
            except BaseException:
                for ds in handles:
                    ds.close()
                raise
            self._handles[key] = handles
        return self._handles[key]

    def _read(self, key: str, k: int, first: int, n: int) -> np.ndarray:
        """Patches ``first .. first + n - 1`` of file ``k`` of source ``key``, as ``(n, height, width, bands)``."""
        psy, width, count = self.patch_shapes[key]
        out = np.empty((n, psy, width, count), self.dtypes[key])
        with self._lock:
            ds = self._datasets(key)[k]
            try:  # GDAL writes straight into the pixel-interleaved array, through a band-first view
                ds.read(out=out.reshape(n * psy, width, count).transpose(2, 0, 1),
                        window=RioWindow(0, first * psy, width, n * psy))
            except (RasterioError, OSError) as error:
                path = self.filenames[key][k]
                raise InputFileError(f'filenames_dict["{key}"][{k}]: cannot read "{path}" ({error_text(error)})') \
                    from None
        return out

    def _locate(self, index: int) -> tuple[int, int]:
        """``(file, patch in the file)`` of sample ``index``."""
        if not 0 <= index < self.size:
            raise IndexError(f"sample index {index} is out of range: the reader has {self.size} samples")
        k = int(np.searchsorted(self._starts, index, side="right")) - 1
        return k, int(index - self._starts[k])

    def get_sample(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index``: ``{source: array (height, width, bands), scalar key: its file's value}``."""
        k, offset = self._locate(int(index))
        sample = {key: values[k] for key, values in self.scalar_dict.items()}
        for key in self.filenames:
            sample[key] = self.patches_buffer[key][index] if not self.use_streaming else self._read(key, k, offset,
                                                                                                     1)[0]
        return sample

    def _blocks(self, key: str) -> Iterator[np.ndarray]:
        """Every patch of source ``key``, a bounded block at a time, the same blocks in memory as streaming (so
        both give the same statistics, bit for bit)."""
        psy, width, count = self.patch_shapes[key]
        step = max(1, _STATS_BLOCK_BYTES // (psy * width * count * self.dtypes[key].itemsize))
        for k, n in enumerate(self.ds_sizes):
            for first in range(0, n, step):
                last = min(first + step, n)
                if self.use_streaming:
                    yield self._read(key, k, first, last - first)
                else:
                    yield self.patches_buffer[key][self._starts[k] + first:self._starts[k] + last]

    def get_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Per source and band: ``{"min", "max", "mean", "std"}`` over every pixel of every patch.

        OTBTF's formulas (population std); min and max keep the dtype, mean and std are float64, accumulated block
        by block (bounded memory, in memory as streaming). Scalars have no statistics (OTBTF's streaming path
        failed on them).
        """
        stats = {}
        for key in self.filenames:
            moments = _Moments()
            for block in self._blocks(key):
                moments.add(block)
            stats[key] = moments.stats()
        return stats

    def get_size(self) -> int:
        """The number of samples (patches per source)."""
        return self.size

    def close(self) -> None:
        """Close the open files (streaming reads reopen them when needed)."""
        with self._lock:
            for handles in (self._handles or {}).values():
                for ds in handles:
                    ds.close()
            self._handles = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without its open files and lock (e.g. for worker processes); they are made again there."""
        state = self.__dict__.copy()
        state.update(_handles=None, _lock=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
