"""Fixtures for the ssr_models tests: one tiny shard set built by the real pipeline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from degrade.build import build
from ssr_datasets.manifest import read_manifest
from ssr_datasets.schema import Sample
from ssr_datasets.shards import iter_shard
from tests.helpers import make_config, write_folder

CROP = 16  # HR crop side: 4 LR px at the recipe's x4


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three shards of two 48x64 samples each (recipe ``ssr``, x4, K = 21)."""
    root = tmp_path_factory.mktemp("ssr_models_shards")
    write_folder(root / "images")
    build(make_config(root / "images"), root / "shards", command="test", preview=False)
    return root / "shards"


@pytest.fixture(scope="session")
def samples(shard_dir: Path) -> dict[str, Sample]:
    """Every sample of ``shard_dir`` by key, read directly from the tar files."""
    manifest = read_manifest(shard_dir)
    return {s.key: s for e in manifest["shards"] for s in iter_shard(shard_dir / e["name"])}


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one intra-op torch thread and restore the caller's setting afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny latent SR backbone folder (vqvae/, unet/, scheduler/) saved by diffusers."""
    from tests.ssr_models.tiny_backbone import make_tiny_backbone

    return make_tiny_backbone(tmp_path_factory.mktemp("latent_backbone"))
