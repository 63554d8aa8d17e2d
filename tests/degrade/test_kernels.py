"""Kernel parameterization (DESIGN.md section 3) against BasicSR's formula, scipy and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from degrade.ops.kernels import (
    centered_delta,
    covariance_from_sigmas,
    gaussian_kernels,
    sigmas_from_covariance,
    sigmas_from_variances,
    tap_offsets,
    truncated_mass,
    truncation_stats,
    variances_from_sigmas,
)
from ssr_core.errors import ConfigError
from tests.reference import (
    bivariate_gaussian_basicsr,
    gaussian_outside_box_scipy,
    lattice_outside_window,
)

PI = math.pi
CASES = [  # (s1, s2, theta): near 0, pi/2 and pi included, both s1 > s2 and s1 < s2
    (2.0, 0.8, 0.0),
    (2.0, 0.8, 1e-4),
    (3.5, 0.6, PI / 2),
    (1.7, 2.9, PI / 2 - 1e-3),
    (3.0, 1.2, PI - 1e-3),
    (1.0, 1.0, 0.4),
    (0.6, 3.5, 2.2),
    (2.5, 1.5, 0.7),
]


def _k(s1: float, s2: float, theta: float, kernel_size: int, delta: float = 0.0) -> np.ndarray:
    p = torch.tensor([s1, s2, theta], dtype=torch.float64)
    return gaussian_kernels(p, kernel_size, delta).numpy()


@pytest.mark.parametrize("kernel_size", [7, 21])
@pytest.mark.parametrize("s1,s2,theta", CASES)
def test_delta0_equals_basicsr_bivariate_gaussian(s1, s2, theta, kernel_size):
    ref = bivariate_gaussian_basicsr(kernel_size, s1, s2, theta)
    # both float64; only the order of operations differs
    np.testing.assert_allclose(_k(s1, s2, theta, kernel_size), ref, atol=1e-14, rtol=1e-10)


def test_float32_batch_matches_reference_and_keeps_shape():
    params = torch.tensor([list(c) for c in CASES], dtype=torch.float32).view(2, 4, 3)
    k = gaussian_kernels(params, 21)
    assert k.shape == (2, 4, 21, 21) and k.dtype == torch.float32
    for n, (s1, s2, th) in enumerate(CASES):
        ref = bivariate_gaussian_basicsr(21, s1, s2, float(np.float32(th)))
        np.testing.assert_allclose(k.view(-1, 21, 21)[n].numpy(), ref, atol=1e-7)


@pytest.mark.parametrize("delta", [0.0, 1.5, -0.5])
def test_kernels_sum_to_one(delta):
    params = torch.tensor([list(c) for c in CASES], dtype=torch.float64)
    sums = gaussian_kernels(params, 21, delta).sum(dim=(-2, -1))
    np.testing.assert_allclose(sums.numpy(), 1.0, atol=1e-12)


@pytest.mark.parametrize("s1,s2,theta", CASES)
def test_theta_and_theta_plus_pi_agree(s1, s2, theta):
    np.testing.assert_allclose(_k(s1, s2, theta, 21, 1.5), _k(s1, s2, theta + PI, 21, 1.5), atol=1e-13)


@pytest.mark.parametrize("s1,s2,theta", CASES)
def test_swapping_s1_s2_equals_rotating_by_half_pi(s1, s2, theta):
    # R(t + pi/2) diag(s2^2, s1^2) R(t + pi/2)^T = R(t) diag(s1^2, s2^2) R(t)^T
    np.testing.assert_allclose(_k(s2, s1, theta + PI / 2, 21, 1.5), _k(s1, s2, theta, 21, 1.5), atol=1e-13)


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.5, -1.0])
@pytest.mark.parametrize("s1,s2,theta", [(1.0, 1.0, 0.0), (1.6, 0.9, 0.6), (1.2, 1.0, 2.8)])
def test_delta_shifts_centroid_by_delta_delta(s1, s2, theta, delta):
    # A sampled Gaussian with sigma >= 0.9 has its lattice first moment at the continuous mean up
    # to ~exp(-2 pi^2 sigma^2) < 1e-6 (Poisson summation); K = 21 truncates < 1e-20 of its mass.
    k = _k(s1, s2, theta, 21, delta)
    taps = np.arange(-10, 11, dtype=np.float64)
    row_mean = (k.sum(axis=1) * taps).sum()  # rows index the row offset a (dy)
    col_mean = (k.sum(axis=0) * taps).sum()  # columns index the column offset b (dx)
    assert row_mean == pytest.approx(delta, abs=1e-6)
    assert col_mean == pytest.approx(delta, abs=1e-6)


@pytest.mark.parametrize("shift", [1, -2])
def test_integer_delta_is_a_cropped_shifted_basicsr_kernel(shift):
    # k[a, b] ~ g(b - delta, a - delta): BasicSR's (K + 2|delta|) kernel cropped off-centre.
    s1, s2, theta, ks = 2.2, 1.1, 0.9, 21
    big = bivariate_gaussian_basicsr(ks + 2 * abs(shift), s1, s2, theta)
    lo = abs(shift) - shift
    ref = big[lo:lo + ks, lo:lo + ks]
    np.testing.assert_allclose(_k(s1, s2, theta, ks, float(shift)), ref / ref.sum(), atol=1e-14)


def test_tap_offsets_and_centered_delta():
    np.testing.assert_array_equal(tap_offsets(5, 1.5).numpy(), [-3.5, -2.5, -1.5, -0.5, 0.5])
    assert centered_delta(4) == 1.5 and centered_delta(2) == 0.5 and centered_delta(1) == 0.0


def test_covariance_from_sigmas_equals_r_diag_rt():
    rng = np.random.default_rng(0)
    s = rng.uniform(0.3, 5.0, size=(50, 2))
    th = rng.uniform(0, PI, size=50)
    got = covariance_from_sigmas(*(torch.from_numpy(v) for v in (s[:, 0], s[:, 1], th))).numpy()
    for n in range(50):
        c, sn = math.cos(th[n]), math.sin(th[n])
        rot = np.array([[c, -sn], [sn, c]])
        np.testing.assert_allclose(got[n], rot @ np.diag(s[n] ** 2) @ rot.T, atol=1e-12)


def _angle_diff_mod_pi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.mod(a - b, PI)
    return np.minimum(d, PI - d)


def test_sigmas_from_covariance_round_trip_orders_and_wraps():
    rng = np.random.default_rng(1)
    n = 200
    s1 = rng.uniform(0.3, 5.0, n)
    s2 = rng.uniform(0.3, 5.0, n)
    s2 = np.where(np.abs(s1 - s2) < 0.05, s1 + 0.2, s2)  # keep the axes distinguishable
    th = rng.uniform(-2 * PI, 2 * PI, n)  # outside [0, pi) on purpose
    cov = covariance_from_sigmas(*(torch.from_numpy(v) for v in (s1, s2, th)))
    r1, r2, rth = (v.numpy() for v in sigmas_from_covariance(cov))
    swap = s2 > s1
    np.testing.assert_allclose(r1, np.maximum(s1, s2), rtol=1e-10)
    np.testing.assert_allclose(r2, np.minimum(s1, s2), rtol=1e-10)
    assert np.all((rth >= 0) & (rth < PI))
    expected = np.where(swap, th + PI / 2, th)  # the major axis is s2's when s2 > s1
    assert _angle_diff_mod_pi(rth, expected).max() < 1e-8


def test_sigmas_from_covariance_isotropic():
    cov = covariance_from_sigmas(torch.tensor([2.0], dtype=torch.float64),
                                 torch.tensor([2.0], dtype=torch.float64),
                                 torch.tensor([0.7], dtype=torch.float64))
    s1, s2, th = sigmas_from_covariance(cov)
    assert float(s1) == pytest.approx(2.0, rel=1e-12) and float(s2) == pytest.approx(2.0, rel=1e-12)
    assert 0.0 <= float(th) < PI  # any angle describes a circle; it must still be in range
    np.testing.assert_allclose(covariance_from_sigmas(s1, s2, th).numpy(), cov.numpy(), atol=1e-12)


def _random_spd(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random symmetric positive-definite 2 x 2 matrices with spread-out spectra."""
    m = rng.normal(size=(n, 2, 2)) * rng.uniform(0.1, 10.0, size=(n, 1, 1))
    return m @ np.swapaxes(m, -1, -2) + 1e-3 * np.eye(2)


