"""Cutting a build into units of work: the sorted input list alone decides the shards.

Determinism (DESIGN.md section 5): which sample goes into which shard depends only on the
sorted input list (never on worker count or completion order), so any number of workers gives
byte-identical shards.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ssr_core.errors import ConfigError
from ssr_datasets.shards import shard_name
from ssr_datasets.sources import list_items, require_build_source

from .config import BuildConfig, ShardTask, shard_prefix, source_split


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


def for_workers(task: ShardTask) -> ShardTask:
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
