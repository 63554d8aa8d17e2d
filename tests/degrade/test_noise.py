"""The last stages: Gaussian noise on the 0-255 scale, uint8 by rounding, and the OpenCV JPEG codec."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from degrade.ops.noise import add_gaussian_noise
from degrade.ops.quantize import jpeg_roundtrip, to_uint8
from ssr_core.errors import ConfigError
from tests.reference import psnr_direct


def _textured(h: int = 64, w: int = 96) -> np.ndarray:
    """uint8 RGB with edges, gradients and fine texture (deterministic)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(0)
    base = 128 + 60 * np.sin(x / 3.0) * np.cos(y / 5.0) + 40 * (x > w / 2)
    img = np.stack([base, base[::-1], 255 - base], -1) + rng.normal(0, 4, (h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("sigma_255", [5.0, 15.0])
def test_noise_std_matches_sigma_on_mid_gray(sigma_255):
    img = torch.full((3, 256, 256), 0.5)
    out = add_gaussian_noise(img, sigma_255, False, np.random.default_rng(0))
    noise = (out - img).double().numpy()
    n = noise.size
    sigma = sigma_255 / 255.0
    # Standard error of a sample std is sigma / sqrt(2n) (0.16% here); allow 5 of them. At 0.5
    # +- 5 sigma no value is clipped, so clipping does not bias the estimate.
    assert noise.std() == pytest.approx(sigma, rel=5 / math.sqrt(2 * n))
    assert abs(noise.mean()) < 5 * sigma / math.sqrt(n)
    assert out.shape == img.shape and out.dtype == torch.float32


def test_noise_is_the_documented_numpy_stream():
    # Regression of the documented contract: float64 standard normals from rng, times sigma/255.
    img = torch.full((3, 4, 5), 0.5)
    out = add_gaussian_noise(img, 10.0, False, np.random.default_rng(3))
    ref = 0.5 + np.random.default_rng(3).standard_normal((3, 4, 5)) * (10.0 / 255.0)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-7)


def test_gray_noise_is_shared_across_channels_color_noise_is_not():
    img = torch.full((3, 32, 32), 0.5)
    gray = add_gaussian_noise(img, 10.0, True, np.random.default_rng(1))
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    assert float((gray[0] - 0.5).std()) > 0.02
    color = add_gaussian_noise(img, 10.0, False, np.random.default_rng(1))
    assert not torch.equal(color[0], color[1]) and not torch.equal(color[1], color[2])
    # independent channels: near-zero correlation (|r| < 5 / sqrt(1024))
    r = np.corrcoef((color[0] - 0.5).flatten().numpy(), (color[1] - 0.5).flatten().numpy())[0, 1]
    assert abs(r) < 5 / 32


def test_gray_noise_on_a_coloured_image_keeps_the_colour_differences():
    img = torch.stack([torch.full((8, 8), v) for v in (0.3, 0.5, 0.7)])
    out = add_gaussian_noise(img, 3.0, True, np.random.default_rng(2))
    np.testing.assert_allclose((out[2] - out[0]).numpy(), 0.4, atol=1e-6)


def test_noise_clips_to_unit_range():
    img = torch.zeros(3, 32, 32)
    img[:, :, 16:] = 1.0
    out = add_gaussian_noise(img, 50.0, False, np.random.default_rng(0))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    # about half of each saturated half lands on the bound
    assert 0.35 < float((out[:, :, :16] == 0).float().mean()) < 0.65
    assert 0.35 < float((out[:, :, 16:] == 1).float().mean()) < 0.65


def test_noise_determinism_and_input_untouched():
    img = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    keep = img.clone()
    a = add_gaussian_noise(img, 8.0, False, np.random.default_rng(9))
    b = add_gaussian_noise(img, 8.0, False, np.random.default_rng(9))
    c = add_gaussian_noise(img, 8.0, False, np.random.default_rng(10))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(img, keep)


def test_zero_sigma_is_identity():
    img = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(add_gaussian_noise(img, 0.0, True, np.random.default_rng(0)), img)


def test_noise_bad_inputs_raise():
    rng = np.random.default_rng(0)
    with pytest.raises(ConfigError, match=r"img must be \(C, H, W\), got shape \(1, 3, 4, 4\)"):
        add_gaussian_noise(torch.zeros(1, 3, 4, 4), 5.0, False, rng)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="sigma_255 must be finite and >= 0"):
            add_gaussian_noise(torch.zeros(3, 4, 4), bad, False, rng)


@pytest.mark.parametrize("k", [0, 1, 17, 128, 254])
def test_to_uint8_rounds_not_truncates(k):
    up = torch.full((3, 1, 1), (k + 0.6) / 255.0)
    down = torch.full((3, 1, 1), (k + 0.4) / 255.0)
    assert to_uint8(up)[0, 0].tolist() == [k + 1] * 3
    assert to_uint8(down)[0, 0].tolist() == [k] * 3


def test_to_uint8_clips_and_keeps_rgb_order():
    img = torch.tensor([[[-0.2, 0.0]], [[1.3, 1.0]], [[0.5, 100 / 255]]])  # (3, 1, 2)
    out = to_uint8(img)
    assert out.dtype == np.uint8 and out.shape == (1, 2, 3)
    assert out[0, 0].tolist() == [0, 255, 128] and out[0, 1].tolist() == [0, 255, 100]


def test_to_uint8_round_trips_uint8_values():
    ref = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    img = torch.from_numpy(ref).permute(2, 0, 1).float() / 255.0
    np.testing.assert_array_equal(to_uint8(img), ref)


def test_to_uint8_bad_shape_raises():
    with pytest.raises(ConfigError, match=r"img must be \(3, H, W\), got shape \(1, 4, 4\)"):
        to_uint8(torch.zeros(1, 4, 4))
    with pytest.raises(ConfigError, match=r"img must be \(3, H, W\), got shape \(4, 4, 3\)"):
        to_uint8(torch.zeros(4, 4, 3))


@pytest.mark.parametrize("quality", [10, 30, 75, 95, 100])
def test_jpeg_roundtrip_equals_direct_opencv(quality):
    rgb = _textured()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    ref = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    out = jpeg_roundtrip(rgb, quality)
    assert out.dtype == np.uint8 and out.shape == rgb.shape and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, ref)


def test_jpeg_lower_quality_lower_psnr():
    rgb = _textured()
    psnrs = [psnr_direct(jpeg_roundtrip(rgb, q), rgb) for q in (10, 30, 60, 90)]
    assert np.all(np.diff(psnrs) > 0), psnrs
    assert psnrs[0] < psnrs[-1] - 5, psnrs


def test_jpeg_keeps_colour_channels_in_place():
    # A flat pure-red image stays red (a swapped channel order would make it blue).
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200
    out = jpeg_roundtrip(rgb, 95).astype(int)
    assert abs(out[..., 0].mean() - 200) < 4 and out[..., 2].mean() < 4


@pytest.mark.parametrize("bad", [np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.uint8),
                                 np.zeros((8, 8, 4), np.uint8)])
def test_jpeg_bad_images_raise(bad):
    with pytest.raises(ConfigError, match=r"rgb must be uint8 \(H, W, 3\)"):
        jpeg_roundtrip(bad, 50)


@pytest.mark.parametrize("quality", [0, 101, -5])
def test_jpeg_bad_quality_raises(quality):
    with pytest.raises(ConfigError, match=r"JPEG quality must be in \[1, 100\]"):
        jpeg_roundtrip(np.zeros((8, 8, 3), np.uint8), quality)
