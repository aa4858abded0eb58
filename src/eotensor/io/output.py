"""Output rasters: OTB output filenames, pixel types, OTB-like casting and an atomic, streamed GeoTIFF writer.

An output parameter is ``file.tif?&box=x0:y0:w:h&gdal:co:KEY=VALUE&nodata=V`` plus an optional pixel
type (OTB's ``uint8 int16 uint16 int32 uint32 float double`` or a NumPy name). The file is written
under a temporary name in the target directory and renamed only when complete: an interrupted run
leaves nothing behind, and never a half-written file under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.errors import RasterioError

from eotensor.errors import OutputFileError, ParameterError
from eotensor.geometry import Window

PIXEL_TYPES: dict[str, np.dtype] = {
    name: np.dtype(dtype)
    for name, dtype in {
        "uint8": "uint8", "int8": "int8", "int16": "int16", "uint16": "uint16", "int32": "int32",
        "uint32": "uint32", "int64": "int64", "uint64": "uint64", "float": "float32", "float32": "float32",
        "double": "float64", "float64": "float64",
    }.items()
}
"""Accepted pixel-type names (OTB's and NumPy's) and the GeoTIFF data type each writes."""

EXTENDED_KEYS = "box, gdal:co:KEY, nodata, streaming:*"


def parse_pixel_type(name: str | None, param: str = "out") -> np.dtype:
    """The NumPy dtype of a pixel-type name (default float32)."""
    if name is None:
        return PIXEL_TYPES["float"]
    try:
        return PIXEL_TYPES[name.lower()]
    except KeyError:
        raise ParameterError(
            f'{param}: unknown pixel type "{name}"; expected one of {" ".join(PIXEL_TYPES)}'
        ) from None


@dataclass(frozen=True)
class OutputTarget:
    """A parsed output parameter."""

    path: str
    """The file to write (the extended part removed)."""
    dtype: np.dtype
    """Pixel type written."""
    box: tuple[int, int, int, int] | None = None
    """(x0, y0, width, height) window of the full output grid to write, in output pixels."""
    creation_options: dict[str, str] = field(default_factory=dict)
    """GDAL creation options given with ``gdal:co:KEY=VALUE``."""
    nodata: float | None = None
    """No-data value tagged on the output (and written for NaN values)."""


def parse_output(spec: str, pixel_type: str | None = None, param: str = "out") -> OutputTarget:
    """Parse ``file?&key=value&...`` and a pixel type into an :class:`OutputTarget`."""
    path, _, extended = str(spec).partition("?")
    if not path:
        raise OutputFileError(f'{param} "{spec}": no filename before the extended part')
    box, options, nodata = None, {}, None
    for item in filter(None, extended.split("&")):
        key, sep, value = item.partition("=")
        if not sep:
            raise OutputFileError(f'{param} "{spec}": extended-filename item "{item}" has no "=value"')
        lowered = key.lower()
        if lowered == "box":
            parts = value.split(":")
            try:
                x0, y0, w, h = (int(p) for p in parts)
            except ValueError:
                x0 = y0 = w = h = -1
            if len(parts) != 4 or min(x0, y0) < 0 or min(w, h) <= 0:
                raise OutputFileError(
                    f'{param} "{spec}": box "{value}" must be x0:y0:width:height with x0, y0 >= 0 and sizes > 0'
                )
            box = (x0, y0, w, h)
        elif lowered.startswith("gdal:co:") and len(key) > len("gdal:co:"):
            options[key[len("gdal:co:"):].upper()] = value
        elif lowered == "nodata":
            try:
                nodata = float(value)
            except ValueError:
                raise OutputFileError(f'{param} "{spec}": nodata "{value}" is not a number') from None
        elif lowered.startswith("streaming:"):
            continue  # OTB's writer splitting: eotensor plans its own tiles
        else:
            raise OutputFileError(
                f'{param} "{spec}": unknown extended-filename key "{key}"; expected one of {EXTENDED_KEYS}'
            )
    return OutputTarget(path, parse_pixel_type(pixel_type, param), box, options, nodata)


def to_pixel_type(values: np.ndarray, dtype: np.dtype, nodata: float | None = None) -> np.ndarray:
    """Convert values to ``dtype`` as OTB's writer does.

    Integer types: clamp to the type's range, then truncate toward zero (1.7 -> 1, -2.7 -> -2,
    40000.6 -> 32767 in int16); NaN becomes ``nodata`` if set, else 0. Float types keep NaN (or
    write ``nodata`` for it when set).
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        out = values.astype(dtype, copy=False)
        if nodata is not None and np.isnan(out).any():
            out = np.where(np.isnan(out), dtype.type(nodata), out)
        return out
    info = np.iinfo(dtype)
    work = values.astype(np.float64, copy=True)
    nan = np.isnan(work)
    np.clip(work, info.min, info.max, out=work)
    np.trunc(work, out=work)
    if nan.any():
        work[nan] = nodata if nodata is not None else 0
    return work.astype(dtype)


