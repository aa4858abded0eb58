"""Zarr output vs GeoTIFF output of the same served result (issue 15 item 1): write time, threads and Dask.

    PYTHONPATH=src python bench/zarr_write.py [SIZE] [SCHEDULERS...]

A SIZE² four-band int16 raster through a pixel-wise Python model (``x * 3 - 7`` as float32), written as an
uncompressed GeoTIFF and as a Zarr store (zarr's default zstd), with each scheduler (default: threads and
processes:2). On Dask the GeoTIFF's pixels travel back to the client; the Zarr's chunks are written by the workers.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import eotensor as eot
    from eotensor.testing import write_raster

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    schedulers = sys.argv[2:] or ["threads", "processes:2"]
    folder = Path(tempfile.mkdtemp(prefix="eot-zarr-bench-"))
    try:
        image = write_raster(folder / "in.tif", np.random.default_rng(0).integers(0, 1000, (4, size, size))
                             .astype(np.int16), tiled=True, blockxsize=256, blockysize=256)
        (folder / "model.py").write_text("def model(x):\n    return {'y': x * 3 - 7}\n")
        for scheduler in schedulers:
            for out in ("out.tif", "out.zarr"):
                result = eot.serve(str(folder / "model.py"), eot.source(image), fullyconv=True, scheduler=scheduler)
                start = time.perf_counter()
                result.write(folder / out, "float32")
                elapsed = time.perf_counter() - start
                path = folder / out
                stored = sum(p.stat().st_size for p in path.rglob("*")) if path.is_dir() else path.stat().st_size
                print(f"{scheduler:>12} {out:>9}: {elapsed:6.2f} s, {stored / 2**20:7.1f} MB, "
                      f"{len(result.plan())} tiles")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
