"""Classic classifiers: statistics, samples under geometries, training, model files, classification maps, and the
deep-features composites (a real TF SavedModel), with OTB 8.1's own apps as peers where installed."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import rasterio

from eotensor.errors import InputFileError, ParameterError
from eotensor.testing import write_raster

pytest.importorskip("sklearn")
pytest.importorskip("skops")

OTB_ENV = {"PATH": "/usr/bin:/bin", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
OTB = shutil.which("otbcli_TrainImagesClassifier") and shutil.which("otbcli_ImageClassifier") \
    and shutil.which("otbcli_ComputeImagesStatistics")
needs_otb = pytest.mark.skipif(not OTB, reason="OTB's apps are not on PATH (Debian otb-bin)")
SPACING, ORIGIN = 10.0, (300000.0, 4900020.0)


def _box(c0, r0, c1, r1):
    """A polygon around pixel columns c0..c1-1 and rows r0..r1-1 of the test grid."""
    import shapely

    x0, x1 = ORIGIN[0] + c0 * SPACING, ORIGIN[0] + c1 * SPACING
    y0, y1 = ORIGIN[1] - r1 * SPACING, ORIGIN[1] - r0 * SPACING
    return shapely.box(x0, y0, x1, y1)


def _vectors(path, geometries, classes, crs="EPSG:32631", field="cls"):
    import pyogrio.raw
    import shapely

    pyogrio.raw.write(os.fspath(path), shapely.to_wkb(np.asarray(geometries, dtype=object)),
                      [np.asarray(classes, np.int32)], [field], driver="GPKG", geometry_type="Unknown",
                      crs=rasterio.crs.CRS.from_user_input(crs).to_wkt())
    return os.fspath(path)


def _otb(app, *args):
    done = subprocess.run([f"otbcli_{app}", *map(str, args)], capture_output=True, text=True, env=OTB_ENV)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def _csv_matrix(path):
    lines = open(path).read().splitlines()
    assert lines[0].startswith("#Reference labels (rows):") and lines[1].startswith("#Produced labels (columns):")
    return np.array([[int(v) for v in line.split(",")] for line in lines[2:]])


# --------------------------------------------------------------------------------------------- the raw scene
@pytest.fixture(scope="module")
def raw_scene(tmp_path_factory):
    """Three classes in 3 noisy bands (they overlap: OA about 90 %), a truth raster, training polygons."""
    tmp = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(7)
    truth = np.ones((160, 150), np.int32)
    truth[:, 50:100] = 2
    truth[:, 100:] = 3
    means = {1: (0, 0, 0), 2: (3, 1.5, 0), 3: (0, 3, 2.2)}
    image = rng.normal(0, 1, (3, *truth.shape))
    for label, mean in means.items():
        image[:, truth == label] += np.asarray(mean)[:, None]
    image = (image * 40 + 500).astype(np.float32)
    write_raster(tmp / "im.tif", image)
    write_raster(tmp / "truth.tif", truth[None].astype(np.uint8))
    polygons = [_box(2, 2, 48, 150), _box(52, 2, 98, 150), _box(102, 2, 148, 150)]
    _vectors(tmp / "train.gpkg", polygons, [1, 2, 3])
    return tmp


def test_feature_spans_cover_what_feature_counts_counts(raw_scene):
    """Runs from the polygon sweep hold exactly the pixels the OTB-exact counter counts (holes, multi-parts,
    points, overlaps)."""
    import shapely

    from eotensor.io.raster import RasterSource
    from eotensor.sampling.polygons import feature_counts, feature_spans

    grid = RasterSource([os.fspath(raw_scene / "im.tif")]).grid
    holed = _box(10, 10, 60, 60).difference(_box(20, 20, 30, 35))
    geometries = [holed, shapely.union(_box(0, 0, 5, 5), _box(100, 100, 110, 103)), _box(3, 3, 12, 9),
                  shapely.Point(ORIGIN[0] + 33.3 * SPACING, ORIGIN[1] - 7.5 * SPACING),
                  shapely.affinity.rotate(_box(40, 80, 90, 130), 17), None]
    feature, row, start, stop = feature_spans(geometries, grid, ram_mb=0.05)
    sums = np.bincount(feature, weights=stop - start, minlength=len(geometries))
    assert sums.tolist() == feature_counts(geometries, grid).tolist()
    assert np.all(np.diff(row) >= 0) and np.all(stop > start)
    burnt = np.zeros((grid.height, grid.width), int)
    for r, a, b in zip(row[feature == 2], start[feature == 2], stop[feature == 2]):
        burnt[r, a:b] += 1
    assert burnt[3:9, 3:12].all() and burnt.sum() == 54  # a box is exactly its pixels


def test_samples_read_only_the_boxes_around_them():
    """Sample values come from small windows around the drawn pixels, tile by tile, never the whole image."""
    from eotensor.classify.samples import read_pixels
    from eotensor.lazy import ArrayRaster

    class Logged(ArrayRaster):
        def compute(self, window):
            seen.append(window)
            return super().compute(window)

    seen = []
    array = np.arange(300 * 200 * 2, dtype=np.float32).reshape(300, 200, 2)
    raster = Logged(array)
    raster.ram_mb = 0.05  # strips of a few rows
    rows, cols = np.array([5, 7, 7, 250, 251]), np.array([10, 12, 30, 100, 101])
    values = read_pixels(raster, rows, cols)
    assert np.array_equal(values, array[rows, cols])
    assert sum(w.size for w in seen) < 100 and max(w.width for w in seen) <= 21


def test_sample_sizes_are_otbs():
    """Per-class sizes as otbcli_TrainImagesClassifier 8.1 draws them (its confusion totals, measured)."""
    from eotensor.classify.samples import sample_sizes, split_samples

    available = {1: 400, 2: 900, 3: 1000}
    assert sample_sizes(available, 100, 100, True, 0.5) == ({1: 400, 2: 400, 3: 400}, None)  # bm 1: mt, mv unused
    assert sample_sizes(available, 100, 100, False, 0.5)[0] == {1: 200, 2: 200, 3: 200}
    assert sample_sizes(available, -1, -1, False, 0.5)[0] == available
    totals = sample_sizes(available, 100, 30, False, 0.3)[0]  # 30 / 0.3f = 99.99 -> 99, as OTB
    assert totals == {1: 99, 2: 99, 3: 99} and split_samples(99, 0.3) == (70, 29)
    assert split_samples(400, 0.25) == (300, 100)
    train, valid = sample_sizes(available, 50, -1, False, 0.5, {1: 30, 2: 500, 3: 60})
    assert train == {1: 50, 2: 50, 3: 50} and valid == {1: 30, 2: 50, 3: 50}


def test_sample_memory_is_checked_before_reading():
    """The samples' memory (values and a fit's float64 copy) is estimated before any pixel is read; more than is
    available is one line naming sample.mt with the numbers."""
    from eotensor.classify.samples import available_memory, check_sample_memory

    assert check_sample_memory(1000, 16, available=10**9) == 1000 * 16 * 4 * 3
    with pytest.raises(ParameterError, match=r"sample\.mt: 50000000 samples of 16 feature\(s\) need about 8\.9 GiB "
                                             r"to read and fit .* but 4\.0 GiB of memory are available; expected a "
                                             r"lower per-class maximum"):
        check_sample_memory(50_000_000, 16, available=4 * 2**30)
    assert available_memory() is None or available_memory() > 2**20


def test_available_memory_is_the_smallest_of_the_system_cgroup_and_address_limits():
    """A container's cgroup limit and ulimit -v bound the samples as the host's free memory does: the smallest
    wins; "max", RLIM_INFINITY and cgroup v1's 2**63 - page are no limit."""
    from eotensor.classify.samples import memory_limit, usable_memory

    gib = 2**30
    assert usable_memory(64 * gib) == 64 * gib and usable_memory(None) is None
    assert usable_memory(64 * gib, 8 * gib, 3 * gib) == 5 * gib  # the container's share, not the host's
    assert usable_memory(64 * gib, 8 * gib, 9 * gib) == 0
    assert usable_memory(64 * gib, 8 * gib, 3 * gib, 6 * gib, 2 * gib) == 4 * gib  # ulimit -v less the vsize
    assert usable_memory(None, None, 3 * gib, 6 * gib, 2 * gib) == 4 * gib  # a limit without its usage is skipped
    assert [memory_limit(v) for v in ("max\n", "9223372036854771712\n", -1, None, "8589934592\n", 4096)] == \
        [None, None, None, None, 8 * gib, 4096]
    # the real readers: a process under ulimit -v sees it (its address space less what it has mapped)
    code = """if True:
        import resource
        from eotensor.classify.samples import available_memory, check_sample_memory, memory_readings
        used = memory_readings()["address_used"]
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**29, resource.getrlimit(resource.RLIMIT_AS)[1]))
        print(0 < available_memory() <= 2**29)
        try:
            check_sample_memory(2**27, 1)
        except Exception as error:
            print(type(error).__name__)
    """
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["True", "ParameterError"], done.stdout + done.stderr[-2000:]


