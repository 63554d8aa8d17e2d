"""The build: a source's images become reproducible, resumable WebDataset shards + a manifest.

One concept, five steps, one module each:

- ``config``: what a build is (:class:`BuildConfig` decides the bytes) and its results;
- ``plan``: the sorted input list cut into shards (the only thing that decides the assignment);
- ``shard`` and ``sample``: one shard's inputs loaded, given nearness and degraded (one sample:
  crop, kernel field, blur, noise, JPEG, metadata);
- ``executor``: where shards run (this process, worker processes, a Dask cluster);
- ``state`` and ``run``: the manifest, resumption, and :func:`build` that ties them together.

Determinism (DESIGN.md section 5): the sorted input list alone decides which sample goes into
which shard, each sample's randomness comes from (seed, recipe hash, key), and shards are
written byte-for-byte reproducibly, so any number of workers gives identical shards.
"""

from __future__ import annotations

from ssr_core.errors import ShardsFailedError

from .config import BuildConfig, BuildResult, DepthOptions, ShardResult, ShardTask, validate_config
from .plan import plan
from .run import build
from .shard import run_shard
from .state import PARTIAL_NAME, PREVIEW_NAME

__all__ = [
    "PARTIAL_NAME", "PREVIEW_NAME", "BuildConfig", "BuildResult", "DepthOptions", "ShardResult",
    "ShardTask", "ShardsFailedError", "build", "plan", "run_shard", "validate_config",
]