def ensure_not_input(path: str, inputs: Sequence[str], param: str = "out") -> None:
    """Refuse to write over an input file."""
    real = os.path.realpath(path)
    for item in inputs:
        if os.path.exists(item) and os.path.realpath(item) == real:
            raise OutputFileError(f'{param}: "{path}" is also an input; write the output to another file')


def _check_directory(path: str, param: str) -> str:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        kind = "is a file" if os.path.exists(directory) else "does not exist"
        raise OutputFileError(f'{param}: cannot write "{path}": the directory "{directory}" {kind}')
    if not os.access(directory, os.W_OK):
        raise OutputFileError(f'{param}: cannot write "{path}": the directory "{directory}" is not writable')
    return directory


class GeoTiffWriter:
    """Write one output GeoTIFF window by window, under a temporary name until :meth:`commit`.

    Windows are given in **full-grid** pixel coordinates; with ``target.box`` only the part inside the
    box is written and the file covers exactly the box. Not re-entrant: one thread writes.
    """

    def __init__(self, target: OutputTarget, *, width: int, height: int, count: int, transform: Affine,
                 crs: Any, block_size: int = 256, param: str = "out") -> None:
        self.target = target
        directory = _check_directory(target.path, param)
        self.region = Window(0, 0, height, width)
        if target.box is not None:
            x0, y0, w, h = target.box
            box = Window(y0, x0, h, w)
            if box.intersect(self.region) != box:
                raise OutputFileError(
                    f"{param}: box {x0}:{y0}:{w}:{h} reaches outside the output grid ({width}x{height} pixels)"
                )
            self.region = box
        options = {"TILED": "YES", "BLOCKXSIZE": str(block_size), "BLOCKYSIZE": str(block_size),
                   "BIGTIFF": "IF_SAFER", "INTERLEAVE": "PIXEL" if count > 1 else "BAND"}
        options.update(target.creation_options)
        if min(self.region.width, self.region.height) < block_size and options.get("TILED") == "YES":
            options["TILED"] = "NO"  # GDAL needs blocks no larger than the image
        self.temp = os.path.join(directory, f".{os.path.basename(target.path)}.eotensor-tmp.tif")
        corner = (transform.c + transform.a * self.region.col + transform.b * self.region.row,
                  transform.f + transform.d * self.region.col + transform.e * self.region.row)
        profile = dict(driver="GTiff", width=self.region.width, height=self.region.height, count=count,
                       dtype=target.dtype.name, crs=crs, nodata=target.nodata,
                       transform=Affine(transform.a, transform.b, corner[0], transform.d, transform.e, corner[1]))
        try:
            self.dataset = rasterio.open(self.temp, "w", **profile, **options)
        except (RasterioError, OSError) as error:
            raise OutputFileError(f'{param}: cannot create "{target.path}" ({str(error).splitlines()[0]})') from None
        self.param = param

    def write(self, array: np.ndarray, window: Window) -> None:
        """Write ``array`` (bands, rows, cols) of full-grid ``window``; parts outside the box are dropped."""
        inside = window.intersect(self.region)
        if not inside.size:
            return
        part = array[(slice(None), *inside.slices(window))]
        local = Window(inside.row - self.region.row, inside.col - self.region.col, inside.height, inside.width)
        self.dataset.write(to_pixel_type(part, self.target.dtype, self.target.nodata), window=local.to_rasterio())

    def commit(self) -> None:
        """Close the file and move it to its final name."""
        self.dataset.close()
        os.replace(self.temp, self.target.path)

    def abort(self) -> None:
        """Close and delete the temporary file."""
        self.dataset.close()
        if os.path.exists(self.temp):
            os.remove(self.temp)

    def __enter__(self) -> GeoTiffWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()
