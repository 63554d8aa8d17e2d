"""Validation scores: Y PSNR/SSIM with crop = scale against direct formulas, padding, LPIPS hook."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssr_core.errors import ConfigError
from ssr_models import create_model
from ssr_models.batch import Batch
from ssr_models.data import validation_batches
from ssr_models.validation import image_scores, padded_sr, validate_model
from tests.reference import psnr_direct, ssim_direct, y_reference
from tests.ssr_models import make_batch


def _hwc255(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy() * 255.0


def test_image_scores_match_the_direct_formulas() -> None:
    batch = make_batch(h=8, scale=2, kernel_size=7)  # HR 16 x 16: 12 x 12 after the crop of 2
    g = torch.Generator().manual_seed(0)
    sr = (batch.hr + 0.05 * torch.randn(batch.hr.shape, generator=g)).clamp(0, 1)
    got = image_scores(sr, batch)
    y_hr, y_sr = (y_reference(_hwc255(x[0]))[2:-2, 2:-2] for x in (batch.hr, sr))
    assert got["psnr_y"] == pytest.approx(psnr_direct(y_hr, y_sr), abs=1e-9)
    assert got["ssim_y"] == pytest.approx(ssim_direct(y_hr, y_sr), abs=1e-9)
    bic = F.interpolate(batch.lr, scale_factor=2, mode="bicubic", align_corners=False).clamp(0, 1)
    y_bic = y_reference(_hwc255(bic[0]))[2:-2, 2:-2]
    assert got["psnr_y_bicubic"] == pytest.approx(psnr_direct(y_hr, y_bic), abs=1e-9)
    assert got["psnr"] == pytest.approx(psnr_direct(_hwc255(batch.hr[0]), _hwc255(sr[0])), abs=1e-9)
    assert got["psnr_y"] > got["psnr"]  # the crop and Y: a different number, not a relabel


def test_padding_runs_a_size_bound_network_on_any_image() -> None:
    batch = make_batch(h=5, scale=4)  # LR 5 x 5: not a multiple of 2

    def nearest(b: Batch) -> torch.Tensor:  # pixel-local: padding cannot leak into the crop
        assert b.lr.shape[-1] % 2 == 0 and b.hr.shape[-1] == 4 * b.lr.shape[-1]
        assert b.nearness.shape[-2:] == b.hr.shape[-2:] and b.kernel_field.shape[-2:] == b.lr.shape[-2:]
        return F.interpolate(b.lr, scale_factor=4, mode="nearest")

    got = padded_sr(batch, 8, nearest)
    assert torch.equal(got, F.interpolate(batch.lr, scale_factor=4, mode="nearest"))
    tiny = replace(batch, lr=batch.lr[..., :1, :1], hr=batch.hr[..., :4, :4],
                   nearness=batch.nearness[..., :4, :4], kernel_field=batch.kernel_field[..., :1, :1])
    assert padded_sr(tiny, 8, nearest).shape == (1, 3, 4, 4)  # 1 px: replicate, not reflect


def test_whole_image_validation_of_each_stage_and_the_lpips_hook(shard_dir: Path) -> None:
    """Whole 48 x 64 images (LR 12 x 16); the paper-size UNet needs multiples of 8 HR px."""
    val = validation_batches(shard_dir, crop_hr=None, batch_size=1)
    one = [next(iter(val))]
    kernel = validate_model(create_model("dkenet-tiny").eval(), one, torch.device("cpu"))
    assert set(kernel) == {"val/kernel_l1"} and 0 < kernel["val/kernel_l1"] < 2
    calls = []

    def lpips(sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        calls.append(sr.shape)
        return (sr - hr).abs().flatten(1).mean(1)

    nbsr = validate_model(create_model("nbsr-tiny").eval(), one, torch.device("cpu"), lpips)
    assert calls == [(1, 3, 48, 64)] and 0 < nbsr["val/lpips"] < 1
    assert {"val/psnr_y", "val/ssim_y", "val/psnr_y_bicubic"} <= set(nbsr)
    diffusion = create_model("ssr-pixel-tiny", channel_mult=(1, 1, 1, 1), val_steps=1).eval()
    odd = [replace(one[0], lr=one[0].lr[..., :11, :13], hr=one[0].hr[..., :44, :52],
                   nearness=one[0].nearness[..., :44, :52], kernel_field=one[0].kernel_field[..., :11, :13])]
    assert diffusion.unet.factor == 8
    scores = validate_model(diffusion, odd, torch.device("cpu"))
    assert np.isfinite(scores["val/psnr_y"])


def test_validation_crops_shrink_to_small_images(shard_dir: Path) -> None:
    """val_crop_hr is an upper bound: 48 x 64 images give 48 px squares for a 64 px request."""
    sides = [tuple(b.hr.shape[-2:]) for b in validation_batches(shard_dir, 64, 1, at_most=True)]
    assert sides and set(sides) == {(48, 48)}
    assert {tuple(b.hr.shape[-2:]) for b in validation_batches(shard_dir, 32, 1, at_most=True)} \
        == {(32, 32)}
    with pytest.raises(ConfigError, match="use batch_size 1"):
        validation_batches(shard_dir, 64, 2, at_most=True)
