"""Kernel fields: a recipe and a nearness map become a per-LR-pixel (s1, s2, theta) field.

Every random choice comes from the per-sample ``numpy.random.Generator`` handed in, in a fixed,
documented order (so that a draw can be redone from the sample's seed):

1. per-sample scalars of the blur model (see :func:`draw_degradation`),
2. the low-frequency random fields (anisotropy, then orientation) for ``defocus``,
3. noise sigma, then gray-or-colour, when the recipe has noise,
4. JPEG quality, when the recipe has JPEG.

Thin-lens defocus is linear in inverse depth, and nearness is normalized inverse depth, so the
blur size grows linearly with ``|nearness - focus|`` (DESIGN.md section 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ssr_core.errors import ConfigError

from .ops.kernels import gaussian_kernels
from .recipes import Recipe
from .second_order import bsrgan_first_blur_moments, draw_bsrgan, draw_realesrgan, first_kernel_moments


@dataclass(frozen=True)
class DegradationDraw:
    """Everything drawn for one sample: the kernel field and the scalar stage parameters."""

    kernel_field: np.ndarray  # float32 (3, h, w): s1, s2 (HR px std devs), theta (radians, [0, pi))
    noise_sigma_255: float | None
    noise_gray: bool | None
    jpeg_quality: int | None
    blur_params: dict[str, Any] = field(default_factory=dict)
    # Taps models (recipes.TAPS_MODELS): the K x K float64 taps applied to every pixel (rows =
    # row offset a, columns = column offset b, correlation), and how many times in a row
    # (div2krk at x4: two x2 passes). ``kernel_field`` then holds the Gaussian the taps came from.
    taps: np.ndarray | None = None
    passes: int = 1
    # realesrgan: every drawn parameter of its two rounds (degrade.second_order); ``kernel_field``
    # then holds the moment-matched Gaussian of the first-round kernel.
    second_order: dict[str, Any] | None = None


def nearness_at_lr(nearness: np.ndarray, scale: int) -> np.ndarray:
    """Average HR nearness (H, W) over each s x s block: (H/s, W/s) float64, the LR pixel's depth."""
    h_hr, w_hr = nearness.shape
    if h_hr % scale or w_hr % scale:
        raise ConfigError(f"nearness {h_hr}x{w_hr} is not a multiple of scale {scale}")
    h, w = h_hr // scale, w_hr // scale
    # Rows first: sums over contiguous memory are ~3x faster than a 4-D mean.
    rows = nearness.reshape(h, scale, w_hr).sum(axis=1, dtype=np.float64)
    return rows.reshape(h, w, scale).sum(axis=-1) / (scale * scale)


