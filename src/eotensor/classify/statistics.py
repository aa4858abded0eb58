"""Per-band image statistics (OTB's ComputeImagesStatistics) and the normalisation they feed (``imstat``).

OTB's formulas, checked against ``otbcli_ComputeImagesStatistics`` 8.1: over a list of images (same band
count, any sizes), the mean is over every pixel of every image; the standard deviation pools each image's
squared deviations from *its own* mean, divided by ``N - k`` (N pixels, k images); min and max are over
everything. A pixel with a non-finite value (NaN, ±inf) in any band is left out, as OTB does. With a background
value ``bv``, a pixel whose bands all equal it is left out too (a pixel with only some bands equal to it
counts). Each image is read once, in full-width strips through the executors, and each strip's sums are merged
exactly (Chan's pairwise update, float64), so memory stays flat.

The normalisation OTB's classifiers apply with ``imstat`` is ``(x - mean) / stddev`` per band.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotensor.errors import InputFileError, ParameterError
from eotensor.geometry import Window

__all__ = ["BandStatistics", "Normalisation", "image_statistics"]


@dataclass(frozen=True)
class _Moments:
    """Count, mean and sum of squared deviations per band, plus min and max, of some pixels."""

    count: np.ndarray
    mean: np.ndarray
    squares: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def of(cls, pixels: np.ndarray) -> _Moments:
        """The moments of ``pixels`` (n, bands)."""
        n = np.full(pixels.shape[1], len(pixels), dtype=np.float64)
        if not len(pixels):
            nan = np.full(pixels.shape[1], np.nan)
            return cls(n, np.zeros(pixels.shape[1]), np.zeros(pixels.shape[1]), nan, nan)
        mean = pixels.mean(axis=0)
        return cls(n, mean, ((pixels - mean) ** 2).sum(axis=0), pixels.min(axis=0), pixels.max(axis=0))

    def __add__(self, other: _Moments) -> _Moments:
        n = self.count + other.count
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = other.mean - self.mean
            mean = np.where(n > 0, self.mean + delta * other.count / np.maximum(n, 1), 0.0)
            squares = self.squares + other.squares + delta**2 * self.count * other.count / np.maximum(n, 1)
        return _Moments(n, mean, squares, np.fmin(self.low, other.low), np.fmax(self.high, other.high))


@dataclass(frozen=True)
class BandStatistics:
    """Per-band mean, min, max and standard deviation of an image list, as ComputeImagesStatistics gives them."""

    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    stddev: np.ndarray
    count: int
    """Pixels counted (all images)."""

    def vectors(self) -> dict[str, list[float]]:
        """The XML's vectors, in OTB's order: mean, min, max, stddev."""
        return {"mean": self.mean.tolist(), "min": self.min.tolist(), "max": self.max.tolist(),
                "stddev": self.stddev.tolist()}

    def write(self, path: str | os.PathLike, param: str = "out.xml") -> str:
        """Write OTB's statistics XML (:func:`eotensor.io.otbxml.write_vectors`); return the path."""
        from eotensor.io.otbxml import write_vectors

        return write_vectors(path, self.vectors(), param)


