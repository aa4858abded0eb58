"""Training datasets, as OTBTF's Python package has them (``otbtf.dataset``): patches readers and datasets.

* :mod:`~eotensor.dataset.readers`: :class:`PatchesReaderBase`, :class:`PatchesImagesReader` (patches images as
  PatchesExtraction writes them, in memory or streaming, dtype kept);
* :mod:`~eotensor.dataset.datasets`: :class:`Buffer`, :class:`IteratorBase`, :class:`RandomIterator`,
  :class:`Dataset`, :class:`DatasetFromPatchesImages` (background mining, ``get_tf_dataset``);
* :mod:`~eotensor.dataset.tfrecords`: :class:`TFRecords`, OTBTF's TFRecords directories;
* :mod:`~eotensor.dataset.torch`: :class:`PatchesDataset`, the same samples for PyTorch's ``DataLoader``.

Names load on first use (PEP 562), from the module listed in ``_EXPORTS``; none of these modules imports
TensorFlow at import time (``torch`` imports PyTorch). Other modules of the package add their names to
``_EXPORTS`` and ``__all__``.
"""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PatchesReaderBase": "eotensor.dataset.readers",
    "PatchesImagesReader": "eotensor.dataset.readers",
    "Buffer": "eotensor.dataset.datasets",
    "IteratorBase": "eotensor.dataset.datasets",
    "RandomIterator": "eotensor.dataset.datasets",
    "Dataset": "eotensor.dataset.datasets",
    "DatasetFromPatchesImages": "eotensor.dataset.datasets",
    "TFRecords": "eotensor.dataset.tfrecords",
    "PatchesDataset": "eotensor.dataset.torch",
}

__all__ = [
    "Buffer", "Dataset", "DatasetFromPatchesImages", "IteratorBase", "PatchesImagesReader", "PatchesReaderBase",
    "RandomIterator", "TFRecords",
]  # PatchesDataset (needs torch, an extra) loads by name only, so that ``import *`` works without torch

if TYPE_CHECKING:
    from eotensor.dataset.datasets import Buffer, Dataset, DatasetFromPatchesImages, IteratorBase, RandomIterator
    from eotensor.dataset.readers import PatchesImagesReader, PatchesReaderBase
    from eotensor.dataset.tfrecords import TFRecords
    from eotensor.dataset.torch import PatchesDataset as PatchesDataset


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'eotensor.dataset' has no attribute {name!r}")
    value = getattr(_import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
