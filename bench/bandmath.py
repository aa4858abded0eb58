"""BandMath benchmark (issue 14): eotensor's BandMath/BandMathX apps against OTB's on the talk's round 1.

    python bench/bandmath.py [--size 10980] [--runs 3]

Round 1 of the talk adds 1 to a Sentinel-2-like 4-band int16 tile of ``size``² pixels (``bench/cases.py``
generates it): BandMath computes ``im1b1 + 1`` (BandMath writes one band), BandMathX ``im1 + {1,1,1,1}``
(four). Each command runs in its own subprocess under ``/usr/bin/time -v`` (wall time, peak RSS),
sequentially, ``runs`` times, interleaved (median wall, highest RSS); OTB with
``ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS`` = the core count and the faster of ``-ram 256`` and ``-ram 2048``
(decision 12). Outputs are float32 and compared pixel for pixel (they must be identical).
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

CASES = {"BandMath": "im1b1 + 1", "BandMathX": "im1 + {1,1,1,1}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    import cases
    import numpy as np
    import rasterio

    image = cases.make_inputs(DATA, args.size)["a"]
    otb_env = {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": str(os.cpu_count())}
    summary = {}
    with tempfile.TemporaryDirectory(dir=DATA) as tmp:
        for app, expression in CASES.items():
            outputs = {}
            commands = {"eotensor": [sys.executable, "-m", "eotensor", app, "-il", image, "-exp", expression]}
            for ram in (256, 2048):
                commands[f"OTB -ram {ram}"] = [f"otbcli_{app}", "-il", image, "-exp", expression, "-ram", str(ram)]
            rows: dict[str, list[tuple[float, float]]] = {}
            for _ in range(args.runs):
                for label, command in commands.items():
                    out = os.path.join(tmp, f"{app}-{label.replace(' ', '_')}.tif")
                    if os.path.exists(out):
                        os.remove(out)
                    wall, rss, _ = measure([*command, "-out", out, "float"], otb_env if "OTB" in label else None)
                    rows.setdefault(label, []).append((wall, rss))
                    outputs[label] = out
                    print(f"{app} {label}: {wall:.2f} s, {rss:.0f} MB", flush=True)
            with rasterio.open(outputs["eotensor"]) as ours, rasterio.open(outputs["OTB -ram 256"]) as theirs:
                if not np.array_equal(ours.read(), theirs.read()):
                    raise SystemExit(f"{app}: eotensor and OTB differ")
            result = {label: {"wall_s": statistics.median(w for w, _ in r), "peak_rss_mb": round(max(m for _, m in r))}
                      for label, r in rows.items()}
            best = min(result[f"OTB -ram {ram}"]["wall_s"] for ram in (256, 2048))
            result["eotensor_over_otb"] = round(result["eotensor"]["wall_s"] / best, 3)
            summary[app] = result
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
