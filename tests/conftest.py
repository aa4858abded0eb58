import pathlib
import signal
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def pytest_configure(config):
    """A run started in the background by a non-interactive shell (``make test &``) inherits SIGINT ignored, and
    so would every process a test starts: the Ctrl-C tests would see no Ctrl-C. Python's own handler is put back,
    as in a terminal (processes started from here then get the default disposition)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="module")
def cluster():
    """The address of a real Dask ``LocalCluster`` of 2 single-threaded worker processes, one per test module
    that asks for it (decision 29)."""
    import logging

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  silence_logs=logging.CRITICAL) as local:
        yield local.scheduler_address
