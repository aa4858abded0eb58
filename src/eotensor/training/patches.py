"""The patches a trainer feeds: TensorflowModelTrain's sources read through the dataset readers, batch by batch.

A source is OTBTF's ``training.sourceN`` (or ``validation.sourceN``): an image list of patches images stacked on
bands (behaviour reference §1.2: every image of the list holds the same patches, band after band), a patch size
and the tensor it feeds or is compared with. :class:`PatchesData` checks the files against the parameters (one-line
errors naming ``training.sourceN.il``), then reads them with one
:class:`~eotensor.dataset.readers.PatchesImagesReader` (in memory or streaming) and hands out batches
``[B, psy, psx, C]`` in the files' dtype. Epochs are ``ceil(N / B)`` batches, so every sample is used once per
epoch (OTBTF's integer division dropped the remainder), shuffled by the dataset's seedable
:class:`~eotensor.dataset.datasets.RandomIterator`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from eotensor.dataset.datasets import RandomIterator
from eotensor.dataset.readers import PatchesImagesReader
from eotensor.errors import InputFileError, ParameterError
from eotensor.io.raster import open_raster

__all__ = ["PatchesData", "PatchSource", "batch_slices"]


@dataclass(frozen=True)
class PatchSource:
    """One source of patches: ``images`` stacked on bands, patches of ``patch_size`` (x, y), fed as ``name``."""

    param: str
    """The parameter group, for messages: ``training.source1``."""
    images: tuple[str, ...]
    patch_size: tuple[int, int]
    name: str
    """The tensor it feeds (a placeholder) or, in validation, the output it is compared with."""


def _patches_in(source: PatchSource) -> int:
    """Check every image of ``source`` against its patch size; the number of patches (the same in each)."""
    psx, psy = source.patch_size
    found = None
    for path in source.images:
        with open_raster(path, f"{source.param}.il") as ds:
            width, height = ds.width, ds.height
        if width != psx:
            raise InputFileError(f'{source.param}.il: "{path}" is {width} pixels wide but '
                                 f"{source.param}.patchsizex is {psx}; a patches image is one patch wide")
        if height % psy:
            raise InputFileError(f'{source.param}.il: "{path}" is {height} rows high, not a multiple of '
                                 f"{source.param}.patchsizey {psy}")
        if found is not None and height // psy != found[1]:
            raise InputFileError(f'{source.param}.il: "{path}" holds {height // psy} patches but "{found[0]}" holds '
                                 f"{found[1]}; the images of a source are stacked on bands and must match")
        found = found or (path, height // psy)
    if found is None:
        raise ParameterError(f"{source.param}.il: no patches image given")
    return found[1]


def batch_slices(size: int, batch_size: int) -> list[slice]:
    """``ceil(size / batch_size)`` consecutive slices covering ``0 .. size - 1``, the last one shorter if needed."""
    return [slice(start, min(start + batch_size, size)) for start in range(0, size, batch_size)]


class PatchesData:
    """Several sources of patches with the same number of samples, read in memory or streamed."""

    def __init__(self, sources: Sequence[PatchSource], streaming: bool = False) -> None:
        self.sources = list(sources)
        counts = [_patches_in(source) for source in self.sources]
        for source, count in zip(self.sources[1:], counts[1:]):
            if count != counts[0]:
                raise InputFileError(f"{source.param}.il holds {count} patches but {self.sources[0].param}.il holds "
                                     f"{counts[0]}; every source must hold the same number of patches")
        self.size = counts[0] if counts else 0
        """The number of samples."""
        self._keys = [[f"{s.param}.il" + (f"#{k + 1}" if k else "") for k in range(len(s.images))]
                      for s in self.sources]  # one reader key per image, named for the reader's messages
        files = {key: [path] for keys, s in zip(self._keys, self.sources) for key, path in zip(keys, s.images)}
        heights = {key: s.patch_size[1] for keys, s in zip(self._keys, self.sources) for key in keys}
        self.reader = PatchesImagesReader(files, use_streaming=streaming, patch_height=heights)
        """The dataset reader holding every image (one reader key per image)."""

    def bands(self, index: int) -> int:
        """The band count of source ``index`` (its images' bands, stacked)."""
        return sum(self.reader.patch_shapes[key][2] for key in self._keys[index])

    def batch(self, indices: Sequence[int] | np.ndarray) -> list[np.ndarray]:
        """Per source, the patches of samples ``indices``: ``[len(indices), psy, psx, bands]`` in the files' dtype."""
        indices = np.asarray(indices, np.int64)
        if self.reader.use_streaming:
            samples = [self.reader.get_sample(int(i)) for i in indices]

            def part(key: str) -> np.ndarray:
                return np.stack([sample[key] for sample in samples])
        else:
            def part(key: str) -> np.ndarray:
                return self.reader.patches_buffer[key][indices]
        return [np.concatenate([part(key) for key in keys], axis=-1) if len(keys) > 1 else part(keys[0])
                for keys in self._keys]

    def shuffler(self, seed: int | None) -> Iterator[np.ndarray]:
        """Endless epochs: each a random permutation of the samples (seeded: the same run gives the same order)."""
        iterator = RandomIterator(self.reader, seed)
        while True:
            yield np.fromiter(itertools.islice(iterator, self.size), np.int64, self.size)

    def batches(self, batch_size: int, order: np.ndarray | None = None) -> Iterator[tuple[int, list[np.ndarray]]]:
        """``(first sample, batch)`` for the ``ceil(N / B)`` batches of one pass, in ``order`` (default: in order)."""
        order = np.arange(self.size) if order is None else order
        for part in batch_slices(self.size, batch_size):
            yield part.start, self.batch(order[part])

    def close(self) -> None:
        """Close the files a streaming reader holds open."""
        self.reader.close()
