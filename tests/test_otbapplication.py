"""eotensor.otbApplication: OTB's Python API over eotensor's apps (setters, getters, pixel types, chains, NumPy)."""

import sys
import textwrap
import types

import numpy as np
import pytest
import rasterio

import eotensor as eot
from eotensor import otbApplication as otb
from eotensor.errors import EotensorError, ParameterError
from eotensor.testing import write_raster

BOX = '''
def model(x):
    """RF 3, fully convolutional: each output pixel sums its 3x3 neighbourhood, minus 7.5."""
    rows, cols = x.shape[1] - 2, x.shape[2] - 2
    return sum(x[:, i:i + rows, j:j + cols] for i in range(3) for j in range(3)) - 7.5
'''
MIX = '''
def model(x):
    """Pixel-wise: 3 x - 1.5, band by band."""
    return x * 3 - 1.5
'''


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("otbapp")
    rng = np.random.default_rng(7)
    image = rng.integers(-300, 300, size=(2, 37, 29)).astype(np.int16)
    (folder / "box.py").write_text(textwrap.dedent(BOX))
    (folder / "mix.py").write_text(textwrap.dedent(MIX))
    return types.SimpleNamespace(folder=folder, image=image, tif=write_raster(folder / "a.tif", image),
                                 box=str(folder / "box.py"), mix=str(folder / "mix.py"))


def serve(source, model, **more):
    app = otb.Registry.CreateApplication("TensorflowModelServe")
    if isinstance(source, otb.Application):
        app.ConnectImage("source1.il", source, "out")
    else:
        app.SetParameterStringList("source1.il", [source])
    app.SetParameterString("model.dir", model)
    app.SetParameterString("model.fullyconv", "on")
    if model.endswith("box.py"):
        app.SetParameterInt("source1.rfieldx", 3)
        app.SetParameterInt("source1.rfieldy", 3)
    for key, value in more.items():
        app.SetParameterValue(key.replace("_", "."), value)
    return app


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform, ds.crs, ds.dtypes[0]


def box_numpy(image):
    x = image.astype(np.float64)
    rows, cols = x.shape[1] - 2, x.shape[2] - 2
    return sum(x[:, i:i + rows, j:j + cols] for i in range(3) for j in range(3)) - 7.5