def test_train_and_classify_raw_bands(raw_scene, tmp_path):
    """TrainImagesClassifier + ImageClassifier from Python: the CSV totals are the validation samples, tiles
    never change the map, the confidence is a probability, a mask gives nodatalabel."""
    import eotensor as eot
    from eotensor.apps.image_classifier import ImageClassifier
    from eotensor.apps.train_images_classifier import TrainImagesClassifier
    from eotensor.classify import Classification, load_classifier

    training = TrainImagesClassifier(io_il=raw_scene / "im.tif", io_vd=raw_scene / "train.gpkg", sample_vfn="cls",
                                     classifier="rf", classifier_rf_nbtrees=30, sample_bm=0, sample_mt=300,
                                     sample_mv=300, rand=4, io_out=tmp_path / "m.skops",
                                     io_confmatout=tmp_path / "cm.csv")
    assert training.result.train.per_class == {1: 300, 2: 300, 3: 300}
    assert training.result.valid.per_class == {1: 300, 2: 300, 3: 300}  # total min(mt / (1 - vtr), mv / vtr)
    matrix = _csv_matrix(tmp_path / "cm.csv")
    assert matrix.sum() == 900 and matrix.sum(axis=1).tolist() == [300, 300, 300]
    assert np.array_equal(matrix, training.confusion.counts) and 0.8 < training.confusion.overall_accuracy < 0.99
    assert sorted(os.listdir(tmp_path)) == ["cm.csv", "m.skops", "m.skops.json"]
    sidecar = json.load(open(tmp_path / "m.skops.json"))
    assert sidecar["features"] == 3 and sidecar["classes"] == [1, 2, 3] and sidecar["kind"] == "rf"

    write_raster(tmp_path / "mask.tif", (np.arange(150)[None, None, :] % 7 != 0).repeat(160, axis=1)
                 .astype(np.uint8))
    whole = ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", mask=tmp_path / "mask.tif",
                            nodatalabel=9, out=(tmp_path / "map.tif", "uint8"), confmap=tmp_path / "conf.tif",
                            ram=0.02)
    labels = rasterio.open(tmp_path / "map.tif").read(1)
    confidence = rasterio.open(tmp_path / "conf.tif").read(1)
    assert rasterio.open(tmp_path / "conf.tif").dtypes[0] == "float64"
    assert whole.plan().tile.rows < 160  # several strips
    untiled = Classification(eot.open(raw_scene / "im.tif", ram_mb=64), load_classifier(tmp_path / "m.skops"),
                             mask=eot.open(tmp_path / "mask.tif"), nodata_label=9, confidence=True).read()
    assert np.array_equal(untiled[0], labels) and np.array_equal(untiled[1].astype(np.float32),
                                                                 confidence.astype(np.float32))
    masked = (np.arange(150) % 7 == 0)
    assert (labels[:, masked] == 9).all() and (confidence[:, masked] == 0).all()
    assert ((confidence[:, ~masked] > 1 / 3) & (confidence[:, ~masked] <= 1)).all()
    truth = rasterio.open(raw_scene / "truth.tif").read(1)
    assert (labels[:, ~masked] == truth[:, ~masked]).mean() > 0.8


def test_probability_map_is_otbs_in_the_same_pass(raw_scene, tmp_path, capsys):
    """-probamap: one band per class (ascending), p x 1000 truncated to uint16 (OTB's scale and writer), 0 where
    masked; -nbclasses pads with zero bands or keeps the smallest classes; labels, confidence and probabilities
    come from one computation of each tile; tiles never change them."""
    import eotensor as eot
    from eotensor.apps.image_classifier import ImageClassifier
    from eotensor.apps.train_images_classifier import TrainImagesClassifier
    from eotensor.classify import load_classifier
    from eotensor.engine.tiling import TileShape
    from eotensor.lazy import ArrayRaster

    TrainImagesClassifier(io_il=raw_scene / "im.tif", io_vd=raw_scene / "train.gpkg", sample_vfn="cls",
                          classifier="rf", classifier_rf_nbtrees=20, sample_bm=0, sample_mt=200, sample_mv=50,
                          io_out=tmp_path / "m.skops")
    image = rasterio.open(raw_scene / "im.tif").read()
    mask = np.ones((1, *image.shape[1:]), np.uint8)
    mask[0, 10:20, 30:140] = 0
    write_raster(tmp_path / "mask.tif", mask)

    class Counted(ArrayRaster):
        def compute(self, window):
            computed.append(window.size)
            return super().compute(window)

        def tile_shape(self, block=None):
            return TileShape(21, 150)  # several tiles, the memory budget left at its default

    computed = []
    features = Counted(np.moveaxis(image, 0, -1), grid=eot.open(raw_scene / "im.tif").grid)
    ImageClassifier(in_=features, model=tmp_path / "m.skops", mask=tmp_path / "mask.tif", nodatalabel=7,
                    out=tmp_path / "map.tif", confmap=tmp_path / "conf.tif", probamap=tmp_path / "p.tif")
    assert sum(computed) == image.shape[1] * image.shape[2] and len(computed) > 1  # each pixel once, in tiles
    with rasterio.open(tmp_path / "p.tif") as ds:
        assert ds.count == 3 and ds.dtypes[0] == "uint16"
        probamap = ds.read()
    labels, confidence = rasterio.open(tmp_path / "map.tif").read(1), rasterio.open(tmp_path / "conf.tif").read(1)
    model = load_classifier(tmp_path / "m.skops")
    pixels = image.reshape(3, -1).T
    expected = model.estimator.predict_proba(pixels).T.reshape(3, *image.shape[1:])
    kept = mask[0] == 1
    assert np.array_equal(probamap[:, kept], np.trunc(expected[:, kept] * 1000).astype(np.uint16))
    assert (probamap[:, ~kept] == 0).all() and (labels[~kept] == 7).all() and (confidence[~kept] == 0).all()
    assert np.array_equal(labels[kept], model.estimator.predict(pixels).reshape(labels.shape)[kept])
    assert np.array_equal(confidence[kept], expected.max(axis=0)[kept])
    assert np.abs(probamap[:, kept].astype(int).sum(axis=0) - 1000).max() <= 3  # per mille, truncated
    # each band says what it holds (GDAL band descriptions)
    assert rasterio.open(tmp_path / "p.tif").descriptions == ("class 1", "class 2", "class 3")
    assert rasterio.open(tmp_path / "map.tif").descriptions == ("label",)
    assert rasterio.open(tmp_path / "conf.tif").descriptions == ("confidence",)

    ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", out=tmp_path / "m5.tif",
                    probamap=(tmp_path / "p5.tif", "float"), nbclasses=5, ram=0.02)
    padded = rasterio.open(tmp_path / "p5.tif").read()
    assert padded.shape[0] == 5 and padded.dtype == np.float32 and (padded[3:] == 0).all()
    assert rasterio.open(tmp_path / "p5.tif").descriptions == ("class 1", "class 2", "class 3", None, None)
    assert np.array_equal(padded[:3], (expected * 1000).astype(np.float32))
    capsys.readouterr()
    ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", out=tmp_path / "m2.tif",
                    probamap=f"{tmp_path / 'p2.tif'}?&cog=true", nbclasses=2)
    assert "nbclasses: 2 but the model has 3 classes; the probability map holds the 2 smallest (1, 2)" \
        in capsys.readouterr().err
    assert np.array_equal(rasterio.open(tmp_path / "p2.tif").read(), np.trunc(expected[:2] * 1000).astype(np.uint16))
    assert rasterio.open(tmp_path / "p2.tif").descriptions == ("class 1", "class 2")  # a COG copy keeps them
    # a mask is read as OTB reads it (uint8: -1 and 0.5 become 0): only values of 1 and more are classified
    odd = np.where(np.arange(150) % 3 == 0, -1.0, np.where(np.arange(150) % 3 == 1, 0.5, 2.0))
    write_raster(tmp_path / "odd.tif", np.broadcast_to(odd, (1, 160, 150)).astype(np.float32))
    odd_map = ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", mask=tmp_path / "odd.tif",
                              nodatalabel=7).read()[0]
    assert (odd_map[:, odd < 1] == 7).all() and (odd_map[:, odd >= 1] != 7).all()
    with pytest.raises(ParameterError, match="probamap: the bayes classifier|probamap: the sgd classifier"):
        TrainImagesClassifier(io_il=raw_scene / "im.tif", io_vd=raw_scene / "train.gpkg", sample_vfn="cls",
                              classifier="sgd", classifier_sgd_loss="hinge", io_out=tmp_path / "h.skops")
        ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "h.skops", out=tmp_path / "h.tif",
                        probamap=tmp_path / "hp.tif")


