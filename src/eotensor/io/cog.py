"""Cloud-Optimized GeoTIFF outputs (``out.tif?&cog=true``, decision 30): the finishing step and the check.

GDAL's COG driver only copies, so a COG output is streamed like any GeoTIFF into a temporary tiled file
(:class:`~eotensor.io.geotiff.GeoTiffWriter`, which owns the temporary names and the rename), then
:func:`write_cog` builds the overviews on that file, block by block within GDAL's bounded cache, and copies it
to a second temporary name with the COG driver, which keeps those overviews and lays the file out as a COG:
the directories first, then the blocks from the smallest overview to the full resolution. :func:`validate_cog`
then checks the result as GDAL's ``validate_cloud_optimized_geotiff.py`` does, through the metadata GDAL
exposes (``IMAGE_STRUCTURE`` and ``TIFF`` domains), since ``osgeo_utils`` is not a dependency.

Both GDAL steps take minutes on a large output and offer no cancel hook through rasterio, so they run in a
helper thread (GDAL releases the GIL) while the calling thread waits: Ctrl-C and the CLI's signals stop the
wait at once, and the writer deletes the temporary files while GDAL, in the background, finishes writing to
them (unlinked; the result is dropped).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import TypeVar

import rasterio
import rasterio.shutil
from rasterio.enums import Resampling

from eotensor.io.extended import CogLayout, OutputTarget

__all__ = ["COG_BLOCK_SIZE", "overview_factors", "validate_cog", "write_cog"]

COG_BLOCK_SIZE = 512
"""The COG driver's default tile size (``gdal:co:BLOCKSIZE`` changes it)."""

_RESAMPLING = {name: Resampling[{"cubicspline": "cubic_spline"}.get(name, name)] for name in
               ("nearest", "average", "mode", "bilinear", "cubic", "cubicspline", "lanczos", "gauss", "rms")}
_GHOST = b"GDAL_STRUCTURAL_METADATA_SIZE="
T = TypeVar("T")


def overview_factors(layout: CogLayout, width: int, height: int, block: int = COG_BLOCK_SIZE) -> tuple[int, ...]:
    """The overview factors of a ``width`` x ``height`` COG with ``block``-pixel tiles.

    Explicit factors are kept as given; ``auto`` (``layout.overviews`` None) follows the COG driver's own rule:
    2, 4, 8... while the previous level, halved by integer division, is larger than one block on either side.
    """
    if layout.overviews is not None:
        return layout.overviews
    factors: list[int] = []
    while width > block or height > block:
        factors.append(2 ** (len(factors) + 1))
        width, height = width // 2, height // 2
    return tuple(factors)


def _in_background(step: Callable[[], T]) -> T:
    """Run ``step`` (a long GDAL call) in a daemon thread and wait for its result or error; an exception in the
    waiting thread (Ctrl-C, the CLI's signals) ends the wait at once and leaves ``step`` running."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = step()
        except BaseException as error:  # noqa: BLE001 - carried to the waiting thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="eotensor-cog", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.1)  # a signal handler runs between waits
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


DEFAULT_THREADS = "ALL_CPUS"
"""Threads computing the overviews and compressing the copy, unless ``gdal:co:NUM_THREADS`` says otherwise: the
tiles are all served by then, so the cores are free (GDAL compresses blocks independently: the same bytes)."""


def _add_overviews(path: str, target: OutputTarget) -> dict[str, str]:
    """Build ``target``'s overviews inside the GeoTIFF ``path``; return the COG driver's options for its copy."""
    layout = target.cog
    if layout is None:
        raise ValueError(f"{target.path} is not a COG output")
    options = {"NUM_THREADS": DEFAULT_THREADS, **target.creation_options}
    with rasterio.open(path, "r+") as ds:
        factors = overview_factors(layout, ds.width, ds.height, int(options.get("BLOCKSIZE", COG_BLOCK_SIZE)))
        if factors:
            with rasterio.Env(GDAL_NUM_THREADS=options["NUM_THREADS"]):
                ds.build_overviews(list(factors), _RESAMPLING[layout.resampling])
    options["OVERVIEWS"] = "FORCE_USE_EXISTING" if factors else "NONE"
    return options


def write_cog(source: str, dest: str, target: OutputTarget) -> None:
    """Build ``target``'s overviews inside the tiled GeoTIFF ``source``, then copy it to ``dest`` with GDAL's COG
    driver and ``target``'s ``gdal:co`` options.

    GDAL computes the overviews block by block (its cache is the process-wide one eotensor bounds), never
    holding the image; no-data pixels are left out of averages; both the overviews and the copy's compression
    use every core (:data:`DEFAULT_THREADS`; ``gdal:co:NUM_THREADS`` sets another count).
    Both steps run so that Ctrl-C is seen at once (see the module docstring).
    GDAL's errors are raised as rasterio raises them.
    """

    def steps() -> None:
        options = _add_overviews(source, target)
        rasterio.shutil.copy(source, dest, driver="COG", **options)

    _in_background(steps)


def _structure_start(path: str) -> int:
    """Where the first directory of a COG must start: after the TIFF header and GDAL's structural metadata."""
    with open(path, "rb") as f:
        head = f.read(16)
        big = struct.unpack({b"II": "<", b"MM": ">"}.get(head[:2], "<") + "H", head[2:4])[0] == 43
        start = 16 if big else 8
        f.seek(start)
        ghost = f.read(len(_GHOST) + 6)
    if ghost.startswith(_GHOST):
        start += len(_GHOST) + len(b"000000 bytes\n") + int(ghost[len(_GHOST):])
    return start + start % 2  # TIFF directories start on a word boundary


