"""Resumable runs (issue 15 item 2): what journaling and checkpoints cost against an uninterrupted run.

Two cases, written through the Python API in this process (the model loaded once), each run with resume off,
resume on (checkpoints every 10 s, the default) and resume on with a checkpoint every second (to expose a
checkpoint's own cost): a compute-bound small CNN (PyTorch, 4 -> 32 -> 64 -> 32 -> 1 channels, 3x3 kernels,
RF 9) over a 4096² four-band image, and a pixel-wise model (x * 2 + 1) over an 8192² four-band int16 image, four
float32 bands out (1 GB). Also measured: the process's CPU time, the set-up (journal header: every input's
stamp), and the writing thread's time in the checkpoints (close, reopen; their fsync runs in a background
thread). Runs interleaved, median (and minimum) of --runs; ``sync`` before each run, the previous output deleted.

    PYTHONPATH=src python bench/resume.py [--runs 3] [--data bench/data/resume]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

import eotensor as eot
from eotensor.engine.resume import ResumableWrite
from eotensor.io.geotiff import GeoTiffWriter
from eotensor.testing import write_raster

SPENT = {"checkpoints": 0, "seconds": 0.0, "setup": 0.0}
_checkpoint = GeoTiffWriter.checkpoint


def _timed_checkpoint(self: GeoTiffWriter, sync: bool = True) -> int:
    start = time.perf_counter()
    try:
        return _checkpoint(self, sync)
    finally:
        SPENT["checkpoints"] += 1
        SPENT["seconds"] += time.perf_counter() - start


GeoTiffWriter.checkpoint = _timed_checkpoint  # type: ignore[method-assign]
_setup = ResumableWrite.__init__


def _timed_setup(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        _setup(self, *args, **kwargs)
    finally:
        SPENT["setup"] += time.perf_counter() - start


ResumableWrite.__init__ = _timed_setup  # type: ignore[method-assign]


def cnn_model():
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3),
                              torch.nn.ReLU(), torch.nn.Conv2d(64, 32, 3), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 1, 3)).eval()

    def cnn(x):
        with torch.no_grad():
            y = net(torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2))
        return y.permute(0, 2, 3, 1).numpy()

    return eot.FunctionModel(cnn, ["x"], ["y"])


def pixelwise(x):
    return x * 2 + 1


def inputs(data: Path) -> dict[str, str]:
    data.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    made = {}
    for name, size in (("cnn", 4096), ("pixelwise", 8192)):
        path = data / f"{name}.tif"
        if not path.exists():
            write_raster(path, rng.integers(0, 10000, (4, size, size), dtype=np.int16), nodata=None)
        made[name] = str(path)
    return made


def measure(result, out: Path, resume: bool, every: str | None) -> dict:
    if out.exists():
        out.unlink()
    os.sync()
    if every is None:
        os.environ.pop("EOTENSOR_CHECKPOINT_S", None)
    else:
        os.environ["EOTENSOR_CHECKPOINT_S"] = every
    SPENT.update(checkpoints=0, seconds=0.0, setup=0.0)
    start, cpu = time.perf_counter(), time.process_time()
    result.write(str(out), "float32", resume=resume)
    wall = time.perf_counter() - start
    return {"wall": wall, "cpu": time.process_time() - cpu, **SPENT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent / "data" / "resume")
    args = parser.parse_args()
    paths = inputs(args.data)
    cases = {
        "CNN 4->32->64->32->1 (RF 9) over 4096²": eot.serve(cnn_model(), [eot.source(paths["cnn"], rfield=9)],
                                                      fullyconv=True),
        "pixel-wise x*2+1 over 8192² x 4 bands": eot.serve(eot.FunctionModel(pixelwise, ["x"], ["y"]),
                                                           [eot.source(paths["pixelwise"])]),
    }
    modes = (("resume off", False, None), ("resume on (10 s checkpoints)", True, None),
             ("resume on, 1 s checkpoints", True, "1"))
    rows = []
    for name, result in cases.items():
        result.read((0, 0, 64, 64))  # warm-up: imports, first calls
        measured: dict[str, list[dict]] = {mode: [] for mode, _, _ in modes}
        for _ in range(args.runs):
            for mode, resume, every in modes:  # interleaved, so that drifts in the machine's load hit all three
                measured[mode].append(measure(result, args.data / "out.tif", resume, every))
        base = statistics.median(m["wall"] for m in measured["resume off"])
        for mode, _, _ in modes:
            runs = measured[mode]
            wall = statistics.median(m["wall"] for m in runs)
            checkpoints = statistics.median(m["checkpoints"] for m in runs)
            spent = statistics.median(m["seconds"] for m in runs)
            rows.append({"case": name, "mode": mode, "wall_s": round(wall, 2), "overhead": f"{wall / base - 1:+.1%}",
                         "wall_min_s": round(min(m["wall"] for m in runs), 2),
                         "cpu_s": round(statistics.median(m["cpu"] for m in runs), 2),
                         "setup_ms": round(1000 * statistics.median(m["setup"] for m in runs), 1),
                         "checkpoints": checkpoints, "in_checkpoints_s": round(spent, 3),
                         "per_checkpoint_ms": round(1000 * spent / checkpoints, 1) if checkpoints else None})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| case | mode | wall median (s) | vs resume off | wall min (s) | CPU (s) | set-up (ms) | checkpoints | "
          "writer's time in them (s) | per checkpoint (ms) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['case']} | {row['mode']} | {row['wall_s']} | {row['overhead']} | {row['wall_min_s']} | "
              f"{row['cpu_s']} | {row['setup_ms']} | {row['checkpoints']:g} | {row['in_checkpoints_s']} | "
              f"{row['per_checkpoint_ms'] if row['per_checkpoint_ms'] else '-'} |")


if __name__ == "__main__":
    main()
