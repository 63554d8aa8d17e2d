"""The build: sources -> samples -> atomic WebDataset shards + manifest, resumable and parallel.

Determinism (DESIGN.md section 5): the sorted input list alone decides which sample goes into
which shard, each sample's randomness comes from (seed, recipe hash, key), and shards are
written byte-for-byte reproducibly, so any number of workers gives identical shards. A shard is
the unit of work: a worker writes it to a temp name and renames it when complete. After each
shard the main process rewrites ``manifest.partial.json``; a rerun of the same command keeps the
shards whose checksum matches and redoes the rest. ``manifest.json`` is written last.

Where the work runs: this process, a local process pool (``workers``), or a Dask cluster
(``cluster``: one task per shard; the output must be reachable from every worker: a shared
filesystem path or an object-store URL). Where the output goes: a local folder or any fsspec URL
(``ssr_datasets.storage``); the bytes are the same everywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssr_datasets.errors import ConfigError, InputError, NothingBuiltError, ShardsFailedError
from ssr_datasets.folder_lock import exclusive_folder
from ssr_datasets.manifest import MANIFEST_NAME
from ssr_datasets.shards import map_threads, shard_name, write_shard
from ssr_datasets.sources import SourceItem, list_items, load_item, require_build_source
from ssr_datasets.sources.base import portable_name
from ssr_datasets.storage import Storage, remove_stale_temps

from .build_config import (
    BuildConfig,
    BuildResult,
    DepthOptions,
    ShardResult,
    ShardTask,
    shard_prefix,
    source_split,
    validate_config,
)
from .build_state import (
    PARTIAL_NAME,
    PREVIEW_NAME,
    build_manifest,
    build_warnings,
    load_previous,
    strict_error,
)
from .depth import check_depth_provider
from .executor import Counter, cluster_client, run_on_cluster, run_parallel, single_thread
from .preview import write_shard_preview

__all__ = [
    "PARTIAL_NAME", "PREVIEW_NAME", "BuildConfig", "BuildResult", "DepthOptions", "ShardResult", "ShardTask",
    "ShardsFailedError", "build", "plan", "run_shard", "validate_config",
]

PREVIEW_ROWS = 8  # the whole default set (5 sample photos) and a few more


def plan(config: BuildConfig) -> list[ShardTask]:
    """List the inputs and cut them into shards; depends only on the sorted input list."""
    require_build_source(config.source)
    items = list_items(config.source, Path(config.root) if config.root else None,
                       source_split(config))
    if config.max_images is not None:
        items = items[: config.max_images]
    if not items:
        where = f" under {config.root}" if config.root else ""
        raise ConfigError(f"source {config.source!r} has no images{where}")
    # Whole images per shard keep an image's variants together (they share the depth pass).
    per_shard = max(1, config.shard_size // config.samples_per_image)
    prefix = shard_prefix(config)
    return [
        ShardTask(i, shard_name(prefix, i), tuple(items[start:start + per_shard]))
        for i, start in enumerate(range(0, len(items), per_shard))
    ]


def run_shard(task: ShardTask, config: BuildConfig, out_dir: str,
              depth_options: DepthOptions | None = None, ticks: Any = None) -> ShardResult:
    """Degrade every input of one shard and write it atomically; bad inputs become skips.

    Inputs go in groups of ``depth_options.batch_size``: load, nearness (learned models run one
    batched pass per group and reuse the depth cache), then the degradations (one blur + noise
    batch per group on ``config.device``; encoding on :func:`encode_threads` threads).
    ``out_dir`` is a local folder or an fsspec URL, as seen from the process that runs this.
    """
    from .sample import StageTimes

    opts = depth_options or DepthOptions()
    threads = encode_threads(config.device)
    cache = None
    if opts.use_cache:
        from .depth.cache import DepthCache

        cache = DepthCache(opts.cache_dir)
    times = StageTimes()
    samples, skipped, providers = [], [], {}
    items = list(task.items)
    for start in range(0, len(items), max(1, opts.batch_size)):
        group = items[start:start + max(1, opts.batch_size)]
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
                   cache: Any, times: Any, threads: int) -> list[tuple[SourceItem, list, str | None]]:
    """Load, estimate nearness for and degrade a few inputs; (item, samples, skip reason)."""
    from .depth import estimate_nearness_batch, resolve_depth
    from .sample import check_usable, degrade_batch, finish_sample, prepare_samples

    out: dict[int, tuple[SourceItem, list, str | None]] = {}
    ready = []  # (position, item, loaded, provider, reason)
    for pos, item in enumerate(group):
        t = time.perf_counter()
        try:
            loaded = load_item(item, max_pixels=config.max_pixels)
            check_usable(item, loaded, config.recipe, config.depth)
            provider, reason = resolve_depth(config.depth, loaded.depth_m is not None,
                                             weights_dir=opts.weights_dir)
        except InputError as exc:
            out[pos] = (item, [], exc.reason)
        else:
            ready.append((pos, item, loaded, provider, reason))
        times.add("load", t)
    depth: dict[int, Any] = {}
    t = time.perf_counter()
    for provider in sorted({r[3] for r in ready}):
        batch = [r for r in ready if r[3] == provider]
        try:
            results = estimate_nearness_batch(
                provider, [r[2].rgb for r in batch], [r[2].depth_m for r in batch],
                [r[2].pixel_sha256 for r in batch], model=config.depth_model,
                weights_dir=opts.weights_dir, device=config.depth_device, cache=cache,
                batch_size=opts.batch_size, allow_download=opts.allow_download)
        except InputError:
            # one bad depth map must not cost the others: redo this provider image by image
            results = []
            for r in batch:
                try:
                    results.extend(estimate_nearness_batch(
                        provider, [r[2].rgb], [r[2].depth_m], [r[2].pixel_sha256],
                        model=config.depth_model, weights_dir=opts.weights_dir,
                        device=config.depth_device, cache=cache, batch_size=1,
                        allow_download=opts.allow_download))
                except InputError as exc:
                    out[r[0]] = (r[1], [], exc.reason)
                    results.append(None)
        for r, res in zip(batch, results, strict=True):
            if res is not None:
                depth[r[0]] = dataclasses.replace(res, info={**res.info, "choice": r[4]})
    times.add("depth", t)
    # Crops and fields of the whole group first (CPU), then one batched blur + noise pass on the
    # build's device, then uint8, JPEG and metadata (on CPU threads for device builds).
    prepared: list[tuple[int, SourceItem, list]] = []
    for pos, item, loaded, _, _ in ready:
        if pos not in depth:
            continue
        try:
            prepared.append((pos, item, prepare_samples(
                item, loaded, config.recipe, depth[pos], variants=config.samples_per_image,
                seed=config.seed, crop=config.crop, times=times)))
        except InputError as exc:
            out[pos] = (item, [], exc.reason)
    flat = [p for _, _, ps in prepared for p in ps]
    lrs = degrade_batch(flat, config.recipe, config.device, times)
    made = list(map_threads(lambda pair: finish_sample(pair[0], *pair[1], config.recipe, config.seed,
                                                       times), zip(flat, lrs, strict=True), threads))
    for pos, item, ps in prepared:
        out[pos] = (item, made[:len(ps)], None)
        made = made[len(ps):]
    return [out[pos] for pos in range(len(group))]


def build(
    config: BuildConfig,
    out_dir: Path | str,
    *,
    workers: int = 1,
    cluster: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    command: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    preview: bool = True,
    depth_options: DepthOptions | None = None,
) -> BuildResult:
    """Build (or resume) a shard set in ``out_dir``; ``on_progress(done_images, total_images)``.

    Args:
        out_dir: Local folder or fsspec URL (``s3://bucket/set``, ``memory://...``).
        workers: Local worker processes (ignored with ``cluster``).
        cluster: Dask scheduler address (``tcp://host:8786``) or ``local:N``; one task per
            shard, progress per finished shard. Local ``out_dir`` paths must be on a
            filesystem that every worker sees at the same path.
        depth_options: learned-depth weights folder, cache and batch size (no effect on bytes).

    Raises:
        ConfigError: invalid options, ``out_dir`` holds another build without ``overwrite``,
            or another build is running in ``out_dir`` (local folders are locked).
        NothingBuiltError: every input was skipped (the reasons are in the message).
        InputError: ``strict`` and an input was skipped (the shards built so far are kept).
        ShardsFailedError: shards failed on the cluster (the others are kept; rerun to resume).
        KeyboardInterrupt: left resumable; rerun the same command to continue.
    """
    validate_config(config)
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    opts = depth_options or DepthOptions()
    # A learned model without weights fails here, before any image is read.
    check_depth_provider(config.depth, model=config.depth_model, weights_dir=opts.weights_dir,
                         device=config.depth_device, allow_download=opts.allow_download)
    storage = Storage(out_dir)
    if cluster is not None:
        storage = _storage_for_cluster(storage)
    # Arguments are OS strings: a non-UTF-8 path is recorded escaped, like input paths.
    command = portable_name(command or " ".join(shlex.quote(a) for a in sys.argv))
    start = time.perf_counter()
    tasks = plan(config)
    if storage.is_file():
        raise ConfigError(f"--out {storage.location} exists and is not a folder")
    # One build per folder (issue 10 finding 4), taken before anything in it is read or removed.
    # Object stores have no lock (README: Reliability and security).
    lock = (exclusive_folder(storage.local) if storage.local is not None
            else contextlib.nullcontext(None))
    with lock as took_over:
        result = _build_locked(config, storage, tasks, start, command, workers=workers,
                               cluster=cluster, overwrite=overwrite, strict=strict,
                               on_progress=on_progress, preview=preview, opts=opts)
    if took_over:
        result.warnings.insert(0, took_over)
    return result


def _build_locked(config: BuildConfig, storage: Storage, tasks: list[ShardTask], start: float,
                  command: str, *, workers: int, cluster: str | None, overwrite: bool,
                  strict: bool, on_progress: Callable[[int, int], None] | None, preview: bool,
                  opts: DepthOptions) -> BuildResult:
    """Run :func:`build` once the output folder is ours."""
    # A killed run's temps go first (local folders: by dead pid; object stores: load_previous).
    removed = remove_stale_temps(storage.local) if storage.local is not None else []
    results = load_previous(storage, config, overwrite, tasks)
    reused = len(results)
    if strict:  # a skip recorded by an earlier (failed) --strict run must fail this one too
        for index in sorted(results):
            if results[index].skipped:
                raise strict_error(results[index].skipped)
    storage.makedirs()
    out = storage.location  # what workers get: a path or a URL string
    total_images = sum(len(t.items) for t in tasks)
    done_images = sum(len(t.items) for t in tasks if t.index in results)
    todo = [t for t in tasks if t.index not in results]

    def record() -> None:
        storage.write_json_atomic(PARTIAL_NAME, build_manifest(
            config, results, tasks, command, time.perf_counter() - start, complete=False))

    # Before any shard: a manifest that cannot be written fails here, not after a shard that
    # would then make the folder look like another build (issue 10 finding 6).
    record()
    if on_progress:
        on_progress(done_images, total_images)

    def finished(res: ShardResult) -> None:
        results[res.index] = res
        record()
        if strict and res.skipped:
            raise strict_error(res.skipped)

    if cluster is not None and todo:
        images = {t.index: len(t.items) for t in todo}

        def finished_on_cluster(res: ShardResult) -> None:
            nonlocal done_images
            finished(res)
            done_images += images[res.index]
            if on_progress:
                on_progress(done_images, total_images)

        with cluster_client(cluster) as client:
            failed = run_on_cluster(client, run_shard,
                                    [(t.index, (_for_workers(t), config, out, opts)) for t in todo],
                                    finished_on_cluster)
        if failed:
            names = {t.index: t.name for t in todo}
            raise ShardsFailedError(out, {names[i]: err for i, err in failed.items()})
    elif workers == 1 or len(todo) <= 1:
        # One thread as in the workers, then give the caller its own settings back.
        import cv2
        import torch

        threads = (torch.get_num_threads(), cv2.getNumThreads())
        single_thread()
        try:
            for task in todo:
                counter = Counter(lambda n: on_progress and on_progress(n, total_images),
                                  done_images)
                finished(run_shard(task, config, out, opts, counter))
                done_images = counter.value
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
    else:
        run_parallel(run_shard, [(t, config, out, opts) for t in todo], workers, finished,
                     lambda n: on_progress and on_progress(n, total_images), done_images)

    seconds = time.perf_counter() - start
    manifest = build_manifest(config, results, tasks, command, seconds, complete=True)
    if not manifest["shards"]:
        # Every input was skipped: no manifest.json (nothing to read); the partial one keeps
        # the reasons, and a rerun fails the same way until the inputs are fixed.
        raise NothingBuiltError(storage.target(PARTIAL_NAME), manifest["skipped"])
    warnings = build_warnings(manifest)
    preview_path = None
    if preview and manifest["shards"]:
        _write_preview(storage, manifest["shards"][0]["name"])
        preview_path = storage.target(PREVIEW_NAME)
    storage.write_json_atomic(MANIFEST_NAME, manifest)
    storage.remove(PARTIAL_NAME)
    out_result = storage.local if storage.local is not None else storage.location
    return BuildResult(out_result, manifest, reused, len(todo), seconds, preview_path, warnings,
                       [str(t) for t in removed])


def _storage_for_cluster(storage: Storage) -> Storage:
    """Return the output as workers must see it: an absolute path, or a shared URL."""
    if storage.local is not None:
        return Storage(storage.local.resolve())
    if storage.location.lower().startswith("memory://"):
        raise ConfigError(f"--out {storage.location}: memory:// lives inside one process, so "
                          "cluster workers cannot write to it; use a shared folder or an object "
                          "store URL")
    return storage


def _for_workers(task: ShardTask) -> ShardTask:
    """Make input paths absolute, so workers with another working directory find them.

    Only items that record a root-relative ``rel_path`` are changed: that is what the samples
    store, so the bytes stay the same.
    """
    items = tuple(
        dataclasses.replace(item, path=os.path.abspath(item.path),
                            depth_path=item.depth_path and os.path.abspath(item.depth_path))
        if item.rel_path is not None else item
        for item in task.items)
    return dataclasses.replace(task, items=items)


def _write_preview(storage: Storage, shard: str) -> None:
    """Write preview.png from a shard; remote shards are rendered from a local copy."""
    if storage.local is not None:
        write_shard_preview(storage.local / shard, storage.local / PREVIEW_NAME, PREVIEW_ROWS)
        return
    with tempfile.TemporaryDirectory(prefix="ssr-preview-") as tmp:
        local = Path(tmp) / shard
        local.write_bytes(storage.read_bytes(shard))
        write_shard_preview(local, Path(tmp) / PREVIEW_NAME, PREVIEW_ROWS)
        storage.put_file_atomic(Path(tmp) / PREVIEW_NAME, PREVIEW_NAME)
