"""OTBTF's FCNN building-segmentation workflow, end to end on eotensor, on a generated scene (no download).

    scene + labels -> PatchesSelection (split: train / valid points) -> PatchesExtraction (64 x 64 patches of the
    image and of the labels) -> DatasetFromPatchesImages -> FCNNModel.fit -> model.export() (SavedModel)
    -> TensorflowModelServe (fully convolutional, RF 64, EF 32, output predictions_crop16) -> map -> scores

Run ``python examples/fcnn/workflow.py --size 2048 --epochs 3 --outdir example-output`` (what ``make example``
runs; without ``--epochs`` it trains 5 epochs). Every step prints its time; the last lines give the served map's
precision, recall and accuracy against the label raster. :func:`run` does the same from Python and returns the numbers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import rasterio
from fcnn_model import (  # the example's modules: next to this script, on the path when it runs
    INPUT_PATCHES_KEY,
    LABELS_PATCHES_KEY,
    TARGET_NAME,
    FCNNModel,
    dataset_preprocessing_fn,
    served_output_name,
)
from scene import make_scene

import eotensor as eot
from eotensor.apps.cli import main as cli_main
from eotensor.runtimes.tensorflow import import_tensorflow

PATCH = 64
"""Training patch size, which is also the receptive field given to TensorflowModelServe."""
CROP = 16
"""Pixels dropped on each side of the served output: EF = PATCH - 2 * CROP = 32 (a multiple of 16)."""


class WorkflowError(Exception):
    """A step that cannot go on (too few patches, a failed app, a map off the label grid): one line to print."""


@dataclass
class Result:
    """What :func:`run` made and measured."""

    paths: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[float]] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    offset: tuple[float, float] = (0.0, 0.0)
    """Where the map's first pixel lies in the label raster, in label pixels (column, row)."""


@contextmanager
def _timed(result: Result, step: str, say: Callable[[str], None]) -> Iterator[None]:
    start = time.perf_counter()
    yield
    result.timings[step] = time.perf_counter() - start
    say(f"[{step}] {result.timings[step]:.1f} s")


def select_and_extract(image: str, labels: str, outdir: str, step: int, result: Result) -> dict[str, dict]:
    """Grid points split train / valid, then 64 x 64 patches of the image (int16) and the labels (uint8) around
    them; return ``{"train": filenames_dict, "valid": filenames_dict}`` for :class:`DatasetFromPatchesImages`."""
    points = {group: os.path.join(outdir, f"points_{group}.gpkg") for group in ("train", "valid")}
    eot.PatchesSelection(in_=image, grid_step=step, grid_psize=PATCH, strategy="split",
                         outtrain=points["train"], outvalid=points["valid"])
    files = {}
    for group, vec in points.items():
        xs, ys = (os.path.join(outdir, f"{group}_{name}_patches.tif") for name in ("xs", "labels"))
        extraction = eot.PatchesExtraction(
            source1_il=image, source1_out=(xs, "int16"), source1_patchsizex=PATCH, source1_patchsizey=PATCH,
            source2_il=labels, source2_out=(ys, "uint8"), source2_patchsizex=PATCH, source2_patchsizey=PATCH,
            vec=vec, field="id")
        result.counts[group] = len(extraction.selection)
        result.paths.update({f"{group}_points": vec, f"{group}_xs": xs, f"{group}_labels": ys})
        files[group] = {INPUT_PATCHES_KEY: [xs], LABELS_PATCHES_KEY: [ys]}
    return files


def train(files: dict[str, dict], epochs: int, batch_size: int, learning_rate: float, seed: int,
          verbose: int) -> tuple[FCNNModel, dict[str, list[float]], dict[str, float]]:
    """Train :class:`FCNNModel` on the train patches (categorical cross-entropy, Adam, precision and recall of
    the building class), evaluate it on the valid patches; return the model, the history and the evaluation."""
    import_tensorflow()  # quietly, before Keras imports TensorFlow
    import keras

    from eotensor.dataset import DatasetFromPatchesImages

    keras.utils.set_random_seed(seed)
    datasets = {group: DatasetFromPatchesImages(filenames_dict=names, seed=seed).get_tf_dataset(
        batch_size=batch_size, preprocessing_fn=dataset_preprocessing_fn, targets_keys=[TARGET_NAME])
        for group, names in files.items()}
    model = FCNNModel(datasets["train"].element_spec)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={TARGET_NAME: keras.losses.CategoricalCrossentropy()},
        metrics={TARGET_NAME: [keras.metrics.Precision(class_id=1, name="precision"),
                               keras.metrics.Recall(class_id=1, name="recall")]},
    )
    history = model.fit(datasets["train"], epochs=epochs, validation_data=datasets["valid"],
                        shuffle=False, verbose=verbose)  # the datasets shuffle
    evaluation = model.evaluate(datasets["valid"], verbose=0, return_dict=True)
    return model, history.history, evaluation


