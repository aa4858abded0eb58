"""Resumable runs (``-optim.resume on``, Python ``write(..., resume=True)``): keep what an interrupted run wrote.

With resume on, each output is streamed into a partial file with a fixed name next to it, and its journal
(:mod:`eotensor.io.journal`) records, at every checkpoint, the tiles the partial file holds durably. A run
that stops (an exception, Ctrl-C, SIGTERM) makes a last checkpoint and keeps both; a SIGKILL or a crash keeps
what the last checkpoint recorded. The same command with resume on then compares the journal's header with
its own (:func:`describe`: the output, the grid and tile plan, every input file's and model's size and
modification time, the result's recipe): a difference is refused with one line saying what changed;
otherwise the partial file is opened for update and only the tiles not recorded are computed (the plan is
:func:`~eotensor.engine.tiling.remaining`); the output is then finished as any other (COG stage, rename) and
the journal removed. Tiles are independent by construction (tiled == untiled), so the file is the one an
uninterrupted run writes.

The run holds its outputs' locks throughout (:func:`~eotensor.io.atomic.lock_output`): a second run of the same
output is refused, and a run committing it meanwhile leaves the partial file and journal alone. Input files are
known by their resolved path, every file of a source's GDAL dataset stamped (a VRT's sources). Each record also
holds a pixel row of the last tile written and its CRC: a partial file replaced by another is not continued.

:class:`ResumableWrite` drives a writer through its checkpoint hook (:class:`Checkpointing`): any writer
that can make what it wrote durable (a GeoTIFF closes and reopens its dataset; a store that is durable
on every write does nothing) can be journaled.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from eotensor.engine.tiling import TilePlan, remaining
from eotensor.errors import OutputFileError
from eotensor.io.atomic import (
    is_virtual_path,
    is_write_through,
    lock_output,
    partial_paths,
    remove_partials,
    unlock_output,
)
from eotensor.io.extended import OutputTarget, gdal_bool
from eotensor.io.journal import Item, Journal, header_changes
from eotensor.io.raster import dataset_files
from eotensor.runtimes.base import file_stamps

__all__ = ["Checkpointing", "ResumableWrite", "checkpoint_seconds", "describe"]

RECIPE_LABEL = "the result's recipe (sources, model, fields, outputs, parameters)"
SAMPLES_CHECKED = 64
"""The last checkpoints whose pixel sample a resumed run reads back (one block read each: a day-long run's 8640
would take seconds; a replaced file fails any of them)."""


def checkpoint_seconds() -> float:
    """Seconds between checkpoints: ``EOTENSOR_CHECKPOINT_S`` when set (> 0), else
    :data:`~eotensor.io.journal.CHECKPOINT_S`."""
    from eotensor.io.journal import CHECKPOINT_S

    text = os.environ.get("EOTENSOR_CHECKPOINT_S", "").strip()
    try:
        value = float(text) if text else CHECKPOINT_S
    except ValueError:
        value = CHECKPOINT_S
    return value if math.isfinite(value) and value > 0 else CHECKPOINT_S


class Checkpointing(Protocol):
    """What :class:`ResumableWrite` needs of a writer."""

    temp_path: str
    """The file written (fsync'd to make a checkpoint durable)."""
    sample: list[int] | None
    """A pixel row of the last tile written and its CRC, recorded so that a replaced partial file is recognised
    (:func:`~eotensor.io.geotiff.sample_problem`); None for a writer that keeps none."""

    def checkpoint(self, sync: bool = True) -> int | None:
        """Hand everything written so far to the file (a GeoTIFF: its directory written), fsync it when ``sync``,
        and keep writing; return the file's size if it has one."""

    def suspend(self) -> bool:
        """Make everything written so far durable and stop (an interrupted run); whether that succeeded."""


def _inputs(raster: Any, found: dict[str, str]) -> None:
    """Every file determining ``raster``'s pixels, by path, labelled by the parameter that reads it: a served
    result's model and sources, then its upstreams', then any other file it reads."""
    engine = getattr(raster, "engine", None)
    if engine is not None:
        recipe = getattr(raster, "recipe", None)
        model = recipe.model if recipe is not None else getattr(engine.model, "path", None)
        if model:
            found.setdefault(os.fspath(model).split("::")[0], "model.dir")
        for source in engine.sources:
            for path in getattr(source.raster, "paths", []):
                found.setdefault(path, getattr(source.raster, "param", "source"))
    for upstream in getattr(raster, "upstreams", []):
        _inputs(upstream, found)
    for path in raster.files:
        found.setdefault(path, "input")


def _parameters(raster: Any) -> list[Item]:
    """A served result's own parameters by their OTB keys (what a changed one is called in the refusal)."""
    engine = getattr(raster, "engine", None)
    if engine is None:
        return []
    fields = engine.fields
    items: list[Item] = [["value", f"source{k}.rfield", "x".join(map(str, rf))]
                         for k, rf in enumerate(fields.rfields, start=1)]
    items += [
        ["value", "output.efield", "x".join(map(str, fields.efield))],
        ["value", "output.spcscale", repr(float(fields.scale))],
        ["value", "model.fullyconv", "on" if fields.fully_conv else "off"],
        ["value", "output.names", ",".join(spec.key for spec in engine.output_specs)],
        ["value", "output.bv", repr(float(engine.background))],
        ["value", "optim.batchsize", int(engine.batch_size)],
        ["text", "model.userplaceholders", repr({k: v.tolist() if hasattr(v, "tolist") else v
                                                 for k, v in sorted(engine.feeds_constant.items())})],
    ]
    return items


def describe(raster: Any, target: OutputTarget, plan: TilePlan) -> list[Item]:
    """The journal header of ``raster`` written to ``target`` over ``plan``: everything that determines the
    file's pixels, as labelled items (see :mod:`eotensor.io.journal`)."""
    grid, region, tile = plan.grid, plan.region, plan.tile
    options = "&".join(f"{k}={v}" for k, v in sorted(target.creation_options.items()))
    cog = target.cog
    layout = "no" if cog is None else (f"overviews {'auto' if cog.overviews is None else cog.overviews}, "
                                       f"resampling {cog.resampling}")
    items: list[Item] = [
        ["value", "output", os.path.realpath(target.path)],
        ["value", "format", target.format.driver],
        ["value", "pixel type", target.dtype.name],
        ["value", "box", "none" if target.box is None else ":".join(map(str, target.box))],
        ["value", "creation options", options or "none"],
        ["value", "nodata", "none" if target.nodata is None else repr(float(target.nodata))],
        ["value", "cog", layout],
        ["value", "bands", int(raster.count)],
        ["value", "grid", f"{grid.width}x{grid.height} pixels"],
        ["value", "transform", [float(v) for v in tuple(grid.transform)[:6]]],
        ["value", "crs", grid.crs.to_wkt() if grid.crs else "none"],
        ["value", "tile size (optim.tilesizex/y, optim.ram)", f"{tile.cols}x{tile.rows}"],
        ["value", "region", f"{region.col}:{region.row}:{region.width}:{region.height}"],
    ]
    found: dict[str, str] = {}
    _inputs(raster, found)
    seen: set[str] = set()
    for path, label in found.items():
        if is_virtual_path(path):  # not stamped: a change there is not detected (README)
            items.append(["file", f'{label} "{path}"', "virtual", f'{label} "{path}"'])
            continue
        # Every file of the dataset (a VRT's sources, side-cars), keyed by its resolved path: however it is spelled
        # (a.tif, ./a.tif, /abs/a.tif) it is the same input; messages say it as the user did.
        for name in [path] if label == "model.dir" else dataset_files(path):
            real = os.path.realpath(name)
            if real in seen:
                continue
            seen.add(real)
            shown = f'{label} "{path}"' + ("" if name == path else f' (its file "{name}")')
            items.append(["file", f'{label} "{real}"', "virtual" if is_virtual_path(name) else file_stamps(name),
                          shown])
    items += _parameters(raster)
    items.append(["text", RECIPE_LABEL, raster.token])
    return items


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr, flush=True)


