"""Tests for the learned depth providers (midas, depth-anything): loading, errors, outputs, cache.

No network: every model is a tiny randomly initialized DPT / DPT-hybrid / Depth Anything saved
with ``save_pretrained`` under tmp_path, and HF_HUB_OFFLINE=1 throughout.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

import degrade.depth as depth  # noqa: E402
from degrade.depth import (  # noqa: E402
    LEARNED_PROVIDERS,
    check_depth_provider,
    estimate_nearness,
    estimate_nearness_batch,
    resolve_depth,
)
from degrade.depth import learned as learned_mod  # noqa: E402
from degrade.depth import weights as weights_mod  # noqa: E402
from degrade.depth.cache import DepthCache  # noqa: E402
from degrade.depth.learned import LearnedDepth, relative_to_nearness  # noqa: E402
from ssr_core.errors import ConfigError, MissingAssetError  # noqa: E402
from tests.degrade.tiny_depth_models import (  # noqa: E402
    tiny_depth_anything,
    tiny_dpt,
    tiny_hybrid,
    weights_dir_with,
)

MIDAS = "Intel/dpt-hybrid-midas"
DA_SMALL = "depth-anything/Depth-Anything-V2-Small-hf"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints, built once: name -> folder."""
    root = tmp_path_factory.mktemp("tiny-depth-models")
    return {"hybrid": tiny_hybrid(root / "hybrid"), "dpt": tiny_dpt(root / "dpt"),
            "da": tiny_depth_anything(root / "da")}