def test_points_validate_and_images_pair_with_vectors(raw_scene, tmp_path):
    """Validation from points in another CRS (each point's pixel; bm 1: as many per class as the smallest class
    has); two images, each with its vectors; a mismatched count is an error."""
    import shapely

    from eotensor.apps.train_images_classifier import TrainImagesClassifier
    from eotensor.io.vector import reproject_geometries

    rng = np.random.default_rng(1)
    points, classes = [], []
    for label, (c0, c1), n in ((1, (0, 50), 30), (2, (50, 100), 40), (3, (100, 150), 50)):
        cols, rows = rng.integers(c0, c1, n), rng.integers(0, 160, n)
        points += list(shapely.points(ORIGIN[0] + (cols + 0.5) * SPACING, ORIGIN[1] - (rows + 0.5) * SPACING))
        classes += [label] * n
    wgs84 = reproject_geometries(np.asarray(points, dtype=object), "EPSG:32631", "EPSG:4326")
    _vectors(tmp_path / "points.gpkg", wgs84, classes, crs="EPSG:4326")
    image, vectors = raw_scene / "im.tif", raw_scene / "train.gpkg"
    training = TrainImagesClassifier(io_il=[image, image], io_vd=[vectors, vectors], io_valid=tmp_path / "points.gpkg",
                                     sample_vfn="cls", classifier="bayes", sample_bm=0, sample_mt=100, sample_mv=-1,
                                     io_confmatout=tmp_path / "cm.csv", io_out=tmp_path / "m.skops")
    assert training.result.train.per_class == {1: 100, 2: 100, 3: 100}
    # mv -1 with mt 100 and vtr 0.5: at most 100 validation samples a class; the one validation file serves
    # both images, so each point is a candidate twice
    assert _csv_matrix(tmp_path / "cm.csv").sum(axis=1).tolist() == [60, 80, 100]
    assert training.confusion.overall_accuracy > 0.8
    with pytest.raises(ParameterError, match=r"io.vd: 3 vector file\(s\) for 2 image\(s\)"):
        TrainImagesClassifier(io_il=[image, image], io_vd=[vectors] * 3, sample_vfn="cls", classifier="bayes",
                              io_out=tmp_path / "n.skops")


def _lines():
    """A diagonal, a multi-line with a part off the image, a horizontal line on pixel edges, a closed line."""
    import shapely

    def xy(c, r):
        return ORIGIN[0] + c * SPACING, ORIGIN[1] - r * SPACING

    return ([shapely.LineString([xy(3.2, 4.1), xy(40.7, 90.3)]),
             shapely.MultiLineString([[xy(60.5, 10.5), xy(90.1, 12.9), xy(95.3, 70.2)], [xy(140, 150), xy(170, 190)]]),
             shapely.LineString([xy(110, 20), xy(140, 20)]),
             shapely.LineString([xy(104.5, 100.5), xy(130.2, 101.7), xy(120.9, 140.4), xy(104.5, 100.5)])],
            [1, 2, 3, 3])


def test_lines_give_the_pixels_they_touch(raw_scene, tmp_path):
    """Lines and multi-lines give samples: the pixels they touch, as many per class as OTB's
    PolygonClassStatistics counts (the peer when installed; else the OTB-exact counter), and a classifier
    trains on them with as many validation samples as OTB's TrainImagesClassifier draws from them."""
    from eotensor.apps.train_images_classifier import TrainImagesClassifier
    from eotensor.classify.samples import Candidates
    from eotensor.io.raster import RasterSource
    from eotensor.sampling.polygons import feature_counts

    geometries, classes = _lines()
    vectors = _vectors(tmp_path / "lines.gpkg", geometries, classes)
    image = os.fspath(raw_scene / "im.tif")
    grid = RasterSource([image]).grid
    candidates = Candidates.from_vectors([vectors], [grid], "cls", "io.vd", ram_mb=0.05)
    counts = feature_counts(np.asarray(geometries, dtype=object), grid)
    assert candidates.per_class == {1: counts[0], 2: counts[1], 3: counts[2] + counts[3]}
    assert min(candidates.per_class.values()) > 25
    cells = set(zip(candidates.row.tolist(), candidates.start.tolist()))
    assert (4, 3) in cells and (90, 40) in cells and np.all(candidates.stop - candidates.start == 1)
    if shutil.which("otbcli_PolygonClassStatistics"):
        from eotensor.io.otbxml import read_maps

        _otb("PolygonClassStatistics", "-in", image, "-vec", vectors, "-field", "cls", "-out", tmp_path / "o.xml")
        theirs = read_maps(tmp_path / "o.xml")["samplesPerClass"]
        assert {str(k): str(v) for k, v in candidates.per_class.items()} == theirs
    training = TrainImagesClassifier(io_il=image, io_vd=vectors, sample_vfn="cls", classifier="bayes", sample_vtr=0.4,
                                     io_out=tmp_path / "m.skops", io_confmatout=tmp_path / "cm.csv")
    smallest = min(candidates.per_class.values())
    assert sum(training.result.train.per_class.values()) + sum(training.result.valid.per_class.values()) \
        == 3 * smallest
    if OTB:  # OTB's TrainImagesClassifier samples lines too: the same validation samples per class
        _otb("TrainImagesClassifier", "-io.il", image, "-io.vd", vectors, "-sample.vfn", "cls", "-classifier", "bayes",
             "-sample.vtr", "0.4", "-io.out", tmp_path / "otb.bayes", "-io.confmatout", tmp_path / "otb.csv")
        assert _csv_matrix(tmp_path / "otb.csv").sum(axis=1).tolist() == \
            _csv_matrix(tmp_path / "cm.csv").sum(axis=1).tolist() == [int(float(smallest) * float(np.float32(0.4)))] * 3


