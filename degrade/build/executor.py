"""Running the build's work: in this process, on a pool of worker processes, or on a Dask cluster.

Local workers come from a forkserver (spawn where there is none): a fresh process that imports
torch and the build's modules once and forks each worker from there, so workers start with
their imports loaded and with none of the build process's threads (torch and OpenCV thread
pools do not survive a fork of a process that used them). Each runs one torch, OpenCV and BLAS
thread, so N workers use N cores. Jobs are chunks of images (``degrade.build.shard``), not shards, so
two workers share even a one-shard build; while the workers start, the build process runs
jobs itself. Results come back in completion order; the caller writes each shard in input
order and records it when complete, which is what makes an interrupted build resumable.

No worker outlives the build (issue 10 finding 3): on Linux each worker asks the kernel for
SIGKILL when its parent (the forkserver, which exits when the build process is gone) dies
(``prctl(PR_SET_PDEATHSIG)``), and everywhere a watcher thread exits the worker once its
parent pid changes; on any exception in the parent (Ctrl-C, SIGTERM turned into one by the
CLI) the running workers are killed at once. Their shard temp files are never complete and
the next run removes them. The ready signal travels on a plain pipe-backed queue, not a
Manager: a Manager is one more server process that a killed parent would orphan.

The cluster path uses Dask distributed (the optional ``cluster`` extra,
``dask[distributed]>=2024.1``): pure Python, a ``LocalCluster`` on one big machine or a
``Client(address)`` for a real scheduler, and it needs nothing but a filesystem (or object
store) that every worker can write to. One task per shard, so a lost worker costs one shard.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import queue
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ssr_core.errors import ConfigError

CLUSTER_REQUIREMENT = "dask[distributed]>=2024.1"
_LOCAL = re.compile(r"^local:(\d+)$")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PARENT_POLL_S = 0.5  # how often a worker checks that its parent still lives (any platform)


def single_thread() -> None:
    """Use one torch, one OpenCV and one BLAS thread in this process.

    The BLAS pool matters too: numpy's OpenBLAS starts one thread per core and they spin
    between calls, so a "one-thread" build used 1.6 cores for the same wall time, and N workers
    fought over the cores (threadpoolctl is how scikit-learn limits it).
    """
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with :func:`single_thread`'s limits; restore the caller's afterwards."""
    import cv2
    import torch
    from threadpoolctl import threadpool_limits

    threads = (torch.get_num_threads(), cv2.getNumThreads())
    try:
        with threadpool_limits(1):
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
            yield
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])


class Counter:
    """A ticks sink for in-process shards: counts images and reports progress."""

    def __init__(self, report: Callable[[int], Any], value: int) -> None:
        self.report, self.value = report, value

    def put(self, n: int) -> None:
        """Count n more finished images and report the total."""
        self.value += n
        self.report(self.value)


