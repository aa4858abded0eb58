"""Tiled == untiled == a whole-image NumPy reference, over random fields, scales, sources, no-data and tiles.

The models are NumPy functions with exact integer arithmetic (box sums, strides, nearest upsampling,
weighted patch sums), so any difference is a geometry bug, never rounding. The reference computes
every output pixel from the whole source arrays, block by block, without the engine's tiles; it
decides the no-data skip per expression-field block (patch-based: per output pixel) on its own.
Every tile shape runs through every executor (``sync``, the reference, and ``threads``), including
the tiles the memory budget picks for random ``ram_mb`` values.
"""

import math
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from eotensor.api import ServedRaster
from eotensor.engine.serve import ServeEngine, Source
from eotensor.errors import GeometryError, ModelOutputError
from eotensor.geometry.fields import Fields
from eotensor.io.raster import RasterSource
from eotensor.runtimes import FunctionModel
from eotensor.testing import assert_tiled_equals_untiled, write_raster
from eotensor.testing.strategies import configurations, rectangles

PROPERTY_EXAMPLES = 200

BACKGROUND = -1e6
"""output.bv in these tests: no box or patch sum of the test data can reach it."""


def footprint_span(out_axis, first, last, src_axis):
    """[start, stop) of the source pixels whose centres lie in the footprint of output pixels [first, last],
    worked out in source-index units: a centre on the far edge belongs to the block, one on the near edge to
    the previous block (half-up rounding, as OTBTF's Mosaic rule works out for whole-pixel blocks)."""
    half = 0.5 * out_axis.spacing
    edges = [(out_axis.point(first) - half - src_axis.origin) / src_axis.spacing,
             (out_axis.point(last) + half - src_axis.origin) / src_axis.spacing]
    lo, hi = min(edges), max(edges)
    candidates = np.arange(-64, src_axis.size + 64)
    inside = candidates[(candidates > lo + 1e-6) & (candidates <= hi + 1e-6)]
    return inside.min(), inside.max() + 1


def block_all(ok, ef):
    """Per-pixel flags -> flags that hold for every pixel of the pixel's EF block."""
    blocks = np.arange(len(ok)) // ef
    return np.array([ok[blocks == b].all() for b in blocks])


