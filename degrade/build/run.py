"""The build: sources -> samples -> atomic WebDataset shards + manifest, resumable and parallel.

A shard is written to a temp name and renamed when complete. After each shard the main process
rewrites ``manifest.partial.json``; a rerun of the same command keeps the shards whose checksum
matches and redoes the rest. ``manifest.json`` is written last.

Where the work runs: this process, a local process pool (``workers``), or a Dask cluster
(``cluster``: one task per shard; the output must be reachable from every worker: a shared
filesystem path or an object-store URL). Where the output goes: a local folder or any fsspec URL
(``ssr_datasets.storage``); the bytes are the same everywhere.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ssr_core.errors import ConfigError, NothingBuiltError, ShardsFailedError
from ssr_datasets.folder_lock import exclusive_folder
from ssr_datasets.manifest import MANIFEST_NAME
from ssr_datasets.sources.base import portable_name
from ssr_datasets.storage import Storage, remove_stale_temps

from ..depth import check_depth_provider
from ..preview import write_shard_preview
from .config import BuildConfig, BuildResult, DepthOptions, ShardResult, ShardTask, validate_config
from .executor import Counter, cluster_client, one_thread, run_on_cluster, run_parallel
from .plan import for_workers, plan
from .shard import ChunkOutcome, ShardAssembler, chunk_size, chunks, degrade_chunk, run_shard
from .state import PARTIAL_NAME, PREVIEW_NAME, build_manifest, build_warnings, load_previous, strict_error

PREVIEW_ROWS = 8  # the whole default set (5 sample photos) and a few more
# What a worker needs loaded before its first chunk (the forkserver imports them once).
WORKER_MODULES = ("degrade.build.shard", "degrade.build.sample", "degrade.depth.prior",
                  "degrade.ops.blur", "degrade.ops.kernels", "degrade.fields")

Progress = Callable[[int, int], None]


def build(
    config: BuildConfig,
    out_dir: Path | str,
    *,
    workers: int = 1,
    cluster: str | None = None,
    overwrite: bool = False,
    strict: bool = False,
    command: str | None = None,
    on_progress: Progress | None = None,
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
        run = _BuildRun(config, storage, tasks, start, command, strict, on_progress, opts)
        result = run.execute(workers, cluster, overwrite, preview)
    if took_over:
        result.warnings.insert(0, took_over)
    return result


@dataclass
class _BuildRun:
    """One build once the output folder is ours: the shards done so far and the progress."""

    config: BuildConfig
    storage: Storage
    tasks: list[ShardTask]
    start: float
    command: str
    strict: bool
    on_progress: Progress | None
    opts: DepthOptions
    results: dict[int, ShardResult] = field(default_factory=dict)
    reused: int = 0  # shards kept from a previous run
    done_images: int = 0

    @property
    def total_images(self) -> int:
        return sum(len(t.items) for t in self.tasks)

    def execute(self, workers: int, cluster: str | None, overwrite: bool,
                preview: bool) -> BuildResult:
        """Resume, run the shards still to do, and write the manifest and preview."""
        removed = self.resume(overwrite)
        todo = [t for t in self.tasks if t.index not in self.results]
        if cluster is not None and todo:
            self.run_on_cluster(cluster, todo)
        elif workers == 1:
            self.run_here(todo)
        elif todo:
            self.run_pool(todo, workers)
        return self.finish(len(todo), preview, removed)

    def resume(self, overwrite: bool) -> list[Path]:
        """Take over what a previous run left; write the first partial manifest.

        Returns the temp files of a killed run that were removed (local folders).
        """
        # A killed run's temps go first (local folders: by dead pid; object stores: load_previous).
        removed = remove_stale_temps(self.storage.local) if self.storage.local is not None else []
        self.results = load_previous(self.storage, self.config, overwrite, self.tasks)
        self.reused = len(self.results)
        if self.strict:  # a skip recorded by an earlier (failed) --strict run must fail this one too
            for index in sorted(self.results):
                if self.results[index].skipped:
                    raise strict_error(self.results[index].skipped)
        self.storage.makedirs()
        self.done_images = sum(len(t.items) for t in self.tasks if t.index in self.results)
        # Before any shard: a manifest that cannot be written fails here, not after a shard that
        # would then make the folder look like another build (issue 10 finding 6).
        self.record()
        self.report(self.done_images)
        return removed

    def record(self) -> None:
        """Rewrite the partial manifest with the shards finished so far."""
        self.storage.write_json_atomic(PARTIAL_NAME, build_manifest(
            self.config, self.results, self.tasks, self.command,
            time.perf_counter() - self.start, complete=False))

    def report(self, done_images: int) -> None:
        if self.on_progress:
            self.on_progress(done_images, self.total_images)

    def finished(self, res: ShardResult) -> None:
        """Record one finished shard (and fail now under ``strict`` if it skipped an input)."""
        self.results[res.index] = res
        self.record()
        if self.strict and res.skipped:
            raise strict_error(res.skipped)

    def run_here(self, todo: list[ShardTask]) -> None:
        """Run the shards in this process with one thread, as in the workers."""
        with one_thread():  # the caller gets its own thread settings back
            for task in todo:
                counter = Counter(self.report, self.done_images)
                self.finished(run_shard(task, self.config, self.storage.location, self.opts,
                                        counter))
                self.done_images = counter.value

    def run_pool(self, todo: list[ShardTask], workers: int) -> None:
        """Run the shards' chunks on local worker processes; write each shard in input order.

        The unit of work is a chunk of images (:func:`shard.chunks`), so ``workers`` share
        even a single shard; each shard's tar is appended in input order as its chunks arrive
        (:class:`shard.ShardAssembler`), so the bytes are those of a one-process build.
        """
        parts = chunks(todo, chunk_size(self.config, self.opts))
        count = {t.index: sum(p.shard == t.index for p in parts) for t in todo}
        tasks = {t.index: t for t in todo}
        open_shards: dict[int, ShardAssembler] = {}

        def arrived(chunk: ChunkOutcome) -> None:
            shard = open_shards.get(chunk.shard)
            if shard is None:
                shard = open_shards[chunk.shard] = ShardAssembler(
                    tasks[chunk.shard], self.storage, count[chunk.shard])
            shard.add(chunk)
            self.done_images += len(chunk.outcomes)
            self.report(self.done_images)
            if shard.complete:
                del open_shards[chunk.shard]
                shard.__exit__(None, None, None)
                self.finished(shard.result)

        try:
            with one_thread():  # for the chunks this process runs while the workers start
                run_parallel(degrade_chunk, [(p, self.config, self.opts) for p in parts],
                             workers, arrived, modules=WORKER_MODULES)
        except BaseException as exc:
            for shard in open_shards.values():  # their temp files go; nothing looks complete
                shard.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def run_on_cluster(self, cluster: str, todo: list[ShardTask]) -> None:
        """Run one task per shard on a Dask cluster; progress per finished shard."""
        images = {t.index: len(t.items) for t in todo}

        def finished_on_cluster(res: ShardResult) -> None:
            self.finished(res)
            self.done_images += images[res.index]
            self.report(self.done_images)

        out = self.storage.location
        with cluster_client(cluster) as client:
            failed = run_on_cluster(client, run_shard,
                                    [(t.index, (for_workers(t), self.config, out, self.opts))
                                     for t in todo],
                                    finished_on_cluster)
        if failed:
            names = {t.index: t.name for t in todo}
            raise ShardsFailedError(out, {names[i]: err for i, err in failed.items()})

    def finish(self, built: int, preview: bool, removed: list[Path]) -> BuildResult:
        """Write the preview and the final manifest (last), and drop the partial one."""
        seconds = time.perf_counter() - self.start
        manifest = build_manifest(self.config, self.results, self.tasks, self.command, seconds,
                                  complete=True)
        storage = self.storage
        if not manifest["shards"]:
            # Every input was skipped: no manifest.json (nothing to read); the partial one keeps
            # the reasons, and a rerun fails the same way until the inputs are fixed.
            raise NothingBuiltError(storage.target(PARTIAL_NAME), manifest["skipped"])
        warnings = build_warnings(manifest)
        preview_path = None
        if preview:
            _write_preview(storage, manifest["shards"][0]["name"])
            preview_path = storage.target(PREVIEW_NAME)
        storage.write_json_atomic(MANIFEST_NAME, manifest)
        storage.remove(PARTIAL_NAME)
        out = storage.local if storage.local is not None else storage.location
        return BuildResult(out, manifest, self.reused, built, seconds, preview_path,
                           warnings, [str(t) for t in removed])


def _storage_for_cluster(storage: Storage) -> Storage:
    """Return the output as workers must see it: an absolute path, or a shared URL."""
    if storage.local is not None:
        return Storage(storage.local.resolve())
    if storage.location.lower().startswith("memory://"):
        raise ConfigError(f"--out {storage.location}: memory:// lives inside one process, so "
                          "cluster workers cannot write to it; use a shared folder or an object "
                          "store URL")
    return storage


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