def _offset(ds: rasterio.DatasetReader, key: str, level: int | None) -> int:
    return int(ds.get_tag_item(key, "TIFF", bidx=1, ovr=level) or 0)


def validate_cog(path: str, full: bool = False) -> list[str]:
    """Why ``path`` is not a valid Cloud-Optimized GeoTIFF; empty when it is.

    The checks of GDAL's ``validate_cloud_optimized_geotiff.py``: GDAL reports ``LAYOUT=COG``; no external
    overview file; the image and its overviews tiled when larger than 512 pixels; the main directory right
    after the header, the overviews' directories after it in order; every block after every directory, the
    smallest overview's first and the full resolution's last. ``full`` also checks that within each level
    (band 1) the blocks follow each other in row-major order.
    """
    problems: list[str] = []
    with rasterio.open(path) as ds:
        if ds.driver != "GTiff":
            return [f"it is a {ds.driver} file, not a GeoTIFF"]
        if ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") != "COG":
            problems.append("GDAL does not report LAYOUT=COG")
        if len(ds.files) > 1:
            problems.append(f"it has side-car files ({', '.join(ds.files[1:])}); a COG holds its overviews")
        levels: list[int | None] = [None, *range(len(ds.overviews(1)))]
        problems += _level_problems(ds, "the image", full)
        for level in levels[1:]:
            with rasterio.open(path, overview_level=level) as view:
                problems += _level_problems(view, f"overview {level + 1}", full)
        ifds = [_offset(ds, "IFD_OFFSET", level) for level in levels]
        data = [_offset(ds, "BLOCK_OFFSET_0_0", level) for level in levels]
    start = _structure_start(path)
    if ifds[0] != start:
        problems.append(f"the image's directory is at byte {ifds[0]}, not right after the header at byte {start}")
    for k in range(1, len(ifds)):
        if ifds[k] < ifds[k - 1]:
            problems.append(f"the directory of overview {k} is before the previous level's")
    if data[-1] and data[-1] < max(ifds):
        problems.append(f"the first block (byte {data[-1]}) is before the last directory (byte {max(ifds)})")
    for k in range(len(data) - 1):
        if data[k] and data[k + 1] and data[k] < data[k + 1]:
            what = "the image's" if k == 0 else f"overview {k}'s"
            problems.append(f"{what} blocks come before overview {k + 1}'s; expected the smallest level first")
    return problems


def _level_problems(view: rasterio.DatasetReader, name: str, full: bool) -> list[str]:
    """An image or overview larger than 512 pixels stored in strips; with ``full``, blocks of band 1 out of
    row-major order (at most one problem each)."""
    rows, cols = view.block_shapes[0]
    if (view.width > 512 or view.height > 512) and cols == view.width and cols > 1024:
        return [f"{name} ({view.width}x{view.height}) is not tiled"]
    last = 0
    for y in range(-(-view.height // rows) if full else 0):
        for x in range(-(-view.width // cols)):
            offset = int(view.get_tag_item(f"BLOCK_OFFSET_{x}_{y}", "TIFF", bidx=1) or 0)
            if offset and offset < last:
                return [f"block ({x}, {y}) of {name} is before the previous block; expected row-major order"]
            last = max(last, offset)
    return []