def export(model: FCNNModel, path: str) -> str:
    """``model.export()`` as a SavedModel into a new directory next to ``path``, then moved onto ``path``."""
    parent = os.path.dirname(os.path.abspath(path))
    staging = tempfile.mkdtemp(prefix=".fcnn-export-", dir=parent)
    try:
        model.export(os.path.join(staging, "model"), verbose=False)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(os.path.join(staging, "model"), path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def serve_argv(image: str, model_dir: str, out: str, tile: int = 512) -> list[str]:
    """TensorflowModelServe's command line: fully convolutional, RF = the patch size, EF = RF - 2 * crop, the
    cropped output, float probabilities (band 1: other, band 2: building)."""
    rf, ef = str(PATCH), str(PATCH - 2 * CROP)
    return ["TensorflowModelServe", "-source1.il", image, "-source1.rfieldx", rf, "-source1.rfieldy", rf,
            "-model.dir", model_dir, "-model.fullyconv", "on", "-output.names", served_output_name(CROP),
            "-output.efieldx", ef, "-output.efieldy", ef, "-optim.tilesizex", str(tile), "-optim.tilesizey",
            str(tile), "-out", out, "float"]


def score(map_path: str, labels_path: str) -> tuple[dict[str, float], tuple[float, float]]:
    """Precision, recall, IoU and accuracy of the map's building class (probability band 2 > band 1) against the
    label raster under it, and the baseline accuracy of saying "other" everywhere; also where the map starts
    in the label raster (column, row, in label pixels). The two rasters must share CRS and spacing."""
    with rasterio.open(map_path) as served, rasterio.open(labels_path) as truth:
        if served.crs != truth.crs or served.res != truth.res:
            raise WorkflowError(f"{map_path}: not on the grid of {labels_path} ({served.crs}, {served.res} vs "
                             f"{truth.crs}, {truth.res})")
        col, row = ~truth.transform @ (served.transform.c, served.transform.f)
        if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
            raise WorkflowError(f"{map_path}: its pixels are not aligned on those of {labels_path} (starts at column "
                             f"{col}, row {row})")
        col, row = round(col), round(row)
        window = ((row, row + served.height), (col, col + served.width))
        reference = truth.read(1, window=window) == 1
        probabilities = served.read()
    predicted = probabilities[1] > probabilities[0]
    tp = int(np.sum(predicted & reference))
    fp, fn = int(np.sum(predicted & ~reference)), int(np.sum(~predicted & reference))
    scores = {
        "precision": tp / max(tp + fp, 1), "recall": tp / max(tp + fn, 1), "iou": tp / max(tp + fp + fn, 1),
        "accuracy": float(np.mean(predicted == reference)), "building_fraction": float(np.mean(reference)),
        "baseline_accuracy": float(np.mean(~reference)),
    }
    return scores, (float(col), float(row))


def run(outdir: str, size: int = 2048, epochs: int = 5, seed: int = 0, step: int = 32, batch_size: int = 8,
        learning_rate: float = 1e-2, verbose: int = 0, say: Callable[[str], None] = lambda _: None) -> Result:
    """The whole workflow in ``outdir`` (created; its files replaced); returns the paths, counts, timings,
    training history, validation metrics, map scores and the map's offset in the label raster."""
    os.makedirs(outdir, exist_ok=True)
    result = Result()
    path = result.paths
    path["image"], path["labels"] = (os.path.join(outdir, name) for name in ("scene.tif", "labels.tif"))
    path["model"], path["map"] = os.path.join(outdir, "savedmodel"), os.path.join(outdir, "map.tif")
    with _timed(result, f"scene {size} x {size}", say):
        make_scene(path["image"], path["labels"], size=size, seed=seed)
    with _timed(result, "PatchesSelection + PatchesExtraction", say):
        files = select_and_extract(path["image"], path["labels"], outdir, step, result)
    say(f"patches: {result.counts['train']} train, {result.counts['valid']} valid ({PATCH} x {PATCH})")
    if min(result.counts.values()) < batch_size:
        raise WorkflowError(f"{min(result.counts.values())} patches cannot fill a batch of {batch_size}: use a larger "
                         "scene, a smaller grid step or a smaller batch")
    with _timed(result, f"training, {epochs} epoch(s)", say):
        model, result.history, result.validation = train(files, epochs, batch_size, learning_rate, seed, verbose)
    say("validation: " + ", ".join(f"{k} {v:.3f}" for k, v in result.validation.items()))
    with _timed(result, "export", say):
        export(model, path["model"])
    argv = serve_argv(path["image"], path["model"], path["map"])
    say("eotensor " + " ".join(argv))
    with _timed(result, "TensorflowModelServe", say):
        if cli_main(argv) != 0:
            raise WorkflowError("TensorflowModelServe failed (see the message above)")
    result.scores, result.offset = score(path["map"], path["labels"])
    s = result.scores
    say(f"map vs labels: precision {s['precision']:.3f}, recall {s['recall']:.3f}, IoU {s['iou']:.3f}, accuracy "
        f"{s['accuracy']:.3f} (all 'other': {s['baseline_accuracy']:.3f}); the map starts at label pixel "
        f"({result.offset[0]:g}, {result.offset[1]:g})")
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--size``, ``--epochs``, ``--outdir``, ``--seed`` (and ``--step``, ``--batch-size``,
    ``--learning-rate``)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="scene width and height in pixels (default 2048)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--outdir", default="fcnn-output", help="output directory (default fcnn-output)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scene, the datasets and the weights")
    parser.add_argument("--step", type=int, default=32, help="PatchesSelection grid step in pixels (default 32)")
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size (default 8)")
    parser.add_argument("--learning-rate", type=float, default=1e-2, help="Adam's learning rate (default 1e-2)")
    args = parser.parse_args(argv)
    if args.size < 2 * PATCH:
        parser.error(f"--size: at least {2 * PATCH} pixels")
    start = time.perf_counter()
    try:
        run(args.outdir, size=args.size, epochs=args.epochs, seed=args.seed, step=args.step, batch_size=args.batch_size,
            learning_rate=args.learning_rate, verbose=2, say=print)
    except (WorkflowError, eot.EotensorError) as error:
        print(f"workflow.py: {error}", file=sys.stderr)
        return 1
    print(f"total {time.perf_counter() - start:.1f} s; outputs in {os.path.abspath(args.outdir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