def test_statistics_are_otbs_and_each_reads_the_others(raw_scene, tmp_path):
    """ComputeImagesStatistics matches otbcli's file byte for byte (two images, -bv); a classifier trained with
    either XML normalises identically."""
    from eotensor.apps.compute_images_statistics import ComputeImagesStatistics
    from eotensor.classify.statistics import Normalisation

    rng = np.random.default_rng(3)
    second = rng.normal(7, 3, (3, 40, 30)).astype(np.float32)
    second[:, :5] = -1
    second[0, 10, 10] = -1  # one band only: still counted
    write_raster(tmp_path / "b.tif", second)
    images = [raw_scene / "im.tif", tmp_path / "b.tif"]
    ours = ComputeImagesStatistics(il=images, bv=-1, out_xml=tmp_path / "ours.xml", ram=0.05).statistics
    pixels = np.concatenate([rasterio.open(p).read().reshape(3, -1) for p in images], axis=1).astype(float)
    kept = ~np.all(pixels == -1, axis=0)
    assert ours.count == kept.sum() and np.allclose(ours.mean, pixels[:, kept].mean(axis=1))
    if OTB:
        _otb("ComputeImagesStatistics", "-il", *images, "-bv", -1, "-out.xml", tmp_path / "theirs.xml")
        assert (tmp_path / "ours.xml").read_text() == (tmp_path / "theirs.xml").read_text()
        assert Normalisation.read(tmp_path / "theirs.xml") == Normalisation.read(tmp_path / "ours.xml")


def test_statistics_skip_non_finite_pixels_as_otb(tmp_path):
    """A pixel with NaN or ±inf in any band is left out (before the bv test), as otbcli does; statistics that are
    not finite (no valid pixel) are refused as imstat in one line."""
    from eotensor.apps.compute_images_statistics import ComputeImagesStatistics
    from eotensor.classify.statistics import Normalisation

    image = np.random.default_rng(5).normal(600, 80, (3, 30, 40)).astype(np.float32)
    image[1, 5, 5], image[2, 6, 6], image[0, 7, 7] = np.nan, np.inf, -np.inf
    image[:, 0, :4] = -1  # background, all bands
    write_raster(tmp_path / "im.tif", image)
    ours = ComputeImagesStatistics(il=[tmp_path / "im.tif"], bv=-1, out_xml=tmp_path / "ours.xml").statistics
    pixels = image.reshape(3, -1).astype(np.float64)
    kept = np.all(np.isfinite(pixels), axis=0) & ~np.all(pixels == -1, axis=0)
    assert ours.count == kept.sum() == 30 * 40 - 7
    np.testing.assert_allclose(ours.mean, pixels[:, kept].mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(ours.stddev, pixels[:, kept].std(axis=1, ddof=1), rtol=1e-12)
    np.testing.assert_array_equal(ours.min, pixels[:, kept].min(axis=1))
    if OTB:
        _otb("ComputeImagesStatistics", "-il", tmp_path / "im.tif", "-bv", -1, "-out.xml", tmp_path / "theirs.xml")
        assert (tmp_path / "ours.xml").read_text() == (tmp_path / "theirs.xml").read_text()
    write_raster(tmp_path / "nan.tif", np.full((3, 4, 4), np.nan, np.float32))
    ComputeImagesStatistics(il=[tmp_path / "nan.tif"], out_xml=tmp_path / "nan.xml")
    with pytest.raises(InputFileError, match=r'imstat: ".*nan.xml" has a non-finite mean or standard deviation in '
                       r"band\(s\) 1, 2, 3"):
        Normalisation.read(tmp_path / "nan.xml")
    with pytest.raises(InputFileError, match="non-finite"):
        Normalisation(np.zeros(2), np.array([1.0, np.inf])).check(2, "imstat", "in")


@needs_otb
def test_overall_accuracy_within_two_points_of_otb(raw_scene, tmp_path):
    """Same image, polygons, statistics and forest settings: eotensor's validation OA and map OA are within 2
    points of OTB's; each side normalises with the other's statistics XML."""
    from eotensor.apps.compute_images_statistics import ComputeImagesStatistics
    from eotensor.apps.image_classifier import ImageClassifier
    from eotensor.apps.train_images_classifier import TrainImagesClassifier

    image, vectors = raw_scene / "im.tif", raw_scene / "train.gpkg"
    ComputeImagesStatistics(il=[image], out_xml=tmp_path / "ours.xml")
    _otb("ComputeImagesStatistics", "-il", image, "-out.xml", tmp_path / "theirs.xml")
    forest = ["-classifier", "rf", "-classifier.rf.nbtrees", 50, "-classifier.rf.max", 8, "-classifier.rf.min", 5]
    _otb("TrainImagesClassifier", "-io.il", image, "-io.vd", vectors, "-io.imstat", tmp_path / "ours.xml",
         "-sample.vfn", "cls", *forest, "-sample.mt", -1, "-sample.mv", -1, "-rand", 1,
         "-io.out", tmp_path / "otb.rf", "-io.confmatout", tmp_path / "otb.csv")
    _otb("ImageClassifier", "-in", image, "-model", tmp_path / "otb.rf", "-imstat", tmp_path / "ours.xml",
         "-out", tmp_path / "otb.tif", "uint8")
    training = TrainImagesClassifier(io_il=image, io_vd=vectors, io_imstat=tmp_path / "theirs.xml", sample_vfn="cls",
                                     classifier="rf", classifier_rf_nbtrees=50, classifier_rf_max=8,
                                     classifier_rf_min=5, sample_mt=-1, sample_mv=-1, rand=1,
                                     io_out=tmp_path / "m.skops")
    ImageClassifier(in_=image, model=tmp_path / "m.skops", imstat=tmp_path / "theirs.xml", out=tmp_path / "ours.tif")
    theirs = _csv_matrix(tmp_path / "otb.csv")
    assert theirs.sum() == training.confusion.total  # the same validation sizes (half the smallest class)
    their_oa = np.trace(theirs) / theirs.sum()
    assert abs(training.confusion.overall_accuracy - their_oa) < 0.02, (training.confusion.overall_accuracy, their_oa)
    truth = rasterio.open(raw_scene / "truth.tif").read(1)
    map_oa = [(rasterio.open(tmp_path / name).read(1) == truth).mean() for name in ("ours.tif", "otb.tif")]
    assert abs(map_oa[0] - map_oa[1]) < 0.02, map_oa
    print(f"OA validation: eotensor {training.confusion.overall_accuracy:.4f} OTB {their_oa:.4f}; "
          f"map: eotensor {map_oa[0]:.4f} OTB {map_oa[1]:.4f}", file=sys.stderr)


# ------------------------------------------------------------------------------------------ bad input, files
def test_bad_inputs_are_one_line_errors(raw_scene, tmp_path):
    from eotensor.apps.image_classifier import ImageClassifier
    from eotensor.apps.train_images_classifier import TrainImagesClassifier

    base = dict(io_il=raw_scene / "im.tif", io_vd=raw_scene / "train.gpkg", sample_vfn="cls", classifier="bayes",
                sample_bm=0, sample_mt=60, sample_mv=20, io_out=tmp_path / "m.skops")
    with pytest.raises(ParameterError, match='sample.vfn: ".*train.gpkg" has no field "label"; its fields: cls'):
        TrainImagesClassifier(**{**base, "sample_vfn": "label"})
    with pytest.raises(ParameterError, match=r"sample.vtr: 1 is outside \[0, 1\)"):
        TrainImagesClassifier(**{**base, "sample_vtr": 1})
    far = _vectors(tmp_path / "far.gpkg", [_box(1000, 1000, 1010, 1010), _box(2000, 0, 2001, 1)], [1, 2])
    with pytest.raises(InputFileError, match="io.vd: no pixel centre of the image"):
        TrainImagesClassifier(**{**base, "io_vd": far})
    single = _vectors(tmp_path / "one.gpkg", [_box(2, 2, 20, 20), _box(30, 30, 40, 40)], [4, 4])
    with pytest.raises(InputFileError, match=r"io.vd: .* samples of one class only \(4\)"):
        TrainImagesClassifier(**{**base, "io_vd": single})
    write_raster(tmp_path / "two.tif", np.zeros((2, 5, 5), np.float32))
    _otb_free_stats = tmp_path / "two.xml"
    from eotensor.apps.compute_images_statistics import ComputeImagesStatistics
    ComputeImagesStatistics(il=tmp_path / "two.tif", out_xml=_otb_free_stats)
    with pytest.raises(ParameterError, match=r'io.imstat: ".*two.xml" holds statistics of 2 band\(s\) but io.il '
                                             r"has 3"):
        TrainImagesClassifier(**{**base, "io_imstat": _otb_free_stats})
    TrainImagesClassifier(**base)  # a fast model for the checks below
    with pytest.raises(ParameterError, match=r'model: ".*m.skops" was trained on 3 feature\(s\) but in has 2 band'):
        ImageClassifier(in_=tmp_path / "two.tif", model=tmp_path / "m.skops")
    ones = np.ones((1, 160, 150), np.uint8)
    for name, kwargs, match in (
            ("small", dict(data=ones[:, :100]), r'mask: ".*small.tif" is 150x100 pixels but in is 150x160'),
            ("crs", dict(crs="EPSG:32630"), r'mask: ".*crs.tif" is in EPSG:32630 but in in EPSG:32631'),
            ("shift", dict(origin=(ORIGIN[0] + 20, ORIGIN[1])), r'mask: ".*shift.tif" has another origin than in'),
            ("spacing", dict(spacing=5.0), r'mask: ".*spacing.tif" has another pixel size than in')):
        write_raster(tmp_path / f"{name}.tif", kwargs.pop("data", ones), **kwargs)
        with pytest.raises(InputFileError, match=match):
            ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", mask=tmp_path / f"{name}.tif",
                            out=tmp_path / "l.tif")
    write_raster(tmp_path / "same.tif", ones, origin=(ORIGIN[0] + 1e-6, ORIGIN[1]))  # rounding in a transform: same
    ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "m.skops", mask=tmp_path / "same.tif")
    with pytest.raises(ParameterError, match="confmap: the libsvm classifier .* gives no class probabilities"):
        TrainImagesClassifier(**{**base, "classifier": "libsvm", "io_out": tmp_path / "svm.skops"})
        ImageClassifier(in_=raw_scene / "im.tif", model=tmp_path / "svm.skops", out=tmp_path / "l.tif",
                        confmap=tmp_path / "c.tif")
    assert not (tmp_path / "l.tif").exists()


