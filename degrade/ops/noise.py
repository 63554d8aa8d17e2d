"""Additive Gaussian noise on the 0-255 scale (DESIGN.md section 3)."""

from __future__ import annotations

import numpy as np
import torch

from ssr_core.errors import ConfigError


def add_gaussian_noise(
    img: torch.Tensor, sigma_255: float, gray: bool, rng: np.random.Generator
) -> torch.Tensor:
    """Add N(0, (sigma_255/255)^2) noise to a (C, H, W) image in [0, 1] and clip to [0, 1].

    ``gray`` draws one noise plane shared by all channels (luminance noise); otherwise each channel
    gets its own. The noise comes from ``rng`` (numpy, float64 draws cast to float32) so that it is
    the same on every machine and device.

    >>> out = add_gaussian_noise(torch.zeros(3, 4, 4), 0.0, False, np.random.default_rng(0))
    >>> float(out.abs().max())
    0.0
    """
    if img.ndim != 3:
        raise ConfigError(f"img must be (C, H, W), got shape {tuple(img.shape)}")
    if not np.isfinite(sigma_255) or sigma_255 < 0:
        raise ConfigError(f"sigma_255 must be finite and >= 0, got {sigma_255!r}")
    c, h, w = img.shape
    planes = 1 if gray else c
    noise = rng.standard_normal((planes, h, w)) * (sigma_255 / 255.0)
    noise_t = torch.from_numpy(noise.astype(np.float32)).to(img.device)
    return (img + noise_t.expand(c, h, w)).clamp_(0.0, 1.0)
