"""Training and validation batches from shard sets: aligned crops, reproducible and resumable.

Order and randomness (DESIGN.md section 5): nothing depends on worker ids, wall time or
global RNG state. For epoch ``e``:

* the shard order is a permutation drawn from ``(seed, e)`` (the same on every rank);
* with ``resampled=True`` each rank instead draws shards with replacement from
  ``(seed, e, rank)``; an epoch is then ``epoch_samples`` samples;
* samples pass through a shuffle buffer seeded by ``(seed, e, rank)``;
* a sample's crop offset comes from ``(seed, e, key, occurrence)``, ``occurrence`` counting
  repeats of a key within the epoch (resampling can draw a shard twice).

Splitting across DDP ranks (like ``wds.split_by_node``, but deterministic and exact): with at
least as many shards as ranks each rank reads the shards ``order[rank::world_size]``
(disjoint; ranks may see different sample counts, harmless for step-based training); with
fewer shards every rank reads them all and keeps samples ``i % world_size == rank``.
Resampled streams draw independently per rank (disjoint only in expectation, as in WebDataset).

Splitting across DataLoader workers is by batch: the k-th batch a loader yields comes from
worker ``k % num_workers`` (the DataLoader's round robin), and every worker reads the rank's
sample sequence but crops and collates only its own batches. The batches are therefore the
same for any ``num_workers``, at the cost of decoding each sample in every worker; use
``num_workers`` <= 2-4 or pre-cropped shards when decoding dominates.

The position (epoch, next batch) is what ``state_dict`` saves; resuming replays the
current epoch's sample sequence without cropping up to that batch, then continues exactly.
An epoch's incomplete last batch is dropped so every step sees ``batch_size`` samples.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from webdataset.shardlists import single_node_only, split_by_worker

from ssr_datasets.errors import ConfigError, InputError
from ssr_datasets.manifest import read_manifest
from ssr_datasets.reader import check_shard_checksums, expand_urls, open_shards, shard_urls
from ssr_datasets.schema import Sample

from .batch import Batch, collate

__all__ = ["TrainingStream", "aligned_crop", "center_crop", "random_crop", "validation_batches"]

# Distinct stream tags so the generators drawn from the same (seed, epoch) never coincide.
_TAG_ORDER, _TAG_RESAMPLE, _TAG_SHUFFLE, _TAG_CROP = 1, 2, 3, 4


def _rng(*words: int) -> np.random.Generator:
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(list(words))))


def _key_hash(key: str) -> int:
    """Stable 64-bit hash of a sample key (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def _resolve(shards: str | Path | Iterable[str]) -> list[str]:
    urls = shard_urls(shards) if isinstance(shards, (str, Path)) else [str(u) for u in shards]
    urls = expand_urls(urls)
    if not urls:
        raise InputError(str(shards), "no shards to read")
    return urls


def _read(urls: list[str]) -> Iterator[Sample]:
    """Yield the samples of ``urls`` in order, with WebDataset's own splitters removed.

    We split by rank and worker ourselves; WebDataset would otherwise give a worker only
    every n-th shard of the list and refuse to run under torch.distributed.
    """
    dataset = open_shards(urls)
    dataset.pipeline = [stage for stage in dataset.pipeline
                        if stage is not single_node_only and stage is not split_by_worker]
    return iter(dataset)


def aligned_crop(sample: Sample, crop_hr: int, top_lr: int, left_lr: int) -> Sample:
    """Crop HR, nearness (crop_hr px) and LR, kernel (crop_hr/s px) at LR offset (top, left).

    The HR offset is ``s * (top_lr, left_lr)``, so each cropped LR pixel keeps the HR pixels
    and the kernel it was made from (and ``delta`` keeps its meaning).

    Raises:
        ConfigError: ``crop_hr`` not a positive multiple of the sample's scale.
        InputError: The crop does not fit in the sample.
    """
    s = int(sample.meta["scale"])
    if crop_hr <= 0 or crop_hr % s:
        raise ConfigError(f"crop_hr must be a positive multiple of the scale {s}, got {crop_hr}")
    c = crop_hr // s
    h_lr, w_lr = sample.lr.shape[:2]
    if not (0 <= top_lr <= h_lr - c and 0 <= left_lr <= w_lr - c):
        raise InputError(f"sample {sample.key!r}",
                         f"crop of {crop_hr} HR px at LR ({top_lr}, {left_lr}) does not fit "
                         f"in HR {sample.hr.shape[0]}x{sample.hr.shape[1]} (scale {s})")
    y, x = top_lr * s, left_lr * s
    meta = dict(sample.meta, crop_in_sample={"top": y, "left": x, "size": crop_hr})
    return Sample(key=sample.key,
                  hr=sample.hr[y:y + crop_hr, x:x + crop_hr],
                  lr=sample.lr[top_lr:top_lr + c, left_lr:left_lr + c],
                  nearness=sample.nearness[y:y + crop_hr, x:x + crop_hr],
                  kernel=sample.kernel[:, top_lr:top_lr + c, left_lr:left_lr + c],
                  meta=meta)


def _room(sample: Sample, crop_hr: int) -> tuple[int, int]:
    s = int(sample.meta["scale"])
    h_lr, w_lr = sample.lr.shape[:2]
    c = crop_hr // s
    if h_lr < c or w_lr < c:
        raise InputError(f"sample {sample.key!r}",
                         f"HR {sample.hr.shape[0]}x{sample.hr.shape[1]} is smaller than the "
                         f"{crop_hr} px crop; lower crop_hr or rebuild with larger images")
    return h_lr - c, w_lr - c


def random_crop(sample: Sample, crop_hr: int, rng: np.random.Generator) -> Sample:
    """Crop ``crop_hr`` HR px at a uniform offset that is a multiple of the scale."""
    dy, dx = _room(sample, crop_hr)
    return aligned_crop(sample, crop_hr, int(rng.integers(dy + 1)), int(rng.integers(dx + 1)))


def center_crop(sample: Sample, crop_hr: int) -> Sample:
    """Crop ``crop_hr`` HR px around the centre (offset rounded down to a multiple of s)."""
    dy, dx = _room(sample, crop_hr)
    return aligned_crop(sample, crop_hr, dy // 2, dx // 2)


def _shuffled(samples: Iterator[Sample], size: int, rng: np.random.Generator) -> Iterator[Sample]:
    """Seeded shuffle buffer: fill to ``size``, then emit a random slot and refill it."""
    buf: list[Sample] = []
    for sample in samples:
        if len(buf) < size:
            buf.append(sample)
            continue
        i = int(rng.integers(size))
        buf[i], sample = sample, buf[i]
        yield sample
    while buf:
        yield buf.pop(int(rng.integers(len(buf))))


class TrainingStream:
    """Endless batches of random aligned crops, reproducible, resumable and rank-split.

    Args:
        shards: Shard folder (with manifest), brace pattern, ``.tar`` path/URL or a list.
        crop_hr: HR crop side in px; a multiple of the shards' scale.
        batch_size: Samples per batch (per rank).
        seed: Seeds shard order, shuffling and crops.
        resampled: Draw shards with replacement (epochs of ``epoch_samples``); otherwise an
            epoch is one pass over the (rank's) shards, capped at ``epoch_samples``.
        epoch_samples: Samples per epoch over all ranks. Defaults (resampled) to the
            manifest's sample count; required for resampled non-folder inputs.
        rank, world_size: This process's DDP rank and the number of ranks.
        num_workers: DataLoader worker processes (0 reads in the calling process).
        shuffle_buffer: Shuffle buffer size in samples (0 or 1: shard order only).
        verify_checksums: Hash every shard against its manifest once, at construction.

    Raises:
        ConfigError: Invalid sizes, rank or a missing ``epoch_samples``.
        InputError: No shards or a checksum mismatch.
    """

    def __init__(self, shards: str | Path | Iterable[str], crop_hr: int, batch_size: int,
                 seed: int, resampled: bool = True, epoch_samples: int | None = None,
                 rank: int = 0, world_size: int = 1, *, num_workers: int = 0,
                 shuffle_buffer: int = 64, verify_checksums: bool = False) -> None:
        if crop_hr <= 0 or batch_size <= 0:
            raise ConfigError(f"crop_hr and batch_size must be > 0, got {crop_hr}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
        if num_workers < 0 or shuffle_buffer < 0:
            raise ConfigError("num_workers and shuffle_buffer must be >= 0")
        if epoch_samples is not None and epoch_samples < batch_size * world_size:
            raise ConfigError(f"epoch_samples {epoch_samples} gives no full batch of "
                              f"{batch_size} on each of {world_size} rank(s)")
        self.urls = _resolve(shards)
        if verify_checksums:
            check_shard_checksums(self.urls)
        if resampled and epoch_samples is None:
            if not (isinstance(shards, (str, Path)) and Path(shards).is_dir()):
                raise ConfigError("resampled streams need epoch_samples unless shards is a "
                                  "local folder with a manifest")
            epoch_samples = int(read_manifest(Path(shards))["totals"]["samples"])
        self.crop_hr, self.batch_size, self.seed = crop_hr, batch_size, seed
        self.resampled, self.epoch_samples = resampled, epoch_samples
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.shuffle_buffer = num_workers, shuffle_buffer
        self.split = "shards" if len(self.urls) >= world_size else "samples"
        self._epoch, self._batch = 0, 0

    # ---- position -------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "crop_hr": self.crop_hr,
                "world_size": self.world_size, "resampled": self.resampled,
                "epoch_samples": self.epoch_samples, "n_shards": len(self.urls)}

    def state_dict(self) -> dict[str, Any]:
        """Return the position: epoch, next batch, samples consumed in the epoch (+ settings)."""
        return {"epoch": self._epoch, "batch": self._batch,
                "samples": self._batch * self.batch_size, **self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position.

        Raises:
            ConfigError: The state came from a stream with other seed, sizes or split.
        """
        diff = {k: (state.get(k), v) for k, v in self._identity().items() if state.get(k) != v}
        if diff:
            raise ConfigError(f"stream state does not match this stream (saved, now): {diff}")
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    # ---- sample order ---------------------------------------------------------------------
    def _rank_samples(self, epoch: int) -> Iterator[Sample]:
        n, r, w = len(self.urls), self.rank, self.world_size
        if self.resampled:
            rng = _rng(self.seed, epoch, r, _TAG_RESAMPLE)
            src: Iterator[Sample] = itertools.chain.from_iterable(
                _read([self.urls[int(rng.integers(n))]]) for _ in itertools.count())
        else:
            order = _rng(self.seed, epoch, _TAG_ORDER).permutation(n)
            if self.split == "shards":
                src = _read([self.urls[i] for i in order[r::w]])
            else:
                src = itertools.islice(_read([self.urls[i] for i in order]), r, None, w)
        if self.shuffle_buffer > 1:
            src = _shuffled(src, self.shuffle_buffer, _rng(self.seed, epoch, r, _TAG_SHUFFLE))
        if self.epoch_samples is not None:
            src = itertools.islice(src, self.epoch_samples // self.world_size)
        return src

    def _produce(self, epoch: int, batch: int, worker: int,
                 num_workers: int) -> Iterator[tuple[int, int, Batch]]:
        """Yield (epoch, batch index, Batch) from a position, every num_workers-th for worker."""
        k = 0  # batches handed out since this iterator started: the DataLoader's round robin
        while True:
            seen: Counter[str] = Counter()
            group: list[Sample] = []
            b = 0
            for sample in self._rank_samples(epoch):
                occurrence = seen[sample.key]
                seen[sample.key] += 1
                mine = b >= batch and k % num_workers == worker
                if mine:
                    rng = _rng(self.seed, epoch, _key_hash(sample.key), occurrence, _TAG_CROP)
                    group.append(random_crop(sample, self.crop_hr, rng))
                else:
                    group.append(sample)  # only counted
                if len(group) == self.batch_size:
                    if mine:
                        yield epoch, b, collate(group)
                    if b >= batch:
                        k += 1
                    group, b = [], b + 1
            if b == 0:
                raise InputError(self.urls[0], f"epoch {epoch} of rank {self.rank} has fewer "
                                               f"than batch_size={self.batch_size} samples")
            epoch, batch = epoch + 1, 0

    def __iter__(self) -> Iterator[Batch]:
        """Yield batches forever from the current position, advancing it as they are taken."""
        if self.num_workers == 0:
            items: Iterable[tuple[int, int, Batch]] = self._produce(self._epoch, self._batch, 0, 1)
        else:
            items = torch.utils.data.DataLoader(
                _WorkerView(self, self._epoch, self._batch), batch_size=None,
                num_workers=self.num_workers, collate_fn=_as_is)
        for epoch, b, batch in items:
            self._epoch, self._batch = epoch, b + 1
            yield batch


def _as_is(item: Any) -> Any:
    return item


class _WorkerView(torch.utils.data.IterableDataset):
    """The stream as seen from one DataLoader worker (its share of batches)."""

    def __init__(self, stream: TrainingStream, epoch: int, batch: int) -> None:
        self.stream, self.epoch, self.batch = stream, epoch, batch

    def __iter__(self) -> Iterator[tuple[int, int, Batch]]:
        info = torch.utils.data.get_worker_info()
        worker, count = (0, 1) if info is None else (info.id, info.num_workers)
        return self.stream._produce(self.epoch, self.batch, worker, count)


class _ValidationBatches:
    """Re-iterable: each pass reads the shards in order and yields the same batches."""

    def __init__(self, urls: list[str], crop_hr: int | None, batch_size: int) -> None:
        self.urls, self.crop_hr, self.batch_size = urls, crop_hr, batch_size

    def __iter__(self) -> Iterator[Batch]:
        group: list[Sample] = []
        for sample in _read(self.urls):
            group.append(sample if self.crop_hr is None else center_crop(sample, self.crop_hr))
            if len(group) == self.batch_size:
                yield collate(group)
                group = []
        if group:
            yield collate(group)


def validation_batches(shards: str | Path | Iterable[str], crop_hr: int | None,
                       batch_size: int) -> Iterable[Batch]:
    """Return deterministic validation batches (manifest order, aligned centre crops).

    Args:
        crop_hr: Centre-crop side in HR px (a multiple of the scale), or None for whole
            images (then images in a batch must share one size: use batch_size 1 otherwise).
        batch_size: Samples per batch; the last batch may be smaller (nothing is dropped).

    Returns:
        An iterable that restarts from the first shard on every ``iter()``.
    """
    if batch_size <= 0 or (crop_hr is not None and crop_hr <= 0):
        raise ConfigError(f"batch_size and crop_hr must be > 0, got {batch_size}, {crop_hr}")
    return _ValidationBatches(_resolve(shards), crop_hr, batch_size)
