"""OTB extended filenames: ``file.tif?&key=value&key=value``, for outputs and inputs.

* Output side: :func:`parse_output` turns ``out.tif?&box=x0:y0:w:h&gdal:co:KEY=VALUE&nodata=V`` and a pixel
  type into an :class:`OutputTarget`, and decides the format from the extension (decision 34):
  ``.tif``/``.tiff`` GeoTIFF (streamed), ``.png`` and ``.jpg``/``.jpeg`` (written as a temporary GeoTIFF,
  then copied: their pixel-type limits are checked here, before any work). An existing character device
  or FIFO (``/dev/null``) is written as a GeoTIFF whatever its name. Anything else is an error listing what
  is supported. ``.zarr`` is a Zarr store (a directory, :mod:`eotensor.io.zarr`).
  ``cog=true`` (with ``overviews=`` and ``ovr=``) asks for a Cloud-Optimized GeoTIFF: a
  :class:`CogLayout` on the target, written by :mod:`eotensor.io.cog` (decision 30).
* Input side: :func:`parse_input` splits ``in.tif?&bands=1,3:4`` into an :class:`InputSpec`; the band
  selection is resolved against the file's band count with :func:`resolve_bands`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from eotensor.errors import InputFileError, OutputFileError
from eotensor.geometry import Window
from eotensor.io.atomic import DirectoryKind, check_directory_target, is_write_through
from eotensor.io.pixeltypes import parse_pixel_type
from eotensor.io.zarr import ZARR

__all__ = [
    "COG_RESAMPLINGS",
    "EXTENDED_KEYS",
    "INPUT_KEYS",
    "OUTPUT_FORMATS",
    "CogLayout",
    "InputSpec",
    "OutputFormat",
    "OutputTarget",
    "parse_input",
    "parse_output",
    "resolve_bands",
]

EXTENDED_KEYS = "box, cog, gdal:co:KEY, nodata, overviews, ovr, streaming:*"
"""The extended-filename keys an output accepts, as error messages list them."""


@dataclass(frozen=True)
class OutputFormat:
    """A raster format an output name may ask for by its extension."""

    driver: str
    """GDAL driver name."""
    pixel_types: tuple[str, ...] | None = None
    """The pixel types (dtype names) it can hold; None: all of :data:`~eotensor.io.pixeltypes.PIXEL_TYPES`."""
    band_counts: tuple[int, ...] | None = None
    """The band counts it can hold; None: any."""
    directory: DirectoryKind | None = None
    """For a directory output (a Zarr store), what it is; None for a file GDAL writes."""

    @property
    def streamed(self) -> bool:
        """Whether the file is written window by window (GeoTIFF) rather than copied from a GeoTIFF."""
        return self.driver == "GTiff"


_GTIFF = OutputFormat("GTiff")
_COG = OutputFormat("COG")
"""A Cloud-Optimized GeoTIFF (``cog=true``): GDAL's COG driver only copies, so it is written as a GeoTIFF first."""
OUTPUT_FORMATS: dict[str, OutputFormat] = {
    ".tif": _GTIFF,
    ".tiff": _GTIFF,
    ".png": OutputFormat("PNG", ("uint8", "uint16"), (1, 2, 3, 4)),
    ".jpg": OutputFormat("JPEG", ("uint8",), (1, 3)),
    ".jpeg": OutputFormat("JPEG", ("uint8",), (1, 3)),
    ".zarr": OutputFormat("Zarr", directory=ZARR),
}
"""Output formats by (lower-case) extension."""


COG_RESAMPLINGS = ("nearest", "average", "mode", "bilinear", "cubic", "cubicspline", "lanczos", "gauss", "rms")
"""The ``ovr=`` overview resampling methods, as GDAL names them."""

_COG_OWNED = {
    "TILED": "a COG is always tiled; choose its tile size with gdal:co:BLOCKSIZE=N",
    "BLOCKXSIZE": "a COG has square tiles; choose their size with gdal:co:BLOCKSIZE=N",
    "BLOCKYSIZE": "a COG has square tiles; choose their size with gdal:co:BLOCKSIZE=N",
    "OVERVIEWS": "eotensor builds the overviews; use &overviews=auto|none|2,4,8",
    "OVERVIEW_COUNT": "eotensor builds the overviews; use &overviews=auto|none|2,4,8",
    "RESAMPLING": "eotensor builds the overviews; choose their resampling with &ovr=",
    "OVERVIEW_RESAMPLING": "eotensor builds the overviews; choose their resampling with &ovr=",
    "TILING_SCHEME": "the file holds the result's own grid; reproject it afterwards (gdalwarp)",
    "TARGET_SRS": "the file holds the result's own grid; reproject it afterwards (gdalwarp)",
}
"""COG-driver options that ``cog=true`` refuses, and why: eotensor decides them (or they would change the grid)."""


