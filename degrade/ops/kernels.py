"""Anisotropic Gaussian kernels: the (s1, s2, theta) parameterization of DESIGN.md section 3.

Conventions, once for the whole project:

* ``s1, s2`` are standard deviations in HR pixels (KAIR and MANet store *variances*; use
  :func:`sigmas_from_variances` / :func:`variances_from_sigmas` to convert).
* ``theta`` in [0, pi) radians rotates the ``s1`` axis from +x (columns) toward +y (rows):
  ``Sigma = R(theta) diag(s1^2, s2^2) R(theta)^T`` with ``R = [[cos, -sin], [sin, cos]]`` acting on
  ``d = (dx, dy) = (column offset, row offset)``. With ``delta = 0`` a kernel is exactly BasicSR's
  ``bivariate_Gaussian(K, s1, s2, theta, isotropic=False)``; BasicSR's default
  ``isotropic=True`` ignores ``s2`` and ``theta`` (a circle of std ``s1``).
* ``delta`` shifts the kernel centre by ``(delta, delta)`` HR pixels: ``d = (b - delta, a - delta)``
  for tap ``(a, b)`` in ``-R..R``. ``delta = (s - 1) / 2`` centres it on the ``s x s`` block.
"""

from __future__ import annotations

import math

import torch

from ssr_core.errors import ConfigError

# Gauss-Legendre nodes for the box probability below; 64 nodes over at most 16 standard
# deviations keep the quadrature error under 1e-6 for the recipes' sigma ranges.
_GL_NODES = 64

# Shifted exponents (0 at each kernel's peak) are floored here, in every kernel builder of the
# project: exp(-50) < 2e-22 is far below float32 resolution next to a peak weight of 1, and the
# floor keeps every weight a normal float32 number (denormals make x86 exp, multiplies and their
# backward 10-50x slower; with the floor, no float64 detour is needed).
LOG_FLOOR = -50.0


def centered_delta(scale: int) -> float:
    """Return the LR grid offset (s - 1) / 2 in HR pixels that centres kernels on s x s blocks."""
    return (scale - 1) / 2.0


