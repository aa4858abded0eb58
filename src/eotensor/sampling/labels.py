"""Points from a label image, class by class (OTBTF's LabelImageSampleSelection, behaviour reference §6).

Two streamed passes over the same full-width strips of the region left after shrinking the image by ``pad``
pixels on every side:

1. **count** the pixels of each label other than ``nodata`` (:func:`count_strip`, summed in the sink);
   the classes are the contiguous range of labels [min, max]; an empty label inside it is an error that names it;
   :func:`plan_classes` turns the counts into a step and a target per class, in OTBTF's integer arithmetic;
2. **emit** points: the pixels of class *c* are numbered k = 1, 2, ... in raster order over the whole region
   (rows top to bottom, columns left to right, across strips), and pixel k is emitted when ``k % step_c == 0``
   and ``k <= step_c * target_c``, i.e. the pixels numbered step_c, 2 step_c, ..., target_c step_c. This is
   OTBTF's rule (its per-class counter reaches a multiple of the step while fewer than the target are taken).
   Workers group each strip's labelled pixels by class (:func:`strip_labels`); the sink, in raster order,
   carries the per-class counters across strips and picks the emitted pixels by slicing (:func:`select_strip`).

Points are the pixel centres (:meth:`~eotensor.geometry.grid.Axis.point`) with the 0-based class
(label - min label). They are kept as compact integer arrays (row, column, class) until written.
Label values are checked, not cast: every pixel other than ``nodata`` must hold an integer from 0 to
:data:`MAX_LABEL` (OTBTF reads the image as int16 and indexes a table of 32767 counters with the label).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from eotensor.engine.execute import run_tiles
from eotensor.engine.progress import Progress
from eotensor.engine.tiling import TilePlan, strip_plan
from eotensor.errors import InputFileError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.io.raster import RasterSource
from eotensor.io.vector import POINT_CHUNK, PointChunk, point_chunks

MAX_LABEL = 32766
"""The largest label: OTBTF counts labels in a table of 32767 (int16 max) counters."""

STRATEGIES = ("constant", "total", "smallest", "all")
"""The sampling strategies, in OTBTF's order."""

PIXEL_BYTES = 32
"""Bytes one pixel of a strip costs in pass 2 (the heavier one): the float32 read, the int16 labels, the flat
index of each labelled pixel and its work copy, the int16 marks. Both passes use the same strips."""


