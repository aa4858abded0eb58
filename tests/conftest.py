import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))


@pytest.fixture(scope="module")
def cluster():
    """The address of a real Dask ``LocalCluster`` of 2 single-threaded worker processes, one per test module
    that asks for it (decision 29)."""
    import logging

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as local:
        yield local.scheduler_address
