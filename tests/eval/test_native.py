"""PSNR and SSIM against independent references (BasicSR/MATLAB convention, DESIGN.md sec. 7).

References are computed here from the formulas: BT.601 Y as MATLAB rgb2ycbcr, the direct PSNR
formula, scikit-image's SSIM map restricted to the valid region, and a slow 11x11 window loop.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from eval.metrics.color import rgb_to_y, to_float255
from eval.metrics.native import PSNR, SSIM, psnr, ssim
from eval.metrics.registry import create_metric, get_metric
from ssr_datasets.errors import ConfigError
from tests.reference import ssim_skimage_valid, y_reference


def psnr_reference(a: np.ndarray, b: np.ndarray) -> float:
    return 10.0 * math.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2))


def pair(h: int = 40, w: int = 52, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth structured uint8 image and a noisy, slightly shifted copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    gt = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).round().astype(np.uint8)
    pred = np.clip(gt + rng.normal(0, 12, gt.shape) + 5, 0, 255).round().astype(np.uint8)
    return gt, pred


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 / BasicSR: mean over every full 11x11 window, Gaussian sigma 1.5, slow loop."""
    ax = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx, vy = (win * (px - mx) ** 2).sum(), (win * (py - my) ** 2).sum()
            cxy = (win * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


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


# --- classes and registry -------------------------------------------------------------------
def test_metric_objects_through_the_registry() -> None:
    gt, pred = pair()
    m = create_metric("psnr", crop_border=4, device="cpu")  # unknown shared options are ignored
    assert isinstance(m, PSNR)
    assert m(pred, gt) == pytest.approx(psnr(gt, pred, crop_border=4))
    assert m.check() is None
    conv = m.conventions()
    assert conv["crop_border"] == 4 and conv["channel"].startswith("Y of BT.601")
    s = SSIM(get_metric("ssim"), crop_border=3, y_channel=False)
    assert s(pred, gt) == pytest.approx(ssim(gt, pred, crop_border=3, y_channel=False))
    assert s.conventions()["window"] == "gaussian 11x11, sigma 1.5"
    assert s.conventions()["channels"] == "mean of R, G, B SSIMs"


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
    with pytest.raises(ConfigError, match="crop_border must be an integer >= 0"):
        PSNR(get_metric("psnr"), crop_border=True)
    with pytest.raises(ConfigError, match="y_channel must be True or False"):
        SSIM(get_metric("ssim"), y_channel="y")
    with pytest.raises(ConfigError, match=r"leaves less than 11x11"):
        ssim(gt, pred, crop_border=15)
    with pytest.raises(ConfigError, match="full-reference metric: pass gt"):
        create_metric("ssim")(pred)
