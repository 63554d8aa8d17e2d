"""Tests for degrade.depth: the registry, resolve_depth, and the gt and prior providers."""

from __future__ import annotations

import json
import typing

import numpy as np
import pytest

import degrade.depth as depth
from degrade.depth import (
    DEPTH_PROVIDERS,
    LEARNED_PROVIDERS,
    DepthRequest,
    DepthResult,
    estimate_nearness,
    resolve_depth,
)
from degrade.depth.gt import gt_nearness, nearness_to_depth
from degrade.depth.prior import prior_nearness
from ssr_core.errors import ConfigError, InputError

RNG_RGB = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)


# --- registry and resolve_depth -------------------------------------------------------------


@pytest.fixture
def no_local_weights(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty Hugging Face cache and no configured weights folder (the developer's may hold MiDaS)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("SSR_BENCH_DEPTH_WEIGHTS", raising=False)


def test_registry_matches_public_names() -> None:
    assert DEPTH_PROVIDERS == depth.PROVIDERS.names() == ("gt", "prior", "midas", "depth-anything")
    assert typing.get_args(DepthRequest) == ("auto", *DEPTH_PROVIDERS)


# the learned providers' contract test (tiny local models) is in test_depth_learned.py
@pytest.mark.parametrize("provider", [p for p in DEPTH_PROVIDERS if p not in LEARNED_PROVIDERS])
def test_every_provider_contract(provider: str) -> None:
    depth_m = np.linspace(1.0, 9.0, 40 * 56, dtype=np.float32).reshape(40, 56)
    result = estimate_nearness(provider, RNG_RGB, depth_m)
    assert isinstance(result, DepthResult)
    assert result.nearness.shape == (40, 56) and result.nearness.dtype == np.float32
    assert result.nearness.min() >= 0.0 and result.nearness.max() <= 1.0
    assert result.info["provider"] == provider
    for key in ("model", "z_min_m", "z_max_m", "normalization"):
        assert key in result.info
    json.dumps(result.info)  # must be json-serializable as is


def test_resolve_auto_with_gt() -> None:
    assert resolve_depth("auto", has_gt=True)[0] == "gt"


def test_resolve_auto_without_gt_falls_back_to_prior(no_local_weights: None) -> None:
    name, reason = resolve_depth("auto", has_gt=False)
    assert name == "prior" and "no learned depth weights" in reason


def test_resolve_auto_prefers_local_learned_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(depth, "_learned_available", lambda: "midas")
    name, reason = resolve_depth("auto", has_gt=False)
    assert name == "midas" and "midas" in reason
    assert resolve_depth("auto", has_gt=True)[0] == "gt"  # ground truth still wins


def test_learned_hook_is_none_without_local_weights(no_local_weights: None) -> None:
    assert depth._learned_available() is None


@pytest.mark.parametrize("has_gt", [True, False])
def test_resolve_explicit_prior(has_gt: bool) -> None:
    assert resolve_depth("prior", has_gt=has_gt) == ("prior", "requested: prior")


def test_resolve_explicit_gt() -> None:
    assert resolve_depth("gt", has_gt=True) == ("gt", "requested: gt")


def test_resolve_gt_without_gt_depth_fails() -> None:
    with pytest.raises(ConfigError, match="no ground-truth depth"):
        resolve_depth("gt", has_gt=False)


def test_resolve_unknown_request_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown depth request 'zoe'.*'auto', 'gt', 'prior', "
                                          r"'midas', 'depth-anything'"):
        resolve_depth("zoe", has_gt=False)  # type: ignore[arg-type]


def test_estimate_unknown_provider_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown depth provider 'zoe'; choose one of: gt, prior, midas, "
                                          r"depth-anything"):
        estimate_nearness("zoe", RNG_RGB, None)


def test_estimate_gt_needs_matching_depth() -> None:
    with pytest.raises(ConfigError, match="needs depth_m"):
        estimate_nearness("gt", RNG_RGB, None)
    with pytest.raises(ConfigError, match=r"does not match rgb \(H, W\) \(40, 56\)"):
        estimate_nearness("gt", RNG_RGB, np.ones((40, 55), np.float32))


def test_estimate_rejects_bad_rgb() -> None:
    with pytest.raises(ConfigError, match=r"\(H, W, 3\)"):
        estimate_nearness("prior", RNG_RGB[..., 0], None)


# --- gt ----------------------------------------------------------------------------------------


def test_gt_round_trip_and_extremes() -> None:
    rng = np.random.default_rng(1)
    depth_m = rng.uniform(0.5, 10.0, (30, 40)).astype(np.float32)
    near, info = gt_nearness(depth_m)
    assert info["z_min_m"] == float(depth_m.min()) and info["z_max_m"] == float(depth_m.max())
    # float32 nearness carries ~6e-8 absolute error; d z / z = z * (1/z_min - 1/z_max) * dn,
    # at most 20 * 6e-8 ~ 1e-6 here, so rtol 5e-6 is float32 precision with a margin.
    back = nearness_to_depth(near, info["z_min_m"], info["z_max_m"])
    np.testing.assert_allclose(back, depth_m, rtol=5e-6)
    assert near[np.unravel_index(depth_m.argmin(), depth_m.shape)] == 1.0
    assert near[np.unravel_index(depth_m.argmax(), depth_m.shape)] == 0.0


