"""Two-model chain benchmark (issue 14): a CNN, then a pixel-wise head, in memory against through a file.

    python bench/chain.py [--size 2048] [--runs 3] [--runtime onnx|tf]

The CNN is the benchmark U-Net (RF 64 / EF 32, 3 softmax bands; ``bench/cases.py`` builds it, with its ONNX
twin), served over the top-left ``size``² window of the 10980² tile; the head is a pixel-wise Python function
(the most probable class, as uint8). Measured, each in its own subprocess under ``/usr/bin/time -v``
(wall time, peak RSS), sequentially, ``runs`` times (median wall, highest RSS):

* ``memory``: ``eot.serve(head, [eot.source(cnn)])``: the head reads the CNN's tiles in memory;
* ``file``: the CNN written to a float32 GeoTIFF, then the head served over that file (two ``write`` calls in
  one process, as a user's script would).

Both maps are compared pixel for pixel (they must be identical).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
sys.path.insert(0, str(HERE))
from run import measure  # noqa: E402 - one copy of the /usr/bin/time measurement

CHILD = '''
import sys, time
import numpy as np
import eotensor as eot
from eotensor.runtimes import FunctionModel

mode, image, model, size, out, tmp = sys.argv[1:7]
size = int(size)
head = FunctionModel(lambda p: {"c": np.argmax(p, axis=-1)[..., None].astype(np.uint8)}, ["p"], ["c"], name="argmax")
start = time.perf_counter()
cnn = eot.serve(model, [eot.source(image, rfield=64)], efield=32, fullyconv=True)
box = f"?&box=0:0:{size}:{size}"
if mode == "memory":
    eot.serve(head, [eot.source(cnn)], fullyconv=True).write(out + box, "uint8")
else:
    step = cnn.write(tmp + box)
    eot.serve(head, [eot.source(step)], fullyconv=True).write(out, "uint8")
print(f"seconds {time.perf_counter() - start:.2f}", file=sys.stderr)
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--runtime", choices=("onnx", "tf"), default="onnx")
    args = parser.parse_args()
    import cases

    paths = cases.make_inputs(DATA, 10980)
    model = paths["onnx_unet"] if args.runtime == "onnx" else paths["unet"]
    results = {}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        outputs = {mode: os.path.join(tmp, f"{mode}.tif") for mode in ("memory", "file")}
        for run in range(args.runs):
            for mode in ("memory", "file"):  # interleaved, so load drifts hit both alike
                step = os.path.join(tmp, "step.tif")
                for path in (outputs[mode], step):
                    if os.path.exists(path):
                        os.remove(path)
                subprocess.run(["sync"], check=False)
                cmd = [sys.executable, "-c", CHILD, mode, paths["a"], model, str(args.size), outputs[mode], step]
                wall, rss, _ = measure(cmd)
                results.setdefault(mode, []).append((wall, rss))
                print(f"run {run + 1} {mode}: {wall:.2f} s, {rss:.0f} MB", flush=True)
        import rasterio

        with rasterio.open(outputs["memory"]) as a, rasterio.open(outputs["file"]) as b:
            same = (a.read() == b.read()).all() and a.transform == b.transform
        if not same:
            raise SystemExit("the in-memory chain and the chain through a file differ")
    summary = {mode: {"wall_s": statistics.median(w for w, _ in rows), "peak_rss_mb": max(r for _, r in rows)}
               for mode, rows in results.items()}
    summary["memory_over_file"] = round(summary["memory"]["wall_s"] / summary["file"]["wall_s"], 3)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
