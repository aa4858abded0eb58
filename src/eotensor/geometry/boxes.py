"""Counts over many pixel boxes at once, from one summed-area table: the cost does not grow with the boxes.

Used wherever a decision is per window of a mask: the no-data skip of served blocks and patches, rejected
patches in PatchesExtraction, the eroded validity mask of PatchesSelection.
"""

from __future__ import annotations

import numpy as np


class BoxCounts:
    """The summed-area table of a 2-D mask (or counts): :meth:`count` gives the sum over any boxes."""

    def __init__(self, mask: np.ndarray) -> None:
        self.shape = mask.shape
        self.table = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
        np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1, out=self.table[1:, 1:])

    def count(self, r0: np.ndarray, r1: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        """Sum of the mask over rows ``[r0, r1)`` x cols ``[c0, c1)``, clipped to the mask; arrays broadcast
        (paired boxes, or ``r[:, None]`` with ``c[None, :]`` for every pair)."""
        rows, cols = self.shape
        r0, r1 = np.clip(r0, 0, rows), np.clip(r1, 0, rows)
        c0, c1 = np.clip(c0, 0, cols), np.clip(c1, 0, cols)
        r1, c1 = np.maximum(r0, r1), np.maximum(c0, c1)
        t = self.table
        return t[r1, c1] - t[r0, c1] - t[r1, c0] + t[r0, c0]
