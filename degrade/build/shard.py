"""A shard's work: its inputs, a few at a time, become encoded samples, written as one atomic tar.

The unit of work is a *chunk*: consecutive inputs of one shard (one image for CPU builds with
prior or ground-truth depth; ``DepthOptions.batch_size`` images when a learned model or a
device batches them). :func:`degrade_chunk` loads, estimates nearness for and degrades a chunk
into encoded samples (or recorded skips) in any process; a :class:`ShardAssembler` appends the
chunks of one shard to its tar in input order, whatever order they finish in. So the bytes
depend only on the plan (the sorted input list), never on which process ran which chunk.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ssr_core.errors import InputError
from ssr_datasets.shards import ShardWriter, map_threads
from ssr_datasets.sources import LoadedImage, SourceItem, load_item
from ssr_datasets.storage import Storage

from .config import BuildConfig, DepthOptions, ShardResult, ShardTask
from .sample import StageTimes


@dataclass
class ImageOutcome:
    """What became of one input: its encoded samples, or the reason it was skipped."""

    item: SourceItem
    samples: list[tuple[str, dict[str, bytes]]]  # (key, members) per variant, in order
    skip: str | None = None
    provider: str | None = None  # the depth provider that ran
    truncation: list[tuple[float, bool]] = field(default_factory=list)  # (max mass, warned)


@dataclass
class ChunkOutcome:
    """One chunk's outcomes, in input order, and the time its stages took."""

    shard: int
    position: int  # the chunk's place in its shard
    outcomes: list[ImageOutcome]
    times: StageTimes


class Chunk(NamedTuple):
    """Consecutive inputs of one shard: the unit of work that a process takes."""

    shard: int
    position: int
    items: tuple[SourceItem, ...]


class _Ready(NamedTuple):
    """A loaded input that passed the checks, with the depth provider chosen for it."""

    pos: int  # position in its chunk
    item: SourceItem
    loaded: LoadedImage
    provider: str
    choice: str  # why that provider (recorded in the sample's json)


def chunk_size(config: BuildConfig, opts: DepthOptions) -> int:
    """Return the inputs per chunk: 1 unless a learned model or a device batches images.

    ``auto`` batches only when a learned model's weights are on disk (else it is the prior).
    """
    from ..depth import LEARNED_PROVIDERS, resolve_depth

    learned = config.depth in LEARNED_PROVIDERS or (
        config.depth == "auto"
        and resolve_depth("auto", False, weights_dir=opts.weights_dir)[0] in LEARNED_PROVIDERS)
    return max(1, opts.batch_size) if learned or config.device != "cpu" else 1


def chunks(tasks: list[ShardTask], size: int) -> list[Chunk]:
    """Cut each shard's inputs into chunks of ``size``, in plan order."""
    return [Chunk(t.index, n, t.items[start:start + size])
            for t in tasks for n, start in enumerate(range(0, len(t.items), size))]


def run_shard(task: ShardTask, config: BuildConfig, out_dir: str,
              depth_options: DepthOptions | None = None, ticks: Any = None) -> ShardResult:
    """Degrade every input of one shard in this process and write it atomically.

    ``out_dir`` is a local folder or an fsspec URL, as seen from the process that runs this;
    ``ticks.put(n)`` is called per finished chunk of n inputs (progress). Bad inputs become
    skips.
    """
    opts = depth_options or DepthOptions()
    parts = chunks([task], chunk_size(config, opts))
    with ShardAssembler(task, Storage(out_dir), len(parts)) as shard:
        for part in parts:
            shard.add(degrade_chunk(part, config, opts))
            if ticks is not None:
                ticks.put(len(part.items))
    return shard.result


