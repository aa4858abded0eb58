"""The Dask executor: tiles computed on a ``distributed`` cluster, results sunk in plan order by the caller.

``processes:N`` starts a ``LocalCluster`` of N single-threaded worker processes for the run (closed at the end),
``tcp://HOST:PORT`` connects to a running scheduler, ``dask`` to the one ``DASK_SCHEDULER_ADDRESS`` names, and a
``distributed.Client`` given from Python is used as it is (left open). A local callable cannot travel, so the
executor ships the compute's picklable twin (:func:`~eotensor.engine.execute.with_remote`: a served result's
recipe, which each worker turns into an engine once); only windows and result arrays travel. The calling
thread sinks results in plan order with at most twice the cluster's threads in flight, so its memory stays
flat; a worker that dies has its tiles recomputed elsewhere by Dask (tiles are independent, so the output is
the same), and a tile that fails is reported with the worker that ran it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

from eotensor.engine.progress import Progress
from eotensor.engine.recipe import WORKER_THREADS_ENV
from eotensor.engine.tiling import TilePlan
from eotensor.errors import EotensorError, MissingDependencyError, ParameterError
from eotensor.geometry import Window

NO_RECIPE = ("the dask scheduler runs a served result (its bands, a window of it) read or written on its own, with a "
             "model loaded from a path and file sources; expressions, chained results and several outputs at once "
             "need -optim.scheduler threads or sync")
DASK_TIMEOUT_S = 10
"""Seconds to wait for a Dask scheduler, or for its first worker, before giving up."""


def is_client(value: Any) -> bool:
    """Whether ``value`` is a ``distributed.Client`` (or a subclass; checked without importing distributed)."""
    distributed = sys.modules.get("distributed")
    return distributed is not None and isinstance(value, distributed.Client)


def is_cluster(value: Any) -> bool:
    """Whether ``value`` is a Dask cluster object (``LocalCluster``, dask-jobqueue's...), which needs a client."""
    deploy = sys.modules.get("distributed.deploy")
    return deploy is not None and isinstance(value, deploy.Cluster)


def dask_setup(worker: Any) -> None:
    """Worker preload of the clusters eotensor starts: the worker ignores SIGINT.

    Local workers share the terminal's process group, so Ctrl-C reached each of them too and every one printed
    its own ``KeyboardInterrupt`` traceback; the client alone now handles it and closes the cluster. Run by
    Dask in the worker's main thread (named in ``preload``), for restarted workers too.
    """
    with contextlib.suppress(ValueError):  # not the main thread: nothing to do
        signal.signal(signal.SIGINT, signal.SIG_IGN)


DEFERRED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))
"""The signals held back while a local cluster starts (SIGINT is ignored then)."""


@contextlib.contextmanager
def quiet_start() -> Iterator[None]:
    """Start a ``LocalCluster`` inside: Ctrl-C is ignored meanwhile, SIGTERM and SIGHUP acted on once it is up.

    Interrupted half-way, distributed's start leaves nannies and processes that its exit handlers close with
    tracebacks, and a worker process hit by the terminal's Ctrl-C while importing prints its own. SIGINT is
    set to ignored while the workers are spawned, a disposition they inherit (Python then installs no
    ``KeyboardInterrupt`` handler in them, and the :func:`dask_setup` preload keeps it so); a Ctrl-C in these
    seconds is lost, the next one stops the run. SIGTERM and SIGHUP (batch systems) are only noted, and raised
    again once the cluster is up (or failed): with a handler that raises (the CLI's), the caller's ``with`` then
    closes the cluster cleanly; with the default disposition the process ends there, as it would have. Outside
    the main thread, or where Python cannot restore a handler, nothing changes.
    """
    noted: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in (*DEFERRED, signal.SIGINT)}
    if threading.current_thread() is not threading.main_thread() or None in previous.values():
        yield  # not the main thread, or a handler Python cannot restore: signals are not ours to handle
        return
    for signum in DEFERRED:
        signal.signal(signum, lambda signum, frame: noted.append(signum))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(noted):
            signal.raise_signal(signum)