@dataclass(frozen=True)
class CogLayout:
    """How a Cloud-Optimized GeoTIFF output gets its overviews (``cog=true&overviews=...&ovr=...``)."""

    overviews: tuple[int, ...] | None = None
    """Overview factors, increasing; None: automatic (halved until one block holds the whole level, GDAL's COG
    rule); ``()``: none."""
    resampling: str = "nearest"
    """How overview pixels are computed, one of :data:`COG_RESAMPLINGS`."""


@dataclass(frozen=True)
class OutputTarget:
    """A parsed output parameter: where to write, in which pixel type and format, and with which options."""

    path: str
    """The real filename (the extended part after ``?`` removed)."""
    dtype: np.dtype
    """Pixel type written."""
    box: tuple[int, int, int, int] | None = None
    """``(x0, y0, width, height)`` window of the full output grid to write, in output-pixel indices."""
    creation_options: dict[str, str] = field(default_factory=dict)
    """GDAL creation options from ``gdal:co:KEY=VALUE`` (keys upper-cased) for the output's driver; they
    override the defaults."""
    nodata: float | None = None
    """No-data value tagged on the output; integer outputs also write it for NaN values."""
    param: str = "out"
    """The parameter the output came from, for error messages."""
    format: OutputFormat = _GTIFF
    """The output format, from the extension (COG for ``cog=true``)."""
    cog: CogLayout | None = None
    """The overviews of a Cloud-Optimized GeoTIFF output (``cog=true``); None for any other output."""
    descriptions: tuple[str, ...] = ()
    """Band descriptions ("" for none), GDAL's, written into a GeoTIFF (and a COG or PNG/JPEG copy's metadata);
    a Zarr store does not take them. From the result written (:attr:`eotensor.lazy.LazyRaster.descriptions`)."""

    def region(self, width: int, height: int) -> Window:
        """The window of a ``width`` x ``height`` output grid this file covers: the box, else all of it.

        A box reaching outside the grid is an :class:`OutputFileError` (the grid is known only now).
        """
        if self.box is None:
            return Window(0, 0, int(height), int(width))
        x0, y0, w, h = self.box
        if x0 + w > width or y0 + h > height:
            raise OutputFileError(
                f'{self.param} "{self.path}": box {x0}:{y0}:{w}:{h} reaches outside the output grid of '
                f"{width}x{height} pixels; expected x0 + width <= {width} and y0 + height <= {height}"
            )
        return Window(y0, x0, h, w)


def nodata_problem(value: float, dtype: np.dtype) -> str | None:
    """Why ``value`` cannot be a no-data value of ``dtype``, or None when it can."""
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            overflows = math.isfinite(value) and not math.isfinite(float(dtype.type(value)))
        if overflows:
            info = np.finfo(dtype)
            return f"is outside the {dtype.name} range ({info.min:g}..{info.max:g})"
        return None
    info = np.iinfo(dtype)
    if not math.isfinite(value) or value != int(value) or not info.min <= int(value) <= info.max:
        return f"is not an integer of {dtype.name} ({info.min}..{info.max})"
    return None


def _parse_box(text: str) -> tuple[int, int, int, int] | None:
    parts = text.split(":")
    if len(parts) != 4:
        return None
    try:
        x0, y0, w, h = (int(p) for p in parts)
    except ValueError:
        return None
    if x0 < 0 or y0 < 0 or w <= 0 or h <= 0:
        return None
    return x0, y0, w, h


def _output_format(path: str, dtype: np.dtype, spec: str, param: str, cog: bool = False) -> OutputFormat:
    """The format ``path``'s extension asks for, its pixel-type limit checked (decision 34); COG when ``cog``."""
    if is_write_through(path):
        return _COG if cog else _GTIFF  # /dev/null, a FIFO: the bytes are written through, whatever the name
    extension = os.path.splitext(path)[1].lower()
    if cog:
        if OUTPUT_FORMATS.get(extension) is not _GTIFF:
            raise OutputFileError(
                f'{param} "{spec}": cog=true writes a GeoTIFF, not "{extension or "no extension"}"; '
                "expected a .tif or .tiff name"
            )
        return _COG
    supported = ", ".join(OUTPUT_FORMATS)
    try:
        fmt = OUTPUT_FORMATS[extension]
    except KeyError:
        what = f'extension "{extension}"' if extension else "no extension"
        raise OutputFileError(
            f'{param} "{spec}": {what} is not a supported output format; expected one of {supported} '
            "(.tif/.tiff: GeoTIFF, streamed; .png, .jpg: written as a GeoTIFF, then copied; "
            ".zarr: a Zarr store)"
        ) from None
    if fmt.pixel_types is not None and dtype.name not in fmt.pixel_types:
        raise OutputFileError(
            f'{param} "{spec}": {fmt.driver} cannot hold pixel type {dtype.name}; '
            f"expected {' or '.join(fmt.pixel_types)} (or write a .tif)"
        )
    return fmt


