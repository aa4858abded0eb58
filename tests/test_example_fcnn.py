"""examples/fcnn end to end on a small generated scene: selection, extraction, training, export, serving, scores.

One run of the workflow (256 x 256 pixels, 3 epochs of 24 batches, seeded) is shared by the checks: every file it writes on
the right grid and with the right layout, the cropped output found in the exported SavedModel, the served map
registered on the label raster (and equal there to the model run on the image window it stands for), and
a map that finds the buildings far better than chance.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np
import pytest
import rasterio
from affine import Affine

pytestmark = pytest.mark.tf

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "fcnn"
SIZE = 256


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The example's modules (imported as the script imports them) and one run of the workflow."""
    sys.path.insert(0, str(EXAMPLE))
    try:
        import workflow

        outdir = tmp_path_factory.mktemp("fcnn")
        yield workflow, workflow.run(str(outdir), size=SIZE, epochs=3, seed=0, step=16, batch_size=4)
    finally:
        sys.path.remove(str(EXAMPLE))


@pytest.fixture(scope="module")
def exported(run):
    import eotensor as eot

    return eot.load_model(run[1].paths["model"])


def test_the_scene_and_the_patches_images_are_written_on_their_grids(run):
    workflow, result = run
    with rasterio.open(result.paths["image"]) as image, rasterio.open(result.paths["labels"]) as labels:
        assert (image.count, image.dtypes[0], image.width, image.height) == (4, "int16", SIZE, SIZE)
        assert (labels.count, labels.dtypes[0]) == (1, "uint8")
        assert labels.transform == image.transform and labels.crs == image.crs and image.crs.to_epsg() == 32631
        mask, pixels, res = labels.read(1), image.read(), image.res
    assert set(np.unique(mask)) == {0, 1} and 0.05 < mask.mean() < 0.4
    assert pixels[:, mask == 1].mean() > pixels[:, mask == 0].mean() + 500  # roofs are brighter
    assert result.counts["train"] > result.counts["valid"] > 8
    for group in ("train", "valid"):
        n = result.counts[group]
        for key, bands, dtype in (("xs", 4, "int16"), ("labels", 1, "uint8")):
            with rasterio.open(result.paths[f"{group}_{key}"]) as patches:
                assert (patches.width, patches.height, patches.count, patches.dtypes[0]) == (64, 64 * n, bands,
                                                                                             dtype)
                assert patches.crs is None and patches.res == res  # OTBTF's patches images
        with rasterio.open(result.paths[f"{group}_labels"]) as patches:
            assert set(np.unique(patches.read(1))) == {0, 1}


def test_the_exported_model_has_the_cropped_output_that_serving_asks_for(run, exported):
    workflow, _ = run
    model = exported
    assert list(model.inputs) == ["input_xs"] and model.inputs["input_xs"].dtype == np.int16
    assert "predictions_crop16" in model.outputs and "predictions" in model.outputs
    assert workflow.served_output_name(workflow.CROP) == "predictions_crop16"


def test_the_map_is_registered_on_the_label_raster(run, exported):
    workflow, result = run
    crop = workflow.CROP
    with rasterio.open(result.paths["map"]) as served, rasterio.open(result.paths["labels"]) as labels:
        assert served.crs == labels.crs and served.res == labels.res
        # RF 64, EF 32: the map starts crop pixels in (OTBTF's geometry), exactly on the label raster's grid
        assert served.transform == labels.transform @ Affine.translation(crop, crop)
        assert (served.width, served.height, served.count) == (SIZE - 2 * crop, SIZE - 2 * crop, 2)
        probabilities = served.read()
    with rasterio.open(result.paths["image"]) as image:
        window = image.read(window=((0, 64), (0, 64))).transpose(1, 2, 0)[None]
    assert result.offset == (crop, crop)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, atol=1e-5)
    # the map's first 32 x 32 block is the model's output on the image's first 64 x 64 window
    (expected,) = exported.run({"input_xs": window}, ["predictions_crop16"])
    np.testing.assert_allclose(probabilities[:, :32, :32], expected[0].transpose(2, 0, 1), atol=1e-5)


def test_the_served_map_finds_the_buildings(run):
    _, result = run
    s = result.scores
    assert result.history["loss"][-1] < result.history["loss"][0]
    assert s["precision"] > 0.6 and s["recall"] > 0.6 and s["iou"] > 0.5
    assert s["accuracy"] > s["baseline_accuracy"] + 0.05  # "other" everywhere is not enough
    assert set(result.validation) >= {"loss", "precision", "recall"}


def test_the_training_datasets_know_their_number_of_batches(run):
    """Keras sizes its epochs from the dataset's cardinality (unknown, it warns that the input "ran out of data")."""
    from fcnn_model import INPUT_PATCHES_KEY, LABELS_PATCHES_KEY, dataset_preprocessing_fn

    from eotensor.dataset import DatasetFromPatchesImages

    _, result = run
    files = {INPUT_PATCHES_KEY: [result.paths["valid_xs"]], LABELS_PATCHES_KEY: [result.paths["valid_labels"]]}
    n = result.counts["valid"]
    dataset = DatasetFromPatchesImages(filenames_dict=files, seed=0)
    assert int(dataset.tf_dataset.cardinality()) == n
    for drop, batches in ((True, n // 5), (False, -(-n // 5))):
        tf_ds = dataset.get_tf_dataset(5, drop_remainder=drop, preprocessing_fn=dataset_preprocessing_fn,
                                       targets_keys=["predictions"])
        assert int(tf_ds.cardinality()) == batches == sum(1 for _ in tf_ds)