def _check_against_eigh(cov: np.ndarray, dtype: torch.dtype, rtol: float) -> None:
    """Eigenvalues match numpy.linalg.eigh; the major axis matches where the spectrum splits."""
    s1, s2, th = sigmas_from_covariance(torch.from_numpy(cov).to(dtype))
    s1, s2, th = (v.double().numpy() for v in (s1, s2, th))
    evals, evecs = np.linalg.eigh(cov)
    scale = evals[..., 1]  # eigenvalues are known to about eps times the largest one
    np.testing.assert_allclose(s1 ** 2, evals[..., 1], rtol=rtol)
    np.testing.assert_allclose(s2 ** 2, np.maximum(evals[..., 0], 0), atol=4 * rtol * scale.max())
    assert np.all((th >= 0) & (th < PI))
    split = (evals[..., 1] - evals[..., 0]) > 1e-3 * evals[..., 1]
    major = np.arctan2(evecs[..., 1, 1], evecs[..., 0, 1])
    assert _angle_diff_mod_pi(th[split], major[split]).max() < 1e3 * rtol


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 3e-6)])
def test_sigmas_from_covariance_matches_numpy_eigh(dtype, rtol):
    rng = np.random.default_rng(7)
    _check_against_eigh(_random_spd(rng, 500), dtype, rtol)


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-12), (torch.float32, 3e-6)])
def test_sigmas_from_covariance_degenerate_spectra(dtype, rtol):
    """Isotropic, near-isotropic, huge anisotropy, rank-deficient and axis-aligned covariances."""
    s1 = np.array([2.0, 2.0, 2.0 + 1e-7, 1.0 + 1e-3, 50.0, 1e3, 3.0, 1.5, 0.6, 1.0])
    s2 = np.array([2.0, 2.0, 2.0, 1.0, 0.01, 1e-3, 0.0, 1.5, 0.6, 1.0])
    th = np.array([0.0, 1.1, 0.4, 2.9, 0.3, 1.2, 2.0, PI / 2, PI - 1e-9, PI / 4])
    cov = covariance_from_sigmas(*(torch.from_numpy(v) for v in (s1, s2, th))).numpy()
    _check_against_eigh(cov, dtype, rtol)
    # rebuilding Sigma from the result gives Sigma back, whatever angle a circle gets
    got = sigmas_from_covariance(torch.from_numpy(cov).to(dtype))
    back = covariance_from_sigmas(*(v.double() for v in got)).numpy()
    big = np.abs(cov).max(axis=(-2, -1), keepdims=True)
    assert (np.abs(back - cov) / big).max() < 10 * rtol


