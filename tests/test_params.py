"""The parameter table drives the CLI parser, the help and the Python keywords."""

import pytest

from eotensor.apps.model_serve import APP
from eotensor.apps.params import format_help, parse_cli, parse_python
from eotensor.engine.execute import get_executor
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
    with pytest.raises(ParameterError, match=r"-optim.ram must be >= 0"):
        parse_cli(APP, base + ["-optim.ram", "-3"], env={})


BASE = ["-source1.il", "a", "-model.dir", "m", "-out", "o"]


def test_a_key_given_twice_is_refused():
    with pytest.raises(ParameterError, match=r"^-source1.rfieldx is given twice; give it once$"):
        parse_cli(APP, BASE + ["-source1.rfieldx", "3", "-source1.rfieldx", "4"], env={})
    with pytest.raises(ParameterError, match=r"^-source1.rfieldy is given twice \(first as -source1.rfielddy\)"):
        parse_cli(APP, BASE + ["-source1.rfielddy", "3", "-source1.rfieldy", "4"], env={})
    with pytest.raises(ParameterError, match=r"^-source1.il is given twice \(first as -source1.il\)"):
        parse_python(APP, {"source1.il": "a"}, source1_il="b", model_dir="m")
    # a list takes several values after one key: one occurrence
    assert parse_cli(APP, ["-source1.il", "a", "b", "-model.dir", "m", "-out", "o"], env={})["source1.il"] == ["a", "b"]


def test_parser_errors_do_not_name_the_app():  # the CLI adds "TensorflowModelServe: error: "
    for argv in (["stray"], BASE + ["-model.fullconv", "on"], ["-source1.il", "a", "-model.dir", "m"]):
        with pytest.raises(ParameterError) as caught:
            parse_cli(APP, argv, env={})
        assert "TensorflowModelServe:" not in str(caught.value)


@pytest.mark.parametrize("key", ["optim.ram", "output.spcscale"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_numbers_must_be_finite(key, value):
    with pytest.raises(ParameterError, match=rf"^-{key} expects a finite number, got"):
        parse_cli(APP, BASE + [f"-{key}", value], env={})


def test_nodata_and_background_may_be_nan_or_inf():
    p = parse_cli(APP, BASE + ["-source1.nodata", "nan", "-output.bv", "-inf"], env={})
    assert p["source1.nodata"] != p["source1.nodata"] and p["output.bv"] == float("-inf")


def test_python_keywords_parse_like_the_cli():
    import pathlib

    p = parse_python(APP, source1_il=pathlib.Path("a.tif"), model_dir=pathlib.Path("m"), output_names="probs",
                     model_userplaceholders="a=1", model_fullyconv="off", out=pathlib.Path("o.tif"))
    assert p["source1.il"] == ["a.tif"] and p["model.dir"] == "m" and p["output.names"] == ["probs"]
    assert p["model.userplaceholders"] == ["a=1"] and p["model.fullyconv"] is False
    assert p["out"] == ("o.tif", None)
    assert parse_python(APP, source1_il="a", model_dir="m", out=("o.tif", "uint8"))["out"] == ("o.tif", "uint8")
    with pytest.raises(ParameterError, match=r"-source1.rfieldx must be >= 1, got 0"):
        parse_python(APP, source1_il="a", model_dir="m", source1_rfieldx=0)
    with pytest.raises(ParameterError, match=r"-optim.ram expects a finite number"):
        parse_python(APP, source1_il="a", model_dir="m", optim_ram=float("inf"))
    with pytest.raises(ParameterError, match=r"-optim.threads expects an integer, got True"):
        parse_python(APP, source1_il="a", model_dir="m", optim_threads=True)


def test_out_is_mandatory_on_the_command_line_only():
    with pytest.raises(ParameterError, match=r"^missing mandatory parameter -out"):
        parse_cli(APP, ["-source1.il", "a", "-model.dir", "m"], env={})
    assert parse_python(APP, source1_il="a", model_dir="m")["out"] is None


def test_scheduler_names_an_executor():
    assert parse_cli(APP, BASE, env={})["optim.scheduler"] == "threads"
    for name in ("sync", "processes:2", "tcp://10.0.0.1:8786"):  # Dask's names are open-ended: checked by name
        assert parse_cli(APP, BASE + ["-optim.scheduler", name], env={})["optim.scheduler"] == name
        get_executor(name)
    with pytest.raises(ParameterError, match=r'optim.scheduler: unknown scheduler "fast"; expected one of sync, '):
        get_executor(parse_cli(APP, BASE + ["-optim.scheduler", "fast"], env={})["optim.scheduler"])


def test_help_corrections():
    text = format_help(APP)
    assert "model(**inputs)" not in text and "model(x1, x2, ...)" in text
    assert "RF + (EF-1)" not in text and "one EF block reads RF pixels of source N" in text
    assert "(T - EF)*S*s1/sN + RF" in text
    assert "bind source N to the N-th input not named elsewhere" in text and "alphabetical rule" in text
    assert "N = 1, 2, ... one group per source" not in text
    assert "optim: Tiling, threads and memory" in text


def test_help_shows_shared_rows_renamed_inside_groups_and_choices():
    from eotensor.apps.params import App, Choice, Group, Kind, Param, share

    inner = (Group("io", "Inputs and outputs.", (
        Param("vd", Kind.STRING, "Vectors.", mandatory=True),
        Param("mode", Kind.CHOICE, "A mode.", "a", choices=(
            Choice("a", "first", (Param("x", Kind.INT, "X."),)),
        )),
    )),)
    app = App("Mounted", "A table mounting another's rows.", (share(inner, "", {"io.vd": "vd", "io.mode": "m"}),),
              build=lambda values: None, write=lambda result, values, progress: None)
    text = format_help(app)
    assert "-vd " in text and "-io.vd" not in text
    assert "-m " in text and "-m.a.x" in text and "-io.mode" not in text
    values = parse_cli(app, ["-vd", "v.gpkg", "-m.a.x", "3"])
    assert values["vd"] == "v.gpkg" and values["m.a.x"] == 3
