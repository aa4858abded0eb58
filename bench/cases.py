"""Benchmark cases: data, models and one function per measured case (used by bench/run.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
import rasterio.windows
import runtime_models

from eotensor.samples import DEMO_NET_RF, build_demo_model, build_talk_model, make_sentinel2_like

HERE = Path(__file__).resolve().parent
PY = sys.executable
SERVE = [PY, "-m", "eotensor.apps.cli", "TensorflowModelServe"]
BMX_ENV = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(os.cpu_count() or 2)}

ROUNDS = {
    # name: (talk model, BandMathX expression (decision 12), number of inputs, output bands, NumPy answer)
    "r1": ("add_one", "im1+{1;1;1;1}", 1, 4, lambda a, b: a + 1),
    "r2": ("norm", "sqrt(im1*im1')", 1, 1, lambda a, b: np.sqrt((a * a).sum(0, keepdims=True))),
    "r3": ("scalar_product", "im1*im2'", 2, 1, lambda a, b: (a * b).sum(0, keepdims=True)),
    "r4": ("matrix_round4", "((im1'*im2)*{1, 1, 1, 1}')'", 2, 4, lambda a, b: a * b.sum(0, keepdims=True)),
}


def make_inputs(data: Path, size: int) -> dict[str, str]:
    """Two Sentinel-2-like tiles, the talk's SavedModels, the demo CNN and the 40 000² mosaic (cached)."""
    data.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        path = data / f"s2_{name}_{size}.tif"
        if not path.exists():
            print(f"generating {path} ...", flush=True)
            make_sentinel2_like(path, size=size, seed=seed)
        paths[name] = str(path)
    for talk in ("add_one", "norm", "scalar_product", "matrix_round4"):
        path = data / f"model_{talk}"
        if not path.exists():
            build_talk_model(talk, path)
        paths[talk] = str(path)
    for key, side in (("small", 4000), ("sweep", 4096)):
        path = data / f"s2_a_{side}.tif"
        if not path.exists():
            make_sentinel2_like(path, size=side, seed=1)
        paths[key] = str(path)
    mosaic = data / f"mosaic_40000_{size}.vrt"
    if not mosaic.exists():
        write_mosaic_vrt(mosaic, paths["a"], 40000)
    paths["mosaic"] = str(mosaic)
    for round_name in ROUNDS:  # the same rounds through ONNX Runtime and PyTorch, when installed
        for kind, suffix, builder in (("onnx", "onnx", "build_onnx_round"), ("torch", "pt2", "build_torch_round")):
            path = data / f"model_{round_name}.{suffix}"
            if not path.exists() and importlib.util.find_spec("onnx" if kind == "onnx" else "torch"):
                getattr(runtime_models, builder)(round_name, path)
            if path.exists():
                paths[f"{kind}_{round_name}"] = str(path)
    unet = data / "model_unet"
    if not unet.exists():
        build_unet(unet)
    paths["unet"] = str(unet)
    for kind, suffix, builder in (("onnx", "onnx", "build_onnx_unet"), ("torch", "pt2", "build_torch_unet")):
        path = data / f"model_unet.{suffix}"  # the SavedModel's weights, checked against it when built
        if not path.exists() and importlib.util.find_spec(kind):
            getattr(runtime_models, builder)(unet, path)
        if path.exists():
            paths[f"{kind}_unet"] = str(path)
    demo = data / "model_demo"
    if not demo.exists():
        build_demo_model(demo)
    paths["demo"] = str(demo)
    return paths


def write_mosaic_vrt(path: Path, tile: str, size: int) -> None:
    """A size x size VRT mosaic that repeats ``tile`` (the same file) on a grid."""
    with rasterio.open(tile) as ds:
        w, h, count, dtype, transform, crs = ds.width, ds.height, ds.count, ds.dtypes[0], ds.transform, ds.crs
    gdal_type = {"int16": "Int16", "uint16": "UInt16", "float32": "Float32"}[dtype]
    bands = []
    for b in range(1, count + 1):
        sources = []
        for r0 in range(0, size, h):
            for c0 in range(0, size, w):
                sources.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{os.path.abspath(tile)}</SourceFilename>'
                    f"<SourceBand>{b}</SourceBand><SrcRect xOff='0' yOff='0' xSize='{w}' ySize='{h}'/>"
                    f"<DstRect xOff='{c0}' yOff='{r0}' xSize='{w}' ySize='{h}'/></SimpleSource>")
        bands.append(f'<VRTRasterBand dataType="{gdal_type}" band="{b}"><NoDataValue>-10000</NoDataValue>'
                     + "".join(sources) + "</VRTRasterBand>")
    gt = ", ".join(str(v) for v in transform.to_gdal())
    path.write_text(f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{crs.to_wkt()}</SRS>'
                    f"<GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>")


