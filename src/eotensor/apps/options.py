"""Parameter rows that several apps share, as data (rasterio's ``rio/options.py``, as table items).

Each function returns a fresh item, so an app can place it in its table under any group or repeat.
"""

from __future__ import annotations

from typing import Any

from eotensor.apps.params import Item, Kind, Param, Repeat

NSOURCES_NOTE = "Environment: OTB_TF_NSOURCES (number of sources, when higher than the keys given)."


def sources(*params: Item, help: str = "Source N: one input image list, stacked on bands.",  # noqa: A002
            extra: int = 0) -> Repeat:
    """The ``source{n}.*`` repeat: ``il`` (mandatory image list) followed by ``params``."""
    il = Param("il", Kind.FILE_LIST, "Input images of source N, stacked on bands (same size required).",
               mandatory=True)
    return Repeat("source", help, (il, *params), extra=extra)


def nodata(help: str) -> Param:  # noqa: A002
    """A ``nodata`` value: any float, nan and inf included."""
    return Param("nodata", Kind.FLOAT, help, finite=False)


def ram(key: str = "ram", default: float | None = None) -> Param:
    """A memory budget in MB (default: ``OTB_MAX_RAM_HINT``, else 256)."""
    return Param(key, Kind.FLOAT, "Memory budget in MB for tile buffers, > 0 (default: OTB_MAX_RAM_HINT or 256).",
                 default, minimum=0)  # 0 itself is refused where the budget is read, as in the Python API


def threads(key: str = "threads") -> Param:
    """Worker threads computing tiles."""
    return Param(key, Kind.INT,
                 "Worker threads computing tiles while one writes (default: one per core, at most 4; 0: sequential).",
                 minimum=0)


def resume(key: str = "resume") -> Param:
    """Resumable raster outputs (see :mod:`eotensor.engine.resume`)."""
    return Param(key, Kind.BOOL,
                 "Resumable run: finished tiles are journaled next to a partial output; after a crash, kill or Ctrl-C "
                 "the same command with -optim.resume on computes only the missing tiles (refused, saying what "
                 "changed, when inputs, model or parameters differ). Raster outputs only.", False)


def write_image(result: Any, values: Any, progress: bool = False, key: str = "out") -> str:
    """Stream a lazy result to the output image ``key`` (default pixel type float32, as OTB's apps write)."""
    filename, pixel_type = values[key]
    return result.write(filename, pixel_type or "float32", progress=progress)
