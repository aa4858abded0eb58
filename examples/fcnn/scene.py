"""A generated "Spot-like" scene with buildings, and its building mask: the data of the FCNN example.

OTBTF's FCNN example trains on Spot-6 patches of Amsterdam (4 bands, 1.5 m) labelled "building" / "other".
This module makes a stand-in, with no download: a 4-band int16 raster (blue, green, red, near-infrared
reflectance x 10000, UTM 31N) of fields, trees and roads, with rectangular buildings whose roofs are brighter
and spectrally flat (near-infrared close to red, unlike vegetation), plus noise; and a uint8 raster on the same
grid, 1 on buildings and 0 elsewhere. Both files are written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import os

import numpy as np
import rasterio
from affine import Affine

from eotensor.io.atomic import AtomicOutput

ORIGIN = (628000.0, 5805000.0)
"""Upper-left corner (UTM 31N, metres): around Amsterdam, as OTBTF's data."""
SPACING = 1.5
"""Pixel size in metres (Spot-6/7 pan-sharpened)."""
CRS = "EPSG:32631"

#                      blue   green  red    nir
_VEGETATION = np.array([400, 700, 500, 3200], np.float32)
_SOIL = np.array([900, 1100, 1300, 2000], np.float32)
_ROAD = np.array([1000, 1050, 1100, 1200], np.float32)
_ROOF = np.array([1900, 2000, 2100, 2050], np.float32)


def roof_brightness(size: int, rng: np.random.Generator, cover: float = 0.15) -> np.ndarray:
    """A ``size`` x ``size`` float32 map: 0 off buildings; on each building (an axis-aligned rectangle 6 to 24
    pixels wide, about ``cover`` of the scene in all) its roof's brightness factor, 0.85 to 1.15."""
    roofs = np.zeros((size, size), np.float32)
    count = max(1, round(cover * size * size / 15**2))
    for _ in range(count):
        h, w = rng.integers(6, 25, 2)
        r, c = rng.integers(0, size - h), rng.integers(0, size - w)
        roofs[r:r + h, c:c + w] = rng.uniform(0.85, 1.15)
    return roofs


def make_scene(image_path: str | os.PathLike, labels_path: str | os.PathLike, size: int = 1024, seed: int = 0,
               noise: float = 80.0) -> tuple[str, str]:
    """Write the scene (4 bands, int16) and its building mask (1 band, uint8, 1 = building), ``size`` x ``size``
    pixels on the same grid; return both paths.

    The background mixes vegetation and bare soil in smooth blobs, crossed by roads; each building's roof gets
    its own brightness (+-15 %); Gaussian noise of ``noise`` (reflectance x 10000) is added to every band.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 4)
    green = 0.5 + 0.25 * (np.sin(x / 53 + phase[0]) * np.cos(y / 71 + phase[1])
                          + np.sin((x + y) / 37 + phase[2]) * np.cos((x - y) / 29 + phase[3]))
    green = np.clip(green, 0, 1)[None]
    image = green * _VEGETATION[:, None, None] + (1 - green) * _SOIL[:, None, None]
    road = np.zeros((size, size), bool)
    for _ in range(max(1, size // 128)):  # a few roads across the scene, 4 pixels wide
        road[int(rng.integers(0, size - 4)) + np.arange(4), :] = True
        road[:, int(rng.integers(0, size - 4)) + np.arange(4)] = True
    image[:, road] = _ROAD[:, None]
    roofs = roof_brightness(size, rng)
    buildings = roofs > 0
    image[:, buildings] = _ROOF[:, None] * roofs[buildings]
    image += rng.normal(0, noise, image.shape).astype(np.float32)
    pixels = np.clip(np.rint(image), 1, 10000).astype(np.int16)
    labels = buildings.astype(np.uint8)[None]
    profile = dict(driver="GTiff", width=size, height=size, crs=CRS, tiled=True, blockxsize=256, blockysize=256,
                   transform=Affine(SPACING, 0, ORIGIN[0], 0, -SPACING, ORIGIN[1]))
    for path, data, name in ((image_path, pixels, "image"), (labels_path, labels, "labels")):
        with AtomicOutput(path, name) as output:
            with rasterio.open(output.temp_path, "w", count=data.shape[0], dtype=data.dtype.name,
                               **profile) as ds:
                ds.write(data)
    return os.fspath(image_path), os.fspath(labels_path)
