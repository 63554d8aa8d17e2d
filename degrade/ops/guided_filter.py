"""Guided filter (He, Sun, Tang, ECCV 2010 / TPAMI 2013) as pure torch functions.

The filter output is locally a linear function of the guide, q = a * I + b, fitted by ridge
regression of ``src`` on ``guide`` in every (2r+1) x (2r+1) window (Eqs. 5-6 of the TPAMI paper;
Eq. 19 for the colour guide), then averaged over the windows covering each pixel (Eq. 8). All
box means use integral images, so the cost per pixel does not depend on the radius.

Choices the paper leaves open:

- Borders: a window is clipped to the image and the sum is divided by the number of pixels
  actually inside it (the paper's reference code does the same with its ``N`` image), so a
  constant stays constant right up to the border.
- Precision: integral images of megapixel images reach 1e6, where float32 keeps about 0.1 of
  absolute precision, and var = mean(I^2) - mean(I)^2 cancels catastrophically. Everything is
  therefore computed in float64 and the result is cast back to the dtype of ``src``.
"""

from __future__ import annotations

import torch

from ssr_core.errors import ConfigError

__all__ = ["box_filter", "guided_filter", "guided_filter_coefficients"]


def _box_sum_1d(x: torch.Tensor, dim: int, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum x over clipped windows of half-width ``radius`` along ``dim``; also return counts.

    With c the cumulative sum padded to c[0] = 0, the window of i sums to
    c[min(i + r + 1, n)] - c[max(i - r, 0)]. Extending c by r + 1 zeros in front and r copies
    of its end behind turns both clamped indices into two shifted slices of one tensor: the
    same subtractions as gathering c at the clamped indices (bit for bit), without a gather,
    which along the last dimension cost 15x more.
    """
    n = x.shape[dim]
    dim = dim % x.ndim
    csum = torch.cumsum(x, dim=dim)

    def repeated(edge: torch.Tensor, times: int) -> torch.Tensor:
        return edge.expand(*[times if d == dim else s for d, s in enumerate(edge.shape)])

    ext = torch.cat([repeated(torch.zeros_like(x.narrow(dim, 0, 1)), radius + 1), csum,
                     repeated(csum.narrow(dim, n - 1, 1), radius)], dim=dim)
    idx = torch.arange(n, device=x.device)
    count = (idx + radius).clamp(max=n - 1) + 1 - (idx - radius).clamp(min=0)
    return ext.narrow(dim, 2 * radius + 1, n) - ext.narrow(dim, 0, n), count


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Average x (B, C, H, W) over (2r+1)^2 windows clipped at the borders; same shape.

    Each output pixel is the mean of the pixels of its window that lie inside the image, so the
    normalization at the borders is the true pixel count. Cost is O(1) per pixel in ``radius``.

    Args:
        x: (B, C, H, W) floating tensor.
        radius: window half-width r >= 0 in pixels.

    Returns:
        (B, C, H, W) tensor of window means, dtype of ``x`` (accumulated in float64).

    Example:
        >>> box_filter(torch.arange(3.0).view(1, 1, 1, 3), 1)
        tensor([[[[0.5000, 1.0000, 1.5000]]]])
    """
    _check_radius(radius)
    if x.ndim != 4 or not x.is_floating_point():
        raise ConfigError(
            f"box_filter expects a floating (B, C, H, W) tensor, got shape {tuple(x.shape)} "
            f"dtype {x.dtype}"
        )
    return _box_mean(x.to(torch.float64), radius).to(x.dtype)


def _box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Box mean of a float64 (..., H, W) tensor without input checks (internal fast path)."""
    rows, count_h = _box_sum_1d(x, -2, radius)
    both, count_w = _box_sum_1d(rows, -1, radius)
    count = (count_h[:, None] * count_w[None, :]).to(x.dtype)
    return both / count


def _check_radius(radius: int) -> None:
    if isinstance(radius, bool) or not isinstance(radius, int) or radius < 0:
        raise ConfigError(f"radius must be an int >= 0 (pixels), got {radius!r}")


def _check_inputs(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> None:
    _check_radius(radius)
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ConfigError(f"eps must be a number > 0 (squared intensity units), got {eps!r}")
    for name, t in (("guide", guide), ("src", src)):
        if t.ndim != 4:
            raise ConfigError(f"{name} must be (B, C, H, W), got shape {tuple(t.shape)}")
        if t.dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"{name} must be float32 or float64, got {t.dtype}")
    if guide.shape[0] != src.shape[0] or guide.shape[2:] != src.shape[2:]:
        raise ConfigError(
            f"guide and src must share B, H, W: guide {tuple(guide.shape)}, src {tuple(src.shape)}"
        )
    if guide.device != src.device:
        raise ConfigError(f"guide on {guide.device} but src on {src.device}")


def _inv_sym3(m: torch.Tensor) -> torch.Tensor:
    """Invert symmetric positive-definite 3x3 matrices (..., 3, 3) by cofactors.

    A closed form is ~10x faster than batched ``torch.linalg.inv`` for millions of tiny matrices,
    and Sigma + eps*U is well conditioned for eps > 0.
    """
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    c00 = d * f - e * e
    c01 = c * e - b * f
    c02 = b * e - c * d
    c11 = a * f - c * c
    c12 = b * c - a * e
    c22 = a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = torch.stack(
        [
            torch.stack([c00, c01, c02], -1),
            torch.stack([c01, c11, c12], -1),
            torch.stack([c02, c12, c22], -1),
        ],
        -2,
    )
    return inv / det[..., None, None]


def guided_filter_coefficients(
    guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit the guided filter's window-averaged linear model q = sum_c a_c * I_c + b.

    Returning the averaged coefficients instead of q lets a caller fit them on a downsampled
    pair and apply them to the full-resolution guide (He and Sun's "fast guided filter").

    Args:
        guide: (B, C, H, W) float32/float64 guide image I, typically in [0, 1]; any C >= 1.
        src: (B, K, H, W) float32/float64 image p to filter, same B, H, W; any K >= 1.
        radius: window half-width r >= 0 in pixels (window (2r+1) x (2r+1)).
        eps: ridge regularizer > 0 in squared guide units; a window whose guide variance is
            much smaller than eps is smoothed, a much larger one keeps its edges.

    Returns:
        (mean_a, mean_b): mean_a (B, K, C, H, W) and mean_b (B, K, H, W), float64.

    Raises:
        ConfigError: on a bad shape, dtype, radius or eps.
    """
    _check_inputs(guide, src, radius, eps)
    g = guide.to(torch.float64)
    p = src.to(torch.float64)
    n_ch = g.shape[1]
    mean_i = _box_mean(g, radius)  # (B, C, H, W)
    mean_p = _box_mean(p, radius)  # (B, K, H, W)
    # cov(I_c, p_k) for every pair: (B, K, C, H, W)
    mean_ip = _box_mean(p[:, :, None] * g[:, None], radius)
    cov_ip = mean_ip - mean_p[:, :, None] * mean_i[:, None]
    if n_ch == 1:
        var_i = _box_mean(g * g, radius) - mean_i * mean_i  # (B, 1, H, W)
        a = cov_ip / (var_i[:, None] + eps)
    else:
        # Sigma_k + eps * U per pixel (TPAMI Eq. 19): only the upper triangle is box-filtered.
        iu = torch.triu_indices(n_ch, n_ch)
        prods = g[:, iu[0]] * g[:, iu[1]]
        cov_tri = _box_mean(prods, radius) - mean_i[:, iu[0]] * mean_i[:, iu[1]]
        sigma = g.new_zeros(g.shape[0], g.shape[2], g.shape[3], n_ch, n_ch)
        sigma[..., iu[0], iu[1]] = cov_tri.permute(0, 2, 3, 1)
        sigma[..., iu[1], iu[0]] = cov_tri.permute(0, 2, 3, 1)
        sigma = sigma + eps * torch.eye(n_ch, dtype=g.dtype, device=g.device)
        inv = _inv_sym3(sigma) if n_ch == 3 else torch.linalg.inv(sigma)  # (B, H, W, C, C)
        a = torch.einsum("bhwcd,bkdhw->bkchw", inv, cov_ip)
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)
    mean_a = _box_mean(a.flatten(1, 2), radius).view_as(a)
    return mean_a, _box_mean(b, radius)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Filter src (B, K, H, W) edge-preservingly, steered by guide (B, C, H, W); same shape as src.

    C = 1 is the grayscale guided filter (TPAMI Eqs. 5-8), C = 3 the colour one with a per-pixel
    3x3 covariance inverse (Eq. 19); other C use the same formula with a batched inverse.

    Args:
        guide: (B, C, H, W) float32/float64 guide image, typically in [0, 1].
        src: (B, K, H, W) float32/float64 image to filter (the paper's p), same B, H, W.
        radius: window half-width r >= 0 in pixels.
        eps: regularizer > 0 in squared guide units (e.g. 1e-3 for guides in [0, 1]).

    Returns:
        (B, K, H, W) filtered image q, dtype of ``src``.

    Raises:
        ConfigError: on a bad shape, dtype, radius or eps (message gives expected vs got).

    Example:
        >>> flat = torch.full((1, 1, 4, 5), 0.25)
        >>> guided_filter(torch.rand(1, 3, 4, 5), flat, radius=1, eps=1e-3).allclose(flat)
        True
    """
    mean_a, mean_b = guided_filter_coefficients(guide, src, radius, eps)
    q = (mean_a * guide.to(torch.float64)[:, None]).sum(dim=2) + mean_b
    return q.to(src.dtype)
