"""Batches over DataLoader workers: each batch made by exactly one worker, order kept.

Shared by the shard stream (:mod:`ssr_models.data`) and the online stream
(:mod:`ssr_models.online`). A *batch source* has two halves:

* ``plan(epoch, batch)`` yields ``(epoch, batch index, work)`` forever from a position. It
  must be cheap and deterministic (undecoded samples, indices, seeds): every worker runs it
  in full, so that all agree on what batch ``k`` is without talking to each other.
* ``make(work)`` does the expensive part (decode, crop, draw, collate) and returns the batch.

Worker ``w`` of ``n`` makes only the planned items ``k`` with ``k % n == w``; that is the
order in which ``torch.utils.data.DataLoader`` collects from its workers (round robin, each
worker's items in order), so the main process sees the batches in plan order for any ``n``,
each sample is decoded by one worker, once, and throughput grows with workers as long as
``plan`` stays cheap next to ``make`` (shards: tar headers against PNG decoding, see
``bench/train.py --loader``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ssr_core.errors import ConfigError

__all__ = ["BatchSource", "LoaderOptions", "iterate", "philox", "worker_share"]

Planned = tuple[int, int, Any]


def philox(*words: int) -> np.random.Generator:
    """Return the generator seeded by ``words`` (seed, epoch or step, ..., a stream tag).

    Streams use distinct tags so that generators drawn from the same position never coincide.
    """
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(list(words))))


class BatchSource(Protocol):
    """What :func:`iterate` runs: a cheap deterministic plan and an expensive ``make``."""

    def plan(self, epoch: int, batch: int) -> Iterator[Planned]:
        """Yield ``(epoch, batch, work)`` from a position, forever."""

    def make(self, work: Any) -> Any:
        """Turn one planned ``work`` item into a batch (in a worker)."""


@dataclass(frozen=True)
class LoaderOptions:
    """Worker processes, prefetching and pinned memory of a stream.

    Attributes:
        num_workers: DataLoader worker processes (0 = make batches in the calling process).
        prefetch_factor: Batches each worker keeps ready ahead (DataLoader's; workers > 0).
        pin_memory: Pin batches in page-locked memory so that ``batch.to("cuda",
            non_blocking=True)`` overlaps the copy with compute (CUDA training only).
    """

    num_workers: int = 0
    prefetch_factor: int = 2
    pin_memory: bool = False

    def __post_init__(self) -> None:
        if self.num_workers < 0 or self.prefetch_factor < 1:
            raise ConfigError(f"need num_workers >= 0 and prefetch_factor >= 1, got "
                              f"{self.num_workers}, {self.prefetch_factor}")


def worker_share(source: BatchSource, epoch: int, batch: int, worker: int,
                 num_workers: int) -> Iterator[Planned]:
    """Yield ``(epoch, batch, made)`` for the planned items ``k % num_workers == worker``."""
    for k, (e, b, work) in enumerate(source.plan(epoch, batch)):
        if k % num_workers == worker:
            yield e, b, source.make(work)


def _as_is(item: Any) -> Any:
    return item


def _pinned(items: Iterator[Planned]) -> Iterator[Planned]:
    for e, b, made in items:
        yield e, b, made.pin_memory()


class _WorkerView(torch.utils.data.IterableDataset):  # type: ignore[type-arg]
    """A source as seen from one DataLoader worker (its share of the planned batches)."""

    def __init__(self, source: BatchSource, epoch: int, batch: int) -> None:
        self.source, self.epoch, self.batch = source, epoch, batch

    def __iter__(self) -> Iterator[Planned]:
        info = torch.utils.data.get_worker_info()
        worker, count = (0, 1) if info is None else (info.id, info.num_workers)
        return worker_share(self.source, self.epoch, self.batch, worker, count)


def iterate(source: BatchSource, epoch: int, batch: int,
            options: LoaderOptions) -> Iterator[Planned]:
    """Yield ``(epoch, batch, made)`` in plan order from a position, with ``options``' workers.

    The items are the same for any ``num_workers`` (only who makes them changes).
    """
    if options.num_workers == 0:
        items = worker_share(source, epoch, batch, 0, 1)
        return _pinned(items) if options.pin_memory else items
    loader = torch.utils.data.DataLoader(
        _WorkerView(source, epoch, batch), batch_size=None, num_workers=options.num_workers,
        collate_fn=_as_is, pin_memory=options.pin_memory,
        prefetch_factor=options.prefetch_factor)
    return iter(loader)
