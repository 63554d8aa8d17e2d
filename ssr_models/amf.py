"""Adaptive Multi-Modal Fusion (AMF): SSR paper Sec. 3.3, Eq. 3 and Eq. 5.

Eq. 3, for the kernel (i = 1), depth (i = 2) and LR (i = 3) encodings ``f_i``::

    F_out = (1 + M_alpha_i(f_i)) * BN(F_in) + M_beta_i(f_i)

Eq. 5 adds ``lambda_i * C_i(f_i)`` to the diffusion loss, ``C_i`` an L1 regularizer on ``f_i``
("sparsifying them helps the network learn complementary information").

What the paper says (Sec. 3.3, 4.1): encoders "of diverse scales and architectures"; the LR image
is the primary modality and gets the largest encoder, a "half UNet" made of an Input Block (IB),
a Middle Block (MB) and a Feature Translate Block (FTB); depth and kernel get smaller encoders;
M_alpha, M_beta are MLPs with hidden width 128 and ReLU; AMF sits at several UNet levels.

Choices where the paper is silent (all configurable in :class:`AMFConfig`):

* Inputs and resolution. All encoders work at HR resolution so that one encoding serves every
  UNet level (each AMF resizes ``f_i`` to its level by area averaging). The kernel field
  (s1, s2, theta) at LR resolution is made rotation-safe as (s1/4, s2/4, cos 2theta, sin 2theta)
  (theta and theta + pi agree) and nearest-upsampled (every HR pixel of an LR cell shares the
  cell's kernel); the LR image is bicubic-upsampled, nearness is used as is.
* Encoder sizes. Kernel and depth: conv3x3-ReLU-conv3x3 of width ``small_channels`` (16). LR
  half UNet of width ``lr_channels`` (64): IB = conv3x3 + residual block at full resolution,
  MB = stride-2 conv + residual block (wider receptive field), FTB = 1x1 conv over the IB output
  concatenated with the upsampled MB output. The paper's LR branch works on VAE latents; this is
  a pixel-space stand-in.
* Per-pixel modulation. M_alpha, M_beta are 1x1-conv MLPs (c_i -> 128 -> ReLU -> C), so the
  modulation varies per pixel: the point of a spatially variant kernel and a depth map is lost
  by a global vector. Their last layer is zero-initialized, so AMF starts as BN(F_in)
  (ControlNet-style zero init: a fresh AMF does not disturb the UNet).
* BN. ``BatchNorm2d(affine=False)``: Eq. 3 supplies the scale and shift (as in SPADE/SFT).
* Residual form (``AMF(..., residual=True)``, the latent model's, on a frozen pretrained UNet):
  ``F_out = F_in + M_alpha(f) * BN(F_in) + M_beta(f)``. Eq. 3 as written replaces the
  backbone's feature by ``BN(F_in)`` even when the MLPs output zero, which would change a
  pretrained network before any training; this form keeps the unnormalised feature as the
  identity path, so with the zero-initialised MLPs the backbone's output is unchanged exactly,
  and ``M_alpha`` still rescales the normalised feature channel- and pixel-wise.
* Combining modalities. Eq. 3 is written per modality. Default ``combine="sum"``: one BN and the
  modulations summed, ``(1 + sum_i a_i) * BN(F_in) + sum_i b_i`` (order-free, exact identity when
  all MLPs output zero). ``combine="sequential"`` chains Eq. 3 over kernel -> depth -> LR with
  one BN each (``F_in^{i+1} = F_out^i``).
* Eq. 5. ``C_i(f_i) = mean |f_i|`` (mean rather than sum so lambda does not depend on the image
  size); lambdas default to 1e-4 each.
* Table 2 ablations: ``use_kernel`` / ``use_depth`` drop the encoder and MLPs of that modality
  (the LR modality is always present). ``use_svkr`` is not read by the network: the pipeline
  uses it to decide whether the kernel and depth it feeds come from SVKR (Algorithm 1) or from
  the initialization line of Algorithm 1 alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.errors import ConfigError
from ssr_models.layers import config_from_dict, conv3x3

Modality = Literal["kernel", "depth", "lr"]
Combine = Literal["sum", "sequential"]
MODALITY_ORDER: tuple[Modality, ...] = ("kernel", "depth", "lr")  # f_1, f_2, f_3 of Eq. 3/5
_SIGMA_NORM = 4.0  # HR px; brings typical recipe sigmas (0.2 .. 4) to about [0, 1]


@dataclass(frozen=True)
class AMFConfig:
    """AMF encoders and fusion (defaults follow the paper where it speaks, see module doc)."""

    use_kernel: bool = True
    use_depth: bool = True
    use_svkr: bool = True
    small_channels: int = 16
    lr_channels: int = 64
    hidden: int = 128
    combine: Combine = "sum"
    lambda_kernel: float = 1e-4
    lambda_depth: float = 1e-4
    lambda_lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.combine not in ("sum", "sequential"):
            raise ConfigError(f"combine must be 'sum' or 'sequential', got {self.combine!r}")
        for name in ("small_channels", "lr_channels", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """Return the enabled modalities in Eq. 3 order (kernel, depth, lr)."""
        on = {"kernel": self.use_kernel, "depth": self.use_depth, "lr": True}
        return tuple(m for m in MODALITY_ORDER if on[m])

    @property
    def channels(self) -> dict[str, int]:
        """Return the channel count of each enabled encoding f_i."""
        sizes = {"kernel": self.small_channels, "depth": self.small_channels, "lr": self.lr_channels}
        return {m: sizes[m] for m in self.modalities}

    @property
    def lambdas(self) -> dict[str, float]:
        """Return lambda_i of Eq. 5 per enabled modality."""
        all_ = {"kernel": self.lambda_kernel, "depth": self.lambda_depth, "lr": self.lambda_lr}
        return {m: all_[m] for m in self.modalities}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AMFConfig:
        return config_from_dict(cls, data)


class _ResBlock(nn.Module):
    """conv-ReLU-conv with an identity skip (no time embedding: encoders see no t)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv3x3(c, c), nn.ReLU(inplace=True), conv3x3(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _small_encoder(c_in: int, c: int) -> nn.Sequential:
    return nn.Sequential(conv3x3(c_in, c), nn.ReLU(inplace=True), conv3x3(c, c))


class _HalfUNetEncoder(nn.Module):
    """LR encoder: Input Block, Middle Block (one level down), Feature Translate Block."""

    def __init__(self, c_in: int, c: int) -> None:
        super().__init__()
        self.ib = nn.Sequential(conv3x3(c_in, c), nn.ReLU(inplace=True), _ResBlock(c))
        self.mb = nn.Sequential(conv3x3(c, c, stride=2), nn.ReLU(inplace=True), _ResBlock(c))
        self.ftb = nn.Conv2d(2 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ib(x)
        m = F.interpolate(self.mb(h), size=h.shape[-2:], mode="nearest")
        return self.ftb(torch.cat([h, m], dim=1))


def kernel_features(kernel: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Map an LR kernel field (B, 3, h, w) of (s1, s2, theta) to (B, 4, H, W) encoder input.

    (s1, s2) are divided by 4 HR px; theta becomes (cos 2theta, sin 2theta) so that theta and
    theta + pi give the same input; nearest upsampling to ``size`` keeps one kernel per LR cell.
    """
    if kernel.ndim != 4 or kernel.shape[1] != 3:
        raise ConfigError(f"kernel field must be (B, 3, h, w) of (s1, s2, theta), got {tuple(kernel.shape)}")
    s1, s2, th = kernel[:, 0:1], kernel[:, 1:2], kernel[:, 2:3]
    feats = torch.cat([s1 / _SIGMA_NORM, s2 / _SIGMA_NORM, torch.cos(2 * th), torch.sin(2 * th)], 1)
    return F.interpolate(feats, size=size, mode="nearest")


class AMFEncoder(nn.Module):
    """Encode kernel field, nearness and LR into f_1, f_2, f_3 at HR resolution (Sec. 3.3)."""

    def __init__(self, config: AMFConfig) -> None:
        super().__init__()
        self.config = config
        enc: dict[str, nn.Module] = {}
        if config.use_kernel:
            enc["kernel"] = _small_encoder(4, config.small_channels)
        if config.use_depth:
            enc["depth"] = _small_encoder(1, config.small_channels)
        enc["lr"] = _HalfUNetEncoder(3, config.lr_channels)
        self.encoders = nn.ModuleDict(enc)

    def forward(
        self, kernel: torch.Tensor | None, nearness: torch.Tensor | None, lr_up: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Return {modality: (B, c_i, H, W)} for the enabled modalities.

        Args:
            kernel: (B, 3, h, w) (s1, s2, theta) field, HR px and radians; ignored (may be None)
                when ``use_kernel`` is off.
            nearness: (B, 1, H, W) in [0, 1]; ignored (may be None) when ``use_depth`` is off.
            lr_up: (B, 3, H, W) bicubic-upsampled LR in the network's value range.
        """
        size = lr_up.shape[-2:]
        out: dict[str, torch.Tensor] = {}
        for m in self.config.modalities:
            if m == "kernel":
                if kernel is None:
                    raise ConfigError("use_kernel is on but no kernel field was given")
                out[m] = self.encoders[m](kernel_features(kernel, size))
            elif m == "depth":
                if nearness is None or nearness.shape[-2:] != size:
                    got = None if nearness is None else tuple(nearness.shape)
                    raise ConfigError(f"nearness must be (B, 1, {size[0]}, {size[1]}), got {got}")
                out[m] = self.encoders[m](nearness)
            else:
                out[m] = self.encoders[m](lr_up)
        return out

    def penalty(self, encodings: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return Eq. 5's sum_i lambda_i * mean|f_i| (a scalar tensor)."""
        lambdas = self.config.lambdas
        total = sum(lambdas[m] * encodings[m].abs().mean() for m in self.config.modalities)
        return torch.as_tensor(total)


def _mlp(c_in: int, hidden: int, c_out: int) -> nn.Sequential:
    last = nn.Conv2d(hidden, c_out, 1)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.ReLU(inplace=True), last)


class AMF(nn.Module):
    """Modulate a UNet feature map with the encodings (Eq. 3): (1 + M_a(f)) * BN(F) + M_b(f).

    ``residual=True``: F + M_a(f) * BN(F) + M_b(f), the identity at initialisation (module doc).
    """

    def __init__(self, channels: int, config: AMFConfig, residual: bool = False) -> None:
        super().__init__()
        self.config, self.residual = config, residual
        mods = config.modalities
        n_bn = len(mods) if config.combine == "sequential" else 1
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(n_bn))
        sizes = config.channels.items()
        self.m_alpha = nn.ModuleDict({m: _mlp(c, config.hidden, channels) for m, c in sizes})
        self.m_beta = nn.ModuleDict({m: _mlp(c, config.hidden, channels) for m, c in sizes})

    def forward(self, x: torch.Tensor, encodings: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return F_out (B, C, h, w) from F_in ``x`` and HR-resolution encodings (resized here)."""
        size = x.shape[-2:]
        feats = {}
        for m in self.config.modalities:
            f = encodings[m]
            feats[m] = f if f.shape[-2:] == size else F.adaptive_avg_pool2d(f, size)
        if self.config.combine == "sum":
            alpha = sum(self.m_alpha[m](f) for m, f in feats.items())
            beta = sum(self.m_beta[m](f) for m, f in feats.items())
            if self.residual:
                return x + alpha * self.norms[0](x) + beta
            return (1 + alpha) * self.norms[0](x) + beta
        for bn, (m, f) in zip(self.norms, feats.items(), strict=True):
            normed = bn(x)
            if self.residual:
                x = x + self.m_alpha[m](f) * normed + self.m_beta[m](f)
            else:
                x = (1 + self.m_alpha[m](f)) * normed + self.m_beta[m](f)
        return x
