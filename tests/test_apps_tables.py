"""The parameter machinery can declare the next apps: small tables shaped like PatchesSelection (a choice with
sub-parameters), TensorflowModelTrain (repeats under another prefix, OTB_TF_NSOURCES + 1) and
ImageClassifierFromDeepFeatures (the serve table shared, ``model`` renamed ``deepmodel``)."""

import warnings

import pytest

from eotensor.apps import registry
from eotensor.apps.model_serve import APP as SERVE
from eotensor.apps.model_serve import ServeConfig
from eotensor.apps.params import (
    App,
    Choice,
    Group,
    Kind,
    OutputImage,
    Param,
    Repeat,
    Table,
    format_help,
    parse_cli,
    parse_python,
    share,
)
from eotensor.errors import ParameterError


def app(name, *params):
    return App(name, f"{name}, a test table.", params, build=lambda values: ("built", values),
               write=lambda result, values, progress: None)


SELECTION = app(
    "PatchesSelection",
    Param("in", Kind.INPUT_IMAGE, "Input image.", mandatory=True),
    Group("grid", "The sampling grid.", (
        Param("step", Kind.INT, "Grid step in pixels.", mandatory=True, minimum=1),
        Param("psize", Kind.INT, "Patch size in pixels.", mandatory=True, minimum=1),
    )),
    Param("strategy", Kind.CHOICE, "How samples are split.", choices=(
        Choice("chessboard", "train and valid alternate like a chessboard"),
        Choice("split", "proportions", (
            Param("random", Kind.BOOL, "Shuffle the group sequence.", False),
            Param("trainprop", Kind.FLOAT, "Training proportion.", 50.0, minimum=0),
            Param("validprop", Kind.FLOAT, "Validation proportion.", 25.0, minimum=0),
        )),
        Choice("all", "everything to outtrain"),
        Choice("balanced", "class-balanced (experimental)", (
            Param("sp", Kind.FLOAT, "Spatial proportion.", 0.25, minimum=0, maximum=1),
            Param("nclasses", Kind.INT, "Number of classes.", mandatory=True, minimum=2),
            Param("labelimage", Kind.INPUT_IMAGE, "Label image.", mandatory=True),
        )),
    )),
    Param("outtrain", Kind.OUTPUT_VECTOR, "Training points.", mandatory=True),
    Param("outvalid", Kind.OUTPUT_VECTOR, "Validation points."),
)

TRAIN = app(
    "TensorflowModelTrain",
    Group("model", "The SavedModel.", (Param("dir", Kind.FILE, "SavedModel directory.", mandatory=True),)),
    Group("training", "Training.", (
        Param("batchsize", Kind.INT, "Batch size.", 100, minimum=1),
        Param("targetnodes", Kind.STRING_LIST, "Target nodes.", mandatory=True),
        Repeat("source", "Training source N (the last one: labels).", (
            Param("il", Kind.FILE_LIST, "Patches images.", mandatory=True),
            Param("patchsizex", Kind.INT, "Patch width.", mandatory=True, minimum=1),
            Param("placeholder", Kind.STRING, "Input name.", mandatory=True),
        ), extra=1),
    )),
    Group("validation", "Validation.", (
        Param("mode", Kind.CHOICE, "Metrics.", choices=(Choice("none", "none"), Choice("class", "confusion"))),
        Repeat("source", "Validation source N.", (
            Param("il", Kind.FILE_LIST, "Patches images."),
            Param("name", Kind.STRING, "Input or output name.", ""),
        ), extra=1),
    )),
)

CLASSIFIER = app(
    "ImageClassifierFromDeepFeatures",
    share(SERVE.params, "tfmodel", renames={"model": "deepmodel"}, only=("source", "model", "output", "optim")),
    Param("model", Kind.FILE, "Classifier model file.", mandatory=True),
    Param("out", Kind.OUTPUT_IMAGE, "Classified image.", mandatory=True, pixel_type="uint8"),
)

