"""PatchesExtraction (sampling/extraction.py, apps/patches_extraction.py): every patch against a NumPy slice of
real rasters, borders, no-data, several resolutions, CRSs, the output format, and the one-line errors."""

from __future__ import annotations

import json
import os
import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eotensor.apps.cli import main
from eotensor.apps.patches_extraction import PatchesExtraction
from eotensor.errors import InputFileError, OutputFileError, ParameterError
from eotensor.io.vector import write_points
from eotensor.testing import write_raster

LEFT, TOP = 300000.0, 4900020.0
"""Upper-left corner of every test raster (write_raster's default origin), UTM 31N."""


def _xy(rows, cols, spacing=10.0, fraction=0.5):
    """World coordinates of pixel (row, col) of a raster with ``spacing`` and the corner (LEFT, TOP); ``fraction``
    places the point inside the pixel (0.5: its centre)."""
    rows, cols = np.asarray(rows, np.float64), np.asarray(cols, np.float64)
    return LEFT + (cols + fraction) * spacing, TOP - (rows + fraction) * spacing


def _points(path, x, y, values, crs="EPSG:32631"):
    return write_points(str(path), np.asarray(x, np.float64), np.asarray(y, np.float64),
                        {"class": np.asarray(values)}, crs, "vec")


def _read(path):
    """Pixels and metadata (read while the file is open)."""
    with rasterio.open(path) as ds:
        meta = SimpleNamespace(width=ds.width, height=ds.height, count=ds.count, dtypes=ds.dtypes, crs=ds.crs,
                               transform=ds.transform, tiled=ds.profile["tiled"], block=ds.block_shapes[0])
        return ds.read(), meta


def _expected(image, starts, patch):
    """Patches stacked along rows, cut with plain slices: the reference."""
    psx, psy = patch
    if not starts:
        return np.zeros((image.shape[0], 0, psx), image.dtype)
    return np.concatenate([image[:, r:r + psy, c:c + psx] for r, c in starts], axis=1)


@st.composite
def cases(draw):
    bands = draw(st.integers(1, 3))
    height, width = draw(st.integers(1, 30)), draw(st.integers(1, 30))
    psx, psy = draw(st.integers(1, min(9, width))), draw(st.integers(1, min(9, height)))
    n = draw(st.integers(1, 25))
    rows = draw(st.lists(st.integers(-2, height + 1), min_size=n, max_size=n))
    cols = draw(st.lists(st.integers(-2, width + 1), min_size=n, max_size=n))
    fraction = draw(st.sampled_from([0.01, 0.5, 0.99]))
    nodata = draw(st.sampled_from([None, -1.0, float("nan")]))
    holes = draw(st.lists(st.tuples(st.integers(0, bands - 1), st.integers(0, height - 1),
                                    st.integers(0, width - 1)), max_size=4))
    ram = draw(st.sampled_from([1e-4, 3e-3, 256.0]))  # one row per strip, a few rows, everything at once
    workers = draw(st.sampled_from([0, 2]))
    return bands, height, width, (psx, psy), rows, cols, fraction, nodata, holes, ram, workers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_patch_is_the_numpy_slice_of_the_source(case):
    bands, height, width, patch, rows, cols, fraction, nodata, holes, ram, workers = case
    psx, psy = patch
    image = np.random.default_rng(len(rows)).integers(0, 1000, (bands, height, width)).astype(np.float32)
    for b, r, c in holes:
        image[b, r, c] = nodata if nodata is not None else image[b, r, c]
    with tempfile.TemporaryDirectory() as tmp:
        source = write_raster(os.path.join(tmp, "a.tif"), image)
        x, y = _xy(rows, cols, fraction=fraction)
        vec = _points(os.path.join(tmp, "p.gpkg"), x, y, np.arange(len(rows)))
        # The reference: the whole patch inside, then no band of any pixel equal to the no-data value.
        kept = []
        for k, (r, c) in enumerate(zip(rows, cols)):
            r0, c0 = r - psy // 2, c - psx // 2
            if not (0 <= r0 and r0 + psy <= height and 0 <= c0 and c0 + psx <= width):
                continue
            window = image[:, r0:r0 + psy, c0:c0 + psx]
            if nodata is not None and (np.isnan(window).any() if np.isnan(nodata) else (window == nodata).any()):
                continue
            kept.append((k, r0, c0))
        def run():
            return PatchesExtraction(source1_il=source, source1_out=os.path.join(tmp, "o.tif"),
                                     source1_patchsizex=psx, source1_patchsizey=psy, source1_nodata=nodata,
                                     vec=vec, field="class", outlabels=os.path.join(tmp, "l.tif"), ram=ram,
                                     threads=workers)

        if not kept:
            with pytest.raises(ParameterError, match=f"no patch extracted .*: {len(rows)} feature"):
                run()
            assert sorted(os.listdir(tmp)) == ["a.tif", "p.gpkg"]
            return
        result = run()
        patches, ds = _read(os.path.join(tmp, "o.tif"))
        np.testing.assert_array_equal(patches, _expected(image, [(r, c) for _, r, c in kept], patch))
        labels, _ = _read(os.path.join(tmp, "l.tif"))
        assert labels.shape == (1, len(kept), 1)
        assert labels[0, :, 0].tolist() == [k for k, _, _ in kept]
    counts = result.counts
    assert counts.accepted == len(kept) and counts.accepted + counts.rejected == len(rows)


