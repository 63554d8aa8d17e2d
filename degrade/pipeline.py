"""The build: sources -> samples -> atomic WebDataset shards + manifest, resumable and parallel.

Determinism (DESIGN.md section 5): the sorted input list alone decides which sample goes into
which shard, each sample's randomness comes from (seed, recipe hash, key), and shards are
written byte-for-byte reproducibly, so any number of workers gives identical shards. A shard is
the unit of work: a worker writes it to a temp name and renames it when complete. After each
shard the main process rewrites ``manifest.partial.json``; a rerun of the same command keeps the
shards whose checksum matches and redoes the rest. ``manifest.json`` is written last.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ssr_datasets.errors import ConfigError, InputError
from ssr_datasets.manifest import MANIFEST_FORMAT, MANIFEST_NAME
from ssr_datasets.schema import SCHEMA_VERSION
from ssr_datasets.shards import ShardInfo, sha256_file, shard_name, write_json_atomic, write_shard
from ssr_datasets.sources import SourceItem, list_items, load_item

from . import __version__
from .depth import DepthRequest
from .executor import Counter, run_parallel, single_thread
from .ops import blur
from .preview import write_shard_preview
from .recipes import Recipe

PARTIAL_NAME = "manifest.partial.json"
PREVIEW_NAME = "preview.png"
PREVIEW_ROWS = 4


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the bytes of a shard set (workers and output folder do not)."""

    recipe: Recipe
    source: str = "sample"
    root: str | None = None
    depth: DepthRequest = "auto"
    seed: int = 0
    samples_per_image: int = 1
    crop: tuple[int, int] | None = None
    shard_size: int = 64
    max_images: int | None = None
    split: str = "train"

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config as JSON-able data (the recipe by name and hash)."""
        d = asdict(self)
        d["recipe"] = {"name": self.recipe.name, "hash": self.recipe.hash}
        d["crop"] = list(self.crop) if self.crop else None
        return d

    @property
    def hash(self) -> str:
        """Return the sha256 of the canonical JSON of the config."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: the (item, variant-count) inputs of one shard, in order."""

    index: int
    name: str
    items: tuple[SourceItem, ...]


@dataclass
class ShardResult:
    """What a worker reports for one shard."""

    index: int
    info: ShardInfo | None  # None when every input of the shard was skipped
    skipped: list[dict[str, str]]
    seconds: dict[str, float]
    depth_providers: dict[str, int]
    truncation: dict[str, float] = field(default_factory=dict)  # {"warned": n, "worst": mass}


@dataclass
class BuildResult:
    """Summary of a finished build."""

    out_dir: Path
    manifest: dict[str, Any]
    reused_shards: int
    built_shards: int
    seconds: float
    preview: Path | None
    warnings: list[str] = field(default_factory=list)


def validate_config(config: BuildConfig) -> None:
    """Raise ConfigError for options that cannot work together."""
    s = config.recipe.scale
    if config.samples_per_image < 1:
        raise ConfigError(f"--samples-per-image must be >= 1, got {config.samples_per_image}")
    if config.shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {config.shard_size}")
    if config.max_images is not None and config.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {config.max_images}")
    if config.crop is not None:
        ch, cw = config.crop
        if ch % s or cw % s or ch < config.recipe.kernel_size or cw < config.recipe.kernel_size:
            raise ConfigError(
                f"--crop {ch} {cw}: both sides must be multiples of the scale {s} and at least "
                f"the kernel size {config.recipe.kernel_size}"
            )
    if not config.split.replace("_", "").isalnum():
        raise ConfigError(f"--split must be letters, digits or '_', got {config.split!r}")


