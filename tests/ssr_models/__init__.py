"""Shared helpers for the ssr_models tests: a local Batch with the trainer's fields, a tiny scene."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from degrade.ops.blur import apply_kernel_field
from ssr_models.batch import Batch

# The models read a real ssr_models.batch.Batch; the tests build one directly.
TinyBatch = Batch


def make_batch(h: int = 16, scale: int = 4, kernel_size: int = 21, seed: int = 0) -> TinyBatch:
    """Build one (1, 3, s*h, s*h) scene: smooth HR, a nearness ramp, a depth-driven field, exact LR."""
    g = torch.Generator().manual_seed(seed)
    size = h * scale
    hr = F.interpolate(torch.rand(1, 3, size // 4, size // 4, generator=g), size=(size, size),
                       mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    nearness = (0.3 * xx + 0.7 * yy)[None, None]
    n_lr = F.avg_pool2d(nearness, scale)[:, 0]
    field = torch.stack([0.8 + 2.0 * n_lr, 0.7 + 0.5 * n_lr, 0.9 * math.pi * n_lr], 1)
    delta = (scale - 1) / 2
    lr = apply_kernel_field(hr, field, scale, kernel_size, delta)
    return TinyBatch(hr, lr, nearness, field, scale, kernel_size, delta)


def overfit(model: torch.nn.Module, batch: TinyBatch, steps: int, lr: float) -> tuple[float, float]:
    """Train ``model`` on one batch with Adam; return (first loss, last loss)."""
    opt = torch.optim.Adam(model.parameters(), lr)
    losses = []
    for _ in range(steps):
        loss, _ = model.training_step(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses[0], losses[-1]
