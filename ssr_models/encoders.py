"""Condition encoders of the latent SSR model: one feature map per backbone resolution level.

SSR paper Sec. 3.3: "encoders of diverse scales and architectures"; the LR image, the primary
modality, gets the largest one, "a half UNet" of an Input Block (IB), a Middle Block (MB) and a
Feature Translate Block (FTB); depth and kernel get smaller encoders. Here (ControlNet-style:
the encoders mirror the backbone UNet's down path, one output per resolution level):

* :class:`HalfUNetEncoder` (LR): IB = conv3x3 + residual block at latent resolution (level 0);
  then per level l = 1 .. L-1 a stride-2 conv3x3 + residual block (widths ``base * min(2^l, 4)``,
  the UNet's channel growth); MB = two residual blocks at the deepest level; FTB = one 1x1 conv
  per level translating that level's width to ``out_channels`` (the AMF input width f_3). No
  time input: the encodings are computed once per image, not per denoising step.
* :class:`SmallEncoder` (kernel, depth): conv3x3-SiLU-conv3x3 at level 0, then one stride-2
  conv3x3-SiLU per level, all ``channels`` wide (no translate block: already that width).
* Levels: level l has the size a stride-2, padding-1 conv chain gives, ceil(h / 2^l), the size
  diffusers' ``Downsample2D`` (padding 1) gives; AMF area-resizes any other size.

Inputs at latent resolution (h, w) = LR resolution (a VQ-f4 latent of an x4 HR image):
LR in [-1, 1] (the backbone's own LR input), the kernel field as
:func:`ssr_models.amf.kernel_features` (s1/4, s2/4, cos 2theta, sin 2theta; optionally with its
PCA code), nearness (B, 1, s h, s w) folded to (B, s^2, h, w) by ``pixel_unshuffle`` so that no
HR depth detail is averaged away before the encoder sees it.
"""

from __future__ import annotations

import torch
from torch import nn

from ssr_models.layers import conv3x3

__all__ = ["HalfUNetEncoder", "SmallEncoder", "level_widths"]


def level_widths(base: int, levels: int) -> tuple[int, ...]:
    """Return the half-UNet widths per level: base * min(2^l, 4) (64 -> 64, 128, 256, 256)."""
    return tuple(base * min(2**lv, 4) for lv in range(levels))


class _ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with an identity skip (the UNet's block, without time input)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        g = _groups(c)
        self.body = nn.Sequential(nn.GroupNorm(g, c), nn.SiLU(), conv3x3(c, c),
                                  nn.GroupNorm(g, c), nn.SiLU(), conv3x3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _groups(c: int) -> int:
    return next(g for g in (8, 4, 2, 1) if c % g == 0)


class HalfUNetEncoder(nn.Module):
    """LR encoder (IB, down levels, MB, FTB): (B, c_in, h, w) -> list of L maps (B, out, h/2^l, w/2^l)."""

    def __init__(self, c_in: int, base: int, levels: int, out_channels: int) -> None:
        super().__init__()
        widths = level_widths(base, levels)
        self.ib = nn.Sequential(conv3x3(c_in, widths[0]), _ResBlock(widths[0]))
        self.down = nn.ModuleList(
            nn.Sequential(conv3x3(widths[lv - 1], widths[lv], stride=2), _ResBlock(widths[lv]))
            for lv in range(1, levels))
        self.mb = nn.Sequential(_ResBlock(widths[-1]), _ResBlock(widths[-1]))
        self.ftb = nn.ModuleList(nn.Conv2d(w, out_channels, 1) for w in widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.ib(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        feats[-1] = self.mb(feats[-1])
        return [ftb(f) for ftb, f in zip(self.ftb, feats, strict=True)]


class SmallEncoder(nn.Module):
    """Kernel/depth encoder: (B, c_in, h, w) -> list of L maps (B, channels, h/2^l, w/2^l)."""

    def __init__(self, c_in: int, channels: int, levels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv3x3(c_in, channels), nn.SiLU(), conv3x3(channels, channels))
        self.down = nn.ModuleList(nn.Sequential(conv3x3(channels, channels, stride=2), nn.SiLU())
                                  for _ in range(1, levels))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for block in self.down:
            feats.append(block(feats[-1]))
        return feats
