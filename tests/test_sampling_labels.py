"""LabelImageSampleSelection (sampling/labels.py and its app): points per class against a NumPy reference.

The reference below is written from the behaviour reference (§6), independently of the implementation: class
counts with ``==``, steps and targets with Python integers, and the emitted pixels of a class as the
step-th, 2·step-th, ... of ``np.nonzero`` (raster order) of that class over the padded region.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pyogrio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.crs import CRS

from eotensor.apps.cli import main
from eotensor.apps.label_image_sample_selection import LabelImageSampleSelection
from eotensor.errors import InputFileError, ParameterError
from eotensor.io import vector
from eotensor.io.raster import RasterSource
from eotensor.sampling import labels as lab
from eotensor.testing import write_raster

ORIGIN = (1000.5, 2000.25)
SPACING = (2.5, 4.0)
_names = itertools.count()


def _raster(array, dtype="int16", **kwargs):
    """A label raster in GDAL's memory file system, with a non-trivial geotransform."""
    path = f"/vsimem/labels_{next(_names)}.tif"
    return write_raster(path, np.asarray(array), spacing=SPACING, origin=ORIGIN, dtype=dtype, **kwargs)


def _sampling(array, **kwargs):
    return lab.LabelSampling(RasterSource([_raster(array)], "inref"), **kwargs)