def test_model_files_refuse_tampering_and_untrusted_types(raw_scene, tmp_path):
    """A changed byte, a missing or foreign sidecar, and a skops file naming an untrusted type are refused before
    anything in the file runs."""
    import hashlib

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from eotensor.classify.models import ClassifierModel, load_classifier, make_classifier

    x = np.random.default_rng(0).normal(size=(40, 2)).astype(np.float32)
    y = np.repeat([1, 2], 20)
    model = ClassifierModel.fit(make_classifier("rf", dict(nbtrees=3, max=2, min=2, var=0), 0), "rf", x, y, None)
    path = model.save(tmp_path / "m.skops")
    loaded = load_classifier(path)
    assert np.array_equal(loaded.predict(x)[0], model.predict(x)[0]) and loaded.kind == "rf"

    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 1
    open(tmp_path / "bad.skops", "wb").write(bytes(data))
    shutil.copy(path + ".json", tmp_path / "bad.skops.json")
    with pytest.raises(InputFileError, match=r'model: ".*bad.skops" was changed after it was written'):
        load_classifier(tmp_path / "bad.skops")
    shutil.copy(path, tmp_path / "alone.skops")
    with pytest.raises(InputFileError, match=r'has no sidecar ".*alone.skops.json"'):
        load_classifier(tmp_path / "alone.skops")

    evil = sio.dumps(FunctionTransformer(func=os.system))  # loading it would hand os.system to the caller
    open(tmp_path / "evil.skops", "wb").write(evil)
    meta = json.load(open(path + ".json"))
    meta["sha256"] = hashlib.sha256(evil).hexdigest()  # a forged sidecar: the type check still refuses it
    json.dump(meta, open(tmp_path / "evil.skops.json", "w"))
    with pytest.raises(InputFileError, match=r'model: ".*evil.skops" holds types eotensor does not trust '
                                             r"\(.*system.*\); refusing to load it"):
        load_classifier(tmp_path / "evil.skops")
    meta["format_version"] = 99
    json.dump(meta, open(tmp_path / "evil.skops.json", "w"))
    with pytest.raises(InputFileError, match="format version 99"):
        load_classifier(tmp_path / "evil.skops")


def test_cli_and_import_costs(raw_scene, tmp_path, capsys):
    """The apps run from the command line with OTB's keys and print OTB's measures; a bad model file is one line
    on stderr; importing eotensor imports neither scikit-learn nor skops, loading a model not PyTorch."""
    from eotensor.apps.cli import main

    code = "import sys, eotensor; eotensor.TrainImagesClassifier; print('sklearn' in sys.modules, 'skops' in " \
           "sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.split() == ["False", "False"], done.stderr
    status = main(["TrainImagesClassifier", "-io.il", str(raw_scene / "im.tif"), "-io.vd", str(raw_scene / "train.gpkg"),
                   "-sample.vfn", "cls", "-classifier", "bayes", "-io.out", str(tmp_path / "b.skops")])
    out = capsys.readouterr().out
    assert status == 0 and "Kappa index:" in out and "Overall accuracy index:" in out
    assert main(["ImageClassifier", "-in", str(raw_scene / "im.tif"), "-model", str(tmp_path / "b.skops"),
                 "-out", str(tmp_path / "b.tif"), "uint16"]) == 0
    assert rasterio.open(tmp_path / "b.tif").dtypes[0] == "uint16"
    # loading a model imports skops without the array-API shims that would import PyTorch (~1 s, ~250 MB);
    # they stay importable after
    code = ("import sys; from eotensor.classify import load_classifier; load_classifier(sys.argv[1]); "
            "print('torch' in sys.modules); import sklearn.externals.array_api_compat.torch; "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "b.skops")], capture_output=True, text=True,
                          env=env)
    assert done.stdout.split() == ["False", "True"], done.stderr[-2000:]
    done = subprocess.run([sys.executable, "-m", "eotensor", "ImageClassifier", "-in", raw_scene / "im.tif",
                           "-model", raw_scene / "im.tif", "-out", tmp_path / "c.tif"],
                          capture_output=True, text=True, env=env)
    assert done.returncode != 0 and len(done.stderr.strip().splitlines()) == 1 and "sidecar" in done.stderr