@pytest.mark.parametrize("order", ["raster", "random"])
def test_many_points_in_any_order_over_many_strips(tmp_path, order):
    """Points in raster order are written run by run; in random order through the scratch file: same patches."""
    rng = np.random.default_rng(3)
    image = rng.integers(-500, 500, (2, 90, 70)).astype(np.int16)
    source = write_raster(tmp_path / "a.tif", image)
    rows, cols = rng.integers(3, 87, 300), rng.integers(3, 67, 300)
    if order == "raster":
        rows, cols = rows[np.lexsort((cols, rows))], cols[np.lexsort((cols, rows))]
    vec = _points(tmp_path / "p.gpkg", *_xy(rows, cols), np.arange(300))
    out = tmp_path / "out"
    out.mkdir()
    PatchesExtraction(source1_il=source, source1_out=(str(out / "o.tif"), "int16"), source1_patchsizex=7,
                      source1_patchsizey=6, vec=vec, field="class", ram=0.02, threads=2)
    patches, _ = _read(out / "o.tif")
    np.testing.assert_array_equal(patches, _expected(image, [(r - 3, c - 3) for r, c in zip(rows, cols)], (7, 6)))
    assert os.listdir(out) == ["o.tif"]  # the scratch file is gone


def test_border_points_are_kept_exactly_while_the_patch_fits(tmp_path):
    image = np.arange(20 * 30, dtype=np.float32).reshape(1, 20, 30)
    source = write_raster(tmp_path / "a.tif", image)
    for psx, keep, drop in ((5, [2, 27], [1, 28]), (4, [2, 28], [1, 29])):
        cols = keep + drop
        x, y = _xy([10] * 4, cols)
        vec = _points(tmp_path / f"p{psx}.gpkg", x, y, [0, 1, 2, 3])
        out = tmp_path / f"o{psx}.tif"
        result = PatchesExtraction(source1_il=source, source1_out=str(out), source1_patchsizex=psx,
                                   source1_patchsizey=1, vec=vec, field="class")
        assert (result.counts.accepted, result.counts.outside) == (2, 2)
        patches, _ = _read(out)
        np.testing.assert_array_equal(patches, _expected(image, [(10, c - psx // 2) for c in keep], (psx, 1)))


def test_a_point_on_a_pixel_edge_rounds_half_up(tmp_path):
    image = np.arange(10 * 10, dtype=np.float32).reshape(1, 10, 10)
    source = write_raster(tmp_path / "a.tif", image)
    x, y = _xy([4], [4], fraction=0.0)  # the upper-left corner of pixel (4, 4): the tie goes to (4, 4) in x, y
    vec = _points(tmp_path / "p.gpkg", x, y, [1])
    PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=1,
                      source1_patchsizey=1, vec=vec, field="class")
    patches, _ = _read(tmp_path / "o.tif")
    # x: continuous index 3.5 rounds up to column 4; y (negative spacing): 3.5 rounds up to row 4
    assert patches[0, 0, 0] == image[0, 4, 4]


def test_no_data_in_any_band_of_any_pixel_rejects_the_patch(tmp_path):
    image = np.ones((3, 12, 12), np.float32)
    image[2, 3, 9] = -9999  # in the patch of the second point only, in its last band, at a corner
    source = write_raster(tmp_path / "a.tif", image)
    x, y = _xy([3, 4, 8], [3, 8, 3])
    vec = _points(tmp_path / "p.gpkg", x, y, [0, 1, 2])
    result = PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=3,
                               source1_patchsizey=3, source1_nodata=-9999, vec=vec, field="class",
                               outlabels=str(tmp_path / "l.tif"))
    assert (result.counts.accepted, result.counts.nodata) == (2, 1)
    labels, _ = _read(tmp_path / "l.tif")
    assert labels.ravel().tolist() == [0, 2]


def test_sources_at_two_resolutions_give_patches_centred_on_the_same_point(tmp_path):
    rng = np.random.default_rng(1)
    fine = rng.integers(0, 10000, (2, 60, 80)).astype(np.int16)
    coarse = rng.integers(0, 255, (1, 30, 40)).astype(np.uint8)
    a = write_raster(tmp_path / "fine.tif", fine, spacing=10.0)
    b = write_raster(tmp_path / "coarse.tif", coarse, spacing=20.0)
    x = LEFT + rng.uniform(0, 800, 40)
    y = TOP - rng.uniform(0, 600, 40)
    vec = _points(tmp_path / "p.gpkg", x, y, np.arange(40))
    result = PatchesExtraction(source1_il=a, source1_out=(str(tmp_path / "o1.tif"), "int16"),
                               source1_patchsizex=8, source1_patchsizey=8,
                               source2_il=b, source2_out=(str(tmp_path / "o2.tif"), "uint8"),
                               source2_patchsizex=4, source2_patchsizey=4, vec=vec, field="class")
    kept1, kept2 = [], []
    for k in range(40):
        r1, c1 = int((TOP - y[k]) // 10) - 4, int((x[k] - LEFT) // 10) - 4
        r2, c2 = int((TOP - y[k]) // 20) - 2, int((x[k] - LEFT) // 20) - 2
        if 0 <= r1 <= 60 - 8 and 0 <= c1 <= 80 - 8 and 0 <= r2 <= 30 - 4 and 0 <= c2 <= 40 - 4:
            kept1.append((r1, c1))
            kept2.append((r2, c2))
    assert result.counts.accepted == len(kept1) > 20
    o1, ds1 = _read(tmp_path / "o1.tif")
    o2, ds2 = _read(tmp_path / "o2.tif")
    assert (ds1.dtypes[0], ds2.dtypes[0]) == ("int16", "uint8")
    np.testing.assert_array_equal(o1, _expected(fine, kept1, (8, 8)))
    np.testing.assert_array_equal(o2, _expected(coarse, kept2, (4, 4)))


def test_output_format_geotransform_labels_and_image_lists(tmp_path):
    a = write_raster(tmp_path / "a.tif", np.zeros((2, 40, 50), np.float32), spacing=(10.0, 20.0))
    b = write_raster(tmp_path / "b.tif", np.ones((1, 40, 50), np.float32), spacing=(10.0, 20.0))
    x, y = _xy([10, 20, 30], [10, 20, 30], spacing=10.0)
    y = TOP - (np.array([10, 20, 30]) + 0.5) * 20.0
    vec = _points(tmp_path / "p.gpkg", x, y, [300, -5, 7])
    PatchesExtraction(source1_il=[a, b], source1_out=str(tmp_path / "o.tif"), source1_patchsizex=5,
                      source1_patchsizey=3, vec=vec, field="class", outlabels=str(tmp_path / "l.tif"))
    patches, ds = _read(tmp_path / "o.tif")
    assert (ds.width, ds.height, ds.count, ds.dtypes[0]) == (5, 9, 3, "float32")
    assert ds.crs is None
    assert tuple(ds.transform)[:6] == (10.0, 0.0, -5.0, 0.0, -20.0, 10.0)  # pixel (0, 0)'s centre at (0, 0)
    assert (patches[:2] == 0).all() and (patches[2] == 1).all()  # bands of image 1, then image 2
    labels, lds = _read(tmp_path / "l.tif")
    assert (lds.width, lds.height, lds.count, lds.dtypes[0], lds.crs) == (1, 3, 1, "uint8", None)
    assert labels.ravel().tolist() == [255, 0, 7]  # OTB clamping to uint8


def test_patches_are_written_one_strip_per_patch_unless_gdal_co_says_otherwise(tmp_path):
    image = np.arange(3 * 40 * 40, dtype=np.float32).reshape(3, 40, 40)
    source = write_raster(tmp_path / "a.tif", image)
    rows, cols = [20, 5, 30, 12], [7, 33, 18, 25]
    vec = _points(tmp_path / "p.gpkg", *_xy(rows, cols), [0, 1, 2, 3])
    expected = _expected(image, [(r - 3, c - 3) for r, c in zip(rows, cols)], (6, 6))
    for name, extended in (("strips.tif", ""), ("tiled.tif", "?&gdal:co:TILED=YES&gdal:co:COMPRESS=DEFLATE")):
        PatchesExtraction(source1_il=source, source1_out=str(tmp_path / name) + extended, source1_patchsizex=6,
                          source1_patchsizey=6, vec=vec, field="class")
        patches, ds = _read(tmp_path / name)
        np.testing.assert_array_equal(patches, expected)
        assert ds.tiled == (name == "tiled.tif")
        if name == "strips.tif":
            assert ds.block == (6, 6)


@pytest.mark.parametrize("pixel_type", ["uint8", "int16"])
def test_patches_are_converted_with_otb_clamping(tmp_path, pixel_type):
    image = np.array([[[-3.7, 300.5, 1.7], [np.nan, 40000.6, -2.7]]], np.float32)
    source = write_raster(tmp_path / "a.tif", image)
    vec = _points(tmp_path / "p.gpkg", *_xy([1], [1]), [0])  # psy 2: the patch starts one row above
    PatchesExtraction(source1_il=source, source1_out=(str(tmp_path / "o.tif"), pixel_type), source1_patchsizex=3,
                      source1_patchsizey=2, vec=vec, field="class")
    info = np.iinfo(pixel_type)
    expected = np.trunc(np.clip(np.nan_to_num(image, nan=0.0), info.min, info.max)).astype(pixel_type)
    patches, ds = _read(tmp_path / "o.tif")
    assert ds.dtypes[0] == pixel_type
    np.testing.assert_array_equal(patches, expected)


def test_points_in_another_crs_are_reprojected(tmp_path):
    from rasterio.warp import transform

    image = np.random.default_rng(2).integers(0, 100, (1, 50, 50)).astype(np.float32)
    source = write_raster(tmp_path / "a.tif", image)
    rows, cols = [10, 25, 40], [12, 30, 8]
    x, y = _xy(rows, cols)
    lon, lat = transform("EPSG:32631", "EPSG:4326", x, y)
    vec = _points(tmp_path / "p.gpkg", lon, lat, [0, 1, 2], crs="EPSG:4326")
    PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=5,
                      source1_patchsizey=5, vec=vec, field="class")
    patches, _ = _read(tmp_path / "o.tif")
    np.testing.assert_array_equal(patches, _expected(image, [(r - 2, c - 2) for r, c in zip(rows, cols)], (5, 5)))


def test_a_layer_without_crs_is_taken_in_the_image_crs_with_a_warning(tmp_path):
    image = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    source = write_raster(tmp_path / "a.tif", image)
    vec = _points(tmp_path / "p.gpkg", *_xy([5], [6]), [1], crs=None)
    with pytest.warns(UserWarning, match="has no CRS; its coordinates are taken as in the CRS of"):
        PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=1,
                          source1_patchsizey=1, vec=vec, field="class")
    assert _read(tmp_path / "o.tif")[0].ravel().tolist() == [56.0]


def _geojson(path, features):
    doc = {"type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": "EPSG:32631"}},
           "features": [{"type": "Feature", "geometry": g, "properties": p} for g, p in features]}
    path.write_text(json.dumps(doc))
    return str(path)


