"""The I/O floor of a round: read every input pixel as float32 and write an output of the round's size
and type, with no compute: the time no engine can beat. Same GeoTIFF layout as eotensor's writer (tiled
256, band-interleaved), block-aligned strips, reads overlapped with writes by one reader thread."""

import argparse
import os
from concurrent.futures import ThreadPoolExecutor

import rasterio


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--bands", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--strip", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("GDAL_CACHEMAX", "256")
    with rasterio.open(args.inputs[0]) as ref:
        width, height, crs, transform = ref.width, ref.height, ref.crs, ref.transform
    profile = dict(driver="GTiff", width=width, height=height, count=args.bands, dtype="float32", crs=crs,
                   transform=transform, tiled=True, blockxsize=256, blockysize=256, interleave="band",
                   BIGTIFF="IF_SAFER")

    def read(r0):
        window = ((r0, min(r0 + args.strip, height)), (0, width))
        arrays = []
        for path in args.inputs:
            with rasterio.open(path) as src:
                arrays.append(src.read(window=window, out_dtype="float32"))
        return window, arrays[0]

    with rasterio.open(args.out, "w", **profile) as out, ThreadPoolExecutor(1) as pool:
        strips = pool.map(read, range(0, height, args.strip))
        for window, data in strips:
            out.write(data[:1].repeat(args.bands, axis=0) if args.bands != len(data) else data, window=window)


if __name__ == "__main__":
    main()
