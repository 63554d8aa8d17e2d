"""The build with learned depth: fail-fast without weights, batched inference, the depth cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from degrade.build import DepthOptions, build  # noqa: E402
from degrade.depth import learned as learned_mod  # noqa: E402
from degrade.depth import weights as weights_mod  # noqa: E402
from ssr_core.errors import MissingAssetError  # noqa: E402
from tests.degrade.tiny_depth_models import tiny_hybrid, weights_dir_with  # noqa: E402
from tests.helpers import make_config, samples_by_key, shard_bytes  # noqa: E402

MIDAS = "Intel/dpt-hybrid-midas"


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.delenv(weights_mod.WEIGHTS_ENV, raising=False)
    learned_mod._SHARED.clear()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("w")
    return weights_dir_with(root, {MIDAS: tiny_hybrid(root / "src")})


def test_missing_weights_fail_before_any_image_is_read(image_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingAssetError, match="dpt-hybrid-midas.*--depth-weights"):
        build(make_config(image_folder, depth="midas"), tmp_path / "o", command="t")
    assert not (tmp_path / "o").exists()


def test_midas_build_uses_the_model_in_batches_and_the_cache(image_folder: Path, weights: Path,
                                                           tmp_path: Path) -> None:
    opts = DepthOptions(weights_dir=str(weights), cache_dir=str(tmp_path / "cache"), batch_size=4)
    config = make_config(image_folder, depth="midas", shard_size=6)
    first = build(config, tmp_path / "a", command="t", preview=False, depth_options=opts)
    model = next(iter(learned_mod._SHARED.values()))
    assert first.manifest["depth_providers"] == {"midas": 6}
    assert model.forward_calls == 2  # 6 images in batches of 4: two forward passes
    meta = next(iter(samples_by_key(first.out_dir).values())).meta["depth"]
    assert meta["provider"] == "midas" and meta["model"] == MIDAS and meta["relative"] is True
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 6

    # Another recipe over the same images: depth comes from the cache, no forward pass.
    other = make_config(image_folder, recipe="cmos-defocus", depth="midas", shard_size=6)
    second = build(other, tmp_path / "b", command="t", preview=False, depth_options=opts)
    assert model.forward_calls == 2
    near_a = {k: s.nearness for k, s in samples_by_key(first.out_dir).items()}
    near_b = {k: s.nearness for k, s in samples_by_key(second.out_dir).items()}
    assert all(np.array_equal(near_a[k], near_b[k]) for k in near_a)

    # Cache state never changes the bytes: a cold build without the cache is identical.
    cold = build(config, tmp_path / "c", command="t", preview=False,
                 depth_options=DepthOptions(weights_dir=str(weights), use_cache=False))
    assert shard_bytes(cold.out_dir) == shard_bytes(first.out_dir)


def test_auto_picks_the_learned_model_when_its_weights_are_on_disk(image_folder: Path,
                                                                   weights: Path,
                                                                   tmp_path: Path) -> None:
    opts = DepthOptions(weights_dir=str(weights), use_cache=False)
    result = build(make_config(image_folder, depth="auto"), tmp_path / "o", command="t",
                   preview=False, depth_options=opts)
    assert result.manifest["depth_providers"] == {"midas": 6}
    without = build(make_config(image_folder, depth="auto"), tmp_path / "p", command="t",
                    preview=False, depth_options=DepthOptions(use_cache=False))
    assert without.manifest["depth_providers"] == {"prior": 6}
