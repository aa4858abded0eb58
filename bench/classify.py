"""Classification benchmark (issue 12): a forest on deep features, streamed against a naive script; raw bands
against OTB's TrainImagesClassifier + ImageClassifier.

    python bench/classify.py [--size 4096] [--trees 100] [--skip-otb] [--skip-raw]

Generated data (``bench/data/classify-<size>``): a 4-band scene of three classes in vertical stripes, training
polygons inside each, and a pixel-wise "deep" model (a ``.py`` file: 16 features, a fixed 4 -> 16 linear mix with
ReLU). A 100-tree forest (max depth 5, OTB's default) is trained once on the features. Then, each in its own
subprocess under ``/usr/bin/time -v`` (wall time, peak RSS):

* ``streamed``: ``ImageClassifierFromDeepFeatures`` — features computed and classified tile by tile, never stored;
* ``naive``: the features served to a float32 GeoTIFF, read whole, ``predict``, the map written with rasterio;
* ``train eotensor`` / ``train otb``: TrainImagesClassifier on the raw bands (same polygons, 100 trees, depth 5,
  min 10, all samples of the smallest class), then ``classify eotensor`` / ``classify otb``: ImageClassifier.

Both deep maps must be identical. Each run reports wall time, CPU time (user + system: what a shared machine's
load inflates least) and the 1-minute load average when it ended. The machine may be shared: numbers are
indicative, and only ratios from one run compare.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import measure  # noqa: E402 - one copy of the /usr/bin/time measurement

MODEL = '''
import numpy as np
OUTPUTS = ["features"]
_W = np.random.default_rng(0).normal(0, 1, (4, 16)).astype(np.float32) / 100
def model(x):
    return {"features": np.maximum(x @ _W, 0)}
'''

SERVE = {"source1.rfieldx": 1, "source1.rfieldy": 1, "model.fullyconv": True, "output.names": "features"}

STREAMED = '''
import sys
from eotensor.apps.image_classifier_from_deep_features import ImageClassifierFromDeepFeatures
image, model, forest, out = sys.argv[1:5]
ImageClassifierFromDeepFeatures({"source1.il": image, "deepmodel.dir": model, "deepmodel.fullyconv": True,
                                 "output.names": "features", "model": forest, "out": out})
'''

NAIVE = '''
import sys
import numpy as np
import rasterio
import eotensor as eot
from eotensor.classify import load_classifier
image, model, forest, out, features = sys.argv[1:6]
eot.TensorflowModelServe({"source1.il": image, "model.dir": model, "model.fullyconv": True,
                          "output.names": "features", "out": features})
with rasterio.open(features) as ds:
    x, profile = ds.read(), ds.profile
classifier = load_classifier(forest)
labels = classifier.estimator.predict(x.reshape(x.shape[0], -1).T).reshape(x.shape[1:])
profile.update(count=1, dtype="uint8")
with rasterio.open(out, "w", **profile) as ds:
    ds.write(labels.astype(np.uint8), 1)
'''

TRAIN = '''
import sys
from eotensor.apps.train_images_classifier import TrainImagesClassifier
image, vectors, out, trees = sys.argv[1:5]
TrainImagesClassifier(io_il=image, io_vd=vectors, sample_vfn="cls", classifier="rf", classifier_rf_nbtrees=int(trees),
                      classifier_rf_max=5, classifier_rf_min=10, rand=1, io_out=out)
'''

CLASSIFY = '''
import sys
from eotensor.apps.image_classifier import ImageClassifier
image, forest, out = sys.argv[1:4]
ImageClassifier(in_=image, model=forest, out=out)
'''


def make_data(root: Path, size: int) -> dict[str, str]:
    """The scene, its polygons and the feature model (made once per size)."""
    import numpy as np

    from eotensor.testing import write_raster

    root.mkdir(parents=True, exist_ok=True)
    paths = {"image": root / "scene.tif", "vectors": root / "train.gpkg", "model": root / "features.py"}
    if not paths["image"].exists():
        rng = np.random.default_rng(1)
        third = size // 3
        label = np.minimum(np.arange(size) // max(1, third), 2)
        means = np.array([[300, 500, 700, 900], [500, 420, 800, 1100], [350, 650, 600, 1000]], np.float32)
        image = np.empty((4, size, size), np.uint16)
        for row in range(0, size, 512):
            block = rng.normal(0, 90, (4, min(512, size - row), size)) + means[label].T[:, None, :]
            image[:, row:row + block.shape[1]] = np.clip(block, 0, 65535)
        write_raster(paths["image"], image, dtype="uint16", TILED="YES", COMPRESS="NONE")
        import pyogrio.raw
        import rasterio
        import shapely

        crs = rasterio.crs.CRS.from_epsg(32631).to_wkt()
        boxes = []
        for k in range(3):
            c0, c1 = k * third + third // 8, (k + 1) * third - third // 8
            x0, x1 = 300000 + 10 * c0, 300000 + 10 * c1
            boxes.append(shapely.box(x0, 4900020 - 10 * size * 0.9, x1, 4900020 - 10 * size * 0.1))
        pyogrio.raw.write(str(paths["vectors"]), shapely.to_wkb(np.array(boxes, dtype=object)),
                          [np.array([1, 2, 3], np.int32)], ["cls"], driver="GPKG", geometry_type="Polygon", crs=crs)
        paths["model"].write_text(MODEL)
    return {k: str(v) for k, v in paths.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--skip-otb", action="store_true")
    parser.add_argument("--skip-raw", action="store_true", help="only the deep-features comparison")
    args = parser.parse_args()
    root = HERE / "data" / f"classify-{args.size}"
    paths = make_data(root, args.size)
    work = root / "out"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    from eotensor.apps.train_classifier_from_deep_features import TrainClassifierFromDeepFeatures

    forest = str(work / "deep.skops")
    TrainClassifierFromDeepFeatures({"source1.il": paths["image"], **SERVE, "model.dir": paths["model"],
                                     "vd": paths["vectors"], "sample.vfn": "cls", "sample.bm": 0, "sample.mt": 5000,
                                     "sample.mv": 1000, "classifier": "rf", "classifier.rf.nbtrees": args.trees,
                                     "classifier.rf.max": 5, "rand": 1, "out": forest})
    env = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(os.cpu_count() or 1)}
    py = [sys.executable, "-c"]
    results = {}

    def run(label: str, cmd: list[str]) -> None:
        os.sync()
        wall, rss, err = measure(cmd, env)
        cpu = sum(float(re.search(rf"{kind} time \(seconds\): (\S+)", err).group(1)) for kind in ("User", "System"))
        load = os.getloadavg()[0]
        results[label] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "peak_rss_mb": round(rss),
                          "load_1min": round(load, 1)}
        print(f"{label}: {wall:.2f} s wall, {cpu:.2f} s CPU, {rss:.0f} MB (load {load:.1f})", flush=True)

    run("deep streamed", [*py, STREAMED, paths["image"], paths["model"], forest, str(work / "streamed.tif")])
    run("deep naive", [*py, NAIVE, paths["image"], paths["model"], forest, str(work / "naive.tif"),
                       str(work / "features.tif")])
    import rasterio

    with rasterio.open(work / "streamed.tif") as a, rasterio.open(work / "naive.tif") as b:
        if not (a.read() == b.read()).all():
            raise SystemExit("the streamed and the naive maps differ")
    results["deep naive / streamed"] = round(results["deep naive"]["wall_s"] / results["deep streamed"]["wall_s"], 2)
    if args.skip_raw:
        print(json.dumps(results, indent=1))
        return 0
    run("train eotensor", [*py, TRAIN, paths["image"], paths["vectors"], str(work / "raw.skops"), str(args.trees)])
    run("classify eotensor", [*py, CLASSIFY, paths["image"], str(work / "raw.skops"), str(work / "raw.tif")])
    if not args.skip_otb and shutil.which("otbcli_TrainImagesClassifier"):
        run("train otb", ["otbcli_TrainImagesClassifier", "-io.il", paths["image"], "-io.vd", paths["vectors"],
                          "-sample.vfn", "cls", "-classifier", "rf", "-classifier.rf.nbtrees", str(args.trees),
                          "-classifier.rf.max", "5", "-classifier.rf.min", "10", "-rand", "1",
                          "-io.out", str(work / "raw.rf")])
        run("classify otb", ["otbcli_ImageClassifier", "-in", paths["image"], "-model", str(work / "raw.rf"),
                             "-out", str(work / "otb.tif"), "uint8"])
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