def _close_quietly(closing: contextlib.ExitStack) -> None:
    """Close ``closing`` (the client, then the cluster) with Ctrl-C ignored: a second press while the workers
    stop would leave them to distributed's exit handlers, which print tracebacks."""
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        closing.close()
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        closing.close()
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def dask_client(address: str | None = None, processes: int = 0, param: str = "optim.scheduler",
                client: Any = None) -> Iterator[Any]:
    """A ``distributed.Client``: ``client`` itself (left open), one connected to the scheduler at ``address``,
    or one on a ``LocalCluster`` of ``processes`` worker processes started for the run and closed at the end."""
    if client is not None:
        if client.status != "running":
            raise ParameterError(f"{param}: the distributed.Client is {client.status}; give an open client")
        yield _with_workers(client, getattr(client.scheduler, "address", "the client's scheduler"), param)
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MissingDependencyError(f"{param}: the dask scheduler needs the dask extra: "
                                     "pip install 'eotensor[dask]'") from None
    if address is None:
        with contextlib.ExitStack() as stack:
            try:
                with quiet_start():  # a signal noted meanwhile is raised here, and the stack closes the rest
                    # The scheduler's HTTP server (health, metrics) on a free port: its default, 8787, warns when
                    # another cluster holds it.
                    # Each worker's model gets its share of the cores (unless -optim.modelthreads says).
                    share = {WORKER_THREADS_ENV: str(max(1, (os.cpu_count() or 1) // processes))}
                    cluster = stack.enter_context(LocalCluster(
                        n_workers=processes, processes=True, threads_per_worker=1, dashboard_address=None,
                        scheduler_kwargs={"dashboard_address": ":0"}, silence_logs=logging.CRITICAL,
                        preload=[__name__], env=share))
                    local = stack.enter_context(Client(cluster))
                    stack.callback(_close_quietly, stack.pop_all())  # both close with Ctrl-C ignored
            except RuntimeError as error:  # e.g. a script without a __main__ guard, which spawned workers re-run
                raise ParameterError(f"{param}: processes:{processes} could not start its worker processes ({error}); "
                                     "a script that starts them must be a file with its code under "
                                     "if __name__ == '__main__':") from None
            yield local
        return
    try:
        remote = Client(address, timeout=DASK_TIMEOUT_S)
    except Exception as error:  # noqa: BLE001 - distributed raises many kinds for one bad address: one line for all
        raise ParameterError(f"{param}: cannot reach the Dask scheduler at {address} within {DASK_TIMEOUT_S} s "
                             f"({str(error).splitlines()[0] if str(error) else type(error).__name__})") from None
    with remote:
        yield _with_workers(remote, address, param)


def _with_workers(client: Any, address: str, param: str) -> Any:
    """``client`` once its scheduler has a worker (a scheduler alone would hold the tasks forever)."""
    if not client.nthreads():
        try:
            client.wait_for_workers(1, timeout=DASK_TIMEOUT_S)
        except TimeoutError:
            raise ParameterError(f"{param}: the Dask scheduler at {address} has no worker (none joined within "
                                 f"{DASK_TIMEOUT_S} s); start workers with: dask worker {address}") from None
    return client


def on_worker(remote: Any, window: Window) -> Any:
    """The Dask task: ``remote(window)``, a failure's message naming the worker that ran it."""
    try:
        return remote(window)
    except Exception as error:  # noqa: BLE001 - any failure: the worker's one line, with its address
        from distributed import get_worker

        where = f"on Dask worker {get_worker().address}"
        if isinstance(error, EotensorError):
            raise type(error)(f"{error}; {where}") from None
        text = str(error).splitlines()[0] if str(error) else ""
        raise EotensorError(f"tile at row {window.row}, column {window.col} failed {where}: "
                            f"{type(error).__name__}: {text:.300}") from None


def run_dask(compute: Any, plan: TilePlan, sink: Any, workers: int | None = None,
             progress: Progress | None = None, *, address: str | None = None, processes: int = 0,
             client: Any = None, param: str = "optim.scheduler") -> None:
    """Compute on Dask workers (``client``, the scheduler at ``address``, or a ``LocalCluster`` of ``processes``
    workers); sink in plan order in the calling thread.

    ``compute`` must carry a picklable ``remote`` twin (:func:`~eotensor.engine.execute.with_remote`); at most
    twice the cluster's threads tiles are in flight (``workers`` is accepted, and ignored). On an error the
    tiles still queued are cancelled and one line is raised here: the worker's own message and its address.
    """
    remote = getattr(compute, "remote", None)
    if remote is None:
        raise ParameterError(f"{param}: {NO_RECIPE}")
    with dask_client(address, processes, param, client) as dask:
        threads = dask.nthreads()
        if progress:
            print(f"{param}: {len(plan)} tiles on {len(threads)} Dask worker(s), {sum(threads.values())} thread(s) "
                  f"(scheduler {dask.scheduler.address})", file=progress.stream)
        limit = max(1, 2 * sum(threads.values()))
        pending: deque[tuple[Any, Window]] = deque()

        def drain(keep: int) -> None:
            while len(pending) > keep:
                future, done = pending.popleft()
                try:
                    result = future.result()
                except EotensorError:
                    raise  # the worker's own one-line message (see on_worker)
                except Exception as error:  # noqa: BLE001 - a worker died 3 times, a lost scheduler: one line
                    text = str(error).splitlines()[0] if str(error) else ""
                    raise EotensorError(f"{param}: the tile at row {done.row}, column {done.col} failed on the Dask "
                                        f"cluster: {type(error).__name__}: {text:.300} (see the workers' logs)") \
                        from None
                sink(result, done)
                if progress:
                    progress.advance()

        try:
            for window in plan:
                pending.append((dask.submit(on_worker, remote, window, pure=False), window))
                drain(limit)
            drain(0)
        finally:
            if pending:
                with contextlib.suppress(Exception):  # the cluster may already be gone
                    dask.cancel([future for future, _ in pending])


__all__ = ["DASK_TIMEOUT_S", "NO_RECIPE", "dask_client", "dask_setup", "is_client", "on_worker", "run_dask"]
