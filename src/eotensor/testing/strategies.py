"""Hypothesis strategies for the engine's geometry: fields, scales, sources, tiles and no-data regions.

Needs ``hypothesis`` (a test dependency): import this module from tests only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import strategies as st

from eotensor.engine.tiling import TileShape

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
"""Spacing scales drawn: super-resolution to strided networks."""


@dataclass(frozen=True)
class Configuration:
    """One drawn serving set-up: mode, scale, sources and a tile, all consistent with OTBTF's rules."""

    fully_conv: bool
    scale: float
    ratios: tuple[float, ...]
    """Spacing of each source relative to source 1 (1.0 first)."""
    efield: tuple[int, int]
    rfields: tuple[tuple[int, int], ...]
    width: int
    """Width of source 1 in pixels (other sources cover about the same extent)."""
    height: int
    shifts: tuple[int, ...]
    """Extra pixels each source starts before source 1's corner."""
    tile: TileShape
    seed: int

    def step(self, source: int) -> Fraction:
        """Source pixels per output pixel for ``source`` (0-based): S x s1 / s_source."""
        return Fraction(self.scale / self.ratios[source]).limit_denominator(64)

    def pads(self, source: int) -> tuple[int, int]:
        """RF minus what one EF block needs, (y, x), for ``source`` (0-based)."""
        f = self.step(source)
        rf = self.rfields[source]
        return rf[1] - int(1 + (self.efield[1] - 1) * f), rf[0] - int(1 + (self.efield[0] - 1) * f)


@st.composite
def configurations(draw: st.DrawFn, max_size: int = 40) -> Configuration:
    """A random consistent set-up: FC (EF making every block whole) or patch-based, one or two sources."""
    fully_conv = draw(st.booleans())
    scale = draw(st.sampled_from(SCALES))
    ratios = [1.0] + ([draw(st.sampled_from([0.5, 1.0, 2.0]))] if draw(st.booleans()) else [])
    efield = [1, 1]
    if fully_conv:
        base = math.lcm(*[Fraction(scale / r).limit_denominator(64).denominator for r in ratios])
        efield = [base * draw(st.integers(1, 3)) for _ in range(2)]
    rfields = []
    for r in ratios:
        f = Fraction(scale / r).limit_denominator(64)
        need = [int(1 + (e - 1) * f) if fully_conv else 1 for e in efield]
        rfields.append(tuple(n + draw(st.integers(0, 5)) for n in need))
    return Configuration(
        fully_conv=fully_conv, scale=scale, ratios=tuple(ratios), efield=(efield[0], efield[1]),
        rfields=tuple(rfields), width=draw(st.integers(18, max_size)), height=draw(st.integers(18, max_size)),
        shifts=tuple(draw(st.integers(0, 2)) for _ in ratios),
        tile=TileShape(draw(st.integers(1, 48)), draw(st.integers(1, 48))), seed=draw(st.integers(0, 99)),
    )


@st.composite
def rectangles(draw: st.DrawFn, height: int, width: int, max_count: int = 3) -> list[tuple[int, int, int, int]]:
    """Up to ``max_count`` random (row, col, rows, cols) rectangles inside a height x width image."""
    boxes = []
    for _ in range(draw(st.integers(0, max_count))):
        row, col = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        boxes.append((row, col, draw(st.integers(1, height - row)), draw(st.integers(1, width - col))))
    return boxes