def label_values(values: np.ndarray, nodata: int, where: str, origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The labels of a strip as int16, ``-1`` where the pixel equals ``nodata``.

    ``values`` is what the raster holds (any numeric dtype, shape (rows, cols)). Every other value must be an
    integer from 0 to :data:`MAX_LABEL`; the first that is not is a one-line :class:`InputFileError` naming it
    and its pixel (column, row of the image: ``origin`` is the strip's (row, col) in the image), after ``where``
    (``'inref: "labels.tif"'``).
    """
    values = np.asarray(values)
    skip = values == nodata
    with np.errstate(invalid="ignore"):
        bad = ~skip & ~((values >= 0) & (values <= MAX_LABEL) & (values == np.floor(values)))
    if bad.any():
        row, col = np.unravel_index(int(np.flatnonzero(bad)[0]), values.shape)
        value = values[row, col].item()
        shown = int(value) if float(value).is_integer() else value
        raise InputFileError(
            f"{where} holds {shown} at pixel (x={col + origin[1]}, y={row + origin[0]}); labels must be integers "
            f"from 0 to {MAX_LABEL} (pixels equal to nodata {nodata} excepted)"
        )
    labels = values.astype(np.int16)
    labels[skip] = -1
    return labels


def count_strip(labels: np.ndarray) -> np.ndarray:
    """Pixels per label value (index = label, int64) of a strip from :func:`label_values`; -1 is not counted."""
    return np.bincount(labels.ravel() + np.int16(1))[1:].astype(np.int64)  # label + 1: nodata (-1) lands in [0]


def add_counts(total: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``total + counts`` for per-label count arrays of any lengths (the shorter is padded with zeros)."""
    if len(counts) > len(total):
        total = np.concatenate([total, np.zeros(len(counts) - len(total), np.int64)])
    total[: len(counts)] += counts
    return total


NUMBER_KEYS = {"constant": "strategy.constant.nb", "total": "strategy.total.v"}
"""The parameter holding the number of samples, for the strategies that have one."""


def check_strategy(strategy: str, number: int) -> None:
    """A one-line :class:`ParameterError` for an unknown strategy or, where it is used, a number below 1."""
    if strategy not in STRATEGIES:
        raise ParameterError(f'strategy: unknown strategy "{strategy}"; expected one of {", ".join(STRATEGIES)}')
    if strategy in NUMBER_KEYS and number < 1:
        raise ParameterError(f"{NUMBER_KEYS[strategy]}: {number} samples; expected at least 1")


@dataclass(frozen=True)
class ClassPlan:
    """Per class (label ``first + c``): its pixel count, the sampling step and the target number of points."""

    first: int
    """The smallest label: class c is label ``first + c``."""
    counts: np.ndarray
    """Pixels of each class (int64)."""
    steps: np.ndarray
    """Take every ``steps[c]``-th pixel of class c (int64, >= 1)."""
    targets: np.ndarray
    """Points of class c (int64): at most this many are taken, and the step leaves at least this many."""

    @property
    def labels(self) -> np.ndarray:
        """The label of each class."""
        return np.arange(self.first, self.first + len(self.counts))


def plan_classes(label_counts: np.ndarray, strategy: str, number: int = 1000, where: str = "inref") -> ClassPlan:
    """Steps and targets per class from the pixel counts per label value (``label_counts[label]``).

    ``number`` is ``strategy.constant.nb`` (constant) or ``strategy.total.v`` (total), ignored otherwise.
    Integer arithmetic as OTBTF:

    * constant: target = ``number``, or the smallest class count if smaller (with a warning);
      step_c = count_c // target;
    * total: step = sum // ``number``, at least 1 (with a warning); target_c = count_c // step;
    * smallest: target = the smallest class count; step_c = count_c // target;
    * all: step 1, target_c = count_c.

    Errors (one line, after ``where``): no labelled pixel; a label between the smallest and the largest with no
    pixel (OTBTF: "There is at least one class with no sample!"), naming the label(s).
    """
    check_strategy(strategy, number)
    present = np.flatnonzero(np.asarray(label_counts))
    if not len(present):
        raise InputFileError(f"{where} has no labelled pixel (every pixel scanned equals nodata)")
    first, last = int(present[0]), int(present[-1])
    counts = np.asarray(label_counts[first: last + 1], dtype=np.int64)
    empty = np.flatnonzero(counts == 0) + first
    if len(empty):
        shown = ", ".join(str(label) for label in empty[:10]) + (f", ... ({len(empty)} in all)" if len(empty) > 10
                                                                   else "")
        raise InputFileError(
            f"{where}: label{'s' if len(empty) > 1 else ''} {shown} {'have' if len(empty) > 1 else 'has'} no pixel "
            f"but the classes run from {first} to {last} without gaps (OTBTF: \"There is at least one class with no "
            "sample!\"); relabel the image or set nodata"
        )
    smallest = int(counts.min())
    if strategy == "constant":
        target = number
        if smallest < target:
            warnings.warn(f"the smallest class has {smallest} pixels but strategy.constant.nb is {number}; "
                          f"taking {smallest} points per class", stacklevel=2)
            target = smallest
        targets = np.full(len(counts), target, np.int64)
        steps = counts // targets
    elif strategy == "total":
        step = int(counts.sum()) // number
        if step == 0:
            warnings.warn(f"there are {int(counts.sum())} labelled pixels, fewer than strategy.total.v = {number}; "
                          "taking every pixel (step 1)", stacklevel=2)
            step = 1
        steps = np.full(len(counts), step, np.int64)
        targets = counts // step
    elif strategy == "smallest":
        targets = np.full(len(counts), smallest, np.int64)
        steps = counts // targets
    else:
        steps = np.ones(len(counts), np.int64)
        targets = counts.copy()
    return ClassPlan(first, counts, steps, targets)


SCAN_CLASSES = 16
"""Up to this many classes in a strip, the pixels of each are found by one comparison over the strip; beyond, by
one stable sort of the strip's labelled pixels. Both give the same :class:`StripLabels`."""


@dataclass(frozen=True)
class StripLabels:
    """A strip's labelled pixels grouped by class, in raster order within each class (what a worker prepares)."""

    size: int
    """Pixels in the strip."""
    index: np.ndarray
    """Flat index in the strip of each labelled pixel: those of class 0, then class 1, ..."""
    counts: np.ndarray
    """Labelled pixels of each class in the strip (int64, one per class of the plan)."""


def strip_labels(labels: np.ndarray, plan: ClassPlan, scan_classes: int = SCAN_CLASSES) -> StripLabels:
    """Group the labelled pixels of a strip (from :func:`label_values`) by class, keeping raster order in a class.

    A label outside the plan's classes is an error (the image changed between the passes).
    """
    flat = labels.ravel()
    by_label = np.bincount(flat + np.int16(1))  # [0]: the pixels equal to nodata
    low, n = plan.first + 1, len(plan.counts)
    if by_label[1:low].any() or by_label[low + n:].any():
        raise InputFileError("the label image changed between the two passes; rerun on the new file")
    counts = np.zeros(n, np.int64)
    counts[: max(0, len(by_label) - low)] = by_label[low: low + n]
    present = np.flatnonzero(counts)
    if len(present) > scan_classes:
        labelled = np.flatnonzero(flat >= 0)
        index = labelled[np.argsort(flat[labelled], kind="stable")]
    elif len(present):
        index = np.concatenate([np.flatnonzero(flat == plan.first + c) for c in present])
    else:
        index = np.zeros(0, np.intp)
    return StripLabels(flat.size, index, counts)


def select_strip(strip: StripLabels, plan: ClassPlan, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of ``strip`` emitted (flat indices in raster order, their classes as int16), given ``seen[c]``,
    the pixels of class c in the strips before; ``seen`` is then advanced by this strip's counts (in place).

    The j-th pixel (0-based) of class c in the strip is pixel k = seen[c] + j + 1 of its class; it is emitted
    when ``k % step_c == 0`` and ``k <= step_c * target_c``: j runs from ``(-seen[c] - 1) mod step_c`` by
    step_c, below ``step_c * target_c - seen[c]``.
    """
    starts = np.cumsum(strip.counts) - strip.counts
    chosen = []
    for c in np.flatnonzero(strip.counts):
        step, have = int(plan.steps[c]), int(seen[c])
        first, stop = (-have - 1) % step, min(int(strip.counts[c]), step * int(plan.targets[c]) - have)
        if first < stop:
            chosen.append((c, strip.index[starts[c] + first: starts[c] + stop: step]))
    seen += strip.counts
    if not chosen:
        return np.zeros(0, np.intp), np.zeros(0, np.int16)
    marks = np.full(strip.size, -1, np.int16)
    for c, index in chosen:
        marks[index] = c
    index = np.flatnonzero(marks >= 0)
    return index, marks[index]


@dataclass(frozen=True)
class LabelPoints:
    """The selected points as pixel indices of the image grid, in raster order, with their 0-based class."""

    grid: Grid
    rows: np.ndarray
    """Row of each point (int32)."""
    cols: np.ndarray
    """Column of each point (int32)."""
    classes: np.ndarray
    """0-based class of each point (int16): label - the smallest label."""

    def __len__(self) -> int:
        return len(self.rows)

    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates of the pixel centres (float64 x, y), in the grid's CRS."""
        return np.asarray(self.grid.x.point(self.cols), np.float64), np.asarray(self.grid.y.point(self.rows),
                                                                                  np.float64)

    def chunks(self, size: int = POINT_CHUNK) -> Iterator[PointChunk]:
        """``(x, y, {"class": classes})`` of ``size`` points at a time, for
        :func:`~eotensor.io.vector.write_point_chunks`: the coordinates exist for one chunk at a time."""
        for cols, rows, fields in point_chunks(self.cols, self.rows, {"class": self.classes}, size):
            yield np.asarray(self.grid.x.point(cols), np.float64), np.asarray(self.grid.y.point(rows), np.float64), \
                {"class": fields["class"].astype(np.int32)}


class LabelSampling:
    """The two passes over a one-band label image, run when first asked for (``counts``, ``plan``, ``points``).

    ``source`` is the label image; ``pad`` shrinks the scanned region on every side; ``strategy`` and ``number``
    as :func:`plan_classes`; ``ram_mb`` sizes the strips (:func:`~eotensor.engine.tiling.strip_plan`);
    ``scheduler`` and ``workers`` choose the executor; ``progress`` shows progress bars on stderr (the app sets
    it from the CLI). Errors are one line naming the parameter.
    """

    def __init__(self, source: RasterSource, strategy: str = "constant", number: int = 1000, nodata: int = -1,
                 pad: int = 0, ram_mb: float | None = None, scheduler: str = "threads", workers: int | None = None,
                 param: str = "inref", progress: bool = False) -> None:
        if source.count != 1:
            raise InputFileError(
                f'{param}: "{source.specs[0]}" has {source.count} bands; a label image has one '
                f'(select it with an extended filename: "{source.paths[0]}?&bands=1")'
            )
        grid = source.grid
        if pad < 0 or 2 * pad >= min(grid.width, grid.height):
            raise ParameterError(
                f'pad: {pad} leaves no pixel of "{source.specs[0]}" ({grid.width}x{grid.height} pixels); expected '
                f"0 <= pad <= {max(0, (min(grid.width, grid.height) - 1) // 2)}"
            )
        check_strategy(strategy, number)
        file_nodata = source.nodata_values[0]
        if file_nodata is not None and file_nodata != nodata:
            warnings.warn(f'{param}: "{source.specs[0]}" declares no-data {file_nodata:g} but nodata is {nodata}; '
                          f"only pixels equal to {nodata} are skipped", stacklevel=2)
        self.source, self.strategy, self.number, self.nodata, self.pad = source, strategy, number, nodata, pad
        self.scheduler, self.workers, self.param, self.progress = scheduler, workers, param, progress
        self.where = f'{param}: "{source.specs[0]}"'
        self.region = Window(pad, pad, grid.height - 2 * pad, grid.width - 2 * pad)
        """The scanned part of the image."""
        self.strips: TilePlan = strip_plan(grid.window(self.region), PIXEL_BYTES, ram_mb, token=source.token)
        """Full-width strips over the region, in the region's own indices (both passes)."""

    def _labels(self, window: Window) -> np.ndarray:
        """:func:`label_values` of one strip (``window`` in region indices)."""
        image = Window(window.row + self.pad, window.col + self.pad, window.height, window.width)
        return label_values(self.source.read(image)[:, :, 0], self.nodata, self.where, (image.row, image.col))

    def _run(self, compute: object, sink: object, label: str) -> None:
        progress = Progress(len(self.strips), label) if self.progress else None
        run_tiles(compute, self.strips, sink, self.scheduler, self.workers, progress)  # type: ignore[arg-type]

    @cached_property
    def counts(self) -> np.ndarray:
        """Pass 1: pixels per label value over the region (``counts[label]``, int64)."""
        total = np.zeros(0, np.int64)

        def sink(counts: np.ndarray, window: Window) -> None:
            nonlocal total
            total = add_counts(total, counts)

        self._run(lambda window: count_strip(self._labels(window)), sink, "counting labels")
        return total

    @cached_property
    def plan(self) -> ClassPlan:
        """Steps and targets per class (:func:`plan_classes`), after pass 1."""
        return plan_classes(self.counts, self.strategy, self.number, self.where)

    @cached_property
    def points(self) -> LabelPoints:
        """Pass 2: the emitted points, in raster order, filled into arrays sized from the plan (10 bytes a point)."""
        plan = self.plan
        seen = np.zeros(len(plan.counts), np.int64)
        total = int(plan.targets.sum())
        rows, cols, classes = np.empty(total, np.int32), np.empty(total, np.int32), np.empty(total, np.int16)
        filled = 0

        def sink(strip: StripLabels, window: Window) -> None:
            nonlocal filled
            index, found = select_strip(strip, plan, seen)
            end = filled + len(index)
            if end > total:
                raise InputFileError(f"{self.where} changed between the two passes; rerun on the new file")
            rows[filled:end] = window.row + self.pad + index // window.width
            cols[filled:end] = window.col + self.pad + index % window.width
            classes[filled:end] = found
            filled = end

        self._run(lambda window: strip_labels(self._labels(window), plan), sink, "selecting points")
        if filled != total:
            raise InputFileError(f"{self.where} changed between the two passes; rerun on the new file")
        return LabelPoints(self.source.grid, rows, cols, classes)

    def summary(self) -> str:
        """A table per class: label, class, pixels, step, points (the points emitted once pass 2 has run)."""
        plan = self.plan
        taken = np.bincount(self.points.classes, minlength=len(plan.counts)) if "points" in self.__dict__ \
            else plan.targets
        rows = [("label", "class", "pixels", "step", "points")]
        rows += [tuple(str(int(v)) for v in values)
                 for values in zip(plan.labels, range(len(plan.counts)), plan.counts, plan.steps, taken)]
        widths = [max(len(r[k]) for r in rows) for k in range(5)]
        return "\n".join("  " + "  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows)