def _die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` (its parent) dies, however it dies.

    PDEATHSIG fires when the *thread* that started the worker ends. A worker's parent is the
    forkserver, which itself exits as soon as the build process is gone (it watches a pipe
    from the build), so a killed build takes its workers with it.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl (another libc): the watcher below still applies
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)

    def watch() -> None:
        # Portable fallback (macOS, a libc without prctl): an orphan is re-parented.
        while os.getppid() == parent_pid:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="ssr-parent-watch", daemon=True).start()


def _die_with_build(lifeline: Any) -> None:
    """Exit this worker as soon as the build process is gone (its end of ``lifeline`` closed).

    A forkserver's workers keep the server alive (each holds its "alive" pipe) and the server
    is their parent, so neither PDEATHSIG nor the parent watch sees the build die: the build
    holds the only write end of ``lifeline``, and the kernel closes it however the build ends.
    """

    def watch() -> None:
        try:
            lifeline.recv()
        except (EOFError, OSError):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="ssr-build-watch", daemon=True).start()


def _init_worker(ready: Any, modules: Sequence[str], lifeline: Any) -> None:
    """Worker initializer: die with the build, one thread, imports loaded, then say ready."""
    import importlib

    _die_with_parent(os.getppid())
    _die_with_build(lifeline)
    single_thread()
    for name in modules:  # no-ops when the forkserver preloaded them
        importlib.import_module(name)
    ready.put(os.getpid())


def _context(modules: Sequence[str]) -> Any:
    """Return the forkserver context (imports paid once, in the server), else spawn.

    A forkserver is a fresh process that imports ``modules`` and then forks each worker: a
    worker starts in milliseconds with torch loaded and no thread of the build process.
    """
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(list(modules))
        return ctx
    return mp.get_context("spawn")


def run_parallel(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int,
                 finished: Callable[[Any], None], *, modules: Sequence[str] = (),
                 help_until_ready: bool = True) -> None:
    """Run ``fn(*job)`` for every job on ``workers`` processes; ``finished(result)`` for each.

    Jobs go to the workers in order, at most two per worker ahead, from a feeder thread (a
    submission waits while the forkserver starts). Starting workers takes seconds (importing
    torch); until the first says it is ready, this process runs the jobs after the workers'
    first ones itself (``help_until_ready``), so a short build does not wait for them. Results arrive in
    completion order. On any exception (Ctrl-C included) pending jobs are cancelled and the
    running ones killed, so no worker outlives the call; workers also die on their own if this
    process is killed.
    """
    ctx = _context(modules)
    ready = ctx.SimpleQueue()  # a pipe: no server process that could be orphaned
    lifeline, keep = ctx.Pipe(duplex=False)  # this process holds the only write end
    before = {p.pid for p in mp.active_children()}
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                  initargs=(ready, tuple(modules), lifeline))
    todo = collections.deque(jobs)
    # The first jobs are the workers' from the start (this process helps with later ones).
    reserved = collections.deque(todo.popleft() for _ in range(min(len(todo), 2 * workers)))
    lock, stop = threading.Lock(), threading.Event()
    results: queue.Queue = queue.Queue()
    submitted: list[cf.Future] = []
    ahead = [0]  # jobs submitted and not yet collected

    def feed() -> None:
        # Lives until the call ends: with spawn, PDEATHSIG fires when the thread that started
        # a worker ends.
        try:
            while not stop.is_set():
                with lock:
                    queue_ = reserved or todo
                    job = queue_.popleft() if queue_ and ahead[0] < 2 * workers else None
                    ahead[0] += job is not None
                if job is None:
                    stop.wait(0.01)
                    continue
                fut = pool.submit(fn, *job)
                submitted.append(fut)
                fut.add_done_callback(results.put)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            results.put(exc)

    feeder = threading.Thread(target=feed, name="ssr-feed", daemon=True)
    feeder.start()
    started = not help_until_ready
    try:
        for _ in range(len(jobs)):
            while True:
                started = started or not ready.empty()
                with lock:
                    job = todo.popleft() if todo and not started else None
                if job is not None:
                    result = fn(*job)
                    break
                try:
                    got = results.get(timeout=0.2)
                except queue.Empty:
                    continue
                if isinstance(got, BaseException):
                    raise got
                with lock:
                    ahead[0] -= 1
                result = got.result()
                break
            finished(result)
        stop.set()
        feeder.join()
        pool.shutdown(wait=True)
    except BaseException:
        stop.set()
        feeder.join(timeout=60)  # a submission may be waiting for the forkserver to start
        for fut in submitted:
            fut.cancel()
        # Waiting for the running jobs would make Ctrl-C or SIGTERM take a whole job.
        for proc in mp.active_children():
            if proc.pid not in before:
                proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        ready.close()
        keep.close()
        lifeline.close()


def single_threaded_call(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` with :func:`single_thread`'s limits (what a cluster task runs).

    A wrapper rather than a worker plugin: it also holds on workers that join the cluster
    after the build started, and setting the thread count is cheap next to a shard.
    """
    single_thread()
    return fn(*args)


def parse_cluster(spec: str) -> tuple[str, int | None]:
    """Split a ``--cluster`` value into ("local", n_workers) or ("address", None).

    >>> parse_cluster("local:4"), parse_cluster("tcp://scheduler:8786")
    (('local', 4), ('address', None))

    Raises:
        ConfigError: ``local:N`` with N < 1, or an empty value.
    """
    spec = spec.strip()
    m = _LOCAL.match(spec)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ConfigError(f"--cluster local:N needs N >= 1 workers, got {spec!r}")
        return "local", n
    if not spec or spec.startswith("local"):
        raise ConfigError(f"--cluster: expected a scheduler address (tcp://host:8786) or "
                          f"local:N, got {spec!r}")
    return "address", None


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ConfigError(
            f"--cluster needs Dask distributed: pip install 'ssr-bench[cluster]' (that is "
            f"{CLUSTER_REQUIREMENT!r}); import failed: {exc}"
        ) from exc
    return distributed


@contextmanager
def cluster_client(spec: str) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``--cluster`` (closing what this call started).

    ``local:N`` starts ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)``
    listening on 127.0.0.1 only (its HTTP server on a free port); any other value is a
    scheduler address (``tcp://host:8786``).

    Raises:
        ConfigError: Dask is not installed, the value is malformed, or no scheduler answers.
    """
    kind, n = parse_cluster(spec)
    distributed = _import_distributed()
    cluster = None
    try:
        if kind == "local":
            cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                               host="127.0.0.1", dashboard_address="127.0.0.1:0")
            client = distributed.Client(cluster)
        else:
            client = distributed.Client(spec)
    except (OSError, TimeoutError, ValueError, RuntimeError) as exc:  # RuntimeError: no nanny
        if cluster is not None:
            cluster.close()
        raise ConfigError(f"--cluster {spec}: cannot connect to a Dask scheduler ({exc})") from exc
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_on_cluster(client: Any, fn: Callable[..., Any], jobs: Sequence[tuple[int, tuple[Any, ...]]],
                   finished: Callable[[Any], None], retries: int = 1) -> dict[int, str]:
    """Run ``fn(*args)`` single-threaded for every ``(index, args)`` job on a Dask cluster.

    One task per job, keyed ``shard-{index}-{build}`` (the random build id keeps two builds on
    one scheduler from sharing results). ``finished(result)`` sees each result in completion
    order. A job that raises is retried ``retries`` times (a worker that dies is retried by the
    scheduler up to its ``allowed-failures``), then reported, not raised: the other jobs go on.
    On any exception from ``finished`` (Ctrl-C included) the pending jobs are cancelled.

    Returns:
        ``{index: "ExceptionType: message"}`` for the jobs that failed.
    """
    distributed = _import_distributed()
    build_id = uuid.uuid4().hex[:8]
    futures = {}
    for index, args in jobs:
        fut = client.submit(single_threaded_call, fn, *args, pure=False, retries=retries,
                            key=f"shard-{index}-{build_id}")
        futures[fut] = index
    failed: dict[int, str] = {}
    try:
        for fut in distributed.as_completed(list(futures)):
            index = futures.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # the task's own error, KilledWorker, CancelledError
                failed[index] = f"{type(exc).__name__}: {exc}"
                continue
            finally:
                # Collected results must not pin the task: a worker lost later would make the
                # scheduler recompute every shard whose result it still held.
                fut.release()
            finished(result)
    except BaseException:
        client.cancel(list(futures))
        raise
    return failed
