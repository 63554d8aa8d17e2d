"""Running shards: in this process, or on a pool of worker processes with live progress.

Workers are spawned (not forked: torch and OpenCV thread pools do not survive a fork) and run
one torch/OpenCV thread each, so N workers use N cores. Results come back in completion order;
the caller records each as it arrives, which is what makes an interrupted build resumable.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import queue
from collections.abc import Callable, Sequence
from typing import Any


def single_thread() -> None:
    """Use one torch and one OpenCV thread in this process."""
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


class Counter:
    """A ticks sink for in-process shards: counts images and reports progress."""

    def __init__(self, report: Callable[[int], Any], value: int) -> None:
        self.report, self.value = report, value

    def put(self, n: int) -> None:
        """Count n more finished images and report the total."""
        self.value += n
        self.report(self.value)


def run_parallel(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]], workers: int,
                 finished: Callable[[Any], None], report: Callable[[int], Any],
                 done_images: int) -> None:
    """Run ``fn(*job, ticks)`` for every job on ``workers`` processes.

    ``fn`` puts 1 on ``ticks`` per finished image; ``report(total)`` sees the running count and
    ``finished(result)`` each result. On any exception (Ctrl-C included) pending jobs are
    cancelled and running ones are waited for, so no worker outlives the call.
    """
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        ticks = manager.Queue()
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=single_thread)
        try:
            pending = {pool.submit(fn, *job, ticks) for job in jobs}
            while pending:
                done, pending = cf.wait(pending, timeout=0.2, return_when=cf.FIRST_COMPLETED)
                while True:
                    try:
                        done_images += ticks.get_nowait()
                    except queue.Empty:
                        break
                report(done_images)
                for fut in done:
                    finished(fut.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
