"""Output pixel types: OTB's names, and the conversion of computed values to them the way OTB's writer does.

* :data:`PIXEL_TYPES` and :func:`parse_pixel_type` map OTB's ``uint8 int16 uint16 int32 uint32 float double``
  (and the NumPy names) to dtypes.
* :func:`to_pixel_type` converts computed float values to the pixel type as OTB's writer does (clamp to the
  type's range, then truncate toward zero; NaN becomes the no-data value, else 0).
"""

from __future__ import annotations

import math

import numpy as np

from eotensor.errors import ParameterError

__all__ = ["PIXEL_TYPES", "parse_pixel_type", "to_pixel_type"]

PIXEL_TYPES: dict[str, np.dtype] = {
    name: np.dtype(numpy_name)
    for name, numpy_name in {
        "uint8": "uint8",
        "int8": "int8",
        "int16": "int16",
        "uint16": "uint16",
        "int32": "int32",
        "uint32": "uint32",
        "int64": "int64",
        "uint64": "uint64",
        "float": "float32",
        "float32": "float32",
        "double": "float64",
        "float64": "float64",
    }.items()
}
"""Accepted pixel-type names and the dtype each writes: OTB's names (``float`` is float32, ``double`` is
float64) plus the NumPy names of every real type a GeoTIFF holds. Complex types are not supported."""


def parse_pixel_type(name: str | None, param: str = "out") -> np.dtype:
    """The dtype of pixel-type ``name`` (case-insensitive); ``None`` means float32, OTB's default.

    Raises :class:`ParameterError` naming ``param`` and listing the valid names for anything else.
    """
    if name is None:
        return PIXEL_TYPES["float"]
    try:
        return PIXEL_TYPES[str(name).strip().lower()]
    except KeyError:
        raise ParameterError(
            f'{param}: unknown pixel type "{name}"; expected one of {", ".join(PIXEL_TYPES)}'
        ) from None


def to_pixel_type(values: np.ndarray, dtype: np.dtype | str, nodata: float | None = None) -> np.ndarray:
    """Convert computed values to the output pixel type the way OTB's writer does.

    Integer types: clamp to the type's range, then truncate toward zero (1.7 -> 1, -2.7 -> -2,
    40000.6 -> 32767 in int16, -3 -> 0 in uint8); NaN becomes ``nodata`` if set, else 0.
    Float types: a plain cast; NaN stays NaN (it is the natural no-data of float rasters).

    Vectorised: one clamped working copy (the input is never modified) and the cast. Clamping happens in
    float32 for 8- and 16-bit types (their bounds are exact there) and in float64 for 32-bit ones, so
    float32 3e9 saturates to exactly 2**31 - 1 in int32, as OTB's double-precision clamp does. For
    64-bit types, float64 cannot hold the upper bound; values at or beyond it are set to the maximum
    after the cast. Integer and bool inputs are clamped exactly, without a float round trip.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values)
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    if dtype.kind not in "iu":
        raise ParameterError(f"pixel type {dtype.name} is not supported; expected one of {', '.join(PIXEL_TYPES)}")
    info = np.iinfo(dtype)
    if values.dtype.kind == "b":
        return values.astype(dtype)
    if values.dtype.kind in "iu":
        if np.can_cast(values.dtype, dtype):
            return values.astype(dtype, copy=False)
        src = np.iinfo(values.dtype)
        low, high = max(info.min, src.min), min(info.max, src.max)
        return np.clip(values, values.dtype.type(low), values.dtype.type(high)).astype(dtype)
    if values.dtype.kind != "f":
        raise ParameterError(f"cannot write values of type {values.dtype} as pixel type {dtype.name}")

    work_type = np.dtype(np.float32) if info.bits <= 16 and values.dtype.itemsize <= 4 else np.dtype(np.float64)
    high = float(info.max)
    saturates = high >= 2.0**53  # 64-bit types: the bound is not representable in float64
    if saturates:
        high = float(np.nextafter(np.float64(2.0**(info.bits - (info.kind == "i"))), 0.0))
    low_w, high_w = work_type.type(info.min), work_type.type(high)
    if values.dtype == work_type:
        work = np.clip(values, low_w, high_w)  # new array: the caller's values are left alone
    else:
        work = values.astype(work_type)
        np.clip(work, low_w, high_w, out=work)
    # NaN survives the clamp; the min is a fast NaN-propagating scan, so the mask is built only if needed.
    if work.size and np.isnan(work.min()):
        fill = 0.0 if nodata is None or math.isnan(nodata) else min(max(float(nodata), info.min), high)
        np.copyto(work, work_type.type(fill), where=np.isnan(work))
    out = work.astype(dtype)  # C cast: truncation toward zero, exact for in-range values
    if saturates:
        out[values >= 2.0**(info.bits - (info.kind == "i"))] = info.max
    return out