def test_gt_is_monotonic_decreasing_in_depth() -> None:
    depth_m = np.linspace(0.3, 80.0, 500, dtype=np.float32)[None, :]
    near, _ = gt_nearness(depth_m)
    assert np.all(np.diff(near[0]) <= 0) and np.all(np.diff(near[0])[:100] < 0)


def test_gt_matches_inverse_depth_formula() -> None:
    # independent check of the convention 1/z = 1/z_max + n (1/z_min - 1/z_max): z = 2 m between
    # 1 m and 4 m has 1/2 = 1/4 + n * (1 - 1/4), so n = 1/3.
    near, _ = gt_nearness(np.array([[1.0, 2.0, 4.0]], dtype=np.float32))
    np.testing.assert_allclose(near, [[1.0, 1.0 / 3.0, 0.0]], atol=1e-7)


def test_gt_constant_depth() -> None:
    near, info = gt_nearness(np.full((4, 5), 3.0, dtype=np.float32))
    assert np.all(near == 0.5) and "constant" in info["note"]
    np.testing.assert_allclose(nearness_to_depth(near, info["z_min_m"], info["z_max_m"]), 3.0)


def test_gt_invalid_pixels_are_filled_from_nearest_valid() -> None:
    depth_m = np.full((5, 6), 2.0, dtype=np.float32)
    depth_m[:, 3:] = 8.0
    depth_m[0, 0], depth_m[4, 5], depth_m[2, 2] = 0.0, np.nan, np.inf
    near, info = gt_nearness(depth_m)
    assert near[0, 0] == 1.0 and near[4, 5] == 0.0 and near[2, 2] == 1.0
    assert info["invalid_fraction"] == pytest.approx(3 / 30)
    assert info["z_min_m"] == 2.0 and info["z_max_m"] == 8.0


def test_gt_errors() -> None:
    with pytest.raises(InputError, match="no valid depth"):
        gt_nearness(np.zeros((3, 3), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"\(H, W\) float array"):
        gt_nearness(np.ones((3, 3), dtype=np.uint16))
    with pytest.raises(ConfigError, match="z_min_m <= z_max_m"):
        nearness_to_depth(np.zeros((2, 2)), 5.0, 1.0)


# --- prior -------------------------------------------------------------------------------------


def _square_scene(size: int = 128) -> tuple[np.ndarray, slice]:
    rgb = np.full((size, size, 3), 20, dtype=np.uint8)
    sl = slice(size // 4, 3 * size // 4)
    rgb[sl, sl] = 230
    return rgb, sl


def test_prior_shape_range_deterministic() -> None:
    near, info = prior_nearness(RNG_RGB)
    again, _ = prior_nearness(RNG_RGB.copy())
    assert near.shape == (40, 56) and near.dtype == np.float32
    assert near.min() >= 0.0 and near.max() <= 1.0 and near.max() > near.min()
    assert np.array_equal(near, again)
    json.dumps(info)


def test_prior_featureless_image_is_near_at_bottom() -> None:
    near, _ = prior_nearness(np.full((60, 80, 3), 128, dtype=np.uint8))
    rows = near.mean(axis=1)
    assert rows[-1] > rows[0] + 0.8
    assert np.all(np.diff(rows) > 0)


def test_prior_boundary_follows_object_edge() -> None:
    rgb, sl = _square_scene()
    near, _ = prior_nearness(rgb)
    gy, gx = np.gradient(near.astype(np.float64))
    grad = np.hypot(gy, gx)
    obj = np.zeros(near.shape, bool)
    obj[sl, sl] = True
    # pixels within 1 px of the square's contour
    ring = np.zeros_like(obj)
    lo, hi = sl.start, sl.stop
    ring[lo - 1 : hi + 1, lo - 1 : hi + 1] = True
    ring[lo + 1 : hi - 1, lo + 1 : hi - 1] = False
    assert grad[ring].mean() > 5 * grad[~ring].mean()
    # the largest jumps along the middle column and the middle row sit exactly on the contour
    mid = near.shape[0] // 2
    col_jumps = np.abs(np.diff(near[:, mid]))
    row_jumps = np.abs(np.diff(near[mid, :]))
    assert set(np.argsort(col_jumps)[-2:]) == {lo - 1, hi - 1}
    assert set(np.argsort(row_jumps)[-2:]) == {lo - 1, hi - 1}
    # the object stands out from the ground just above it: nearer than the plain ramp says
    assert near[lo, mid] - near[lo - 1, mid] > 0.1


def test_prior_works_downscaled_and_on_tiny_images() -> None:
    # 768 x 640: the guided filter is fitted at 384 x 320 and applied at full resolution
    large = np.kron(_square_scene(64)[0], np.ones((12, 10, 1), dtype=np.uint8))
    near, info = prior_nearness(large)
    assert near.shape == (768, 640) and "fitted at 320x384" in info["method"]
    assert near[-20:].mean() > near[:20].mean()
    tiny, _ = prior_nearness(np.zeros((1, 1, 3), dtype=np.uint8))
    assert tiny.shape == (1, 1) and 0.0 <= tiny[0, 0] <= 1.0


def test_prior_rejects_bad_input() -> None:
    with pytest.raises(ConfigError, match=r"\(H, W, 3\) uint8, got float32"):
        prior_nearness(np.zeros((4, 4, 3), dtype=np.float32))
