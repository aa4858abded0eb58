"""The I/O floor of a round: read every input pixel as float32 and write an output of the round's size
and type, strip by strip, with no compute (the time no engine can beat). Same GeoTIFF layout as
eotensor's writer (tiled 256, pixel-interleaved)."""

import argparse

import numpy as np
import rasterio


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", nargs="+", required=True)
    parser.add_argument("--bands", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--strip", type=int, default=256)
    args = parser.parse_args()
    sources = [rasterio.open(p) for p in args.inputs]
    ref = sources[0]
    profile = dict(driver="GTiff", width=ref.width, height=ref.height, count=args.bands, dtype="float32",
                   crs=ref.crs, transform=ref.transform, tiled=True, blockxsize=256, blockysize=256,
                   interleave="pixel" if args.bands > 1 else "band", BIGTIFF="IF_SAFER")
    with rasterio.open(args.out, "w", **profile) as out:
        for r0 in range(0, ref.height, args.strip):
            h = min(args.strip, ref.height - r0)
            window = ((r0, r0 + h), (0, ref.width))
            first = [src.read(window=window, out_dtype="float32") for src in sources][0]
            out.write(np.resize(first, (args.bands, h, ref.width)), window=window)


if __name__ == "__main__":
    main()
