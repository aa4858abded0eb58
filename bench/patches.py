"""PatchesExtraction benchmark: eotensor against a naive per-point window-read loop, wall time and peak RSS.

    python bench/patches.py [--points 100000] [--size 10980] [--naive 5000] [--runs 3] [--nodata]

Data (generated once, cached under ``bench/data``, which git ignores): a Sentinel-2-like 4-band int16 tile of
``size``² pixels (the one bench/run.py uses), a uint8 label raster on the same grid, and ``points`` random points
in random order (a GeoPackage, field ``class``), all far enough from the border for a 64x64 patch.

Measured, each in its own subprocess under ``/usr/bin/time -v`` (wall time, peak RSS), sequentially, ``runs``
times (median wall time, highest RSS), after deleting the previous outputs and a ``sync``:

* eotensor: ``PatchesExtraction`` of every point, 64x64 patches, source1 = the tile written as int16
  (``BIGTIFF=IF_SAFER``), source2 = the label raster written as uint8, plus ``outlabels``;
* naive: the loop a user writes first, on the first ``naive`` points only (it is slow): per point and per
  source one rasterio window read (datasets opened once), the patches stacked in memory and written at the
  end. The comparison is **per point**: the naive time is scaled to all the points.

Outputs are checked against rasterio window reads of the sources on a sample of points.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PATCH = 64
"""Default patch size (both axes)."""
PY = sys.executable
sys.path.insert(0, str(HERE))
from run import measure  # noqa: E402 - one copy of the /usr/bin/time measurement


def make_data(size: int, points: int) -> dict[str, str]:
    """The tile, the label raster and the points (cached)."""
    sys.path.insert(0, str(HERE.parent / "src"))
    from eotensor.io.vector import write_points
    from eotensor.samples import make_sentinel2_like

    DATA.mkdir(exist_ok=True)
    tile = DATA / f"s2_a_{size}.tif"
    if not tile.exists():
        print(f"generating {tile} ...", flush=True)
        make_sentinel2_like(tile, size=size, seed=1)
    labels = DATA / f"labels_{size}.tif"
    with rasterio.open(tile) as ds:
        profile, transform = ds.profile, ds.transform
    if not labels.exists():
        print(f"generating {labels} ...", flush=True)
        profile.update(count=1, dtype="uint8", nodata=None)
        with rasterio.open(labels, "w", **profile) as ds:
            cols = np.arange(size)
            for r0 in range(0, size, 512):
                rows = np.arange(r0, min(size, r0 + 512))[:, None]
                ds.write(((rows // 37 * 7 + cols // 41 * 3) % 10).astype(np.uint8)[None],
                         window=Window(0, r0, size, len(rows)))
    vec = DATA / f"points_{size}_{points}.gpkg"
    if not vec.exists():
        print(f"generating {vec} ...", flush=True)
        rng = np.random.default_rng(7)
        margin = PATCH // 2 + 1
        cols = rng.uniform(margin, size - margin, points)
        rows = rng.uniform(margin, size - margin, points)
        x, y = transform * (cols, rows)
        write_points(vec, x, y, {"class": rng.integers(0, 10, points)}, profile["crs"], "vec")
    return {"tile": str(tile), "labels": str(labels), "vec": str(vec)}


def median_of(runs: int, cmd: list[str], env: dict[str, str], outputs: list[str]) -> tuple[float, float, str]:
    """The run of median wall time among ``runs`` runs of ``cmd`` (peak RSS: the highest). Before each run the
    outputs of the previous one are deleted and dirty pages flushed (``sync``), so no run pays for another's
    write-back."""
    results = []
    for _ in range(runs):
        for path in outputs:
            if os.path.exists(path):
                os.remove(path)
        os.sync()
        results.append(measure(cmd, env))
        print(f"  {os.path.basename(cmd[1]) if cmd[1] != '-m' else 'eotensor'}: {results[-1][0]:.1f} s, "
              f"{results[-1][1]:.0f} MB", flush=True)
    t, _, err = sorted(results)[len(results) // 2]
    return t, max(r[1] for r in results), err


def naive(tile: str, labels: str, vec: str, count: int, out: str, patch: int = PATCH) -> None:
    """The naive loop (run in a subprocess): one window read per point per source, then one write."""
    import pyogrio

    frame = pyogrio.raw.read(vec, columns=["class"], max_features=count)
    import shapely

    geoms = shapely.from_wkb(frame[2])
    xs, ys = shapely.get_x(geoms), shapely.get_y(geoms)
    with rasterio.open(tile) as a, rasterio.open(labels) as b:
        patches_a = np.empty((a.count, count * patch, patch), np.int16)
        patches_b = np.empty((1, count * patch, patch), np.uint8)
        for k, (x, y) in enumerate(zip(xs, ys)):
            for ds, patches in ((a, patches_a), (b, patches_b)):
                row, col = ds.index(x, y)
                window = Window(col - patch // 2, row - patch // 2, patch, patch)
                patches[:, k * patch:(k + 1) * patch] = ds.read(window=window)
    for name, patches in (("a", patches_a), ("b", patches_b)):
        with rasterio.open(f"{out}_{name}.tif", "w", driver="GTiff", width=patch, height=count * patch,
                           count=patches.shape[0], dtype=patches.dtype) as ds:
            ds.write(patches)


def check(paths: dict[str, str], out1: str, out2: str, labels_out: str, n: int, patch: int = PATCH,
          samples: int = 200) -> None:
    """Compare the outputs with rasterio window reads of the sources on ``samples`` random points."""
    import pyogrio
    import shapely

    frame = pyogrio.raw.read(paths["vec"], columns=["class"])
    geoms = shapely.from_wkb(frame[2])
    values = frame[3][0]
    rng = np.random.default_rng(0)
    with rasterio.open(paths["tile"]) as a, rasterio.open(paths["labels"]) as b, rasterio.open(out1) as o1, \
            rasterio.open(out2) as o2, rasterio.open(labels_out) as lo:
        if lo.height != n:  # some patches were rejected (--nodata): rank k is no longer point k
            print(f"{n - lo.height} point(s) rejected: patches not checked one by one", flush=True)
            return
        assert (o1.height, o2.height) == (n * patch, n * patch), "patches images' sizes"
        label_values = lo.read(1)[:, 0]
        assert np.array_equal(label_values, values.astype(np.uint8)), "labels"
        for k in rng.choice(n, min(samples, n), replace=False):
            x, y = geoms[k].x, geoms[k].y
            for src, out in ((a, o1), (b, o2)):
                row, col = src.index(x, y)
                expected = src.read(window=Window(col - patch // 2, row - patch // 2, patch, patch))
                got = out.read(window=Window(0, int(k) * patch, patch, patch))
                assert np.array_equal(expected, got), f"patch {k} of {out.name}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--naive", type=int, default=5000, help="points the naive loop runs on")
    parser.add_argument("--nodata", action="store_true", help="also reject patches with -10000 in source1")
    parser.add_argument("--ram", type=float, default=None)
    parser.add_argument("--runs", type=int, default=3, help="runs of each measurement (the median is kept)")
    parser.add_argument("--patch", type=int, default=PATCH, help="patch size, at most 64 (points keep 33 pixels "
                        "from the border)")
    parser.add_argument("--naive-run", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_run:
        tile, labels, vec, count, out, patch = args.naive_run
        naive(tile, labels, vec, int(count), out, int(patch))
        return 0
    paths = make_data(args.size, args.points)
    work = DATA / "patches_out"
    work.mkdir(exist_ok=True)
    for f in work.iterdir():
        f.unlink()
    out1, out2, labels_out = str(work / "p1.tif"), str(work / "p2.tif"), str(work / "labels.tif")
    cmd = [PY, "-m", "eotensor", "PatchesExtraction",
           "-source1.il", paths["tile"], "-source1.out", out1 + "?&gdal:co:BIGTIFF=IF_SAFER", "int16",
           "-source1.patchsizex", str(args.patch), "-source1.patchsizey", str(args.patch),
           "-source2.il", paths["labels"], "-source2.out", out2, "uint8",
           "-source2.patchsizex", str(args.patch), "-source2.patchsizey", str(args.patch),
           "-vec", paths["vec"], "-field", "class", "-outlabels", labels_out]
    if args.nodata:
        cmd += ["-source1.nodata", "-10000"]
    if args.ram:
        cmd += ["-ram", str(args.ram)]
    env = {"PYTHONPATH": str(HERE.parent / "src")}
    t, rss, err = median_of(args.runs, cmd, env, [out1, out2, labels_out])
    summary = next((line for line in err.splitlines() if "accepted" in line), "")
    print(f"eotensor: {args.points} points in {t:.1f} s ({1e6 * t / args.points:.0f} us/point), "
          f"peak RSS {rss:.0f} MB; {summary}", flush=True)
    start = time.perf_counter()
    check(paths, out1, out2, labels_out, args.points, args.patch)
    print(f"outputs checked against rasterio window reads ({time.perf_counter() - start:.1f} s)", flush=True)
    count = min(args.naive, args.points)
    naive_out = str(work / "naive")
    tn, rss_n, _ = median_of(args.runs, [PY, __file__, "--naive-run", paths["tile"], paths["labels"], paths["vec"],
                                         str(count), naive_out, str(args.patch)], env,
                             [naive_out + "_a.tif", naive_out + "_b.tif"])
    per_point = tn / count
    print(f"naive: {count} points in {tn:.1f} s ({1e6 * per_point:.0f} us/point), peak RSS {rss_n:.0f} MB; "
          f"scaled to {args.points} points: {per_point * args.points:.1f} s", flush=True)
    speedup = per_point * args.points / t
    result = {"points": args.points, "size": args.size, "patch": args.patch, "nodata": args.nodata,
              "wall_s": round(t, 2),
              "rss_mb": round(rss), "naive_points": count, "naive_wall_s": round(tn, 2),
              "naive_us_per_point": round(1e6 * per_point), "speedup_per_point": round(speedup, 1)}
    print(json.dumps(result))
    print(f"goals: < 60 s: {'yes' if t < 60 else 'NO'}; < 1 GB: {'yes' if rss < 1024 else 'NO'}; "
          f">= 5x naive: {'yes' if speedup >= 5 else 'NO'} ({speedup:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
