"""OTB statistics XML (io/otbxml.py): OTB 8.1's layouts byte for byte, read back, written atomically."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from eotensor.errors import InputFileError, OutputFileError
from eotensor.io import otbxml
from eotensor.testing import write_raster

STATS = shutil.which("otbcli_ComputeImagesStatistics")


def test_maps_are_sorted_as_strings_and_empty_maps_close_themselves(tmp_path):
    path = tmp_path / "s.xml"
    assert otbxml.write_maps(path, {"samplesPerVector": {11: 3, 2: 5, 1: 0}, "samplesPerClass": {},
                                    "a": {"x": 1}}) == str(path)
    assert path.read_text() == (
        '<?xml version="1.0" ?>\n'
        "<GeneralStatistics>\n"
        '    <Statistic name="a">\n'
        '        <StatisticMap key="x" value="1" />\n'
        "    </Statistic>\n"
        '    <Statistic name="samplesPerClass" />\n'
        '    <Statistic name="samplesPerVector">\n'
        '        <StatisticMap key="1" value="0" />\n'
        '        <StatisticMap key="11" value="3" />\n'
        '        <StatisticMap key="2" value="5" />\n'
        "    </Statistic>\n"
        "</GeneralStatistics>\n"
    )
    assert otbxml.read_maps(path) == {"a": {"x": "1"}, "samplesPerClass": {},
                                      "samplesPerVector": {"1": "0", "11": "3", "2": "5"}}


def test_odd_class_names_round_trip(tmp_path):
    names = {'a "quoted" & <tagged>': 1, "it's": 2, "": 3, "forêt": 4, "tab\there": 5}
    path = otbxml.write_maps(tmp_path / "s.xml", {"samplesPerClass": names})
    assert "&quot;quoted&quot; &amp; &lt;tagged&gt;" in open(path, encoding="utf-8").read()
    assert otbxml.read_maps(path)["samplesPerClass"] == {k: str(v) for k, v in names.items()}


def test_numbers_print_as_cpp_streams_do():
    assert [otbxml.format_number(v) for v in (3.1666666, 13.0, 0.0, 1e6, 1234567.0, -2.5e-7, np.float32(6.66667),
                                              float("inf"), float("nan"))] == \
        ["3.16667", "13", "0", "1e+06", "1.23457e+06", "-2.5e-07", "6.66667", "inf", "nan"]


def test_vectors_keep_their_order_and_read_back(tmp_path):
    path = otbxml.write_vectors(tmp_path / "v.xml", {"mean": [3.16667, 9.5], "min": [0, -1], "max": [6, 13],
                                                     "stddev": [1.97, 2]})
    text = open(path).read()
    assert text.startswith('<?xml version="1.0" ?>\n<FeatureStatistics>\n    <Statistic name="mean">\n'
                           '        <StatisticVector value="3.16667" />\n')
    assert list(otbxml.read_vectors(path)) == ["mean", "min", "max", "stddev"]
    assert otbxml.read_vectors(path)["min"] == [0.0, -1.0]


@pytest.mark.skipif(STATS is None, reason="otbcli_ComputeImagesStatistics is not on PATH (Debian otb-bin)")
def test_feature_statistics_are_otbs_layout(tmp_path):
    data = (np.arange(2 * 4 * 5).reshape(2, 4, 5) / 3).astype(np.float32)
    image = write_raster(tmp_path / "im.tif", data)
    theirs = tmp_path / "otb.xml"
    subprocess.run([STATS, "-il", image, "-out.xml", str(theirs)], capture_output=True, check=True,
                   env={"PATH": "/usr/bin:/bin", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"})
    bands = data.reshape(2, -1).astype(np.float64)
    ours = otbxml.write_vectors(tmp_path / "ours.xml", {
        "mean": bands.mean(axis=1), "min": bands.min(axis=1), "max": bands.max(axis=1),
        "stddev": bands.std(axis=1, ddof=1)})
    assert open(ours).read() == theirs.read_text()


def test_written_atomically(tmp_path):
    path = tmp_path / "s.xml"
    path.write_text("old")
    otbxml.write_maps(path, {"m": {"k": 1}})
    assert otbxml.read_maps(path) == {"m": {"k": "1"}} and os.listdir(tmp_path) == ["s.xml"]
    with pytest.raises(OutputFileError, match='out: cannot write ".*": the directory'):
        otbxml.write_maps(tmp_path / "missing" / "s.xml", {"m": {}})
    if os.path.exists("/dev/full"):  # a device that fails every write: the error names the output
        with pytest.raises(OutputFileError, match='out: cannot finish "/dev/full"'):
            otbxml.write_maps("/dev/full", {"m": {"k": 1}})


def test_reading_bad_files_is_one_line(tmp_path):
    with pytest.raises(InputFileError, match='instats: statistics file ".*" does not exist'):
        otbxml.read_maps(tmp_path / "none.xml")
    (tmp_path / "bad.xml").write_text("<GeneralStatistics>")
    with pytest.raises(InputFileError, match="cannot read .* as XML"):
        otbxml.read_maps(tmp_path / "bad.xml")
    path = otbxml.write_vectors(tmp_path / "v.xml", {"mean": [1.0]})
    with pytest.raises(InputFileError, match="is a <FeatureStatistics> file; expected OTB statistics "
                                             "<GeneralStatistics>"):
        otbxml.read_maps(path, "instats")
