"""Tiled == untiled == a whole-image NumPy reference, over random fields, scales, sources and tiles.

The models are NumPy functions with exact integer arithmetic (box sums, strides, nearest upsampling,
weighted patch sums), so any difference is a geometry bug, never rounding. The reference computes
every output pixel from the whole source arrays, block by block, without the engine's tiles.
"""

import math
import uuid
from fractions import Fraction

import numpy as np
import pytest
import rasterio
from affine import Affine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from eotensor.engine.serve import ServeEngine, Source
from eotensor.engine.tiling import TileShape, plan_tiles
from eotensor.errors import GeometryError, ModelOutputError
from eotensor.geometry import round_up
from eotensor.geometry.fields import Fields
from eotensor.io.raster import RasterSource
from eotensor.runtimes import FunctionModel

SCALES = [0.25, 0.5, 1.0, 2.0, 4.0]


def write_source(rng, width, height, bands, spacing, x0, y0):
    path = f"/vsimem/{uuid.uuid4().hex}.tif"
    data = rng.integers(0, 10, size=(bands, height, width)).astype(np.float32)
    profile = dict(driver="GTiff", width=width, height=height, count=bands, dtype="float32",
                   crs="EPSG:32631", transform=Affine(spacing, 0, x0, 0, -spacing, y0))
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path, data.transpose(1, 2, 0)


def run_tiled(engine, tile):
    out = np.zeros((engine.count, engine.grid.height, engine.grid.width), np.float32)
    for window in plan_tiles(engine.grid, tile):
        out[(slice(None), *window.slices())] = engine.compute(window)
    return out


def mosaic_start(out_axis, first, last, src_axis):
    """Index of the first source pixel under output pixels [first, last] (the Mosaic rule, per block)."""
    p0, p1 = out_axis.point(first), out_axis.point(last)
    border = 0.5 * (abs(src_axis.spacing) - abs(out_axis.spacing))
    p0, p1 = (p0 + border, p1 - border) if p0 < p1 else (p0 - border, p1 + border)
    return min(src_axis.index(p0), src_axis.index(p1))


def block_all(ok, ef):
    """Per-pixel flags -> flags that hold for every pixel of the pixel's EF block."""
    blocks = np.arange(len(ok)) // ef
    return np.array([ok[blocks == b].all() for b in blocks])