def test_skipping_the_shims_is_confined_to_the_importing_thread():
    """The finder that keeps skops' first import from importing PyTorch sits in the process-wide sys.meta_path: it
    refuses the shims in the thread that put it there only; other threads import them meanwhile, and threads
    calling skops_io() at once leave sys.meta_path as it was."""
    import threading

    from eotensor.classify.models import SKIPPED_AT_SKOPS_IMPORT, _SkipShims

    finder, seen = _SkipShims(), {}
    with pytest.raises(ImportError, match="is not imported while skops.io is"):
        finder.find_spec(SKIPPED_AT_SKOPS_IMPORT[0], None)
    other = threading.Thread(target=lambda: seen.update(other=finder.find_spec(SKIPPED_AT_SKOPS_IMPORT[0], None)))
    other.start()
    other.join()
    assert seen == {"other": None}
    # the real first import (a fresh process): two threads call skops_io() while a third waits for the finder to
    # be in place and imports a shim (PyTorch itself imported before, so only the shim's import is timed)
    code = """if True:
        import sys, threading, time, torch, sklearn
        from eotensor.classify.models import _SkipShims, skops_io
        before, res = list(sys.meta_path), {}
        def load(key):
            skops_io(); res[key] = "ok"
        def shim():
            while not any(isinstance(f, _SkipShims) for f in sys.meta_path):
                time.sleep(0.0005)
            try:
                import sklearn.externals.array_api_compat.torch  # noqa: F401
                res["shim"] = "ok"
            except ImportError as error:
                res["shim"] = str(error)
        threads = [threading.Thread(target=shim), threading.Thread(target=load, args=("a",)),
                   threading.Thread(target=load, args=("b",))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(sorted(res.items()), sys.meta_path == before)
    """
    env = {**os.environ, "PYTHONPATH": os.path.join(os.path.dirname(__file__), "..", "src")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "[('a', 'ok'), ('b', 'ok'), ('shim', 'ok')] True", done.stdout + done.stderr[-2000:]


def test_no_validation_sample_measures_the_training_samples(raw_scene, tmp_path, capsys):
    """sample.vtr 0 without io.valid: as OTB 8.1, the model is measured on its training samples ("Training
    performances" in the report) and io.confmatout is written with their counts."""
    from eotensor.apps.cli import main

    status = main(["TrainImagesClassifier", "-io.il", str(raw_scene / "im.tif"), "-io.vd",
                   str(raw_scene / "train.gpkg"), "-sample.vfn", "cls", "-classifier", "bayes", "-sample.vtr", "0",
                   "-sample.bm", "0", "-sample.mt", "40", "-io.out", str(tmp_path / "m.skops"),
                   "-io.confmatout", str(tmp_path / "cm.csv")])
    out = capsys.readouterr().out
    assert status == 0 and "Training performances" in out and "Kappa index:" in out
    assert _csv_matrix(tmp_path / "cm.csv").sum(axis=1).tolist() == [40, 40, 40]


def test_composite_tables_mount_the_apps_rows():
    """The deep-features apps mount TensorflowModelServe's and the classifier apps' rows (the same objects), with
    OTBTF's spellings, in -help too."""
    from eotensor.apps import image_classifier, model_serve, train_images_classifier
    from eotensor.apps.image_classifier_from_deep_features import APP as CLASSIFY
    from eotensor.apps.params import format_help
    from eotensor.apps.train_classifier_from_deep_features import APP as TRAIN

    serve = model_serve.APP.table
    assert CLASSIFY.table.param("deepmodel.dir") is serve.param("model.dir")
    assert TRAIN.table.param("model.dir") is serve.param("model.dir")
    assert TRAIN.table.param("source{n}.rfieldx") is serve.param("source{n}.rfieldx")
    assert TRAIN.table.param("optim.tilesizey") is serve.param("optim.tilesizey")
    assert TRAIN.table.param("classifier.rf.nbtrees") is train_images_classifier.APP.table.param("classifier.rf.nbtrees")
    assert TRAIN.table.param("classifier.svm.c") is train_images_classifier.APP.table.param("classifier.svm.c")
    assert CLASSIFY.table.param("confmap") is image_classifier.APP.table.param("confmap")
    keys = {row.key for row in TRAIN.table.rows}
    assert {"vd", "valid", "out", "confmatout", "sample.vfn", "rand", "ram"} <= keys and "io.il" not in keys
    assert "out" not in {row.key for row in CLASSIFY.table.rows if row.origin.startswith("tfmodel.")}
    text = format_help(TRAIN)
    assert "\n  -vd " in text and "-io.vd" not in text and "-deepmodel.dir" in format_help(CLASSIFY)


# ------------------------------------------------------------------------------------------- deep features
def _texture_scene(tmp, size=(72, 96)):
    """One band of 0/20 pixels in three textures with the same histogram: random (1), checkerboard (2), row
    stripes (3); only a texture filter tells them apart."""
    rows, cols = size
    rng = np.random.default_rng(5)
    truth = np.ones(size, np.int32)
    truth[:, 32:64] = 2
    truth[:, 64:] = 3
    r, c = np.indices(size)
    image = np.where(truth == 1, rng.integers(0, 2, size), np.where(truth == 2, (r + c) % 2, r % 2)) * 20
    write_raster(tmp / "tex.tif", image[None].astype(np.float32))
    write_raster(tmp / "truth.tif", truth[None].astype(np.uint8))
    polygons = [_box(2, 2, 30, rows - 2), _box(34, 2, 62, rows - 2), _box(66, 2, 94, rows - 2)]
    # the validation polygons come in another CRS (WGS 84): reprojected to the image's
    from eotensor.io.vector import reproject_geometries
    _vectors(tmp / "train.gpkg", polygons, [1, 2, 3])
    _vectors(tmp / "valid.gpkg", reproject_geometries(np.asarray(polygons, dtype=object), "EPSG:32631", "EPSG:4326"),
             [1, 2, 3], crs="EPSG:4326")
    return truth


def _texture_model(path):
    """Features [|dx|, |dy|] averaged over 4x4: a fixed conv (RF 5, fully convolutional), as a SavedModel."""
    from eotensor.samples import save_module
    from tests.models import _tf

    tf = _tf()
    kernel = np.zeros((2, 2, 1, 2), np.float32)
    kernel[0, 0, 0] = [-1, -1]
    kernel[0, 1, 0, 0] = 1
    kernel[1, 0, 0, 1] = 1

    def features(x):
        diffs = tf.abs(tf.nn.conv2d(x, tf.constant(kernel), 1, "VALID"))
        return {"features": tf.nn.avg_pool2d(diffs, 4, 1, "VALID")}

    return save_module(path, features, {"x": ([None, None, None, 1], "float32")})


@pytest.mark.tf
def test_deep_features_separate_what_raw_bands_cannot(tmp_path):
    """TrainClassifierFromDeepFeatures + ImageClassifierFromDeepFeatures on a served SavedModel's features (no
    feature file): OA against the truth above 0.95, tiled == untiled, the same map as ImageClassifier on the
    features written to a file; the raw-band twins on the same scene stay near chance."""
    import eotensor as eot
    from eotensor.apps.cli import main
    from eotensor.apps.image_classifier import ImageClassifier
    from eotensor.apps.image_classifier_from_deep_features import ImageClassifierFromDeepFeatures
    from eotensor.apps.train_classifier_from_deep_features import TrainClassifierFromDeepFeatures
    from eotensor.apps.train_images_classifier import TrainImagesClassifier

    truth = _texture_scene(tmp_path)
    model = _texture_model(tmp_path / "features")
    serve = {"source1.il": tmp_path / "tex.tif", "source1.rfieldx": 5, "source1.rfieldy": 5, "model.fullyconv": True,
             "output.names": "features"}
    training = TrainClassifierFromDeepFeatures(
        serve, model_dir=model, vd=tmp_path / "train.gpkg", valid=tmp_path / "valid.gpkg", sample_vfn="cls",
        classifier="rf", classifier_rf_nbtrees=20, sample_bm=0, sample_mt=400, sample_mv=300, rand=2,
        out=tmp_path / "deep.skops", confmatout=tmp_path / "deep.csv", optim_tilesizex=999999, optim_tilesizey=16)
    matrix = _csv_matrix(tmp_path / "deep.csv")
    assert matrix.sum(axis=1).tolist() == [300, 300, 300] == list(training.result.valid.per_class.values())
    assert training.confusion.overall_accuracy > 0.95

    deep = {"source1.il": tmp_path / "tex.tif", "source1.rfieldx": 5, "source1.rfieldy": 5, "deepmodel.dir": model,
            "deepmodel.fullyconv": True, "output.names": "features", "model": tmp_path / "deep.skops"}
    assert main(["ImageClassifierFromDeepFeatures", "-source1.il", str(tmp_path / "tex.tif"), "-source1.rfieldx", "5",
                 "-source1.rfieldy", "5", "-deepmodel.dir", model, "-deepmodel.fullyconv", "on", "-output.names",
                 "features", "-model", str(tmp_path / "deep.skops"), "-out", str(tmp_path / "deep.tif"),
                 "-confmap", str(tmp_path / "conf.tif"), "float"]) == 0
    assert rasterio.open(tmp_path / "conf.tif").dtypes[0] == "float32"
    tiled = ImageClassifierFromDeepFeatures(deep, optim_tilesizex=16, optim_tilesizey=8, optim_ram=1)
    labels = rasterio.open(tmp_path / "deep.tif")
    assert np.array_equal(tiled.read()[0], labels.read(1)) and tiled.plan().tile.cols == 16
    r0, c0 = rasterio.open(tmp_path / "tex.tif").index(labels.transform.c + 5, labels.transform.f - 5)
    expected = truth[r0:r0 + labels.height, c0:c0 + labels.width]
    assert (labels.read(1) == expected).mean() > 0.95

    eot.TensorflowModelServe(serve, model_dir=model, out=tmp_path / "features.tif")  # the same through a file
    ImageClassifier(in_=tmp_path / "features.tif", model=tmp_path / "deep.skops", out=tmp_path / "via_file.tif")
    assert np.array_equal(rasterio.open(tmp_path / "via_file.tif").read(1), labels.read(1))

    raw = TrainImagesClassifier(io_il=tmp_path / "tex.tif", io_vd=tmp_path / "train.gpkg", sample_vfn="cls",
                                classifier="rf", classifier_rf_nbtrees=20, rand=2)
    assert raw.confusion.overall_accuracy < 0.6  # one band of 0/20 in every class: chance, about 1/3


# ------------------------------------------------------------------------------ every classifier, saved and loaded
def _options(name, **extra):
    from eotensor.apps.train_images_classifier import CLASSIFIER

    return {**{p.key: p.default for ch in CLASSIFIER.choices if ch.name == name for p in ch.params}, **extra}


EVERY_CLASSIFIER = [("rf", {}), ("libsvm", {}), ("svm", {"k": "rbf", "c": 2.0}), ("libsvm", {"prob": True}), ("libsvm", {"prob": True, "m": "nusvc"}),
                    ("knn", {"k": 5}), ("dt", {}), ("boost", {"w": 5}), ("bayes", {}),
                    ("ann", {"sizes": ["4"], "iter": 50}), ("ann", {"sizes": ["4"], "t": "back", "iter": 50}),
                    ("sgd", {"loss": "log_loss"}), ("sgd", {"loss": "hinge"}), ("sgd", {"loss": "modified_huber"})]


@pytest.fixture(scope="module")
def every_model(tmp_path_factory):
    """Each ``-classifier`` choice (and its variants with other fitted state) fitted on tiny data, saved, loaded."""
    from eotensor.classify.models import ClassifierModel, load_classifier, make_classifier

    tmp = tmp_path_factory.mktemp("every")
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(m, 1, (30, 4)) for m in (0, 2, 4)]).astype(np.float32)
    y = np.repeat([1, 2, 3], 30)
    loaded = {}
    for k, (name, extra) in enumerate(EVERY_CLASSIFIER):
        model = ClassifierModel.fit(make_classifier(name, _options(name, **extra), 0), name, x, y, None)
        loaded[(name, repr(extra))] = (model, load_classifier(model.save(tmp / f"{k}.skops")))
    return x, loaded