def image_statistics(images: Sequence[Any], background: float | None = None, param: str = "il",
                     progress: bool = False) -> BandStatistics:
    """The statistics of ``images`` (file names or lazy results, each its own image) by OTB's formulas (module
    docstring); ``background``: the ``bv`` value whose pixels (all bands equal) are left out."""
    from eotensor.engine.progress import Progress
    from eotensor.lazy import LazyRaster, open

    rasters = [image if isinstance(image, LazyRaster) else open(image) for image in images]
    if not rasters:
        raise ParameterError(f"{param}: no image given; expected at least one")
    bands = rasters[0].count
    for image, raster in zip(images, rasters):
        if raster.count != bands:
            raise InputFileError(f'{param}: "{_name(image)}" has {raster.count} band(s) but "{_name(images[0])}" has '
                                 f"{bands}; expected images with the same bands")
    total: _Moments | None = None
    pooled = np.zeros(bands)
    for raster in rasters:
        plan = raster.plan()
        parts: list[_Moments] = []

        def compute(window: Window, raster: Any = raster) -> _Moments:
            pixels = raster.compute(window).reshape(bands, -1).T.astype(np.float64)
            pixels = pixels[np.all(np.isfinite(pixels), axis=1)]  # OTB skips a pixel with any band non-finite
            if background is not None:
                pixels = pixels[~np.all(pixels == background, axis=1)]
            return _Moments.of(pixels)

        bar = Progress(len(plan), "statistics") if progress else None
        raster.executor(compute, plan, lambda moments, window, parts=parts: parts.append(moments),
                        workers=raster.workers, progress=bar)
        image = parts[0]  # executors hand strips in plan order: the same bits whatever the workers
        for part in parts[1:]:
            image = image + part
        pooled += image.squares
        total = image if total is None else total + image
    assert total is not None
    n = int(total.count[0])
    k = len(rasters)  # OTB divides the pooled squares by N - k, k the images
    stddev = np.sqrt(pooled / (n - k)) if n > k else np.full(bands, np.nan)
    mean = total.mean if n else np.full(bands, np.nan)
    return BandStatistics(mean, total.low, total.high, stddev, n)


def _name(image: Any) -> str:
    return image if isinstance(image, (str, os.PathLike)) else type(image).__name__


@dataclass(frozen=True)
class Normalisation:
    """``(x - mean) / stddev`` per band, from an OTB statistics XML (``imstat``)."""

    mean: np.ndarray
    stddev: np.ndarray
    path: str = ""

    @classmethod
    def read(cls, path: str | os.PathLike, param: str = "imstat") -> Normalisation:
        """The ``mean`` and ``stddev`` vectors of a ComputeImagesStatistics XML; a one-line error otherwise."""
        from eotensor.io.otbxml import read_vectors

        vectors = read_vectors(path, param)
        missing = [name for name in ("mean", "stddev") if name not in vectors]
        if missing:
            raise InputFileError(f'{param}: "{os.fspath(path)}" has no {" or ".join(missing)} vector; expected '
                                 "ComputeImagesStatistics' XML")
        mean, stddev = np.asarray(vectors["mean"]), np.asarray(vectors["stddev"])
        if len(mean) != len(stddev) or not len(mean):
            raise InputFileError(f'{param}: "{os.fspath(path)}" has {len(mean)} means and {len(stddev)} standard '
                                 "deviations; expected one of each per band")
        normalisation = cls(mean, stddev, os.fspath(path))
        normalisation.check_finite(param)
        return normalisation

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalisation:
        """From :meth:`to_dict` (a model's sidecar)."""
        return cls(np.asarray(data["mean"], np.float64), np.asarray(data["stddev"], np.float64), data.get("path", ""))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"mean": self.mean.tolist(), "stddev": self.stddev.tolist(), "path": self.path}

    def check(self, bands: int, param: str, what: str) -> None:
        """A one-line error unless there is one finite mean and one finite deviation per band of ``what``."""
        self.check_finite(param)
        if len(self.mean) != bands:
            raise ParameterError(f'{param}: "{self.path}" holds statistics of {len(self.mean)} band(s) but {what} '
                                 f"has {bands}; expected the statistics of the same bands")

    def check_finite(self, param: str) -> None:
        """A one-line error if a mean or a deviation is not finite (statistics of an image with no valid pixel)."""
        bad = [k + 1 for k in range(len(self.mean)) if not (np.isfinite(self.mean[k]) and np.isfinite(self.stddev[k]))]
        if bad:
            raise InputFileError(f'{param}: "{self.path}" has a non-finite mean or standard deviation in band(s) '
                                 f"{', '.join(map(str, bad))}; expected finite statistics (computed over valid pixels)")

    def apply(self, features: np.ndarray) -> np.ndarray:
        """``features`` (n, bands) normalised, float32 (a zero deviation divides by 1, as no scaling)."""
        scale = np.where(self.stddev == 0, 1.0, self.stddev)
        return ((features - self.mean) / scale).astype(np.float32)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Normalisation) and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.stddev, other.stddev))

    __hash__ = None  # type: ignore[assignment]
