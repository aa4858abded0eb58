"""The classification map: a lazy result that reads its features' window and predicts each pixel.

:class:`Classification` is a :class:`~eotensor.lazy.LazyRaster` over any features result — opened files, or a
served model's output (deep features, never written to a file) — so it streams through the pipelined executor,
writes atomically, chains into other apps, and gives the same pixels whatever the tiling: a pixel's class depends
only on that pixel's features. Band 1 is the label; with ``confidence``, the next band is the probability of that
label; with ``probabilities`` (OTB's ``-probamap`` with ``-nbclasses``), that many bands follow, band k the
probability of the k-th smallest class in per mille (OTB's scale: ``p x 1000``, written truncated to the pixel
type, uint16 by default), bands beyond the model's classes 0. Pixels where ``mask`` is below 1 (OTB reads masks as
uint8 and classifies where > 0), and pixels with a non-finite feature (NaN, ±inf: no class can be predicted from
them), get ``nodata_label`` (confidence and probabilities 0) and are not predicted. Labels, confidence and
probabilities come from one prediction.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from eotensor.classify.models import ClassifierModel
from eotensor.classify.statistics import Normalisation
from eotensor.engine.tiling import TileShape
from eotensor.errors import InputFileError, ParameterError
from eotensor.geometry import Grid, Window
from eotensor.io.geotiff import DEFAULT_BLOCK_SIZE
from eotensor.lazy import LazyRaster

__all__ = ["Classification"]

TILE_PIXELS = 1 << 18
"""Pixels per classification tile, about (a forest of 100 trees predicts some 10^5 pixels a second per core)."""


class Classification(LazyRaster):
    """Labels (and confidence) of every pixel of ``features`` by ``model``."""

    def __init__(self, features: LazyRaster, model: ClassifierModel, model_path: str = "",
                 normalisation: Normalisation | None = None, mask: LazyRaster | None = None, nodata_label: int = 0,
                 confidence: bool = False, param: str = "in", probabilities: int = 0) -> None:
        super().__init__(features.workers, features.ram_mb, features.scheduler)
        if model.features != features.count:
            raise ParameterError(f'model: "{model_path}" was trained on {model.features} feature(s) but {param} has '
                                 f"{features.count} band(s); expected the same features")
        norm = normalisation if normalisation is not None else model.normalisation
        if norm is not None:
            norm.check(features.count, "imstat", param)
        if confidence and not model.has_probabilities:
            raise ParameterError(f'confmap: the {model.kind} classifier of "{model_path}" gives no class '
                                 "probabilities; train it with probabilities (libsvm: -classifier.libsvm.prob on; sgd: "
                                 "-classifier.sgd.loss log_loss) or leave -confmap out")
        if probabilities and not model.has_probabilities:
            raise ParameterError(f'probamap: the {model.kind} classifier of "{model_path}" gives no class '
                                 "probabilities; train it with probabilities (libsvm: -classifier.libsvm.prob on; sgd: "
                                 "-classifier.sgd.loss log_loss) or leave -probamap out")
        if mask is not None:
            check_mask_grid(mask, features.grid, param)
        self.features = features
        self.model = model
        self.model_path = os.fspath(model_path)
        self.normalisation = norm
        self.mask = mask
        self.nodata_label = int(nodata_label)
        self.confidence = bool(confidence)
        self.probabilities = int(probabilities)
        self.param = param

    @property
    def grid(self) -> Grid:
        return self.features.grid

    @property
    def count(self) -> int:
        return 1 + self.confidence + self.probabilities

    @property
    def token(self) -> str:
        stamp = os.stat(self.model_path).st_mtime_ns if os.path.isfile(self.model_path) else 0
        norm = None if self.normalisation is None else self.normalisation.to_dict()
        return repr(("classify", self.model_path, stamp, norm, self.nodata_label, self.confidence,
                     self.probabilities, self.features.token, None if self.mask is None else self.mask.token))

    @property
    def files(self) -> list[str]:
        return [*self.features.files, *([self.model_path] if self.model_path else []),
                *(self.mask.files if self.mask is not None else [])]

    @property
    def upstreams(self) -> list[LazyRaster]:
        return [self.features, *([self.mask] if self.mask is not None else [])]

    @property
    def descriptions(self) -> tuple[str, ...]:
        """``label``, ``confidence``, then ``class 7`` for each probability band (none for -nbclasses' extra
        bands): GDAL band descriptions of the outputs, so a probability map says which band is which class."""
        classes = [f"class {c}" for c in self.model.classes[:self.probabilities].tolist()]
        return ("label", *(("confidence",) if self.confidence else ()), *classes,
                *("",) * (self.probabilities - len(classes)))

    def tile_shape(self, block: tuple[int, int] = (DEFAULT_BLOCK_SIZE, DEFAULT_BLOCK_SIZE)) -> TileShape:
        """The features' tiles (a served model's own), cut into whole output blocks, about :data:`TILE_PIXELS`
        pixels each: bands of whole rows, and a band of one block row still over twice that cut across too (a
        wide scene's strips). Predicting costs far more per pixel than reading, so smaller tiles keep every
        worker busy and bound the memory a prediction holds (the estimator's arrays scale with its batch); the
        features' tiles are computed once (their tile cache) whatever the cut."""
        tile = self.features.tile_shape(block)
        rows = min(tile.rows, max(block[0], TILE_PIXELS // max(1, tile.cols) // block[0] * block[0]))
        cols = tile.cols
        if rows * cols > 2 * TILE_PIXELS:
            cols = min(cols, max(block[1], TILE_PIXELS // rows // block[1] * block[1]))
        return TileShape(rows, cols)

    def compute(self, window: Window) -> np.ndarray:
        values = self.features.tiles.read(window)
        pixels = values.reshape(values.shape[0], -1).T
        keep = np.isfinite(pixels).all(axis=1)
        if self.mask is not None:
            keep &= self.mask.tiles.read(window)[0].ravel() >= 1  # OTB: the mask as uint8, > 0
        # (pixels, features) in C order: the one copy the estimator needs (scikit-learn's trees copy an F-ordered
        # array again); every pixel kept (the usual case) needs no selection
        chosen = np.ascontiguousarray(pixels) if keep.all() else pixels[keep]
        try:
            if self.confidence or self.probabilities:
                labels, probabilities = self.model.predict_probabilities(chosen, self.normalisation)
            else:
                labels, probabilities = self.model.predict(chosen, False, self.normalisation)[0], None
        except ValueError as error:  # e.g. a value beyond float32 once normalised
            raise ParameterError(f"{self.param}: cannot classify the pixels of window {window} "
                                 f"({str(error).strip().splitlines()[0]})") from None
        out = np.zeros((self.count, len(pixels)), dtype=np.float64)
        out[0] = self.nodata_label
        out[0, keep] = labels
        if probabilities is not None:
            if self.confidence:
                column = np.searchsorted(self.model.classes, labels)
                out[1, keep] = probabilities[np.arange(len(labels)), column]
            first = 1 + self.confidence
            shown = min(self.probabilities, probabilities.shape[1])
            out[first:first + shown, keep] = probabilities[:, :shown].T * 1000
        return out.reshape(self.count, window.height, window.width)


def check_mask_grid(mask: LazyRaster, grid: Grid, param: str = "in") -> None:
    """A one-line error naming ``mask``, its file and what differs when ``mask`` is not on ``grid`` (``param``'s):
    size, then CRS, then transform (pixel size or origin, to a thousandth of a pixel). OTB checks the size
    only, and a mask shifted by a few pixels would silently mask the wrong pixels; eotensor never resamples."""
    from eotensor.geometry.grid import grid_difference

    name = f'"{mask.files[0]}"' if mask.files else "the mask"
    difference = grid_difference(mask.grid, grid, transform=True)
    if difference is None:
        return
    what, own, other = difference
    if what == "size":
        raise InputFileError(f"mask: {name} is {own} pixels but {param} is {other}; expected a mask on the same grid")
    if what == "CRS":
        raise InputFileError(f"mask: {name} is in {own} but {param} in {other}; expected a mask on the same grid "
                             "(eotensor does not resample: gdalwarp it first)")
    raise InputFileError(f"mask: {name} has another {what} than {param} (transform {own} against {other}); expected "
                         "a mask on the same grid (eotensor does not resample)")


def open_mask(path: Any) -> LazyRaster | None:
    """``mask`` as a lazy result (its first band), or None."""
    if path is None:
        return None
    from eotensor.lazy import open

    return path if isinstance(path, LazyRaster) else open(path)