def test_sigmas_from_covariance_round_trip_float32_batch():
    """The forward builder and the closed form invert each other on a large float32 batch
    (the shapes SVKR and ssr-infer feed it), with the axes ordered and the angle wrapped."""
    g = torch.Generator().manual_seed(3)
    n = 100_000
    s = 0.6 + 2.9 * torch.rand(n, 2, generator=g)
    th = math.pi * torch.rand(n, generator=g)
    s = torch.where((s[:, :1] - s[:, 1:]).abs() < 0.05, s + torch.tensor([0.2, 0.0]), s)
    r1, r2, rth = sigmas_from_covariance(covariance_from_sigmas(s[:, 0], s[:, 1], th))
    torch.testing.assert_close(r1, s.amax(1), rtol=2e-6, atol=0)
    torch.testing.assert_close(r2, s.amin(1), rtol=1e-5, atol=0)
    expected = torch.where(s[:, 1] > s[:, 0], th + math.pi / 2, th).double().numpy()
    assert _angle_diff_mod_pi(rth.double().numpy(), expected).max() < 1e-4
    assert bool(((rth >= 0) & (rth < math.pi)).all())


def test_sigmas_from_covariance_needs_no_linear_algebra_library(monkeypatch):
    """torch.linalg.eigh on large CUDA batches raises CUSOLVER_STATUS_INTERNAL_ERROR (issue 12,
    ssr-infer --device cuda); the closed form must not reach any torch.linalg solver."""
    def cusolver_failure(*args, **kwargs):
        raise RuntimeError("cusolver error: CUSOLVER_STATUS_INTERNAL_ERROR")

    for name in ("eigh", "eigvalsh", "eig", "svd", "svdvals"):
        monkeypatch.setattr(torch.linalg, name, cusolver_failure)
    cov = covariance_from_sigmas(torch.tensor([3.0]), torch.tensor([1.0]), torch.tensor([0.5]))
    s1, s2, th = sigmas_from_covariance(cov)
    torch.testing.assert_close(torch.cat([s1, s2, th]), torch.tensor([3.0, 1.0, 0.5]))