def test_missing_field_is_skipped_and_other_geometries_rejected(tmp_path):
    image = np.arange(400, dtype=np.float32).reshape(1, 20, 20)
    source = write_raster(tmp_path / "a.tif", image)
    (x0, x1), (y0, y1) = _xy([5, 9], [5, 9])
    square = [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]
    vec = _geojson(tmp_path / "v.geojson", [
        ({"type": "Point", "coordinates": [x0, y0]}, {"class": 1}),
        ({"type": "Point", "coordinates": [x1, y1]}, {"class": None}),
        ({"type": "Polygon", "coordinates": square}, {"class": 3}),
        ({"type": "Point", "coordinates": [x1, y1]}, {"class": 4}),
    ])
    result = PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=1,
                               source1_patchsizey=1, vec=vec, field="class", outlabels=str(tmp_path / "l.tif"))
    counts = result.counts
    assert (counts.accepted, counts.not_point, counts.missing_field, counts.outside) == (2, 1, 1, 0)
    assert counts.summary() == "2 accepted; 1 rejected (0 outside, 0 no-data, 1 not a point); 1 skipped (missing field)"
    assert _read(tmp_path / "l.tif")[0].ravel().tolist() == [1, 4]
    assert _read(tmp_path / "o.tif")[0].ravel().tolist() == [image[0, 5, 5], image[0, 9, 9]]