SELECTION_BASE = ["-in", "a.tif", "-grid.step", "16", "-grid.psize", "8", "-outtrain", "t.gpkg"]
TRAIN_BASE = ["-model.dir", "m", "-training.targetnodes", "optimizer",
              "-training.source1.il", "x.tif", "-training.source1.patchsizex", "16",
              "-training.source1.placeholder", "x",
              "-training.source2.il", "y.tif", "-training.source2.patchsizex", "16",
              "-training.source2.placeholder", "y"]


@pytest.mark.parametrize("table", [SELECTION, TRAIN, CLASSIFIER, *(registry.get(n) for n in registry.names())],
                         ids=lambda a: a.name)
def test_no_key_alias_or_keyword_appears_twice(table):
    rows = table.table.rows
    spellings = [s for row in rows for s in {*(row.key, *row.aliases), *(k.replace(".", "_")
                                                                         for k in (row.key, *row.aliases))}]
    assert len(spellings) == len(set(spellings))


def test_a_table_with_a_key_twice_is_refused():
    with pytest.raises(ValueError, match="'out' of -out is also '-out'"):
        Table((Param("out", Kind.OUTPUT_IMAGE, "a"), Param("out", Kind.OUTPUT_IMAGE, "b")))
    with pytest.raises(ValueError, match="output.names"):  # across a shared table too
        Table((share(SERVE.params, "tfmodel"), Group("output", "again", (Param("names", Kind.STRING, "x"),))))
    with pytest.raises(ValueError, match="source1_rfieldx"):  # two keys with the same Python keyword
        Table((Param("source1.rfieldx", Kind.INT, "a"), Param("source1_rfieldx", Kind.INT, "b")))


def test_choice_defaults_to_its_first_option_and_fills_sub_parameters():
    values = parse_cli(SELECTION, SELECTION_BASE, env={})
    assert values["strategy"] == "chessboard" and values["strategy.split.trainprop"] == 50.0
    assert not values.is_set("strategy") and values.is_set("grid.step")
    assert values["strategy.balanced.nclasses"] is None  # mandatory only when balanced is chosen


def test_choice_sub_parameters_parse_from_cli_and_python_keywords():
    cli = parse_cli(SELECTION, SELECTION_BASE + ["-strategy", "split", "-strategy.split.trainprop", "70",
                                                 "-strategy.split.random", "on"], env={})
    py = parse_python(  # "in" is a Python keyword: in_ (or the OTB-key dict)
        SELECTION, in_="a.tif", grid_step=16, grid_psize=8, outtrain="t.gpkg", strategy="split",
        strategy_split_trainprop=70, strategy_split_random=True, env={})
    assert cli["strategy.split.trainprop"] == 70.0 and cli["strategy.split.random"] is True
    assert cli == py


def test_choice_sub_parameters_are_mandatory_only_when_chosen():
    with pytest.raises(ParameterError, match=r"^missing mandatory parameter -strategy.balanced.nclasses"):
        parse_cli(SELECTION, SELECTION_BASE + ["-strategy", "balanced"], env={})
    values = parse_cli(SELECTION, SELECTION_BASE + ["-strategy", "balanced", "-strategy.balanced.nclasses", "3",
                                                    "-strategy.balanced.labelimage", "l.tif"], env={})
    assert values["strategy.balanced.nclasses"] == 3
    with pytest.raises(ParameterError, match=r"-strategy.balanced.sp must be <= 1, got 2"):
        parse_cli(SELECTION, SELECTION_BASE + ["-strategy.balanced.sp", "2"], env={})


def test_a_bad_choice_lists_the_choices_and_an_unchosen_sub_parameter_warns():
    with pytest.raises(ParameterError, match='-strategy expects one of chessboard, split, all, balanced, got "x"'):
        parse_cli(SELECTION, SELECTION_BASE + ["-strategy", "x"], env={})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parse_cli(SELECTION, SELECTION_BASE + ["-strategy.split.trainprop", "70"], env={})
    assert [str(w.message) for w in caught] == ["-strategy.split.trainprop has no effect: -strategy is chessboard"]


def test_help_shows_groups_choices_and_sub_parameters():
    text = format_help(SELECTION)
    assert "grid: The sampling grid." in text and "  -grid.step" in text
    assert "(one of: chessboard, split, all, balanced)" in text
    assert "-strategy.balanced.nclasses <int> (mandatory with -strategy balanced)" in text
    split = text.index("split: proportions")
    assert split < text.index("-strategy.split.trainprop") < text.index("balanced: class-balanced")


