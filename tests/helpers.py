"""Small shared test helpers (image makers); independent references live in tests/reference.py."""

from __future__ import annotations

import numpy as np
import torch


def image_pair(h: int = 40, w: int = 52, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a smooth structured uint8 (h, w, 3) image and a noisy, slightly shifted copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    gt = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).round().astype(np.uint8)
    pred = np.clip(gt + rng.normal(0, 12, gt.shape) + 5, 0, 255).round().astype(np.uint8)
    return gt, pred


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """Return a uint8 (H, W, 3) image as a float (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def with_random_residual(model: torch.nn.Module, seed: int = 11) -> torch.nn.Module:
    """Give an ssr-pixel model's zero-initialised last layer small random weights (in place).

    A fresh ssr-pixel predicts bicubic whatever x_t is; after training its x_0 depends on x_t
    and so on the sampling noise, which the sampler tests need.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tail = model.unet.tail[-1]
        tail.weight.copy_(torch.randn(tail.weight.shape, generator=g) * 0.05)
    return model


# The flat model_config that run folders held before the configs were composed (regression
# fixture: the keys of the old DiffusionConfig.to_dict() for diffusion-tiny with an ablation).
FLAT_PIXEL_CONFIG_V1: dict[str, object] = {
    "base_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "amf_levels": [0, 1],
    "groups": 8, "timesteps": 15, "kappa": 2.0, "power": 0.3, "loss": "l2", "val_steps": 4,
    "val_seed": 0, "use_kernel": True, "use_depth": False, "use_svkr": False,
    "amf_small_channels": 8, "amf_lr_channels": 16, "amf_hidden": 32, "amf_combine": "sum",
    "lambda_kernel": 1e-4, "lambda_depth": 1e-4, "lambda_lr": 1e-4}
