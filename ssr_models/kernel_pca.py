"""PCA of per-pixel blur kernels: the compact kernel code that conditions NBSR (SRMD/IKC practice).

SRMD and IKC project each K x K kernel onto the top P principal components of a set of training
kernels and feed the P-vector to the SR network; SSR's NBSR (paper Sec. 3.2) is "conditioned on
the per-pixel kernel", done here the same way per LR pixel: a kernel field (B, K*K, h, w) becomes a
code map (B, P, h, w).

Choices (the paper is silent):

* The basis is fitted on kernels drawn from the engine's own family: s1, s2 ~ U[0.6, 3.5] HR px
  (the ``ssr`` recipe at x4, DESIGN.md section 3), theta ~ U[0, pi), built by
  :func:`degrade.ops.kernels.gaussian_kernels` at the same K and ``delta`` as the data.
* P = 15 components by default (SRMD's choice; IKC uses 10). ``explained_variance_ratio`` says
  how much of the kernels' variance they keep: 0.994 for the default range at K = 21 (P = 10:
  0.983, with a mean per-pixel L1 error of 0.12 on held-out kernels against 0.07 for P = 15; the
  narrowest kernels, sigma near 0.6, are the hardest to code).
* :meth:`KernelPCA.decode` returns the linear reconstruction ``mean + codes @ components``; it is
  not renormalized or clipped (it already sums to 1 up to float error: every component of a set
  of kernels that all sum to 1 sums to 0).
* The fitted state (mean, components, ratios, K, delta) lives in buffers and ``extra_state``, so
  it goes into the model's ``state_dict`` and checkpoint.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from degrade.ops.kernels import check_kernel_size, gaussian_kernels
from ssr_core.errors import ConfigError

_TINY = 1e-20


def kernel_field_to_taps(kernel_field: torch.Tensor, kernel_size: int, delta: float) -> torch.Tensor:
    """Build the kernel field (B, K*K, h, w) from a parameter field (B, 3, h, w) of (s1, s2, theta)."""
    if kernel_field.ndim != 4 or kernel_field.shape[1] != 3:
        raise ConfigError(f"params must be (B, 3, h, w), got {tuple(kernel_field.shape)}")
    b, _, h, w = kernel_field.shape
    # Built in the kernel_field' dtype (float32 in training, fast on GPUs): gaussian_kernels floors the
    # exponents at LOG_FLOOR so no weight is denormal, and flush_tiny zeroes those floored weights
    # (< 2e-22) so that products with them in the losses and their backward stay normal too.
    k = flush_tiny(gaussian_kernels(kernel_field.permute(0, 2, 3, 1), kernel_size, delta))  # (B, h, w, K, K)
    return k.reshape(b, h, w, kernel_size * kernel_size).permute(0, 3, 1, 2)


def flush_tiny(k: torch.Tensor) -> torch.Tensor:
    """Zero kernel weights below 1e-20: the far taps of narrow kernels are otherwise denormal
    numbers, which make CPU matmuls, LAPACK and autograd 10-100x slower; at < 1e-20 of a kernel
    that sums to 1 they change nothing at float32 precision."""
    return torch.where(k < _TINY, torch.zeros((), dtype=k.dtype, device=k.device), k)


def sample_kernel_params(n: int, generator: torch.Generator,
                         sigma_range: tuple[float, float] = (0.6, 3.5)) -> torch.Tensor:
    """Draw n (s1, s2, theta) rows: s1, s2 ~ U[sigma_range] HR px, theta ~ U[0, pi); (n, 3)."""
    lo, hi = sigma_range
    u = torch.rand(n, 3, generator=generator, dtype=torch.float64)
    s = lo + (hi - lo) * u[:, :2]
    return torch.cat([s, math.pi * u[:, 2:]], dim=1).float()


class KernelPCA(nn.Module):
    """Linear PCA codec for K x K kernels: (B, K*K, h, w) <-> (B, P, h, w).

    Args:
        kernel_size: odd K.
        delta: LR grid offset in HR px of the kernels it codes (see degrade.ops.kernels).
        n_components: P.
        sigma_range: (min, max) standard deviation in HR px of the fitting kernels.
    """

    def __init__(self, kernel_size: int = 21, delta: float = 0.0, n_components: int = 15,
                 sigma_range: tuple[float, float] = (0.6, 3.5)) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        if not 1 <= n_components <= kernel_size * kernel_size:
            raise ConfigError(f"n_components must be in [1, {kernel_size ** 2}], got {n_components}")
        self.kernel_size, self.delta = kernel_size, float(delta)
        self.n_components, self.sigma_range = n_components, tuple(sigma_range)
        self.fitted = False
        kk = kernel_size * kernel_size
        self.register_buffer("mean", torch.zeros(kk))
        self.register_buffer("components", torch.zeros(n_components, kk))
        self.register_buffer("explained_variance_ratio", torch.zeros(n_components))

    def fit(self, n: int, generator: torch.Generator) -> KernelPCA:
        """Fit on n engine kernels drawn with ``generator``; returns self."""
        if n < self.n_components:
            raise ConfigError(f"need n >= n_components={self.n_components} kernels, got {n}")
        params = sample_kernel_params(n, generator, self.sigma_range)
        k = flush_tiny(gaussian_kernels(params.double(), self.kernel_size, self.delta)).reshape(n, -1)
        mean = k.mean(0)
        _, sv, vh = torch.linalg.svd(k - mean, full_matrices=False)
        var = sv * sv
        self.mean.copy_(mean.float())
        self.components.copy_(vh[: self.n_components].float())
        self.explained_variance_ratio.copy_((var[: self.n_components] / var.sum()).float())
        self.fitted = True
        return self

    @property
    def explained_variance(self) -> float:
        """Share of the fitting kernels' variance the P components keep, in [0, 1]."""
        return float(self.explained_variance_ratio.sum())

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Project kernels (B, K*K, h, w), or a parameter field (B, 3, h, w), to codes (B, P, h, w)."""
        self._check_fitted()
        kk = self.kernel_size * self.kernel_size
        if x.ndim == 4 and x.shape[1] == 3 and kk != 3:
            x = kernel_field_to_taps(x, self.kernel_size, self.delta)
        if x.ndim != 4 or x.shape[1] != kk:
            raise ConfigError(f"expected kernels (B, {kk}, h, w) or params (B, 3, h, w), got "
                              f"{tuple(x.shape)}")
        centred = x - self.mean.to(x.dtype).view(1, -1, 1, 1)
        return torch.einsum("pk,bkhw->bphw", self.components.to(x.dtype), centred)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruct kernels (B, K*K, h, w) from codes (B, P, h, w) (linear, not renormalized)."""
        self._check_fitted()
        if codes.ndim != 4 or codes.shape[1] != self.n_components:
            raise ConfigError(f"codes must be (B, {self.n_components}, h, w), got {tuple(codes.shape)}")
        k = torch.einsum("pk,bphw->bkhw", self.components.to(codes.dtype), codes)
        return k + self.mean.to(codes.dtype).view(1, -1, 1, 1)

    def get_extra_state(self) -> dict[str, Any]:
        return {"kernel_size": self.kernel_size, "delta": self.delta, "fitted": self.fitted,
                "n_components": self.n_components, "sigma_range": list(self.sigma_range)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if (state["kernel_size"], state["n_components"]) != (self.kernel_size, self.n_components):
            raise ConfigError(
                f"state is for K={state['kernel_size']}, P={state['n_components']}; this KernelPCA "
                f"has K={self.kernel_size}, P={self.n_components}")
        self.delta, self.fitted = float(state["delta"]), bool(state["fitted"])
        self.sigma_range = tuple(state["sigma_range"])

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ConfigError("KernelPCA is not fitted: call fit(n, generator) or load_state_dict()")