def test_repeats_under_another_prefix_count_nsources_plus_one():
    values = parse_cli(TRAIN, TRAIN_BASE, env={})
    assert values.counts == {"training.source": 2, "validation.source": 2}
    assert values["training.source2.il"] == ["y.tif"] and values["validation.source2.name"] == ""
    with pytest.raises(ParameterError, match=r"missing mandatory parameter -training.source3.il"):
        parse_cli(TRAIN, TRAIN_BASE, env={"OTB_TF_NSOURCES": "2"})
    with pytest.raises(ParameterError, match=r"missing mandatory parameter -training.source2.il"):
        parse_cli(TRAIN, TRAIN_BASE[:-6], env={})
    more = parse_cli(TRAIN, TRAIN_BASE + ["-validation.source4.il", "v.tif"], env={})
    assert more.count("validation.source") == 4 and more.count("training.source") == 2


def test_repeat_keywords_come_from_the_table():
    py = parse_python(TRAIN, model_dir="m", training_targetnodes="optimizer",
                      training_source1_il="x.tif", training_source1_patchsizex=16, training_source1_placeholder="x",
                      training_source2_il="y.tif", training_source2_patchsizex="16", training_source2_placeholder="y",
                      env={})
    assert py == parse_cli(TRAIN, TRAIN_BASE, env={})
    with pytest.raises(ParameterError, match="unknown keyword training_source2_ill; did you mean training_source2_il?"):
        parse_python(TRAIN, training_source2_ill="y.tif", env={})


def test_help_of_a_repeat_says_how_it_is_counted():
    text = format_help(TRAIN)
    assert "training.sourceN: Training source N" in text and "OTB_TF_NSOURCES + 1" in text
    assert "-training.sourceN.patchsizex" in text and "-validation.sourceN.name" in text
    assert "N = 1, 2, ... one group per source" not in text


def test_a_shared_table_mounts_the_serve_rows_with_a_rename():
    values = parse_cli(CLASSIFIER, ["-source1.il", "a.tif", "-source1.patchsize_x", "16", "-deepmodel.dir", "m",
                                    "-deepmodel.fullyconv", "on", "-model", "rf.txt", "-out", "o.tif"], env={})
    assert values["deepmodel.dir"] == "m" and values["model"] == "rf.txt"
    assert values["out"] == OutputImage("o.tif", "uint8")  # per-output default pixel type
    assert values["source1.rfieldx"] == 16 and values["optim.scheduler"] == "threads"
    inner = values.part("tfmodel")
    assert inner["model.dir"] == "m" and inner["model.fullyconv"] is True and inner.count("source") == 1
    assert inner.is_set("model.dir") and not inner.is_set("output.efieldx") and "out" not in inner
    config = ServeConfig.from_values(inner)  # the serve app's own config reader works on the shared part
    assert config.model == "m" and config.sources[0].rfield == (16, 1) and config.out is None
    with pytest.raises(ParameterError, match=r"unknown parameter -model.dir"):
        parse_cli(CLASSIFIER, ["-model.dir", "m"], env={})
    py = parse_python(CLASSIFIER, source1_il="a.tif", source1_rfieldx=16, deepmodel_dir="m", deepmodel_fullyconv="on",
                      model="rf.txt", out="o.tif", env={})
    assert py == values


def test_a_rename_can_move_shared_rows_under_a_group():
    mounted = app("Mounted", share(SERVE.params, "tfmodel", renames={"model": "tfmodel.model"}, only=("model",)))
    values = parse_python(mounted, tfmodel_model_dir="m", env={})
    assert values["tfmodel.model.dir"] == "m" and values.part("tfmodel")["model.dir"] == "m"
    assert "-tfmodel.model.dir" in format_help(mounted)


def test_help_of_a_composite_shows_the_public_keys():
    text = format_help(CLASSIFIER)
    assert "-deepmodel.dir" in text and "-sourceN.il" in text and "-model " in text
    assert "(default pixel type: uint8)" in text and "-deepmodel.userplaceholders" in text


