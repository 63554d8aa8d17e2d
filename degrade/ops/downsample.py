"""Blur then downsample, for every recipe: the one place that dispatches on the downsampler.

Two kernel descriptions and two downsamplers (DESIGN.md section 3):

* a Gaussian **kernel field** (s1, s2, theta per LR pixel) goes through the exact engine
  :func:`degrade.ops.blur.apply_kernel_field`; a spatially **invariant** K x K array of
  **kernel taps** (protocols whose kernels are not plain Gaussians: DCLS's disturbed Gaussians,
  KernelGAN's noisy ones) goes through :func:`correlate_taps`, an exact correlation in the
  input's dtype with the protocol's border rule;
* ``"direct"`` samples the blur at LR positions (Eq. 1: exact, cost K*K per LR pixel);
  ``"bicubic"`` blurs every HR pixel with the kernel centred on it and then resizes by 1/s with
  MATLAB's antialiased bicubic (:func:`degrade.ops.resize.imresize_bicubic_down`), as IKC, DAN
  and DCLS make their sets. An LR pixel of a bicubic set is not the kernel evaluated at one HR
  position, so such sets are recorded as such and never called exact at LR positions.

For a field with the bicubic downsampler, LR pixel (i, j)'s kernel blurs the HR pixels of its
s x s block (the field repeated s times along each axis), so spatially variant blur works too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from ssr_core.errors import ConfigError

from .blur import Backend, apply_kernel_field, select_backend
from .resize import imresize_bicubic_down

Downsampler = Literal["direct", "bicubic"]
Padding = Literal["reflect", "symmetric"]


def mirror_indices(n: int, r: int, mode: Padding) -> np.ndarray:
    """Return the source index of each of the ``n + 2r`` padded positions along an axis of n px.

    ``reflect`` mirrors about the edge pixel (numpy/torch 'reflect': d c b | a b c d);
    ``symmetric`` repeats it (c b a | a b c d; scipy.ndimage's 'reflect', MATLAB's
    'symmetric'). Both are periodic, so pads wider than the image are defined too.

    >>> mirror_indices(4, 2, "reflect").tolist(), mirror_indices(4, 2, "symmetric").tolist()
    ([2, 1, 0, 1, 2, 3, 2, 1], [1, 0, 0, 1, 2, 3, 3, 2])
    """
    pos = np.arange(-r, n + r)
    if n == 1:
        return np.zeros_like(pos)
    if mode == "reflect":
        m = np.mod(pos, 2 * n - 2)
        return np.where(m < n, m, 2 * n - 2 - m)
    if mode == "symmetric":
        m = np.mod(pos, 2 * n)
        return np.where(m < n, m, 2 * n - 1 - m)
    raise ConfigError(f"padding must be 'reflect' or 'symmetric', got {mode!r}")


def correlate_taps(img: torch.Tensor, taps: torch.Tensor, stride: int = 1,
                   padding: Padding = "reflect") -> torch.Tensor:
    """Correlate (B, C, H, W) with one K x K kernel per image and keep every ``stride``-th pixel.

    ``out[b, c, i, j] = sum_{a, q = -R..R} pad[b, c, stride*i + a, stride*j + q] * taps[b, a, q]``
    (rows of ``taps`` index the row offset, as in the kernel field's kernels), computed in
    ``img``'s dtype by ``conv2d`` (which correlates). The taps are used as given: normalise them
    first if the protocol does.

    Args:
        img: float (B, C, H, W); H and W multiples of ``stride``.
        taps: (B, K, K) or (K, K) with K odd, same dtype family (cast to img's dtype).
        stride: integer >= 1; 1 keeps every pixel.
        padding: border rule, see :func:`mirror_indices`.

    Returns:
        (B, C, H / stride, W / stride), img's dtype and device.

    Raises:
        ConfigError: wrong ranks, an even K, a batch mismatch or sizes off the stride grid.

    >>> x = torch.arange(16.0).view(1, 1, 4, 4)
    >>> correlate_taps(x, torch.tensor([[0.0, 0, 0], [0, 0, 1], [0, 0, 0]]), 2)[0, 0].tolist()
    [[1.0, 3.0], [9.0, 11.0]]
    """
    if img.ndim != 4 or not img.is_floating_point():
        raise ConfigError(f"img must be a float (B, C, H, W) tensor, got {img.dtype} {tuple(img.shape)}")
    if taps.ndim == 2:
        taps = taps.expand(img.shape[0], -1, -1)
    b, c, h, w = img.shape
    if taps.ndim != 3 or taps.shape[0] != b or taps.shape[1] != taps.shape[2] or taps.shape[1] % 2 == 0:
        raise ConfigError(f"taps must be (K, K) or (B={b}, K, K) with K odd, got {tuple(taps.shape)}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1 or h % stride or w % stride:
        raise ConfigError(f"stride must be an integer >= 1 dividing the image size {h}x{w}, got {stride!r}")
    r = taps.shape[1] // 2
    rows = torch.from_numpy(mirror_indices(h, r, padding)).to(img.device)
    cols = torch.from_numpy(mirror_indices(w, r, padding)).to(img.device)
    padded = img.index_select(2, rows).index_select(3, cols).reshape(1, b * c, h + 2 * r, w + 2 * r)
    weight = taps.to(img.dtype).repeat_interleave(c, dim=0)[:, None]  # (B*C, 1, K, K)
    return F.conv2d(padded, weight, stride=stride, groups=b * c).view(b, c, h // stride, w // stride)


def blur_downsample(
    hr: torch.Tensor,
    scale: int,
    kernel_size: int,
    delta: float,
    downsampler: Downsampler = "direct",
    *,
    kernel_field: torch.Tensor | None = None,
    kernel_taps: torch.Tensor | None = None,
    passes: int = 1,
    padding: Padding = "reflect",
    backend: Backend = "auto",
) -> tuple[torch.Tensor, str]:
    """Blur (B, C, H, W) HR with a kernel field or invariant taps and downsample by ``scale``.

    Args:
        hr: float (B, C, H, W), H and W multiples of ``scale``.
        kernel_field: (B, 3, H/s, W/s) (s1, s2, theta) for the exact engine, or None.
        kernel_taps: (B, K, K) invariant taps, or None (exactly one of the two is given).
        delta: LR grid offset of the field's kernels (direct only; 0 with bicubic).
        passes: taps only: apply blur + stride ``scale ** (1 / passes)`` this many times
            (KernelGAN's DIV2KRK makes x4 as two x2 steps).
        padding: taps only; the engine always pads with 'reflect'.
        backend: the engine backend for a field (see :func:`apply_kernel_field`).

    Returns:
        The LR (B, C, H/s, W/s) in hr's dtype, and what computed the blur: an engine backend
        name for a field, ``"conv2d"`` for taps.

    Raises:
        ConfigError: both or neither kernel given, an unknown downsampler, or passes that do
            not divide the scale into equal integer steps.
    """
    if (kernel_field is None) == (kernel_taps is None):
        raise ConfigError("give exactly one of kernel_field and kernel_taps")
    if downsampler not in ("direct", "bicubic"):
        raise ConfigError(f"downsampler must be 'direct' or 'bicubic', got {downsampler!r}")
    if kernel_field is not None:
        if downsampler == "direct":
            chosen = select_backend(hr, kernel_field, kernel_size, delta) if backend == "auto" else backend
            return apply_kernel_field(hr, kernel_field, scale, kernel_size, delta, backend=chosen), chosen
        full = kernel_field.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
        chosen = select_backend(hr, full, kernel_size, 0.0) if backend == "auto" else backend
        blurred = apply_kernel_field(hr, full, 1, kernel_size, 0.0, backend=chosen)
        return imresize_bicubic_down(blurred, scale), chosen
    step = round(scale ** (1.0 / passes)) if passes >= 1 else 0
    if passes < 1 or step ** passes != scale:
        raise ConfigError(f"{passes} passes do not split scale {scale} into equal integer steps")
    if downsampler == "bicubic":
        if passes != 1:
            raise ConfigError(f"the bicubic downsampler takes one blur pass, got passes={passes}")
        return imresize_bicubic_down(correlate_taps(hr, kernel_taps, 1, padding), scale), "conv2d"
    out = hr
    for _ in range(passes):
        out = correlate_taps(out, kernel_taps, step, padding)
    return out, "conv2d"
