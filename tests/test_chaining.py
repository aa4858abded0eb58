"""In-memory chains equal the same chain through intermediate files, bit for bit, at any tile size."""

from collections import Counter

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st

import eotensor as eot
from eotensor.errors import EotensorError, GeometryError, InputFileError, ParameterError
from eotensor.runtimes import FunctionModel, TensorSpec
from eotensor.testing import write_raster


def box_sum(x):
    """RF 4, EF 2 (fully convolutional, a valid 3x3 window): each output pixel sums its 3x3 neighbourhood, band by band, minus 7.5."""
    rows, cols = x.shape[1] - 2, x.shape[2] - 2
    total = sum(x[:, i:i + rows, j:j + cols] for i in range(3) for j in range(3))
    return {"y": total - 7.5}


def mix(x1, x2):
    """Pixel-wise on two sources; band 0 times 3 plus every band of the second source, and a ratio."""
    return {"y": np.concatenate([x1[..., :1] * 3 + x2, x1[..., 1:2] / (x2[..., :1] + 0.5)], axis=-1)}


BOX = FunctionModel(box_sum, ["x"], ["y"], name="box_sum")
MIX = FunctionModel(mix, ["x1", "x2"], ["y"], name="mix")


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("chain")
    rng = np.random.default_rng(3)
    image = rng.integers(-300, 300, size=(2, 61, 47)).astype(np.int16)
    other = rng.integers(0, 50, size=(1, 61, 47)).astype(np.uint8)
    return folder, write_raster(folder / "a.tif", image), write_raster(folder / "b.tif", other), image, other


def upstream(path, **options):
    return eot.serve(BOX, [eot.source(path, rfield=4)], efield=2, fullyconv=True, **options)


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.transform, ds.crs


@settings(max_examples=8, deadline=None)
@given(up_tile=st.integers(4, 40), down_tile=st.integers(3, 40), scheduler=st.sampled_from(["sync", "threads"]))
def test_serve_into_serve_equals_the_chain_through_a_file(scene, tmp_path_factory, up_tile, down_tile, scheduler):
    folder, a, b, _, _ = scene
    tmp = tmp_path_factory.mktemp("run")
    # through files
    step = upstream(a).write(tmp / "step.tif")
    on_files = eot.serve(MIX, [eot.source(step), eot.source(b)], scheduler=scheduler).write(tmp / "files.tif")
    # in memory, with tile sizes the file run never used
    first = upstream(a, tile_size=up_tile, scheduler=scheduler)
    chained = eot.serve(MIX, [eot.source(first), eot.source(b)], tile_size=down_tile, scheduler=scheduler)
    in_memory = chained.write(tmp / "memory.tif")
    want, got = read(on_files), read(in_memory)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]
    np.testing.assert_array_equal(chained.read(), want[0].astype(np.float32))


def test_the_chain_is_computed_against_numpy(scene, tmp_path):
    _, a, b, image, other = scene
    x = image.astype(np.float64)
    # box_sum on the whole image: output grid of RF 3 EF 2 (OTBTF: the first and last row/col are lost)
    neighbourhood = sum(x[:, i:i + 58, j:j + 44] for i in range(3) for j in range(3)) - 7.5
    first = upstream(a)
    assert first.shape == (2, 58, 44)
    np.testing.assert_array_equal(first.read(), neighbourhood.astype(np.float32))
    stacked = eot.serve(FunctionModel(lambda x: {"y": x[..., ::-1]}, ["x"], ["y"]),
                        [eot.source([first, first[1]])])  # a list of lazy results, stacked on bands
    np.testing.assert_array_equal(stacked.to_numpy()[..., 0], neighbourhood[1])
    np.testing.assert_array_equal(stacked.read()[1:], neighbourhood[::-1])


def test_band_selection_and_open(scene, tmp_path):
    _, a, b, image, other = scene
    opened = eot.open([a, b])
    assert opened.shape == (3, 61, 47) and opened.dtype == np.float32
    np.testing.assert_array_equal(opened[[2, 0]].read(), np.stack([other[0], image[0]]).astype(np.float32))
    np.testing.assert_array_equal(opened[-1].to_numpy()[..., 0], other[0])
    np.testing.assert_array_equal(opened[1:].read(), np.concatenate([image[1:], other]).astype(np.float32))
    path = opened[0].write(tmp_path / "band.tif", "int16")
    np.testing.assert_array_equal(read(path)[0][0], image[0])
    for bad in (3, -4, [], True, "1"):
        with pytest.raises(ParameterError, match="bands:"):
            opened[bad]


def test_a_mixed_image_list_stacks_files_and_results(scene, tmp_path):
    _, a, b, image, other = scene
    opened = eot.open(a)
    model = FunctionModel(lambda x: {"y": x[..., 1:2] * 10 + x[..., 2:3]}, ["x"], ["y"])
    result = eot.serve(model, [eot.source([b, opened[0], a])])  # file, result, file: bands 1, 2, 3-4
    got = result.read()[0]
    np.testing.assert_array_equal(got, image[0].astype(np.float32) * 10 + image[0])


def test_writing_onto_a_file_the_chain_reads_is_refused(scene, tmp_path):
    _, a, b, _, _ = scene
    step = tmp_path / "step.tif"
    upstream(a).write(step)
    chained = eot.serve(MIX, [eot.source(upstream(str(step))), eot.source(b)])
    with pytest.raises(EotensorError, match="step.tif"):
        chained.write(step)