def test_every_classifier_saves_and_loads(every_model):
    """Every choice's fitted state is of trusted types (libsvm prob on: the calibration's), and the loaded model
    predicts as the fitted one."""
    x, loaded = every_model
    assert len(loaded) == len(EVERY_CLASSIFIER)
    for key, (fitted, back) in loaded.items():
        assert back.kind == key[0] and back.features == 4 and back.classes.tolist() == [1, 2, 3], key
        np.testing.assert_array_equal(back.predict(x)[0], fitted.predict(x)[0], err_msg=str(key))


def test_labels_do_not_depend_on_the_confidence_map(every_model):
    """Labels with and without -confmap are predict()'s (sgd modified_huber's probabilities' argmax differs from
    its decision far from the data); the confidence is the probability of that label, in [0, 1]."""
    _, loaded = every_model
    far = np.random.default_rng(1).normal(0, 30, (3000, 4)).astype(np.float32)
    kinds = 0
    for key, (_, model) in loaded.items():
        if not model.has_probabilities:
            continue
        kinds += 1
        plain, _ = model.predict(far)
        labels, confidence = model.predict(far, confidence=True)
        np.testing.assert_array_equal(labels, plain, err_msg=str(key))
        assert confidence.shape == labels.shape and np.all((confidence >= 0) & (confidence <= 1)), key
        same, probabilities = model.predict_probabilities(far)  # -probamap's; a forest's labels are its argmax
        np.testing.assert_array_equal(same, plain, err_msg=str(key))
        np.testing.assert_allclose(probabilities, model.estimator.predict_proba(far), err_msg=str(key))
    assert kinds >= 9


def test_wide_scenes_are_cut_across_and_match_one_prediction(every_model):
    """A strip of one block row wider than twice the tile budget is cut into whole column blocks; the map equals
    one prediction of the whole array (labels and probabilities)."""
    from eotensor.classify import Classification
    from eotensor.engine.tiling import TileShape
    from eotensor.lazy import ArrayRaster

    _, loaded = every_model
    model = loaded[("rf", repr({}))][1]
    array = np.random.default_rng(3).normal(2, 2, (300, 4100, 4)).astype(np.float32)
    features = ArrayRaster(array)
    whole = Classification(features, model, probabilities=3)
    assert whole.tile_shape() == TileShape(256, 1024)
    got = whole.read()
    labels, probabilities = model.predict_probabilities(array.reshape(-1, 4))
    assert np.array_equal(got[0].ravel(), labels)
    assert np.array_equal(labels, model.predict(array.reshape(-1, 4))[0])
    assert np.array_equal(got[1:].reshape(3, -1), (probabilities.T * 1000).astype(got.dtype))


