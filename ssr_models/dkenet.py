"""DKENet: the Depth-Informed Kernel Estimate Network of the SSR paper (Sec. 3.2, Fig. 3b).

Estimates a spatially variant blur kernel per LR pixel from the LR image and a depth map:

* LR branch: a 3x3 conv, then Depth-Aware Blocks (DABlocks) at LR resolution, a stride-2 conv
  down, DABlocks at half resolution, a pixel-shuffle x2 up with a skip connection from before the
  down step, DABlocks again, then the head.
* Depth branch: nearness (normalized inverse depth in [0, 1], DESIGN.md section 3), area-averaged
  over s x s blocks to LR resolution when given at HR resolution, then two 3x3 convs ("a feature
  extraction process similar to that of the LR branch"); a stride-2 conv gives the half-resolution
  depth features. The branches are joined by the SFT layer that opens every DABlock.
* DABlock: ``x + MAConv(ReLU(MAConv(SFT(x, depth))))``; MAConv splits the channels into two groups
  (the paper's "Channel Split": each half is modulated by the other and convolved separately, then
  the halves are concatenated).
* Head ``"kernel"`` (MANet's): conv to K*K channels and a softmax over the taps of each LR pixel,
  so ``k_ij >= 0`` and ``sum_ab k_ij[a, b] = 1``. Head ``"param"``: conv to 4 channels
  (c0, c1, c2, c3) -> ``s2 = min_sigma + softplus(c1)``, ``s1 = s2 + softplus(c0)`` (so s1 >= s2,
  the canonical form of a Gaussian), ``theta = atan2(c3, c2) / 2 mod pi`` (pi-periodic by
  construction: (c2, c3) codes the doubled angle), turned into kernels by
  :func:`degrade.ops.kernels.gaussian_kernels`.

Losses (all choices; the paper only says the kernel is supervised):

* kernel L1: ``mean_ij sum_ab |k_ij - k*_ij|`` (the per-pixel L1 distance in [0, 2]; a mean over
  taps would be ~1/K^2 as small), with ground truth built from ``batch.kernel_field`` at
  ``batch.kernel_size`` and ``batch.delta``. Used by both heads (weight ``lambda_kernel``).
* param head only: ``lambda_sigma * (|s1 - s1*| + |s2 - s2*|)`` in HR px plus
  ``lambda_angle * w * |sin(theta - theta*)|`` with ``w = (s1* - s2*) / (s1* + s2*)``: the angle
  of a near-isotropic kernel is meaningless, so it is weighted by the ground truth's anisotropy;
  ``|sin|`` is pi-periodic and L1-like near 0. Ground truth is canonicalized to s1 >= s2 first
  (swapping the axes adds pi/2 to theta).
* optional re-degradation (``lambda_redeg``, 0 = off by default): re-blur HR with the predicted
  kernel field by Eq. 1 (reflect padding, taps at ``s*i + a``; :func:`reblur`, an unfold, which is
  differentiable for both heads; ``degrade.ops.blur.apply_kernel_field`` computes the same sum
  but not through autograd) and take the L1 to ``batch.lr``.

Where the paper is silent we also chose: one DABlock per stage in ``dkenet`` (the text names one
per stage), 64 LR-branch and 32 depth-branch channels (MANet uses 128 and a deeper U-Net), no
"upscale layer" after the softmax since the project's kernels live on the LR grid (one kernel per
LR pixel, DESIGN.md section 3), odd LR sizes handled by cropping after the up step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.errors import ConfigError

from .kernel_pca import kernel_field_to_taps
from .layers import MAConv, SFTLayer, area_downsample, config_from_dict, conv3x3, with_overrides

Head = Literal["kernel", "param"]
HEADS: tuple[str, ...] = ("kernel", "param")


def reblur(hr: torch.Tensor, kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """Blur HR with per-LR-pixel kernels and sample at LR positions (Eq. 1), differentiably.

    Args:
        hr: (B, C, H, W) image, H = s*h, W = s*w, both > K // 2 (reflect padding).
        kernels: (B, K*K, h, w) kernel field, taps row-major (row offset a, then column b).
        scale: s.

    Returns:
        (B, C, h, w): ``sum_ab HRpad[s*i + a, s*j + b] * k_ij[a, b]``.
    """
    b, c, h_hr, w_hr = hr.shape
    kk, h, w = kernels.shape[1:]
    k = math.isqrt(kk)
    if k * k != kk or k % 2 == 0 or (h * scale, w * scale) != (h_hr, w_hr) or kernels.shape[0] != b:
        raise ConfigError(f"kernels {tuple(kernels.shape)} do not fit hr {tuple(hr.shape)} at x{scale}")
    r = k // 2
    padded = F.pad(hr, (r, r, r, r), mode="reflect")
    patches = F.unfold(padded, k, stride=scale).view(b, c, kk, h, w)
    return (patches * kernels.unsqueeze(1)).sum(2)


def canonical_kernel_field(kernel_field: torch.Tensor) -> torch.Tensor:
    """Return (B, 3, h, w) (s1, s2, theta) with s1 >= s2 and theta in [0, pi) (same Gaussians)."""
    s1, s2, th = kernel_field.unbind(1)
    swap = s1 < s2
    theta = torch.where(swap, th + math.pi / 2, th) % math.pi
    return torch.stack([torch.maximum(s1, s2), torch.minimum(s1, s2), theta], 1)


@dataclass(frozen=True)
class KernelEstimate:
    """DKENet output: kernel_taps (B, K*K, h, w), each summing to 1; kernel_field (B, 3, h, w)
    (s1, s2 in HR px, theta in radians) from the param head, or None from the taps head."""

    kernel_taps: torch.Tensor
    kernel_field: torch.Tensor | None


@dataclass(frozen=True)
class DKENetConfig:
    """DKENet hyper-parameters; see the module docstring for what each choice means."""

    channels: int = 64
    depth_channels: int = 32
    blocks: int = 1  # DABlocks per stage (3 stages)
    kernel_size: int = 21
    head: Head = "kernel"
    min_sigma: float = 0.2  # HR px, param head
    lambda_kernel: float = 1.0
    lambda_sigma: float = 1.0
    lambda_angle: float = 1.0
    lambda_redeg: float = 0.0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.channels < 2 or self.depth_channels < 1 or self.blocks < 1:
            raise ConfigError(f"channels >= 2, depth_channels >= 1, blocks >= 1 needed: {self}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd >= 1, got {self.kernel_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DKENetConfig:
        return config_from_dict(cls, data)


class DABlock(nn.Module):
    """Depth-Aware Block: ``x + MAConv(ReLU(MAConv(SFT(x, d))))``; x (B, C, h, w), d (B, Cd, h, w)."""

    def __init__(self, channels: int, depth_channels: int) -> None:
        super().__init__()
        self.sft = SFTLayer(channels, depth_channels, hidden=max(8, depth_channels))
        self.conv1 = MAConv(channels, channels, split=2)
        self.conv2 = MAConv(channels, channels, split=2)

    def forward(self, x: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(self.sft(x, depth))))


class DKENet(nn.Module):
    """Estimate a per-LR-pixel kernel field from LR (B, 3, h, w) and nearness (B, 1, h or H, w or W)."""

    def __init__(self, config: DKENetConfig) -> None:
        super().__init__()
        self.config = config
        c, cd, n = config.channels, config.depth_channels, config.blocks
        self.lr_in = conv3x3(3, c)
        self.depth_in = nn.Sequential(conv3x3(1, cd), nn.LeakyReLU(0.2, True), conv3x3(cd, cd),
                                      nn.LeakyReLU(0.2, True))
        self.depth_down = nn.Sequential(conv3x3(cd, cd, stride=2), nn.LeakyReLU(0.2, True))
        self.enc = nn.ModuleList([DABlock(c, cd) for _ in range(n)])
        self.down = conv3x3(c, c, stride=2)
        self.mid = nn.ModuleList([DABlock(c, cd) for _ in range(n)])
        self.up = nn.Sequential(conv3x3(c, 4 * c), nn.PixelShuffle(2))
        self.dec = nn.ModuleList([DABlock(c, cd) for _ in range(n)])
        out = config.kernel_size ** 2 if config.head == "kernel" else 4
        self.head = conv3x3(c, out)

    def forward(self, lr: torch.Tensor, nearness: torch.Tensor, delta: float = 0.0) -> KernelEstimate:
        """Return the kernel field; ``delta`` (HR px) is the LR grid offset used by the param head."""
        if lr.ndim != 4 or lr.shape[1] != 3 or nearness.ndim != 4 or nearness.shape[1] != 1:
            raise ConfigError(f"need lr (B, 3, h, w) and nearness (B, 1, H, W), got "
                              f"{tuple(lr.shape)} and {tuple(nearness.shape)}")
        h, w = lr.shape[-2:]
        d0 = self.depth_in(area_downsample(nearness, (h, w)))
        d1 = self.depth_down(d0)
        x = self.lr_in(lr)
        for blk in self.enc:
            x = blk(x, d0)
        skip = x
        x = self.down(x)
        for blk in self.mid:
            x = blk(x, d1)
        x = self.up(x)[..., :h, :w] + skip
        for blk in self.dec:
            x = blk(x, d0)
        y = self.head(x)
        if self.config.head == "kernel":
            return KernelEstimate(torch.softmax(y, dim=1), None)
        s2 = self.config.min_sigma + F.softplus(y[:, 1])
        s1 = s2 + F.softplus(y[:, 0])
        theta = torch.remainder(torch.atan2(y[:, 3], y[:, 2]) / 2, math.pi)
        params = torch.stack([s1, s2, theta], 1)
        return KernelEstimate(kernel_field_to_taps(params, self.config.kernel_size, delta), params)

    def losses(self, batch: Any) -> dict[str, torch.Tensor]:
        """Return the weighted loss terms of one batch (keys: kernel, sigma, angle, redeg)."""
        cfg = self.config
        if batch.kernel_size != cfg.kernel_size:
            raise ConfigError(f"batch kernel_size {batch.kernel_size} != model kernel_size "
                              f"{cfg.kernel_size}")
        est = self(batch.lr, batch.nearness, batch.delta)
        gt = canonical_kernel_field(batch.kernel_field)
        gt_k = kernel_field_to_taps(gt, cfg.kernel_size, batch.delta)
        terms = {"kernel": cfg.lambda_kernel * (est.kernel_taps - gt_k).abs().sum(1).mean()}
        if est.kernel_field is not None:
            p = est.kernel_field
            terms["sigma"] = cfg.lambda_sigma * ((p[:, 0] - gt[:, 0]).abs()
                                                 + (p[:, 1] - gt[:, 1]).abs()).mean()
            aniso = (gt[:, 0] - gt[:, 1]) / (gt[:, 0] + gt[:, 1])
            terms["angle"] = cfg.lambda_angle * (aniso * torch.sin(p[:, 2] - gt[:, 2]).abs()).mean()
        if cfg.lambda_redeg > 0:
            lr_hat = reblur(batch.hr, est.kernel_taps, batch.scale)
            terms["redeg"] = cfg.lambda_redeg * (lr_hat - batch.lr).abs().mean()
        return terms

    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, logs) for one Batch; logs hold every weighted term and the total."""
        terms = self.losses(batch)
        loss = sum(terms.values())
        logs = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        logs["loss"] = float(loss.detach())
        return loss, logs

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        """Return kernel_l1 (mean per-pixel L1, in [0, 2]) and, for the param head, the field errors.

        s1_mae, s2_mae in HR px; theta_mae in radians, pi-periodic, weighted by the ground truth's
        anisotropy (so isotropic pixels, whose angle is undefined, do not count).
        """
        est = self(batch.lr, batch.nearness, batch.delta)
        gt = canonical_kernel_field(batch.kernel_field)
        gt_k = kernel_field_to_taps(gt, self.config.kernel_size, batch.delta)
        out = {"kernel_l1": float((est.kernel_taps - gt_k).abs().sum(1).mean())}
        if est.kernel_field is not None:
            p = est.kernel_field
            d = torch.remainder(p[:, 2] - gt[:, 2], math.pi)
            d = torch.minimum(d, math.pi - d)
            aniso = (gt[:, 0] - gt[:, 1]) / (gt[:, 0] + gt[:, 1])
            out["s1_mae"] = float((p[:, 0] - gt[:, 0]).abs().mean())
            out["s2_mae"] = float((p[:, 1] - gt[:, 1]).abs().mean())
            out["theta_mae"] = float((aniso * d).sum() / aniso.sum().clamp_min(1e-8))
        return out


def dkenet_tiny(**overrides: Any) -> DKENet:
    """A few-channel DKENet that trains in seconds on a CPU at 32 x 32 LR (tests, smoke runs)."""
    return DKENet(with_overrides(DKENetConfig(channels=8, depth_channels=4, blocks=1), overrides))


def dkenet(**overrides: Any) -> DKENet:
    """The paper-sized DKENet (K = 21, one DABlock per stage, 64/32 channels; see docstring)."""
    return DKENet(with_overrides(DKENetConfig(), overrides))
