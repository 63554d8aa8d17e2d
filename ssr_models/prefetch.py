"""Make the next items of an iterator in a background thread while the caller uses this one.

The online stream (:mod:`ssr_models.online`) does part of each batch's work in the training
process: blur, noise and quantization on the training device, and with ``online_jpeg: cpu``
a device -> host round trip for OpenCV. Done inside ``next()`` this runs between training
steps, serially (about 10 ms per paper-config batch on an H200, 5-25% of a step).
:func:`prefetched` runs the producing iterator in one daemon thread, ``depth`` items ahead,
so that work overlaps the step; the caller's ``next()`` then only waits when the producers
really fall behind (which keeps the Trainer's data-wait measure meaningful).

CUDA: the thread issues its work on its own ``torch.cuda.Stream``; an event recorded after
each item is made is waited on by the consumer's current stream (a device-side wait, no
host sync), and every tensor of the item is ``record_stream``-ed to the consumer's stream so
the caching allocator does not hand its memory back to the side stream while the step still
reads it. Host side: the torch ops and OpenCV's codec release the GIL while they run.

Values are unchanged: the same iterator runs the same code in the same order, only in
another thread (the thread copies the caller's grad mode, intra-op thread count and denormal
flushing, per-thread settings that can change float results). On a CPU the thread's torch
ops compete with the step's for the same cores (measured in the README: no gain on 2 cores),
so the online stream turns it on by default on CUDA only. Exceptions raised while
making an item are raised again in the consumer, with their own traceback, at the position
of the item that failed. Closing the returned generator (or garbage-collecting it) stops
the thread: it finishes the item in hand, closes the source iterator and exits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from typing import Any, TypeVar

import torch

from ssr_core.errors import ConfigError

__all__ = ["prefetched"]

T = TypeVar("T")
_END = object()
_POLL_S = 0.05  # how often a blocked thread looks at the stop flag
_JOIN_S = 10.0  # at most this long for the item in hand at shutdown (then left, daemon)


@dataclasses.dataclass
class _Failure:
    error: BaseException


def _tensors(item: Any) -> Iterator[torch.Tensor]:
    """Yield the tensors inside ``item`` (tensors, dataclasses, tuples, lists, dicts)."""
    if isinstance(item, torch.Tensor):
        yield item
    elif dataclasses.is_dataclass(item) and not isinstance(item, type):
        for f in dataclasses.fields(item):
            yield from _tensors(getattr(item, f.name))
    elif isinstance(item, (tuple, list)):
        for x in item:
            yield from _tensors(x)
    elif isinstance(item, dict):
        for x in item.values():
            yield from _tensors(x)


def _flushes_denormals() -> bool:
    """Whether this thread flushes float32 denormals to zero (``torch.set_flush_denormal``)."""
    # The flag lives in the CPU's per-thread control register and torch has no getter:
    # a denormal that survives a multiplication by one says it is off.
    return float(torch.tensor([1e-39], dtype=torch.float32).mul(1.0)) == 0.0


def prefetched(items: Iterable[T], depth: int,
               device: torch.device | str = "cpu") -> Generator[T, None, None]:
    """Yield ``items`` in order, made up to ``depth`` ahead in a background thread.

    Args:
        items: The producing iterable; iterated (and closed, if it is a generator) only in
            the background thread.
        depth: Items made ahead and held ready (>= 0; 0 = no thread, ``items`` as they are).
        device: Where the items' tensors are used; CUDA gives the thread its own stream.

    Raises:
        ConfigError: ``depth`` < 0.
        Exception: Whatever making an item raised, when the consumer reaches that item.
    """
    if depth < 0:
        raise ConfigError(f"prefetch depth must be >= 0, got {depth}")
    if depth == 0:
        yield from items
        return
    device = torch.device(device)
    side = torch.cuda.Stream(device) if device.type == "cuda" else None
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    grad, flush, threads = torch.is_grad_enabled(), _flushes_denormals(), torch.get_num_threads()

    def put(entry: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        source = iter(items)
        torch.set_flush_denormal(flush)
        # OpenMP's team size is per thread: a new thread starts at the process default, not
        # at the caller's setting, and the team size can change how reductions add up.
        torch.set_num_threads(threads)
        try:
            with torch.set_grad_enabled(grad), (
                    torch.cuda.stream(side) if side is not None else contextlib.nullcontext()):
                for item in source:
                    event = None
                    if side is not None:
                        event = torch.cuda.Event()
                        event.record(side)
                    if not put((item, event)):
                        return
            put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="ssr-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                entry = ready.get(timeout=1.0)
            except queue.Empty:
                if thread.is_alive() or not ready.empty():
                    continue
                raise RuntimeError("the prefetch thread ended without a result") from None
            if entry is _END:
                return
            if isinstance(entry, _Failure):
                raise entry.error
            item, event = entry
            if event is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(event)
                for t in _tensors(item):
                    if t.device.type == "cuda":
                        t.record_stream(current)
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # let a thread blocked on a full queue see the flag at once
                ready.get_nowait()
        thread.join(_JOIN_S)
