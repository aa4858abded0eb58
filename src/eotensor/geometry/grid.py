"""Pixel grids and integer windows: the values every other module talks in.

Conventions (OTB's, so that numbers carry over from OTBTF):

* a grid's *origin* is the physical position of the **centre** of pixel (0, 0);
* spacing is **signed** (north-up rasters have a negative y spacing);
* index -> point is ``origin + spacing * index``; point -> index rounds **half up**,
  ``floor((point - origin) / spacing + 0.5)``;
* windows are integer ``(row, col, height, width)``; shapes are (rows, cols); x/y only for world coordinates.

Everything here is a pure function of its arguments: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from affine import Affine

from eotensor.errors import GeometryError


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of a grid: where pixel 0's centre is, the signed step, and the pixel count."""

    origin: float
    """Physical coordinate of the centre of pixel 0."""
    spacing: float
    """Signed distance between two neighbouring pixel centres."""
    size: int
    """Number of pixels."""

    def point(self, index: float | np.ndarray) -> Any:
        """Physical coordinate of the centre of pixel ``index`` (scalar or array)."""
        return self.origin + self.spacing * index

    def index(self, point: float | np.ndarray) -> Any:
        """Pixel index containing ``point``, rounding half up (ITK's convention); scalar or array.

        A continuous index within 1e-6 pixel of a half-pixel tie is taken as the tie: points that are
        ties in exact arithmetic (even spacing scales, sub-metre spacings) then round the same way in
        every tile, whatever the float noise.
        """
        continuous = (np.asarray(point, dtype=np.float64) - self.origin) / self.spacing
        tie = np.floor(continuous) + 0.5
        continuous = np.where(np.abs(continuous - tie) < 1e-6, tie, continuous)
        result = np.floor(continuous + 0.5).astype(np.int64)
        return int(result) if result.ndim == 0 else result


@dataclass(frozen=True, slots=True)
class Grid:
    """A north-up raster grid: size, pixel-centre origin, signed spacing and CRS."""

    x: Axis
    """Columns."""
    y: Axis
    """Rows."""
    crs: Any = None
    """Coordinate reference system (a ``rasterio.crs.CRS`` or anything rasterio accepts), or None."""

    @property
    def width(self) -> int:
        """Number of columns."""
        return self.x.size

    @property
    def height(self) -> int:
        """Number of rows."""
        return self.y.size

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (self.y.size, self.x.size)

    @property
    def transform(self) -> Affine:
        """GDAL-style affine transform (upper-left **corner** of pixel (0, 0))."""
        return Affine(
            self.x.spacing, 0.0, self.x.origin - 0.5 * self.x.spacing,
            0.0, self.y.spacing, self.y.origin - 0.5 * self.y.spacing,
        )

    @classmethod
    def from_transform(cls, transform: Affine, width: int, height: int, crs: Any = None) -> Grid:
        """Build a grid from a GDAL affine transform (rotation is not supported)."""
        if transform.b != 0.0 or transform.d != 0.0:
            raise GeometryError(f"rotated rasters are not supported (geotransform {tuple(transform)[:6]})")
        return cls(
            x=Axis(transform.c + 0.5 * transform.a, transform.a, int(width)),
            y=Axis(transform.f + 0.5 * transform.e, transform.e, int(height)),
            crs=crs,
        )

    def window(self, window: Window) -> Grid:
        """The sub-grid covered by ``window`` (same spacing, shifted origin)."""
        return Grid(
            x=Axis(self.x.point(window.col), self.x.spacing, window.width),
            y=Axis(self.y.point(window.row), self.y.spacing, window.height),
            crs=self.crs,
        )

    def full_window(self) -> Window:
        """The window covering the whole grid."""
        return Window(0, 0, self.height, self.width)


