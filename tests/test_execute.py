"""Executors: the same sink calls in the same order; threads compute off the calling thread, bounded in flight."""

import threading
import time

import pytest

from eotensor.engine.execute import EXECUTORS, get_executor, run_tiles
from eotensor.engine.tiling import TileShape, plan_tiles
from eotensor.errors import ParameterError
from eotensor.geometry import Axis, Grid

GRID = Grid(Axis(0.5, 1.0, 50), Axis(-0.5, -1.0, 40))


class Recorder:
    """A compute that notes where and how many tiles run at once, and a sink that notes order and thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.compute_threads, self.sunk, self.sink_threads = set(), [], set()

    def compute(self, window):
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.compute_threads.add(threading.get_ident())
        time.sleep(0.002)
        with self.lock:
            self.running -= 1
        return window.size

    def sink(self, size, window):
        assert size == window.size
        self.sunk.append(window)
        self.sink_threads.add(threading.get_ident())


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_threads_compute_off_the_calling_thread_and_sink_in_plan_order(workers):
    plan = plan_tiles(GRID, TileShape(7, 9))
    recorder = Recorder()
    run_tiles(recorder.compute, plan, recorder.sink, "threads", workers)
    assert recorder.sunk == list(plan) and len(plan) == 6 * 6
    assert recorder.sink_threads == {threading.get_ident()}
    assert threading.get_ident() not in recorder.compute_threads
    assert recorder.peak <= workers + 1 and len(recorder.compute_threads) <= workers


def test_sync_is_the_calling_thread_one_tile_at_a_time():
    plan = plan_tiles(GRID, TileShape(16, 16))
    recorder = Recorder()
    run_tiles(recorder.compute, plan, recorder.sink, "sync")
    assert recorder.sunk == list(plan)
    assert recorder.compute_threads == recorder.sink_threads == {threading.get_ident()} and recorder.peak == 1


def test_a_failing_tile_stops_the_run_with_its_error():
    plan = plan_tiles(GRID, TileShape(8, 8))
    failing = list(plan)[5]

    def compute(window):
        if window == failing:
            raise ValueError("tile 5 failed")
        return window.size

    for name in EXECUTORS:
        recorder = Recorder()
        with pytest.raises(ValueError, match="tile 5 failed"):
            run_tiles(compute, plan, recorder.sink, name, 2)
        assert recorder.sunk == list(plan)[:5]


def test_unknown_scheduler_names_the_choices():
    with pytest.raises(ParameterError, match='optim.scheduler: unknown scheduler "SYNC"; expected one of sync, threads'):
        get_executor("SYNC")