@pytest.fixture(autouse=True)
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No network, an empty HF cache, no configured weights dir, no model kept from another test."""
    hub = tmp_path / "hf-hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.delenv(weights_mod.WEIGHTS_ENV, raising=False)
    learned_mod._SHARED.clear()
    return hub


def _images(sizes: list[tuple[int, int]], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]


# --- relative_to_nearness ------------------------------------------------------------------


def test_relative_to_nearness_matches_hand_computation() -> None:
    # 0, 1, ..., 100: numpy's linear percentiles 2 and 98 are exactly 2 and 98, so
    # n = clip((x - 2) / 96, 0, 1).
    pred = np.arange(101, dtype=np.float32).reshape(1, 101)
    near = relative_to_nearness(pred, 2.0, 98.0)
    expected = [min(max((x - 2.0) / 96.0, 0.0), 1.0) for x in range(101)]
    np.testing.assert_allclose(near[0], expected, atol=1e-7)
    assert near.dtype == np.float32 and near[0, 50] == pytest.approx(0.5)


def test_relative_to_nearness_edge_cases() -> None:
    assert np.all(relative_to_nearness(np.full((3, 4), 7.0)) == 0.5)
    near = relative_to_nearness(np.array([[0.0, 1.0, np.nan, 2.0]]), 0, 100)
    np.testing.assert_array_equal(near, [[0.0, 0.5, 0.0, 1.0]])
    with pytest.raises(ConfigError, match="lo_pct < hi_pct"):
        relative_to_nearness(np.zeros((2, 2)), 98, 2)
    with pytest.raises(ConfigError, match=r"\(H, W\) real array"):
        relative_to_nearness(np.zeros((2, 2, 3)))


# --- loading ---------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["itself", "org--name", "name"])
def test_load_from_weights_dir_layouts(layout: str, models: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "w"
    target = {"itself": root, "org--name": root / "Intel--dpt-hybrid-midas",
              "name": root / "dpt-hybrid-midas"}[layout]
    shutil.copytree(models["hybrid"], target)
    result = estimate_nearness("midas", _images([(40, 56)])[0], None, weights_dir=str(root))
    assert result.nearness.shape == (40, 56)
    assert result.info["model"] == MIDAS and result.info["model_type"] == "dpt"
    assert result.info["revision"] is None and len(result.info["weights_sha256"]) == 64


def test_load_from_fake_hf_cache(models: dict[str, Path], offline: Path) -> None:
    repo = offline / "models--Intel--dpt-hybrid-midas"
    shutil.copytree(models["hybrid"], repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    result = estimate_nearness("midas", _images([(33, 47)])[0], None)
    assert result.nearness.shape == (33, 47)
    assert result.info["revision"] == COMMIT and result.info["weights_sha256"] is None


def test_local_dir_commit_from_hf_download_metadata(models: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "w" / "Intel--dpt-hybrid-midas"
    shutil.copytree(models["hybrid"], folder)
    meta = folder / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text(f"{COMMIT}\netag\n1700000000.0\n")
    info = estimate_nearness("midas", _images([(20, 20)])[0], None, weights_dir=str(tmp_path / "w")).info
    assert info["revision"] == COMMIT


def test_missing_weights_fail_before_any_work(tmp_path: Path, offline: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def no_work(self, rgbs):  # pragma: no cover - must not be reached
        raise AssertionError("an image was processed before the weights were checked")

    monkeypatch.setattr(LearnedDepth, "predict", no_work)
    empty = tmp_path / "empty"
    with pytest.raises(MissingAssetError) as err:
        estimate_nearness_batch("midas", _images([(20, 20)]), [None], ["0" * 64],
                                weights_dir=str(empty))
    msg = str(err.value)
    assert MIDAS in msg and "https://huggingface.co/Intel/dpt-hybrid-midas" in msg
    for place in (empty, empty / "Intel--dpt-hybrid-midas", empty / "dpt-hybrid-midas",
                  offline / "models--Intel--dpt-hybrid-midas" / "snapshots"):
        assert str(place) in msg
    assert f"hf download {MIDAS} --local-dir {empty / 'Intel--dpt-hybrid-midas'}" in msg
    assert f"huggingface-cli download {MIDAS}" in msg and f"--depth-weights {empty}" in msg
    assert "HF_HUB_OFFLINE" in msg
    # the same check is available up front, and downloads stay off while HF_HUB_OFFLINE is set
    with pytest.raises(MissingAssetError, match="Depth-Anything-V2-Base-hf"):
        check_depth_provider("depth-anything", model="base", allow_download=True)


def test_partial_weights_folder_names_only_the_missing_files(models: dict[str, Path],
                                                             tmp_path: Path) -> None:
    # An interrupted copy (configs there, no weights) used to be reported as all files missing,
    # with a fix (allow_download=True) that no command line can give.
    folder = tmp_path / "w" / "Intel--dpt-hybrid-midas"
    shutil.copytree(models["hybrid"], folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(MissingAssetError) as err:
        check_depth_provider("midas", weights_dir=str(tmp_path / "w"))
    msg = str(err.value)
    assert msg.startswith(f"missing depth model {MIDAS} (model.safetensors): put it in {folder};")
    assert f"{folder} holds config.json, preprocessor_config.json already" in msg
    assert "--allow-download" in msg and "allow_download=True" not in msg
    empty = tmp_path / "empty"
    with pytest.raises(MissingAssetError, match=r"\(config.json, preprocessor_config.json, "
                                                r"model.safetensors\): put it in "):
        check_depth_provider("midas", weights_dir=str(empty))


def test_missing_transformers_names_the_extra(monkeypatch: pytest.MonkeyPatch, models: dict[str, Path],
                                              tmp_path: Path) -> None:
    root = weights_dir_with(tmp_path, {MIDAS: models["hybrid"]})
    monkeypatch.setattr(weights_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r'pip install "ssr-bench\[depth\]"'):
        check_depth_provider("midas", weights_dir=str(root))
    assert depth._learned_available(str(root)) is None  # auto falls back to the prior


def test_wrong_checkpoint_type_and_bad_model_names(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"expects a \('depth_anything',\) checkpoint.*'dpt'"):
        check_depth_provider("depth-anything", weights_dir=str(models["hybrid"]))
    with pytest.raises(ConfigError, match=r"hub id 'org/name' or one of \['small', 'base', 'large'\]"):
        check_depth_provider("depth-anything", model="tiny")
    with pytest.raises(ConfigError, match="unknown depth provider 'zoe'"):
        check_depth_provider("zoe")


# --- outputs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", LEARNED_PROVIDERS)
def test_every_learned_provider_contract(provider: str, models: dict[str, Path]) -> None:
    folder = models["hybrid" if provider == "midas" else "da"]
    result = estimate_nearness(provider, _images([(40, 56)])[0], None, weights_dir=str(folder))
    assert result.nearness.shape == (40, 56) and result.nearness.dtype == np.float32
    assert result.nearness.min() == 0.0 and result.nearness.max() == 1.0  # 2/98 pct, clipped
    assert result.info["provider"] == provider
    for key in ("model", "revision", "z_min_m", "z_max_m", "normalization"):
        assert key in result.info
    assert "percentiles 2/98" in result.info["normalization"]
    json.dumps(result.info)


def test_batch_of_different_sizes_is_deterministic_and_batch_invariant(models: dict[str, Path]) -> None:
    # keep_aspect_ratio: the three sizes go through the model at different resolutions
    rgbs = _images([(40, 56), (56, 40), (30, 30), (40, 56)])
    model = LearnedDepth(DA_SMALL, str(models["da"]), batch_size=4, provider="depth-anything")
    preds = model.predict(rgbs)
    assert [p.shape for p in preds] == [r.shape[:2] for r in rgbs]
    assert all(p.dtype == np.float32 for p in preds)
    assert model.forward_calls == 3  # one batch per processed size
    again = LearnedDepth(DA_SMALL, str(models["da"]), batch_size=1).predict(rgbs)
    for a, b in zip(preds, again, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # batched vs alone: float32 noise
    for a, b in zip(preds, model.predict(rgbs), strict=True):
        np.testing.assert_array_equal(a, b)  # same call again: same bits


def test_batch_size_splits_forward_passes(models: dict[str, Path]) -> None:
    model = LearnedDepth("Intel/dpt-large", str(models["dpt"]), batch_size=2, provider="midas")
    out = model.predict(_images([(24, 32)] * 5))
    assert len(out) == 5 and model.forward_calls == 3  # 2 + 2 + 1
    with pytest.raises(ConfigError, match=r"rgbs\[1\] must be \(H, W, 3\) uint8"):
        model.predict([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
    with pytest.raises(ConfigError, match="batch_size must be an int >= 1"):
        LearnedDepth(MIDAS, batch_size=0)


def test_batch_entry_point_handles_gt_and_prior_per_image() -> None:
    rgbs = _images([(24, 32), (16, 20)])
    depth_m = [np.linspace(1, 5, 24 * 32, dtype=np.float32).reshape(24, 32), None]
    out = estimate_nearness_batch("prior", rgbs, depth_m, ["a" * 64, "b" * 64])
    assert [r.nearness.shape for r in out] == [(24, 32), (16, 20)]
    assert estimate_nearness_batch("gt", rgbs[:1], depth_m[:1], ["a" * 64])[0].info["z_max_m"] == 5.0
    with pytest.raises(ConfigError, match="one entry per image"):
        estimate_nearness_batch("prior", rgbs, depth_m[:1], ["a" * 64])


# --- cache through the batch entry point ---------------------------------------------------------


def test_cache_hit_skips_the_model_and_gives_identical_results(models: dict[str, Path],
                                                              tmp_path: Path) -> None:
    cache = DepthCache(tmp_path / "cache")
    rgbs = _images([(40, 56), (30, 30)])
    shas = ["1" * 64, "2" * 64]
    kw = {"weights_dir": str(models["hybrid"]), "cache": cache}
    first = estimate_nearness_batch("midas", rgbs, [None, None], shas, **kw)
    shared = next(iter(learned_mod._SHARED.values()))
    calls = shared.forward_calls
    assert calls == 1 and len(list(cache.folder.rglob("*.npy"))) == 2  # one batch of two
    second = estimate_nearness_batch("midas", rgbs, [None, None], shas, **kw)
    assert shared.forward_calls == calls  # no model call on hits
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.nearness, b.nearness)  # quantized on a miss too
        assert a.info == b.info
    # one new image: only it goes through the model
    estimate_nearness_batch("midas", rgbs + _images([(20, 20)], seed=1), [None] * 3,
                            shas + ["3" * 64], **kw)
    assert shared.forward_calls == calls + 1


def test_cache_is_keyed_by_model(models: dict[str, Path], tmp_path: Path) -> None:
    cache = DepthCache(tmp_path / "cache")
    rgb, sha = _images([(24, 24)]), ["4" * 64]
    weights = weights_dir_with(tmp_path, {MIDAS: models["hybrid"], "Intel/dpt-large": models["dpt"]})
    a = estimate_nearness_batch("midas", rgb, [None], sha, weights_dir=str(weights), cache=cache)[0]
    b = estimate_nearness_batch("midas", rgb, [None], sha, model="dpt-large",
                                weights_dir=str(weights), cache=cache)[0]
    assert a.info["model"] == MIDAS and b.info["model"] == "Intel/dpt-large"
    assert not np.array_equal(a.nearness, b.nearness)  # the second model really ran
    slugs = sorted(p.name for p in cache.folder.iterdir())
    assert len(slugs) == 2 and slugs[0].startswith("Intel--dpt-hybrid-midas-")


# --- auto ---------------------------------------------------------------------------------------


def test_auto_picks_midas_when_weights_are_present(models: dict[str, Path], tmp_path: Path,
                                                   offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert depth._learned_available() is None
    assert resolve_depth("auto", has_gt=False)[0] == "prior"
    weights = weights_dir_with(tmp_path, {MIDAS: models["hybrid"]})
    name, reason = resolve_depth("auto", has_gt=False, weights_dir=str(weights))
    assert name == "midas" and "found locally" in reason
    assert resolve_depth("auto", has_gt=True, weights_dir=str(weights))[0] == "gt"
    monkeypatch.setenv(weights_mod.WEIGHTS_ENV, str(weights))  # the configured folder
    assert depth._learned_available() == "midas"
    monkeypatch.delenv(weights_mod.WEIGHTS_ENV)
    # the HF cache counts too
    repo = offline / "models--Intel--dpt-hybrid-midas"
    shutil.copytree(models["hybrid"], repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    assert resolve_depth("auto", has_gt=False)[0] == "midas"


def test_auto_falls_back_to_depth_anything_then_prior(models: dict[str, Path], tmp_path: Path) -> None:
    only_da = weights_dir_with(tmp_path, {DA_SMALL: models["da"]})
    assert depth._learned_available(str(only_da)) == "depth-anything"
    assert depth._learned_available(str(models["da"])) == "depth-anything"  # the folder itself
    assert depth._learned_available(str(tmp_path / "nothing")) is None
