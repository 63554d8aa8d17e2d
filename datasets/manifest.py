"""Read, verify and describe a shard set's ``manifest.json``.

The build pipeline writes the manifest last (``shards.write_json_atomic``); this
module only reads it. Format::

    {"format": "ssr-bench-shards", "schema_version": 1, "package_version": ...,
     "command": ..., "config": {...}, "config_hash": ..., "recipe": {...},
     "recipe_hash": ..., "versions": {...}, "split": "train",
     "shards": [ShardInfo.to_dict(), ...], "skipped": [{"source", "image_id",
     "path", "reason"}, ...], "totals": {"samples", "images", "skipped"},
     "timings": {"seconds": ...}}
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ssr_core.errors import InputError

from .schema import READABLE_SCHEMA_VERSIONS
from .shards import ShardInfo, iter_shard
from .storage import Storage

Location = str | os.PathLike[str] | Storage  # a folder: path, fsspec URL or Storage

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "ssr-bench-shards"
#: What ``shards.shard_name`` makes: a bare ``{split}-{index:06d}.tar`` (no ``/``, no ``..``).
_SHARD_NAME = re.compile(r"\w+-\d{6,}\.tar")


def _storage(out_dir: Location) -> Storage:
    return out_dir if isinstance(out_dir, Storage) else Storage(out_dir)


def read_manifest(out_dir: Location) -> dict[str, Any]:
    """Load and sanity-check ``out_dir/manifest.json`` (a local folder or an fsspec URL).

    Raises:
        InputError: The file is missing, not JSON, has the wrong ``format``, an
            unsupported ``schema_version``, no ``shards`` list, or a shard name that is not
            a bare ``{split}-{index:06d}.tar`` (path = the file).
    """
    storage = _storage(out_dir)
    path = storage.url(MANIFEST_NAME)
    try:
        text = storage.read_bytes(MANIFEST_NAME).decode("utf-8")
    except FileNotFoundError as exc:
        raise InputError(path, "no manifest: not a shard folder, or the build did not "
                               "finish (the manifest is written last)") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read manifest: {exc}") from exc
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(path, f"format: expected {MANIFEST_FORMAT!r}, got {got!r}")
    if manifest.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise InputError(path, f"schema_version: this reader knows "
                               f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}, got "
                               f"{manifest.get('schema_version')!r}")
    if not isinstance(manifest.get("shards"), list):
        raise InputError(path, "'shards' must be a list of shard entries")
    # The manifest comes with the folder, which may not be ours: a name such as
    # ../other/train-000000.tar would make readers and `degrade verify` open files outside it.
    # Every reader goes through here, so names are checked once, before any use.
    for i, entry in enumerate(manifest["shards"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        if isinstance(name, str) and not _SHARD_NAME.fullmatch(name):
            raise InputError(path, f"shards[{i}]: shard name {name!r:.80} is not a shard file "
                                   "name: expected a bare {split}-{index:06d}.tar such as "
                                   "train-000000.tar")
    return manifest


def manifest_shards(out_dir: Location, manifest: Mapping[str, Any]) -> list[ShardInfo]:
    """Parse the manifest's shard entries.

    Raises:
        InputError: An entry is malformed (path = the manifest file).
    """
    where = _storage(out_dir).url(MANIFEST_NAME)
    return [ShardInfo.from_dict(d, where) for d in manifest["shards"]]


@dataclass
class VerifyReport:
    """Result of ``verify_shard_set``: ``ok`` is True when ``problems`` is empty."""

    ok: bool
    shards: int
    samples: int
    problems: list[str] = field(default_factory=list)


def _verify_one(storage: Storage, info: ShardInfo, checksums: bool, decode: bool) -> tuple[
        int, list[str]]:
    """Check one shard; return the number of samples decoded and the problems found."""
    if not storage.exists(info.name):
        return 0, [f"{info.name}: missing"]
    problems = []
    size = storage.size(info.name)
    if size != info.bytes:
        problems.append(f"{info.name}: size {size} bytes, manifest says {info.bytes}")
    if checksums:
        digest = storage.sha256(info.name)
        if digest != info.sha256:
            problems.append(f"{info.name}: sha256 {digest[:16]}..., manifest says "
                            f"{info.sha256[:16]}...")
    if len(info.keys) != info.count:
        problems.append(f"{info.name}: manifest count {info.count} but {len(info.keys)} keys")
    if not decode:
        return info.count, problems
    keys: list[str] = []
    try:
        for sample in iter_shard(storage.target(info.name)):
            keys.append(sample.key)
    except InputError as exc:  # SchemaError included
        problems.append(f"{info.name}: {exc}")
        return len(keys), problems
    if keys != list(info.keys):
        problems.append(f"{info.name}: keys differ from the manifest ({len(keys)} in the "
                        f"file, {len(info.keys)} listed)")
    return len(keys), problems


def verify_shard_set(out_dir: Location, checksums: bool = True,
                     decode: bool = True) -> VerifyReport:
    """Check a shard folder against its manifest and report every problem found.

    Checks: each listed shard exists with the recorded size and sha256; every sample
    decodes and validates; keys and counts match the manifest and are unique across
    shards; the totals agree; no unlisted ``*.tar`` lies in the folder.

    Args:
        out_dir: Folder holding ``manifest.json`` and the shards: a path or fsspec URL.
        checksums: Hash every shard (reads every byte).
        decode: Decode and validate every sample (slowest check).

    Raises:
        InputError: The manifest itself is missing or unreadable.
    """
    storage = _storage(out_dir)
    manifest = read_manifest(storage)
    problems: list[str] = []
    infos = []
    for i, entry in enumerate(manifest["shards"]):
        try:
            infos.append(ShardInfo.from_dict(entry, f"{MANIFEST_NAME} shards[{i}]"))
        except InputError as exc:
            problems.append(str(exc))
    samples = 0
    seen_keys: set[str] = set()
    names = [info.name for info in infos]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{dup}: listed more than once")
    for info in infos:
        n, shard_problems = _verify_one(storage, info, checksums, decode)
        samples += n
        problems += shard_problems
        repeated = seen_keys.intersection(info.keys)
        if repeated:
            problems.append(f"{info.name}: {len(repeated)} keys repeat earlier shards, e.g. "
                            f"{sorted(repeated)[0]!r}")
        seen_keys.update(info.keys)
    listed_count = sum(info.count for info in infos)
    total = manifest.get("totals", {}).get("samples") if isinstance(
        manifest.get("totals"), dict) else None
    if total is not None and total != listed_count:
        problems.append(f"totals.samples is {total} but shards list {listed_count}")
    tars = {n for n in storage.listdir() if n.endswith(".tar")}
    for extra in sorted(tars - set(names)):
        problems.append(f"{extra}: tar file not listed in the manifest")
    return VerifyReport(ok=not problems, shards=len(infos), samples=samples, problems=problems)


def describe(out_dir: Location) -> str:
    """Summarize a shard set in a few lines (for ``degrade info``).

    Raises:
        InputError: The manifest is missing or unreadable.
    """
    storage = _storage(out_dir)
    manifest = read_manifest(storage)
    infos = manifest_shards(storage, manifest)
    total_bytes = sum(info.bytes for info in infos)
    samples = sum(info.count for info in infos)
    recipe = manifest.get("recipe") or {}
    config = manifest.get("config") or {}
    stages = [name for name in ("noise", "jpeg") if recipe.get(name) is not None]
    skipped = manifest.get("skipped") or []
    providers = manifest.get("depth_providers") or {}
    where = f" (root {config['root']})" if config.get("root") else ""
    lines = [
        f"shard set   {storage.location}",
        f"command     {manifest.get('command', '?')}",
        f"source      {config.get('source', '?')}{where}",
        f"split       {manifest.get('split', '?')}",
        f"shards      {len(infos)} ({total_bytes / 1e6:.1f} MB, "
        f"{total_bytes / max(len(infos), 1) / 1e6:.1f} MB each on average)",
        f"samples     {samples} ({config.get('samples_per_image', 1)} per image)",
        f"recipe      {recipe.get('name', '?')} (hash {str(manifest.get('recipe_hash', '?'))[:12]}), "
        f"blur {(recipe.get('blur') or {}).get('model', '?')}, {'+'.join(stages) or 'no noise/JPEG'}",
        f"scale       {recipe.get('scale', '?')}, kernel size {recipe.get('kernel_size', '?')}, "
        f"delta {recipe.get('delta', '?')}",
        f"seed        {config.get('seed', '?')}",
        "depth       " + (", ".join(f"{k}: {v} image(s)" for k, v in sorted(providers.items()))
                           or "?"),
        f"skipped     {len(skipped)} input(s)",
    ]
    for entry in skipped[:3]:
        if isinstance(entry, Mapping):
            lines.append(f"  - {entry.get('source', '?')}/{entry.get('image_id', '?')}: "
                         f"{entry.get('reason', '?')}")
    if len(skipped) > 3:
        lines.append(f"  ... and {len(skipped) - 3} more (see {MANIFEST_NAME})")
    versions = manifest.get("versions") or {}
    if isinstance(versions, Mapping) and versions:
        lines.append("versions    " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    return "\n".join(lines)
