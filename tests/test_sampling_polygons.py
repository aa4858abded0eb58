"""DensePolygonClassStatistics: counts against a NumPy reference (hypothesis) and against OTB's
PolygonClassStatistics on the same files, the XML that OTB's SampleSelection reads, and every bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings

import numpy as np
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import (
    GeometryCollection,
    LineString,
    MultiLineString,
    MultiPoint,
    MultiPolygon,
    Point,
    Polygon,
    box,
)

from eotensor.apps.cli import main
from eotensor.apps.dense_polygon_class_statistics import DensePolygonClassStatistics
from eotensor.errors import InputFileError, OutputFileError, ParameterError
from eotensor.geometry import Axis, Grid
from eotensor.io.otbxml import read_maps
from eotensor.sampling.polygons import below, class_counts, explode, feature_counts
from eotensor.testing import write_raster

OTB = shutil.which("otbcli_PolygonClassStatistics")
needs_otb = pytest.mark.skipif(OTB is None, reason="otbcli_PolygonClassStatistics is not on PATH (Debian otb-bin)")


# ---------------------------------------------------------------- an independent reference, pixel by pixel

def centres(grid):
    cols, rows = np.meshgrid(np.arange(grid.width), np.arange(grid.height))
    return grid.x.origin + grid.x.spacing * cols, grid.y.origin + grid.y.spacing * rows


def reference_polygon(polygon, grid):
    """Centres inside by OTB's rule, as a perturbation: a centre on an edge is moved a hair right (and a
    hair's hair up), so it is in on left and bottom edges and out on right and top ones. Lattice coordinates
    keep every other centre far from the edges compared with the hair."""
    x, y = centres(grid)
    x, y = x + 1e-4, y + 1e-8

    def inside(ring):
        return shapely.contains_xy(Polygon(ring), x, y)

    result = inside(polygon.exterior)
    for hole in polygon.interiors:
        result &= ~inside(hole)
    return int(result.sum())


def reference_point(point, grid):
    col = np.floor((point.x - grid.x.origin) / grid.x.spacing + 0.5)
    row = np.floor((point.y - grid.y.origin) / grid.y.spacing + 0.5)
    return int(0 <= col < grid.width and 0 <= row < grid.height)


def reference_count(geometry, grid):
    if geometry is None or geometry.is_empty:
        return 0
    if hasattr(geometry, "geoms"):
        return sum(reference_count(part, grid) for part in geometry.geoms)
    if geometry.geom_type == "Polygon":
        return reference_polygon(geometry, grid)
    if geometry.geom_type == "Point":
        return reference_point(geometry, grid)
    raise AssertionError(geometry.geom_type)


# ---------------------------------------------------------------- drawn grids and features

@st.composite
def grids(draw):
    spacing = draw(st.sampled_from([1.0, 10.0, 0.5, 20.0]))
    sx = spacing * draw(st.sampled_from([1, -1]) if draw(st.integers(0, 5)) == 0 else st.just(1))
    sy = -spacing * draw(st.sampled_from([1, -1]) if draw(st.integers(0, 5)) == 0 else st.just(1))
    width, height = draw(st.integers(1, 14)), draw(st.integers(1, 14))
    ox = draw(st.integers(-4, 4)) * spacing / 2
    oy = draw(st.integers(-4, 4)) * spacing / 2
    return Grid(Axis(ox, sx, width), Axis(oy, sy, height))


@st.composite
def features(draw, grid):
    """A polygon (box, triangle, hull, with a hole or not), a multipolygon (parts may overlap) or a point, on
    a quarter-pixel lattice that puts vertices and edges on pixel centres, partly outside the image."""
    step = abs(grid.x.spacing) / 4
    x0 = min(grid.x.point(0), grid.x.point(grid.width - 1))
    y0 = min(grid.y.point(0), grid.y.point(grid.height - 1))

    def coordinate(axis, low):
        return low + draw(st.integers(-8, 4 * axis.size + 8)) * step

    def xy():
        return coordinate(grid.x, x0), coordinate(grid.y, y0)

    def rectangle():
        (a, b), (c, d) = xy(), xy()
        return box(min(a, c), min(b, d), max(a, c) + step, max(b, d) + step)

    def polygon():
        shape = draw(st.sampled_from(["box", "triangle", "hull", "star", "holed", "holes anywhere"]))
        if shape == "box":
            return rectangle()
        if shape == "holed":  # a valid polygon with a hole
            outer, inner = rectangle(), rectangle()
            return Polygon(outer.exterior, [inner.exterior]) if outer.contains(inner) and not inner.equals(outer) \
                else outer
        if shape == "holes anywhere":  # invalid: holes across the shell, outside it, overlapping each other
            return Polygon(rectangle().exterior, [rectangle().exterior for _ in range(draw(st.integers(1, 3)))])
        points = np.array([xy() for _ in range(3 if shape == "triangle" else 7)])
        if shape == "star":  # concave: vertices in angle order around their mean
            angles = np.arctan2(*(points - points.mean(axis=0)).T[::-1])
            star = Polygon(points[np.argsort(angles, kind="stable")])
            if star.is_valid and star.area > 0:
                return star
        hull = shapely.convex_hull(MultiPoint(points))
        return hull if hull.geom_type == "Polygon" else box(*points[0], points[0][0] + step, points[0][1] + step)

    kind = draw(st.sampled_from(["polygon", "polygon", "polygon", "multi", "point"]))
    if kind == "polygon":
        return polygon()
    if kind == "multi":
        return MultiPolygon([polygon() for _ in range(draw(st.integers(2, 3)))])
    return Point(*xy())


@st.composite
def layouts(draw):
    grid = draw(grids())
    geometries = [draw(features(grid)) for _ in range(draw(st.integers(1, 8)))]
    if draw(st.booleans()):
        geometries.insert(draw(st.integers(0, len(geometries))), draw(st.sampled_from([None, Polygon()])))
    return grid, geometries


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layouts(), st.sampled_from([None, 1e-6, 1e-4]), st.sampled_from(["sync", "threads"]))
def test_counts_equal_a_pixel_by_pixel_reference(layout, ram, scheduler):
    grid, geometries = layout
    got = feature_counts(np.array(geometries, dtype=object), grid, ram_mb=ram, scheduler=scheduler, workers=2)
    assert got.tolist() == [reference_count(g, grid) for g in geometries]
    classes = [str(k % 3) for k in range(len(geometries))]
    want: dict[str, int] = {}
    for name, geometry in zip(classes, geometries):
        n = reference_count(geometry, grid)
        if n:
            want[name] = want.get(name, 0) + n
    assert class_counts(got, classes) == want


@given(st.integers(1, 300), st.sampled_from([10.0, -10.0, 0.1, 1 / 3, 20.0]), st.floats(-1e6, 1e6),
       st.lists(st.integers(-20, 320), max_size=30), st.lists(st.floats(-1e9, 1e9), max_size=10))
def test_below_is_searchsorted(n, spacing, origin, on_centres, anywhere):
    centres = np.sort(Axis(origin, spacing, n).point(np.arange(n, dtype=np.float64)))
    values = np.r_[Axis(origin, spacing, n).point(np.array(on_centres, dtype=np.float64)), anywhere]
    values = np.r_[values, np.nextafter(values, np.inf), np.nextafter(values, -np.inf)]
    assert below(centres, values).tolist() == np.searchsorted(centres, values, "left").tolist()


def test_overlaps_count_once_per_feature_and_part():
    grid = Grid(Axis(0.5, 1.0, 10), Axis(9.5, -1.0, 10))
    a, b = box(0, 0, 6, 6), box(3, 3, 9, 9)
    counts = feature_counts([a, b, MultiPolygon([a, b]), GeometryCollection([a, Point(0.5, 0.5)])], grid)
    assert counts.tolist() == [36, 36, 72, 37]
    assert class_counts(counts, ["x", "x", "y", "x"]) == {"x": 109, "y": 72}


def test_edges_on_pixel_centres_follow_otb():
    grid = Grid(Axis(5.0, 10.0, 30), Axis(195.0, -10.0, 20))
    # left and bottom edges on centres are in, right and top edges out; the hypotenuse is a right edge
    assert feature_counts([box(5, 5, 55, 55), Polygon([(5, 105), (95, 105), (5, 195)])], grid).tolist() == [25, 45]


def test_lines_count_the_squares_they_touch_within_their_index_range():
    grid = Grid(Axis(5.0, 10.0, 30), Axis(195.0, -10.0, 20))
    vertical = LineString([(200, 5), (200, 95)])  # on the border of two columns: OTB's range holds one
    horizontal = LineString([(0, 5), (300, 5)])   # through a row of centres
    diagonal = LineString([(0, 0), (100, 100)])   # through pixel corners: 10 crossed, 9 + 9 + 1 touched
    assert feature_counts([vertical, horizontal, diagonal, LineString([(250, 0), (250, 0)])],
                          grid).tolist() == [10, 30, 29, 0]


def test_explode_opens_nested_collections_and_drops_null_and_empty():
    nested = GeometryCollection([MultiPolygon([box(0, 0, 1, 1), box(2, 2, 3, 3)]), Point(1, 1)])
    parts, owner = explode(np.array([None, nested, Polygon(), Point(0, 0)], dtype=object))
    assert sorted(owner.tolist()) == [1, 1, 1, 3] and len(parts) == 4


def test_many_strips_and_the_threads_give_the_same_counts():
    rng = np.random.default_rng(3)
    grid = Grid(Axis(0.5, 1.0, 300), Axis(199.5, -1.0, 200))
    centres_ = rng.uniform([-20, -20], [320, 220], size=(300, 2))
    polygons = shapely.buffer(shapely.points(centres_), rng.uniform(1, 30, 300), quad_segs=4)
    one = feature_counts(polygons, grid, ram_mb=1000, scheduler="sync")
    assert one.sum() > 10_000
    for ram in (1e-5, 0.01):
        assert np.array_equal(feature_counts(polygons, grid, ram_mb=ram, workers=2), one)
    assert one.tolist() == [reference_count(p, grid) for p in polygons]


# ---------------------------------------------------------------- files, the app and OTB

def write_layer(path, geometries, values, field="class", crs="EPSG:32631", driver=None):
    """A one-field layer of ``geometries`` (None: no geometry) and ``values`` (strings or integers, None: null)."""
    values = np.array(values, dtype=object if any(v is None or isinstance(v, str) for v in values) else np.int64)
    wkb = np.array([None if g is None else shapely.to_wkb(g) for g in geometries], dtype=object)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "'crs' was not provided")
        pyogrio.raw.write(str(path), wkb, [values], [field], driver=driver or "GPKG", geometry_type="Unknown",
                          crs=crs, promote_to_multi=False)
    return str(path)


def random_layout(seed, width=40, height=30):
    """Polygons of several sizes (some overlapping, holed, multi, partly outside), points and a line, on
    a 10 m grid whose centres end in 5: vertices on the 2.5 m lattice fall on centres and edges."""
    rng = np.random.default_rng(seed)
    geometries, classes = [], []
    for k in range(25):
        x, y = rng.integers(-4, 4 * width + 4) * 2.5, rng.integers(-4, 4 * height + 4) * 2.5
        w, h = rng.integers(1, 40, size=2) * 2.5
        shape = k % 6
        if shape == 0:  # holed; every other one invalid, its hole across the shell
            shift = w * (k % 4) / 2
            g = Polygon(box(x, y, x + w, y + h).exterior,
                        [box(x + w / 4 + shift, y + h / 4, x + w / 2 + shift, y + h / 2).exterior])
        elif shape == 1:
            g = MultiPolygon([box(x, y, x + w, y + h), box(x + w / 2, y, x + 1.5 * w, y + h / 2)])
        elif shape == 2:
            g = Polygon([(x, y), (x + w, y), (x, y + h)])
        elif shape == 3:
            g = shapely.buffer(Point(x, y), w / 2, quad_segs=3)
        elif shape == 4:
            g = Point(x + 0.3, y + 0.7)
        else:
            g = box(x, y, x + w, y + h)
        geometries.append(g)
        classes.append(int(rng.integers(1, 5)))
    geometries += [LineString([(0, 0), (width * 7.0, height * 9.0)]), None]
    classes += [2, 3]
    return geometries, classes


@pytest.fixture
def image(tmp_path):
    return write_raster(tmp_path / "img.tif", np.zeros((1, 30, 40), np.uint8), origin=(0, 300), nodata=0)


def otb_statistics(image, vec, field, out):
    result = subprocess.run([OTB, "-in", image, "-vec", vec, "-field", field, "-out", str(out)],
                            capture_output=True, text=True, env={"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "2",
                                                                 "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    return str(out)


@needs_otb
@pytest.mark.parametrize("seed", range(6))
def test_xml_is_byte_for_byte_otbs(tmp_path, image, seed):
    geometries, classes = random_layout(seed)
    if seed % 2:
        classes = [f"c{c}" for c in classes]
    if seed == 3:
        classes[1] = None  # a null class: OTB counts it under ""
    vec = write_layer(tmp_path / "v.gpkg", geometries, classes)
    ours = tmp_path / "ours.xml"
    assert main(["DensePolygonClassStatistics", "-in", image, "-vec", vec, "-field", "class", "-out", str(ours),
                 "-ram", "0.001"]) == 0
    theirs = otb_statistics(image, vec, "class", tmp_path / "otb.xml")
    assert read_maps(ours)["samplesPerVector"]  # something was counted
    assert ours.read_text() == open(theirs).read()


EDGE_CASES = [
    box(-10, 50, 0, 60), box(400, 50, 410, 60), box(50, -10, 60, 0), box(50, 300, 60, 310),  # touching a side
    box(-10, -10, 0, 0), box(400, -10, 410, 0), box(-10, 300, 0, 310), box(400, 300, 410, 310),  # a corner
    box(-10, 50, 0.01, 60), box(399.99, 50, 410, 60), box(50, -10, 60, 0.01), box(50, 299.99, 60, 310),
    box(1, 1, 4, 4),  # inside, between pixel centres
    Polygon([(-20, -20), (-20, 400), (-15, 400), (-15, -15), (500, -15), (500, -20)]),  # envelope over the image
    MultiPolygon([box(-50, -50, -40, -40), box(1, 1, 2, 2)]), LineString([(-5, -5), (-1, -1)]), Point(0.2, 150),
    LineString([(1, 1), (2, 2)]), Point(-1, 150),
]


def test_features_meeting_the_image_without_a_pixel_are_listed_with_zero(tmp_path, image):
    vec = write_layer(tmp_path / "v.gpkg", EDGE_CASES, list(range(len(EDGE_CASES))))
    result = DensePolygonClassStatistics(in_=image, vec=vec, field="class")
    # as OTB: the left and top sides and the top-left corner are in, the others out (half-up pixel rounding)
    assert result.per_vector == {1: 0, 4: 0, 7: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 0, 15: 0, 17: 1, 18: 1}
    assert result.per_class == {str(fid - 1): n for fid, n in result.per_vector.items()}


@needs_otb
def test_features_at_the_image_edges_as_otb(tmp_path, image):
    vec = write_layer(tmp_path / "v.gpkg", EDGE_CASES, [k % 4 for k in range(len(EDGE_CASES))])
    DensePolygonClassStatistics(in_=image, vec=vec, field="class", out=tmp_path / "ours.xml")
    theirs = otb_statistics(image, vec, "class", tmp_path / "otb.xml")
    assert (tmp_path / "ours.xml").read_text() == open(theirs).read()


def test_multilines_count_within_the_whole_features_region(tmp_path, image):
    # on the border of two columns: alone, the line's region (half-up rounding) holds the right column only;
    # with a part further left the feature's region holds both (OTB's considered region is the feature's)
    border = LineString([(200, 205), (200, 295)])
    features = [border, MultiLineString([border, LineString([(140, 150), (150, 150)])])]
    vec = write_layer(tmp_path / "v.gpkg", features, [1, 2])
    result = DensePolygonClassStatistics(in_=image, vec=vec, field="class", out=tmp_path / "ours.xml")
    assert result.counts.tolist() == [10, 20 + 4]
    if OTB:
        theirs = otb_statistics(image, vec, "class", tmp_path / "otb.xml")
        assert (tmp_path / "ours.xml").read_text() == open(theirs).read()


@needs_otb
def test_shapefile_fids_start_at_zero_as_otb_writes_them(tmp_path, image):
    geometries = [box(0, 0, 50, 50), box(60, 60, 90, 90), box(100, 100, 120, 120)]
    vec = write_layer(tmp_path / "v.shp", geometries, [1, 5, 2], driver="ESRI Shapefile")
    result = DensePolygonClassStatistics(in_=image, vec=vec, field="CLASS", out=tmp_path / "ours.xml")
    assert result.per_vector == {0: 25, 1: 9, 2: 4}
    assert (tmp_path / "ours.xml").read_text() == open(otb_statistics(image, vec, "class", tmp_path / "o.xml")).read()


@pytest.mark.skipif(shutil.which("otbcli_SampleSelection") is None,
                    reason="otbcli_SampleSelection is not on PATH (Debian otb-bin)")
def test_otb_sample_selection_reads_our_xml(tmp_path, image):
    geometries, classes = random_layout(11)
    vec = write_layer(tmp_path / "v.gpkg", geometries, classes)
    ours = str(tmp_path / "ours.xml")
    DensePolygonClassStatistics(in_=image, vec=vec, field="class", out=ours)
    out = tmp_path / "sel.sqlite"
    result = subprocess.run(["otbcli_SampleSelection", "-in", image, "-vec", vec, "-instats", ours, "-field", "class",
                             "-strategy", "all", "-out", str(out)], capture_output=True, text=True,
                            env={"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "2", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    info = pyogrio.read_info(str(out))
    per_class = read_maps(ours)["samplesPerClass"]
    assert info["features"] == sum(int(v) for v in per_class.values())  # "all" selects every counted pixel


def test_python_counts_equal_the_reference_without_writing(tmp_path, image):
    geometries, classes = random_layout(5)
    vec = write_layer(tmp_path / "v.gpkg", geometries, classes)
    result = DensePolygonClassStatistics({"in": image, "vec": vec, "field": "Class"})
    grid = result.grid
    want = [reference_count(g, grid) if not isinstance(g, LineString) else None for g in geometries]
    got = result.counts.tolist()
    assert [g for g, w in zip(got, want) if w is not None] == [w for w in want if w is not None]
    assert {fid: n for fid, n in result.per_vector.items() if n} == {k + 1: n for k, n in enumerate(got) if n}
    assert list(tmp_path.iterdir()) == [tmp_path / "img.tif", tmp_path / "v.gpkg"]


def test_polygons_in_another_crs_are_reprojected(tmp_path, image):
    from rasterio.warp import transform

    utm = [Point(105.0, 195.0), Point(333.0, 27.0), Point(1.0, 299.0), Point(-20.0, 100.0)]
    lon, lat = transform("EPSG:32631", "EPSG:4326", [p.x for p in utm], [p.y for p in utm])
    vec = write_layer(tmp_path / "ll.gpkg", [Point(a, b) for a, b in zip(lon, lat)], [1, 1, 2, 2], crs="EPSG:4326")
    result = DensePolygonClassStatistics(in_=image, vec=vec, field="class")
    x, y = transform("EPSG:4326", "EPSG:32631", lon, lat)  # what the app sees after reprojection
    want = [reference_point(Point(a, b), result.grid) for a, b in zip(x, y)]
    assert result.counts.tolist() == want == [1, 1, 1, 0]
    assert result.per_class == {"1": 2, "2": 1}


@needs_otb
def test_reprojected_counts_equal_otbs_which_renumbers_the_features(tmp_path, image):
    from rasterio.warp import transform_geom

    geometries, classes = random_layout(8)
    geographic = [None if g is None else shapely.geometry.shape(transform_geom("EPSG:32631", "EPSG:4326", g))
                  for g in geometries]
    vec = write_layer(tmp_path / "ll.gpkg", geographic, classes, crs="EPSG:4326")
    ours = DensePolygonClassStatistics(in_=image, vec=vec, field="class", out=tmp_path / "ours.xml")
    theirs = read_maps(otb_statistics(image, vec, "class", tmp_path / "otb.xml"))
    assert {k: str(v) for k, v in ours.per_class.items()} == theirs["samplesPerClass"]
    # OTB reprojects into a memory layer whose FIDs count from 0; eotensor keeps the file's (decision 9a)
    assert {str(fid - 1): str(n) for fid, n in ours.per_vector.items()} == theirs["samplesPerVector"]


def test_a_layer_without_crs_is_taken_in_the_images(tmp_path, image):
    path = write_layer(tmp_path / "nocrs.gpkg", [box(0, 0, 50, 50)], [4], crs=None)
    with pytest.warns(UserWarning, match="has no CRS"):
        result = DensePolygonClassStatistics(in_=image, vec=path, field="class")
    assert result.per_class == {"4": 25}


def test_the_field_is_found_by_any_case_or_by_otbtfs_key(tmp_path, image):
    vec = write_layer(tmp_path / "v.gpkg", [box(0, 0, 50, 50)], ["forest"], field="Class_Name")
    for spelling in ("Class_Name", "CLASS_NAME", "classname"):
        assert DensePolygonClassStatistics(in_=image, vec=vec, field=spelling).per_class == {"forest": 25}
    with pytest.raises(ParameterError, match='field: ".*" has no field "class"; its fields: Class_Name'):
        DensePolygonClassStatistics(in_=image, vec=vec, field="class")


def test_elevation_keys_are_accepted_with_a_warning(tmp_path, image, capsys):
    vec = write_layer(tmp_path / "v.gpkg", [box(0, 0, 50, 50)], [1])
    assert main(["DensePolygonClassStatistics", "-in", image, "-vec", vec, "-field", "class", "-out",
                 str(tmp_path / "o.xml"), "-elev.dem", "/nowhere", "-elev.default", "12"]) == 0
    err = capsys.readouterr().err
    assert "warning: elev.dem, elev.default: not used" in err
    assert read_maps(tmp_path / "o.xml") == {"samplesPerClass": {"1": "25"}, "samplesPerVector": {"1": "25"}}


def test_no_feature_over_the_image_writes_empty_maps_with_a_warning(tmp_path, image, capsys):
    vec = write_layer(tmp_path / "v.gpkg", [box(1000, 1000, 1100, 1100), None], [1, 2])
    out = tmp_path / "o.xml"
    assert main(["DensePolygonClassStatistics", "-in", image, "-vec", vec, "-field", "class", "-out", str(out)]) == 0
    assert "warning: vec: no feature" in capsys.readouterr().err
    assert out.read_text() == ('<?xml version="1.0" ?>\n<GeneralStatistics>\n    <Statistic name="samplesPerClass" />'
                               '\n    <Statistic name="samplesPerVector" />\n</GeneralStatistics>\n')


def cli_error(capsys, *argv):
    assert main(["DensePolygonClassStatistics", *map(str, argv)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_are_one_line_errors(tmp_path, image, capsys):
    vec = write_layer(tmp_path / "v.gpkg", [box(0, 0, 50, 50)], [1], field="Label")
    out = tmp_path / "o.xml"
    base = ["-in", image, "-field", "label", "-out", out]
    assert 'vec: vector file "' in cli_error(capsys, "-vec", tmp_path / "missing.gpkg", *base)
    (tmp_path / "text.gpkg").write_text("not a vector")
    assert "vec: cannot read" in cli_error(capsys, "-vec", tmp_path / "text.gpkg", *base)
    empty = write_layer(tmp_path / "empty.gpkg", [], [], field="label")
    assert "holds no feature" in cli_error(capsys, "-vec", empty, *base)
    err = cli_error(capsys, "-in", image, "-vec", vec, "-field", "nope", "-out", out)
    assert 'field: "' in err and "its fields: Label" in err
    assert "ending in .xml" in cli_error(capsys, "-in", image, "-vec", vec, "-field", "label", "-out",
                                         tmp_path / "o.txt")
    assert "in: input file" in cli_error(capsys, "-in", tmp_path / "none.tif", "-vec", vec, *base[2:])
    assert not out.exists()


def test_a_real_field_is_refused_and_the_usable_fields_listed(tmp_path, image, capsys):
    path = tmp_path / "v.gpkg"
    wkb = np.array([shapely.to_wkb(box(0, 0, 50, 50))], dtype=object)
    pyogrio.raw.write(str(path), wkb, [np.array([1.5]), np.array(["a"], dtype=object)], ["area", "name"],
                      driver="GPKG", geometry_type="Polygon", crs="EPSG:32631")
    err = cli_error(capsys, "-in", image, "-vec", path, "-field", "area", "-out", tmp_path / "o.xml")
    assert re.search(r'field: field "area" .* is of type Real; expected a string or integer field: name$', err)


def test_the_output_may_not_be_an_input(tmp_path, image, capsys):
    path = tmp_path / "v.xml"  # a GeoJSON document named .xml
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"c": 1}, "geometry": shapely.geometry.mapping(box(0, 0, 50, 50))}]}))
    before = path.read_text()
    assert "is also an input" in cli_error(capsys, "-in", image, "-vec", path, "-field", "c", "-out", path)
    assert path.read_text() == before
    with pytest.raises(OutputFileError, match="out: output file"):
        DensePolygonClassStatistics(in_=image, vec=str(path), field="c", out=str(path))


def test_python_errors_are_the_cli_errors(tmp_path, image):
    with pytest.raises(InputFileError, match="vec: vector file"):
        DensePolygonClassStatistics(in_=image, vec=str(tmp_path / "none.gpkg"), field="c")
    with pytest.raises(ParameterError, match="ending in .xml"):
        DensePolygonClassStatistics(in_=image, vec=str(tmp_path / "none.gpkg"), field="c", out="x.csv")
