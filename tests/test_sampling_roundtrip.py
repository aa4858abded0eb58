"""PatchesSelection -> PatchesExtraction through the CLI, as users chain them: an image and a label raster
as two sources, the selected points' `id` as the field. Each label patch must be the label raster around
the grid candidate the point stands for, for odd and even patch sizes (even ones are centred on a corner)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from eotensor.apps.cli import main
from eotensor.io.vector import point_coordinates, read_vector
from eotensor.testing import write_raster


@pytest.mark.parametrize("psize", [15, 16])
def test_selected_points_extract_the_label_raster_around_them(tmp_path, psize):
    rng = np.random.default_rng(psize)
    image = rng.integers(1, 1000, size=(3, 97, 83)).astype(np.int16)
    image[:, 40:50, 10:30] = -1  # no-data: candidates whose patch meets it are not selected
    labels = (np.arange(97 * 83).reshape(97, 83) % 251).astype(np.uint8)
    image_path = write_raster(tmp_path / "image.tif", image)
    label_path = write_raster(tmp_path / "labels.tif", labels)
    selection = [str(tmp_path / f"{name}.gpkg") for name in ("train", "valid")]
    assert main(["PatchesSelection", "-in", image_path, "-nodata", "-1", "-grid.step", "9", "-grid.psize",
                 str(psize), "-outtrain", selection[0], "-outvalid", selection[1]]) == 0
    for points in selection:
        outs = [str(tmp_path / "p_image.tif"), str(tmp_path / "p_labels.tif")]
        assert main(["PatchesExtraction", "-source1.il", image_path, "-source1.out", outs[0], "int16",
                     "-source1.patchsizex", str(psize), "-source1.patchsizey", str(psize), "-source1.nodata", "-1",
                     "-source2.il", label_path, "-source2.out", outs[1], "uint8", "-source2.patchsizex",
                     str(psize), "-source2.patchsizey", str(psize), "-vec", points, "-field", "id"]) == 0
        layer = read_vector(points, "vec", "id")
        x, y, _ = point_coordinates(layer.geometries)
        with rasterio.open(outs[0]) as ds:
            image_patches = ds.read().reshape(3, -1, psize, psize)
        with rasterio.open(outs[1]) as ds:
            label_patches = ds.read(1).reshape(-1, psize, psize)
        assert len(label_patches) == len(x) > 0  # every selected point is extracted: the two apps agree
        # The pixel each point rounds to, half up: the candidate itself for an odd size; for an even size the
        # point is the candidate's lower-left corner, which rounds to the candidate's column and the row below,
        # so the patch is symmetric around the point (behaviour reference §5.3).
        shift = 0.0 if psize % 2 else 0.5
        cols = np.floor((x - 300000.0) / 10 + shift).astype(int)
        rows = np.floor((4900020.0 - y) / 10 - shift).astype(int) + (0 if psize % 2 else 1)
        for k, (r, c) in enumerate(zip(rows, cols)):
            r0, c0 = r - psize // 2, c - psize // 2
            np.testing.assert_array_equal(label_patches[k], labels[r0:r0 + psize, c0:c0 + psize])
            np.testing.assert_array_equal(image_patches[:, k], image[:, r0:r0 + psize, c0:c0 + psize])
            assert (image_patches[:, k] != -1).any(axis=0).all()


def test_one_file_for_two_outputs_is_refused_before_any_work(tmp_path, capsys):
    image = write_raster(tmp_path / "image.tif", np.ones((1, 40, 40), np.int16))
    same = str(tmp_path / "points.gpkg")
    assert main(["PatchesSelection", "-in", image, "-grid.step", "8", "-grid.psize", "8", "-strategy", "split",
                 "-outtrain", same, "-outvalid", same]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'outvalid: "' in err and "is also the output of -outtrain" in err
    out = str(tmp_path / "p.tif")
    assert main(["PatchesExtraction", "-source1.il", image, "-source1.out", out, "-source1.patchsizex", "3",
                 "-source1.patchsizey", "3", "-vec", same, "-field", "id", "-outlabels", out]) == 1
    assert "is also the output of -source1.out" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.tif"]