def cast(values, dtype):
    """OTB's writer: clamp to the type's range, then truncate toward zero."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return values.astype(dtype)
    info = np.iinfo(dtype)
    return np.trunc(np.clip(values, info.min, info.max)).astype(dtype)


# ---------------------------------------------------------------------------------------------- registry, constants
def test_registry_lists_and_creates_every_app():
    names = otb.Registry.GetAvailableApplications()
    assert {"TensorflowModelServe", "ReadImageInfo", "PatchesExtraction", "ModelInfo"} <= set(names)
    for name in names:
        app = otb.Registry.CreateApplication(name)
        assert app.GetName() == name
        for key in app.GetParametersKeys():  # every key has an OTB type, a role and a value (or none yet)
            assert 0 <= app.GetParameterType(key) < 23 and app.GetParameterRole(key) in (0, 1)
            if app.GetParameterRole(key) == otb.Role_Input and app.HasValue(key):
                app.GetParameterValue(key)
    assert otb.Registry.CreateApplicationWithoutLogger("ReadImageInfo").GetName() == "ReadImageInfo"


def test_unknown_application_is_a_one_line_error_listing_the_apps():
    with pytest.raises(ParameterError) as error:
        otb.Registry.CreateApplication("Superimpose")
    message = str(error.value)
    assert "\n" not in message and '"Superimpose"' in message and "TensorflowModelServe" in message
    assert "ReadImageInfo" in message


def test_constants_have_otbs_values():
    assert [otb.ImagePixelType_uint8, otb.ImagePixelType_int16, otb.ImagePixelType_uint16, otb.ImagePixelType_int32,
            otb.ImagePixelType_uint32, otb.ImagePixelType_float, otb.ImagePixelType_double,
            otb.ImagePixelType_cint16, otb.ImagePixelType_cint32, otb.ImagePixelType_cfloat,
            otb.ImagePixelType_cdouble] == list(range(11))
    assert (otb.ParameterType_Int, otb.ParameterType_Choice, otb.ParameterType_InputImageList,
            otb.ParameterType_OutputImage, otb.ParameterType_Bool, otb.ParameterType_Band) == (0, 9, 11, 14, 20, 22)
    assert (otb.Role_Input, otb.Role_Output) == (0, 1)
    app = otb.Registry.CreateApplication("TensorflowModelServe")
    assert [app.ConvertPixelTypeToNumpy(t) for t in range(7)] == ["uint8", "int16", "uint16", "int32", "uint32",
                                                                   "float32", "float64"]


# ---------------------------------------------------------------------------------------------- setters and getters
def test_setters_convert_like_otb(monkeypatch):
    monkeypatch.delenv("OTB_TF_NSOURCES", raising=False)
    app = otb.Registry.CreateApplication("TensorflowModelServe")
    app.SetParameterString("model.fullyconv", "on")
    assert app.GetParameterInt("model.fullyconv") == 1 and app.GetParameterValue("model.fullyconv") is True
    assert app.GetParameterString("model.fullyconv") == "true"
    app.SetParameterInt("model.fullyconv", 0)
    assert app.GetParameterValue("model.fullyconv") is False
    app.SetParameterValue("optim.disabletiling", True)          # OTB's SetParameterValue: str(True)
    app.SetParameterInt("model.jit", 1)
    assert app.GetParameterInt("optim.disabletiling") == 1 and app.GetParameterValue("model.jit") is True
    app.SetParameterString("source1.rfieldx", "16")              # numbers from text, as on the command line
    app.SetParameterInt("source1.rfieldy", 8)
    app.SetParameterInt("output.spcscale", 2)                    # an int into a float parameter, as OTB
    app.SetParameterFloat("output.bv", -0.5)
    assert (app.GetParameterInt("source1.rfieldx"), app.GetParameterValue("source1.rfieldy")) == (16, 8)
    assert app.GetParameterFloat("output.spcscale") == 2.0 and app.GetParameterValue("output.bv") == -0.5
    app.SetParameterString("model.layout", "nhwc")               # a choice by name or by index
    assert app.GetParameterInt("model.layout") == 1
    app.SetParameterInt("model.layout", 2)
    assert app.GetParameterString("model.layout") == "nchw" == app.GetParameterValue("model.layout")
    assert app.GetChoiceKeys("model.layout") == ["auto", "nhwc", "nchw"] and len(app.GetChoiceNames("model.layout")) == 3
    app.SetParameterString("optim.scheduler", "processes:2")     # a free string: Dask names are open-ended
    assert app.GetParameterString("optim.scheduler") == "processes:2"
    app.SetParameterStringList("output.names", ["a", "b"])
    app.AddParameterStringList("output.names", "c")
    app.SetParameterValue("model.userplaceholders", "k=3")      # a single string is one item
    assert app.GetParameterStringList("output.names") == ["a", "b", "c"]
    assert app.GetParameterValue("model.userplaceholders") == ["k=3"]
    app.SetParameters({"source2.il": ["b.tif"], "source2.rfieldx": 4})
    assert app.GetParameterStringList("source2.il") == ["b.tif"] and app.GetParameterInt("source2.rfieldx") == 4
    assert app.HasUserValue("source2.rfieldx") and not app.HasUserValue("source2.rfieldy")
    assert app.HasValue("source2.rfieldy") and not app.HasValue("source2.nodata")
    app.ClearValue("source2.rfieldx")
    assert not app.HasUserValue("source2.rfieldx") and app.GetParameterInt("source2.rfieldx") == 1
    app.SetParameterBool("model.autofields", "yes")
    assert app.GetParameterValue("model.autofields") is True


def test_keys_types_roles_and_enabled(monkeypatch):
    monkeypatch.setenv("OTB_TF_NSOURCES", "2")
    app = otb.Registry.CreateApplication("TensorflowModelServe")
    keys = app.GetParametersKeys()
    assert "source2.il" in keys and "source3.il" not in keys and "out" in keys and "model" not in keys
    app.SetParameterStringList("source3.il", ["c.tif"])
    assert "source3.placeholder" in app.GetParametersKeys()
    types_ = {key: app.GetParameterType(key) for key in ("source1.il", "source1.rfieldx", "output.spcscale",
                                                          "model.fullyconv", "model.dir", "model.layout", "out")}
    assert types_ == {"source1.il": otb.ParameterType_InputImageList, "source1.rfieldx": otb.ParameterType_Int,
                      "output.spcscale": otb.ParameterType_Float, "model.fullyconv": otb.ParameterType_Bool,
                      "model.dir": otb.ParameterType_InputFilename, "model.layout": otb.ParameterType_Choice,
                      "out": otb.ParameterType_OutputImage}
    assert app.IsMandatory("model.dir") and not app.IsMandatory("model.fullyconv")
    assert app.GetParameterRole("out") == otb.Role_Input
    assert app.GetParameterDescription("output.efieldx").startswith("Expression field")
    assert not app.IsApplicationReady()
    for n in (1, 2, 3):
        app.SetParameterStringList(f"source{n}.il", [f"{n}.tif"])
    app.SetParameterString("model.dir", "m.py")
    assert app.IsApplicationReady()
    given = app.GetParameters()
    assert given["source3.il"] == ["3.tif"] and given["model.dir"] == "m.py" and given["output.efieldx"] == 1
    assert "source1.nodata" not in given and app.GetParameterName("output.efieldx") == "Expression field (x): output " \
                                                                                     "pixels per block"
    selection = otb.Registry.CreateApplication("PatchesSelection")
    selection.SetParameterString("strategy", "split")
    assert selection.IsParameterEnabled("strategy.split.trainprop")
    selection.SetParameterString("strategy", "all")
    assert not selection.IsParameterEnabled("strategy.split.trainprop")
    info = otb.Registry.CreateApplication("ReadImageInfo")
    assert info.GetParameterRole("sizex") == otb.Role_Output and not info.HasValue("sizex")


CALLS = [
    (lambda a: a.SetParameterInt("model.dir", 3), ["SetParameterInt(model.dir)", "input file", "SetParameterString"]),
    (lambda a: a.SetParameterString("source1.rfieldx", 3), ["SetParameterString(source1.rfieldx)", "SetParameterInt"]),
    (lambda a: a.SetParameterFloat("source1.rfieldx", 2.5), ["source1.rfieldx is an int", "SetParameterInt"]),
    (lambda a: a.SetParameterInt("source1.rfieldx", 2.5), ["SetParameterInt(source1.rfieldx) expects an int"]),
    (lambda a: a.SetParameterInt("model.fullyconv", "on"), ["SetParameterInt(model.fullyconv) expects an int"]),
    (lambda a: a.SetParameterString("model.fullyconv", "maybe"), ["model.fullyconv", "on/off"]),
    (lambda a: a.SetParameterString("source1.rfieldx", "0"), ["source1.rfieldx must be >= 1"]),
    (lambda a: a.SetParameterString("model.layout", "fast"), ["model.layout", "auto, nhwc, nchw"]),
    (lambda a: a.SetParameterInt("model.layout", 5), ["model.layout", "out of 0..2"]),
    (lambda a: a.SetParameterStringList("model.dir", ["m"]), ["model.dir is an input file", "not a list"]),
    (lambda a: a.SetParameterStringList("source1.il", "a.tif"), ["SetParameterStringList(source1.il)"]),
    (lambda a: a.SetParameterBool("model.dir", True), ["SetParameterBool(model.dir)"]),
    (lambda a: a.SetParameterString("optim.tilesize", "4"), ["unknown parameter optim.tilesize", "optim.tilesize"]),
    (lambda a: a.SetParameterString("inxml", "p.xml"), ["inxml", "not supported"]),
    (lambda a: a.GetParameterFloat("source1.rfieldx"), ["GetParameterFloat(source1.rfieldx)", "not a float"]),
    (lambda a: a.GetParameterInt("model.dir"), ["GetParameterInt(model.dir)"]),
    (lambda a: a.GetParameterStringList("model.dir"), ["GetParameterStringList(model.dir)"]),
    (lambda a: a.SetParameterOutputImagePixelType("model.dir", 1), ["model.dir", "not an output image", "out"]),
    (lambda a: a.SetParameterOutputImagePixelType("out", otb.ImagePixelType_cfloat), ["cfloat is not supported"]),
    (lambda a: a.SetParameterOutputImagePixelType("out", 42), ["42 is not an ImagePixelType_* constant"]),
    (lambda a: a.SetParameterInputImage("source1.il", "a.tif"), ["SetParameterInputImage", "LazyRaster"]),
    (lambda a: a.ConnectImage("model.dir", a, "out"), ["ConnectImage(model.dir)", "not an input image"]),
    (lambda a: a.WriteOutput(), ["missing mandatory parameter -source1.il"]),
]


@pytest.mark.parametrize("call, parts", CALLS)
def test_wrong_type_or_value_is_a_one_line_error_naming_the_key(call, parts):
    app = otb.Registry.CreateApplication("TensorflowModelServe")
    with pytest.raises(EotensorError) as error:
        call(app)
    message = str(error.value)
    assert "\n" not in message and message.startswith("TensorflowModelServe: ")
    for part in parts:
        assert part in message


def test_computed_values_are_not_set_and_need_execute():
    info = otb.Registry.CreateApplication("ReadImageInfo")
    with pytest.raises(ParameterError, match=r"sizex is computed by the app, not set"):
        info.SetParameterInt("sizex", 3)
    with pytest.raises(ParameterError, match=r"GetParameterInt\(sizex\): computed by the app; call Execute\(\)"):
        info.GetParameterInt("sizex")


def test_otb_keys_eotensor_ignores_are_accepted_with_a_warning(scene, tmp_path):
    app = serve(scene.tif, scene.mix)
    with pytest.warns(UserWarning, match="ram is read as optim.ram"):
        app.SetParameterInt("ram", 64)
    assert app.GetParameterFloat("optim.ram") == 64.0
    with pytest.warns(UserWarning, match="outxml is ignored"):
        app.SetParameterString("outxml", str(tmp_path / "params.xml"))
    with pytest.warns(UserWarning, match="progress is ignored"):
        app.SetParameterString("progress", "false")
    info = otb.Registry.CreateApplication("ReadImageInfo")
    with pytest.warns(UserWarning, match="ram is ignored"):
        info.SetParameterInt("ram", 64)
    app.SetParameterString("out", str(tmp_path / "o.tif") + "?&streaming:type=tiled&streaming:sizemode=height"
                                                            "&streaming:sizevalue=8&gdal:co:COMPRESS=DEFLATE")
    assert app.ExecuteAndWriteOutput() == 0
    assert not (tmp_path / "params.xml").exists()
    np.testing.assert_array_equal(read(tmp_path / "o.tif")[0], scene.image * 3 - 1.5)


# ---------------------------------------------------------------------------------------------- running, pixel types
@pytest.mark.parametrize("name, dtype", [("uint8", "uint8"), ("int16", "int16"), ("uint16", "uint16"),
                                         ("int32", "int32"), ("uint32", "uint32"), ("float", "float32"),
                                         ("double", "float64")])
def test_output_pixel_types_cast_as_otb_writes(scene, tmp_path, name, dtype):
    app = serve(scene.tif, scene.mix)
    app.SetParameterString("out", str(tmp_path / "o.tif"))
    app.SetParameterOutputImagePixelType("out", getattr(otb, f"ImagePixelType_{name}"))
    assert app.GetParameterOutputImagePixelType("out") == getattr(otb, f"ImagePixelType_{name}")
    app.ExecuteAndWriteOutput()
    got, transform, crs, written = read(tmp_path / "o.tif")
    want = cast(scene.image.astype(np.float32) * 3 - 1.5, dtype)
    assert written == dtype
    np.testing.assert_array_equal(got, want)
    same = eot.TensorflowModelServe({"source1.il": [scene.tif], "model.dir": scene.mix, "model.fullyconv": True,
                                     "out": (str(tmp_path / "p.tif"), name)})
    np.testing.assert_array_equal(read(same.write(tmp_path / "p.tif", name))[0], got)
    array = app.GetVectorImageAsNumpyArray("out")  # the in-memory image, as OTB: the pixel type is for writing
    assert array.dtype == np.float32 and array.shape == (37, 29, 2)
    np.testing.assert_array_equal(array, np.moveaxis(scene.image.astype(np.float32) * 3 - 1.5, 0, -1))


def test_default_output_pixel_type_is_float(scene, tmp_path):
    app = serve(scene.tif, scene.mix)
    assert app.GetParameterOutputImagePixelType("out") == otb.ImagePixelType_float
    app.SetParameterString("out", str(tmp_path / "o.tif"))
    app.ExecuteAndWriteOutput()
    assert read(tmp_path / "o.tif")[3] == "float32"


def test_execute_then_write_output_writes_what_was_set_after(scene, tmp_path):
    app = serve(scene.tif, scene.box)
    app.Execute()
    result = app.GetParameterOutputImage("out")
    assert isinstance(result, eot.LazyRaster) and result.shape == (2, 35, 27)
    app.SetParameterString("out", str(tmp_path / "o.tif"))
    app.SetParameterOutputImagePixelType("out", otb.ImagePixelType_int32)
    app.WriteOutput()
    assert app.GetParameterOutputImage("out") is result          # not rebuilt: only the output changed
    got, _, _, dtype = read(tmp_path / "o.tif")
    assert dtype == "int32"
    np.testing.assert_array_equal(got, cast(box_numpy(scene.image), "int32"))
    app.SetParameterInt("source1.rfieldx", 3)                     # any input change rebuilds
    assert app.GetParameterOutputImage("out") is not result


def test_run_errors_are_one_line_and_name_the_app(scene, tmp_path):
    app = serve(scene.tif, scene.mix)
    app.Execute()
    with pytest.raises(ParameterError, match=r"^TensorflowModelServe: WriteOutput: no output set; set out first$"):
        app.WriteOutput()
    missing = serve(str(tmp_path / "missing.tif"), scene.mix)
    with pytest.raises(EotensorError, match=r'^TensorflowModelServe: source1.il: input file ".*missing.tif" does '
                                            r"not exist$"):
        missing.Execute()


# ---------------------------------------------------------------------------------------------- in-memory chains
@pytest.mark.parametrize("up_tile, down_tile", [(None, None), (5, 7), (16, 3)])
def test_connect_image_chain_equals_the_chain_through_a_file(scene, tmp_path, up_tile, down_tile):
    # through a file
    first = serve(scene.tif, scene.box, out=str(tmp_path / "step.tif"))
    first.ExecuteAndWriteOutput()
    second = serve(str(tmp_path / "step.tif"), scene.box, out=str(tmp_path / "files.tif"))
    second.ExecuteAndWriteOutput()
    # in memory: the downstream executes its upstream
    up = serve(scene.tif, scene.box)
    down = serve(up, scene.box, out=str(tmp_path / "memory.tif"))
    for app, tile in ((up, up_tile), (down, down_tile)):
        if tile:
            app.SetParameterInt("optim.tilesizex", tile)
            app.SetParameterInt("optim.tilesizey", tile)
    down.ExecuteAndWriteOutput()
    want, got = read(tmp_path / "files.tif"), read(tmp_path / "memory.tif")
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]
    np.testing.assert_array_equal(got[0], box_numpy(box_numpy(scene.image).astype(np.float32)).astype(np.float32))
    assert {p.name for p in tmp_path.iterdir()} == {"step.tif", "files.tif", "memory.tif"}  # nothing in between


def test_output_image_objects_feed_other_apps(scene, tmp_path):
    up = serve(scene.tif, scene.mix)
    up.Execute()
    result = up.GetParameterOutputImage("out")
    down = serve(scene.tif, scene.mix)
    down.SetParameterStringList("source1.il", [scene.tif])
    down.AddImageToParameterInputImageList("source1.il", result)       # a list mixing a file and a result
    assert down.GetNumberOfElementsInParameterInputImageList("source1.il") == 2
    got = down.GetVectorImageAsNumpyArray("out")
    x = np.moveaxis(scene.image, 0, -1).astype(np.float32)
    np.testing.assert_array_equal(got, np.concatenate([x, x * 3 - 1.5], axis=-1) * 3 - 1.5)
    single = serve(scene.tif, scene.mix)
    single.SetParameterInputImage("source1.il", result)
    np.testing.assert_array_equal(single.GetVectorImageAsNumpyArray("out"), (x * 3 - 1.5) * 3 - 1.5)
    single.SetNthParameterInputImageList("source1.il", 1, result)
    assert single.GetImageNbBands("source1.il", 1) == 2 and single.GetImageNbBands("out") == 4
    single.ClearParameterInputImageList("source1.il")
    assert single.GetNumberOfElementsInParameterInputImageList("source1.il") == 0


def test_image_information_of_outputs_and_inputs(scene, tmp_path):
    app = serve(scene.tif, scene.box, out=str(tmp_path / "o.tif"))
    app.ExecuteAndWriteOutput()
    with rasterio.open(tmp_path / "o.tif") as ds:
        t, width, height, count, crs = ds.transform, ds.width, ds.height, ds.count, ds.crs
    assert app.GetImageSize("out") == (width, height) == (27, 35)
    assert app.GetImageSpacing("out") == (t.a, t.e)
    assert app.GetImageOrigin("out") == (t.c + t.a / 2, t.f + t.e / 2)
    assert app.GetImageNbBands("out") == count and app.GetImageProjection("out") == crs.to_wkt()
    assert app.GetImageSize("source1.il") == (29, 37)
    with pytest.raises(ParameterError, match="source1.il has no image 1"):
        app.GetImageSize("source1.il", 1)


# ---------------------------------------------------------------------------------------------- NumPy exchange
def test_numpy_in_and_out(scene):
    rng = np.random.default_rng(2)
    plane = rng.integers(0, 100, size=(9, 11)).astype(np.uint16)
    app = serve(scene.tif, scene.mix)
    app.SetImageFromNumpyArray("source1.il", plane)
    one = app.GetImageAsNumpyArray("out")
    assert one.shape == (9, 11) and one.dtype == np.float32
    np.testing.assert_array_equal(one, plane * 3 - 1.5)
    app.SetParameterOutputImagePixelType("out", otb.ImagePixelType_uint8)  # for writing only, as in OTB
    np.testing.assert_array_equal(app.GetImageAsNumpyArray("out"), one)
    assert app.GetImageAsNumpyArray("out").dtype == np.float32
    cube = rng.normal(size=(9, 11, 3)).astype(np.float64)
    app.SetVectorImageFromNumpyArray("source1.il", cube)
    app.SetParameterOutputImagePixelType("out", otb.ImagePixelType_double)
    out = app.GetVectorImageAsNumpyArray("out")
    assert out.shape == (9, 11, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out, cube.astype(np.float32) * 3 - 1.5)
    with pytest.raises(ParameterError, match=r"GetImageAsNumpyArray\(out\): the image has 3 bands; use "
                                             r"GetVectorImageAsNumpyArray"):
        app.GetImageAsNumpyArray("out")
    with pytest.raises(ParameterError, match="the array has 3 bands; use SetVectorImageFromNumpyArray"):
        app.SetImageFromNumpyArray("source1.il", cube)
    with pytest.raises(ParameterError, match="dtype complex64"):
        app.SetVectorImageFromNumpyArray("source1.il", cube.astype(np.complex64))


def test_export_and_import_keep_the_grid(scene, tmp_path):
    app = serve(scene.tif, scene.box, out=str(tmp_path / "direct.tif"))
    exported = app.ExportImage("out")
    assert exported["array"].shape == (35, 27, 2) and exported["size"] == (27, 35)
    assert exported["metadata"]["ProjectionRef"] == app.GetImageProjection("out") != ""  # OTB's key
    other = serve(scene.tif, scene.mix)
    other.ImportImage("source1.il", exported)
    assert other.GetImageOrigin("out") == exported["origin"] and other.GetImageSpacing("out") == exported["spacing"]
    np.testing.assert_array_equal(other.GetVectorImageAsNumpyArray("out"), exported["array"] * 3 - 1.5)
    # OTB's recipe: export, edit with NumPy, import, write: the file keeps the CRS and the transform
    app.ExecuteAndWriteOutput()
    exported["array"] = exported["array"] + 1
    edited = otb.Registry.CreateApplication("BandMath")
    edited.ImportImage("il", exported)
    edited.SetParameterString("exp", "im1b2")
    edited.SetParameterString("out", str(tmp_path / "edited.tif"))
    edited.ExecuteAndWriteOutput()
    direct, written = read(tmp_path / "direct.tif"), read(tmp_path / "edited.tif")
    assert written[1:3] == direct[1:3] and direct[2] is not None
    np.testing.assert_array_equal(written[0][0], direct[0][1] + 1)
    no_crs = otb.Registry.CreateApplication("BandMath")
    no_crs.ImportImage("il", {**exported, "metadata": {}})
    no_crs.SetParameterString("exp", "im1b1")
    assert no_crs.GetImageProjection("out") == ""
    with pytest.raises(ParameterError, match=r"il: the image's projection is not a CRS"):
        no_crs.ImportImage("il", {**exported, "metadata": {"ProjectionRef": "not a projection"}})


def test_numpy_arrays_are_the_in_memory_values_not_cast_to_the_write_type(scene, tmp_path):
    app = otb.Registry.CreateApplication("BandMath")
    app.SetParameterStringList("il", [scene.tif])
    app.SetParameterString("exp", "im1b1 / 7")
    app.SetParameterString("out", str(tmp_path / "u8.tif"))
    app.SetParameterOutputImagePixelType("out", otb.ImagePixelType_uint8)
    want = (scene.image[0].astype(np.float64) / 7).astype(np.float32)
    got = app.GetImageAsNumpyArray("out")
    assert got.dtype == np.float32 and got.shape == (37, 29)
    np.testing.assert_array_equal(got, want)  # fractions and negatives kept
    np.testing.assert_array_equal(app.ExportImage("out")["array"][:, :, 0], want)
    app.ExecuteAndWriteOutput()
    assert read(tmp_path / "u8.tif")[3] == "uint8"  # the pixel type applies to the file


def test_arrays_without_a_grid_lie_on_north_up_unit_pixels(scene):
    app = serve(scene.tif, scene.mix)
    app.SetImageFromNumpyArray("source1.il", np.zeros((9, 11), np.float32))
    assert app.GetImageOrigin("out") == (0.5, 8.5) and app.GetImageSpacing("out") == (1.0, -1.0)
    assert app.GetImageProjection("out") == ""


# ---------------------------------------------------------------------------------------------- install
def test_install_registers_the_module_for_this_process_only():
    assert "otbApplication" not in sys.modules
    otb.install()
    try:
        import otbApplication

        assert otbApplication is otb
        otb.install()  # twice is fine
    finally:
        otb.uninstall()
    assert "otbApplication" not in sys.modules
    sys.modules["otbApplication"] = types.ModuleType("otbApplication")  # as if OTB's own bindings were imported
    try:
        with pytest.raises(EotensorError, match="otbApplication is already imported"):
            otb.install()
    finally:
        del sys.modules["otbApplication"]


# ---------------------------------------------------------------------------------------------- training
def test_execute_trains_as_otb_does_and_write_output_does_not_train_again(tmp_path):
    from tensorflow.train import load_checkpoint
    from test_model_train import separable, write_patches

    from models import build_tf1_trainable

    pixels, labels = separable(10, 1)
    x, y = write_patches(tmp_path / "x.tif", pixels), write_patches(tmp_path / "y.tif", labels)
    model = build_tf1_trainable(tmp_path / "model")
    ckpt = tmp_path / "ckpt"
    parameters = {"model.dir": model, "training.source1.il": x, "training.source1.patchsizex": 4,
                  "training.source1.patchsizey": 4, "training.source1.placeholder": "x", "training.source2.il": y,
                  "training.source2.patchsizex": 4, "training.source2.patchsizey": 4,
                  "training.source2.placeholder": "y", "training.targetnodes": ["optimizer", "count"],
                  "training.userplaceholders": "lr=0.1", "training.batchsize": 5, "training.epochs": 1,
                  "validation.mode": "none", "model.saveto": str(ckpt)}
    app = otb.Registry.CreateApplication("TensorflowModelTrain")
    app.SetParameters(parameters)
    assert app.Execute() == 0
    assert load_checkpoint(str(ckpt)).get_tensor("seen") == 10  # trained and saved by Execute(): every sample once
    for saved in tmp_path.glob("ckpt.*"):
        saved.unlink()
    app.WriteOutput()                                              # nothing left to do: not trained again
    assert not list(tmp_path.glob("ckpt.*"))
    app.ExecuteAndWriteOutput()                                    # a new run, trained once (the graph's seen: 0)
    assert load_checkpoint(str(ckpt)).get_tensor("seen") == 10
    alone = otb.Registry.CreateApplication("TensorflowModelTrain")
    alone.SetParameters({**parameters, "model.saveto": str(tmp_path / "alone")})
    alone.WriteOutput()                                            # WriteOutput alone runs it too
    assert load_checkpoint(str(tmp_path / "alone")).get_tensor("seen") == 10


def test_a_single_lazy_result_is_a_one_image_list(scene):
    up = eot.open(scene.tif)
    got = eot.TensorflowModelServe(source1_il=up, model_dir=scene.mix, model_fullyconv=True)  # not in a list
    np.testing.assert_array_equal(got.read(), scene.image.astype(np.float32) * 3 - 1.5)
    with pytest.raises(ParameterError, match="expects a string or a non-empty list of strings, got 3"):
        eot.TensorflowModelServe(source1_il=3, model_dir=scene.mix)
