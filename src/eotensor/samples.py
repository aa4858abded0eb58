"""Built-in sample data: a Sentinel-2-like raster and a small fully-convolutional SavedModel.

Everything is generated (no download): the demo, the benchmarks and users trying eotensor out all use
these. The raster is structured like a real scene (smooth fields, parcels, a river, no-data rows) so
that models and compression behave realistically.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import rasterio
from affine import Affine

S2_ORIGIN = (300000.0, 4900020.0)
"""Upper-left corner of tile T31TCJ-like grids (UTM 31N, metres)."""


def make_sentinel2_like(
    path: str | os.PathLike, size: int = 1024, bands: int = 4, seed: int = 0, spacing: float = 10.0,
    nodata_rows: int = 3, strip: int = 512, creation_options: dict[str, str] | None = None,
) -> str:
    """Write a Sentinel-2-like int16 GeoTIFF (reflectance x 10000, UTM 31N) of ``size`` x ``size`` pixels.

    Bands look like B4, B3, B2, B8 over fields and parcels; ``nodata_rows`` rows near the top are
    -10000 (the no-data value). Written strip by strip, so any size fits in memory.
    """
    rng = np.random.default_rng(seed)
    profile = dict(
        driver="GTiff", width=size, height=size, count=bands, dtype="int16", nodata=-10000,
        crs="EPSG:32631", transform=Affine(spacing, 0, S2_ORIGIN[0], 0, -spacing, S2_ORIGIN[1]),
        tiled=True, blockxsize=256, blockysize=256, **(creation_options or {}),
    )
    base = np.array([600, 800, 500, 2800, 1500, 900][:bands] + [1000] * max(0, bands - 6), dtype=np.float32)
    phases = rng.uniform(0, 2 * np.pi, size=(bands, 3))
    parcel = 37 + int(rng.integers(0, 20))
    x = np.arange(size, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as ds:
        for r0 in range(0, size, strip):
            h = min(strip, size - r0)
            y = np.arange(r0, r0 + h, dtype=np.float32)[:, None]
            fields = (np.floor(y / parcel) * 7 + np.floor(x / parcel) * 13) % 11 / 11.0
            river = np.exp(-((x - size / 2 - 80 * np.sin(y / 150.0)) / 12.0) ** 2)
            noise = rng.normal(0, 40, size=(bands, h, size)).astype(np.float32)
            data = np.empty((bands, h, size), dtype=np.float32)
            for b in range(bands):
                wave = np.sin(x / 97.0 + phases[b, 0]) * np.cos(y / 131.0 + phases[b, 1])
                data[b] = base[b] * (0.6 + 0.5 * fields + 0.2 * wave) * (1 - 0.8 * river) + noise[b]
            data = np.clip(data, 1, 10000)
            rows = np.arange(r0, r0 + h)
            data[:, (rows >= 10) & (rows < 10 + nodata_rows), :] = -10000
            ds.write(data.astype(np.int16), window=((r0, r0 + h), (0, size)))
    return os.fspath(path)


DEMO_NET_RF = 5
"""True receptive field of the demo network (two valid 3x3 convolutions)."""


def build_demo_model(path: str | os.PathLike) -> str:
    """Export a small fully-convolutional Keras 3 net as a SavedModel: 4 bands (B4 B3 B2 B8) -> the
    probabilities of vegetation, bare soil and water.

    Its weights are set by hand rather than trained: two valid 3x3 convolutions smooth the red, green
    and near-infrared reflectances, a 1x1 softmax turns vegetation-index-like contrasts into classes.
    An input of h x w pixels gives (h-4) x (w-4) outputs, so with expression field EF the app's
    receptive field is ``EF + 4``. Input ``x``, output ``probs``.
    """
    import numpy as np

    from eotensor.runtimes.tensorflow import import_tensorflow

    import_tensorflow()  # quietly, before Keras imports it
    import keras

    x = keras.Input(shape=(None, None, 4), name="x")
    scaled = keras.layers.Rescaling(1.0 / 10000.0)(x)
    smooth1 = keras.layers.Conv2D(3, 3, padding="valid", activation="relu")
    smooth2 = keras.layers.Conv2D(3, 3, padding="valid", activation="relu")
    classify = keras.layers.Conv2D(3, 1, activation="softmax")
    probs = classify(smooth2(smooth1(scaled)))
    model = keras.Model({"x": x}, {"probs": probs})
    mean1 = np.zeros((3, 3, 4, 3), np.float32)
    for out_band, in_band in enumerate((0, 1, 3)):  # red, green, near-infrared
        mean1[:, :, in_band, out_band] = 1 / 9
    mean2 = np.zeros((3, 3, 3, 3), np.float32)
    for band in range(3):
        mean2[:, :, band, band] = 1 / 9
    smooth1.set_weights([mean1, np.zeros(3, np.float32)])
    smooth2.set_weights([mean2, np.zeros(3, np.float32)])
    #              vegetation  bare  water     <- logits from (red, green, nir)
    logits = np.array([[-60.0, 40.0, 0.0],     # red
                       [0.0, 0.0, 60.0],       # green
                       [40.0, 0.0, -60.0]],    # near-infrared
                      np.float32)[np.newaxis, np.newaxis]
    classify.set_weights([logits, np.array([-2.0, 0.0, 3.0], np.float32)])
    model.export(os.fspath(path), verbose=False)
    return os.fspath(path)


def save_module(path: str | os.PathLike, fn: Any, specs: dict[str, tuple[list[int | None], str]],
                signature: str = "serving_default") -> str:
    """Save ``fn`` (keyword tensors -> dict of tensors) as a SavedModel whose signature ``signature``
    takes the inputs ``specs`` (name -> (shape, dtype)). ``tf.Module`` + ``tf.function``: Keras 3 cannot
    apply raw ``tf.*`` functions to Keras inputs."""
    from eotensor.runtimes.tensorflow import import_tensorflow

    tf = import_tensorflow()
    names = list(specs)
    input_signature = [tf.TensorSpec(shape, dtype, name=n) for n, (shape, dtype) in specs.items()]

    class Graph(tf.Module):
        @tf.function(input_signature=input_signature)
        def serve(self, *args: Any) -> Any:
            return fn(**dict(zip(names, args)))

    module = Graph()
    tf.saved_model.save(module, os.fspath(path), signatures={signature: module.serve})
    return os.fspath(path)


IMAGE = ([None, None, None, None], "float32")


def build_talk_model(name: str, path: str | os.PathLike) -> str:
    """The talk's "big calculator" graphs as SavedModels (inputs ``x`` or ``x1``/``x2``, output ``y``).

    ``add_one`` (x + [1,1,1,1], built with Keras 3 ``keras.ops`` and ``model.export``), ``norm``
    (``tf.norm(x, axis=-1)``), ``scalar_product`` (``reduce_sum(x1*x2, -1)``), ``scalar_product_ax``
    (``reduce_sum(x*a, -1)`` with a user placeholder ``a``) and ``matrix_round4`` (the per-pixel
    matrix computation, output signature ``[?, ?, 1]``: 4 values per pixel).
    """
    from eotensor.runtimes.tensorflow import import_tensorflow

    tf = import_tensorflow()
    if name == "add_one":
        import keras

        x = keras.Input(shape=(None, None, 4), name="x")
        y = keras.ops.add(x, keras.ops.ones((1, 1, 1, 4)))
        keras.Model({"x": x}, {"y": y}).export(os.fspath(path), verbose=False)
        return os.fspath(path)
    if name == "norm":
        return save_module(path, lambda x: {"y": tf.norm(x, axis=-1)}, {"x": IMAGE})
    if name == "scalar_product":
        return save_module(path, lambda x1, x2: {"y": tf.reduce_sum(x1 * x2, axis=-1)}, {"x1": IMAGE, "x2": IMAGE})
    if name == "scalar_product_ax":
        return save_module(path, lambda x, a: {"y": tf.reduce_sum(x * a, axis=-1)},
                             {"x": IMAGE, "a": ([None], "float32")})
    if name == "matrix_round4":
        def round4(x1: Any, x2: Any) -> dict[str, Any]:
            dims = tf.shape(x1)
            x1r = tf.reshape(x1, shape=[dims[0] * dims[1] * dims[2], dims[3], 1])
            x2r = tf.reshape(x2, shape=[dims[0] * dims[1] * dims[2], 1, dims[3]])
            return {"y": tf.matmul(tf.matmul(x1r, x2r), tf.ones_like(x1r))}

        return save_module(path, round4, {"x1": IMAGE, "x2": IMAGE})
    raise ValueError(f"unknown talk model {name!r}")
