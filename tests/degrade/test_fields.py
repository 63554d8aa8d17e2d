"""Kernel fields: determinism, ranges, the blur models' formulas, LR nearness and smooth fields."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from degrade.fields import draw_degradation, nearness_at_lr, smooth_random_field
from degrade.recipes import load_recipe, recipe_from_dict
from ssr_core.errors import ConfigError


def _ramp(h: int = 32, w: int = 48) -> np.ndarray:
    """HR nearness in [0, 1] that varies along both axes (a tilted plane)."""
    y, x = np.mgrid[0:h, 0:w]
    return (0.7 * x / (w - 1) + 0.3 * y / (h - 1)).astype(np.float32)


def _draw(recipe, nearness, seed):
    return draw_degradation(recipe, nearness, np.random.default_rng(seed))


def _recipe(**blur):
    return recipe_from_dict({"name": "t", "blur": blur})


@pytest.mark.parametrize("name", ["ssr", "ssr-wide", "cmos-defocus", "iso", "aniso"])
def test_same_seed_same_draw_other_seed_differs(name):
    r, n = load_recipe(name), _ramp()
    a, b, c = _draw(r, n, 5), _draw(r, n, 5), _draw(r, n, 6)
    np.testing.assert_array_equal(a.kernel_field, b.kernel_field)
    assert (a.noise_sigma_255, a.noise_gray, a.jpeg_quality, a.blur_params) == (
        b.noise_sigma_255, b.noise_gray, b.jpeg_quality, b.blur_params)
    assert not np.array_equal(a.kernel_field, c.kernel_field)


@pytest.mark.parametrize("name", ["ssr", "ssr-wide", "cmos-defocus", "iso", "aniso"])
def test_field_shape_dtype_and_ranges(name):
    r = load_recipe(name)
    lo, hi = r.blur.sigma_range_px
    n = _ramp(32, 48)
    for seed in range(8):
        d = _draw(r, n, seed)
        assert d.kernel_field.shape == (3, 8, 12) and d.kernel_field.dtype == np.float32
        s1, s2, th = d.kernel_field
        tol = 1e-6  # float32 storage of float64 values clipped to the range
        assert s1.min() >= lo - tol and s1.max() <= hi + tol
        assert s2.min() >= lo - tol and s2.max() <= hi + tol
        assert th.min() >= 0.0 and th.max() < math.pi


def test_ssr_field_is_spatially_variant_and_anisotropic():
    d = _draw(load_recipe("ssr"), _ramp(64, 64), 3)
    s1, s2, th = d.kernel_field
    assert s1.std() > 0.05 and th.std() > 0.05
    assert (s1 / s2).max() > 1.05


def test_defocus_isotropic_follows_the_documented_formula():
    # anisotropy [1, 1]: s1 = s2 = clip(s_min + (b_max - s_min) |n - focus| / max(focus, 1 - focus))
    r = _recipe(model="defocus", sigma_range_px=[0.6, 3.5], max_blur_range_px=[2.0, 3.0],
                focus_range=[0.3, 0.3], anisotropy_range=[1.0, 1.0])
    levels = np.array([0.0, 0.12, 0.25, 0.3, 0.38, 0.55, 0.72, 1.0])  # distinct |n - focus|
    n_lr = np.tile(levels, (3, 1))  # 3 x 8 LR pixels, constant s x s blocks at HR
    hr = np.kron(n_lr, np.ones((4, 4)))
    d = _draw(r, hr, 11)
    focus, b_max = d.blur_params["focus"], d.blur_params["max_blur_px"]
    assert focus == 0.3 and 2.0 <= b_max <= 3.0
    expected = np.clip(0.6 + (b_max - 0.6) * np.abs(n_lr - 0.3) / 0.7, 0.6, 3.5)
    s1, s2, _ = d.kernel_field
    np.testing.assert_allclose(s1, expected, rtol=1e-6)
    np.testing.assert_array_equal(s1, s2)
    # in focus: the minimum blur; farthest from focus (n = 1): b_max
    assert s1[0, 3] == pytest.approx(0.6, rel=1e-6) and s1[0, 3] == s1.min()
    assert s1[0, -1] == pytest.approx(b_max, rel=1e-6)
    order = np.argsort(np.abs(levels - 0.3))
    assert np.all(np.diff(s1[0, order]) > 0)  # grows strictly with |n - focus|


def test_defocus_anisotropic_keeps_the_blur_size_as_geometric_mean():
    # s1 = b sqrt(rho), s2 = b / sqrt(rho): s1 s2 = b^2 and 1 <= s1 / s2 = rho <= rho_max (unclipped)
    r = _recipe(model="defocus", sigma_range_px=[0.05, 50.0], max_blur_range_px=[2.0, 3.0],
                focus_range=[0.0, 0.0], anisotropy_range=[2.0, 3.0])
    d = _draw(r, _ramp(32, 48) * 0.5 + 0.5, 2)
    b_max, rho_max = d.blur_params["max_blur_px"], d.blur_params["anisotropy_max"]
    n_lr = nearness_at_lr(_ramp(32, 48) * 0.5 + 0.5, 4)
    size = 0.05 + (b_max - 0.05) * n_lr  # focus 0: max(focus, 1 - focus) = 1
    s1, s2, _ = d.kernel_field.astype(np.float64)
    np.testing.assert_allclose(np.sqrt(s1 * s2), size, rtol=1e-5)
    rho = s1 / s2
    assert rho.min() >= 1 - 1e-5 and rho.max() <= rho_max + 1e-5 and rho.max() - rho.min() > 0.1


def test_thin_lens_sigma_is_coc_minus_one_over_four():
    r = load_recipe("cmos-defocus")
    lo, hi = r.blur.sigma_range_px
    hr = _ramp(32, 48)
    for seed in range(4):
        d = _draw(r, hr, seed)
        focus, coc_max = d.blur_params["focus"], d.blur_params["coc_max_px"]
        assert 0.0 <= focus <= 1.0 and 9.0 <= coc_max <= 15.0
        n_lr = hr.astype(np.float64).reshape(8, 4, 12, 4).mean(axis=(1, 3))
        coc = coc_max * np.abs(n_lr - focus) / max(focus, 1.0 - focus)
        expected = np.clip((coc - 1.0) / 4.0, lo, hi)
        np.testing.assert_allclose(d.kernel_field[0], expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(d.kernel_field[0], d.kernel_field[1])
        np.testing.assert_array_equal(d.kernel_field[2], 0.0)


def test_iso_and_aniso_fields_are_constant():
    hr = _ramp(32, 48)
    iso = _draw(load_recipe("iso"), hr, 4)
    sigma = iso.blur_params["sigma_px"]
    assert 0.2 <= sigma <= 4.0
    np.testing.assert_allclose(iso.kernel_field[:2], np.float32(sigma))
    np.testing.assert_array_equal(iso.kernel_field[2], 0.0)
    an = _draw(load_recipe("aniso"), hr, 4)
    p = an.blur_params
    for ch, key in enumerate(("s1_px", "s2_px", "theta")):
        np.testing.assert_array_equal(an.kernel_field[ch], np.float32(p[key]))
    assert 0.0 <= p["theta"] < math.pi and p["model"] == "aniso"


@pytest.mark.parametrize("scale,shape", [(4, (32, 48)), (2, (10, 6)), (3, (27, 12)), (1, (5, 7))])
def test_nearness_at_lr_equals_area_downscale(scale, shape):
    hr = np.random.default_rng(0).random(shape)
    got = nearness_at_lr(hr.astype(np.float32), scale)
    assert got.shape == (shape[0] // scale, shape[1] // scale) and got.dtype == np.float64
    # OpenCV's INTER_AREA at an integer factor is the s x s block mean (peer implementation)
    ref = cv2.resize(hr, (shape[1] // scale, shape[0] // scale), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(got, ref, atol=1e-6)  # got averages the float32 copy of hr


def test_nearness_at_lr_rejects_non_multiples():
    with pytest.raises(ConfigError, match=r"nearness 30x48 is not a multiple of scale 4"):
        nearness_at_lr(np.zeros((30, 48)), 4)
    with pytest.raises(ConfigError, match="not a multiple of scale"):
        draw_degradation(load_recipe("ssr"), np.zeros((32, 50), np.float32), np.random.default_rng(0))


@pytest.mark.parametrize("shape,cells", [((48, 64), 4), ((64, 48), 4), ((30, 90), 3), ((50, 50), 5)])
def test_smooth_random_field_range_shape_and_smoothness(shape, cells):
    f = smooth_random_field(np.random.default_rng(1), shape, cells)
    assert f.shape == shape
    assert f.min() >= -1.0 and f.max() <= 1.0
    assert f.std() > 0.1  # not constant
    # Along the longer side nodes are size/cells pixels apart, take values in [-1, 1] and are joined
    # by smoothstep (slope <= 1.5 per cell): a neighbour step is at most 2 * 1.5 * cells / size.
    # These shapes make the shorter side's spacing the same.
    bound = 3.0 * cells / max(shape) + 1e-12
    assert np.abs(np.diff(f, axis=0)).max() <= bound
    assert np.abs(np.diff(f, axis=1)).max() <= bound


def test_smooth_random_field_determinism():
    a = smooth_random_field(np.random.default_rng(7), (20, 30), 4)
    b = smooth_random_field(np.random.default_rng(7), (20, 30), 4)
    c = smooth_random_field(np.random.default_rng(8), (20, 30), 4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_smooth_random_field_tiny_and_single_cell():
    f = smooth_random_field(np.random.default_rng(0), (1, 5), 4)
    assert f.shape == (1, 5) and np.abs(f).max() <= 1.0
    g = smooth_random_field(np.random.default_rng(0), (16, 16), 1)
    assert g.shape == (16, 16) and np.abs(g).max() <= 1.0


@pytest.mark.parametrize("name,has_noise,has_jpeg", [
    ("ssr", True, True), ("ssr-nonoise", False, True), ("ssr-nojpeg", True, False),
    ("iso", False, False), ("cmos-defocus", False, False),
])
def test_noise_and_jpeg_draws_follow_the_recipe(name, has_noise, has_jpeg):
    r = load_recipe(name)
    d = _draw(r, _ramp(), 9)
    if has_noise:
        assert 1.0 <= d.noise_sigma_255 <= 25.0 and isinstance(d.noise_gray, bool)
    else:
        assert d.noise_sigma_255 is None and d.noise_gray is None
    if has_jpeg:
        assert isinstance(d.jpeg_quality, int) and 30 <= d.jpeg_quality <= 95
    else:
        assert d.jpeg_quality is None


def test_gray_probability_and_inclusive_quality_range():
    r = recipe_from_dict({"name": "t", "blur": {"model": "iso"}, "noise": {"gray_prob": 0.4},
                          "jpeg": {"quality_range": [30, 32]}})
    hr = np.zeros((8, 8), np.float32)
    draws = [_draw(r, hr, seed) for seed in range(1500)]
    gray = np.mean([d.noise_gray for d in draws])
    # binomial standard error sqrt(0.4 * 0.6 / 1500) = 0.0126; allow 4 of them
    assert abs(gray - 0.4) < 0.05
    assert {d.jpeg_quality for d in draws} == {30, 31, 32}  # both ends included
    sig = np.array([d.noise_sigma_255 for d in draws])
    assert sig.min() >= 1.0 and sig.max() <= 25.0 and abs(sig.mean() - 13.0) < 0.6  # U[1, 25]