def test_variance_converters():
    s1, s2, th = torch.tensor([0.5, 3.0]), torch.tensor([2.0, 0.1]), torch.tensor([0.3, 2.0])
    l1, l2, th2 = variances_from_sigmas(s1, s2, th)
    np.testing.assert_allclose(l1.numpy(), [0.25, 9.0], rtol=1e-6)
    np.testing.assert_allclose(l2.numpy(), [4.0, 0.01], rtol=1e-6)
    assert torch.equal(th2, th)
    b1, b2, _ = sigmas_from_variances(l1, l2, th)
    np.testing.assert_allclose(b1.numpy(), s1.numpy(), rtol=1e-6)
    np.testing.assert_allclose(b2.numpy(), s2.numpy(), rtol=1e-6)
    # KAIR/MANet's (l1, l2) are the eigenvalues of Sigma
    l1, l2, th = torch.tensor(9.0), torch.tensor(4.0), torch.tensor(1.0)
    cov = covariance_from_sigmas(*sigmas_from_variances(l1, l2, th))
    np.testing.assert_allclose(np.linalg.eigvalsh(cov.numpy()), [4.0, 9.0], rtol=1e-5)


TRUNC_CASES = [  # (s1, s2, theta, K, delta)
    (5.0, 5.0, 0.0, 21, 0.0),
    (3.5, 0.6, 0.3, 21, 0.0),
    (5.0, 2.0, 1.2, 21, 1.5),
    (3.0, 3.0, 0.0, 21, 1.5),
    (4.9, 0.6, PI - 0.01, 21, 1.5),
    (2.0, 0.8, 2.5, 7, 0.0),
    (5.0, 4.0, 0.7, 31, 1.5),
    (1.0, 0.6, 0.4, 5, 1.0),
    (6.0, 1.0, PI / 4, 21, -0.5),
]


@pytest.mark.parametrize("s1,s2,theta,kernel_size,delta", TRUNC_CASES)
def test_truncated_mass_matches_scipy_box_probability(s1, s2, theta, kernel_size, delta):
    r = kernel_size // 2
    ref = gaussian_outside_box_scipy(s1, s2, theta, -r - 0.5 - delta, r + 0.5 - delta)
    got = float(truncated_mass(torch.tensor([s1, s2, theta], dtype=torch.float64), kernel_size, delta))
    # scipy's Genz integration is asked for 1e-10 per CDF value and four enter the inclusion-
    # exclusion; the package's 64-node Gauss-Legendre rule is far tighter than its documented 1e-6
    # on smooth integrands like these, so 1e-8 leaves room for scipy alone.
    assert got == pytest.approx(ref, abs=1e-8)


@pytest.mark.parametrize("s1,s2,theta,kernel_size,delta", TRUNC_CASES[:5])
def test_truncated_mass_is_the_mass_the_discrete_kernel_misses(s1, s2, theta, kernel_size, delta):
    # Independent of any integral: the sampled Gaussian on a large lattice, summed outside K x K.
    # The midpoint rule's error for sigma >= 0.6 is ~exp(-2 pi^2 0.36) per axis, far below 1e-3.
    ref = lattice_outside_window(s1, s2, theta, kernel_size, delta)
    got = float(truncated_mass(torch.tensor([s1, s2, theta], dtype=torch.float64), kernel_size, delta))
    assert got == pytest.approx(ref, abs=1e-3)


def test_truncation_known_values_for_21x21():
    def tm(sigma: float) -> float:
        return float(truncated_mass(torch.tensor([sigma, sigma, 0.0], dtype=torch.float64), 21, 0.0))

    # The window is the union of the taps' unit cells, [-10.5, 10.5]^2 (what the discrete kernel
    # misses, see the lattice test above), so an isotropic sigma = 5 loses 1 - erf(2.1/sqrt2)^2 =
    # 7.0%. DESIGN.md's "about 9%" is the figure for the tap-centre box [-10, 10]^2 (8.9%).
    assert tm(5.0) == pytest.approx(1 - math.erf(10.5 / (5 * math.sqrt(2))) ** 2, abs=1e-6)
    assert 0.065 < tm(5.0) < 0.095
    # sigma = 3.5 (the ssr recipe's ceiling) stays under the 1% warning threshold
    assert tm(3.5) == pytest.approx(1 - math.erf(3 / math.sqrt(2)) ** 2, abs=1e-6)
    assert tm(3.5) <= 0.01
    assert tm(1.0) < 1e-12