def test_the_python_entry_is_reachable_from_the_package():
    import eotensor

    assert eotensor.PatchesExtraction is PatchesExtraction


def test_python_without_outputs_writes_nothing(tmp_path):
    source = write_raster(tmp_path / "a.tif", np.zeros((1, 10, 10), np.float32))
    vec = _points(tmp_path / "p.gpkg", *_xy([5], [5]), [1])
    result = PatchesExtraction({"source1.il": source, "source1.patchsizex": 3, "source1.patchsize_y": 2,
                                "vec": vec, "field": "class"})
    assert len(result.selection) == 1 and result.selection.starts[0][0].tolist() == [4]
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "p.gpkg"]


# --- the command line: summary and one-line errors, nothing written --------------------------------------------

@pytest.fixture
def files(tmp_path):
    image = np.arange(2 * 30 * 40, dtype=np.float32).reshape(2, 30, 40)
    source = write_raster(tmp_path / "a.tif", image)
    vec = _points(tmp_path / "p.gpkg", *_xy([10, 0, 20], [10, 20, 39]), [1, 2, 3])
    out = tmp_path / "out"
    out.mkdir()
    return source, vec, out


def _cli(capsys, *argv):
    status = main(["PatchesExtraction", *map(str, argv)])
    return status, capsys.readouterr().err