def fc_reference(grid, sources, arrays, config):
    """Whole-image result of the box-sum model, each EF block from its own footprint; the mask of pixels
    whose window lies inside every source (the others are cut by the border: undefined); and the mask of
    pixels whose block reads only no-data from some source."""
    planes = []
    valid = np.ones((grid.height, grid.width), bool)
    skipped = np.zeros((grid.height, grid.width), bool)
    for k, (src, data) in enumerate(zip(sources, arrays)):
        starts, spans = [], []
        for out_axis, src_axis, ef, pad in ((grid.y, src.raster.grid.y, config.efield[1], config.pads(k)[0]),
                                           (grid.x, src.raster.grid.x, config.efield[0], config.pads(k)[1])):
            f = config.step(k)
            n = np.arange(out_axis.size)
            block = np.array([footprint_span(out_axis, b * ef, b * ef + ef - 1, src_axis) for b in n // ef])
            offset = (n % ef) * f if f >= 1 else (n % ef) // int(1 / f)
            starts.append((block[:, 0] - (pad - pad // 2) + np.asarray(offset, dtype=np.int64), pad + 1))
            spans.append((block[:, 0] - (pad - pad // 2), block[:, 1] + pad // 2))
        (r0, wy), (c0, wx) = starts
        # A block the border cuts is computed from a smaller input (OTBTF's crop): all its pixels are undefined.
        rows_ok = block_all((r0 >= 0) & (r0 + wy <= data.shape[0]), config.efield[1])
        cols_ok = block_all((c0 >= 0) & (c0 + wx <= data.shape[1]), config.efield[0])
        valid &= rows_ok[:, None] & cols_ok[None, :]
        sums = sliding_window_view(data, (wy, wx), axis=(0, 1)).sum(axis=(-2, -1))
        r0 = np.clip(r0, 0, sums.shape[0] - 1)
        c0 = np.clip(c0, 0, sums.shape[1] - 1)
        planes.append(sums[r0[:, None], c0[None, :]].transpose(2, 0, 1))
        if src.nodata is not None:  # every block reads a window of one size (before the border cuts it)
            (ys, ye), (xs, xe) = spans
            assert len(set(ye - ys)) == 1 and len(set(xe - xs)) == 1
            skipped |= all_nodata(data, src.nodata, ys, xs, (int(ye[0] - ys[0]), int(xe[0] - xs[0])))
    return np.concatenate(planes).astype(np.float32), valid, skipped


def all_nodata(data, nodata, row_starts, col_starts, size):
    """For each (row start, col start) pair: whether the size = (rows, cols) window, cut by the image border,
    holds only no-data (every band). Outside the image counts as no-data, so a cut window is judged on its
    part inside the image; each window is looked at directly."""
    is_nodata = (np.isnan(data) if np.isnan(nodata) else data == nodata).all(axis=-1)
    margin = max(size)
    padded = np.pad(is_nodata, margin, constant_values=True)
    windows = sliding_window_view(padded, size).all(axis=(-2, -1))
    return windows[(row_starts + margin)[:, None], (col_starts + margin)[None, :]]


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
    skipped = np.zeros((grid.height, grid.width), bool)
    for src, data, w in zip(sources, arrays, weights):
        rfx, rfy = src.rfield
        rows = src.raster.grid.y.index(grid.y.point(np.arange(grid.height))) - rfy // 2
        cols = src.raster.grid.x.index(grid.x.point(np.arange(grid.width))) - rfx // 2
        views = sliding_window_view(data, (rfy, rfx), axis=(0, 1))[rows[:, None], cols[None, :]]
        planes.append(np.einsum("rcbyx,yxb->rc", views, w)[np.newaxis])
        if src.nodata is not None:
            skipped |= all_nodata(data, src.nodata, rows, cols, (rfy, rfx))
    return np.concatenate(planes).astype(np.float32), skipped


def patch_model(weights):
    def fn(**feeds):
        outs = [np.einsum("nyxb,yxb->n", feeds[k], w)[:, None] for k, w in zip(sorted(feeds), weights)]
        return {"y": np.concatenate(outs, axis=1)}
    return fn


def make_sources(config, data_strategy):
    """Random integer rasters in /vsimem with random no-data rectangles; returns sources and arrays (h, w, b)."""
    rng = np.random.default_rng(config.seed)
    sources, arrays = [], []
    for k, (ratio, rf, shift) in enumerate(zip(config.ratios, config.rfields, config.shifts)):
        spacing = 10.0 * ratio
        w, h = math.ceil(config.width / ratio) + shift, math.ceil(config.height / ratio) + shift
        data = rng.integers(0, 10, size=(h, w, 2 + k)).astype(np.float32)
        nodata = data_strategy.draw(st.sampled_from([None, -1.0, float("nan")]), label=f"source{k + 1}.nodata")
        if nodata is not None:
            for r, c, nr, nc in data_strategy.draw(rectangles(h, w), label=f"source{k + 1} no-data"):
                data[r:r + nr, c:c + nc, :] = nodata
            data[rng.integers(0, h), rng.integers(0, w), 0] = nodata  # one band only: still a valid pixel
        path = f"/vsimem/{uuid.uuid4().hex}.tif"
        write_raster(path, data.transpose(2, 0, 1), spacing=spacing,
                     origin=(600000.0 - shift * spacing, 5000000.0 + shift * spacing))
        raster = RasterSource([path], f"source{k + 1}.il")
        sources.append(Source(raster, rfield=rf, placeholder=f"x{k + 1}", nodata=nodata))
        arrays.append(data)
    return sources, arrays


@settings(max_examples=PROPERTY_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations(), st.data())
def test_tiled_equals_untiled_equals_numpy(config, data_strategy):
    sources, arrays = make_sources(config, data_strategy)
    fields = Fields(rfields=tuple(s.rfield for s in sources), efield=config.efield, scale=config.scale,
                    fully_conv=config.fully_conv)
    names = [f"x{k + 1}" for k in range(len(sources))]
    if config.fully_conv:
        params = {name: (config.pads(k)[0] + 1, config.pads(k)[1] + 1, config.step(k)) for k, name in enumerate(names)}
        model = FunctionModel(box_model(params), names, ["y"])
    else:
        rng = np.random.default_rng(config.seed + 1)
        weights = [rng.integers(0, 4, size=(s.rfield[1], s.rfield[0], s.raster.count)).astype(np.float32)
                   for s in sources]
        model = FunctionModel(patch_model(weights), names, ["y"])
    try:
        engine = ServeEngine(model, sources, fields, background=BACKGROUND, batch_size=64)
    except GeometryError:
        assume(False)
    grid = engine.grid
    if config.fully_conv:
        reference, valid, skipped = fc_reference(grid, sources, arrays, config)
    else:
        reference, skipped = pb_reference(grid, sources, arrays, weights)
        valid = np.ones((grid.height, grid.width), bool)
    ram_mb = data_strategy.draw(st.sampled_from([0.002, 0.01, 0.05, 1.0]), label="ram_mb")
    # At most 24 x 24 tiles (enough for every border case, and the run stays short), through every executor.
    tile = (max(config.tile.rows, -(-grid.height // 24)), max(config.tile.cols, -(-grid.width // 24)))
    try:
        budget_tile = ServedRaster(engine, ram_mb=ram_mb).tile_shape()  # learns the band count: may fail too
        untiled = assert_tiled_equals_untiled(engine, [tile])
        assert_tiled_equals_untiled(engine, [budget_tile], schedulers=["sync"])
    except ModelOutputError as error:
        # Only a border cut may make the model answer with the wrong size, and then tiling changes nothing.
        assert not valid.all() and "cut by the image border" in str(error)
        with pytest.raises(ModelOutputError, match="cut by the image border"):
            assert_tiled_equals_untiled(engine, [tile], schedulers=["sync"])
        return
    np.testing.assert_array_equal(untiled == BACKGROUND, np.broadcast_to(skipped, untiled.shape))
    check = valid & ~skipped
    np.testing.assert_array_equal(untiled[:, check], reference[:, check])