def test_truncated_mass_shape_dtype_and_monotone():
    sig = torch.linspace(0.5, 8.0, 16, dtype=torch.float32)
    params = torch.stack([sig, sig * 0.5, torch.full_like(sig, 0.3)], -1).view(4, 4, 3)
    m = truncated_mass(params, 21, 1.5)
    assert m.shape == (4, 4) and m.dtype == torch.float32
    flat = m.flatten()
    assert bool((flat[1:] >= flat[:-1]).all()) and float(flat[-1]) > 0.1


def test_truncation_stats_max_and_mean():
    field = torch.empty(3, 4, 6, dtype=torch.float64)
    field[0], field[1], field[2] = 1.0, 1.0, 0.0
    field[0, :, 3:], field[1, :, 3:] = 5.0, 5.0  # right half: sigma 5
    big = float(truncated_mass(torch.tensor([5.0, 5.0, 0.0], dtype=torch.float64), 21, 0.0))
    mx, mean = truncation_stats(field, 21, 0.0)
    assert mx == pytest.approx(big, rel=1e-9)
    assert mean == pytest.approx(big / 2, rel=1e-6)  # sigma 1 loses < 1e-12


def test_truncation_stats_subsamples_large_fields_keeping_the_borders():
    # A smooth ramp whose widest kernels sit in the last row and column (as a defocus field's often
    # do on the border): the subsample must still see them, and the mean stay close.
    y, x = torch.meshgrid(torch.linspace(0, 1, 121), torch.linspace(0, 1, 163), indexing="ij")
    field = torch.stack([1.0 + 4.0 * x, 1.0 + 3.0 * y, torch.full_like(x, 0.5)])
    full = truncated_mass(field.permute(1, 2, 0).double(), 21, 1.5)
    mx, mean = truncation_stats(field, 21, 1.5, max_points=1000)
    assert mx == pytest.approx(float(full.max()), rel=1e-6)
    # documented: "well under the 1% warning threshold" (absolute mass)
    assert mean == pytest.approx(float(full.mean()), abs=1e-3)


@pytest.mark.parametrize("kernel_size", [20, 0, -3, 21.0])
def test_bad_kernel_size_raises(kernel_size):
    p = torch.tensor([1.0, 1.0, 0.0])
    with pytest.raises(ConfigError, match="kernel_size must be an odd integer"):
        gaussian_kernels(p, kernel_size)
    with pytest.raises(ConfigError, match="kernel_size must be an odd integer"):
        truncated_mass(p, kernel_size)


def test_integer_params_raise():
    with pytest.raises(ConfigError, match=r"float \(\.\.\., 3\) tensor"):
        gaussian_kernels(torch.tensor([2, 1, 0]), 5)
    with pytest.raises(ConfigError, match=r"float \(\.\.\., 3\) tensor"):
        truncated_mass(torch.tensor([2, 1, 0]), 5)


def test_wrong_shapes_raise():
    with pytest.raises(ConfigError, match=r"\(s1, s2, theta\).*\(4, 2\)"):
        gaussian_kernels(torch.ones(4, 2), 5)
    with pytest.raises(ConfigError, match=r"\(\.\.\., 3\).*\(4, 2\)"):
        truncated_mass(torch.ones(4, 2), 5)
    with pytest.raises(ConfigError, match=r"\(3, h, w\), got \(5, 5, 3\)"):
        truncation_stats(torch.ones(5, 5, 3))
    with pytest.raises(ConfigError, match=r"\(3, h, w\), got \(3, 5\)"):
        truncation_stats(torch.ones(3, 5))
    with pytest.raises(ConfigError, match=r"\(\.\.\., 2, 2\), got \(3, 3\)"):
        sigmas_from_covariance(torch.eye(3))


def test_basicsr_default_isotropic_call_is_not_our_anisotropic_kernel() -> None:
    # BasicSR's bivariate_Gaussian defaults to isotropic=True, which uses sig_x for both axes and
    # ignores theta: only isotropic=False (bivariate_gaussian_basicsr) equals our kernel.
    from tests.reference import basicsr_mixed_kernel

    ours = gaussian_kernels(torch.tensor([2.0, 0.7, 0.5], dtype=torch.float64), 13).numpy()
    np.testing.assert_allclose(ours, bivariate_gaussian_basicsr(13, 2.0, 0.7, 0.5), rtol=0, atol=1e-15)
    default_call = basicsr_mixed_kernel("iso", 13, 2.0, 0.7, 0.5, 1.0)
    assert np.abs(ours - default_call).max() > 1e-2
