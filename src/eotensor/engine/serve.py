"""The serving engine: compute any window of a model's output over its sources.

:class:`ServeEngine` resolves the model's tensors once, computes the output grid (OTBTF geometry), and
then turns an output window into model calls: the window is enlarged to the expression-field grid,
each source is read over the matching input window, the model runs (one call in fully-convolutional
mode, fixed-size batches of centred patches in patch-based mode), and the flat outputs are laid out on
the aligned window, cropped and stacked on bands. A window's result never depends on which other
windows are asked for, which is why tiled output equals untiled output.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from eotensor.engine.prefetch import RowPrefetch
from eotensor.errors import GeometryError, ModelError, ModelOutputError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.boxes import BoxCounts
from eotensor.geometry.fields import (
    Fields,
    InputRegion,
    aligned_window,
    block_spans,
    input_region,
    output_grid,
    patch_starts,
)
from eotensor.io.raster import RasterSource
from eotensor.runtimes.base import Model, TensorSpec, ordered_inputs
from eotensor.runtimes.layout import ChannelsFirst, as_layout, infer_layout
from eotensor.runtimes.signature import placeholder_feed, resolve_names

DEFAULT_BATCH_SIZE = 256
"""Patches per model call in patch-based mode; the last batch is padded so every call has this shape."""


@dataclass(frozen=True)
class Source:
    """One model input: a stacked image list, its receptive field, tensor name and no-data value."""

    raster: RasterSource
    rfield: tuple[int, int] = (1, 1)
    """Receptive field (x, y) in this source's pixels."""
    placeholder: str = ""
    """Model input key; empty: the next input not named elsewhere (declared order for Python models, alphabetical
    for SavedModels, as OTBTF)."""
    nodata: float | None = None
    """If every value a model call would get from this source equals it, the call is skipped."""


