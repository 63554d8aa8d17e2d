"""Fixtures for the ssr_datasets tests: tiny synthetic samples and shard folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ssr_core.io import write_json_atomic
from ssr_datasets.manifest import MANIFEST_NAME
from ssr_datasets.schema import SCHEMA_VERSION, Sample
from ssr_datasets.shards import ShardInfo, shard_name, write_shard
from tests.datasets.loopback import server  # noqa: F401 - the loopback HTTP server fixture

SCALE = 2


def tiny_sample(key: str, seed: int = 0, h: int = 8, w: int = 12) -> Sample:
    """Return a valid random sample (HR h x w, scale 2) that exercises full uint16 range."""
    rng = np.random.default_rng(seed)
    s = SCALE
    kernel = np.stack([
        rng.uniform(0.6, 3.5, (h // s, w // s)),
        rng.uniform(0.6, 3.5, (h // s, w // s)),
        rng.uniform(0.0, np.pi - 1e-3, (h // s, w // s)),
    ]).astype(np.float32)
    return Sample(
        key=key,
        hr=rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
        lr=rng.integers(0, 256, (h // s, w // s, 3), dtype=np.uint8),
        nearness=rng.integers(0, 65536, (h, w), dtype=np.uint16),
        kernel_field=kernel,
        meta={"schema_version": SCHEMA_VERSION, "scale": s, "seed": seed, "recipe": "test"},
    )


def write_manifest(out_dir: Path, infos: list[ShardInfo], **extra: object) -> dict:
    """Write a minimal manifest in the pipeline's format for ``infos``."""
    manifest = {
        "format": "ssr-bench-shards",
        "schema_version": SCHEMA_VERSION,
        "package_version": "0.1.0",
        "command": "degrade build --test",
        "config": {"seed": 7},
        "recipe": {"name": "ssr", "scale": SCALE, "kernel_size": 21},
        "recipe_hash": "abc123",
        "versions": {"python": "3.11", "numpy": np.__version__},
        "split": "train",
        "shards": [info.to_dict() for info in infos],
        "skipped": [{"source": "folder", "image_id": "bad", "path": "/x/bad.png",
                     "reason": "corrupt or truncated image"}],
        "totals": {"samples": sum(i.count for i in infos), "images": 5, "skipped": 1},
        "timings": {"seconds": 1.5},
    }
    manifest.update(extra)
    write_json_atomic(out_dir / MANIFEST_NAME, manifest)
    return manifest


@pytest.fixture
def shard_set(tmp_path: Path) -> Callable[..., tuple[Path, list[ShardInfo]]]:
    """Build a shard folder: ``n_shards`` shards of ``per_shard`` samples plus manifest."""

    def build(n_shards: int = 2, per_shard: int = 2) -> tuple[Path, list[ShardInfo]]:
        out = tmp_path / "shards"
        out.mkdir()
        infos = []
        for i in range(n_shards):
            samples = [tiny_sample(f"sample-img{i}_{j}-000", seed=10 * i + j)
                       for j in range(per_shard)]
            infos.append(write_shard(out / shard_name("train", i), samples))
        write_manifest(out, infos)
        return out, infos

    return build


@pytest.fixture
def make_sample() -> Callable[..., Sample]:
    """Return the ``tiny_sample(key, seed=0, h=8, w=12)`` factory."""
    return tiny_sample


@pytest.fixture
def make_manifest() -> Callable[..., dict]:
    """Return the ``write_manifest(out_dir, infos, **extra)`` helper."""
    return write_manifest