def _base(source, vec, out, size=4):
    return ["-source1.il", source, "-source1.out", out / "o.tif", "-source1.patchsizex", size,
            "-source1.patchsizey", size, "-vec", vec, "-field", "class"]


def test_cli_writes_and_prints_the_summary(files, capsys):
    source, vec, out = files
    status, err = _cli(capsys, *_base(source, vec, out), "-outlabels", out / "l.tif", "int16")
    assert status == 0
    assert "PatchesExtraction: 1 accepted; 2 rejected (2 outside, 0 no-data, 0 not a point); 0 skipped" in err
    assert _read(out / "l.tif")[1].dtypes[0] == "int16"
    assert sorted(os.listdir(out)) == ["l.tif", "o.tif"]


@pytest.mark.parametrize("change, message", [
    (("-vec", "missing.gpkg"), r'vec: vector file "missing.gpkg" does not exist'),
    (("-field", "nope"), r'field: ".*p.gpkg" has no field "nope"; its fields: class'),
    (("-source1.patchsizex", "41"), r'source1.patchsizex: a patch of 41x4 pixels is larger than source1 ".*a.tif" '
                                    r"\(40x30 pixels\)"),
    (("-source1.out", "OUT/o.xyz"), r'source1.out ".*o.xyz": extension ".xyz" is not a supported output format'),
    (("-source1.out", "IN"), r"source1.out: output file .* is also an input"),
    (("-source1.patchsizex", "0"), r"source1.patchsizex"),
])
def test_cli_errors_are_one_line_and_write_nothing(files, capsys, change, message):
    source, vec, out = files
    argv = _base(source, vec, out)
    key, value = change
    value = value.replace("OUT", str(out)).replace("IN", source)
    argv[argv.index(key) + 1] = value
    status, err = _cli(capsys, *argv)
    assert status != 0
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1 and len(err.strip().splitlines()) == 1, err
    assert __import__("re").search(message, lines[0]), lines[0]
    assert os.listdir(out) == []