class ShardAssembler:
    """Write one shard from its chunks' outcomes in input order (a context manager).

    :meth:`add` takes chunks in any order and appends those whose predecessors are written;
    the shard's tar becomes complete (and :attr:`result` set) when the block ends after every
    chunk arrived. On an error the temp file is removed and nothing looks complete.
    """

    def __init__(self, task: ShardTask, storage: Storage, n_chunks: int) -> None:
        self.task, self.n_chunks = task, n_chunks
        self._writer = ShardWriter(storage.target(task.name))
        self._next, self._waiting = 0, {}
        self._opened = False
        self.times = StageTimes()
        self.skipped: list[dict[str, str]] = []
        self.providers: dict[str, int] = {}
        self.masses: list[tuple[float, bool]] = []
        self.samples = 0
        self.result: ShardResult | None = None

    def __enter__(self) -> ShardAssembler:
        return self

    @property
    def complete(self) -> bool:
        """Whether every chunk of the shard has been written."""
        return self._next == self.n_chunks

    def add(self, chunk: ChunkOutcome) -> None:
        """Take one chunk; write it and any chunks that waited for it."""
        self._waiting[chunk.position] = chunk
        while self._next in self._waiting:
            self._write(self._waiting.pop(self._next))
            self._next += 1

    def _write(self, chunk: ChunkOutcome) -> None:
        self.times.merge(chunk.times)
        for out in chunk.outcomes:
            item = out.item
            if out.skip is not None:
                self.skipped.append({"source": item.source, "image_id": item.image_id,
                                     "path": item.portable_path, "reason": out.skip})
                continue
            self.providers[out.provider] = self.providers.get(out.provider, 0) + 1
            self.masses.extend(out.truncation)
            t = self.times.now()
            if not self._opened:  # the first sample opens the temp file: none for all-skips
                self._writer.__enter__()
                self._opened = True
            for key, members in out.samples:
                self._writer.add(key, members)
                self.samples += 1
            self.times.add("write", t)

    def __exit__(self, *exc: object) -> None:
        if self._opened:
            t = self.times.now()
            self._writer.__exit__(*exc)
            self.times.add("write", t)
        if exc[0] is None:
            truncation = {"warned": sum(warned for _, warned in self.masses),
                          "worst": max((m for m, _ in self.masses), default=0.0)}
            self.result = ShardResult(self.task.index, self._writer.info, self.skipped,
                                      self.times.seconds, self.providers, truncation,
                                      self.times.cpu_seconds)


def encode_threads(device: str) -> int:
    """Return the CPU threads that encode a process's samples (JPEG, PNG): 1 on CPU builds.

    A CPU build keeps one thread per worker process (N workers use N cores); a device build
    leaves the blur to the device and encodes on up to 8 threads (OpenCV releases the GIL).
    """
    if device == "cpu":
        return 1
    return max(1, min(8, os.cpu_count() or 1))


_CACHES: dict[str | None, Any] = {}  # one depth cache per folder and process


def degrade_chunk(chunk: Chunk, config: BuildConfig, opts: DepthOptions) -> ChunkOutcome:
    """Load, estimate nearness for and degrade a chunk's inputs into encoded samples.

    Runs in any process (the build's or a worker); a bad input becomes a skip with its reason.
    """
    cache = None
    if opts.use_cache:
        if opts.cache_dir not in _CACHES:
            from ..depth.cache import DepthCache

            _CACHES[opts.cache_dir] = DepthCache(opts.cache_dir)
        cache = _CACHES[opts.cache_dir]
    times = StageTimes()
    out: dict[int, ImageOutcome] = {}
    ready = _load(chunk.items, config, opts, times, out)
    t = times.now()
    depth = _nearness(ready, config, opts, cache, out)
    times.add("depth", t)
    _degrade(ready, depth, config, times, out)
    return ChunkOutcome(chunk.shard, chunk.position, [out[i] for i in range(len(chunk.items))],
                        times)


