"""MATLAB ``imresize(img, s, 'bicubic')`` for integer upscaling, as a pure function on tensors.

The bicubic baseline of SR tables (and the LR inputs of IKC/DAN/DCLS-style test sets) come from
MATLAB's ``imresize``; torch's ``F.interpolate(mode="bicubic")`` differs from it twice: its
cubic uses a = -0.75 and its borders replicate the edge pixel. MATLAB's conventions, restated:

* Kernel: Keys' cubic convolution with a = -0.5,
  ``k(x) = 1.5|x|^3 - 2.5|x|^2 + 1`` for ``|x| <= 1``,
  ``-0.5|x|^3 + 2.5|x|^2 - 4|x| + 2`` for ``1 < |x| <= 2``, else 0.
* Geometry (half-pixel centres): output pixel x (1-based) samples the input at
  ``u = x / s + 0.5 (1 - 1 / s)`` (1-based), so the image's outer edges line up.
* 4 taps ``floor(u) - 1 .. floor(u) + 2``; the weights are normalised to sum 1 (MATLAB does;
  for a = -0.5 they already do up to rounding).
* Borders: indices outside ``1..n`` are mirrored symmetrically, MATLAB's
  ``aux = [1:n, n:-1:1]; idx = aux(mod(idx - 1, 2n) + 1)`` (the edge pixel is repeated).
* Separable: rows (H) first, then columns (W); upscaling needs no antialiasing.

Values stay in the input's float dtype between the two passes and are not clipped (bicubic
overshoots near edges; clip or round at the edge of the program). MATLAB on uint8 input returns
uint8; its rounding is reproduced by callers, not here.
"""

from __future__ import annotations

import operator
from typing import TypeVar

import numpy as np
import torch

from ssr_datasets.errors import ConfigError


ArrayT = TypeVar("ArrayT", torch.Tensor, np.ndarray)


def cubic_kernel(x: ArrayT) -> ArrayT:
    """Return Keys' cubic convolution kernel with a = -0.5 at x (MATLAB's ``cubic``), elementwise.

    The one copy of this kernel: the torch resize below and NIQE's numpy ``imresize(0.5)`` both
    evaluate it (same arithmetic, so the same values in the same dtype).

    Args:
        x: distances in pixels, a torch tensor or a numpy array of any shape (float).

    Returns:
        weights of the same type, shape and dtype; 1 at 0, 0 at the other integers and beyond 2.

    >>> cubic_kernel(np.array([0.0, 0.5, 1.0, 1.5, 2.5])).tolist()
    [1.0, 0.5625, 0.0, -0.0625, 0.0]
    """
    ax = abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def _weights(n: int, scale: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return 0-based input indices (s*n, 4) and float64 weights (s*n, 4) along one axis of n px."""
    x = torch.arange(1, scale * n + 1, dtype=torch.float64, device=device)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    idx = torch.floor(u)[:, None] - 1 + torch.arange(4, dtype=torch.float64, device=device)  # 1-based
    w = cubic_kernel(u[:, None] - idx)
    w = w / w.sum(1, keepdim=True)
    m = torch.remainder(idx - 1, 2 * n).long()  # 0-based position in aux = [1..n, n..1]
    return torch.where(m < n, m, 2 * n - 1 - m), w


def imresize_bicubic(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Upscale (C, H, W) or (B, C, H, W) by an integer factor as MATLAB ``imresize`` bicubic does.

    Args:
        img: float tensor, any range (typically [0, 1] or [0, 255]); computed in its dtype.
            float32 keeps the result within ~1e-6 of float64 on [0, 1] (each output is a
            16-term sum of values times weights that sum to 1), far below half a uint8 level.
        scale: integer factor s >= 1 (1 returns a copy).

    Returns:
        (.., C, s*H, s*W) tensor of img's dtype and device, not clipped.

    Raises:
        ConfigError: not a 3-D or 4-D float tensor, an empty image, or a scale that is not an
            integer >= 1.

    >>> imresize_bicubic(torch.full((1, 2, 3), 0.25), 2).shape
    torch.Size([1, 4, 6])
    >>> imresize_bicubic(torch.tensor([[[0.0, 1.0]]]), 2)[0, 0].tolist()  # overshoots at the edges
    [-0.09375, 0.203125, 0.796875, 1.09375]
    """
    if not isinstance(img, torch.Tensor) or img.ndim not in (3, 4) or not img.is_floating_point():
        got = f"{img.dtype} {tuple(img.shape)}" if isinstance(img, torch.Tensor) else type(img).__name__
        raise ConfigError(f"img must be a float (C, H, W) or (B, C, H, W) tensor, got {got}")
    if isinstance(scale, bool):
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}")
    try:
        s = operator.index(scale)
    except TypeError:
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}") from None
    if s < 1:
        raise ConfigError(f"scale must be an integer >= 1 (this resizer only upscales), got {s}")
    h, w = img.shape[-2:]
    if h < 1 or w < 1:
        raise ConfigError(f"img has an empty spatial size {tuple(img.shape)}")
    out = img
    for dim, n in ((-2, h), (-1, w)):
        idx, wt = _weights(n, s, img.device)
        taps = out.index_select(dim, idx.flatten())  # (.., s*n*4, W) or (.., H', s*n*4)
        if dim == -2:
            taps = taps.unflatten(-2, (s * n, 4))  # (.., s*n, 4, W)
            out = (taps * wt.to(img.dtype)[:, :, None]).sum(-2)
        else:
            taps = taps.unflatten(-1, (s * n, 4))  # (.., H', s*n, 4)
            out = (taps * wt.to(img.dtype)).sum(-1)
    return out