def plan(config: BuildConfig) -> list[ShardTask]:
    """List the inputs and cut them into shards; depends only on the sorted input list."""
    items = list_items(config.source, Path(config.root) if config.root else None)
    if config.max_images is not None:
        items = items[: config.max_images]
    if not items:
        where = f" under {config.root}" if config.root else ""
        raise ConfigError(f"source {config.source!r} has no images{where}")
    # Whole images per shard keep an image's variants together (they share the depth pass).
    per_shard = max(1, config.shard_size // config.samples_per_image)
    return [
        ShardTask(i, shard_name(config.split, i), tuple(items[start:start + per_shard]))
        for i, start in enumerate(range(0, len(items), per_shard))
    ]


def run_shard(task: ShardTask, config: BuildConfig, out_dir: str,
              ticks: Any = None) -> ShardResult:
    """Degrade every input of one shard and write it atomically; bad inputs become skips."""
    from .sample import StageTimes, make_samples

    times = StageTimes()
    samples, skipped, providers = [], [], {}
    for item in task.items:
        t = time.perf_counter()
        try:
            loaded = load_item(item)
            t = times.add("load", t)
            made = make_samples(item, loaded, config.recipe, variants=config.samples_per_image,
                                seed=config.seed, crop=config.crop, depth=config.depth,
                                times=times)
        except InputError as exc:
            skipped.append({"source": item.source, "image_id": item.image_id,
                            "path": item.portable_path, "reason": exc.reason})
        else:
            samples.extend(made)
            name = made[0].meta["depth"]["provider"]
            providers[name] = providers.get(name, 0) + 1
        if ticks is not None:
            ticks.put(1)
    t = time.perf_counter()
    info = write_shard(Path(out_dir) / task.name, samples) if samples else None
    times.add("write", t)
    masses = [smp.meta["truncated_mass"] for smp in samples]
    truncation = {"warned": sum(bool(m["warn"]) for m in masses),
                  "worst": max((m["max"] for m in masses), default=0.0)}
    return ShardResult(task.index, info, skipped, times.seconds, providers, truncation)


def _versions() -> dict[str, str]:
    import cv2
    import numpy
    import scipy
    import skimage
    import torch
    import webdataset

    return {
        "ssr-bench": __version__, "python": platform.python_version(),
        "numpy": numpy.__version__, "scipy": scipy.__version__, "torch": torch.__version__,
        "opencv": cv2.__version__, "scikit-image": skimage.__version__,
        "webdataset": getattr(webdataset, "__version__", "unknown"),
        "platform": platform.platform(), "machine": platform.machine(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # Shards built with and without the compiled kernel agree to float32 precision, not bit
        # for bit: which one ran belongs to the provenance.
        "degrade_c_kernel": "built" if blur._svblur is not None else "absent (pure-torch blur)",
    }


def _owned_files(out_dir: Path) -> list[Path]:
    names = {MANIFEST_NAME, PARTIAL_NAME, PREVIEW_NAME}
    return [p for p in out_dir.iterdir()
            if p.name in names or p.suffix == ".tar" or p.name.endswith(".tmp")]


def _task_inputs(task: ShardTask) -> list[str]:
    return [item.image_id for item in task.items]


def _load_previous(out_dir: Path, config: BuildConfig, overwrite: bool,
                   tasks: Sequence[ShardTask]) -> dict[int, ShardResult]:
    """Return the shards a previous run of the same build completed (checksums verified).

    A shard is kept only if it holds the same inputs as the plan's shard of that index: files
    added to or removed from a folder source shift the assignment, and a stale shard would
    duplicate some samples and drop others.
    """
    if not out_dir.exists():
        return {}
    if not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a folder")
    for tmp in out_dir.glob(".*.tmp"):
        tmp.unlink()  # left by a killed run; never a complete shard
    state = None
    for name in (MANIFEST_NAME, PARTIAL_NAME):
        path = out_dir / name
        if path.exists():
            try:
                state = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                state = None
            break
    owned = _owned_files(out_dir)
    if state is None or state.get("config_hash") != config.hash:
        if not owned:
            return {}
        if not overwrite:
            raise ConfigError(
                f"{out_dir} holds a different build (other options, recipe or version); pass "
                "--overwrite to replace it, or choose another --out"
            )
        for p in owned:
            p.unlink()
        return {}
    if overwrite:
        for p in owned:
            p.unlink()
        return {}
    done = {}
    planned = {t.index: t for t in tasks}
    for rec in state.get("shard_results", []):
        info = ShardInfo.from_dict(rec["info"]) if rec.get("info") else None
        task = planned.get(rec["index"])
        if task is None or rec.get("inputs") != _task_inputs(task):
            if info is not None:
                (out_dir / info.name).unlink(missing_ok=True)  # stale: rebuilt or not planned
            continue
        if info is not None:
            path = out_dir / info.name
            if not path.is_file() or path.stat().st_size != info.bytes or sha256_file(path) != info.sha256:
                continue
        done[rec["index"]] = ShardResult(rec["index"], info, rec["skipped"], rec["seconds"],
                                         rec["depth_providers"], rec["truncation"])
    return done


def _manifest(config: BuildConfig, results: dict[int, ShardResult], tasks: Sequence[ShardTask],
              command: str, seconds: float, complete: bool) -> dict[str, Any]:
    ordered = [results[t.index] for t in tasks if t.index in results]
    tasks_by_index = {t.index: t for t in tasks}
    stage: dict[str, float] = {}
    providers: dict[str, int] = {}
    for r in ordered:
        for k, v in r.seconds.items():
            stage[k] = stage.get(k, 0.0) + v
        for k, v in r.depth_providers.items():
            providers[k] = providers.get(k, 0) + v
    shards = [r.info.to_dict() for r in ordered if r.info is not None]
    skipped = [s for r in ordered for s in r.skipped]
    truncation = {"warned": sum(r.truncation.get("warned", 0) for r in ordered),
                  "worst": max((r.truncation.get("worst", 0.0) for r in ordered), default=0.0)}
    images = sum(len(t.items) for t in tasks if t.index in results)
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "complete": complete,
        "command": command,
        "config": config.to_dict(),
        "config_hash": config.hash,
        "recipe": config.recipe.to_dict(),
        "recipe_hash": config.recipe.hash,
        "versions": _versions(),
        "split": config.split,
        "shards": shards,
        "skipped": skipped,
        "depth_providers": providers,
        "truncated_mass": truncation,
        "totals": {"samples": sum(s["count"] for s in shards), "images": images,
                   "skipped": len(skipped), "shards": len(shards)},
        "timings": {"seconds": round(seconds, 3),
                    "stage_seconds": {k: round(v, 3) for k, v in sorted(stage.items())}},
        "shard_results": [
            {"index": r.index, "info": r.info.to_dict() if r.info else None,
             "skipped": r.skipped, "seconds": r.seconds, "depth_providers": r.depth_providers,
             "truncation": r.truncation, "inputs": _task_inputs(tasks_by_index[r.index])}
            for r in ordered
        ],
    }


def build(
    config: BuildConfig,
    out_dir: Path,
    *,
    workers: int = 1,
    overwrite: bool = False,
    strict: bool = False,
    command: str | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    preview: bool = True,
) -> BuildResult:
    """Build (or resume) a shard set in ``out_dir``; ``on_progress(done_images, total_images)``.

    Raises:
        ConfigError: invalid options, or ``out_dir`` holds another build without ``overwrite``.
        InputError: ``strict`` and an input was skipped (the shards built so far are kept).
        KeyboardInterrupt: left resumable; rerun the same command to continue.
    """
    validate_config(config)
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    command = command or " ".join(shlex.quote(a) for a in sys.argv)
    start = time.perf_counter()
    tasks = plan(config)
    out_dir = Path(out_dir)
    results = _load_previous(out_dir, config, overwrite, tasks)
    reused = len(results)
    if strict:  # a skip recorded by an earlier (failed) --strict run must fail this one too
        for index in sorted(results):
            if results[index].skipped:
                raise _strict_error(results[index].skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    total_images = sum(len(t.items) for t in tasks)
    done_images = sum(len(t.items) for t in tasks if t.index in results)
    todo = [t for t in tasks if t.index not in results]
    if on_progress:
        on_progress(done_images, total_images)

    def finished(res: ShardResult) -> None:
        results[res.index] = res
        write_json_atomic(out_dir / PARTIAL_NAME, _manifest(
            config, results, tasks, command, time.perf_counter() - start, complete=False))
        if strict and res.skipped:
            raise _strict_error(res.skipped)

    if workers == 1 or len(todo) <= 1:
        # One thread as in the workers, then give the caller its own settings back.
        import cv2
        import torch

        threads = (torch.get_num_threads(), cv2.getNumThreads())
        single_thread()
        try:
            for task in todo:
                counter = Counter(lambda n: on_progress and on_progress(n, total_images),
                                  done_images)
                finished(run_shard(task, config, str(out_dir), counter))
                done_images = counter.value
        finally:
            torch.set_num_threads(threads[0])
            cv2.setNumThreads(threads[1])
    else:
        run_parallel(run_shard, [(t, config, str(out_dir)) for t in todo], workers, finished,
                     lambda n: on_progress and on_progress(n, total_images), done_images)

    seconds = time.perf_counter() - start
    manifest = _manifest(config, results, tasks, command, seconds, complete=True)
    warnings = _warnings(manifest)
    preview_path = None
    if preview and manifest["shards"]:
        preview_path = out_dir / PREVIEW_NAME
        write_shard_preview(out_dir / manifest["shards"][0]["name"], preview_path, PREVIEW_ROWS)
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    (out_dir / PARTIAL_NAME).unlink(missing_ok=True)
    return BuildResult(out_dir, manifest, reused, len(todo), seconds, preview_path, warnings)


def _strict_error(skipped: list[dict[str, str]]) -> InputError:
    first = skipped[0]
    return InputError(first["path"], f"{first['reason']} (--strict makes any skip an error)")


def _warnings(manifest: dict[str, Any]) -> list[str]:
    out = []
    trunc = manifest["truncated_mass"]
    if trunc["warned"]:
        k = manifest["recipe"]["kernel_size"]
        out.append(f"{trunc['warned']} sample(s) lose more than 1% of a kernel's mass to the "
                   f"{k}x{k} window (worst {trunc['worst']:.2%}); a larger --kernel-size keeps it")
    if manifest["totals"]["skipped"]:
        reasons = {}
        for s in manifest["skipped"]:
            reasons.setdefault(s["reason"], []).append(s["image_id"])
        for reason, ids in reasons.items():
            out.append(f"skipped {len(ids)} input(s) ({', '.join(ids[:3])}"
                       f"{', ...' if len(ids) > 3 else ''}): {reason}")
    return out
