"""The benchmark suite (``make bench``): eotensor vs OTB BandMathX vs the I/O floor, CNN overhead (the U-Net
through TF, ONNX Runtime and PyTorch), memory.

Generates its own data under ``bench/data`` (two Sentinel-2-like 4-band int16 tiles, UTM 31N, 10 m,
a few no-data rows), installs ``otb-bin`` with apt when BandMathX is missing, then runs each
measurement in its own subprocess under ``/usr/bin/time -v`` (wall time and peak RSS), several times,
sequentially, and writes a Markdown table to ``bench/results/<date>.md`` (copy it into
``docs/benchmarks.md``). Every output is checked against NumPy on a window.

Quick subsets: ``make bench ROUNDS=r1 SIZE=4096``; ``ROUNDS`` takes a comma list of
r1 r2 r3 r4 cnn mosaic sweep (or all).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
def ensure_tools() -> None:
    """Install otb-bin (BandMathX) and GNU time with apt when missing."""
    missing = [pkg for tool, pkg in (("otbcli_BandMathX", "otb-bin"), ("/usr/bin/time", "time"))
               if not shutil.which(tool) and not os.path.exists(tool)]
    if missing:
        print(f"installing {' '.join(missing)} with apt ...", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def measure(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``cmd`` under /usr/bin/time -v: (wall seconds, peak RSS in MB, its stderr)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=full_env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr).group(1)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    rss_kb = float(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return seconds, rss_kb / 1024, proc.stderr


def repeat(label: str, cmd: list[str], runs: int, env: dict[str, str] | None = None, output: str = "") -> dict:
    """Median wall time and peak RSS over ``runs`` runs (plus the last JSON line a run printed).

    Before each run the previous ``output`` is deleted and dirty pages are flushed (``sync``), so no run
    pays for another's file removal or write-back.
    """
    times, rss, extra = [], [], ""
    for _ in range(runs):
        if output and os.path.exists(output):
            os.remove(output)
        os.sync()
        t, m, err = measure(cmd, env)
        times.append(t)
        rss.append(m)
        extra = next((line for line in err.splitlines() if line.startswith("{")), extra)
        print(f"  {label}: {t:.2f} s, {m:.0f} MB {extra}", flush=True)
    return {"label": label, "wall": statistics.median(times), "rss": max(rss), "runs": runs, "extra": extra}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", default="all", help="comma list of r1 r2 r3 r4 cnn mosaic sweep, or all")
    parser.add_argument("--size", type=int, default=10980)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-bandmath", action="store_true")
    args = parser.parse_args()
    selected = ["r1", "r2", "r3", "r4", "cnn", "mosaic", "sweep"] if args.rounds == "all" else args.rounds.split(",")

    sys.path.insert(0, str(HERE))
    import cases

    ensure_tools()
    DATA.mkdir(exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    paths = cases.make_inputs(DATA, args.size)
    rows: list[dict] = []
    for name in selected:
        print(f"== {name}", flush=True)
        rows += cases.run_case(name, paths, args, repeat, DATA)
    text = cases.report(rows, args)
    out = RESULTS / f"{datetime.date.today().isoformat()}-{args.size}-{args.rounds.replace(',', '_')}.md"
    out.write_text(text)
    print(text)
    print(f"results: {out} (machine: {platform.machine()}, {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