def unet_keras():
    """A small U-Net-like FCN (~270k parameters): RF 64 / EF 32 in OTBTF terms (16-pixel crop per side).

    Built with a fixed seed; ``runtime_models`` rebuilds the same network for ONNX Runtime and PyTorch.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    x = keras.Input(shape=(None, None, 4), name="x")
    h0 = layers.Rescaling(1 / 10000)(x)

    def block(t, n):
        t = layers.Conv2D(n, 3, padding="same", activation="relu")(t)
        return layers.Conv2D(n, 3, padding="same", activation="relu")(t)

    e1 = block(h0, 24)
    e2 = block(layers.MaxPooling2D()(e1), 48)
    e3 = block(layers.MaxPooling2D()(e2), 96)
    d2 = block(layers.Concatenate()([layers.UpSampling2D()(e3), e2]), 48)
    d1 = block(layers.Concatenate()([layers.UpSampling2D()(d2), e1]), 24)
    logits = layers.Conv2D(3, 1, activation="softmax")(d1)
    y = layers.Cropping2D(16)(logits)
    return keras.Model({"x": x}, {"y": y})


def build_unet(path: Path) -> None:
    """The U-Net of :func:`unet_keras` exported as a SavedModel (input "x" NHWC, output "y")."""
    model = unet_keras()
    print(f"U-Net parameters: {model.count_params()}", flush=True)
    model.export(str(path), verbose=False)


def check_window(path: str, inputs: list[str], answer, rows=(1000, 1256), cols=(2000, 2256), rtol=1e-5) -> None:
    """A window of the output must equal NumPy's answer computed from the inputs (float64)."""
    window = (rows, cols)
    data = []
    for p in inputs:
        with rasterio.open(p) as ds:
            data.append(ds.read(window=window).astype(np.float64))
    with rasterio.open(path) as ds:
        got = ds.read(window=window).astype(np.float64)
    want = answer(data[0], data[-1])
    if not np.allclose(got, want, rtol=rtol, atol=1e-2):
        raise AssertionError(f"{path}: differs from NumPy (max abs diff {np.abs(got - want).max():g})")


def run_case(name: str, paths: dict[str, str], args, repeat, out_dir: Path) -> list[dict]:
    """Measure one case; return result rows."""
    if name in ROUNDS:
        return run_round(name, paths, args, repeat, out_dir)
    if name == "cnn":
        return run_cnn(paths, args, repeat, out_dir)
    if name == "mosaic":
        return run_mosaic(paths, args, repeat, out_dir)
    if name == "sweep":
        return run_sweep(paths, args, repeat, out_dir)
    raise SystemExit(f"unknown case {name}")


def run_round(name: str, paths: dict[str, str], args, repeat, out_dir: Path) -> list[dict]:
    talk, expression, n_inputs, bands, answer = ROUNDS[name]
    inputs = [paths["a"], paths["b"]][:n_inputs]
    src_args = []
    for i, p in enumerate(inputs, start=1):
        src_args += [f"-source{i}.il", p]
    out = str(out_dir / f"{name}.tif")
    rows = []
    serve = [*SERVE, *src_args, "-model.fullyconv", "on", "-optim.disabletiling", "on"]
    tf_cmd = [*serve, "-model.dir", paths[talk], "-out", out]
    rows.append(repeat(f"{name} eotensor TF SavedModel", tf_cmd, args.runs, output=out))
    check_window(out, inputs, answer)
    rows.append(repeat(f"{name} eotensor TF SavedModel + XLA", [*tf_cmd, "-model.jit", "on"], args.runs, output=out))
    check_window(out, inputs, answer)
    for kind, label in (("onnx", "ONNX Runtime"), ("torch", "PyTorch .pt2")):
        if f"{kind}_{name}" in paths:
            cmd = [*serve, "-model.dir", paths[f"{kind}_{name}"], "-out", out]
            rows.append(repeat(f"{name} eotensor {label}", cmd, args.runs, output=out))
            check_window(out, inputs, answer)
    functions = f"{HERE / 'functions.py'}::{name}"
    py_cmd = [*serve, "-model.dir", functions, "-out", out]
    rows.append(repeat(f"{name} eotensor Python/NumExpr", py_cmd, args.runs, output=out))
    check_window(out, inputs, answer)
    if not args.skip_bandmath:
        for ram in (256, 2048):
            cmd = ["otbcli_BandMathX", "-il", *inputs, "-exp", expression, "-out", out, "float", "-ram", str(ram)]
            rows.append(repeat(f"{name} BandMathX -ram {ram}", cmd, args.runs, BMX_ENV, output=out))
            check_window(out, inputs, answer, rtol=1e-4)
    floor = [PY, str(HERE / "io_floor.py"), "--inputs", *inputs, "--bands", str(bands), "--out", out]
    rows.append(repeat(f"{name} I/O floor", floor, args.runs, output=out))
    os.remove(out)
    return rows


