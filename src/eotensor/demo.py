"""``make demo``: serve a small fully-convolutional net over a generated Sentinel-2-like scene.

Generates (once) a 2048 x 2048 4-band int16 raster and a SavedModel under ``demo-output/``, then runs
the same command line an OTBTF user would, with only the program name changed::

    eotensor TensorflowModelServe -source1.il s2.tif -source1.rfieldx 68 -source1.rfieldy 68 \\
        -source1.nodata -10000 -output.bv -1 -model.dir demo_savedmodel -model.fullyconv on \\
        -output.efieldx 64 -output.efieldy 64 -output.names probs -out "probs.tif?&gdal:co:COMPRESS=DEFLATE" float
"""

from __future__ import annotations

import os
import sys
import time

from eotensor.apps.cli import main as cli_main
from eotensor.samples import DEMO_NET_RF, build_demo_model, make_sentinel2_like


def main(directory: str = "demo-output", size: int = 2048) -> int:
    """Build the sample data if missing, serve the model, print where the output is."""
    os.makedirs(directory, exist_ok=True)
    image = os.path.join(directory, "s2_like.tif")
    model = os.path.join(directory, "demo_savedmodel")
    output = os.path.join(directory, "probs.tif")
    if not os.path.exists(image):
        make_sentinel2_like(image, size=size)
    if not os.path.isdir(model):
        build_demo_model(model)
    ef = 64
    rf = ef + DEMO_NET_RF - 1
    argv = [
        "TensorflowModelServe", "-source1.il", image, "-source1.rfieldx", str(rf), "-source1.rfieldy", str(rf),
        "-source1.nodata", "-10000", "-output.bv", "-1",
        "-model.dir", model, "-model.fullyconv", "on", "-output.efieldx", str(ef), "-output.efieldy", str(ef),
        "-output.names", "probs", "-out", f"{output}?&gdal:co:COMPRESS=DEFLATE", "float",
    ]
    print("eotensor " + " ".join(f'"{a}"' if "?" in a else a for a in argv))
    start = time.perf_counter()
    status = cli_main(argv)
    if status == 0:
        print(f"demo output: {os.path.abspath(output)} ({time.perf_counter() - start:.1f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
