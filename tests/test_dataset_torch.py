"""The PyTorch dataset over patches images: the reader's samples as tensors, through a DataLoader with workers."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from eotensor.dataset.torch import PatchesDataset  # noqa: E402
from eotensor.testing import write_raster  # noqa: E402


def _write_patches(path, patches):
    """Patches (n, h, w, bands) stacked along rows, as PatchesExtraction writes them."""
    n, h, w, c = patches.shape
    return write_raster(path, patches.transpose(3, 0, 1, 2).reshape(c, n * h, w))


def test_dataloader_with_two_worker_processes_visits_every_sample_once(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(-500, 500, (13, 8, 8, 4)).astype(np.int16)
    y = rng.integers(0, 5, (13, 8, 8, 1)).astype(np.uint8)
    dataset = PatchesDataset.from_patches_images({"x": [_write_patches(tmp_path / "x.tif", x)],
                                                  "y": [_write_patches(tmp_path / "y.tif", y)]},
                                                 channels_first=True)
    assert len(dataset) == 13
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    seen_x, seen_y = [], []
    for batch in loader:
        assert batch["x"].dtype == torch.int16 and batch["x"].shape[1:] == (4, 8, 8)
        seen_x.append(batch["x"].numpy())
        seen_y.append(batch["y"].numpy())
    got_x, got_y = np.concatenate(seen_x), np.concatenate(seen_y)
    order = [int(np.flatnonzero((x.transpose(0, 3, 1, 2) == s).all(axis=(1, 2, 3)))[0]) for s in got_x]
    assert sorted(order) == list(range(13))
    np.testing.assert_array_equal(got_y, y.transpose(0, 3, 1, 2)[order])


def test_channels_last_by_default_and_unsigned_types_widen(tmp_path):
    patches = np.arange(2 * 3 * 3 * 2, dtype=np.uint16).reshape(2, 3, 3, 2) * 1000
    dataset = PatchesDataset.from_patches_images(filename_dict={"x": _write_patches(tmp_path / "u.tif", patches)},
                                                 use_streaming=False)
    sample = dataset[1]["x"]
    assert sample.dtype == torch.int32 and tuple(sample.shape) == (3, 3, 2)
    np.testing.assert_array_equal(sample.numpy(), patches[1])
    with pytest.raises(IndexError):
        dataset[2]


def test_scalars_are_0d_with_one_dtype_and_samples_are_copies(tmp_path):
    patches = np.arange(2 * 3 * 3 * 1, dtype=np.int16).reshape(2, 3, 3, 1)
    files = {"x": [_write_patches(tmp_path / "a.tif", patches[:1]), _write_patches(tmp_path / "b.tif", patches[1:])]}
    dataset = PatchesDataset.from_patches_images(files, use_streaming=False, scalar_dict={"s": [1, 2.5]})
    first, second = dataset[0], dataset[1]
    assert first["s"].shape == () and first["s"].dtype == second["s"].dtype == torch.float64
    assert float(second["s"]) == 2.5  # not truncated to the first file's integer type
    first["x"] += 1000  # an in-place transform must not reach the reader's buffer
    np.testing.assert_array_equal(dataset[0]["x"].numpy(), patches[0])