CNN_RUNTIMES = (("unet", "TF SavedModel"), ("onnx_unet", "ONNX Runtime"), ("torch_unet", "PyTorch .pt2"))


def run_cnn(paths: dict[str, str], args, repeat, out_dir: Path) -> list[dict]:
    """The U-Net over a window of tile A through each runtime: wall time vs time inside the model's calls.

    Every runtime's output must agree with the SavedModel's, pixel by pixel (:func:`check_same`).
    """
    size = min(args.size, 4096)
    reference = str(out_dir / "cnn_tf.tif")
    out = str(out_dir / "cnn.tif")
    rows = []
    for key, label in CNN_RUNTIMES:
        if key not in paths:
            print(f"  cnn: {label} skipped (its runtime is not installed)", flush=True)
            continue
        target = reference if key == "unet" else out
        cmd = [PY, str(HERE / "cnn.py"), paths["a"], paths[key], str(size), target]
        rows.append(repeat(f"cnn U-Net RF 64 / EF 32 over {size}x{size} {label}", cmd, args.runs, output=target))
        if target != reference:
            check_same(out, reference, f"{label} vs TF SavedModel")
            os.remove(out)
    os.remove(reference)
    return rows


def check_same(path: str, reference: str, what: str, rtol: float = 1e-5, rows: int = 256) -> float:
    """Every pixel of ``path`` must equal ``reference``'s within ``rtol`` x the reference's largest value (read in
    strips of ``rows``); returns the largest difference (printed)."""
    diff = scale = 0.0
    with rasterio.open(reference) as ref, rasterio.open(path) as ds:
        if (ds.width, ds.height, ds.count) != (ref.width, ref.height, ref.count):
            raise AssertionError(f"{what}: {path} is {ds.width}x{ds.height}x{ds.count}, the reference "
                                 f"{ref.width}x{ref.height}x{ref.count}")
        for row in range(0, ref.height, rows):
            window = rasterio.windows.Window(0, row, ref.width, min(rows, ref.height - row))
            want = ref.read(window=window).astype(np.float64)
            got = ds.read(window=window).astype(np.float64)
            diff = max(diff, float(np.abs(got - want).max()))
            scale = max(scale, float(np.abs(want).max()))
    print(f"  {what}: max |difference| {diff:.3g} over {ref.width}x{ref.height} (largest value {scale:.3g})",
          flush=True)
    if not diff <= rtol * scale:
        raise AssertionError(f"{what}: {path} differs from {reference} by {diff:g} (> {rtol:g} x {scale:g})")
    return diff


def run_mosaic(paths: dict[str, str], args, repeat, out_dir: Path) -> list[dict]:
    """Peak RSS of r1 (TF) over a 40 000-wide window of the 40 000² mosaic vs over a 4 000² raster."""
    out = str(out_dir / "mosaic.tif")
    rows = []
    for label, src, box in (("4000x4000 raster", paths["small"], ""),
                            ("40000x40000 mosaic, 40000x2048 window", paths["mosaic"], "?&box=0:0:40000:2048")):
        cmd = [*SERVE, "-source1.il", src, "-model.dir", paths["add_one"], "-model.fullyconv", "on",
               "-out", out + box]
        rows.append(repeat(f"mosaic r1 TF over {label}", cmd, 1, output=out))
        os.remove(out)
    return rows