def reference(labels, nodata, pad, strategy, number):
    """(points as (row, col, class) in raster order, whether a warning is due), or an error: "none" / missing list."""
    height, width = labels.shape
    region = labels[pad:height - pad, pad:width - pad]
    labelled = region != nodata
    if not labelled.any():
        return "none", False
    low, high = int(region[labelled].min()), int(region[labelled].max())
    counts = [int(np.sum((region == value) & labelled)) for value in range(low, high + 1)]
    missing = [low + k for k, n in enumerate(counts) if n == 0]
    if missing:
        return missing, False
    warn = False
    if strategy == "constant":
        target = number
        if min(counts) < number:
            target, warn = min(counts), True
        targets = [target] * len(counts)
        steps = [n // target for n in counts]
    elif strategy == "total":
        step = sum(counts) // number
        if step == 0:
            step, warn = 1, True
        steps = [step] * len(counts)
        targets = [n // step for n in counts]
    elif strategy == "smallest":
        targets = [min(counts)] * len(counts)
        steps = [n // min(counts) for n in counts]
    else:
        steps, targets = [1] * len(counts), counts
    points = []
    for k, value in enumerate(range(low, high + 1)):
        rows, cols = np.nonzero((region == value) & labelled)
        chosen = slice(steps[k] - 1, steps[k] * targets[k], steps[k])
        points += [(r + pad, c + pad, k) for r, c in zip(rows[chosen], cols[chosen])]
    return sorted(points), warn


@st.composite
def label_cases(draw):
    rows, cols = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    offset = draw(st.integers(0, 3))
    labels = draw(arrays(np.int16, (rows, cols), elements=st.integers(0, draw(st.integers(0, 4))))) + offset
    nodata = draw(st.sampled_from([-1, 0, 2, 7]))
    holes = draw(arrays(np.bool_, (rows, cols)))
    labels[holes] = nodata
    return dict(
        labels=labels, nodata=nodata, pad=draw(st.integers(0, 3)), strategy=draw(st.sampled_from(lab.STRATEGIES)),
        number=draw(st.integers(1, 40)), ram=draw(st.sampled_from([None, 1e-6, 1e-4, 2e-3])),
        scheduler=draw(st.sampled_from(["sync", "threads"])), workers=draw(st.sampled_from([None, 1, 3])),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(label_cases())
def test_points_equal_the_numpy_reference(case):
    labels, pad = case["labels"], case["pad"]
    kwargs = dict(strategy=case["strategy"], number=case["number"], nodata=case["nodata"], pad=pad,
                  ram_mb=case["ram"], scheduler=case["scheduler"], workers=case["workers"])
    if 2 * pad >= min(labels.shape):
        with pytest.raises(ParameterError, match=rf"^pad: {pad} leaves no pixel of .* expected 0 <= pad <= "):
            _sampling(labels, **kwargs)
        return
    expected, warn = reference(labels, case["nodata"], pad, case["strategy"], case["number"])
    sampling = _sampling(labels, **kwargs)
    if case["ram"] == 1e-6:
        assert len(sampling.strips) == labels.shape[0] - 2 * pad  # one-row strips: counters carried across them
    if expected == "none":
        with pytest.raises(InputFileError, match="has no labelled pixel"):
            sampling.points  # noqa: B018
        return
    if isinstance(expected, list) and expected and not isinstance(expected[0], tuple):
        named = ", ".join(map(str, expected[:10]))
        with pytest.raises(InputFileError, match=rf"labels? {named}(, \.\.\.)? ha(s|ve) no pixel.*no sample!"):
            sampling.points  # noqa: B018
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        points = sampling.points
    assert bool(caught) == warn, [str(w.message) for w in caught]
    got = list(zip(points.rows.tolist(), points.cols.tolist(), points.classes.tolist()))
    assert got == expected  # the same pixels, in raster order, with 0-based classes
    assert points.classes.dtype == np.int16 and (not got or points.classes.min() >= 0)
    x, y = points.xy()
    assert np.array_equal(x, ORIGIN[0] + (points.cols + 0.5) * SPACING[0])
    assert np.array_equal(y, ORIGIN[1] - (points.rows + 0.5) * SPACING[1])
    plan = sampling.plan
    assert np.array_equal(np.bincount(points.classes, minlength=len(plan.counts)), plan.targets)


@settings(max_examples=100, deadline=None)
@given(arrays(np.int16, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(-1, 30)),
       st.integers(0, 40))
def test_strip_labels_by_scan_or_by_sort_group_pixels_by_class(labels, scan_classes):
    present = np.unique(labels[labels >= 0])
    first = int(present[0]) if len(present) else 0
    n = int(present[-1]) - first + 1 if len(present) else 1
    plan = lab.ClassPlan(first, np.ones(n, np.int64), np.ones(n, np.int64), np.ones(n, np.int64))
    strip = lab.strip_labels(labels, plan, scan_classes)
    flat = labels.ravel()
    assert strip.size == labels.size
    assert strip.counts.tolist() == [int(np.sum(flat == first + c)) for c in range(n)]
    assert strip.index.tolist() == [i for c in range(n) for i in range(flat.size) if flat[i] == first + c]


def test_every_step_th_pixel_of_a_class_in_raster_order():
    # One class of 10 pixels over two rows (strips of one row): total v=3 -> step 10 // 3 = 3, target 3: the
    # pixels numbered 3, 6, 9. constant nb=4 -> step 2, target 4: pixels 2, 4, 6, 8.
    labels = np.array([[5, 5, 5, 5, -1, 5], [5, -1, 5, 5, 5, 5]])
    total = _sampling(labels, strategy="total", number=3, ram_mb=1e-6).points
    assert list(zip(total.rows.tolist(), total.cols.tolist())) == [(0, 2), (1, 0), (1, 4)]
    constant = _sampling(labels, strategy="constant", number=4, ram_mb=1e-6).points
    assert list(zip(constant.rows.tolist(), constant.cols.tolist())) == [(0, 1), (0, 3), (1, 0), (1, 3)]
    assert set(constant.classes.tolist()) == {0}


def test_plan_classes_integer_arithmetic():
    counts = np.zeros(8, np.int64)
    counts[2:6] = [10, 25, 7, 100]
    plan = lab.plan_classes(counts, "constant", 5)
    assert plan.first == 2 and plan.labels.tolist() == [2, 3, 4, 5]
    assert plan.steps.tolist() == [2, 5, 1, 20] and plan.targets.tolist() == [5] * 4
    with pytest.warns(UserWarning, match="smallest class has 7 pixels but strategy.constant.nb is 50; taking 7"):
        assert lab.plan_classes(counts, "constant", 50).targets.tolist() == [7] * 4
    plan = lab.plan_classes(counts, "total", 20)  # 142 // 20 = 7
    assert plan.steps.tolist() == [7] * 4 and plan.targets.tolist() == [1, 3, 1, 14]
    with pytest.warns(UserWarning, match="142 labelled pixels, fewer than strategy.total.v = 500"):
        assert lab.plan_classes(counts, "total", 500).steps.tolist() == [1] * 4
    plan = lab.plan_classes(counts, "smallest")
    assert plan.steps.tolist() == [1, 3, 1, 14] and plan.targets.tolist() == [7] * 4
    plan = lab.plan_classes(counts, "all")
    assert plan.steps.tolist() == [1] * 4 and plan.targets.tolist() == [10, 25, 7, 100]


def test_empty_classes_are_named():
    counts = np.zeros(40, np.int64)
    counts[[0, 2, 30]] = 1
    with pytest.raises(InputFileError, match=r"^inref: labels 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, \.\.\. \(28 in all\) "
                                             r"have no pixel but the classes run from 0 to 30"):
        lab.plan_classes(counts, "all")
    with pytest.raises(InputFileError, match=r'^inref: "[^"]+": label 2 has no pixel .*"There is at least one class '
                                             r'with no sample!"'):
        _sampling(np.array([[1, 3], [3, -1]])).points  # noqa: B018
    with pytest.raises(InputFileError, match=r'^inref: "[^"]+" has no labelled pixel'):
        _sampling(np.full((3, 3), 9), nodata=9).points  # noqa: B018


@pytest.mark.parametrize("values, dtype, shown", [
    ([[1, 2], [1.5, 2]], "float32", r"1\.5 at pixel \(x=0, y=1\)"),
    ([[1, 2], [2, np.nan]], "float32", r"nan at pixel \(x=1, y=1\)"),
    ([[1, 40000], [2, 2]], "int32", r"40000 at pixel \(x=1, y=0\)"),
    ([[1, 2], [-3, 2]], "int16", r"-3 at pixel \(x=0, y=1\)"),
    ([[1, 2], [32767, 2]], "int16", r"32767 at pixel \(x=0, y=1\)"),
])
def test_labels_must_be_integers_in_range(values, dtype, shown):
    source = RasterSource([_raster(np.array(values), dtype=dtype)], "inref")
    with pytest.raises(InputFileError, match=rf'^inref: "[^"]+" holds {shown}; labels must be integers from 0 to '
                                             r"32766 \(pixels equal to nodata -1 excepted\)$"):
        lab.LabelSampling(source, ram_mb=1e-6).counts  # noqa: B018


def test_integer_valued_floats_and_large_nodata_are_fine():
    values = np.array([[1.0, 2.0], [65535.0, 32766.0]])
    # 65535 is nodata, 32766 the largest label: classes 1..32766 have gaps, so count only.
    counts = lab.LabelSampling(RasterSource([_raster(values, dtype="float32")]), nodata=65535).counts
    assert counts[[1, 2, 32766]].tolist() == [1, 1, 1] and counts.sum() == 3


def test_multiband_label_image_is_refused_unless_a_band_is_selected():
    path = _raster(np.stack([np.zeros((3, 3)), np.ones((3, 3))]))
    with pytest.raises(InputFileError, match=r'^inref: "[^"]+" has 2 bands; a label image has one \(select it with '
                                             r'an extended filename: "[^"]+\?&bands=1"\)$'):
        lab.LabelSampling(RasterSource([path], "inref"))
    points = lab.LabelSampling(RasterSource([path + "?&bands=2"], "inref"), strategy="all").points
    assert len(points) == 9 and set(points.classes.tolist()) == {0}


def test_file_no_data_other_than_nodata_warns():
    with pytest.warns(UserWarning, match=r'declares no-data 0 but nodata is -1; only pixels equal to -1 are skipped'):
        lab.LabelSampling(RasterSource([_raster(np.ones((2, 2)), nodata=0)], "inref"))


# The command line and the Python function ----------------------------------------------------------------------

@pytest.fixture
def label_file(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(2, 6, size=(30, 41)).astype(np.int16)
    labels[rng.random(labels.shape) < 0.2] = -1
    return str(write_raster(tmp_path / "labels.tif", labels, spacing=SPACING, origin=ORIGIN)), labels


def _read(path):
    meta, _, wkb, data = pyogrio.raw.read(path)
    import shapely

    geoms = shapely.from_wkb(wkb)
    return meta, shapely.get_x(geoms), shapely.get_y(geoms), data[meta["fields"].tolist().index("class")]


@pytest.mark.parametrize("name", ["points.gpkg", "points.geojson"])
def test_cli_writes_points_with_the_image_crs(label_file, tmp_path, capsys, name):
    path, labels = label_file
    out = tmp_path / name
    assert main(["LabelImageSampleSelection", "-inref", path, "-strategy", "constant", "-strategy.constant.nb", "20",
                 "-pad", "2", "-ram", "0.001", "-outvec", str(out)]) == 0
    err = capsys.readouterr().err
    assert "4 classes (labels 2 to 5, nodata -1), strategy constant: wrote 80 points" in err
    assert "label  class  pixels  step  points" in err
    meta, x, y, classes = _read(str(out))
    assert CRS.from_user_input(meta["crs"]) == CRS.from_epsg(32631)
    expected, _ = reference(labels, -1, 2, "constant", 20)
    rows, cols, want = (np.array(v) for v in zip(*expected))
    assert classes.tolist() == want.tolist() and np.bincount(classes).tolist() == [20] * 4
    assert np.allclose(x, ORIGIN[0] + (cols + 0.5) * SPACING[0]) and np.allclose(y, ORIGIN[1] - (rows + 0.5) *
                                                                                   SPACING[1])


def test_python_function_and_library_name(label_file, tmp_path):
    import eotensor as eot

    path, labels = label_file
    assert eot.LabelImageSampleSelection is LabelImageSampleSelection
    lazy = LabelImageSampleSelection(inref=path, strategy="all")  # no outvec: nothing written, nothing read yet
    assert "counts" not in lazy.__dict__ and not list(tmp_path.glob("*.gpkg"))
    assert len(lazy.points) == int(np.sum(labels != -1))
    result = LabelImageSampleSelection({"inref": path, "strategy": "total", "strategy.total.v": "50"},
                                       outvec=tmp_path / "t.gpkg")
    _, _, _, classes = _read(str(tmp_path / "t.gpkg"))
    assert classes.tolist() == result.points.classes.tolist() and len(classes) >= 50 - 4


BAD = {
    "missing inref": (["-inref", "{dir}/nope.tif"], r'inref: input file ".*nope.tif" does not exist'),
    "unreadable inref": (["-inref", "{dir}/text.tif"], r'inref: cannot read ".*text.tif" as a raster'),
    "pad too large": (["-inref", "{labels}", "-pad", "15"], r"pad: 15 leaves no pixel of .* \(41x30 pixels\); "
                                                             r"expected 0 <= pad <= 14"),
    "negative pad": (["-inref", "{labels}", "-pad", "-1"], r"-pad"),
    "nb below 1": (["-inref", "{labels}", "-strategy.constant.nb", "0"], r"-strategy.constant.nb"),
    "unknown strategy": (["-inref", "{labels}", "-strategy", "some"], r"-strategy expects one of constant, total"),
    "empty class": (["-inref", "{dir}/gap.tif"], r'inref: ".*gap.tif": labels 2, 4 have no pixel but the classes '
                                                  r'run from 1 to 5 without gaps'),
    "no labelled pixel": (["-inref", "{dir}/gap.tif", "-nodata", "5", "-pad", "1"], r'inref: ".*gap.tif" has no '
                                                                                    r"labelled pixel"),
    "negative label": (["-inref", "{labels}", "-nodata", "0"], r'inref: ".*labels.tif" holds -1 at pixel'),
    "unknown format": (["-inref", "{labels}"], r'outvec: cannot write ".*points.txt": unknown vector format ".txt"',
                       "points.txt"),
    "output is the input": (["-inref", "{labels}"], r"outvec: ", "labels.tif"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gives_one_clear_line(case, label_file, tmp_path, capsys):
    path, labels = label_file
    args, pattern, *out = BAD[case]
    (tmp_path / "text.tif").write_text("not a raster")
    write_raster(tmp_path / "gap.tif", np.array([[1, 1, 1], [3, 5, 5], [5, 5, 5]]))
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(dir=tmp_path, labels=path) for a in args] + ["-outvec", str(tmp_path / (out[0] if out else "points.gpkg"))]
    assert main(["LabelImageSampleSelection", *argv]) != 0
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning" not in line]
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert __import__("re").search(pattern, err[0]), err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("name", ["p.gpkg", "p.geojson", "p.shp", "p.sqlite", "p.gml"])
def test_points_written_in_chunks_are_the_points(tmp_path, name):
    sampling = _sampling(np.arange(35).reshape(5, 7) % 3, strategy="all")
    path = vector.write_point_chunks(tmp_path / name, sampling.points.chunks(4), "EPSG:32631", "outvec")
    _, x, y, classes = _read(path)
    want_x, want_y = sampling.points.xy()
    assert np.array_equal(x, want_x) and np.array_equal(y, want_y)
    assert classes.tolist() == sampling.points.classes.tolist() == (np.arange(35) % 3).tolist()
    leftovers = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("p."))
    assert leftovers == []
    if name == "p.gpkg":  # several chunks: no R-tree (appending to one is slow); one chunk: GDAL's default R-tree
        import sqlite3

        one = vector.write_point_chunks(tmp_path / "one.gpkg", sampling.points.chunks(), None, "outvec")
        for file, rtree in ((path, False), (one, True)):
            with sqlite3.connect(file) as db:
                tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            assert any(t.startswith("rtree_") for t in tables) == rtree, tables


def test_no_point_writes_an_empty_layer(tmp_path):
    chunks = list(vector.point_chunks(np.zeros(0), np.zeros(0), {"class": np.zeros(0, np.int32)}, 4))
    assert len(chunks) == 1
    path = vector.write_point_chunks(tmp_path / "e.gpkg", chunks, "EPSG:32631", "outvec")
    meta, _, wkb, _ = pyogrio.raw.read(path)
    assert len(wkb) == 0 and meta["fields"].tolist() == ["class"]
