"""The parameter table drives the CLI parser, the help and the Python keywords."""

import pytest

from eotensor.apps.model_serve import APP
from eotensor.apps.params import format_help, parse_cli, parse_python
from eotensor.errors import ParameterError


def test_cli_types_defaults_and_source_count():
    p = parse_cli(APP, ["-source1.il", "a.tif", "b.tif", "-source2.il", "c.tif", "-source2.nodata", "-10000",
                        "-model.dir", "m", "-model.fullyconv", "true", "-out", "o.tif", "uint8"], env={})
    assert p.count("source") == 2 and p.counts == {"source": 2}
    assert p["source1.il"] == ["a.tif", "b.tif"] and p["source2.nodata"] == -10000.0
    q = parse_cli(APP, ["-source1.il", "a.tif", "-source1.nodata", "-inf", "-model.dir", "m", "-out", "o"], env={})
    assert q["source1.nodata"] == float("-inf")
    assert p["source1.rfieldx"] == 1 and p["output.spcscale"] == 1.0
    assert p["model.fullyconv"] is True and p["out"] == ("o.tif", "uint8")


def test_nsources_from_environment_needs_every_il():
    with pytest.raises(ParameterError, match="missing mandatory parameter -source2.il"):
        parse_cli(APP, ["-source1.il", "a.tif", "-model.dir", "m", "-out", "o.tif"], env={"OTB_TF_NSOURCES": "3"})
    with pytest.raises(ParameterError, match='OTB_TF_NSOURCES="x"'):
        parse_cli(APP, ["-source1.il", "a.tif"], env={"OTB_TF_NSOURCES": "x"})


@pytest.mark.parametrize("value, expected", [("on", True), ("OFF", False), ("1", True), ("0", False),
                                              ("true", True), ("False", False)])
def test_booleans(value, expected):
    p = parse_cli(APP, ["-source1.il", "a", "-model.dir", "m", "-out", "o", "-optim.disabletiling", value], env={})
    assert p["optim.disabletiling"] is expected


def test_bad_values_are_one_line_errors():
    with pytest.raises(ParameterError, match='-source1.rfieldx expects an integer, got "big"'):
        parse_cli(APP, ["-source1.il", "a", "-source1.rfieldx", "big", "-model.dir", "m", "-out", "o"], env={})
    with pytest.raises(ParameterError, match='-model.fullyconv expects on/off'):
        parse_cli(APP, ["-source1.il", "a", "-model.fullyconv", "maybe", "-model.dir", "m", "-out", "o"], env={})
    with pytest.raises(ParameterError, match='"stray" is not a parameter'):
        parse_cli(APP, ["stray"], env={})


def test_python_keywords_and_otb_dict_agree():
    cli = parse_cli(APP, ["-source1.il", "a.tif", "-source1.rfieldx", "16", "-model.dir", "m", "-out", "o.tif"],
                    env={})
    py = parse_python(APP, source1_il="a.tif", source1_rfieldx=16, model_dir="m", out="o.tif")
    otb = parse_python(APP, {"source1.il": ["a.tif"], "source1.rfieldx": 16, "model.dir": "m", "out": "o.tif"})
    assert cli == py == otb
    strings = parse_python(APP, {"source1.il": "a.tif", "source1.rfieldx": "16", "model.dir": "m", "out": "o.tif"})
    assert strings == cli
    alias = parse_python(APP, source1_il="a.tif", source1_patchsize_x=16, model_dir="m", out="o.tif")
    assert alias == cli


def test_help_lists_every_parameter():
    text = format_help(APP)
    for row in APP.table.rows:
        assert "-" + row.key.replace("{n}", "N") in text


def test_the_talks_live_demo_command_line_parses():
    argv = ("-source1.il input/s1.tif -source1.placeholder tower_0/s1_t_cloud -source1.rfieldx 256 "
            "-source1.rfielddy 256 -source2.il input/s2.tif -source2.placeholder tower_0/s2_t_cloud "
            "-source2.rfieldx 256 -source2.rfielddy 256 -source3.il input/T31TCJ.tif "
            "-source3.placeholder tower_0/dem -source3.rfieldx 128 -source3.rfielddy 128 "
            "-model.dir meraner_unet_savedmodel/ -model.fullyconv on -output.efieldx 128 -output.efielddy 128 "
            "-output.names tower_0/s2_estim_pad64").split()
    argv += ["-out", "S2A_RESTORED.tif?&box=6500:7300:1024:1024", "int16"]
    p = parse_cli(APP, argv, env={"OTB_TF_NSOURCES": "3"})
    assert p.count("source") == 3
    assert p["source2.rfieldy"] == 256 and p["source3.rfieldy"] == 128 and p["output.efieldy"] == 128
    assert p["source1.placeholder"] == "tower_0/s1_t_cloud" and p["output.names"] == ["tower_0/s2_estim_pad64"]
    assert p["out"] == ("S2A_RESTORED.tif?&box=6500:7300:1024:1024", "int16")


def test_the_sr4rs_keys_parse():
    p = parse_python(APP, {"source1.il": ["lr.tif"], "source1.rfieldx": 128, "source1.rfieldy": 128,
                           "source1.placeholder": "lr_input", "model.dir": "sr", "model.fullyconv": "on",
                           "output.names": ["output_32"], "output.efieldx": 512, "output.efieldy": 512,
                           "output.spcscale": 0.25, "optim.tilesex": 512, "optim.tilesey": 512,
                           "optim.disabletiling": 1, "out": "sr.tif"})
    assert p["optim.tilesizex"] == 512 and p["optim.disabletiling"] is True and p["output.spcscale"] == 0.25


def test_numbers_are_checked_against_their_minimum_and_type():
    base = ["-source1.il", "a", "-model.dir", "m", "-out", "o"]
    with pytest.raises(ParameterError, match=r"-optim.tilesizex must be >= 1, got -5"):
        parse_cli(APP, base + ["-optim.tilesizex", "-5"], env={})
    with pytest.raises(ParameterError, match=r"-source1.rfieldx expects an integer, got 3.5"):
        parse_python(APP, source1_il="a", model_dir="m", out="o", source1_rfieldx=3.5)
    with pytest.raises(ParameterError, match=r"-optim.ram must be >= 1"):
        parse_cli(APP, base + ["-optim.ram", "-3"], env={})