def test_field_suffix_and_vector_kinds():
    stats = app(
        "DensePolygonClassStatistics",
        Param("in", Kind.INPUT_IMAGE, "Support image.", mandatory=True),
        Param("vec", Kind.INPUT_VECTOR, "Polygons.", mandatory=True),
        Param("field", Kind.FIELD, "Class field.", mandatory=True, of="vec"),
        Param("out", Kind.OUTPUT_FILE, "Statistics.", mandatory=True, suffix=".xml"),
    )
    values = parse_cli(stats, ["-in", "a.tif", "-vec", "p.gpkg", "-field", "class", "-out", "s.XML"], env={})
    assert values["field"] == "class" and values["out"] == "s.XML"
    with pytest.raises(ParameterError, match=r'-out expects a filename ending in .xml, got "s.txt"'):
        parse_cli(stats, ["-in", "a.tif", "-vec", "p.gpkg", "-field", "class", "-out", "s.txt"], env={})
    assert "(a field of -vec)" in format_help(stats)
    with pytest.raises(ValueError, match="a field of 'nope'"):
        Table((Param("field", Kind.FIELD, "x", of="nope"),))
    # "of" is relative, like a key, and may name a later row
    Table((Group("io", "x", (Param("field", Kind.FIELD, "x", of="vec"), Param("vec", Kind.INPUT_VECTOR, "y"))),))


def test_build_alone_is_lazy_and_python_writes_only_with_outputs():
    built, values = SELECTION(SELECTION_BASE_DICT := {"in": "a.tif", "grid.step": 16, "grid.psize": 8})
    assert built == "built" and values["outtrain"] is None
    written = []
    writer = App("W", "w", SELECTION.params, build=lambda v: "lazy", write=lambda r, v, p: written.append(r))
    assert writer({**SELECTION_BASE_DICT, "outtrain": "t.gpkg"}) == "lazy" and written == ["lazy"]
    with pytest.raises(ParameterError, match="missing mandatory parameter -outtrain"):
        parse_cli(SELECTION, SELECTION_BASE[:-2], env={})
    with pytest.raises(ParameterError, match="missing mandatory parameter -outtrain"):  # once one output is given
        writer({**SELECTION_BASE_DICT, "outvalid": "v.gpkg"})
    assert written == ["lazy"]


def test_tables_refuse_a_literal_key_inside_a_repeat_and_a_default_outside_the_choices():
    with pytest.raises(ValueError, match="'source1.il' of -source1.il is also one of -source{n}.il's numbered keys"):
        Table([Repeat("source", "Sources.", (Param("il", Kind.FILE_LIST, "Images."),)),
               Param("source1.il", Kind.FILE_LIST, "Images again.")])
    with pytest.raises(ValueError, match="defaults to 'maybe', which is not one of its choices"):
        Table([Param("mode", Kind.CHOICE, "Mode.", "maybe", choices=(Choice("a", "A"), Choice("b", "B")))])


def test_help_of_a_share_inside_a_share_shows_the_keys_the_parser_reads():
    outer = app("Outer", share(CLASSIFIER.params, "deep", renames={"deepmodel": "xmodel"}))
    text = format_help(outer)
    assert "-xmodel.dir" in text and "-deepmodel.dir" not in text
    values = parse_cli(outer, ["-source1.il", "a.tif", "-xmodel.dir", "m", "-model", "rf", "-out", "o.tif"], env={})
    assert values["xmodel.dir"] == "m"


def test_notes_name_only_the_apps_own_keys():
    """Every ``-key`` an app's -help notes name is one of its parameters (ImageClassifierFromDeepFeatures once
    showed ImageClassifier's -mask, -probamap and -nbclasses, which it refuses)."""
    import re

    for name in registry.names():
        found = registry.get(name)
        named = set(re.findall(r"(?<![\w.+-])-([a-z][\w.]*\w)", found.notes or ""))
        assert all(found.table.find(key) for key in named), \
            (name, sorted(key for key in named if not found.table.find(key)))
    composite = format_help(registry.get("ImageClassifierFromDeepFeatures"))
    assert "-confmap" in composite and not re.search(r"-(mask|probamap|nbclasses)\b", composite)