def test_pieces_of_an_image_list_must_agree(scene, tmp_path):
    _, a, _, image, _ = scene
    smaller = upstream(a)  # 58 x 44
    with pytest.raises(InputFileError, match="source1.il: image 2 is 44x58 pixels but image 1 is 47x61"):
        eot.source([a, smaller])
    elsewhere = write_raster(tmp_path / "utm32.tif", image, crs="EPSG:32632")
    with pytest.raises(GeometryError, match="does not resample"):
        eot.source([eot.open(a), eot.open(elsewhere)])


def test_a_numpy_array_is_a_lazy_result(scene, tmp_path):
    from eotensor.lazy import ArrayRaster

    _, a, _, image, _ = scene
    grid = eot.open(a).grid
    values = np.moveaxis(image, 0, -1).astype(np.float64) / 3
    array = ArrayRaster(values, grid)
    assert array.shape == (2, 61, 47)
    np.testing.assert_array_equal(array[1].read()[0], (image[1] / 3).astype(np.float32))
    written = eot.serve(MIX, [eot.source(array), eot.source(eot.open(a)[0])]).write(tmp_path / "m.tif")
    got = read(written)[0]
    np.testing.assert_array_equal(got[0], np.float32(np.float32(image[0] / 3) * 3 + image[0]))
    assert ArrayRaster(np.zeros((3, 4))).grid.transform.e == -1
    with pytest.raises(ParameterError, match="array: 5x4 pixels but the grid is 47x61"):
        ArrayRaster(np.zeros((4, 5)), grid)


def test_writing_several_results_together_computes_shared_upstream_tiles_once(scene, tmp_path):
    _, a, b, _, _ = scene
    shared = eot.serve(BOX, [eot.source(a, rfield=4)], efield=2, fullyconv=True, tile_size=(16, 10),
                       scheduler="sync")
    heads = {
        tmp_path / "mix.tif": eot.serve(MIX, [eot.source(shared), eot.source(b)], tile_size=(16, 10)),
        tmp_path / "double.tif": (eot.serve(FunctionModel(lambda x: {"y": x * 2}, ["x"], ["y"]),
                                            [eot.source(shared[1])], tile_size=(16, 10)), "int32"),
        tmp_path / "band.tif": shared[0],
    }
    counts = [(v[0] if isinstance(v, tuple) else v).count for v in heads.values()]  # a probe computes a block
    assert counts == [2, 1, 1]
    shared.tiles.clear()
    computed = []
    compute = shared.compute
    shared.compute = lambda window: computed.append(window) or compute(window)
    tiles = list(shared.plan())
    written = eot.write(heads)
    assert Counter(computed) == Counter(tiles)  # three outputs, each upstream tile computed once
    alone = {}
    for path, value in heads.items():
        computed.clear()
        result, pixel_type = value if isinstance(value, tuple) else (value, None)
        alone[path] = read(result.write(tmp_path / f"alone_{path.name}", pixel_type))[0]
        assert Counter(computed) == Counter(tiles)  # alone, each upstream tile once (halos included)
    for path in written:
        np.testing.assert_array_equal(read(path)[0], alone[type(tmp_path)(path)])
    with pytest.raises(EotensorError, match="also the output"):
        eot.write({tmp_path / "x.tif": shared, str(tmp_path / "x.tif") + "?&gdal:co:COMPRESS=LZW": shared[0]})


def test_chained_sources_in_another_crs_and_failing_upstreams_are_one_line(scene, tmp_path):
    _, a, _, image, _ = scene
    elsewhere = eot.open(write_raster(tmp_path / "utm32.tif", image, crs="EPSG:32632"))
    with pytest.raises(GeometryError, match="source2.il is in EPSG:32632 but source1.il is in EPSG:32631.*reproject"):
        eot.serve(MIX, [eot.source(upstream(a)), eot.source(elsewhere)])

    def broken(x):
        raise ValueError("the upstream model broke")

    failing = eot.serve(FunctionModel(broken, ["x"], [TensorSpec("y", np.dtype(np.float32), (None, None, None, 1))]),
                        [eot.source(a)], fullyconv=True)
    head = eot.serve(FunctionModel(lambda x: {"y": x + 1}, ["x"], ["y"]), [eot.source(failing)])
    with pytest.raises(EotensorError, match="the upstream model broke"):
        head.write(tmp_path / "head.tif")
    assert not list(tmp_path.glob("head*"))  # nothing left behind


def test_two_halo_heads_written_together_compute_each_upstream_tile_once(tmp_path):
    big = np.random.default_rng(0).normal(size=(2, 300, 420)).astype(np.float32)
    path = write_raster(tmp_path / "big.tif", big)
    shared = eot.serve(FunctionModel(lambda x: {"y": x * 1.0}, ["x"], ["y"], name="ident"), [eot.source(path)],
                       fullyconv=True, tile_size=64)
    heads = [eot.serve(FunctionModel(lambda x, k=k: {"y": x[:, 2:-2, 2:-2] * k}, ["x"], ["y"]),
                       [eot.source(shared, rfield=5)], fullyconv=True) for k in (1, 2)]
    assert heads[0].grid == heads[1].grid and heads[0].tile_shape().rows > 2 * 64  # a head tile spans many
    assert [head.count for head in heads] == [2, 2]  # learnt before counting (a probe computes a block)
    shared.tiles.clear()
    computed = []
    compute = shared.compute
    shared.compute = lambda window: computed.append(window) or compute(window)
    eot.write({tmp_path / "h1.tif": heads[0], tmp_path / "h2.tif": heads[1]})
    assert Counter(computed) == Counter(shared.plan())
