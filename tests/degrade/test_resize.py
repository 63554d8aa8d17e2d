"""Tests of degrade.ops.resize: MATLAB-compatible bicubic upscaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from degrade.ops.resize import cubic_kernel, imresize_bicubic, imresize_bicubic_down
from ssr_core.errors import ConfigError
from tests.reference import imresize_bicubic_down_matlab, imresize_bicubic_matlab


def _random(shape: tuple[int, ...], seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_shape_dtype_and_batching() -> None:
    img = _random((2, 3, 5, 7), dtype=torch.float32)
    out = imresize_bicubic(img, 3)
    assert out.shape == (2, 3, 15, 21) and out.dtype == torch.float32
    assert torch.equal(imresize_bicubic(img[1], 3), out[1])


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_matches_the_direct_per_pixel_reference(scale: int) -> None:
    img = _random((7, 9), seed=scale)
    ref = imresize_bicubic_matlab(img.numpy(), scale)
    got = imresize_bicubic(img[None], scale)[0].numpy()
    # float64 throughout on both sides: only summation order differs
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # float32: 16 products of values in [0, 1] with weights summing to 1, each rounded at 2^-24
    got32 = imresize_bicubic(img[None].float(), scale)[0].double().numpy()
    np.testing.assert_allclose(got32, ref, rtol=0, atol=1e-6)


def test_scale_one_is_identity() -> None:
    img = _random((3, 4, 5))
    assert torch.allclose(imresize_bicubic(img, 1), img, rtol=0, atol=1e-15)


def test_constant_image_stays_constant_at_borders_too() -> None:
    img = torch.full((1, 3, 4, 6), 0.3, dtype=torch.float64)
    assert torch.allclose(imresize_bicubic(img, 4), torch.full((1, 3, 16, 24), 0.3, dtype=torch.float64),
                          rtol=0, atol=1e-14)


def test_ramp_is_sampled_at_half_pixel_centres_in_the_interior() -> None:
    # Keys' a = -0.5 cubic reproduces linear functions exactly; output x (0-based) samples the
    # input at (x + 0.5) / s - 0.5 (0-based), MATLAB's u = x / s + 0.5 (1 - 1 / s) in 1-based terms.
    s, n = 4, 10
    ramp = torch.arange(n, dtype=torch.float64).repeat(3, 1)[None]  # (C=1, H=3, W=n), ramp along W
    out = imresize_bicubic(ramp, s)[0]
    x = torch.arange(s * n, dtype=torch.float64)
    want = (x + 0.5) / s - 0.5
    interior = slice(2 * s, s * n - 2 * s)  # taps mirrored at the borders break linearity
    assert torch.allclose(out[:, interior], want[interior].expand(s * 3, -1), rtol=0, atol=1e-12)


def test_matches_pil_float_in_the_interior() -> None:
    # PIL's BICUBIC is also a = -0.5 with half-pixel centres; it renormalises clipped windows at
    # the borders instead of mirroring, so only outputs whose 4 taps are inside the image agree.
    s, h, w = 4, 12, 15
    img = _random((h, w), seed=3, dtype=torch.float32) * 255
    pil = np.asarray(Image.fromarray(img.numpy(), mode="F").resize((s * w, s * h), Image.BICUBIC))
    got = imresize_bicubic(img[None].double(), s)[0].numpy()
    m = 2 * s
    # PIL accumulates in double and stores float32: |error| < 255 * 2^-24 * a few
    np.testing.assert_allclose(got[m:-m, m:-m], pil[m:-m, m:-m], rtol=0, atol=1e-3)


def test_matches_pil_rgb_uint8_in_the_interior_within_one_level() -> None:
    # PIL's 8-bit path rounds (and clips) to uint8 between its horizontal and vertical passes
    # with fixed-point weights; on a smooth mid-range image nothing is clipped, so after rounding
    # ours the two differ by at most one level.
    s, h, w = 4, 10, 13
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([128 + 80 * np.cos(0.3 * xx + 0.2 * yy + c) for c in range(3)], -1)
    rgb = rgb.round().astype(np.uint8)
    pil = np.asarray(Image.fromarray(rgb).resize((s * w, s * h), Image.BICUBIC)).astype(np.int64)
    x = torch.from_numpy(rgb).permute(2, 0, 1).double()
    got = imresize_bicubic(x, s).permute(1, 2, 0).numpy()
    got = np.clip(np.floor(got + 0.5), 0, 255).astype(np.int64)
    m = 2 * s
    assert np.abs(got[m:-m, m:-m] - pil[m:-m, m:-m]).max() <= 1


@pytest.mark.parametrize("scale", [0, -2, 2.5, 4.0, True, "4"])
def test_rejects_a_scale_that_is_not_an_integer_at_least_one(scale: object) -> None:
    with pytest.raises(ConfigError, match="scale must be an integer >= 1"):
        imresize_bicubic(torch.zeros(3, 2, 2), scale)  # type: ignore[arg-type]


def test_rejects_non_float_wrong_rank_and_empty_images() -> None:
    with pytest.raises(ConfigError, match=r"float \(C, H, W\) or \(B, C, H, W\) tensor, got torch.uint8"):
        imresize_bicubic(torch.zeros(3, 2, 2, dtype=torch.uint8), 2)
    with pytest.raises(ConfigError, match=r"got torch.float32 \(2, 2\)"):
        imresize_bicubic(torch.zeros(2, 2), 2)
    with pytest.raises(ConfigError, match="got ndarray"):
        imresize_bicubic(np.zeros((3, 2, 2)), 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty spatial size"):
        imresize_bicubic(torch.zeros(3, 0, 2), 2)


def test_cubic_kernel_is_keys_a_half_for_numpy_and_torch() -> None:
    # Keys (1981), a = -0.5: 1 at 0, 0 at the other integers, k(0.5) = 9/16, k(1.5) = -1/16,
    # and the four taps around any point sum to 1 (partition of unity).
    pts = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5, -1.5])
    want = [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625, -0.0625]
    assert cubic_kernel(pts).tolist() == want
    assert cubic_kernel(torch.from_numpy(pts)).tolist() == want  # NIQE (numpy) = resize (torch)
    u = np.linspace(0, 1, 11, endpoint=False)[:, None]
    taps = u - np.arange(-1, 3)[None, :]
    np.testing.assert_allclose(cubic_kernel(taps).sum(1), 1.0, rtol=0, atol=1e-14)  # float64 rounding


# ---------------------------------------------------------------- downscaling (antialiased)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_matches_the_direct_matlab_formula(scale: int) -> None:
    img = _random((4 * scale, 3 * scale), seed=10 + scale)
    ref = imresize_bicubic_down_matlab(img.numpy(), scale)
    got = imresize_bicubic_down(img[None], scale)[0].numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    # float32: 4s + 2 products of values in [0, 1] with weights summing to 1, per pass
    got32 = imresize_bicubic_down(img[None].float(), scale)[0].double().numpy()
    np.testing.assert_allclose(got32, ref, rtol=0, atol=2e-6)


def test_downscale_matches_pil_antialiased_bicubic_in_the_interior() -> None:
    # PIL's reducing BICUBIC is the same antialiased a = -0.5 cubic (support scaled by s) with
    # half-pixel centres; it renormalises clipped windows at the borders instead of mirroring, so
    # only outputs whose 4s-wide windows lie inside the image agree.
    s, h, w = 4, 40, 48
    img = _random((h, w), seed=4, dtype=torch.float32) * 255
    pil = np.asarray(Image.fromarray(img.numpy(), mode="F").resize((w // s, h // s), Image.BICUBIC))
    got = imresize_bicubic_down(img[None].double(), s)[0].numpy()
    np.testing.assert_allclose(got[2:-2, 2:-2], pil[2:-2, 2:-2], rtol=0, atol=2e-3)


def test_downscale_keeps_constants_and_refuses_sizes_off_the_grid() -> None:
    img = torch.full((2, 3, 8, 12), 0.7, dtype=torch.float64)
    assert torch.allclose(imresize_bicubic_down(img, 4), torch.full((2, 3, 2, 3), 0.7,
                                                                      dtype=torch.float64),
                          rtol=0, atol=1e-15)
    with pytest.raises(ConfigError, match=r"9x12 is not a multiple of the scale 4"):
        imresize_bicubic_down(torch.zeros(1, 9, 12), 4)
    with pytest.raises(ConfigError, match="integer >= 1"):
        imresize_bicubic_down(torch.zeros(1, 8, 8), 0)