@dataclass(frozen=True, slots=True)
class Window:
    """An integer pixel window ``(row, col, height, width)``; sizes are never negative."""

    row: int
    col: int
    height: int
    width: int

    def __post_init__(self) -> None:
        if self.height < 0 or self.width < 0:
            raise ValueError(f"window sizes must be >= 0, got {self.height}x{self.width}")

    @property
    def row_stop(self) -> int:
        """One past the last row."""
        return self.row + self.height

    @property
    def col_stop(self) -> int:
        """One past the last column."""
        return self.col + self.width

    @property
    def size(self) -> int:
        """Number of pixels."""
        return self.height * self.width

    def slices(self, origin: Window | None = None) -> tuple[slice, slice]:
        """NumPy slices (rows, cols) of this window, relative to ``origin``'s start if given."""
        r0 = self.row - (origin.row if origin else 0)
        c0 = self.col - (origin.col if origin else 0)
        return slice(r0, r0 + self.height), slice(c0, c0 + self.width)

    def intersect(self, other: Window) -> Window:
        """The overlap of two windows (empty windows have size 0)."""
        r0, c0 = max(self.row, other.row), max(self.col, other.col)
        r1, c1 = min(self.row_stop, other.row_stop), min(self.col_stop, other.col_stop)
        return Window(r0, c0, max(0, r1 - r0), max(0, c1 - c0))

    def to_rasterio(self) -> Any:
        """The equivalent ``rasterio.windows.Window`` (col_off, row_off, width, height)."""
        from rasterio.windows import Window as RioWindow

        return RioWindow(self.col, self.row, self.width, self.height)


def crs_name(crs: object) -> str:
    """A CRS as users know it: ``EPSG:32631`` where it has a code, else its WKT name."""
    to_string = getattr(crs, "to_string", None)
    return str(to_string() if to_string else crs)


def grid_difference(grid: Grid, reference: Grid, transform: bool = False) -> tuple[str, str, str] | None:
    """The first way ``grid`` differs from ``reference`` as ``(what, grid's, reference's)``, or None: ``size``
    (``"WxH"``), then ``CRS`` (:func:`crs_name`; a grid without one matches any), then, with ``transform``, the
    ``pixel size`` or ``origin`` (the transforms, to a thousandth of the reference's pixel). eotensor never
    resamples: its callers refuse what differs, each in its own words."""
    if (grid.width, grid.height) != (reference.width, reference.height):
        return "size", f"{grid.width}x{grid.height}", f"{reference.width}x{reference.height}"
    if grid.crs and reference.crs and grid.crs != reference.crs:
        return "CRS", crs_name(grid.crs), crs_name(reference.crs)
    if transform:
        a, b = grid.transform, reference.transform
        tolerance = 1e-3 * min(abs(b.a), abs(b.e))
        if not all(abs(u - v) <= tolerance for u, v in zip(tuple(a)[:6], tuple(b)[:6])):
            what = "pixel size" if abs(a.a - b.a) > tolerance or abs(a.e - b.e) > tolerance else "origin"
            return what, str(tuple(a)[:6]), str(tuple(b)[:6])
    return None


def as_window(value: Any) -> Window:
    """A :class:`Window` from a Window, a ``(row, col, height, width)`` sequence or a rasterio window
    (anything with ``row_off``, ``col_off``, ``height`` and ``width``).

    Raises ``ValueError`` or ``TypeError`` for anything else, or for sizes that are not whole numbers.
    """
    if isinstance(value, Window):
        return value
    if hasattr(value, "row_off"):
        numbers = (value.row_off, value.col_off, value.height, value.width)
    else:
        numbers = tuple(value)
        if len(numbers) != 4:
            raise ValueError(f"expected (row, col, height, width), got {len(numbers)} numbers")
    if any(float(n) != int(n) for n in numbers):
        raise ValueError(f"window offsets and sizes must be whole numbers, got {numbers}")
    row, col, height, width = (int(n) for n in numbers)
    return Window(row, col, height, width)


def align_span(start: int, stop: int, step: int) -> tuple[int, int]:
    """Enlarge ``[start, stop)`` so both ends fall on multiples of ``step`` (OTBTF's EF alignment)."""
    return start - start % step, stop + (-stop) % step


def align_window(window: Window, step_rows: int, step_cols: int) -> Window:
    """Enlarge ``window`` so its corners fall on the ``step`` grid anchored at index 0."""
    r0, r1 = align_span(window.row, window.row_stop, step_rows)
    c0, c1 = align_span(window.col, window.col_stop, step_cols)
    return Window(r0, c0, r1 - r0, c1 - c0)


def round_up(value: int, step: int) -> int:
    """Smallest multiple of ``step`` that is >= ``value`` (and >= step)."""
    return max(step, math.ceil(value / step) * step)