class _Output:
    """One output of a resumable pass: its partial file, its journal, whether the partial is continued."""

    def __init__(self, target: OutputTarget, header: list[Item], count: int, grid: Any) -> None:
        self.target = target
        self.header = header
        self.count = count
        self.region = target.region(grid.width, grid.height)
        """The window of the grid the file holds."""
        self.final = os.path.realpath(target.path)
        self.partial, self.journal_path = partial_paths(self.final)
        self.journal: Journal | None = None
        self.reopen = False


class ResumableWrite:
    """The resumable side of one pass writing ``rasters`` to ``targets`` over ``plan``.

    Created before any writer: locks each output (:func:`~eotensor.io.atomic.lock_output`: another run writing
    it is refused; :meth:`release` once the outputs are committed or kept), reads each output's journal, refuses
    one from another run (an :class:`OutputFileError` saying what changed), decides which partial files are
    continued, and gives :attr:`plan` (the tiles still to compute) and :meth:`writer_options` (where each writer
    streams). Then
    :meth:`attach` the writers, call :meth:`wrote` after each tile is written (it checkpoints every
    :func:`checkpoint_seconds`), :meth:`finish` once every tile is written (before the writers commit, so
    that an interruption in the COG stage loses no tile), or :meth:`interrupted` on any exception (before
    the writers abort: a last checkpoint, then the files are kept).
    """

    def __init__(self, rasters: Sequence[Any], targets: Sequence[OutputTarget], plan: TilePlan) -> None:
        for target in targets:
            if getattr(target.format, "directory", None) is not None:
                raise OutputFileError(f'{target.param} "{target.path}": resume is not supported for '
                                      f"{target.format.driver} outputs yet; expected a .tif (GeoTIFF or COG), .png "
                                      "or .jpg output, or run without resume")
            if is_virtual_path(target.path) or is_write_through(target.path):
                raise OutputFileError(f'{target.param} "{target.path}": a resumable run needs a regular file '
                                      "for its partial output; resume cannot write to a device, a FIFO or a "
                                      "GDAL virtual path")
        self.outputs = [_Output(t, describe(r, t, plan), r.count, plan.grid) for r, t in zip(rasters, targets)]
        self._locked: list[str] = []
        try:
            for output in self.outputs:
                lock_output(output.final, output.target.param, output.target.path)
                self._locked.append(output.final)
            self._start(plan)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        """Unlock the outputs (after their writers committed or aborted)."""
        while self._locked:
            unlock_output(self._locked.pop())

    def _start(self, plan: TilePlan) -> None:
        """Read the journals, decide what is continued, the plan left (the constructor's work, outputs locked)."""
        windows = {(w.row, w.col): w for w in plan}
        done: set[tuple[int, int]] | None = None
        for output in self.outputs:
            journal = self._continue(output, windows)
            tiles = journal.done & windows.keys() if journal is not None else set()
            done = tiles if done is None else done & tiles
        self.windows = set(windows)
        self.done = frozenset(done or ())
        if not self.done:  # no tile to skip (another output of the pass starts afresh): every file starts afresh
            for output in self.outputs:
                output.reopen = False
        self.plan = remaining(plan, self.done)
        total = len(windows)
        if self.done:
            names = ", ".join(f'"{o.target.path}"' for o in self.outputs)
            rest = (f"computing the other {total - len(self.done)}" if len(self.done) < total else
                    "only the finishing steps remain")
            _note(f"resuming {names}: {len(self.done)} of {total} tiles already written; {rest}")
        for output in self.outputs:
            if not output.reopen:
                remove_partials(output.final, owner=True)  # useless now: started afresh below
        self.writers: list[Checkpointing] = []
        self.pending: list[tuple[int, int]] = []
        self.every = checkpoint_seconds()
        self.last = time.monotonic()
        self._syncing: threading.Thread | None = None

    def _continue(self, output: _Output, windows: dict[tuple[int, int], Any]) -> Journal | None:
        """The journal of ``output`` when its partial file can be continued (``output.reopen``), else None
        (with a note saying why every tile is computed); a journal from another run raises."""
        target = output.target
        journal = Journal.read(output.journal_path)
        if journal is None:
            what = "an unreadable journal" if os.path.exists(output.journal_path) else "no journal"
            _note(f'resume: "{target.path}" has {what} of an interrupted run; computing every tile')
            return None
        change = header_changes(journal.header, output.header)
        if change:
            raise OutputFileError(
                f'{target.param} "{target.path}": cannot resume the interrupted run: {change}; run without '
                "resume to start again"
            )
        if not journal.done:
            _note(f'resume: the interrupted run of "{target.path}" recorded no tile; computing every tile')
            return None
        region = output.region
        tiles = []
        for key in journal.done & windows.keys():
            part = windows[key].intersect(region)
            tiles.append((part.row - region.row, part.col - region.col, part.height, part.width))
        from eotensor.io.geotiff import partial_problem, sample_problem

        problem = (f'"{output.partial}" is missing' if not os.path.exists(output.partial) else
                   partial_problem(output.partial, region.width, region.height, output.count, target.dtype, tiles,
                                   gdal_bool(target.creation_options, "SPARSE_OK", False)
                                   if target.format.streamed else False)
                   or sample_problem(output.partial, journal.samples[-SAMPLES_CHECKED:]))
        if problem:
            _note(f'resume: the partial file of "{target.path}" cannot be continued ({problem}); computing every '
                  "tile")
            return None
        output.journal = journal
        output.reopen = True
        return journal

    def writer_options(self, k: int) -> dict[str, Any]:
        """The keywords output ``k``'s writer takes: its partial file, and whether to continue it."""
        return {"partial": self.outputs[k].partial, "reopen": self.outputs[k].reopen}

    def attach(self, writers: Sequence[Checkpointing]) -> None:
        """The writers, in the order of the outputs, all created: the new journals are written now (so that an
        output refused by its writer, e.g. a misspelt creation option, leaves no journal behind); the checkpoint
        clock starts."""
        for output in self.outputs:
            if not output.reopen:
                output.journal = Journal.create(output.journal_path, output.header)
        self.writers = list(writers)
        self.last = time.monotonic()

    def wrote(self, window: Any) -> None:
        """Every writer has written the tile at ``window``: remember it; checkpoint when it is time."""
        self.pending.append((window.row, window.col))
        if time.monotonic() - self.last >= self.every:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Hand the tiles written to every output's file, then, in a background thread (so that writing goes on
        meanwhile), fsync the files and record the tiles in every journal: a tile is recorded only once durable.

        The fsync is the checkpoint's real cost (the page cache's write-back, forced); the previous checkpoint's
        thread is waited for first, so records stay in order."""
        self._wait()
        sizes = [writer.checkpoint(sync=False) for writer in self.writers]
        samples = [getattr(writer, "sample", None) for writer in self.writers]
        tiles, self.pending = self.pending, []
        paths = [writer.temp_path for writer in self.writers]

        def durable() -> None:
            from eotensor.io.geotiff import fsync_path

            try:
                for path in paths:
                    fsync_path(path)
                for output, size, sample in zip(self.outputs, sizes, samples):
                    assert output.journal is not None
                    output.journal.record(tiles, size=size, sample=sample)
            except OSError:
                pass  # not recorded: computed again by a resumed run

        self._syncing = threading.Thread(target=durable, name="eotensor-checkpoint", daemon=True)
        self._syncing.start()
        self.last = time.monotonic()

    def _wait(self) -> None:
        if self._syncing is not None:
            self._syncing.join()
            self._syncing = None

    def finish(self) -> None:
        """Every tile is written. An output that is copied at the end (a COG's overviews and copy, PNG, JPEG) gets a
        last checkpoint, so that an interruption in that long stage loses no tile; a GeoTIFF is renamed at once."""
        if any(not output.target.format.streamed for output in self.outputs):
            self.checkpoint()
        self._wait()
        for output in self.outputs:
            if output.journal is not None:
                output.journal.close()

    def interrupted(self) -> None:
        """The run stops: make what was written durable where possible and record it; keep the files."""
        self._wait()
        tiles, self.pending = self.pending, []
        kept: list[int] = []
        for output, writer in zip(self.outputs, self.writers):
            if output.journal is None:
                continue
            try:
                if writer.suspend():
                    output.journal.record(tiles, sample=getattr(writer, "sample", None))
            except (OSError, OutputFileError):
                pass  # the tiles since the last checkpoint will be computed again
            output.journal.close()
            kept.append(len(output.journal.done & self.windows))
        if kept:
            names = ", ".join(f'"{o.target.path}"' for o in self.outputs)
            _note(f"{names}: {min(kept)} of {len(self.windows)} tiles kept; run the same command with resume on to "
                  "finish")
