"""COG output benchmark (issue 15 item 3): a served result written as a plain GeoTIFF and as a Cloud-Optimized one.

    python bench/cog.py [--size 10980] [--runs 3] [--compress LZW]

One pixel-wise served result (band 1 of the Sentinel-2-like tile, ``x * 0.5 + 1``, float32) is written, each
variant in its own subprocess under ``/usr/bin/time -v`` (wall time, peak RSS), sequentially and interleaved:

* ``plain``: ``map.tif?&gdal:co:COMPRESS=...``;
* ``cog``: ``map.tif?&cog=true&gdal:co:COMPRESS=...`` (overviews and the COG copy on every core, the default);
* ``cog-1thread``: the same with ``gdal:co:NUM_THREADS=1`` (the single-threaded finishing step).

Goal: ``cog`` at most 1.5 x ``plain``. The two COG variants must be byte-identical.
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

CHILD = '''
import sys
import eotensor as eot
from eotensor.runtimes import FunctionModel

image, out = sys.argv[1:3]
model = FunctionModel(lambda x: {"y": x[..., :1] * 0.5 + 1}, ["x"], ["y"], name="half")
eot.serve(model, eot.source(image)).write(out)
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--compress", default="LZW")
    args = parser.parse_args()
    import cases

    image = cases.make_inputs(DATA, args.size)["a"]
    variants = {"plain": f"?&gdal:co:COMPRESS={args.compress}",
                "cog": f"?&cog=true&gdal:co:COMPRESS={args.compress}",
                "cog-1thread": f"?&cog=true&gdal:co:COMPRESS={args.compress}&gdal:co:NUM_THREADS=1"}
    walls: dict[str, list[float]] = {name: [] for name in variants}
    rss: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        paths = {name: os.path.join(tmp, f"{name}.tif") for name in variants}
        for run in range(args.runs):
            for name, extended in variants.items():
                if os.path.exists(paths[name]):
                    os.remove(paths[name])
                os.sync()
                wall, peak, _ = measure([sys.executable, "-c", CHILD, image, paths[name] + extended])
                walls[name].append(wall)
                rss[name] = max(rss.get(name, 0.0), peak)
                print(f"run {run + 1} {name}: {wall:.2f} s, {peak:.0f} MB", flush=True)
        with open(paths["cog"], "rb") as a, open(paths["cog-1thread"], "rb") as b:
            if a.read() != b.read():
                raise SystemExit("the COG written on every core differs from the single-threaded one")
        sizes = {name: os.path.getsize(path) for name, path in paths.items()}
    summary = {name: {"wall_s": statistics.median(walls[name]), "peak_rss_mb": round(rss[name]),
                      "mb": round(sizes[name] / 2**20)} for name in variants}
    summary["cog_over_plain"] = round(summary["cog"]["wall_s"] / summary["plain"]["wall_s"], 3)
    summary["cog_1thread_over_plain"] = round(summary["cog-1thread"]["wall_s"] / summary["plain"]["wall_s"], 3)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