def test_refused_values_and_non_finite_features_are_one_line_errors(tmp_path, capsys):
    """Values scikit-learn (or the data) refuse end the CLI with one line naming the key; training samples with a
    NaN feature are left out with a warning line (an error naming io.il when a class has none left); NaN or
    infinite pixels at prediction get nodatalabel."""
    from eotensor.apps.cli import main

    rng = np.random.default_rng(2)
    image = rng.normal(0, 1, (2, 20, 20)).astype(np.float32)
    image[:, :, 10:] += 4
    write_raster(tmp_path / "im.tif", image)
    vectors = _vectors(tmp_path / "v.gpkg", [_box(0, 0, 8, 20), _box(12, 0, 20, 20)], [1, 2])
    base = ["TrainImagesClassifier", "-io.il", str(tmp_path / "im.tif"), "-io.vd", vectors, "-sample.vfn", "cls",
            "-sample.bm", "0", "-sample.mt", "30", "-sample.mv", "10", "-io.out", str(tmp_path / "m.skops")]

    def refused(args, match):
        assert main(args) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(match, err[0]), err

    refused([*base, "-classifier", "libsvm", "-classifier.libsvm.c", "0"], r"classifier\.libsvm\.c: 0; expected a "
            "cost greater than 0")
    refused([*base, "-classifier", "svm", "-classifier.svm.c", "0"], r"classifier\.svm\.c: 0; expected a cost")
    refused([*base, "-classifier", "libsvm", "-classifier.libsvm.m", "nusvc", "-classifier.libsvm.nu", "0"],
            r"classifier\.libsvm\.\*: scikit-learn refused to fit \(.*nu")
    refused([*base, "-classifier", "knn", "-classifier.knn.k", "100"], r"classifier\.knn\.k: 100 neighbours but \d+ "
            "training samples")
    refused([*base, "-classifier", "ann", "-classifier.ann.sizes", "8", "x"], r"classifier\.ann\.sizes: \['8', 'x'\]")
    nan = image.copy()
    nan[1, ::2, :8] = np.nan
    write_raster(tmp_path / "nan.tif", nan)
    # NaN under half of class 1's rows: those samples are left out, one warning line per set
    assert main([*base[:2], str(tmp_path / "nan.tif"), *base[3:], "-classifier", "bayes", "-io.confmatout",
                 str(tmp_path / "cm.csv")]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "non-finite" in line]
    found = [re.fullmatch(r"warning: io\.il: (\d+) (training|validation) sample\(s\) hold a non-finite feature "
                          r"\(NaN or inf\) and are left out \(per class: 1: (\d+)\)", line) for line in err]
    assert len(err) == 2 and all(found) and {m.group(2) for m in found} == {"training", "validation"}
    assert all(m.group(1) == m.group(3) for m in found)
    skipped = sum(int(m.group(1)) for m in found)
    assert 0 < skipped < 20 and _csv_matrix(tmp_path / "cm.csv").sum(axis=1)[1] == 10  # class 2 untouched
    os.remove(tmp_path / "m.skops")
    nan[:, :, :8] = np.nan  # every pixel of class 1: nothing left to learn it from
    write_raster(tmp_path / "nan.tif", nan)
    refused([*base[:2], str(tmp_path / "nan.tif"), *base[3:], "-classifier", "bayes"],
            r"io\.il: every training sample of class\(es\) 1 holds a non-finite feature \(NaN or inf\)")
    assert not (tmp_path / "m.skops").exists()

    assert main([*base, "-classifier", "bayes"]) == 0
    holed = image.copy()
    holed[1, 3, 3], holed[0, 5, 15], holed[1, 6, 16] = np.nan, np.inf, -np.inf
    write_raster(tmp_path / "holed.tif", holed)
    assert main(["ImageClassifier", "-in", str(tmp_path / "holed.tif"), "-model", str(tmp_path / "m.skops"),
                 "-nodatalabel", "9", "-out", str(tmp_path / "map.tif"), "-confmap", str(tmp_path / "c.tif")]) == 0
    labels, confidence = rasterio.open(tmp_path / "map.tif").read(1), rasterio.open(tmp_path / "c.tif").read(1)
    bad = ~np.isfinite(holed).all(axis=0)
    assert bad.sum() == 3 and (labels[bad] == 9).all() and (confidence[bad] == 0).all()
    assert set(np.unique(labels[~bad])) == {1, 2} and (confidence[~bad] > 0.5).all()


def test_sidecar_is_checked_against_the_estimator(tmp_path):
    """Another scikit-learn version warns with both versions; a sidecar missing a key, or whose classes or
    feature count disagree with the estimator's, is one line."""
    import sklearn

    from eotensor.classify.models import ClassifierModel, load_classifier, make_classifier

    x = np.random.default_rng(0).normal(0, 1, (20, 3)).astype(np.float32)
    path = ClassifierModel.fit(make_classifier("bayes", {}, 0), "bayes", x, np.repeat([1, 5], 10), None) \
        .save(tmp_path / "m.skops")
    meta = json.load(open(path + ".json"))

    def load_with(**changes):
        with open(path + ".json", "w") as stream:
            json.dump({k: v for k, v in {**meta, **changes}.items() if v is not None}, stream)
        return load_classifier(path)

    with pytest.warns(UserWarning, match=rf"written with scikit-learn 0\.1 and is loaded with {sklearn.__version__}"):
        assert load_with(sklearn="0.1").classes.tolist() == [1, 5]
    with pytest.raises(InputFileError, match=r'model: ".*m.skops.json" has no features, classes; expected'):
        load_with(features=None, classes=None)
    with pytest.raises(InputFileError, match=r"holds a classifier of 3 feature\(s\) and classes \[1, 5\], but its "
                                             r"sidecar says 3 and \[1, 2\]"):
        load_with(classes=[1, 2])
    with pytest.raises(InputFileError, match=r"but its sidecar says 4 and"):
        load_with(features=4)


def test_svm_is_libsvm_under_otb_6s_name(tmp_path):
    """The issue's (and OTB 6's) -classifier svm with -classifier.svm.c / .k trains the very libsvm model."""
    from eotensor.apps.train_images_classifier import TrainImagesClassifier

    rng = np.random.default_rng(5)
    image = rng.normal(0, 1, size=(3, 20, 20)).astype(np.float32)
    image[:, :, 10:] += 3
    write_raster(tmp_path / "im.tif", image)
    vectors = _vectors(tmp_path / "v.gpkg", [_box(0, 0, 8, 20), _box(12, 0, 20, 20)], [1, 2])
    common = {"io_il": [str(tmp_path / "im.tif")], "io_vd": [vectors], "sample_vfn": "cls", "rand": 3}
    models = []
    for name in ("svm", "libsvm"):
        TrainImagesClassifier(**common, classifier=name, **{f"classifier_{name}_c": 2.5, f"classifier_{name}_k": "rbf",
                              "io_out": tmp_path / f"{name}.skops"})
        from eotensor.classify.models import load_classifier

        models.append(load_classifier(tmp_path / f"{name}.skops"))
    svm, libsvm = (m.estimator for m in models)
    assert (svm.C, svm.kernel) == (libsvm.C, libsvm.kernel) == (2.5, "rbf")
    x = image.reshape(3, -1).T
    np.testing.assert_array_equal(svm.predict(x), libsvm.predict(x))
