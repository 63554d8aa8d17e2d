"""KernelPCA: fit on engine kernels, held-out reconstruction, code shapes, state dict round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from degrade.ops.kernels import gaussian_kernels
from ssr_core.errors import ConfigError
from ssr_models.kernel_pca import KernelPCA, kernel_field_to_taps, sample_kernel_params
from tests.reference import gaussian_kernel_direct


@pytest.fixture(scope="module")
def pca() -> KernelPCA:
    return KernelPCA(kernel_size=21, delta=1.5, n_components=15).fit(2000, torch.Generator().manual_seed(0))


def test_fit_explains_most_variance(pca: KernelPCA) -> None:
    assert 0.95 < pca.explained_variance <= 1.0
    ratios = pca.explained_variance_ratio
    assert bool((ratios[:-1] >= ratios[1:]).all())


def test_held_out_kernels_reconstruct_closely(pca: KernelPCA) -> None:
    params = sample_kernel_params(64, torch.Generator().manual_seed(123)).view(1, 8, 8, 3)
    kernels = kernel_field_to_taps(params.permute(0, 3, 1, 2), 21, 1.5)
    recon = pca.decode(pca.encode(kernels))
    assert recon.shape == kernels.shape
    # Per-pixel L1 distance between kernels lies in [0, 2]; 15 components keep it near 0.07 and
    # the relative L2 error near 3.5% (measured at fit n = 4000; thresholds leave a margin).
    err = (recon - kernels).abs().sum(1)
    rel = (recon - kernels).norm(dim=1) / kernels.norm(dim=1)
    assert float(err.mean()) < 0.1 and float(rel.mean()) < 0.05 and float(rel.max()) < 0.2
    torch.testing.assert_close(recon.sum(1), torch.ones(1, 8, 8), rtol=0, atol=1e-5)


def test_encode_accepts_params_or_kernels(pca: KernelPCA) -> None:
    params = torch.tensor([2.0, 1.0, 0.4]).view(1, 3, 1, 1).expand(2, 3, 3, 5)
    codes = pca.encode(params)
    assert codes.shape == (2, 15, 3, 5)
    torch.testing.assert_close(codes, pca.encode(kernel_field_to_taps(params, 21, 1.5)))
    k = gaussian_kernels(torch.tensor([2.0, 1.0, 0.4]), 21, 1.5).reshape(-1)
    torch.testing.assert_close(kernel_field_to_taps(params, 21, 1.5)[1, :, 2, 4], k)


# narrow, wide, anisotropic at both angles' ends: the far taps of s = 0.6 are below 1e-38 unfloored
GT_FIELD = [(0.6, 0.6, 0.0), (0.6, 3.5, 0.3), (3.5, 3.5, 1.0), (3.5, 0.6, 3.1), (1.3, 2.2, 1.6),
            (0.6, 1.0, 2.0)]


def test_kernel_field_to_taps_float32_matches_float64_reference() -> None:
    """Ground-truth kernels of a batch are built in float32 (fast on GPUs) and agree with the
    direct formula in float64 to float32 resolution, with no denormal weight."""
    params = torch.tensor(GT_FIELD).T.reshape(1, 3, 2, 3)
    k = kernel_field_to_taps(params, 21, 1.5)
    assert k.dtype == torch.float32 and k.shape == (1, 441, 2, 3)
    for n, (s1, s2, th) in enumerate(GT_FIELD):
        ref = gaussian_kernel_direct(s1, s2, th, 21, 1.5).reshape(-1)
        np.testing.assert_allclose(k[0, :, n // 3, n % 3].double().numpy(), ref, rtol=0, atol=2e-7)
    nonzero = k[k != 0]
    assert float(nonzero.abs().min()) >= torch.finfo(torch.float32).tiny


def test_gaussian_kernels_float32_hold_no_denormals() -> None:
    """The exponent floor shared with the blur engine (kernels.LOG_FLOOR) keeps every float32
    weight a normal number, so nothing downstream runs at denormal speed."""
    k = gaussian_kernels(torch.tensor(GT_FIELD), 21, 1.5)
    assert k.dtype == torch.float32
    assert float(k.min()) >= torch.finfo(torch.float32).tiny
    torch.testing.assert_close(k.sum((-2, -1)), torch.ones(len(GT_FIELD)))


def test_kernel_field_to_taps_gradient_matches_float64() -> None:
    weights = torch.rand(1, 441, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    grads = []
    for dtype in (torch.float32, torch.float64):
        params = torch.tensor(GT_FIELD, dtype=dtype).T.reshape(1, 3, 2, 3).requires_grad_(True)
        (kernel_field_to_taps(params, 21, 1.5) * weights.to(dtype)).sum().backward()
        grads.append(params.grad.double())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_state_dict_round_trip(pca: KernelPCA) -> None:
    fresh = KernelPCA(kernel_size=21, delta=0.0, n_components=15)
    with pytest.raises(ConfigError, match="not fitted"):
        fresh.encode(torch.rand(1, 3, 2, 2) + 1)
    fresh.load_state_dict(pca.state_dict())
    assert fresh.delta == 1.5 and fresh.fitted
    x = torch.rand(1, 3, 2, 2) + 1
    torch.testing.assert_close(fresh.encode(x), pca.encode(x))


def test_shape_errors(pca: KernelPCA) -> None:
    with pytest.raises(ConfigError, match="expected kernels"):
        pca.encode(torch.zeros(1, 5, 2, 2))
    with pytest.raises(ConfigError, match="codes must be"):
        pca.decode(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ConfigError, match="n_components"):
        KernelPCA(kernel_size=3, n_components=10)
