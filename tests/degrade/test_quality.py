"""PSNR and SSIM against independent references (BasicSR/MATLAB convention, DESIGN.md sec. 7).

References are computed from the formulas: BT.601 Y as MATLAB rgb2ycbcr, the direct PSNR
formula, scikit-image's SSIM map restricted to the valid region, and a slow 11x11 window loop
(tests/reference.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from degrade.ops.quality import batch_psnr, psnr, rgb_to_y, ssim, to_float255
from ssr_core.errors import ConfigError
from tests.helpers import image_pair as pair
from tests.helpers import to_tensor
from tests.reference import psnr_direct as psnr_reference
from tests.reference import ssim_direct, ssim_skimage_valid, y_reference


# --- colour ---------------------------------------------------------------------------------
def test_rgb_to_y_matches_matlab_formula_and_range() -> None:
    gt, _ = pair()
    np.testing.assert_allclose(rgb_to_y(gt.astype(np.float64)), y_reference(gt), rtol=0, atol=1e-10)
    extremes = np.array([[[0, 0, 0], [255, 255, 255]]], np.float64)
    np.testing.assert_allclose(rgb_to_y(extremes), [[16.0, 235.0]], atol=1e-10)


def test_float_inputs_are_scaled_not_rounded() -> None:
    x = np.full((2, 2, 3), 0.5004)
    assert to_float255(x)[0, 0, 0] == pytest.approx(0.5004 * 255)
    t = torch.full((1, 3, 2, 2), 0.5004)
    assert to_float255(t)[0, 0, 0] == pytest.approx(0.5004 * 255, abs=1e-4)  # float32 input


# --- PSNR -----------------------------------------------------------------------------------
def test_psnr_matches_direct_formula_on_y() -> None:
    gt, pred = pair()
    assert psnr(gt, pred) == pytest.approx(psnr_reference(y_reference(gt), y_reference(pred)), abs=1e-9)


def test_psnr_rgb_option() -> None:
    gt, pred = pair()
    assert psnr(gt, pred, y_channel=False) == pytest.approx(psnr_reference(gt, pred), abs=1e-9)


def test_psnr_identical_is_inf() -> None:
    gt, _ = pair()
    assert psnr(gt, gt.copy()) == math.inf
    assert psnr(gt, gt, y_channel=False) == math.inf


def test_psnr_crop_border_removes_every_side() -> None:
    gt, pred = pair()
    c = 4
    want = psnr_reference(y_reference(gt)[c:-c, c:-c], y_reference(pred)[c:-c, c:-c])
    assert psnr(gt, pred, crop_border=c) == pytest.approx(want, abs=1e-9)
    # a difference confined to the border frame disappears with the crop, on each side
    for region in (np.s_[:c], np.s_[-c:], np.s_[:, :c], np.s_[:, -c:]):
        edited = gt.copy()
        edited[region] = 255 - edited[region]
        assert psnr(gt, edited, crop_border=c) == math.inf
        assert psnr(gt, edited, crop_border=c - 1) < math.inf


def test_uint8_and_float_inputs_agree() -> None:
    gt, pred = pair()
    ref_psnr, ref_ssim = psnr(gt, pred, 2), ssim(gt, pred, 2)
    for g, p in [(to_tensor(gt), to_tensor(pred)), (to_tensor(gt)[None], to_tensor(pred)[None]),
                 (gt / 255.0, pred / 255.0), (gt, to_tensor(pred))]:
        assert psnr(g, p, 2) == pytest.approx(ref_psnr, abs=1e-4)  # float32 tensors: ~1e-5 dB
        assert ssim(g, p, 2) == pytest.approx(ref_ssim, abs=1e-7)


# --- SSIM -----------------------------------------------------------------------------------
def test_ssim_matches_skimage_valid_region_on_y() -> None:
    gt, pred = pair()
    want = ssim_skimage_valid(y_reference(gt), y_reference(pred))
    assert ssim(gt, pred) == pytest.approx(want, abs=1e-6)


def test_ssim_rgb_is_mean_of_channels() -> None:
    gt, pred = pair(seed=3)
    want = np.mean([ssim_skimage_valid(gt[..., c].astype(float), pred[..., c].astype(float))
                    for c in range(3)])
    assert ssim(gt, pred, y_channel=False) == pytest.approx(want, abs=1e-6)


def test_ssim_matches_direct_window_loop_with_crop() -> None:
    gt, pred = pair(h=26, w=30, seed=1)
    c = 2
    want = ssim_direct(y_reference(gt)[c:-c, c:-c], y_reference(pred)[c:-c, c:-c])
    assert ssim(gt, pred, crop_border=c) == pytest.approx(want, abs=1e-10)


def test_ssim_properties() -> None:
    gt, pred = pair()
    assert ssim(gt, gt) == pytest.approx(1.0, abs=1e-12)
    assert ssim(gt, pred) == pytest.approx(ssim(pred, gt), abs=1e-12)  # symmetric
    assert -1.0 <= ssim(gt, pred) < 1.0


# --- batch PSNR (training validation) ------------------------------------------------------
@pytest.mark.parametrize(("crop", "y_channel"), [(0, True), (3, True), (2, False)])
def test_batch_psnr_matches_the_direct_formula_per_image(crop: int, y_channel: bool) -> None:
    pairs = [pair(h=20, w=24, seed=s) for s in range(3)]
    gt = torch.stack([to_tensor(g) for g, _ in pairs])
    pred = torch.stack([to_tensor(p) for _, p in pairs])
    got = batch_psnr(gt, pred, crop_border=crop, y_channel=y_channel)
    sl = np.s_[crop:-crop, crop:-crop] if crop else np.s_[:, :]
    ref = [y_reference(g)[sl] if y_channel else g[sl] for g, _ in pairs], \
          [y_reference(p)[sl] if y_channel else p[sl] for _, p in pairs]
    want = [psnr_reference(a, b) for a, b in zip(*ref, strict=True)]
    assert got.dtype == torch.float64 and got.shape == (3,)
    # float32 inputs k / 255 carry ~3e-8 relative error: ~1e-6 dB
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-5)


def test_batch_psnr_caps_identical_images_and_checks_shapes() -> None:
    x = torch.rand(2, 3, 8, 8)
    assert batch_psnr(x, x.clone()).tolist() == pytest.approx([120.0, 120.0])
    with pytest.raises(ConfigError, match=r"one shape \(B, 3, H, W\), got \(2, 3, 8, 8\) and \(2, 3, 8, 6\)"):
        batch_psnr(x, x[..., :6])
    with pytest.raises(ConfigError, match="crop_border 4 leave no pixel"):
        batch_psnr(x, x, crop_border=4)


# --- input errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(("img", "match"), [
    (np.zeros((8, 8), np.uint8), r"shape \(H, W, 3\).*got \(8, 8\)"),
    (np.zeros((3, 8, 8), np.uint8), r"channels last.*got \(3, 8, 8\)"),
    (np.zeros((8, 8, 3), np.uint16), "dtype uint8.*got uint16"),
    (np.full((8, 8, 3), 1.5), r"\[0, 1\].*range \[1.5, 1.5\]"),
    (np.full((8, 8, 3), np.nan), r"\[0, 1\]"),
    (np.zeros((0, 8, 3), np.uint8), "non-empty"),
    (torch.zeros(3, 8, 8, dtype=torch.uint8), "float tensor.*torch.uint8"),
    (torch.zeros(2, 3, 8, 8), r"\(3, H, W\) or \(1, 3, H, W\), got \(2, 3, 8, 8\)"),
    ([[0, 0, 0]], "got list"),
])
def test_bad_inputs_raise_config_error(img: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        to_float255(img)


def test_pair_errors() -> None:
    gt, pred = pair()
    with pytest.raises(ConfigError, match=r"differ in size: gt \(40, 52\).*pred \(40, 50\)"):
        psnr(gt, pred[:, :50])
    with pytest.raises(ConfigError, match="crop_border must be an integer >= 0"):
        psnr(gt, pred, crop_border=-1)
    with pytest.raises(ConfigError, match=r"leaves less than 11x11"):
        ssim(gt, pred, crop_border=15)
