"""Dask executor benchmark (issue 15): worker scaling, and the Dask executor against the threaded engine.

    python bench/dask.py [--size 2048] [--runs 1] [--cases scaling,r1,unet]

Each measurement is one ``eotensor TensorflowModelServe`` command in its own subprocess under
``/usr/bin/time -v`` (wall time, peak RSS of the client process), run sequentially and interleaved, so that
load drifts hit every variant alike; the cluster's start and stop are part of the wall time, as a user
sees them. Every variant's output is compared with the first one's (identical pixels required).

* ``scaling``: the benchmark U-Net (ONNX, RF 64 / EF 32) over the top-left ``size``² box, one model thread per
  worker (``-optim.modelthreads 1``): ``processes:1`` against ``processes:2``. Goal: 2 workers >= 1.8x faster.
* ``r1``: the talk's round 1 (TF SavedModel ``x + 1``, 4 bands) over the whole 10980² tile: ``threads`` against
  ``processes:2``. Goal: Dask <= 1.15x the threaded time.
* ``unet``: the U-Net (ONNX) over the ``size``² box: ``threads`` against ``processes:2``. Goal: <= 1.15x.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
from run import measure  # noqa: E402 - one copy of the /usr/bin/time measurement

EOTENSOR = [sys.executable, "-m", "eotensor", "TensorflowModelServe"]


def commands(paths: dict[str, str], size: int, out: str) -> dict[str, dict[str, list[str]]]:
    """Each case's variants as command lines writing ``out`` + the variant's name."""
    unet = ["-source1.il", paths["a"], "-source1.rfieldx", "64", "-source1.rfieldy", "64", "-model.dir",
            paths["onnx_unet"], "-model.fullyconv", "on", "-output.efieldx", "32", "-output.efieldy", "32",
            "-optim.tilesizex", "512", "-optim.tilesizey", "512"]  # 16 tiles at 2048²: work splits evenly
    r1 = ["-source1.il", paths["a"], "-model.dir", paths["add_one"]]
    box = f"?&box=0:0:{size}:{size}"
    return {
        "scaling": {name: [*EOTENSOR, *unet, "-optim.modelthreads", "1", "-optim.scheduler", name,
                           "-out", f"{out}scaling-{name[-1]}.tif{box}"] for name in ("processes:1", "processes:2")},
        "r1": {name: [*EOTENSOR, *r1, "-optim.scheduler", name, "-out", f"{out}r1-{name[:3]}.tif"]
               for name in ("threads", "processes:2")},
        "unet": {name: [*EOTENSOR, *unet, "-optim.scheduler", name, "-out", f"{out}unet-{name[:3]}.tif{box}"]
                 for name in ("threads", "processes:2")},
    }


def same_pixels(a: str, b: str) -> bool:
    import numpy as np
    import rasterio

    with rasterio.open(a) as x, rasterio.open(b) as y:
        if x.shape != y.shape or x.count != y.count or x.transform != y.transform:
            return False
        return all(np.array_equal(x.read(window=w), y.read(window=w)) for _, w in x.block_windows(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048, help="side of the U-Net box (default 2048)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cases", default="scaling,r1,unet")
    args = parser.parse_args()
    import cases

    paths = cases.make_inputs(DATA, 10980)
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        table = commands(paths, args.size, os.path.join(tmp, ""))
        for case in args.cases.split(","):
            variants = table[case]
            walls: dict[str, list[float]] = {name: [] for name in variants}
            rss: dict[str, float] = {}
            for run in range(args.runs):
                for name, cmd in variants.items():
                    target = cmd[-1].split("?")[0]
                    if os.path.exists(target):
                        os.remove(target)
                    os.sync()
                    wall, peak, _ = measure(cmd)
                    walls[name].append(wall)
                    rss[name] = max(rss.get(name, 0.0), peak)
                    print(f"{case} run {run + 1} {name}: {wall:.2f} s, {peak:.0f} MB", flush=True)
            outputs = [cmd[-1].split("?")[0] for cmd in variants.values()]
            if not same_pixels(*outputs):
                raise SystemExit(f"{case}: the variants' outputs differ")
            first, second = (statistics.median(walls[name]) for name in variants)
            summary[case] = {name: {"wall_s": statistics.median(walls[name]), "client_rss_mb": round(rss[name])}
                             for name in variants}
            summary[case]["ratio_second_over_first"] = round(second / first, 3)
            print(json.dumps({case: summary[case]}), flush=True)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
