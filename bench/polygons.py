"""DensePolygonClassStatistics against OTB's PolygonClassStatistics on a Sentinel-2-like tile.

    python bench/polygons.py [--size 10980] [--polygons 10000] [--runs 3]

Data (cached under ``bench/data``, which git ignores): the 4-band int16 tile ``s2_a_<size>.tif`` that
``bench/run.py`` also uses, and ``polygons_<size>_<n>.gpkg``: training polygons of a realistic mix (parcels
as rotated rectangles, irregular star-shaped patches with 8-40 vertices, a few with holes, some multipolygons,
about a tenth overlapping a neighbour, sizes from 3 to 150 pixels across, some crossing the image border) in
six integer classes. Each measurement runs in its own subprocess under ``/usr/bin/time -v`` (wall time, peak
RSS), sequentially; OTB gets ``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` = the core count and is measured with
``-ram 256`` and ``-ram 2048`` (the faster counts). Every run's XML must equal OTB's, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from run import ensure_tools, repeat  # noqa: E402

from eotensor.samples import S2_ORIGIN, make_sentinel2_like  # noqa: E402

DATA = HERE / "data"
GOAL = 3.0
"""The issue's goal: at least this many times faster than OTB's faster run."""


def make_polygons(path: Path, size: int, count: int, seed: int = 0, spacing: float = 10.0) -> None:
    """``count`` training polygons over a ``size``² tile at ``spacing`` (see the module docstring)."""
    import pyogrio
    import shapely

    rng = np.random.default_rng(seed)
    extent = size * spacing
    geometries = []
    centres = rng.uniform(-0.01 * extent, 1.01 * extent, size=(count, 2))
    for k in range(count):
        if k and rng.random() < 0.1:  # overlap the previous polygon
            centres[k] = centres[k - 1] + rng.normal(0, 10 * spacing, 2)
        x, y = centres[k]
        radius = spacing * float(np.exp(rng.uniform(np.log(1.5), np.log(75))))
        kind = rng.random()
        if kind < 0.45:  # a parcel: a rotated rectangle
            w, h = radius * rng.uniform(0.6, 1.4, 2)
            corners = np.array([(-w, -h), (w, -h), (w, h), (-w, h)])
            angle = rng.uniform(0, np.pi)
            rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
            geometry = shapely.Polygon(corners @ rotation.T + (x, y))
        else:  # an irregular patch, star-shaped around its centre
            n = int(rng.integers(8, 41))
            angles = np.sort(rng.uniform(0, 2 * np.pi, n))
            radii = radius * rng.uniform(0.5, 1.0, n)
            ring = np.column_stack([x + radii * np.cos(angles), y + radii * np.sin(angles)])
            geometry = shapely.Polygon(ring)
            if kind > 0.95 and radius > 5 * spacing:
                geometry = geometry.difference(shapely.Point(x, y).buffer(radius * 0.3, quad_segs=4))
            elif kind > 0.9:
                geometry = shapely.MultiPolygon([geometry, shapely.box(x + radius, y + radius, x + 1.5 * radius,
                                                                       y + 1.3 * radius)])
        geometries.append(geometry)
    geometries = shapely.transform(np.array(geometries, dtype=object),
                                   lambda xy: xy + (S2_ORIGIN[0], S2_ORIGIN[1] - extent))
    classes = rng.integers(1, 7, size=count).astype(np.int32)
    pyogrio.raw.write(str(path), shapely.to_wkb(geometries), [classes], ["class"], driver="GPKG",
                      geometry_type="Unknown", crs="EPSG:32631", promote_to_multi=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--polygons", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-otb", action="store_true", help="measure eotensor only")
    args = parser.parse_args()
    ensure_tools()
    DATA.mkdir(exist_ok=True)
    image = DATA / f"s2_a_{args.size}.tif"
    if not image.exists():
        print(f"generating {image} ...", flush=True)
        make_sentinel2_like(image, size=args.size, seed=1)
    vec = DATA / f"polygons_{args.size}_{args.polygons}.gpkg"
    if not vec.exists():
        print(f"generating {vec} ...", flush=True)
        make_polygons(vec, args.size, args.polygons)
    cores = str(os.cpu_count() or 2)
    with tempfile.TemporaryDirectory(dir=DATA) as scratch:
        ours, theirs = Path(scratch) / "ours.xml", Path(scratch) / "otb.xml"
        # bytecode cached as in any installed package (this sandbox sets PYTHONDONTWRITEBYTECODE)
        env = {"PYTHONPATH": str(HERE.parent / "src"), "PYTHONDONTWRITEBYTECODE": ""}
        cmd = [sys.executable, "-m", "eotensor", "DensePolygonClassStatistics", "-in", str(image), "-vec", str(vec),
               "-field", "class", "-out", str(ours)]
        rows = [repeat("eotensor DensePolygonClassStatistics", cmd, args.runs, env, output=str(ours))]
        floor = [sys.executable, "-c", "import numpy, rasterio, shapely, pyogrio, eotensor.apps.cli"]
        rows.append(repeat("Python start-up and imports alone", floor, args.runs, env))
        if not args.skip_otb:
            for ram in (256, 2048):
                otb = ["otbcli_PolygonClassStatistics", "-in", str(image), "-vec", str(vec), "-field", "class",
                       "-out", str(theirs), "-ram", str(ram)]
                rows.append(repeat(f"otbcli_PolygonClassStatistics -ram {ram}", otb, args.runs,
                                   {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": cores}, output=str(theirs)))
                if ours.read_text() != theirs.read_text():
                    kept = DATA / f"polygons_mismatch_ram{ram}.xml"
                    shutil.copy(theirs, kept)
                    raise SystemExit(f"the counts differ from OTB's (-ram {ram}): see {kept}")
        import re

        counts = [int(v) for v in re.findall(r'value="(\d+)"', ours.read_text())]
    print(f"\n{args.polygons} polygons on a {args.size}² tile, {cores} cores; XML identical to OTB's: "
          f"{'yes' if not args.skip_otb else 'not checked'}; {sum(counts) // 2} pixels counted\n")
    print("| run | wall (s, median) | peak RSS (MB) |\n|---|---|---|")
    for row in rows:
        print(f"| {row['label']} | {row['wall']:.2f} | {row['rss']:.0f} |")
    if not args.skip_otb:
        best = min(row["wall"] for row in rows[2:])
        speedup = best / rows[0]["wall"]
        print(f"\nspeed-up over OTB's faster run: {speedup:.1f}x (goal >= {GOAL:.0f}x: "
              f"{'met' if speedup >= GOAL else 'missed'}); past the imports, eotensor's work takes "
              f"{rows[0]['wall'] - rows[1]['wall']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
