"""The pixel-space conditional UNet of the ``ssr-pixel`` family (ssr_models.diffusion).

Its output is a residual over y_0 (the last conv is zero-initialised, so a fresh UNet outputs 0).

GroupNorm-SiLU-conv residual blocks with an added sinusoidal time embedding, stride-2 conv down,
nearest+conv up, no attention (pixel space, small images). AMF (ssr_models.amf, Eq. 3) follows
the last residual block of every encoder level listed in ``amf_levels`` and the middle block;
the encodings are computed once per forward by the caller (they do not depend on t).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.errors import ConfigError
from ssr_models.amf import AMF

if TYPE_CHECKING:
    from ssr_models.diffusion import DiffusionConfig

__all__ = ["ConditionalUNet", "TimeResBlock", "timestep_embedding"]


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Return sinusoidal embeddings (B, dim) of integer steps t (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, time embedding added in between, 1x1 skip on width change."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(min(groups, c_in), c_in), nn.SiLU(),
                                       nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Linear(emb_dim, c_out)
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, c_out), nn.SiLU(),
                                        nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class ConditionalUNet(nn.Module):
    """Predict x_0 (B, 3, H, W) from concat(x_t, y_0) (B, 6, H, W), t (B,) and AMF encodings."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        c, g, amf_cfg = config.base_channels, config.groups, config.amf
        emb = 4 * c
        self.emb_ch = c
        self.time_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.head = nn.Conv2d(6, c, 3, padding=1)
        self.down_blocks, self.down_amf, self.downsample = nn.ModuleList(), nn.ModuleDict(), nn.ModuleList()
        skips, ch = [c], c
        for lv, m in enumerate(config.channel_mult):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                blocks.append(TimeResBlock(ch, c * m, emb, g))
                ch = c * m
                skips.append(ch)
            self.down_blocks.append(blocks)
            if lv in config.amf_levels:
                self.down_amf[str(lv)] = AMF(ch, amf_cfg)
            last = lv == len(config.channel_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skips.append(ch)
        self.mid1, self.mid2 = TimeResBlock(ch, ch, emb, g), TimeResBlock(ch, ch, emb, g)
        self.mid_amf = AMF(ch, amf_cfg)
        self.up_blocks, self.upsample = nn.ModuleList(), nn.ModuleList()
        for lv, m in reversed(list(enumerate(config.channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):
                blocks.append(TimeResBlock(ch + skips.pop(), c * m, emb, g))
                ch = c * m
            self.up_blocks.append(blocks)
            self.upsample.append(nn.Identity() if lv == 0 else nn.Conv2d(ch, ch, 3, padding=1))
        self.tail = nn.Sequential(nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1))
        # Zero-initialised: the model adds this output to y_0 (bicubic), so a fresh model
        # predicts bicubic exactly and training moves it from there.
        nn.init.zeros_(self.tail[-1].weight)
        nn.init.zeros_(self.tail[-1].bias)
        self.factor = 2 ** (len(config.channel_mult) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ConfigError(f"H, W must be multiples of {self.factor}, got {tuple(x.shape[-2:])}")
        emb = self.time_mlp(timestep_embedding(t, self.emb_ch))
        h = self.head(x)
        hs = [h]
        for lv, (blocks, down) in enumerate(zip(self.down_blocks, self.downsample, strict=True)):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if str(lv) in self.down_amf:
                h = self.down_amf[str(lv)](h, enc)
                hs[-1] = h
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid_amf(self.mid2(self.mid1(h, emb), emb), enc)
        for blocks, up in zip(self.up_blocks, self.upsample, strict=True):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.tail(h)