def run_sweep(paths: dict[str, str], args, repeat, out_dir: Path) -> list[dict]:
    """The demo CNN (EF 64) over a 4096² raster at several tile sizes."""
    out = str(out_dir / "sweep.tif")
    rf = 64 + DEMO_NET_RF - 1
    rows = []
    for tile in ("auto", 64, 128, 256, 512, 1024, 2048):
        cmd = [*SERVE, "-source1.il", paths["sweep"], "-source1.rfieldx", str(rf), "-source1.rfieldy", str(rf),
               "-model.dir", paths["demo"], "-model.fullyconv", "on", "-output.efieldx", "64",
               "-output.efieldy", "64", "-out", out]
        if tile != "auto":
            cmd += ["-optim.tilesizex", str(tile), "-optim.tilesizey", str(tile)]
        rows.append(repeat(f"sweep demo CNN 4096² tiles {tile}", cmd, args.runs, output=out))
        os.remove(out)
    return rows


def report(rows: list[dict], args) -> str:
    """Markdown: machine, versions, date, every measurement and the ratios the goals speak of."""
    import datetime

    import tensorflow as tf

    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    otb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "otb-bin"], capture_output=True, text=True).stdout
    lines = [
        f"Run {datetime.date.today()} on {platform.node()}: {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, rasterio {rasterio.__version__}, "
        f"GDAL {rasterio.__gdal_version__}, OTB {otb or 'n/a'}; inputs {args.size}x{args.size} 4-band int16; "
        f"median of {args.runs} run(s).", "",
        "| case | wall (s) | peak RSS (MB) | extra |", "|---|---:|---:|---|",
    ]
    by_label = {r["label"]: r for r in rows}
    for r in rows:
        extra = r.get("extra", "")
        lines.append(f"| {r['label']} | {r['wall']:.2f} | {r['rss']:.0f} | {extra} |")
    ratios = []
    for name in ROUNDS:
        tf_row = by_label.get(f"{name} eotensor TF SavedModel")
        py_row = by_label.get(f"{name} eotensor Python/NumExpr")
        floor = by_label.get(f"{name} I/O floor")
        bmx = [by_label[k] for k in (f"{name} BandMathX -ram 256", f"{name} BandMathX -ram 2048") if k in by_label]
        best = min(bmx, key=lambda r: r["wall"]) if bmx else None
        if tf_row and floor:
            part = f"| {name} | {tf_row['wall'] / floor['wall']:.2f} | {py_row['wall'] / floor['wall']:.2f} |"
            part += f" {tf_row['wall'] / best['wall']:.3f} | {py_row['wall'] / best['wall']:.3f} |" if best else " | |"
            ratios.append(part)
    if ratios:
        lines += ["", "| round | TF / floor | Python / floor | TF / BandMathX | Python / BandMathX |",
                  "|---|---:|---:|---:|---:|", *ratios]
    return "\n".join(lines) + "\n"


def cnn_main() -> None:
    """bench/cnn.py entry: serve the U-Net (any runtime) over a window; print total vs in-model seconds.

    ``cnn.py IMAGE MODEL SIZE [OUT]``: the output is kept in OUT when given, else written to a temporary
    file and removed.
    """
    import time

    import eotensor as eot

    image, model, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    keep = len(sys.argv) > 4
    out = Path(sys.argv[4]) if keep else Path(os.environ.get("TMPDIR", "/tmp")) / "eotensor_bench_cnn.tif"
    start = time.perf_counter()
    result = eot.serve(model, [eot.source(image, rfield=64)], efield=32, fullyconv=True)
    loaded = time.perf_counter()
    side = min(size, result.grid.width, result.grid.height)
    result.write(f"{out}?&box=0:0:{side}:{side}")
    end = time.perf_counter()
    inside = result.engine.model_seconds
    print(json.dumps({"load": round(loaded - start, 2), "serve": round(end - loaded, 2),
                      "in_model": round(inside, 2), "outside_serving": round(1 - inside / (end - loaded), 3),
                      "outside_all": round(1 - inside / (end - start), 3), "calls": result.engine.model_calls,
                      "tile": str(result.tile_shape())}), file=sys.stderr)
    if not keep:
        out.unlink()