def fc_reference(grid, sources, arrays, fields):
    """Whole-image result of the box-sum model, each EF block from its own footprint, and the mask of
    pixels whose window lies inside every source (the others are cut by the border: undefined)."""
    planes = []
    valid = np.ones((grid.height, grid.width), bool)
    for src, data in zip(sources, arrays):
        starts = []
        for out_axis, src_axis, ef, rf in ((grid.y, src.raster.grid.y, fields.efield[1], src.rfield[1]),
                                           (grid.x, src.raster.grid.x, fields.efield[0], src.rfield[0])):
            ratio = fields.scale * abs(sources[0].raster.grid.x.spacing) / abs(src_axis.spacing)
            f = Fraction(ratio).limit_denominator(64)
            need = int(1 + (ef - 1) * f)
            pad = rf - need
            n = np.arange(out_axis.size)
            block = np.array([mosaic_start(out_axis, b * ef, b * ef + ef - 1, src_axis) for b in n // ef])
            offset = (n % ef) * f if f >= 1 else (n % ef) // int(1 / f)
            starts.append((block - (pad - pad // 2) + np.asarray(offset, dtype=np.int64), pad + 1))
        (r0, wy), (c0, wx) = starts
        # A block the border cuts is computed from a smaller input (OTBTF's crop): all its pixels are undefined.
        rows_ok = block_all((r0 >= 0) & (r0 + wy <= data.shape[0]), fields.efield[1])
        cols_ok = block_all((c0 >= 0) & (c0 + wx <= data.shape[1]), fields.efield[0])
        valid &= rows_ok[:, None] & cols_ok[None, :]
        sums = sliding_window_view(data, (wy, wx), axis=(0, 1)).sum(axis=(-2, -1))
        r0 = np.clip(r0, 0, sums.shape[0] - 1)
        c0 = np.clip(c0, 0, sums.shape[1] - 1)
        planes.append(sums[r0[:, None], c0[None, :]].transpose(2, 0, 1))
    return np.concatenate(planes).astype(np.float32), valid


def box_model(params):
    """FC model: per source, box sums of (pad+1)^2 then stride f or nearest-upsample by 1/f."""
    def fn(**feeds):
        planes = []
        for key, (wy, wx, f) in params.items():
            x = feeds[key][0]
            s = sliding_window_view(x, (wy, wx), axis=(0, 1)).sum(axis=(-2, -1))
            if f >= 1:
                s = s[::int(f), ::int(f)]
            else:
                s = np.repeat(np.repeat(s, int(1 / f), axis=0), int(1 / f), axis=1)
            planes.append(s)
        return {"y": np.concatenate(planes, axis=-1)[np.newaxis]}
    return fn


def pb_reference(grid, sources, arrays, weights):
    planes = []
    for src, data, w in zip(sources, arrays, weights):
        rfx, rfy = src.rfield
        rows = src.raster.grid.y.index(grid.y.point(np.arange(grid.height))) - rfy // 2
        cols = src.raster.grid.x.index(grid.x.point(np.arange(grid.width))) - rfx // 2
        views = sliding_window_view(data, (rfy, rfx), axis=(0, 1))[rows[:, None], cols[None, :]]
        planes.append(np.einsum("rcbyx,yxb->rc", views, w)[np.newaxis])
    return np.concatenate(planes).astype(np.float32)


def patch_model(weights):
    def fn(**feeds):
        outs = [np.einsum("nyxb,yxb->n", feeds[k], w)[:, None] for k, w in zip(sorted(feeds), weights)]
        return {"y": np.concatenate(outs, axis=1)}
    return fn


@st.composite
def configurations(draw):
    fully_conv = draw(st.booleans())
    scale = draw(st.sampled_from(SCALES))
    ratios = [1.0] + ([draw(st.sampled_from([0.5, 1.0, 2.0]))] if draw(st.booleans()) else [])
    efield = [1, 1]
    if fully_conv:
        base = math.lcm(*[Fraction(scale / r).limit_denominator(64).denominator for r in ratios])
        efield = [base * draw(st.integers(1, 3)) for _ in range(2)]
    rfields = []
    for r in ratios:
        f = Fraction(scale / r).limit_denominator(64)
        need = [int(1 + (e - 1) * f) if fully_conv else 1 for e in efield]
        rfields.append(tuple(n + draw(st.integers(0, 5)) for n in need))
    width = draw(st.integers(18, 40))
    height = draw(st.integers(18, 40))
    shifts = [draw(st.integers(0, 2)) for _ in ratios]
    tile = TileShape(draw(st.integers(1, 48)), draw(st.integers(1, 48)))
    return fully_conv, scale, ratios, tuple(efield), rfields, width, height, shifts, tile, draw(st.integers(0, 99))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_tiled_equals_untiled_equals_numpy(config):
    fully_conv, scale, ratios, efield, rfields, width, height, shifts, tile, seed = config
    rng = np.random.default_rng(seed)
    sources, arrays = [], []
    for k, (ratio, rf, shift) in enumerate(zip(ratios, rfields, shifts)):
        spacing = 10.0 * ratio
        w, h = math.ceil(width / ratio) + shift, math.ceil(height / ratio) + shift
        path, data = write_source(rng, w, h, 2 + k, spacing, 600000.0 - shift * spacing, 5000000.0 + shift * spacing)
        raster = RasterSource([path], f"source{k + 1}.il")
        sources.append(Source(raster, rfield=(rf[0], rf[1]), placeholder=f"x{k + 1}"))
        arrays.append(data)
    fields = Fields(rfields=tuple(s.rfield for s in sources), efield=efield, scale=scale, fully_conv=fully_conv)
    names = [f"x{k + 1}" for k in range(len(sources))]
    if fully_conv:
        params = {}
        for name, src, ratio in zip(names, sources, ratios):
            f = Fraction(scale / ratio).limit_denominator(64)
            pads = [src.rfield[d] - int(1 + (efield[d] - 1) * f) for d in (1, 0)]
            params[name] = (pads[0] + 1, pads[1] + 1, f)
        model = FunctionModel(box_model(params), names, ["y"])
    else:
        weights = [rng.integers(0, 4, size=(s.rfield[1], s.rfield[0], s.raster.count)).astype(np.float32)
                   for s in sources]
        model = FunctionModel(patch_model(weights), names, ["y"])
    try:
        engine = ServeEngine(model, sources, fields, batch_size=64)
    except GeometryError:
        assume(False)
    grid = engine.grid
    if fully_conv:
        reference, valid = fc_reference(grid, sources, arrays, fields)
    else:
        reference, valid = pb_reference(grid, sources, arrays, weights), np.ones((grid.height, grid.width), bool)
    whole = TileShape(grid.height, grid.width)
    tiles = TileShape(round_up(tile.rows, efield[1]), round_up(tile.cols, efield[0]))
    try:
        untiled = run_tiled(engine, whole)
    except ModelOutputError as error:
        # Only a border cut may make the model answer with the wrong size, and then tiling changes nothing.
        assert not valid.all() and "cut by the image border" in str(error)
        with pytest.raises(ModelOutputError, match="cut by the image border"):
            run_tiled(engine, tiles)
        return
    tiled = run_tiled(engine, tiles)
    np.testing.assert_array_equal(tiled, untiled)
    np.testing.assert_array_equal(untiled[:, valid], reference[:, valid])