def gdal_bool(options: dict[str, str], key: str, default: bool) -> bool:
    """A yes/no GDAL option as GDAL reads it (``CPLTestBool``: NO, FALSE, OFF and 0 are false)."""
    if key not in options:
        return default
    return options[key].strip().upper() not in ("NO", "FALSE", "OFF", "0")


def _parse_overviews(value: str) -> tuple[int, ...] | None:
    """``auto`` -> None, ``none`` -> (), ``2,4,8`` -> (2, 4, 8) (sorted, repeats dropped); raises ValueError."""
    text = value.strip().lower()
    if text == "auto":
        return None
    if text == "none":
        return ()
    factors = sorted({int(token) for token in text.split(",")})
    if not factors or factors[0] < 2:
        raise ValueError(value)
    return tuple(factors)


def _cog_layout(items: dict[str, str], options: dict[str, str], dtype: np.dtype, spec: str,
                param: str) -> CogLayout | None:
    """The :class:`CogLayout` that the ``cog``, ``overviews`` and ``ovr`` items ask for (None: not a COG)."""
    cog = items.get("cog", "false").strip().lower()
    if cog not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        raise OutputFileError(f'{param} "{spec}": cog "{items["cog"]}" is not a yes/no value; expected true or false')
    if cog in ("false", "no", "off", "0"):
        for key in ("overviews", "ovr"):
            if key in items:
                raise OutputFileError(
                    f'{param} "{spec}": {key} applies to Cloud-Optimized GeoTIFFs only; add &cog=true'
                )
        return None
    try:
        overviews = _parse_overviews(items.get("overviews", "auto"))
    except ValueError:
        raise OutputFileError(
            f'{param} "{spec}": overviews "{items["overviews"]}" is not a valid overview list; expected auto, '
            "none or integer factors >= 2 such as 2,4,8"
        ) from None
    resampling = items.get("ovr", "nearest" if dtype.kind in "iu" else "average").strip().lower()
    if resampling not in COG_RESAMPLINGS:
        raise OutputFileError(
            f'{param} "{spec}": ovr "{items["ovr"]}" is not an overview resampling; expected one of '
            f"{', '.join(COG_RESAMPLINGS)}"
        )
    for key, why in _COG_OWNED.items():
        if key in options:
            raise OutputFileError(f'{param} "{spec}": gdal:co:{key}={options[key]} conflicts with cog=true: {why}')
    return CogLayout(overviews, resampling)


def _check_block_options(options: dict[str, str], spec: str, param: str) -> None:
    """GeoTIFF block sizes must be positive integers, multiples of 16 when tiled (checked before any work)."""
    tiled = gdal_bool(options, "TILED", True)
    for key in ("BLOCKXSIZE", "BLOCKYSIZE"):
        if key not in options:
            continue
        try:
            value = int(options[key])
        except ValueError:
            value = 0
        needs16 = tiled or key == "BLOCKXSIZE"
        if value <= 0 or (needs16 and value % 16):
            raise OutputFileError(
                f'{param} "{spec}": gdal:co:{key}={options[key]} is invalid; expected a positive '
                f"{'multiple of 16' if needs16 else 'integer'}"
            )


