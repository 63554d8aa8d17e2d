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
* Downscaling by s (``imresize(img, 1/s)``, antialiasing on, MATLAB's default): the cubic is
  stretched by s and scaled by 1/s, the window grows to 4s taps, and ``u = x s + 0.5 (1 - s)``.
  One implementation (:func:`_contributions`) serves both directions.

Values stay in the input's float dtype between the two passes and are not clipped (bicubic
overshoots near edges; clip or round at the edge of the program). MATLAB on uint8 input returns
uint8; its rounding is reproduced by callers, not here.
"""

from __future__ import annotations

import math
import operator
from typing import TypeVar

import numpy as np
import torch

from ssr_core.errors import ConfigError

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


def _contributions(n_in: int, n_out: int, factor: float,
                   device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return MATLAB ``contributions``: 0-based input indices and float64 weights, both (n_out, P).

    ``factor`` is the output/input size ratio (s to upscale, 1/s to downscale). Downscaling
    antialiases as MATLAB does: the cubic is stretched to ``factor * cubic(factor * x)`` and the
    window to ``4 / factor`` taps. Columns that are zero for every output are dropped (MATLAB's
    ``kill``), so an integer upscale keeps exactly 4 taps.
    """
    aa = factor < 1.0
    width = 4.0 / factor if aa else 4.0
    x = torch.arange(1, n_out + 1, dtype=torch.float64, device=device)
    u = x / factor + 0.5 * (1.0 - 1.0 / factor)
    taps = math.ceil(width) + 2
    left = torch.floor(u - width / 2)
    idx = left[:, None] + torch.arange(taps, dtype=torch.float64, device=device)  # 1-based
    w = factor * cubic_kernel(factor * (u[:, None] - idx)) if aa else cubic_kernel(u[:, None] - idx)
    w = w / w.sum(1, keepdim=True)
    m = torch.remainder(idx - 1, 2 * n_in).long()  # 0-based position in aux = [1..n, n..1]
    idx = torch.where(m < n_in, m, 2 * n_in - 1 - m)
    keep = (w != 0).any(0)
    return idx[:, keep], w[:, keep]


def _resize(img: torch.Tensor, sizes: tuple[int, int], factor: float) -> torch.Tensor:
    """Resample the last two axes (rows first, then columns) with MATLAB's contributions."""
    out = img
    for dim, n_in, n_out in ((-2, img.shape[-2], sizes[0]), (-1, img.shape[-1], sizes[1])):
        idx, wt = _contributions(n_in, n_out, factor, img.device)
        wt = wt.to(img.dtype)
        # One gathered slice per tap keeps memory at one output-sized buffer even when
        # downscaling needs 4s + 2 taps (a (n_out, P, W) gather is 18x the LR at x4).
        acc = None
        for p in range(idx.shape[1]):
            shape = [1] * out.ndim
            shape[dim] = n_out
            term = out.index_select(dim, idx[:, p]) * wt[:, p].view(shape)
            acc = term if acc is None else acc.add_(term)
        out = acc
    return out


def _check(img: torch.Tensor, scale: int, what: str) -> int:
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
        raise ConfigError(f"scale must be an integer >= 1 ({what}), got {s}")
    h, w = img.shape[-2:]
    if h < 1 or w < 1:
        raise ConfigError(f"img has an empty spatial size {tuple(img.shape)}")
    return s


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
    s = _check(img, scale, "this function upscales; imresize_bicubic_down downscales")
    h, w = img.shape[-2:]
    return _resize(img, (s * h, s * w), float(s))


def imresize_bicubic_down(img: torch.Tensor, scale: int) -> torch.Tensor:
    """Downscale (C, H, W) or (B, C, H, W) by an integer factor as MATLAB ``imresize`` does.

    ``imresize(img, 1/s, 'bicubic')`` with its default antialiasing: each output pixel is a
    weighted sum over ``4 s`` input pixels per axis with weights ``cubic((u - i) / s) / s``
    normalised to sum 1, ``u = x s + 0.5 (1 - s)`` (1-based, so LR pixel centres sit at the
    centres of the s x s HR blocks), borders mirrored as for upscaling. This is the downsampler
    of IKC / DAN / DCLS test sets (their ``imresize(img, 1 / scale)``). It is not the direct
    sampling of Eq. 1: an LR pixel is not the blur kernel evaluated at one HR position.

    Args:
        img: float tensor whose height and width are multiples of ``scale``; computed in its dtype
            (float32 stays within ~1e-6 of float64 on [0, 1]: 4s + 2 weights summing to 1).
        scale: integer factor s >= 1 (1 returns a copy).

    Returns:
        (.., C, H/s, W/s) tensor of img's dtype and device, not clipped.

    Raises:
        ConfigError: as :func:`imresize_bicubic`, or a size that is not a multiple of ``scale``.

    >>> imresize_bicubic_down(torch.full((1, 8, 4), 0.25), 4).tolist()
    [[[0.25], [0.25]]]
    """
    s = _check(img, scale, "this function downscales")
    h, w = img.shape[-2:]
    if h % s or w % s:
        raise ConfigError(f"img {h}x{w} is not a multiple of the scale {s} (mod-crop it first)")
    return _resize(img, (h // s, w // s), 1.0 / s)
