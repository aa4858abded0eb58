"""A PyTorch dataset over the patches readers: the same samples as the TensorFlow path, for ``DataLoader``.

``PatchesDataset`` is a ``torch.utils.data.Dataset`` (map-style): ``dataset[i]`` is sample ``i`` of a
:class:`~eotensor.dataset.readers.PatchesReaderBase` as a dict of tensors, channels last as OTBTF's patches
images hold them, or channels first (``channels_first=True``) as most PyTorch networks expect. Shuffling and
batching are the ``DataLoader``'s; a streaming reader is pickled into each worker process and reopens its
files there, so ``num_workers > 0`` reads in parallel. ``torch`` is imported here only
(``pip install 'eotensor[torch]'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from eotensor.dataset.readers import PatchesImagesReader, PatchesReaderBase
from eotensor.errors import MissingDependencyError


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependencyError("eotensor.dataset.torch needs torch: pip install 'eotensor[torch]'") from None
    return torch


_Base: Any = _torch().utils.data.Dataset


class PatchesDataset(_Base):
    """Samples of a patches reader as dicts of tensors (``channels_first``: ``(bands, height, width)``).

    Build it from a reader, or from patches images as :class:`PatchesImagesReader` takes them
    (:meth:`from_patches_images`). Scalars become 0-d tensors. Integer types NumPy and torch share are kept
    (int16 stays int16); uint16 and uint32, which torch cannot hold, widen to int32 and int64.
    """

    def __init__(self, reader: PatchesReaderBase, channels_first: bool = False) -> None:
        self.reader = reader
        self.channels_first = bool(channels_first)

    @classmethod
    def from_patches_images(cls, filenames_dict: Mapping[str, Any] | None = None, use_streaming: bool = True,
                            scalar_dict: Mapping[str, Any] | None = None, patch_height: Any = None,
                            channels_first: bool = False, *, filename_dict: Mapping[str, Any] | None = None
                            ) -> PatchesDataset:
        """A dataset over patches images (streaming by default: each worker reads what it needs)."""
        reader = PatchesImagesReader(filenames_dict, use_streaming=use_streaming, scalar_dict=scalar_dict,
                                     patch_height=patch_height, filename_dict=filename_dict)
        return cls(reader, channels_first)

    def __len__(self) -> int:
        return self.reader.get_size()

    def __getitem__(self, index: int) -> dict[str, Any]:
        torch = _torch()
        if not 0 <= int(index) < len(self):
            raise IndexError(f"sample {index} of a dataset of {len(self)}")
        sample = {}
        for key, value in self.reader.get_sample(int(index)).items():
            array = np.asarray(value)  # 0-d for scalars: they stay 0-d tensors
            if array.dtype == np.uint16:
                array = array.astype(np.int32)
            elif array.dtype == np.uint32:
                array = array.astype(np.int64)
            if self.channels_first and array.ndim == 3:
                array = array.transpose(2, 0, 1)
            # a copy: in-memory samples are views of the reader's buffer, which an in-place transform would alter
            sample[key] = torch.from_numpy(np.array(array, copy=True, order="C"))
        return sample
