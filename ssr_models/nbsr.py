"""NBSR: the light RRDB non-blind SR network of SVKR (SSR paper Sec. 3.2, Algorithm 1).

``I = NBSR(LR, K)``: an ESRGAN-style RRDB trunk whose every block is preceded by an SFT layer
conditioned on the per-LR-pixel kernel, coded by :class:`~ssr_models.kernel_pca.KernelPCA` as a
(B, P, h, w) map (SFTMD/IKC practice, per pixel instead of per image):

    f0 = conv(LR);  f = f0;  for each block: f = RRDB(SFT(f, g(codes)))
    I  = conv(up_s(conv(f) + f0)) + bicubic_s(LR)

Choices (the paper says only "lightweight, RRDB-based"):

* ``nbsr``: 64 channels, growth 32, 6 RRDBs (ESRGAN has 23), P = 15 PCA components
  (see kernel_pca);
  ``nbsr-tiny``: 16 channels, growth 8, 2 RRDBs.
* g: two 1x1 convs (P -> cond_channels) shared by all SFT layers.
* A bicubic global residual (``global_residual``): the trunk predicts the correction to
  ``F.interpolate(LR, mode="bicubic", align_corners=False)``; it speeds up early training.
* The PCA basis is fitted at construction on engine kernels (``pca_samples`` draws from
  ``torch.Generator().manual_seed(pca_seed)``, K and delta from the config; delta None means
  centred, (s - 1) / 2) and saved in the state dict.
* Training uses the ground-truth kernel of the batch (params -> kernels -> PCA codes), L1 to HR.
  Validation reports RGB PSNR on [0, 1] (SR clamped, no border crop, per image then averaged;
  Y-channel PSNR belongs to the benchmark's metrics), and the PSNR of bicubic upsampling of the
  same LR for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from degrade.ops.kernels import centered_delta
from ssr_core.errors import ConfigError

from .kernel_pca import KernelPCA
from .layers import RRDB, SFTLayer, config_from_dict, conv3x3, pixel_shuffle_up, with_overrides


@dataclass(frozen=True)
class NBSRConfig:
    """NBSR hyper-parameters; see the module docstring."""

    scale: int = 4
    channels: int = 64
    growth: int = 32
    blocks: int = 6
    cond_channels: int = 32
    kernel_size: int = 21
    delta: float | None = None  # HR px; None = centred, (scale - 1) / 2
    pca_components: int = 15
    pca_samples: int = 4000
    pca_seed: int = 0
    global_residual: bool = True

    def __post_init__(self) -> None:
        if self.scale < 1 or self.channels < 1 or self.growth < 1 or self.blocks < 1:
            raise ConfigError(f"scale, channels, growth and blocks must be >= 1: {self}")

    @property
    def resolved_delta(self) -> float:
        return centered_delta(self.scale) if self.delta is None else float(self.delta)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NBSRConfig:
        return config_from_dict(cls, data)


class NBSR(nn.Module):
    """Super-resolve LR (B, 3, h, w) given a kernel code map (B, P, h, w) -> (B, 3, s*h, s*w)."""

    def __init__(self, config: NBSRConfig) -> None:
        super().__init__()
        self.config = config
        c = config.channels
        self.pca = KernelPCA(config.kernel_size, config.resolved_delta, config.pca_components)
        self.pca.fit(config.pca_samples, torch.Generator().manual_seed(config.pca_seed))
        self.cond = nn.Sequential(nn.Conv2d(config.pca_components, config.cond_channels, 1),
                                  nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(config.cond_channels, config.cond_channels, 1))
        self.first = conv3x3(3, c)
        self.sfts = nn.ModuleList([SFTLayer(c, config.cond_channels) for _ in range(config.blocks)])
        self.rrdbs = nn.ModuleList([RRDB(c, config.growth) for _ in range(config.blocks)])
        self.trunk = conv3x3(c, c)
        self.up = pixel_shuffle_up(c, config.scale)
        self.last = conv3x3(c, 3)

    def forward(self, lr: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Return SR (B, 3, s*h, s*w) from LR (B, 3, h, w) and PCA codes (B, P, h, w)."""
        if lr.ndim != 4 or lr.shape[1] != 3 or codes.shape != (lr.shape[0], self.config.pca_components,
                                                              *lr.shape[-2:]):
            raise ConfigError(f"need lr (B, 3, h, w) and codes (B, {self.config.pca_components}, h, w),"
                              f" got {tuple(lr.shape)} and {tuple(codes.shape)}")
        g = self.cond(codes)
        f0 = self.first(lr)
        f = f0
        for sft, rrdb in zip(self.sfts, self.rrdbs, strict=True):
            f = rrdb(sft(f, g))
        out = self.last(self.up(self.trunk(f) + f0))
        if self.config.global_residual:
            out = out + bicubic_up(lr, self.config.scale)
        return out

    def super_resolve(self, lr: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
        """Return SR from LR and a kernel field (B, K*K, h, w) or parameter field (B, 3, h, w)."""
        return self(lr, self.pca.encode(kernels))

    def _check_batch(self, batch: Any) -> None:
        cfg = self.config
        if (batch.scale, batch.kernel_size) != (cfg.scale, cfg.kernel_size) or \
                abs(batch.delta - cfg.resolved_delta) > 1e-6:
            raise ConfigError(
                f"batch (scale {batch.scale}, kernel_size {batch.kernel_size}, delta {batch.delta}) "
                f"does not match the model (scale {cfg.scale}, kernel_size {cfg.kernel_size}, "
                f"delta {cfg.resolved_delta})")

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (L1(SR, HR), logs) with SR conditioned on the batch's ground-truth kernel field."""
        self._check_batch(batch)
        sr = self.super_resolve(batch.lr, batch.kernel_field)
        loss = (sr - batch.hr).abs().mean()
        value = float(loss.detach())
        return loss, {"loss": value, "loss_l1": value}

    @torch.no_grad()
    def validation_sr(self, batch: Any) -> torch.Tensor:
        """Return SR (B, 3, H, W) conditioned on the batch's ground-truth kernel field."""
        self._check_batch(batch)
        return self.super_resolve(batch.lr, batch.kernel_field)

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        """Return ``ssr_models.validation.image_scores`` of :meth:`validation_sr` (dB, SSIM)."""
        from .validation import image_scores

        return image_scores(self.validation_sr(batch), batch)


def bicubic_up(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """Upsample (B, C, h, w) by ``scale`` with torch bicubic (align_corners=False)."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False)


def nbsr_tiny(**overrides: Any) -> NBSR:
    """A 16-channel, 2-RRDB NBSR that trains in seconds on a CPU (tests, smoke runs)."""
    return NBSR(with_overrides(NBSRConfig(channels=16, growth=8, blocks=2, cond_channels=8,
                                          pca_samples=1000), overrides))


def nbsr(**overrides: Any) -> NBSR:
    """The default NBSR: 64 channels, growth 32, 6 RRDBs, P = 15 (see module docstring)."""
    return NBSR(with_overrides(NBSRConfig(), overrides))
