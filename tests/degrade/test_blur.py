"""apply_kernel_field against the literal Eq. 1, OpenCV, and the LR-grid convention."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from degrade import apply_kernel_field
from degrade.ops import blur
from ssr_core.errors import ConfigError
from tests.reference import direct_degradation


def _field(gen: torch.Generator, b: int, h: int, w: int, lo: float = 0.6, hi: float = 3.5) -> torch.Tensor:
    s = torch.rand(b, 2, h, w, generator=gen, dtype=torch.float64) * (hi - lo) + lo
    th = torch.rand(b, 1, h, w, generator=gen, dtype=torch.float64) * math.pi
    return torch.cat([s, th], dim=1)


needs_c = pytest.mark.skipif(blur._svblur is None, reason="C extension not built (no compiler at install)")
BACKENDS = ["torch", "autograd", pytest.param("c", marks=needs_c)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "scale,kernel_size,delta,size",
    [(4, 21, None, (24, 28)), (4, 9, 0.0, (16, 20)), (2, 7, 0.5, (10, 14)), (3, 11, 1.0, (21, 18)),
     (1, 5, 0.0, (7, 9))],
)
def test_matches_direct_formula_borders_included(scale, kernel_size, delta, size, backend):
    # Every LR pixel of these small images has its window cross a border, so reflect padding and
    # the LR grid offset are checked everywhere, not only in the interior.
    gen = torch.Generator().manual_seed(scale * 100 + kernel_size)
    h_hr, w_hr = size
    hr = torch.rand(2, 3, h_hr, w_hr, generator=gen, dtype=torch.float64)
    field = _field(gen, 2, h_hr // scale, w_hr // scale)
    got = apply_kernel_field(hr.float(), field.float(), scale, kernel_size, delta, backend=backend)
    d = (scale - 1) / 2 if delta is None else delta
    for n in range(2):
        ref = direct_degradation(hr[n].numpy(), field[n].numpy(), scale, kernel_size, d)
        # float32 inputs and float32 accumulation over <= 441 taps of values in [0, 1]
        np.testing.assert_allclose(got[n].numpy(), ref, atol=2e-6, rtol=0)


def test_float64_input_matches_direct_formula_tightly():
    gen = torch.Generator().manual_seed(7)
    hr = torch.rand(1, 3, 20, 24, generator=gen, dtype=torch.float64)
    field = _field(gen, 1, 5, 6, lo=0.3, hi=4.0)
    got = apply_kernel_field(hr, field, 4, 13)
    assert got.dtype == torch.float64
    ref = direct_degradation(hr[0].numpy(), field[0].numpy(), 4, 13, 1.5)
    np.testing.assert_allclose(got[0].numpy(), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_constant_field_equals_full_resolution_filter2d_then_subsampling(backend):
    # Peer library: OpenCV's correlation with BORDER_REFLECT_101 (= numpy 'reflect'), then [::s].
    rng = np.random.default_rng(3)
    img = rng.random((64, 80, 3), dtype=np.float32)
    s1, s2, theta, k, scale = 2.3, 1.1, 0.7, 21, 4
    r = k // 2
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([s1**2, s2**2]) @ rot.T)
    ker = np.empty((k, k))
    for a in range(-r, r + 1):
        for b in range(-r, r + 1):
            d = np.array([b, a], dtype=np.float64)  # delta = 0: kernel centred on the tap
            ker[a + r, b + r] = math.exp(-0.5 * d @ inv @ d)
    ker /= ker.sum()
    full = cv2.filter2D(img, -1, ker.astype(np.float32), borderType=cv2.BORDER_REFLECT_101)
    expected = full[::scale, ::scale]
    field = torch.tensor([s1, s2, theta]).view(1, 3, 1, 1).expand(1, 3, 16, 20)
    got = apply_kernel_field(torch.from_numpy(img).permute(2, 0, 1)[None], field, scale, k, delta=0.0,
                             backend=backend)
    np.testing.assert_allclose(got[0].permute(1, 2, 0).numpy(), expected, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_centered_grid_is_aligned_with_block_centres_on_a_ramp(backend):
    # A symmetric kernel centred at (s i + delta, s j + delta) reproduces a linear ramp's value
    # there, which is also the s x s block mean: HR and LR pixels share centres (INTER_AREA-like).
    scale, k = 4, 21
    y, x = np.mgrid[0:96, 0:96].astype(np.float32)
    ramp = (0.3 * x + 0.2 * y) / 96.0
    hr = torch.from_numpy(np.stack([ramp] * 3))[None]
    field = torch.tensor([1.7, 0.9, 0.4]).view(1, 3, 1, 1).expand(1, 3, 24, 24)
    got = apply_kernel_field(hr, field, scale, k, backend=backend)[0, 0].numpy()
    block_mean = ramp.reshape(24, 4, 24, 4).mean(axis=(1, 3))
    interior = slice(4, -4)  # away from the reflected borders, where the ramp folds
    np.testing.assert_allclose(got[interior, interior], block_mean[interior, interior], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_theta_and_theta_plus_pi_give_the_same_image(backend):
    gen = torch.Generator().manual_seed(1)
    hr = torch.rand(1, 3, 32, 32, generator=gen)
    field = _field(gen, 1, 8, 8)
    flipped = field.clone()
    flipped[:, 2] += math.pi
    a = apply_kernel_field(hr, field, 4, backend=backend)
    b = apply_kernel_field(hr, flipped, 4, backend=backend)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("backend,lo", [("torch", 0.2), pytest.param("c", 0.35, marks=needs_c)])
def test_constant_image_stays_constant_for_any_field(backend, lo):
    gen = torch.Generator().manual_seed(2)
    hr = torch.full((1, 3, 40, 44), 0.37)
    out = apply_kernel_field(hr, _field(gen, 1, 10, 11, lo=lo, hi=6.0), 4, backend=backend)
    torch.testing.assert_close(out, torch.full_like(out, 0.37), atol=1e-6, rtol=0)


def test_chunking_does_not_change_the_result(monkeypatch):
    import degrade.ops.blur as blur

    gen = torch.Generator().manual_seed(4)
    hr = torch.rand(1, 3, 48, 40, generator=gen)
    field = _field(gen, 1, 12, 10)
    whole = apply_kernel_field(hr, field, 4, backend="torch")
    monkeypatch.setattr(blur, "_CHUNK_PIXELS", 25)  # 2-row chunks with a ragged last chunk
    # Only float32 rounding of the exponents may differ (matrix-product blocking): 1 ulp.
    torch.testing.assert_close(apply_kernel_field(hr, field, 4, backend="torch"), whole, atol=5e-7, rtol=0)


@pytest.mark.parametrize(
    "hr_shape,field_shape,scale,k,match",
    [
        ((1, 3, 30, 32), (1, 3, 7, 8), 4, 21, "not a multiple of scale"),
        ((1, 3, 32, 32), (1, 3, 4, 4), 4, 21, r"params must have shape \(1, 3, 8, 8\)"),
        ((1, 3, 8, 8), (1, 3, 2, 2), 4, 21, "too small for kernel_size 21"),
        ((1, 3, 32, 32), (1, 3, 8, 8), 4, 20, "odd integer"),
        ((3, 32, 32), (1, 3, 8, 8), 4, 21, r"float \(B, C, H, W\)"),
    ],
)
def test_input_errors(hr_shape, field_shape, scale, k, match):
    hr = torch.rand(*hr_shape)
    field = torch.ones(*field_shape)
    with pytest.raises(ConfigError, match=match):
        apply_kernel_field(hr, field, scale, k)


def test_nonpositive_sigma_is_rejected():
    field = torch.ones(1, 3, 8, 8)
    field[0, 1, 2, 2] = 0.0
    with pytest.raises(ConfigError, match="s1, s2 > 0"):
        apply_kernel_field(torch.rand(1, 3, 32, 32), field, 4)


@needs_c
def test_c_backend_matches_direct_formula_on_extreme_kernels():
    # Strong anisotropy at 45 degrees with the smallest allowed minor axis: the rows' peaks lie
    # far from the centre column, where the recurrences start (the case the sigma bound guards).
    scale, k = 4, 31
    lo = blur.c_backend_min_sigma(k, 1.5) * 1.01
    gen = torch.Generator().manual_seed(11)
    hr = torch.rand(1, 3, 40, 44, generator=gen, dtype=torch.float64)
    field = torch.empty(1, 3, 10, 11, dtype=torch.float64)
    field[:, 0], field[:, 1], field[:, 2] = 5.0, lo, math.pi / 4
    field[:, :, ::2, ::3] = torch.tensor([lo, 5.0, 3 * math.pi / 4], dtype=torch.float64).view(3, 1, 1)
    got = apply_kernel_field(hr.float(), field.float(), scale, k, backend="c")
    ref = direct_degradation(hr[0].numpy(), field[0].numpy(), scale, k, 1.5)
    np.testing.assert_allclose(got[0].numpy(), ref, atol=2e-6, rtol=0)


@needs_c
def test_auto_uses_c_for_float32_cpu_and_torch_otherwise():
    hr = torch.rand(1, 3, 32, 32)
    field = torch.full((1, 3, 8, 8), 1.0)
    assert blur.select_backend(hr, field, 21, 1.5) == "c"
    assert blur.select_backend(hr.double(), field.double(), 21, 1.5) == "torch"
    tiny = field.clone()
    tiny[0, 1, 0, 0] = 0.2  # below c_backend_min_sigma(21, 1.5) ~ 0.31
    assert blur.select_backend(hr, tiny, 21, 1.5) == "torch"
    with pytest.raises(ConfigError, match="every sigma >"):
        apply_kernel_field(hr, tiny, 4, backend="c")
    # the fallback still computes the exact sum
    ref = direct_degradation(hr[0].double().numpy(), tiny[0].double().numpy(), 4, 21, 1.5)
    np.testing.assert_allclose(apply_kernel_field(hr, tiny, 4)[0].numpy(), ref, atol=2e-6)


@needs_c
def test_c_and_torch_backends_agree_on_a_realistic_batch():
    gen = torch.Generator().manual_seed(5)
    hr = torch.rand(2, 3, 64, 96, generator=gen)
    field = _field(gen, 2, 16, 24).float()
    c = apply_kernel_field(hr, field, 4, backend="c")
    t = apply_kernel_field(hr, field, 4, backend="torch")
    torch.testing.assert_close(c, t, atol=2e-6, rtol=0)


def test_channels_last_input_gives_identical_bytes():
    gen = torch.Generator().manual_seed(6)
    hr = torch.rand(1, 40, 48, 3, generator=gen).permute(0, 3, 1, 2)  # channels-last memory
    field = _field(gen, 1, 10, 12).float()
    assert torch.equal(apply_kernel_field(hr, field, 4), apply_kernel_field(hr.contiguous(), field, 4))


def test_unknown_backend_is_rejected():
    with pytest.raises(ConfigError, match="backend must be"):
        apply_kernel_field(torch.rand(1, 3, 32, 32), torch.ones(1, 3, 8, 8), 4, backend="cuda")


def test_autograd_backend_is_chosen_for_grad_inputs_and_passes_gradcheck():
    gen = torch.Generator().manual_seed(9)
    hr = torch.rand(1, 3, 16, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    field = _field(gen, 1, 4, 5).requires_grad_(True)
    assert blur.select_backend(hr, field, 7, 1.5) == "autograd"
    ref = direct_degradation(hr[0].detach().numpy(), field[0].detach().numpy(), 4, 7, 1.5)
    np.testing.assert_allclose(apply_kernel_field(hr, field, 4, 7)[0].detach().numpy(), ref, atol=1e-12)
    # gradients to the image and to the kernel field agree with finite differences, on a smaller
    # input (the numerical Jacobian costs two forwards per input element): 2 x 3 LR pixels, all
    # three channels, every tap window crossing a reflect-padded border
    hr = torch.rand(1, 3, 8, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    field = _field(gen, 1, 2, 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, f: apply_kernel_field(x, f, 4, 7), (hr, field))