def parse_output(spec: str | os.PathLike, pixel_type: str | None = None, param: str = "out",
                 cog: bool = False) -> OutputTarget:
    """Parse an OTB extended output filename and a pixel type into an :class:`OutputTarget`.

    ``spec`` is ``file.tif`` optionally followed by ``?&key=value&key=value...``:

    * ``box=x0:y0:w:h``: write only this window of the full output grid (output-pixel indices);
    * ``gdal:co:KEY=VALUE``: a GDAL creation option of the output's driver, repeatable
      (``gdal:co:COMPRESS=DEFLATE``; ``gdal:co:ZLEVEL=9`` for a PNG, ``gdal:co:QUALITY=90`` for a JPEG);
    * ``nodata=V``: the no-data value (``nan`` allowed for float types); it must fit the pixel type;
    * ``cog=true``: a Cloud-Optimized GeoTIFF (a ``.tif``/``.tiff`` name; ``gdal:co:`` options are then the GDAL
      COG driver's: COMPRESS, PREDICTOR, BLOCKSIZE, LEVEL...), with ``overviews=auto|none|2,4,8`` (default
      auto: halved until one block holds a whole level) computed by ``ovr=nearest|average|mode|...``
      (default: nearest for integer pixel types, average for float ones). The COG driver's options that
      eotensor decides (TILED, BLOCKXSIZE/BLOCKYSIZE, OVERVIEWS, OVERVIEW_COUNT, RESAMPLING,
      OVERVIEW_RESAMPLING) or that would change the grid (TILING_SCHEME, TARGET_SRS) are refused. The
      ``cog`` argument set to True is the same as ``cog=true``;
    * ``streaming:type``, ``streaming:sizemode``, ``streaming:sizevalue`` (any ``streaming:*``): OTB's
      writer splitting, accepted for compatibility and ignored (eotensor plans its own tiles).

    The format comes from the extension (see :data:`OUTPUT_FORMATS`); a ``.zarr`` store takes ``box`` and
    ``nodata`` (no ``gdal:co:``, no ``cog``), and an existing path there that is not a Zarr store is refused. A
    key given twice keeps its last value. Any other key, an item without ``=``, a malformed box, a no-data value
    the pixel type cannot hold, an unsupported extension or a pixel type the format cannot hold, a malformed
    ``cog``, ``overviews`` or ``ovr``, ``overviews``/``ovr`` without ``cog=true``, ``cog=true`` on a name that is
    not ``.tif``/``.tiff`` or with a refused ``gdal:co:`` option raises :class:`OutputFileError`; an unknown pixel
    type raises :class:`ParameterError`.
    """
    spec = os.fspath(spec)
    path, _, extended = spec.partition("?")
    dtype = parse_pixel_type(pixel_type, param)
    if not path.strip():
        raise OutputFileError(f'{param} "{spec}": no filename; expected file.tif or file.tif?&key=value')
    trimmed = path.rstrip("/" + os.sep)
    if trimmed and (fmt := OUTPUT_FORMATS.get(os.path.splitext(trimmed)[1].lower())) and fmt.directory is not None:
        path = trimmed  # "map.zarr/", as a shell completes an existing store's name
    box: tuple[int, int, int, int] | None = None
    options: dict[str, str] = {}
    nodata: float | None = None
    cog_items: dict[str, str] = {}
    for item in extended.split("&"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        lowered = key.strip().lower()
        if lowered.startswith("streaming:"):
            continue  # OTB's writer splitting: eotensor plans its own tiles.
        if not sep:
            raise OutputFileError(
                f'{param} "{spec}": extended-filename item "{item}" has no value; expected key=value'
            )
        if lowered == "box":
            parsed = _parse_box(value)
            if parsed is None:
                raise OutputFileError(
                    f'{param} "{spec}": box "{value}" is malformed; expected x0:y0:width:height, '
                    "four integers with x0, y0 >= 0 and width, height > 0"
                )
            box = parsed
        elif lowered.startswith("gdal:co:"):
            name = key.strip()[len("gdal:co:"):].strip().upper()
            if not name or not value:
                raise OutputFileError(
                    f'{param} "{spec}": creation option "{item}" is incomplete; expected gdal:co:KEY=VALUE'
                )
            options[name] = value
        elif lowered == "nodata":
            try:
                nodata = float(value)
            except ValueError:
                raise OutputFileError(f'{param} "{spec}": nodata "{value}" is not a number') from None
            problem = nodata_problem(nodata, dtype)
            if problem:
                raise OutputFileError(f'{param} "{spec}": nodata {value} {problem}')
        elif lowered in ("cog", "overviews", "ovr"):
            cog_items[lowered] = value
        else:
            raise OutputFileError(
                f'{param} "{spec}": unknown extended-filename key "{key}"; expected one of {EXTENDED_KEYS}'
            )
    if cog:
        cog_items["cog"] = "true"
    layout = _cog_layout(cog_items, options, dtype, spec, param)
    fmt = _output_format(path, dtype, spec, param, cog=layout is not None)
    if fmt.streamed:
        _check_block_options(options, spec, param)
    if fmt.directory is not None:
        if options:
            raise OutputFileError(f'{param} "{spec}": gdal:co:{next(iter(options))} does not apply to a '
                                  f"{fmt.directory.label} store (GDAL does not write it); remove the gdal:co: options")
        check_directory_target(path, fmt.directory, param)  # an existing file or plain directory: before any work
    return OutputTarget(path=path, dtype=dtype, box=box, creation_options=options, nodata=nodata, param=param,
                        format=fmt, cog=layout)


# --- input side ----------------------------------------------------------------------------------------

INPUT_KEYS = ("geom", "sdataidx", "resol", "skipcarto", "skipgeom", "skiprpctag")
"""OTB's input extended-filename keys other than ``bands``: recognised, and refused as not supported."""

BandRange = tuple[int | None, int | None]
"""One ``bands`` token: first and last 1-based index (negative: from the end; None: open end)."""


@dataclass(frozen=True)
class InputSpec:
    """A parsed input filename: the real file and the OTB band selection, if any."""

    path: str
    """The real filename (the extended part after ``?&`` removed)."""
    bands: tuple[BandRange, ...] | None = None
    """The ``bands`` ranges in order, or None for all bands; see :func:`resolve_bands`."""
    spec: str = ""
    """The filename as given, extended part included."""


def _parse_band_token(token: str) -> BandRange | None:
    first, colon, last = token.partition(":")
    try:
        a = int(first) if first.strip() else None
        b = int(last) if last.strip() else None
    except ValueError:
        return None
    if (a == 0) or (b == 0) or (not colon and a is None):
        return None
    return (a, b) if colon else (a, a)


def parse_input(spec: str | os.PathLike, param: str = "source1.il") -> InputSpec:
    """Split an OTB extended input filename ``file.tif?&bands=...`` into an :class:`InputSpec`.

    The extended part starts at the first ``?&`` (so a URL's own ``?query`` is left alone). The one key
    supported is ``bands``: comma-separated tokens, each a 1-based band index (``2``; negative counts from
    the end, ``-1`` is the last band) or a range ``first:last`` with either end optional (``1:3``, ``:3``,
    ``2:``, ``-2:``), kept in order, repeats allowed, as OTB reads them. OTB's other keys (``geom``,
    ``sdataidx``, ``resol``, ``skipcarto``, ``skipgeom``, ``skiprpctag``) and unknown keys raise
    :class:`InputFileError`, as does a malformed ``bands`` value.
    """
    spec = os.fspath(spec)
    path, sep, extended = spec.partition("?&")
    if not sep:
        return InputSpec(path=spec, spec=spec)
    bands: tuple[BandRange, ...] | None = None
    for item in extended.split("&"):
        if not item:
            continue
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key == "bands":
            tokens = [token.strip() for token in value.split(",") if token.strip()]
            parsed = [_parse_band_token(token) for token in tokens]
            if not tokens or any(p is None for p in parsed):
                raise InputFileError(
                    f'{param}: "{spec}": bands "{value}" is malformed; expected comma-separated 1-based band '
                    "indices or ranges such as 1,3:4,-1 (first:last, either end optional, negative from the end)"
                )
            bands = tuple(p for p in parsed if p is not None)
        elif key in INPUT_KEYS:
            raise InputFileError(
                f'{param}: "{spec}": the OTB input option "{key}" is not supported; only "bands" is '
                f"(not supported: {', '.join(INPUT_KEYS)})"
            )
        else:
            raise InputFileError(
                f'{param}: "{spec}": unknown extended-filename key "{key}"; expected bands=...'
            )
    return InputSpec(path=path, bands=bands, spec=spec)


def resolve_bands(spec: InputSpec, count: int, param: str = "source1.il") -> list[int]:
    """The 1-based band indices ``spec`` selects from a file of ``count`` bands, in order.

    Raises :class:`InputFileError` naming ``param`` and the file when a range falls outside 1..count or
    is reversed.
    """
    if spec.bands is None:
        return list(range(1, count + 1))
    selected: list[int] = []
    for first, last in spec.bands:
        a = 1 if first is None else (first + count + 1 if first < 0 else first)
        b = count if last is None else (last + count + 1 if last < 0 else last)
        if not 1 <= a <= b <= count:
            single = first == last and first is not None
            shown = str(first) if single else f"{'' if first is None else first}:{'' if last is None else last}"
            raise InputFileError(
                f'{param}: "{spec.spec}": bands "{shown}" does not fit the {count} band(s) of "{spec.path}"; '
                f"expected indices in 1..{count} (or -{count}..-1 from the end), first <= last"
            )
        selected.extend(range(a, b + 1))
    return selected