def smooth_random_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Draw a smooth field in [-1, 1] of ``shape``: U[-1, 1] nodes on a coarse grid, C1-interpolated.

    ``cells`` is the number of grid cells along the longer side (correlation length ~ size/cells).
    """
    h, w = shape
    longer = max(h, w)
    gh = max(1, round(cells * h / longer)) + 1
    gw = max(1, round(cells * w / longer)) + 1
    nodes = rng.uniform(-1.0, 1.0, size=(gh, gw))
    rows = _smooth_interp_matrix(h, gh)
    cols = _smooth_interp_matrix(w, gw)
    return rows @ nodes @ cols.T


def _smooth_interp_matrix(n: int, g: int) -> np.ndarray:
    """Return the (n, g) matrix that interpolates g nodes to n pixel centres with smoothstep."""
    pos = (np.arange(n) + 0.5) / n * (g - 1)
    i0 = np.clip(np.floor(pos).astype(int), 0, max(g - 2, 0))
    t = pos - i0
    t = t * t * (3.0 - 2.0 * t)
    m = np.zeros((n, g))
    m[np.arange(n), i0] += 1.0 - t
    m[np.arange(n), np.minimum(i0 + 1, g - 1)] += t
    return m


def draw_degradation(recipe: Recipe, nearness: np.ndarray, rng: np.random.Generator,
                     variant: int = 0) -> DegradationDraw:
    """Draw one sample's kernel field and noise/JPEG parameters from a nearness map (H, W) in [0, 1].

    Blur models (``recipe.blur.model``):

    * ``defocus``: focus ~ U[focus_range], b_max ~ U[max_blur_range_px], rho_max ~
      U[anisotropy_range], theta0 ~ U[0, pi). Blur size ``b = s_min + (b_max - s_min) |n - focus|
      / max(focus, 1 - focus)``; anisotropy ``rho = 1 + (rho_max - 1) (f1 + 1) / 2`` and
      ``theta = theta0 + (pi / 2) f2 (mod pi)`` with f1, f2 smooth random fields;
      ``s1 = b sqrt(rho)``, ``s2 = b / sqrt(rho)``, both clipped to sigma_range_px.
    * ``thin-lens``: focus ~ U[focus_range], coc_max ~ U[coc_max_range_px];
      ``CoC = coc_max |n - focus| / max(focus, 1 - focus)``, ``sigma = (CoC - 1) / 4`` clipped to
      sigma_range_px, isotropic.
    * ``iso``: one sigma ~ U[sigma_range_px] for the whole image.
    * ``aniso``: one s1, s2 ~ U[sigma_range_px], theta ~ U[0, pi) for the whole image.
    * ``iso-list`` (Gaussian8): no draw; sigma = sigma_list_px[variant mod len] (std dev).
    * ``aniso-disturbed`` (DCLS setting 2): s1, s2 ~ U[sigma_range_px] (std devs), theta ~
      U[-pi, pi) (recorded mod pi), then K x K factors f ~ U[kernel_noise_range], row-major;
      taps = g (1 + f) / sum, g the centred Gaussian (delta 0) of (s1, s2, theta).
    * ``div2krk`` (KernelGAN's generator): l1, l2 ~ U[variance_range_px2] (covariance
      eigenvalues), theta ~ U[0, pi), factors f ~ U[kernel_noise_range] (K x K, row-major);
      taps = g (1 + f) / sum with g centred at (+0.5, +0.5) px (the generator's mean
      ``K // 2 + 0.5 (sf - K % 2)`` at sf = 2); applied once per x2 (twice at x4).
    * ``realesrgan``: Real-ESRGAN's two rounds, drawn by :func:`degrade.second_order.draw_realesrgan`;
      the field is the first-round kernel's moment-matched Gaussian (constant).
    * ``bsrgan``: BSRGAN's shuffled chain, drawn by :func:`degrade.second_order.draw_bsrgan`; the
      field is the first blur's moment-matched Gaussian (constant).
    """
    s = recipe.scale
    n_lr = nearness_at_lr(nearness, s)
    h, w = n_lr.shape
    b = recipe.blur
    lo, hi = b.sigma_range_px
    params: dict[str, Any] = {"model": b.model}

    if b.model == "defocus":
        focus = rng.uniform(*b.focus_range)
        b_max = rng.uniform(*b.max_blur_range_px)
        rho_max = rng.uniform(*b.anisotropy_range)
        theta0 = rng.uniform(0.0, math.pi)
        f1 = smooth_random_field(rng, (h, w), b.field_cells)
        f2 = smooth_random_field(rng, (h, w), b.field_cells)
        size = lo + (b_max - lo) * np.abs(n_lr - focus) / max(focus, 1.0 - focus, 1e-6)
        rho = 1.0 + (rho_max - 1.0) * (f1 + 1.0) / 2.0
        s1 = np.clip(size * np.sqrt(rho), lo, hi)
        s2 = np.clip(size / np.sqrt(rho), lo, hi)
        theta = np.mod(theta0 + (math.pi / 2) * f2, math.pi)
        params.update(focus=focus, max_blur_px=b_max, anisotropy_max=rho_max, theta0=theta0)
    elif b.model == "thin-lens":
        focus = rng.uniform(*b.focus_range)
        coc_max = rng.uniform(*b.coc_max_range_px)
        coc = coc_max * np.abs(n_lr - focus) / max(focus, 1.0 - focus, 1e-6)
        s1 = s2 = np.clip((coc - 1.0) / 4.0, lo, hi)
        theta = np.zeros((h, w))
        params.update(focus=focus, coc_max_px=coc_max)
    elif b.model == "iso":
        sigma = rng.uniform(lo, hi)
        s1 = s2 = np.full((h, w), sigma)
        theta = np.zeros((h, w))
        params.update(sigma_px=sigma)
    elif b.model == "aniso":
        v1, v2 = rng.uniform(lo, hi), rng.uniform(lo, hi)
        th = rng.uniform(0.0, math.pi)
        s1, s2, theta = np.full((h, w), v1), np.full((h, w), v2), np.full((h, w), th)
        params.update(s1_px=v1, s2_px=v2, theta=th)
    elif b.model == "iso-list":
        sigma = float(b.sigma_list_px[variant % len(b.sigma_list_px)])
        s1 = s2 = np.full((h, w), sigma)
        theta = np.zeros((h, w))
        params.update(sigma_px=sigma, list_index=variant % len(b.sigma_list_px))
    elif b.model in ("realesrgan", "bsrgan"):
        if b.model == "realesrgan":
            chain = draw_realesrgan(rng, nearness.shape, s)
            v1, v2, th = first_kernel_moments(chain)
        else:
            chain = draw_bsrgan(rng, s)
            v1, v2, th = bsrgan_first_blur_moments(chain)
        s1, s2, theta = np.full((h, w), v1), np.full((h, w), v2), np.full((h, w), th)
    elif b.model in ("aniso-disturbed", "div2krk"):
        taps, (v1, v2, th), passes = _draw_taps(recipe, rng)
        s1, s2, theta = np.full((h, w), v1), np.full((h, w), v2), np.full((h, w), th)
        params.update(s1_px=v1, s2_px=v2, theta=th, passes=passes)
    else:  # the recipe validator makes this unreachable; keep the error for hand-built recipes
        raise ConfigError(f"unknown blur model {b.model!r}")

    noise_sigma = noise_gray = None
    if recipe.noise is not None:
        noise_sigma = float(rng.uniform(*recipe.noise.sigma_range_255))
        noise_gray = bool(rng.random() < recipe.noise.gray_prob)
    quality = None
    if recipe.jpeg is not None:
        qlo, qhi = recipe.jpeg.quality_range
        quality = int(rng.integers(qlo, qhi + 1))

    kfield = np.stack([s1, s2, theta]).astype(np.float32)
    # float32 rounding can carry theta to exactly pi; keep the documented half-open range.
    kfield[2][kfield[2] >= np.float32(math.pi)] = 0.0
    params = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in params.items()}
    if b.model in ("aniso-disturbed", "div2krk"):
        return DegradationDraw(kfield, noise_sigma, noise_gray, quality, params, taps, passes)
    if b.model in ("realesrgan", "bsrgan"):
        return DegradationDraw(kfield, noise_sigma, noise_gray, quality, params, second_order=chain)
    return DegradationDraw(kfield, noise_sigma, noise_gray, quality, params)


def _draw_taps(recipe: Recipe, rng: np.random.Generator
               ) -> tuple[np.ndarray, tuple[float, float, float], int]:
    """Draw a taps model's kernel: float64 (K, K) taps, its Gaussian (s1, s2, theta), passes."""
    b, k = recipe.blur, recipe.kernel_size
    if b.model == "aniso-disturbed":
        v1, v2 = rng.uniform(*b.sigma_range_px), rng.uniform(*b.sigma_range_px)
        th = rng.uniform(-math.pi, math.pi)
        centre, passes = 0.0, 1
    else:  # div2krk: the covariance's eigenvalues are drawn, not standard deviations
        v1, v2 = math.sqrt(rng.uniform(*b.variance_range_px2)), math.sqrt(rng.uniform(*b.variance_range_px2))
        th = rng.uniform(0.0, math.pi)
        centre, passes = 0.5, 1 if recipe.scale == 2 else 2
    factors = rng.uniform(*b.kernel_noise_range, size=(k, k))
    th = float(np.mod(th, math.pi))  # theta and theta + pi give the same covariance
    g = gaussian_kernels(torch.tensor([v1, v2, th], dtype=torch.float64), k, centre).numpy()
    taps = g * (1.0 + factors)
    return taps / taps.sum(), (float(v1), float(v2), th), passes