def test_nothing_accepted_says_how_many_were_rejected_and_why(files, capsys):
    source, vec, out = files
    status, err = _cli(capsys, *_base(source, vec, out, size=25), "-source1.nodata", "5")
    assert status == 1
    assert err.strip().splitlines()[-1].startswith(
        'PatchesExtraction: error: vec: no patch extracted from "')
    assert "3 feature(s) rejected (3 outside, 0 no-data, 0 not a point), 0 skipped (missing field)" in err
    assert os.listdir(out) == []


def test_non_integer_values_and_no_points_are_errors(tmp_path, capsys):
    source = write_raster(tmp_path / "a.tif", np.zeros((1, 10, 10), np.float32))
    x, y = _xy([5], [5])
    floats = _geojson(tmp_path / "f.geojson", [({"type": "Point", "coordinates": [x[0], y[0]]}, {"class": 1.5})])
    with pytest.raises(ParameterError, match=r'field: field "class" of ".*f.geojson" holds .*1.5.* at feature 0; '
                                             "expected integer values"):
        PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=1,
                          source1_patchsizey=1, vec=floats, field="class")
    line = {"type": "LineString", "coordinates": [[x[0], y[0]], [x[0] + 5, y[0]]]}
    lines = _geojson(tmp_path / "l.geojson", [(line, {"class": 1})])
    with pytest.raises(InputFileError, match=r'vec: ".*l.geojson" holds no point features \(found: LineString\); '
                                             "expected points"):
        PatchesExtraction(source1_il=source, source1_out=str(tmp_path / "o.tif"), source1_patchsizex=1,
                          source1_patchsizey=1, vec=lines, field="class")
    assert sorted(os.listdir(tmp_path)) == ["a.tif", "f.geojson", "l.geojson"]


def test_a_failing_second_output_leaves_no_first_output(files):
    source, vec, out = files
    with pytest.raises(OutputFileError, match="source2.out"):
        PatchesExtraction(source1_il=source, source1_out=str(out / "o1.tif"), source1_patchsizex=2,
                          source1_patchsizey=2, source2_il=source, source2_out=str(out / "missing" / "o2.tif"),
                          source2_patchsizex=2, source2_patchsizey=2, vec=vec, field="class")
    assert os.listdir(out) == []
