"""Vector I/O (io/vector.py): real files through pyogrio, in every output format, and the one-line errors."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import shapely

from eotensor.errors import InputFileError, OutputFileError, ParameterError
from eotensor.io import vector


def _geojson(path, features, crs="EPSG:32631"):
    """A GeoJSON file of ``features``: (geometry dict or None, properties dict)."""
    doc = {"type": "FeatureCollection",
           "features": [{"type": "Feature", "geometry": g, "properties": p} for g, p in features]}
    if crs:
        doc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(doc))
    return str(path)


def _point(x, y):
    return {"type": "Point", "coordinates": [x, y]}


@pytest.mark.parametrize("name", ["pts.gpkg", "pts.geojson", "pts.shp", "pts.sqlite", "pts"])
def test_points_round_trip_in_every_format(tmp_path, name):
    x, y = np.array([0.5, 10.25, -3.0]), np.array([1.0, 2.0, 3.5])
    path = str(tmp_path / name)
    assert vector.write_points(path, x, y, {"id": np.arange(3), "class": np.array([2, 0, 1])}, "EPSG:32631",
                               "outvec") == path
    layer = vector.read_vector(path, "vec", "class")
    rx, ry, is_point = vector.point_coordinates(layer.geometries)
    assert is_point.all() and np.array_equal(rx, x) and np.array_equal(ry, y)
    values, present = vector.integer_values(layer)
    assert present.all() and values.tolist() == [2, 0, 1]
    assert layer.crs.to_epsg() == 32631
    leftovers = [f for f in os.listdir(tmp_path) if f.startswith(".eot-")]
    assert leftovers == []


def test_shapefile_parts_take_the_final_name(tmp_path):
    vector.write_points(tmp_path / "out.shp", np.zeros(2), np.ones(2), {"id": np.arange(2)}, "EPSG:4326", "outvec")
    assert sorted(os.listdir(tmp_path)) == ["out.cpg", "out.dbf", "out.prj", "out.shp", "out.shx"]


def test_unknown_output_format_is_refused_before_writing(tmp_path):
    with pytest.raises(ParameterError, match=r'outvec: .*unknown vector format "\.xyz"; expected one of \.gpkg'):
        vector.write_points(tmp_path / "out.xyz", np.zeros(1), np.zeros(1), {"id": np.arange(1)}, None, "outvec")
    assert os.listdir(tmp_path) == []


def test_output_in_a_missing_directory_is_one_line(tmp_path):
    with pytest.raises(OutputFileError, match="outvec: .*does not exist"):
        vector.write_points(tmp_path / "no" / "out.gpkg", np.zeros(1), np.zeros(1), {"id": np.arange(1)}, None,
                            "outvec")


def test_missing_and_unreadable_inputs(tmp_path):
    with pytest.raises(InputFileError, match=r'vec: vector file ".*nope.gpkg" does not exist'):
        vector.read_vector(tmp_path / "nope.gpkg", "vec")
    (tmp_path / "junk.gpkg").write_text("not a vector")
    with pytest.raises(InputFileError, match="vec: cannot read .*junk.gpkg.* as a vector file"):
        vector.read_vector(tmp_path / "junk.gpkg", "vec")
    empty = _geojson(tmp_path / "empty.geojson", [])
    with pytest.raises(InputFileError, match="vec: .*empty.geojson.* holds no feature"):
        vector.read_vector(empty, "vec")
    with pytest.raises(InputFileError, match="vec: .*empty.geojson.* holds no feature"):
        vector.read_vector(empty, "vec", "class")  # not "has no field": the layer is empty


def test_missing_field_lists_the_fields_and_case_is_folded(tmp_path):
    path = _geojson(tmp_path / "p.geojson", [(_point(0, 0), {"Class": 1, "name": "a"})])
    with pytest.raises(ParameterError, match='field: .* has no field "label"; its fields: Class, name'):
        vector.read_vector(path, "vec", "label")
    assert vector.read_vector(path, "vec", "class").field == "Class"


def test_integer_values_accept_integral_numbers_and_strings_and_skip_nulls(tmp_path):
    features = [(_point(0, 0), {"c": 1.0}), (_point(1, 1), {"c": None}), (_point(2, 2), {"c": 7.0})]
    values, present = vector.integer_values(vector.read_vector(_geojson(tmp_path / "f.geojson", features), "vec", "c"))
    assert present.tolist() == [True, False, True] and values[present].tolist() == [1, 7]
    strings = [(_point(0, 0), {"c": "3"}), (_point(1, 1), {"c": "-2"})]
    values, present = vector.integer_values(vector.read_vector(_geojson(tmp_path / "s.geojson", strings), "vec", "c"))
    assert values.tolist() == [3, -2]


@pytest.mark.parametrize("bad", [1.5, "forest"])
def test_non_integer_values_are_an_error_naming_the_feature(tmp_path, bad):
    path = _geojson(tmp_path / "b.geojson", [(_point(0, 0), {"c": 2}), (_point(1, 1), {"c": bad})])
    with pytest.raises(ParameterError, match=r'field: field "c" of .* holds .* at feature 1; expected integer'):
        vector.integer_values(vector.read_vector(path, "vec", "c"))


def test_point_coordinates_flag_what_is_not_a_point(tmp_path):
    polygon = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}
    path = _geojson(tmp_path / "m.geojson", [(_point(5, 6), {}), (polygon, {}), (None, {})])
    x, y, is_point = vector.point_coordinates(vector.read_vector(path, "vec").geometries)
    assert is_point.tolist() == [True, False, False] and (x[0], y[0]) == (5, 6)


def test_reprojection_matches_rasterio_and_assumed_crs_warns(tmp_path):
    from rasterio.warp import transform

    x, y = np.array([3.0, 3.5]), np.array([43.0, 44.0])
    ex, ey = transform("EPSG:4326", "EPSG:32631", x, y)
    rx, ry = vector.reproject_xy(x, y, "EPSG:4326", "EPSG:32631")
    assert np.allclose(rx, ex) and np.allclose(ry, ey)
    assert vector.reproject_xy(x, y, None, "EPSG:32631")[0] is x
    moved = vector.reproject_geometries(shapely.points(x, y), "EPSG:4326", "EPSG:32631")
    assert np.allclose(shapely.get_coordinates(moved), np.column_stack([ex, ey]))
    # GeoJSON without "crs" is WGS 84 by the RFC, never "no CRS" (a layer without CRS: the next test)
    assert vector.read_vector(_geojson(tmp_path / "n.geojson", [(_point(1, 2), {})], crs=None), "vec").crs is not None


def test_layer_without_crs_takes_the_image_crs_with_a_warning(tmp_path):
    path = str(tmp_path / "nocrs.shp")
    vector.write_points(path, np.zeros(1), np.zeros(1), {"id": np.arange(1)}, None, "outvec")
    layer = vector.read_vector(path, "vec")
    assert layer.crs is None
    with pytest.warns(UserWarning, match=r'vec: ".*nocrs.shp" has no CRS; .* CRS of "img.tif" \(EPSG:32631\)'):
        assert vector.target_crs(layer, "EPSG:32631", "img.tif").to_epsg() == 32631
    with_crs = vector.read_vector(vector.write_points(tmp_path / "c.gpkg", np.zeros(1), np.zeros(1),
                                                      {"id": np.arange(1)}, "EPSG:4326", "o"), "vec")
    with pytest.warns(UserWarning, match='"img.tif" has no CRS; the coordinates of .* are used as they are'):
        assert vector.target_crs(with_crs, None, "img.tif") is None
