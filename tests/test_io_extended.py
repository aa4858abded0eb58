"""OTB extended output filenames: box, gdal:co, nodata, streaming keys, pixel types."""

from __future__ import annotations

import math

import numpy as np
import pytest

from eotensor.errors import OutputFileError, ParameterError
from eotensor.io.extended import OutputTarget, parse_output

# --- extended filenames ------------------------------------------------------------------------------


def test_plain_filename():
    target = parse_output("dir/o.tif")
    assert target == OutputTarget(path="dir/o.tif", dtype=np.dtype("float32"))
    assert target.box is None and target.creation_options == {} and target.nodata is None


def test_full_extended_filename():
    target = parse_output(
        "o.tif?&box=10:20:30:40&gdal:co:COMPRESS=DEFLATE&gdal:co:TILED=YES&gdal:co:predictor=2&nodata=-9999",
        "int16",
    )
    assert target.path == "o.tif"
    assert target.dtype == np.dtype("int16")
    assert target.box == (10, 20, 30, 40)
    assert target.creation_options == {"COMPRESS": "DEFLATE", "TILED": "YES", "PREDICTOR": "2"}
    assert target.nodata == -9999.0


def test_repeated_gdal_co_last_wins():
    target = parse_output("o.tif?&gdal:co:COMPRESS=LZW&gdal:co:compress=DEFLATE&gdal:co:ZLEVEL=9")
    assert target.creation_options == {"COMPRESS": "DEFLATE", "ZLEVEL": "9"}


@pytest.mark.parametrize(
    "extended",
    ["streaming:type=tiled", "streaming:sizemode=height", "streaming:sizevalue=256", "streaming:type=none",
     "streaming:type=stripped&streaming:sizemode=nbsplits&streaming:sizevalue=8"],
)
def test_streaming_keys_are_accepted_and_ignored(extended):
    target = parse_output(f"o.tif?&{extended}&nodata=0")
    assert target.path == "o.tif" and target.nodata == 0.0 and target.creation_options == {}


def test_nan_nodata_for_floats():
    assert math.isnan(parse_output("o.tif?&nodata=nan").nodata)


def test_unknown_key_names_the_key():
    with pytest.raises(OutputFileError) as info:
        parse_output("o.tif?&foo=1")
    message = str(info.value)
    assert message == (
        'out "o.tif?&foo=1": unknown extended-filename key "foo"; '
        "expected one of box, cog, gdal:co:KEY, nodata, overviews, ovr, streaming:*"
    )


def test_param_name_is_used():
    with pytest.raises(OutputFileError, match=r'^outlabels "l.tif\?&bands=1"'):
        parse_output("l.tif?&bands=1", param="outlabels")


@pytest.mark.parametrize(
    "box",
    ["1:2:3", "1:2:3:4:5", "a:0:1:1", "0:0:0:5", "0:0:5:0", "0:0:-1:5", "-1:0:5:5", "0:-3:5:5", "1.5:0:2:2", ""],
)
def test_malformed_box(box):
    with pytest.raises(OutputFileError) as info:
        parse_output(f"o.tif?&box={box}")
    message = str(info.value)
    assert "\n" not in message and f'box "{box}"' in message and "x0:y0:width:height" in message


@pytest.mark.parametrize(
    ("spec", "pixel_type", "fragment"),
    [
        ("o.tif?&nodata=abc", None, 'nodata "abc" is not a number'),
        ("o.tif?&nodata=-9999", "uint8", "uint8 (0..255)"),
        ("o.tif?&nodata=1.5", "int16", "int16"),
        ("o.tif?&nodata=nan", "int32", "int32"),
        ("o.tif?&nodata=1e40", "float", "float32"),
        ("o.tif?&box", None, "key=value"),
        ("o.tif?&gdal:co:=DEFLATE", None, "gdal:co:KEY=VALUE"),
        ("o.tif?&gdal:co:COMPRESS=", None, "gdal:co:KEY=VALUE"),
        ("?&box=0:0:1:1", None, "no filename"),
    ],
)
def test_bad_extended_values(spec, pixel_type, fragment):
    with pytest.raises(OutputFileError) as info:
        parse_output(spec, pixel_type)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_unknown_pixel_type_in_parse_output():
    with pytest.raises(ParameterError, match="int7"):
        parse_output("o.tif", "int7")
