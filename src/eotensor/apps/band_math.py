"""BandMath and BandMathX: OTB's pixel-wise calculators, streamed through the same executor as the serve app.

``eotensor BandMath -il a.tif b.tif -out m.tif -exp "ndvi(im1b3, im1b4) > 0.3 ? im2b1 : 0"`` and
``eotensor BandMathX -il a.tif -out o.tif -exp "im1 + {1,1,1,1}; dotpr(im1, im1)"`` take OTB 8.1's syntax
(:mod:`eotensor.expressions`): the text is parsed into a tree, never ``eval``-ed. Each image of ``-il`` is one
image (``im1``, ``im2``, ...; not stacked); from Python an image may be any lazy result or an ``xarray.DataArray``,
so an app's output feeds BandMath in memory. The result is a lazy :class:`~eotensor.calc.Expression`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eotensor.apps import options
from eotensor.apps.params import App, Kind, Param, Values, run_python

NOTES = ("OTB 8.1 semantics: imXbY 1-based, comparisons give 1/0, ?:, division by zero gives inf/NaN; results are "
         "stored as float32 with +-inf clamped to +-3.4e38 (as OTB), then cast to the output pixel type.")


def _params(example: str) -> tuple[Any, ...]:
    return (
        Param("il", Kind.FILE_LIST, "Input images (im1, im2, ... in this order; each image has its own bands).",
              mandatory=True),
        Param("out", Kind.OUTPUT_IMAGE, "Output raster, optional extended filename, then an optional pixel type "
              "(default float).", mandatory=True),
        options.ram(),
        Param("exp", Kind.STRING, f"The expression, e.g. {example}.", mandatory=True),
    )


@dataclass(frozen=True)
class _Config:
    images: list[Any]
    expression: str
    ram_mb: float | None

    @classmethod
    def from_values(cls, values: Values) -> _Config:
        return cls(list(values["il"]), values["exp"], values["ram"])


def _build(values: Values, dialect: str) -> Any:
    from eotensor.calc import Expression
    from eotensor.lazy import as_lazy

    cfg = _Config.from_values(values)
    images = [as_lazy(item, "il", cfg.ram_mb) for item in cfg.images]
    return Expression.from_text(cfg.expression, images, dialect)


def build_bandmath(values: Values) -> Any:
    """The lazy BandMath result (one band: the BandMath syntax has no ``;`` and no vectors)."""
    return _build(values, "bandmath")


def build_bandmathx(values: Values) -> Any:
    """The lazy BandMathX result (the outputs separated by ``;``, stacked on bands)."""
    return _build(values, "bandmathx")


APP = App(
    name="BandMath",
    description="One band computed pixel by pixel from an expression over the bands of several images (OTB's).",
    params=_params('"im1b3 > 0 ? (im1b4 - im1b3) / (im1b4 + im1b3) : 0"'),
    build=build_bandmath,
    write=options.write_image,
    notes=NOTES,
)

APP_X = App(
    name="BandMathX",
    description="Bands computed pixel by pixel from vector expressions (OTB's BandMathX): im1 is a pixel's row "
                "of bands, {a, b} a row, ' a transpose, * a matrix product, outputs separated by ;.",
    params=_params('"im1 + {1, 1, 1, 1}; dotpr(im1, im2)"'),
    build=build_bandmathx,
    write=options.write_image,
    notes=NOTES,
)


def BandMath(options: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Run BandMath from Python with OTB keys (``il=[...]``, ``exp=...``, ``out=...``); without ``out``, the lazy
    result is returned unwritten. ``il`` items may be file names or lazy results."""
    return run_python(APP, options, **kwargs)


def BandMathX(options: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Run BandMathX from Python with OTB keys (``il=[...]``, ``exp=...``, ``out=...``); without ``out``, the lazy
    result is returned unwritten."""
    return run_python(APP_X, options, **kwargs)
