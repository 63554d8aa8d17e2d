"""Training and validation batches from shard sets: aligned crops, reproducible and resumable.

Order and randomness (DESIGN.md section 5): nothing depends on worker ids, wall time or
global RNG state. For epoch ``e``:

* the shard order is a permutation drawn from ``(seed, e)`` (the same on every rank);
* with ``resampled=True`` each rank instead draws shards with replacement from
  ``(seed, e, rank)``; an epoch is then ``epoch_samples`` samples;
* samples pass, undecoded, through a shuffle buffer seeded by ``(seed, e, rank)``;
* a sample's crop offsets come from ``(seed, e, key, occurrence)``, ``occurrence`` counting
  repeats of a key within the epoch (resampling can draw a shard twice);
* with ``augment=True`` each crop then gets one of the 8 flips/rotations
  (:mod:`ssr_models.augment`), drawn from a generator of its own on the same
  ``(seed, e, key, occurrence)``, so switching augmentation leaves the crops where they were.

Splitting across DDP ranks (like ``wds.split_by_node``, but deterministic and exact): with at
least as many shards as ranks each rank reads the shards ``order[rank::world_size]``
(disjoint; ranks may see different sample counts, harmless for step-based training); with
fewer shards every rank reads them all and keeps samples ``i % world_size == rank``.
Resampled streams draw independently per rank (disjoint only in expectation, as in WebDataset).

Splitting across DataLoader workers (:mod:`ssr_models.loader`): every worker works out the
rank's sample sequence from references (local shards: the tar headers only, read once per
process, < 0.2 ms per sample; remote and ``pipe:`` shards: the raw member bytes, about 3% of
the cost of decoding them), and reads, decodes, crops and collates only the batches
``k % num_workers == worker``; the DataLoader's round robin puts them back in order. So each
sample is decoded exactly once, by one worker, the shuffle buffer never re-decodes (it holds
bytes), and the batches are the same for any ``num_workers``.

``crops_per_image`` = c > 1 cuts c crops from each decoded image, all in the same batch (a
batch is then ``batch_size / c`` images: "repeated augmentation", Hoffer et al. 2020, which
trades some batch diversity for c times fewer decodes).

The position (epoch, next batch) is what ``state_dict`` saves; resuming replays the current
epoch's sample sequence without decoding up to that batch, then continues exactly. An epoch's
incomplete last batch is dropped so every step sees ``batch_size`` crops.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from webdataset.shardlists import single_node_only, split_by_worker

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.manifest import read_manifest
from ssr_datasets.reader import check_shard_checksums, expand_urls, open_shards, shard_urls
from ssr_datasets.schema import Sample, decode_sample
from ssr_datasets.shards import index_shard, read_members
from ssr_datasets.storage import is_remote

from .augment import augment_sample, draw_symmetry
from .batch import Batch, collate
from .loader import LoaderOptions, iterate, philox

__all__ = ["TrainingStream", "aligned_crop", "center_crop", "random_crop", "validation_batches"]

# Distinct stream tags so the generators drawn from the same (seed, epoch) never coincide.
_TAG_ORDER, _TAG_RESAMPLE, _TAG_SHUFFLE, _TAG_CROP, _TAG_AUGMENT = 1, 2, 3, 4, 5


def _key_hash(key: str) -> int:
    """Stable 64-bit hash of a sample key (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def _resolve(shards: str | Path | Iterable[str]) -> list[str]:
    urls = shard_urls(shards) if isinstance(shards, (str, Path)) else [str(u) for u in shards]
    urls = expand_urls(urls)
    if not urls:
        raise InputError(str(shards), "no shards to read")
    return urls


def _read(urls: list[str], decode: bool = True) -> Iterator[Any]:
    """Yield the samples of ``urls`` in order, with WebDataset's own splitters removed.

    We split by rank and worker ourselves; WebDataset would otherwise give a worker only
    every n-th shard of the list and refuse to run under torch.distributed. With
    ``decode=False`` the items are raw member dicts (see ``open_shards``).
    """
    dataset = open_shards(urls, decode=decode)
    dataset.pipeline = [stage for stage in dataset.pipeline
                        if stage is not single_node_only and stage is not split_by_worker]
    return iter(dataset)


# A sample as the planner sees it: its key and either (local path, member byte ranges), read
# when the sample is decoded, or (for remote and pipe: URLs) the raw member bytes.
_Ref = tuple[str, Any]


def _is_local(url: str) -> bool:
    return not url.startswith("pipe:") and not is_remote(url)


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
                  kernel_field=sample.kernel_field[:, top_lr:top_lr + c, left_lr:left_lr + c],
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


def _shuffled(samples: Iterator[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Seeded shuffle buffer: fill to ``size``, then emit a random slot and refill it."""
    buf: list[Any] = []
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
        batch_size: Crops per batch (per rank).
        seed: Seeds shard order, shuffling and crops.
        resampled: Draw shards with replacement (epochs of ``epoch_samples``); otherwise an
            epoch is one pass over the (rank's) shards, capped at ``epoch_samples``.
        epoch_samples: Samples (images) per epoch over all ranks. Defaults (resampled) to
            the manifest's sample count; required for resampled non-folder inputs.
        rank, world_size: This process's DDP rank and the number of ranks.
        num_workers: DataLoader worker processes (0 reads in the calling process).
        shuffle_buffer: Shuffle buffer size in (undecoded) samples (0 or 1: shard order only).
        verify_checksums: Hash every shard against its manifest once, at construction.
        crops_per_image: Crops cut from each decoded sample (a divisor of ``batch_size``).
        prefetch_factor: Batches each worker prepares ahead.
        pin_memory: Pin batches for asynchronous copies to CUDA.
        augment: Apply a random flip/rotation to each crop (HR, LR, nearness, kernel field;
            needs shards with the centred LR grid).

    Raises:
        ConfigError: Invalid sizes, rank or a missing ``epoch_samples``.
        InputError: No shards or a checksum mismatch.
    """

    def __init__(self, shards: str | Path | Iterable[str], crop_hr: int, batch_size: int,
                 seed: int, resampled: bool = True, epoch_samples: int | None = None,
                 rank: int = 0, world_size: int = 1, *, num_workers: int = 0,
                 shuffle_buffer: int = 64, verify_checksums: bool = False,
                 crops_per_image: int = 1, prefetch_factor: int = 2,
                 pin_memory: bool = False, augment: bool = False) -> None:
        if crop_hr <= 0 or batch_size <= 0:
            raise ConfigError(f"crop_hr and batch_size must be > 0, got {crop_hr}, {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
        if shuffle_buffer < 0:
            raise ConfigError("shuffle_buffer must be >= 0")
        if crops_per_image < 1 or batch_size % crops_per_image:
            raise ConfigError(f"crops_per_image must be >= 1 and divide batch_size "
                              f"{batch_size}, got {crops_per_image}")
        self.loader = LoaderOptions(num_workers, prefetch_factor, pin_memory)
        self.images_per_batch = batch_size // crops_per_image
        if epoch_samples is not None and epoch_samples < self.images_per_batch * world_size:
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
        self.crops_per_image, self.augment = crops_per_image, bool(augment)
        self.resampled, self.epoch_samples = resampled, epoch_samples
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.shuffle_buffer = num_workers, shuffle_buffer
        self.split = "shards" if len(self.urls) >= world_size else "samples"
        self._epoch, self._batch = 0, 0
        self._index: dict[str, list[tuple[str, dict[str, tuple[int, int]]]]] = {}

    # ---- position -------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "crop_hr": self.crop_hr,
                "world_size": self.world_size, "resampled": self.resampled,
                "epoch_samples": self.epoch_samples, "n_shards": len(self.urls),
                "crops_per_image": self.crops_per_image, "augment": self.augment}

    def state_dict(self) -> dict[str, Any]:
        """Return the position: epoch, next batch, samples consumed in the epoch (+ settings)."""
        return {"epoch": self._epoch, "batch": self._batch,
                "samples": self._batch * self.images_per_batch, **self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position.

        Raises:
            ConfigError: The state came from a stream with other seed, sizes or split.
        """
        # states from before crops_per_image and augment existed
        saved = {"crops_per_image": 1, "augment": False, **state}
        diff = {k: (saved.get(k), v) for k, v in self._identity().items() if saved.get(k) != v}
        if diff:
            raise ConfigError(f"stream state does not match this stream (saved, now): {diff}")
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    # ---- sample order (cheap: raw bytes, no decoding) ---------------------------------------
    def _refs(self, urls: Iterable[str]) -> Iterator[_Ref]:
        """Yield the samples of ``urls`` as references (local shards: tar headers only)."""
        for url in urls:
            if not _is_local(url):
                yield from ((raw["__key__"], raw) for raw in _read([url], decode=False))
                continue
            if url not in self._index:  # once per process: workers each keep their own
                self._index[url] = index_shard(url)
            yield from ((key, (url, ranges)) for key, ranges in self._index[url])

    def _rank_samples(self, epoch: int) -> Iterator[_Ref]:
        n, r, w = len(self.urls), self.rank, self.world_size
        if self.resampled:
            rng = philox(self.seed, epoch, r, _TAG_RESAMPLE)
            src: Iterator[_Ref] = itertools.chain.from_iterable(
                self._refs([self.urls[int(rng.integers(n))]]) for _ in itertools.count())
        else:
            order = philox(self.seed, epoch, _TAG_ORDER).permutation(n)
            if self.split == "shards":
                src = self._refs([self.urls[i] for i in order[r::w]])
            else:
                src = itertools.islice(self._refs([self.urls[i] for i in order]), r, None, w)
        if self.shuffle_buffer > 1:
            src = _shuffled(src, self.shuffle_buffer, philox(self.seed, epoch, r, _TAG_SHUFFLE))
        if self.epoch_samples is not None:
            src = itertools.islice(src, self.epoch_samples // self.world_size)
        return src

    def plan(self, epoch: int, batch: int) -> Iterator[tuple[int, int, Any]]:
        """Yield ``(epoch, batch, work)`` from a position; work = undecoded samples + draws."""
        while True:
            seen: Counter[str] = Counter()
            group: list[tuple[_Ref, int]] = []
            b = 0
            for ref in self._rank_samples(epoch):
                key = ref[0]
                group.append((ref, seen[key]))
                seen[key] += 1
                if len(group) == self.images_per_batch:
                    if b >= batch:
                        yield epoch, b, (epoch, group)
                    group, b = [], b + 1
            if b == 0:
                raise InputError(self.urls[0], f"epoch {epoch} of rank {self.rank} has fewer "
                                               f"than batch_size/crops_per_image = "
                                               f"{self.batch_size}/{self.crops_per_image} "
                                               "samples")
            epoch, batch = epoch + 1, 0

    def make(self, work: tuple[int, list[tuple[_Ref, int]]]) -> Batch:
        """Read and decode each planned sample once and cut its ``crops_per_image`` crops."""
        epoch, group = work
        crops: list[Sample] = []
        for (key, handle), occurrence in group:
            members = handle if isinstance(handle, dict) else read_members(*handle)
            sample = decode_sample(key, members)
            rng = philox(self.seed, epoch, _key_hash(sample.key), occurrence, _TAG_CROP)
            cut = [random_crop(sample, self.crop_hr, rng) for _ in range(self.crops_per_image)]
            if self.augment:
                sym = philox(self.seed, epoch, _key_hash(sample.key), occurrence, _TAG_AUGMENT)
                cut = [augment_sample(crop, draw_symmetry(sym)) for crop in cut]
            crops.extend(cut)
        return collate(crops)

    def __iter__(self) -> Iterator[Batch]:
        """Yield batches forever from the current position, advancing it as they are taken."""
        for epoch, b, batch in iterate(self, self._epoch, self._batch, self.loader):
            self._epoch, self._batch = epoch, b + 1
            yield batch


class _ValidationBatches:
    """Re-iterable: each pass reads the shards in order and yields the same batches."""

    def __init__(self, urls: list[str], crop_hr: int | None, batch_size: int,
                 at_most: bool = False) -> None:
        self.urls, self.crop_hr, self.batch_size, self.at_most = urls, crop_hr, batch_size, at_most

    def _crop(self, sample: Sample) -> Sample:
        if self.crop_hr is None:
            return sample
        side = self.crop_hr
        if self.at_most:  # the largest square multiple of the scale that fits, up to crop_hr
            s = int(sample.meta["scale"])
            side = min(side, s * min(sample.lr.shape[:2]))
        return center_crop(sample, side)

    def __iter__(self) -> Iterator[Batch]:
        group: list[Sample] = []
        for sample in _read(self.urls):
            group.append(self._crop(sample))
            if len(group) == self.batch_size:
                yield collate(group)
                group = []
        if group:
            yield collate(group)


def validation_batches(shards: str | Path | Iterable[str], crop_hr: int | None,
                       batch_size: int, at_most: bool = False) -> Iterable[Batch]:
    """Return deterministic validation batches (manifest order, aligned centre crops).

    Args:
        crop_hr: Centre-crop side in HR px (a multiple of the scale), or None for whole
            images (then images in a batch must share one size: use batch_size 1 otherwise).
        batch_size: Samples per batch; the last batch may be smaller (nothing is dropped).
        at_most: ``crop_hr`` is an upper bound: an image smaller than it is cropped to the
            largest square multiple of the scale that fits (sizes then differ: batch_size 1).

    Returns:
        An iterable that restarts from the first shard on every ``iter()``.
    """
    if batch_size <= 0 or (crop_hr is not None and crop_hr <= 0):
        raise ConfigError(f"batch_size and crop_hr must be > 0, got {batch_size}, {crop_hr}")
    if at_most and batch_size != 1:
        raise ConfigError(f"at_most crops differ in size: use batch_size 1, got {batch_size}")
    return _ValidationBatches(_resolve(shards), crop_hr, batch_size, at_most)
