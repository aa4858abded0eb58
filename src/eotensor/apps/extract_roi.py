"""ExtractROI: a region and some bands of an image (OTB's app), as a lazy result that streams and chains.

``eotensor ExtractROI -in a.tif -startx 100 -starty 50 -sizex 512 -sizey 512 -cl Channel3 Channel2 -out roi.tif``
or ``-mode extent -mode.extent.ulx .. -mode.extent.lry ..`` (inclusive corners, in pixels or, with
``-mode.extent.unit phy``, map coordinates). pyotb builds its ``Input`` and slicing on this app. From Python,
``in`` may be any lazy result or an ``xarray.DataArray``.
"""

from __future__ import annotations

import math
from typing import Any

from eotensor.apps import options
from eotensor.apps.params import App, Choice, Kind, Param, Values, run_python

PARAMS = (
    Param("in", Kind.INPUT_IMAGE, "Input image.", mandatory=True),
    Param("out", Kind.OUTPUT_IMAGE, "Output raster, optional extended filename, then an optional pixel type "
          "(default float).", mandatory=True),
    Param("mode", Kind.CHOICE, "How the region is given.", "standard", choices=(
        Choice("standard", "upper-left pixel (startx, starty) and size (sizex, sizey)"),
        Choice("extent", "upper-left and lower-right corners, both included", (
            Param("ulx", Kind.FLOAT, "X of the upper-left corner.", 0.0),
            Param("uly", Kind.FLOAT, "Y of the upper-left corner.", 0.0),
            Param("lrx", Kind.FLOAT, "X of the lower-right corner (default: the last column).", finite=False),
            Param("lry", Kind.FLOAT, "Y of the lower-right corner (default: the last row).", finite=False),
            Param("unit", Kind.CHOICE, "Unit of the corners.", "pxl", choices=(
                Choice("pxl", "pixel indices"),
                Choice("phy", "map coordinates in the image's CRS"),
            )),
        )),
    )),
    Param("startx", Kind.INT, "First column (standard mode).", 0, minimum=0),
    Param("starty", Kind.INT, "First row (standard mode).", 0, minimum=0),
    Param("sizex", Kind.INT, "Columns (standard mode; default: to the last one).", minimum=0),
    Param("sizey", Kind.INT, "Rows (standard mode; default: to the last one).", minimum=0),
    Param("cl", Kind.STRING_LIST, "Bands to keep, in order: Channel1, Channel2, ... (default: all)."),
    options.ram(),
)


def _channels(names: list[str], count: int) -> list[int]:
    """0-based band indexes from OTB's ``ChannelN`` names (1-based); a wrong name is a one-line error."""
    from eotensor.errors import ParameterError

    indexes = []
    for name in names:
        number = name[len("Channel"):] if name.startswith("Channel") else ""
        if not number.isdigit() or not 1 <= int(number) <= count:
            raise ParameterError(f'cl: "{name}" is not a band of the {count}-band image; expected Channel1 .. '
                                 f"Channel{count}")
        indexes.append(int(number) - 1)
    return indexes


def build(values: Values) -> Any:
    """The region (and bands) of ``in``: a lazy result; nothing is read yet."""
    from eotensor.geometry import Window
    from eotensor.lazy import WindowRaster, as_lazy

    source = as_lazy(values["in"], "in", values["ram"])
    grid = source.grid
    if values["mode"] == "extent":
        corners = [values["mode.extent.ulx"], values["mode.extent.uly"], values["mode.extent.lrx"],
                   values["mode.extent.lry"]]
        if values["mode.extent.unit"] == "phy":
            cols = [grid.x.index(x) if x is not None else None for x in corners[0::2]]
            rows = [grid.y.index(y) if y is not None else None for y in corners[1::2]]
        else:
            cols = [None if x is None else math.floor(x + 0.5) for x in corners[0::2]]
            rows = [None if y is None else math.floor(y + 0.5) for y in corners[1::2]]
        c0, c1 = sorted((cols[0], grid.width - 1 if cols[1] is None else cols[1]))
        r0, r1 = sorted((rows[0], grid.height - 1 if rows[1] is None else rows[1]))
        c0, r0 = max(c0, 0), max(r0, 0)
        window = Window(r0, c0, min(r1, grid.height - 1) - r0 + 1, min(c1, grid.width - 1) - c0 + 1)
    else:
        col, row = values["startx"], values["starty"]
        width = values["sizex"] or max(grid.width - col, 0)
        height = values["sizey"] or max(grid.height - row, 0)
        window = Window(row, col, height, width)
    result = source if window == grid.full_window() else WindowRaster(source, window, "in")
    if values["cl"]:
        bands = _channels(list(values["cl"]), source.count)
        if bands != list(range(source.count)):
            result = result[bands]
    return result


APP = App(
    name="ExtractROI",
    description="A region and some bands of an image (OTB's ExtractROI), streamed.",
    params=PARAMS,
    build=build,
    write=options.write_image,
)


def ExtractROI(options: dict[str, Any] | None = None, **kwargs: Any) -> Any:  # noqa: N802
    """Run ExtractROI from Python with OTB keys (``in_=...``, ``startx=...``, ``cl=[...]``, ``out=...``); without
    ``out``, the lazy result is returned unwritten."""
    return run_python(APP, options, **kwargs)
