"""Training datasets benchmark (issue 11): samples per second from patches images against the training step rate.

    python bench/datasets.py [--patches 4096] [--batch 32] [--steps 40]

Data (cached under ``bench/data``, which git ignores): 4 patches images of 64x64x4 int16 patches and their
64x64x1 uint8 label patches (``--patches`` in all). Measured in one process, after TensorFlow is loaded:

* a plain NumPy loop slicing the patches out of arrays already in memory (the ceiling);
* ``DatasetFromPatchesImages`` in memory and streaming: ``read_one_sample`` alone, and through
  ``get_tf_dataset`` (batches of ``--batch``);
* the training step rate of a small CNN (two 3x3 convolutions, 16 channels, softmax over 4 classes) on
  batches already in memory, in samples per second.

The goal (issue 11): the dataset never the bottleneck, i.e. its rate >= 3x the training step rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE.parent / "src"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def make_data(total: int, files: int = 4) -> dict[str, list[str]]:
    """Patches images of x (int16, 4 bands) and y (uint8, 1 band), ``total`` patches over ``files`` files."""
    from eotensor.testing import write_raster

    DATA.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    paths: dict[str, list[str]] = {"x": [], "y": []}
    per_file = total // files
    for k in range(files):
        for key, bands, dtype in (("x", 4, np.int16), ("y", 1, np.uint8)):
            path = DATA / f"patches_{key}_{total}_{k}.tif"
            if not path.exists():
                high = 10000 if key == "x" else 4
                write_raster(path, rng.integers(0, high, (bands, per_file * 64, 64)).astype(dtype))
            paths[key].append(str(path))
    return paths


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    paths = make_data(args.patches)

    from eotensor.dataset import DatasetFromPatchesImages, PatchesImagesReader
    from eotensor.runtimes.tensorflow import import_tensorflow

    tf = import_tensorflow()
    import keras

    rows = []
    reader = PatchesImagesReader(paths)
    arrays = {key: reader.patches_buffer[key] for key in paths}
    start = time.perf_counter()
    for index in np.random.default_rng(0).permutation(reader.get_size()):
        _ = {key: np.array(arrays[key][index]) for key in arrays}
    rows.append(("plain NumPy loop over arrays in memory", rate(reader.get_size(), time.perf_counter() - start)))

    n = min(args.patches, args.batch * args.steps * 2)
    for streaming in (False, True):
        label = "streaming" if streaming else "in memory"
        dataset = DatasetFromPatchesImages(filenames_dict=paths, use_streaming=streaming, seed=0)
        start = time.perf_counter()
        for _ in range(n):
            dataset.read_one_sample()
        rows.append((f"DatasetFromPatchesImages {label}: read_one_sample", rate(n, time.perf_counter() - start)))
        tf_ds = dataset.get_tf_dataset(args.batch, targets_keys=["y"])
        start = time.perf_counter()
        seen = 0
        for inputs, _ in tf_ds.take(n // args.batch):
            seen += int(inputs["x"].shape[0])
        elapsed = time.perf_counter() - start
        rows.append((f"DatasetFromPatchesImages {label}: get_tf_dataset batches", rate(seen, elapsed)))

    keras.utils.set_random_seed(0)
    x = keras.Input((64, 64, 4), name="x")
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(keras.ops.cast(x, "float32") * 1e-4)
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(h)
    model = keras.Model({"x": x}, {"y": keras.layers.Conv2D(4, 1, activation="softmax")(h)})
    model.compile(optimizer="adam", loss={"y": "sparse_categorical_crossentropy"})
    batch_x = tf.constant(arrays["x"][:args.batch])
    batch_y = tf.constant(arrays["y"][:args.batch])
    model.train_on_batch({"x": batch_x}, {"y": batch_y})  # trace once
    start = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch({"x": batch_x}, {"y": batch_y})
    train = rate(args.steps * args.batch, time.perf_counter() - start)
    rows.append(("training step rate of a small CNN (batches in memory)", train))

    print(f"\n{args.patches} patches of 64x64x4 int16 (+ 64x64x1 uint8 labels), batch {args.batch}, "
          f"{os.cpu_count()} cores\n")
    print("| measurement | samples/s |\n|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value:,.0f} |")
    slowest = min(v for label, v in rows if "get_tf_dataset" in label)
    print(f"\nslowest dataset path through tf.data / training rate: {slowest / train:.1f}x (goal >= 3x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