def _load(items: tuple[SourceItem, ...], config: BuildConfig, opts: DepthOptions,
          times: StageTimes, out: dict[int, ImageOutcome]) -> list[_Ready]:
    """Decode and check each input and choose its depth provider; skips go into ``out``."""
    from ..depth import resolve_depth
    from .sample import check_usable

    ready = []
    for pos, item in enumerate(items):
        t = times.now()
        try:
            loaded = load_item(item, max_pixels=config.max_pixels)
            check_usable(item, loaded, config.recipe, config.depth)
            provider, choice = resolve_depth(config.depth, loaded.depth_m is not None,
                                             weights_dir=opts.weights_dir)
        except InputError as exc:
            out[pos] = ImageOutcome(item, [], exc.reason)
        else:
            ready.append(_Ready(pos, item, loaded, provider, choice))
        times.add("load", t)
    return ready


def _nearness(ready: list[_Ready], config: BuildConfig, opts: DepthOptions, cache: Any,
              out: dict[int, ImageOutcome]) -> dict[int, Any]:
    """Return {position: DepthResult}: one batched pass per provider; skips go into ``out``."""
    from ..depth import estimate_nearness_batch

    def estimate(provider: str, batch: list[_Ready], batch_size: int) -> list:
        return estimate_nearness_batch(
            provider, [r.loaded.rgb for r in batch], [r.loaded.depth_m for r in batch],
            [r.loaded.pixel_sha256 for r in batch], model=config.depth_model,
            weights_dir=opts.weights_dir, device=config.depth_device, cache=cache,
            batch_size=batch_size, allow_download=opts.allow_download)

    depth: dict[int, Any] = {}
    for provider in sorted({r.provider for r in ready}):
        batch = [r for r in ready if r.provider == provider]
        try:
            results = estimate(provider, batch, opts.batch_size)
        except InputError:
            # one bad depth map must not cost the others: redo this provider image by image
            results = []
            for r in batch:
                try:
                    results.extend(estimate(provider, [r], 1))
                except InputError as exc:
                    out[r.pos] = ImageOutcome(r.item, [], exc.reason)
                    results.append(None)
        for r, res in zip(batch, results, strict=True):
            if res is not None:
                depth[r.pos] = dataclasses.replace(res, info={**res.info, "choice": r.choice})
    return depth


def _degrade(ready: list[_Ready], depth: dict[int, Any], config: BuildConfig,
             times: StageTimes, out: dict[int, ImageOutcome]) -> None:
    """Degrade and encode the inputs that have nearness; outcomes go into ``out``.

    Crops and fields of the whole chunk first (CPU), then one batched blur + noise pass on the
    build's device, then uint8, JPEG, metadata and encoding (on CPU threads for device builds;
    an image's HR and depth PNGs are encoded once for all its variants).
    """
    from .sample import degrade_batch, encode_members, finish_sample, prepare_samples

    prepared: list[tuple[_Ready, list]] = []
    for r in ready:
        if r.pos not in depth:
            continue
        try:
            prepared.append((r, prepare_samples(
                r.item, r.loaded, config.recipe, depth[r.pos], variants=config.samples_per_image,
                seed=config.seed, crop=config.crop, times=times)))
        except InputError as exc:
            out[r.pos] = ImageOutcome(r.item, [], exc.reason)
    flat = [p for _, ps in prepared for p in ps]
    lrs = degrade_batch(flat, config.recipe, config.device, times)
    shared: dict = {}

    def finish(pair: tuple) -> tuple[str, dict[str, bytes], dict]:
        p, (lr, backend) = pair
        smp = finish_sample(p, lr, backend, config.recipe, config.seed, times, shared)
        return smp.key, encode_members(p, smp, times, shared), smp.meta

    made = list(map_threads(finish, zip(flat, lrs, strict=True), encode_threads(config.device)))
    for r, ps in prepared:
        mine, made = made[:len(ps)], made[len(ps):]
        out[r.pos] = ImageOutcome(
            r.item, [(key, members) for key, members, _ in mine],
            provider=mine[0][2]["depth"]["provider"],
            truncation=[(m["truncated_mass"]["max"], bool(m["truncated_mass"]["warn"]))
                        for _, _, m in mine])