def precision_terms(
    s1: torch.Tensor, s2: torch.Tensor, theta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (A, B, C) of Sigma^-1 = [[A, B], [B, C]] for (s1, s2, theta) in HR px and radians.

    The exponent of the kernel is ``-0.5 * (A dx^2 + 2 B dx dy + C dy^2)``.
    """
    c, s = torch.cos(theta), torch.sin(theta)
    i1, i2 = s1.pow(-2), s2.pow(-2)
    a = c * c * i1 + s * s * i2
    cc = s * s * i1 + c * c * i2
    b = c * s * (i1 - i2)
    return a, b, cc


def covariance_from_sigmas(
    s1: torch.Tensor, s2: torch.Tensor, theta: torch.Tensor
) -> torch.Tensor:
    """Return Sigma (..., 2, 2) in HR px^2 from standard deviations s1, s2 and angle theta."""
    c, s = torch.cos(theta), torch.sin(theta)
    v1, v2 = s1 * s1, s2 * s2
    xx = c * c * v1 + s * s * v2
    yy = s * s * v1 + c * c * v2
    xy = c * s * (v1 - v2)
    return torch.stack([torch.stack([xx, xy], -1), torch.stack([xy, yy], -1)], -2)


def sigmas_from_covariance(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (s1, s2, theta) with s1 >= s2 (HR px) and theta in [0, pi) from Sigma (..., 2, 2).

    Closed form of the symmetric 2 x 2 eigenproblem, elementwise, so it runs on any device and
    batch size (``torch.linalg.eigh`` on large CUDA batches fails inside cusolver): with
    ``Sigma = [[a, b], [b, c]]`` the variances are ``(a + c) / 2 +- hypot((a - c) / 2, b)``
    (``hypot`` neither overflows nor loses the smaller term) and the major axis lies at
    ``theta = atan2(2 b, a - c) / 2``. Negative variances from rounding are clamped to 0. A
    circle (a = c, b = 0) gets theta = 0: every angle describes it. Only the symmetric part of
    ``cov`` is read (``b`` is the mean of the two off-diagonal entries).

    >>> s1, s2, th = sigmas_from_covariance(torch.tensor([[4.0, 0.0], [0.0, 1.0]]))
    >>> float(s1), float(s2), float(th)
    (2.0, 1.0, 0.0)
    """
    if cov.shape[-2:] != (2, 2):
        raise ConfigError(f"covariance must have shape (..., 2, 2), got {tuple(cov.shape)}")
    a, c = cov[..., 0, 0], cov[..., 1, 1]
    b = 0.5 * (cov[..., 0, 1] + cov[..., 1, 0])
    mean = 0.5 * (a + c)
    radius = torch.hypot(0.5 * (a - c), b)
    s1 = (mean + radius).clamp_min(0).sqrt()
    s2 = (mean - radius).clamp_min(0).sqrt()
    theta = 0.5 * torch.atan2(2 * b, a - c)  # in [-pi/2, pi/2]
    theta = torch.where(theta < 0, theta + math.pi, theta)
    # theta + pi can round up to pi itself for a tiny negative angle; pi and 0 are the same axis.
    theta = torch.where(theta >= math.pi, torch.zeros_like(theta), theta)
    return s1, s2, theta


def sigmas_from_variances(
    l1: torch.Tensor, l2: torch.Tensor, theta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convert KAIR/MANet-style variances (l1, l2) in HR px^2 to standard deviations (s1, s2)."""
    return l1.sqrt(), l2.sqrt(), theta


def variances_from_sigmas(
    s1: torch.Tensor, s2: torch.Tensor, theta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Convert standard deviations (s1, s2) in HR px to KAIR/MANet-style variances."""
    return s1 * s1, s2 * s2, theta


def tap_offsets(kernel_size: int, delta: float, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Return the K offsets ``a - delta`` for taps ``a = -R..R`` in HR px."""
    check_kernel_size(kernel_size)
    r = kernel_size // 2
    return torch.arange(-r, r + 1, dtype=dtype, device=device) - delta


def gaussian_kernels(
    params: torch.Tensor, kernel_size: int = 21, delta: float = 0.0
) -> torch.Tensor:
    """Build normalized kernels (..., K, K) from a field (..., 3) of (s1, s2, theta).

    Rows of a kernel index the row offset ``a``, columns the column offset ``b``. Works in the
    dtype of ``params``; exponents below :data:`LOG_FLOOR` are floored (weights < 2e-22 of the
    peak), so float32 kernels hold no denormal numbers.

    >>> k = gaussian_kernels(torch.tensor([1.0, 1.0, 0.0]), kernel_size=5)
    >>> round(float(k.sum()), 6), tuple(k.shape)
    (1.0, (5, 5))
    """
    if not params.is_floating_point() or params.shape[-1] != 3:
        raise ConfigError(
            f"params must be a float (..., 3) tensor of (s1, s2, theta), got {params.dtype} "
            f"{tuple(params.shape)}"
        )
    a, b, c = precision_terms(params[..., 0], params[..., 1], params[..., 2])
    d = tap_offsets(kernel_size, delta, params.dtype, params.device)
    dy, dx = d.view(-1, 1), d.view(1, -1)
    q = (a[..., None, None] * dx * dx + 2 * b[..., None, None] * dx * dy
         + c[..., None, None] * dy * dy)
    k = torch.exp((-0.5 * (q - q.amin(dim=(-2, -1), keepdim=True))).clamp_min(LOG_FLOOR))
    return k / k.sum(dim=(-2, -1), keepdim=True)


def truncated_mass(
    params: torch.Tensor, kernel_size: int = 21, delta: float = 0.0
) -> torch.Tensor:
    """Return the mass of the continuous Gaussian outside the K x K window, per field entry.

    The window is the union of the unit cells around the taps: ``[-R-0.5, R+0.5]^2`` shifted by
    ``-delta``. ``params`` is (..., 3) of (s1, s2, theta); the result has shape ``params.shape[:-1]``
    and lies in [0, 1]. Computed by Gauss-Legendre quadrature over the row offset of the
    conditional normal (x | y), so it does not depend on the tap sampling.
    """
    check_kernel_size(kernel_size)
    if not params.is_floating_point() or params.shape[-1] != 3:
        raise ConfigError(
            f"params must be a float (..., 3) tensor of (s1, s2, theta), got {params.dtype} "
            f"{tuple(params.shape)}"
        )
    p = params.to(torch.float64)
    cov = covariance_from_sigmas(p[..., 0], p[..., 1], p[..., 2])
    sxx, syy, sxy = cov[..., 0, 0], cov[..., 1, 1], cov[..., 0, 1]
    r = kernel_size // 2
    lo, hi = -r - 0.5 - delta, r + 0.5 - delta
    sy = syy.sqrt()
    # Integrate over u = y / sy, clipped to +-8.5 sd (mass beyond is < 1e-16).
    ulo = (lo / sy).clamp(-8.5, 8.5)
    uhi = (hi / sy).clamp(-8.5, 8.5)
    nodes, weights = _gauss_legendre(p.device)
    half = (uhi - ulo)[..., None] / 2
    u = ulo[..., None] + half * (nodes + 1)
    slope = (sxy / sy)[..., None]  # E[x | y] = sxy / syy * y = slope * u
    sc = (sxx - sxy * sxy / syy).clamp_min(1e-24).sqrt()[..., None]
    inner = _phi_cdf((hi - slope * u) / sc) - _phi_cdf((lo - slope * u) / sc)
    dens = torch.exp(-0.5 * u * u) / math.sqrt(2 * math.pi)
    inside = (half * (weights * dens * inner)).sum(-1)
    return (1.0 - inside).clamp(0.0, 1.0).to(params.dtype)


def truncation_stats(
    field: torch.Tensor, kernel_size: int = 21, delta: float = 0.0, max_points: int = 16384
) -> tuple[float, float]:
    """Return (max, mean) truncated mass over a (3, h, w) field, on a grid of <= max_points pixels.

    The recipes' fields are smooth, so a regular subsample of a few thousand LR pixels gives the
    statistics to well under the 1% warning threshold at a fraction of the cost of every pixel.
    """
    if field.ndim != 3 or field.shape[0] != 3:
        raise ConfigError(f"field must be (3, h, w), got {tuple(field.shape)}")
    _, h, w = field.shape
    step = max(1, math.ceil(math.sqrt(h * w / max_points)))
    # Evenly spaced rows/columns that include the last ones: the widest kernels of a defocus field
    # often sit on a border, which a plain [::step] would skip.
    rows = torch.linspace(0, h - 1, math.ceil(h / step)).round().long().to(field.device)
    cols = torch.linspace(0, w - 1, math.ceil(w / step)).round().long().to(field.device)
    sub = field[:, rows][:, :, cols].permute(1, 2, 0)
    mass = truncated_mass(sub.to(torch.float64), kernel_size, delta)
    return float(mass.max()), float(mass.mean())


def check_kernel_size(kernel_size: int) -> None:
    """Raise ConfigError unless kernel_size is an odd integer >= 1."""
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd integer >= 1, got {kernel_size!r}")


def _phi_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2.0))


def _gauss_legendre(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    x, w = np.polynomial.legendre.leggauss(_GL_NODES)
    return (torch.as_tensor(x, dtype=torch.float64, device=device),
            torch.as_tensor(w, dtype=torch.float64, device=device))