def _empty_boxes(valid: np.ndarray, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
    """For every box rows [r0, r1) x cols [c0, c1) of ``valid`` (all pairs): True where it is non-empty and
    holds no valid pixel."""
    r0, r1 = (np.clip(v, 0, valid.shape[0])[:, None] for v in (r0, r1))
    c0, c1 = (np.clip(v, 0, valid.shape[1])[None, :] for v in (c0, c1))
    return (BoxCounts(valid).count(r0, r1, c0, c1) == 0) & (r1 > r0) & (c1 > c0)


def _check_cast(tensor: np.ndarray, spec: TensorSpec, param: str) -> None:
    """Refuse pixels the model's input type cannot hold (an int16 -3 into uint8, 70000 into float16): casting
    them is undefined in C and platform-dependent, so it is an error naming the source, never a silent wrap."""
    kind = spec.dtype.kind
    if not tensor.size or kind not in "iuf" or (kind == "f" and spec.dtype.itemsize >= 4):
        return
    low, high = (np.iinfo(spec.dtype).min, np.iinfo(spec.dtype).max) if kind in "iu" else \
        (-np.finfo(spec.dtype).max, np.finfo(spec.dtype).max)
    lowest, highest = np.nanmin(tensor) if kind == "f" else tensor.min(), np.nanmax(tensor) if kind == "f" \
        else tensor.max()
    if kind in "iu" and np.isnan(tensor).any():
        raise ModelError(f'{param}: NaN pixels cannot feed model input "{spec.key}" ({spec.dtype.name}); set '
                         "sourceN.nodata or use a float model input")
    if lowest < low or highest > high:
        raise ModelError(f'{param}: pixel values {lowest:g}..{highest:g} do not fit model input "{spec.key}" '
                         f"({spec.dtype.name}: {low:g}..{high:g}); rescale the source or give the model a wider type")


def _range(low: int, high: int | None) -> str:
    return f"{low}..{high}" if high is not None else f">= {low}"


def _certain_bands(spec: TensorSpec) -> int | None:
    """Bands per pixel when the signature shape leaves no doubt (decision 4), else None."""
    shape = spec.shape
    if shape is None:
        return None
    if len(shape) == 1:
        return 1
    if len(shape) in (2, 4) and shape[-1] is not None:
        return int(shape[-1])
    return None


class ServeEngine:
    """A model bound to its sources, fields and outputs; :meth:`compute` gives any output window."""

    def __init__(
        self,
        model: Model,
        sources: Sequence[Source],
        fields: Fields,
        output_names: Sequence[str] = (),
        user_placeholders: Mapping[str, np.ndarray] | None = None,
        background: float = 0.0,
        batch_size: int = DEFAULT_BATCH_SIZE,
        layout: str | None = None,
        readers: Sequence[RasterSource | RowPrefetch] | None = None,
    ) -> None:
        """``readers`` read each source's windows in its place (default: the sources' rasters), e.g. the
        :class:`~eotensor.engine.prefetch.RowPrefetch` rows read while the model loaded."""
        if not sources:
            raise ParameterError("source1.il: at least one source is required")
        self.model = model
        self.sources = list(sources)
        self._readers = list(readers) if readers is not None else [s.raster for s in self.sources]
        self.fields = fields
        self.background = float(background)
        self.batch_size = int(batch_size)
        user_placeholders = dict(user_placeholders or {})

        names = list(user_placeholders)
        placeholder_specs = resolve_names(model.inputs, names, ["model.userplaceholders"] * len(names))
        self.feeds_constant = {
            spec.key: placeholder_feed(name, user_placeholders[name], spec)
            for name, spec in zip(names, placeholder_specs)
        }
        excluded = [spec.key for spec in placeholder_specs]
        self.input_specs = resolve_names(
            model.inputs, [s.placeholder for s in self.sources],
            [f"source{i + 1}.placeholder" for i in range(len(self.sources))], exclude=excluded,
            ordered=ordered_inputs(model),  # decision 33: declared order, else alphabetical
        )
        layout = as_layout(model, layout)
        if layout is None:
            layout = infer_layout([(spec, source.raster.count, f"source{i + 1}.il")
                                   for i, (spec, source) in enumerate(zip(self.input_specs, self.sources))])
        if layout == "nchw":
            self.model = model = ChannelsFirst(model, [spec.key for spec in self.input_specs])
            self.input_specs = [model.inputs[spec.key] for spec in self.input_specs]
        self.layout = layout
        """``nhwc`` or ``nchw``: how the model lays out its tensors (NCHW models are fed through ChannelsFirst)."""
        keys = [spec.key for spec in self.input_specs] + excluded
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ParameterError(
                f'model input "{twice[0]}" is fed twice (by two sources or a source and a user placeholder); '
                "give each source its own sourceN.placeholder"
            )
        wanted = list(output_names) or [""]
        self.output_specs = resolve_names(model.outputs, wanted, ["output.names"] * len(wanted))
        for i, (source, spec) in enumerate(zip(self.sources, self.input_specs)):
            channels = spec.shape[-1] if spec.shape else None
            if channels is not None and channels != source.raster.count:
                raise ParameterError(
                    f"source{i + 1}.il: {source.raster.count} band(s) in {', '.join(source.raster.paths)} but model "
                    f'input "{spec.key}" expects {channels} channels'
                )
        self.grid: Grid = output_grid([s.raster.grid for s in self.sources], fields)
        if not fields.fully_conv:
            self.batch_size = self._model_batch_size(self.batch_size)
        self._limits = self._size_limits()
        self._bands: list[int | None] = [_certain_bands(spec) for spec in self.output_specs]
        self._lock = threading.Lock()
        self.model_seconds = 0.0
        """Wall time during which at least one model call was running (concurrent calls count once)."""
        self.model_calls = 0
        self._active_calls = 0
        self._busy_since = 0.0
        self._warned_cut = False
        with np.errstate(over="ignore"):
            exact = float(np.float32(self.background)) == self.background or np.isnan(self.background)
        self._fill_dtype = np.dtype(np.float32 if exact else np.float64)
        """The dtype of background-filled pixels: float32 when it holds ``output.bv`` exactly, else float64."""
        self.regions(Window(0, 0, fields.efield[1], fields.efield[0]))  # RF/EF/S consistency, before any work

    def _model_batch_size(self, wanted: int) -> int:
        """The patch batch size: ``wanted``, unless the model fixes its batch dimension (a static size, or a
        PyTorch range whose maximum is smaller): then the model's."""
        limits = getattr(self.model, "limits", None) or {}
        sizes = {spec.shape[0] for spec in self.input_specs if spec.shape and spec.shape[0] is not None}
        if len(sizes) > 1:
            raise ModelError(f"model inputs declare different batch sizes {sorted(sizes)}; cannot feed patches")
        size = sizes.pop() if sizes else wanted
        for spec in self.input_specs:
            low, high = limits.get(spec.key, {}).get(0, (0, None))
            if high is not None and size > high:
                size = high
            if size < low:
                size = low
        return size

    def _size_limits(self) -> list[tuple[tuple[int, int | None], tuple[int, int | None]]] | None:
        """Per source, the (min, max) rows and columns its model input accepts (NHWC dims 1, 2); None when the
        model declares no limits. In patch-based mode the patch (RF) and the batch size are checked now."""
        declared = getattr(self.model, "limits", None) or {}
        steps = getattr(self.model, "steps", None) or {}
        self._steps = [(steps.get(spec.key, {}).get(1, 1), steps.get(spec.key, {}).get(2, 1))
                       for spec in self.input_specs]
        """Per source, the step its model input's rows and columns must be multiples of (1: any size)."""
        trivial = all(low <= 1 and high is None for dims in declared.values() for low, high in dims.values())
        if trivial and all(step == 1 for pair in self._steps for step in pair):
            return None  # e.g. a .pt2 whose dims are only Dim(min=1): nothing to check on every tile
        limits = []
        for i, (source, spec) in enumerate(zip(self.sources, self.input_specs)):
            dims = declared.get(spec.key, {})
            rows, cols = dims.get(1, (0, None)), dims.get(2, (0, None))
            if not self.fields.fully_conv:
                batch = dims.get(0, (0, None))
                for what, size, (low, high), fix in (
                        ("rows", source.rfield[1], rows, f"source{i + 1}.rfieldy"),
                        ("columns", source.rfield[0], cols, f"source{i + 1}.rfieldx"),
                        ("batch", self.batch_size, batch, "the batch size")):
                    if size < low or (high is not None and size > high):
                        raise ParameterError(
                            f'{fix}: model input "{spec.key}" accepts {_range(low, high)} {what} but gets {size}')
            limits.append((rows, cols))
        return limits

    def _fit_limits(self, window: Window, aligned: Window, regions: list[InputRegion]) -> list[Window]:
        """Windows to compute instead of ``window`` so that every model input stays within the model's limits:
        [] when it already does; one larger window (grown by whole EF blocks, never into the first block
        row/column, whose input the border may cut) when an input is too small; two halves when one is too
        large. Every block's result is independent of the tile, so growing or splitting changes no pixel."""
        ef_x, ef_y = self.fields.efield
        for axis, ef in ((0, ef_y), (1, ef_x)):
            sizes = [(r.window.height, r.window.width)[axis] for r in regions]
            bounds = [lim[axis] for lim in self._limits]
            if any(high is not None and size > high for size, (_, high) in zip(sizes, bounds)):
                extent = (aligned.height, aligned.width)[axis]
                if extent <= ef:
                    raise self._limit_error(axis, sizes, bounds, "one expression-field block already")
                return self._halves(window, aligned, axis)
        grown = window
        for _ in range(max(self.grid.height, self.grid.width) + 1):
            if grown is not window:
                regions = self.regions(aligned_window(grown, self.fields))
            short = [axis for axis in (0, 1) if any(
                (r.window.height, r.window.width)[axis] < lim[axis][0]
                or (r.window.height, r.window.width)[axis] % step[axis]
                for r, lim, step in zip(regions, self._limits, self._steps))]
            if not short:
                return [] if grown == window else [grown]
            r0, r1, c0, c1 = grown.row, grown.row_stop, grown.col, grown.col_stop
            for axis in short:
                sizes = [(r.window.height, r.window.width)[axis] for r in regions]
                if any(r.crop[axis] for r in regions):  # the first block row/column, cut by the border: alone
                    raise self._limit_error(axis, sizes, [lim[axis] for lim in self._limits],
                                            "the first block, whose input the image border cuts,")
                ef, size = (ef_y, self.grid.height) if axis == 0 else (ef_x, self.grid.width)
                lo, hi = (r0, r1) if axis == 0 else (c0, c1)
                if hi < size:
                    hi = min(size, hi + ef)
                elif lo > ef:
                    lo = max(ef, lo - ef)
                elif grown == window and (aligned.height, aligned.width)[axis] > ef:
                    return self._halves(window, aligned, axis)  # each half can then grow into the other's rows
                else:
                    raise self._limit_error(axis, sizes, [lim[axis] for lim in self._limits], "the whole image")
                r0, r1, c0, c1 = (lo, hi, c0, c1) if axis == 0 else (r0, r1, lo, hi)
            grown = Window(r0, c0, r1 - r0, c1 - c0)
        raise AssertionError("growing a window to the model's limits did not end")  # pragma: no cover

    def _halves(self, window: Window, aligned: Window, axis: int) -> list[Window]:
        """``window`` cut in two on the EF grid along ``axis`` (rows 0, columns 1); ``aligned`` spans >= 2 blocks."""
        ef = self.fields.efield[1 - axis]
        extent = (aligned.height, aligned.width)[axis]
        cut = extent // ef // 2 * ef + (aligned.row, aligned.col)[axis]
        if axis == 0:
            return [Window(window.row, window.col, cut - window.row, window.width),
                    Window(cut, window.col, window.row_stop - cut, window.width)]
        return [Window(window.row, window.col, window.height, cut - window.col),
                Window(window.row, cut, window.height, window.col_stop - cut)]

    def _limit_error(self, axis: int, sizes: list[int], bounds: list[tuple[int, int | None]], what: str) -> ModelError:
        name = ("rows", "columns")[axis]
        parts = [f'source{i + 1} feeds "{spec.key}" {size} {name} (it accepts {_range(*bound)}'
                 f"{f', multiples of {step[axis]}' if step[axis] > 1 else ''})"
                 for i, (spec, size, bound, step) in enumerate(zip(self.input_specs, sizes, bounds, self._steps))]
        return ModelError(f"the model's size limits cannot be met: {what} gives {'; '.join(parts)}; change "
                          f"sourceN.rfield{'yx'[axis]}, output.efield{'yx'[axis]} or the image extent")

    # ------------------------------------------------------------------ band count
    @property
    def bands_known(self) -> bool:
        """Whether the output band count is known without running the model."""
        return all(b is not None for b in self._bands)

    @property
    def count(self) -> int:
        """Number of output bands (runs the model once on a central block if the signature cannot tell).

        A central block, because the border may cut a corner block's input (and so its output size).
        """
        if not self.bands_known:
            ef_x, ef_y = self.fields.efield
            row = self.grid.height // 2 // ef_y * ef_y
            col = self.grid.width // 2 // ef_x * ef_x
            self.compute(Window(row, col, ef_y, ef_x), skip_nodata=False)
        return sum(b for b in self._bands if b is not None)

    def release_prefetched(self) -> None:
        """Let go of the rows read while the model loaded (after a run: from now on reads go to the files)."""
        for reader in self._readers:
            if isinstance(reader, RowPrefetch):
                reader.release()

    @property
    def token(self) -> str:
        """What determines this engine's pixels besides the output geometry, as text (for plan fingerprints).

        Sources (files, bands read and file stamps, fields, bound inputs, no-data), the model (its
        ``token`` when it has one: path or code, and file stamps), outputs, user placeholders, background and
        batch size.
        """
        sources = [(s.raster.token, s.rfield, spec.key, s.nodata) for s, spec in zip(self.sources, self.input_specs)]
        model = getattr(self.model, "token", None) or type(self.model).__qualname__
        constants = {k: np.asarray(v).tolist() for k, v in self.feeds_constant.items()}
        return repr((sources, self.fields, model, [s.key for s in self.output_specs], constants,
                     self.background, self.batch_size))

    # ------------------------------------------------------------------ compute
    def regions(self, aligned: Window) -> list[InputRegion]:
        """The window of every source that feeds the EF-aligned output window ``aligned``."""
        ref = self.sources[0].raster.grid
        return [
            input_region(self.grid, aligned, s.raster.grid, i + 1, self.fields, ref)
            for i, s in enumerate(self.sources)
        ]

    def compute(self, window: Window, skip_nodata: bool = True) -> np.ndarray:
        """Output pixels of ``window`` (full-grid indices) as an array (bands, rows, cols).

        With ``skip_nodata``, every expression-field block (patch-based mode: every output pixel) whose
        input from some source with a no-data value is entirely no-data gets ``output.bv``. The decision
        is per block, from the block's own input window, so no tiling can change it; a tile whose blocks
        are all no-data skips the model call.
        """
        aligned = aligned_window(window, self.fields) if self.fields.fully_conv else window
        regions = self.regions(aligned)
        pieces = self._split_at_leading_cut(window, aligned, regions)
        if pieces:
            # Interior piece first: a band count learned from a cut block could be wrong.
            return self._stitch(window, [(piece, self.compute(piece, skip_nodata)) for piece in reversed(pieces)])
        if self._limits is not None and self.fields.fully_conv:
            fitted = self._fit_limits(window, aligned, regions)
            if len(fitted) == 1:  # grown: compute the larger window, keep this one
                return self.compute(fitted[0], skip_nodata)[(slice(None), *window.slices(fitted[0]))]
            if fitted:
                return self._stitch(window, [(piece, self.compute(piece, skip_nodata)) for piece in fitted])
        reads = [reader.read(region.window) for reader, region in zip(self._readers, regions)]
        skipped = self._nodata_pixels(aligned, window, regions, reads) if skip_nodata else None
        if skipped is not None and skipped.all():
            return np.full((self.count, window.height, window.width), self.background, dtype=self._fill_dtype)
        if skipped is not None and not skipped.any():
            skipped = None
        if self.fields.fully_conv:
            try:
                outputs = self._run([t[np.newaxis] for t in reads])
            except ModelError as error:
                if any(any(r.crop) for r in regions):  # the border cut explains the failure better
                    message = f"the model call failed for a {aligned.height}x{aligned.width} output block ({error})"
                    raise self._explain(message, regions) from error
                raise
        else:
            kept = None if skipped is None else np.flatnonzero(~skipped.ravel())
            patches = [self._patches(pixels, source, region.window, window, kept)
                       for pixels, source, region in zip(reads, self.sources, regions)]
            outputs = [self._scatter(out, kept, window.size) for out in self._run_batches(patches)]
        bands = [self._layout(out, k, aligned, window, regions) for k, out in enumerate(outputs)]
        result = bands[0] if len(bands) == 1 else np.concatenate(bands, axis=0)
        if skipped is not None:
            # A dtype that holds the background exactly, as the all-no-data path uses: skipped pixels get the
            # same value whatever the tile (a bool or uint8 model output cannot hold -5; float32 not 0.1).
            # A new array: never write into one the model still owns.
            result = result.astype(np.result_type(result.dtype, self._fill_dtype))
            result[:, skipped] = self.background
        return result

    def _nodata_pixels(
        self, aligned: Window, window: Window, regions: list[InputRegion], reads: list[np.ndarray]
    ) -> np.ndarray | None:
        """Pixels of ``window`` whose block (or patch) reads only no-data from some source; None: no such source.

        Per source with a no-data value: a pixel is valid where some band differs from it; a block is
        no-data where its input window (fixed by the geometry, cut by the image border like OTBTF's)
        holds no valid pixel, counted with a summed-area table over the tile's read.
        """
        skipped: np.ndarray | None = None
        ref = self.sources[0].raster.grid
        for i, (source, region, pixels) in enumerate(zip(self.sources, regions, reads)):
            if source.nodata is None:
                continue
            nodata = np.float32(source.nodata)
            valid = ~(np.isnan(pixels) if np.isnan(nodata) else pixels == nodata).all(axis=-1)
            read, grid = region.window, source.raster.grid
            if self.fields.fully_conv:
                (r0, r1), (c0, c1) = block_spans(self.grid, aligned, grid, i + 1, self.fields, ref)
                blocks = _empty_boxes(valid, r0 - read.row, r1 - read.row, c0 - read.col, c1 - read.col)
                ef_x, ef_y = self.fields.efield
                empty = np.repeat(np.repeat(blocks, ef_y, axis=0), ef_x, axis=1)[window.slices(aligned)]
            else:
                rfx, rfy = source.rfield
                rows, cols = self._patch_origins(source, read, window)
                empty = _empty_boxes(valid, rows, rows + rfy, cols, cols + rfx)
            skipped = empty if skipped is None else skipped | empty
        return skipped

    @staticmethod
    def _scatter(out: np.ndarray, kept: np.ndarray | None, pixels: int) -> np.ndarray:
        """Per-patch results of the kept pixels -> one row per pixel of the window (others zero; masked later)."""
        if kept is None:
            return out
        full = np.zeros((pixels, *out.shape[1:]), dtype=out.dtype)
        full[kept] = out
        return full

    def _split_at_leading_cut(self, window: Window, aligned: Window, regions: list[InputRegion]) -> list[Window]:
        """Split off the first EF block row/column when the border cuts the input at the top/left.

        OTBTF feeds the cut (smaller) tensor, which shifts every block computed in the same call. Computing
        the border blocks on their own confines the shift to them, OTBTF's way, and keeps every other block
        exact and independent of the tiling. Returns [] when no split is needed.
        """
        if not self.fields.fully_conv:
            return []
        ef_x, ef_y = self.fields.efield
        if not self._warned_cut and any(r.crop[0] or r.crop[1] for r in regions):
            self._warned_cut = True
            warnings.warn(
                "the image border cuts the input of the first output block row/column (OTBTF feeds it smaller, "
                "which shifts those blocks); other blocks are unaffected", stacklevel=2)
        row_cut = any(r.crop[0] for r in regions) and aligned.height > ef_y
        col_cut = any(r.crop[1] for r in regions) and aligned.width > ef_x
        if not (row_cut or col_cut):
            return []
        rows = [window.row, aligned.row + ef_y] if row_cut else [window.row]
        cols = [window.col, aligned.col + ef_x] if col_cut else [window.col]
        rows.append(window.row_stop)
        cols.append(window.col_stop)
        pieces = [Window(r0, c0, r1 - r0, c1 - c0) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
        return [p for p in pieces if p.size]

    @staticmethod
    def _stitch(window: Window, parts: list[tuple[Window, np.ndarray]]) -> np.ndarray:
        out = np.empty((parts[0][1].shape[0], window.height, window.width), dtype=parts[0][1].dtype)
        for piece, array in parts:
            out[(slice(None), *piece.slices(window))] = array
        return out

    def _patch_origins(self, source: Source, read: Window, window: Window) -> tuple[np.ndarray, np.ndarray]:
        """First row and column, within ``read``, of the patch centred on each output row and column of ``window``."""
        grid, (rfx, rfy) = source.raster.grid, source.rfield
        rows = patch_starts(self.grid.y, np.arange(window.row, window.row_stop), grid.y, rfy) - read.row
        cols = patch_starts(self.grid.x, np.arange(window.col, window.col_stop), grid.x, rfx) - read.col
        return rows, cols

    def _patches(
        self, pixels: np.ndarray, source: Source, read: Window, window: Window, kept: np.ndarray | None = None
    ) -> np.ndarray:
        """Patch-based mode: the batch of RF-sized patches centred on the output pixels of ``window``.

        ``kept`` lists the pixels (raster order within ``window``) to extract; None: all of them.
        """
        rfx, rfy = source.rfield
        rows, cols = self._patch_origins(source, read, window)
        if rows[0] < 0 or cols[0] < 0 or rows[-1] + rfy > read.height or cols[-1] + rfx > read.width:
            raise GeometryError(f"patch of an output pixel in {window} leaves {source.raster.param} {read}")
        views = sliding_window_view(pixels, (rfy, rfx), axis=(0, 1))  # (r, c, bands, rfy, rfx)
        if kept is None:
            batch = views[rows[:, None], cols[None, :]].reshape(-1, *views.shape[2:])
        else:
            batch = views[rows[kept // window.width], cols[kept % window.width]]
        return np.ascontiguousarray(batch.transpose(0, 2, 3, 1))  # (n, rfy, rfx, bands)

    def _run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(self.feeds_constant)
        for i, (spec, tensor) in enumerate(zip(self.input_specs, tensors)):
            _check_cast(tensor, spec, f"source{i + 1}.il")
            feeds[spec.key] = tensor.astype(spec.dtype, copy=False)
        with self._lock:
            if not self._active_calls:
                self._busy_since = time.perf_counter()
            self._active_calls += 1
        try:
            return self.model.run(feeds, [spec.key for spec in self.output_specs])
        finally:
            with self._lock:
                self._active_calls -= 1
                self.model_calls += 1
                if not self._active_calls:
                    self.model_seconds += time.perf_counter() - self._busy_since

    def _run_batches(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        """Run fixed-size batches (the last padded with its last patch): a result never depends on the tile size."""
        n, size = len(batches[0]), self.batch_size
        parts: list[list[np.ndarray]] = [[] for _ in self.output_specs]
        for start in range(0, n, size):
            chunk = [b[start:start + size] for b in batches]
            used = len(chunk[0])
            if used < size:  # pad with copies of the last real patch: the model never sees made-up values
                chunk = [np.concatenate([c, np.repeat(c[-1:], size - used, axis=0)]) for c in chunk]
            for k, out in enumerate(self._run(chunk)):
                out = np.asarray(out)
                if out.size % size:
                    raise self._count_error(k, out.size, size, "a batch of patches", [])
                parts[k].append(out.reshape(size, -1)[:used])
        return [np.concatenate(p) for p in parts]

    def _layout(
        self, out: np.ndarray, k: int, aligned: Window, window: Window, regions: list[InputRegion]
    ) -> np.ndarray:
        """Flat model output (row, col, band order over ``aligned``) -> contiguous (bands, rows, cols) of ``window``.

        The transposing copy happens here, in the worker threads, not in the writing thread.
        """
        out = np.asarray(out)
        pixels = aligned.size
        if self.fields.fully_conv:
            self._check_spatial_shape(out, k, aligned, regions)
        bands, extra = divmod(out.size, pixels)
        known = self._bands[k]
        if extra or bands == 0 or (known is not None and bands != known):
            raise self._count_error(k, out.size, pixels, f"a {aligned.height}x{aligned.width} output block", regions)
        if known is None:
            with self._lock:
                self._bands[k] = bands
        cube = out.reshape(aligned.height, aligned.width, bands)[window.slices(aligned)]
        return np.ascontiguousarray(cube.transpose(2, 0, 1))  # band-first, as writers want it

    def _check_spatial_shape(self, out: np.ndarray, k: int, aligned: Window, regions: list[InputRegion]) -> None:
        """A fully-convolutional output of rank >= 3 must be laid out on the block: (1, rows, cols, ...).

        Flat and rank-2 outputs, and outputs with one leading row per pixel (the talk's round-4 graph,
        ``[rows*cols, 4, 1]``), follow the element-count rule instead. Anything else (an upsampled output
        served without ``output.spcscale``, an NCHW output) would be written as scrambled bands.
        """
        rows, cols = aligned.height, aligned.width
        if out.ndim < 3 or out.shape[0] == rows * cols or (out.shape[0] == 1 and out.shape[1:3] == (rows, cols)):
            return
        hint = None  # None: _explain's hint about the fields
        if out.shape[0] != 1:
            hint = "the output must be laid out NHWC (batch of 1, rows, cols, bands)"
        elif out.shape[1] * cols == out.shape[2] * rows and out.shape[1] % rows == 0 and out.shape[1] > rows:
            factor = out.shape[1] // rows
            hint = (f"the output is {factor}x the block: serve it with output.spcscale "
                    f"{self.fields.scale / factor:g} (and the matching receptive field)")
        raise self._explain(
            f'model output "{self.output_specs[k].key}" has shape {tuple(out.shape)} for a {rows}x{cols} output '
            f"block; expected (1, {rows}, {cols}, bands) (NHWC)", regions, hint)

    def _count_error(
        self, k: int, values: int, pixels: int, what: str, regions: list[InputRegion]
    ) -> ModelOutputError:
        spec = self.output_specs[k]
        known = self._bands[k]
        expected = f"{pixels} x {known} band(s)" if known else f"a multiple of {pixels}"
        return self._explain(
            f'model output "{spec.key}" has {values} values for {what} ({pixels} pixels); expected {expected}',
            regions,
        )

    def _explain(self, message: str, regions: list[InputRegion], hint: str | None = None) -> ModelOutputError:
        """``message`` plus its likely cause: a border cut of some source's input, else ``hint`` or the fields."""
        for i, region in enumerate(regions):
            if any(region.crop):
                sides = ", ".join(
                    f"{n} px on the {side}" for n, side in zip(region.crop, ("top", "left", "bottom", "right")) if n
                )
                rfx, rfy = self.sources[i].rfield
                return ModelOutputError(
                    f"{message}: source{i + 1}'s input window was cut by the image border ({sides}); "
                    f"receptive field {rfx}x{rfy} with expression field "
                    f"{self.fields.efield[0]}x{self.fields.efield[1]} "
                    "crops at the border (OTBTF never pads): at output.spcscale 1 use a receptive field of the "
                    "expression field's parity (e.g. RF+1); otherwise check RF, EF and output.spcscale"
                )
        return ModelOutputError(
            f"{message}: " + (hint or "check the sources' rfieldx/rfieldy, output.efieldx/efieldy and "
                              "output.spcscale against what the model really consumes and produces")
            + f" (inputs: {self.binding})"
        )

    @property
    def binding(self) -> str:
        """Which model input each source and user placeholder feeds, for error messages."""
        fed = [f'source{i + 1} -> "{spec.key}"' for i, spec in enumerate(self.input_specs)]
        fed += [f'model.userplaceholders -> "{key}"' for key in self.feeds_constant]
        return ", ".join(fed)
