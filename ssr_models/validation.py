"""Validation on held-out images: the SR literature's scores for image stages, kernel errors for DKENet.

What each family reports (``val/<name>`` means over the validation images):

* Image stages (NBSR, pixel diffusion, latent SSR) define ``validation_sr(batch) -> SR``
  (B, 3, H, W) in [0, 1]; :func:`image_scores` scores it with the one owner of the quality
  math, :mod:`degrade.ops.quality` (the conventions of ``ssr-eval``'s tables):

  - ``psnr_y``, ``ssim_y``: BT.601 Y, ``crop_border`` = the scale, SSIM's 11x11 Gaussian window;
  - ``psnr_y_bicubic``: the same PSNR for torch bicubic upsampling of the LR (the baseline);
  - ``psnr``, ``psnr_bicubic``: RGB PSNR without a crop (what ``ssr-infer --method auto``
    compares, :mod:`ssr_models.method_choice`);
  - ``lpips``: only when the caller passes an ``lpips`` callback. LPIPS weights are loaded by
    ``eval.metrics``, which ssr_models never imports (DESIGN.md section 2), so ``ssr-train``
    validates without it (its summary says so); a script that has the metric passes
    ``Trainer(..., lpips=fn)`` with ``fn(sr, hr) -> (B,)`` on [0, 1] images.

* The kernel stage (DKENet) keeps its own ``validation_step``: ``kernel_l1`` (per-pixel L1
  between the estimated and true K x K kernel taps, in [0, 2]) and, for the parameter head,
  the field errors ``s1_mae``, ``s2_mae`` (HR px) and ``theta_mae`` (rad).

* Any other family is scored by its ``validation_step``, or by ``training_step``'s loss.

Whole images: a validation image need not fit a network's size rule; :func:`padded_sr` pads
LR, nearness and kernel field at the bottom/right (reflect; the field by replication) to the
multiple a network needs and crops the SR back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from degrade.ops.quality import batch_psnr, ssim

from .batch import Batch

__all__ = ["LpipsFn", "image_scores", "padded_sr", "validate_model"]

#: ``fn(sr, hr) -> (B,)`` LPIPS distances of (B, 3, H, W) images in [0, 1] (lower is better).
LpipsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def image_scores(sr: torch.Tensor, batch: Batch, lpips: LpipsFn | None = None) -> dict[str, float]:
    """Return the batch means of psnr_y, ssim_y, psnr_y_bicubic, psnr, psnr_bicubic (dB / 0..1).

    Args:
        sr: (B, 3, H, W) super-resolved images, float; clamped to [0, 1] as a saved image is.
        batch: Its HR (B, 3, H, W) in [0, 1], LR and scale (the crop border).
        lpips: Optional LPIPS callback (adds ``lpips``).
    """
    sr = sr.detach().clamp(0, 1)
    hr, s = batch.hr, batch.scale
    bic = F.interpolate(batch.lr, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
    out = {"psnr_y": batch_psnr(hr, sr, s).mean().item(),
           "ssim_y": float(np.mean([ssim(h, x, s) for h, x in zip(hr, sr, strict=True)])),
           "psnr_y_bicubic": batch_psnr(hr, bic, s).mean().item(),
           "psnr": batch_psnr(hr, sr, y_channel=False).mean().item(),
           "psnr_bicubic": batch_psnr(hr, bic, y_channel=False).mean().item()}
    if lpips is not None:
        out["lpips"] = float(lpips(sr, hr).mean())
    return out


def padded_sr(batch: Batch, hr_multiple: int, fn: Callable[[Batch], torch.Tensor]) -> torch.Tensor:
    """Run ``fn`` on ``batch`` padded so that H, W are multiples of ``hr_multiple``; crop back.

    The LR is padded by p px (bottom/right, reflect as in ``ssr_models.infer``), HR-size maps by
    s p, the kernel field by replication; ``fn`` returns (B, 3, H', W') SR of the padded batch.
    """
    s = batch.scale
    lr_multiple = hr_multiple // math.gcd(hr_multiple, s)
    h, w = batch.lr.shape[-2:]
    ph, pw = -h % lr_multiple, -w % lr_multiple
    if ph == 0 and pw == 0:
        return fn(batch)

    def pad(x: torch.Tensor, k: int, mode: str) -> torch.Tensor:
        # reflect needs the pad smaller than the side: replicate covers tiny images
        mode = mode if k * max(ph, pw) < min(x.shape[-2:]) else "replicate"
        return F.pad(x, (0, k * pw, 0, k * ph), mode=mode)

    big = replace(batch, lr=pad(batch.lr, 1, "reflect"), hr=pad(batch.hr, s, "reflect"),
                  nearness=pad(batch.nearness, s, "reflect"),
                  kernel_field=pad(batch.kernel_field, 1, "replicate"))
    return fn(big)[..., :s * h, :s * w]


@torch.no_grad()
def validate_model(model: nn.Module, batches: Iterable[Batch], device: torch.device,
                   lpips: LpipsFn | None = None) -> dict[str, float]:
    """Return ``{"val/<name>": mean over batches}`` (see the module docstring for the names)."""
    sums: dict[str, float] = {}
    count = 0
    sr_fn = getattr(model, "validation_sr", None)
    step_fn = getattr(model, "validation_step", None)
    for batch in batches:
        batch = batch.to(device)
        if callable(sr_fn):
            logs = image_scores(sr_fn(batch), batch, lpips)
        elif callable(step_fn):
            logs = dict(step_fn(batch))
        else:
            loss, logs = model.training_step(batch)
            logs = {"loss": float(loss), **logs}
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        count += 1
    return {f"val/{k}": v / max(count, 1) for k, v in sums.items()}
