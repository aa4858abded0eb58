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

from eotensor.errors import GeometryError, ModelError, ModelOutputError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.geometry.fields import Fields, InputRegion, aligned_window, input_region, output_grid, patch_starts
from eotensor.io.raster import RasterSource
from eotensor.runtimes.base import Model, TensorSpec, ordered_inputs
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
    """Signature input key; empty means the next key in alphabetical order."""
    nodata: float | None = None
    """If every value a model call would get from this source equals it, the call is skipped."""


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
    ) -> None:
        if not sources:
            raise ParameterError("source1.il: at least one source is required")
        self.model = model
        self.sources = list(sources)
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
        self._bands: list[int | None] = [_certain_bands(spec) for spec in self.output_specs]
        self._lock = threading.Lock()
        self.model_seconds = 0.0
        """Wall time during which at least one model call was running (concurrent calls count once)."""
        self.model_calls = 0
        self._active_calls = 0
        self._busy_since = 0.0
        self._warned_cut = False
        self.regions(Window(0, 0, fields.efield[1], fields.efield[0]))  # RF/EF/S consistency, before any work

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

        Windows that a no-data source covers entirely come back filled with ``output.bv``.
        """
        aligned = aligned_window(window, self.fields) if self.fields.fully_conv else window
        regions = self.regions(aligned)
        pieces = self._split_at_leading_cut(window, aligned, regions)
        if pieces:
            # Interior piece first: a band count learned from a cut block could be wrong.
            return self._stitch(window, [(piece, self.compute(piece, skip_nodata)) for piece in reversed(pieces)])
        tensors = []
        for source, region in zip(self.sources, regions):
            pixels = source.raster.read(region.window)
            if not self.fields.fully_conv:
                pixels = self._patches(pixels, source, region.window, window)
            tensors.append(pixels)
        if skip_nodata and self._all_nodata(tensors):
            return np.full((self.count, window.height, window.width), self.background, dtype=np.float32)
        if self.fields.fully_conv:
            try:
                outputs = self._run([t[np.newaxis] for t in tensors])
            except ModelError as error:
                if any(any(r.crop) for r in regions):  # the border cut explains the failure better
                    message = f"the model call failed for a {aligned.height}x{aligned.width} output block ({error})"
                    raise self._explain(message, regions) from error
                raise
        else:
            outputs = self._run_batches(tensors)
        bands = [self._layout(out, k, aligned, window, regions) for k, out in enumerate(outputs)]
        return bands[0] if len(bands) == 1 else np.concatenate(bands, axis=0)

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

    def _all_nodata(self, tensors: list[np.ndarray]) -> bool:
        for source, tensor in zip(self.sources, tensors):
            if source.nodata is None:
                continue
            if np.isnan(source.nodata):
                if np.isnan(tensor).all():
                    return True
            elif (tensor == np.float32(source.nodata)).all():
                return True
        return False

    def _patches(self, pixels: np.ndarray, source: Source, read: Window, window: Window) -> np.ndarray:
        """Patch-based mode: the batch of RF-sized patches centred on each output pixel of ``window``."""
        rfx, rfy = source.rfield
        grid = source.raster.grid
        cols = patch_starts(self.grid.x, np.arange(window.col, window.col_stop), grid.x, rfx) - read.col
        rows = patch_starts(self.grid.y, np.arange(window.row, window.row_stop), grid.y, rfy) - read.row
        if rows[0] < 0 or cols[0] < 0 or rows[-1] + rfy > read.height or cols[-1] + rfx > read.width:
            raise GeometryError(f"patch of an output pixel in {window} leaves {source.raster.param} {read}")
        views = sliding_window_view(pixels, (rfy, rfx), axis=(0, 1))  # (r, c, bands, rfy, rfx)
        batch = views[rows[:, None], cols[None, :]]  # (rows, cols, bands, rfy, rfx)
        return np.ascontiguousarray(batch.reshape(-1, *batch.shape[2:]).transpose(0, 2, 3, 1))

    def _run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        feeds = dict(self.feeds_constant)
        for spec, tensor in zip(self.input_specs, tensors):
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
        """Run fixed-size batches (the last one padded) so a pixel's result never depends on the tile size."""
        n, size = len(batches[0]), self.batch_size
        parts: list[list[np.ndarray]] = [[] for _ in self.output_specs]
        for start in range(0, n, size):
            chunk = [b[start:start + size] for b in batches]
            used = len(chunk[0])
            if used < size:
                chunk = [np.concatenate([c, np.zeros((size - used, *c.shape[1:]), c.dtype)]) for c in chunk]
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
        bands, extra = divmod(out.size, pixels)
        known = self._bands[k]
        if extra or bands == 0 or (known is not None and bands != known):
            raise self._count_error(k, out.size, pixels, f"a {aligned.height}x{aligned.width} output block", regions)
        if known is None:
            with self._lock:
                self._bands[k] = bands
        cube = out.reshape(aligned.height, aligned.width, bands)[window.slices(aligned)]
        return np.ascontiguousarray(cube.transpose(2, 0, 1))  # band-first, as writers want it

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

    def _explain(self, message: str, regions: list[InputRegion]) -> ModelOutputError:
        """``message`` plus its likely cause: a border cut of some source's input, else the fields."""
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
            f"{message}: check the sources' rfieldx/rfieldy, output.efieldx/efieldy and output.spcscale "
            "against what the model really consumes and produces"
        )
