"""What a build leaves behind: the manifest it writes, and the state a rerun resumes from.

After every shard the pipeline rewrites ``manifest.partial.json`` (the same document as the
final manifest, with ``complete: false``); a rerun of the same config keeps each recorded shard
whose inputs, size and sha256 still match, and everything else is redone.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from typing import Any

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.manifest import MANIFEST_FORMAT, MANIFEST_NAME
from ssr_datasets.schema import SCHEMA_VERSION
from ssr_datasets.shards import ShardInfo
from ssr_datasets.storage import Storage, is_temp_name

from .. import __version__
from ..ops import blur
from .config import BuildConfig, ShardResult, ShardTask, shard_prefix

PARTIAL_NAME = "manifest.partial.json"
PREVIEW_NAME = "preview.png"


def versions(device: str = "cpu") -> dict[str, str]:
    """Return the versions and platform that decide a build's bytes (device builds add the GPU)."""
    import cv2
    import numpy
    import scipy
    import skimage
    import torch
    import webdataset

    out = {
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
    if torch.device(device).type == "cuda":
        # Same command, GPU model and these versions -> same bytes (README, reproducibility).
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        out["cuda"] = str(torch.version.cuda)
        out["triton"] = _version_of("triton")
    return out


def _version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "absent"


def owned_files(storage: Storage) -> list[str]:
    """Return the names in the folder that a build writes (manifests, preview, shards, temps)."""
    names = {MANIFEST_NAME, PARTIAL_NAME, PREVIEW_NAME}
    return [n for n in storage.listdir()
            if n in names or n.endswith(".tar") or n.endswith(".tmp")]


def task_inputs(task: ShardTask) -> list[str]:
    """Return the image ids of a shard's inputs, in order (what a resumed shard must match)."""
    return [item.image_id for item in task.items]


def load_previous(storage: Storage, config: BuildConfig, overwrite: bool,
                  tasks: Sequence[ShardTask]) -> dict[int, ShardResult]:
    """Return the shards a previous run of the same build completed (checksums verified).

    A shard is kept only if it holds the same inputs as the plan's shard of that index: files
    added to or removed from a folder source shift the assignment, and a stale shard would
    duplicate some samples and drop others.

    Raises:
        ConfigError: the folder holds another build (or an unreadable state) and not
            ``overwrite``.
    """
    if not storage.is_folder():
        return {}
    if storage.local is None:  # object stores: no pid to ask (local: remove_stale_temps)
        _remove_temps(storage)
    state = _read_state(storage)
    # Same config but another schema version: other bytes (schema.py), so another build.
    same = (state is not None and state.get("config_hash") == config.hash
            and state.get("schema_version") == SCHEMA_VERSION)
    if not same or overwrite:
        _clear_or_refuse(storage, same_build=same, overwrite=overwrite)
        return {}
    return _verified_results(storage, state, tasks)


def _remove_temps(storage: Storage) -> None:
    """Remove the temp files a killed run left (never a complete shard)."""
    for name in storage.listdir():
        if is_temp_name(name):
            storage.remove(name)


def _read_state(storage: Storage) -> dict[str, Any] | None:
    """Return the final manifest, else the partial one; None if absent or unreadable."""
    for name in (MANIFEST_NAME, PARTIAL_NAME):
        if storage.exists(name):
            try:
                return json.loads(storage.read_bytes(name))
            except (OSError, json.JSONDecodeError):
                return None
    return None


def _clear_or_refuse(storage: Storage, *, same_build: bool, overwrite: bool) -> None:
    """Remove the build files in the folder, or refuse to replace a different build.

    Raises:
        ConfigError: the folder holds files of another build and not ``overwrite``.
    """
    owned = owned_files(storage)
    if not owned:
        return
    if not (overwrite or same_build):
        raise ConfigError(
            f"{storage.location} holds a different build (other options, recipe or version); "
            "pass --overwrite to replace it, or choose another --out"
        )
    for name in owned:
        storage.remove(name)


def _verified_results(storage: Storage, state: dict[str, Any],
                      tasks: Sequence[ShardTask]) -> dict[int, ShardResult]:
    """Return the recorded shards whose inputs, size and sha256 still match the plan.

    A recorded shard whose inputs changed (or that is no longer planned) is removed.
    """
    done = {}
    planned = {t.index: t for t in tasks}
    for rec in state.get("shard_results", []):
        info = ShardInfo.from_dict(rec["info"]) if rec.get("info") else None
        task = planned.get(rec["index"])
        if task is None or rec.get("inputs") != task_inputs(task):
            if info is not None:
                storage.remove(info.name)  # stale: rebuilt or not planned
            continue
        if info is not None:
            if (not storage.exists(info.name) or storage.size(info.name) != info.bytes
                    or storage.sha256(info.name) != info.sha256):
                continue
        done[rec["index"]] = ShardResult(rec["index"], info, rec["skipped"], rec["seconds"],
                                         rec["depth_providers"], rec["truncation"],
                                         rec.get("cpu_seconds", {}))
    return done


def build_manifest(config: BuildConfig, results: dict[int, ShardResult],
                   tasks: Sequence[ShardTask], command: str, seconds: float,
                   complete: bool) -> dict[str, Any]:
    """Return the manifest of the shards finished so far (``complete`` once all are)."""
    ordered = [results[t.index] for t in tasks if t.index in results]
    tasks_by_index = {t.index: t for t in tasks}
    stage: dict[str, float] = {}
    cpu: dict[str, float] = {}  # CPU time per stage, summed over processes and threads
    providers: dict[str, int] = {}
    for r in ordered:
        for k, v in r.seconds.items():
            stage[k] = stage.get(k, 0.0) + v
        for k, v in r.cpu_seconds.items():
            cpu[k] = cpu.get(k, 0.0) + v
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
        "versions": versions(config.device),
        "split": shard_prefix(config),
        "shards": shards,
        "skipped": skipped,
        "depth_providers": providers,
        "truncated_mass": truncation,
        "totals": {"samples": sum(s["count"] for s in shards), "images": images,
                   "skipped": len(skipped), "shards": len(shards)},
        "timings": {"seconds": round(seconds, 3),
                    "stage_seconds": {k: round(v, 3) for k, v in sorted(stage.items())},
                    "stage_cpu_seconds": {k: round(v, 3) for k, v in sorted(cpu.items())}},
        "shard_results": [
            {"index": r.index, "info": r.info.to_dict() if r.info else None,
             "skipped": r.skipped, "seconds": r.seconds, "cpu_seconds": r.cpu_seconds,
             "depth_providers": r.depth_providers,
             "truncation": r.truncation, "inputs": task_inputs(tasks_by_index[r.index])}
            for r in ordered
        ],
    }


def strict_error(skipped: list[dict[str, str]]) -> InputError:
    """Return the error that ``--strict`` raises for the first recorded skip."""
    first = skipped[0]
    return InputError(first["path"], f"{first['reason']} (--strict makes any skip an error)")


def build_warnings(manifest: dict[str, Any]) -> list[str]:
    """Return one line per thing a user should know: truncated kernels, skipped inputs."""
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
