"""One shard, start to finish: its inputs become samples, written as one atomic tar.

Inputs go in groups of ``DepthOptions.batch_size``: load, nearness (learned models run one
batched pass per group and reuse the depth cache), then the degradations (one blur + noise
batch per group on the build's device; encoding on :func:`encode_threads` threads). A bad input
becomes a recorded skip, never an error for the shard.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, NamedTuple

from ssr_core.errors import InputError
from ssr_datasets.shards import map_threads, write_shard
from ssr_datasets.sources import LoadedImage, SourceItem, load_item
from ssr_datasets.storage import Storage

from .config import BuildConfig, DepthOptions, ShardResult, ShardTask
from .sample import StageTimes


class _Ready(NamedTuple):
    """A loaded input that passed the checks, with the depth provider chosen for it."""

    pos: int  # position in its group
    item: SourceItem
    loaded: LoadedImage
    provider: str
    choice: str  # why that provider (recorded in the sample's json)


# (item, samples, skip reason or None) per input of a group, in input order
GroupOutcome = tuple[SourceItem, list, "str | None"]


def run_shard(task: ShardTask, config: BuildConfig, out_dir: str,
              depth_options: DepthOptions | None = None, ticks: Any = None) -> ShardResult:
    """Degrade every input of one shard and write it atomically; bad inputs become skips.

    ``out_dir`` is a local folder or an fsspec URL, as seen from the process that runs this;
    ``ticks.put(1)`` is called per finished input (progress).
    """
    opts = depth_options or DepthOptions()
    threads = encode_threads(config.device)
    cache = None
    if opts.use_cache:
        from ..depth.cache import DepthCache

        cache = DepthCache(opts.cache_dir)
    times = StageTimes()
    samples, skipped, providers = [], [], {}
    items = list(task.items)
    size = max(1, opts.batch_size)
    for start in range(0, len(items), size):
        group = items[start:start + size]
        for item, made, error in _degrade_group(group, config, opts, cache, times, threads):
            if error is not None:
                skipped.append({"source": item.source, "image_id": item.image_id,
                                "path": item.portable_path, "reason": error})
            else:
                samples.extend(made)
                name = made[0].meta["depth"]["provider"]
                providers[name] = providers.get(name, 0) + 1
            if ticks is not None:
                ticks.put(1)
    t = time.perf_counter()
    info = (write_shard(Storage(out_dir).target(task.name), samples, threads=threads)
            if samples else None)
    times.add("write", t)
    masses = [smp.meta["truncated_mass"] for smp in samples]
    truncation = {"warned": sum(bool(m["warn"]) for m in masses),
                  "worst": max((m["max"] for m in masses), default=0.0)}
    return ShardResult(task.index, info, skipped, times.seconds, providers, truncation)


def encode_threads(device: str) -> int:
    """Return the CPU threads that encode a process's samples (JPEG, PNG): 1 on CPU builds.

    A CPU build keeps one thread per worker process (N workers use N cores); a device build
    leaves the blur to the device and encodes on up to 8 threads (OpenCV releases the GIL).
    """
    if device == "cpu":
        return 1
    return max(1, min(8, os.cpu_count() or 1))


def _degrade_group(group: list[SourceItem], config: BuildConfig, opts: DepthOptions,
                   cache: Any, times: StageTimes, threads: int) -> list[GroupOutcome]:
    """Load, estimate nearness for and degrade a few inputs; (item, samples, skip reason)."""
    out: dict[int, GroupOutcome] = {}
    ready = _load_group(group, config, opts, times, out)
    t = time.perf_counter()
    depth = _nearness_group(ready, config, opts, cache, out)
    times.add("depth", t)
    _degrade_ready(ready, depth, config, times, threads, out)
    return [out[pos] for pos in range(len(group))]


def _load_group(group: list[SourceItem], config: BuildConfig, opts: DepthOptions,
                times: StageTimes, out: dict[int, GroupOutcome]) -> list[_Ready]:
    """Decode and check each input and choose its depth provider; skips go into ``out``."""
    from ..depth import resolve_depth
    from .sample import check_usable

    ready = []
    for pos, item in enumerate(group):
        t = time.perf_counter()
        try:
            loaded = load_item(item, max_pixels=config.max_pixels)
            check_usable(item, loaded, config.recipe, config.depth)
            provider, choice = resolve_depth(config.depth, loaded.depth_m is not None,
                                             weights_dir=opts.weights_dir)
        except InputError as exc:
            out[pos] = (item, [], exc.reason)
        else:
            ready.append(_Ready(pos, item, loaded, provider, choice))
        times.add("load", t)
    return ready


def _nearness_group(ready: list[_Ready], config: BuildConfig, opts: DepthOptions, cache: Any,
                    out: dict[int, GroupOutcome]) -> dict[int, Any]:
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
                    out[r.pos] = (r.item, [], exc.reason)
                    results.append(None)
        for r, res in zip(batch, results, strict=True):
            if res is not None:
                depth[r.pos] = dataclasses.replace(res, info={**res.info, "choice": r.choice})
    return depth


def _degrade_ready(ready: list[_Ready], depth: dict[int, Any], config: BuildConfig,
                   times: StageTimes, threads: int, out: dict[int, GroupOutcome]) -> None:
    """Degrade the inputs that have nearness into samples; outcomes go into ``out``.

    Crops and fields of the whole group first (CPU), then one batched blur + noise pass on the
    build's device, then uint8, JPEG and metadata (on CPU threads for device builds).
    """
    from .sample import degrade_batch, finish_sample, prepare_samples

    prepared: list[tuple[int, SourceItem, list]] = []
    for r in ready:
        if r.pos not in depth:
            continue
        try:
            prepared.append((r.pos, r.item, prepare_samples(
                r.item, r.loaded, config.recipe, depth[r.pos], variants=config.samples_per_image,
                seed=config.seed, crop=config.crop, times=times)))
        except InputError as exc:
            out[r.pos] = (r.item, [], exc.reason)
    flat = [p for _, _, ps in prepared for p in ps]
    lrs = degrade_batch(flat, config.recipe, config.device, times)
    made = list(map_threads(lambda pair: finish_sample(pair[0], *pair[1], config.recipe,
                                                       config.seed, times),
                            zip(flat, lrs, strict=True), threads))
    for pos, item, ps in prepared:
        out[pos] = (item, made[:len(ps)], None)
        made = made[len(ps):]
