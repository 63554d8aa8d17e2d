"""Building blocks shared by the SSR model families (DKENet, NBSR, and the AMF/diffusion side).

Every block is a plain ``nn.Module``; shapes are in the docstrings. Choices where the source
papers leave room:

* :class:`SFTLayer` (SFTMD/IKC, Wang et al. 2018) uses the *residual* form
  ``out = x * (1 + gamma) + beta``, with the last conv of both predictors zero-initialized, so a
  freshly built layer is the identity and the condition is blended in as training goes. SFTMD's
  ``x * gamma + beta`` would start by scaling features by a random ``gamma``.
* :class:`MAConv` (MANet, Liang et al. 2021): the input channels are split into ``split`` groups;
  for group ``i`` a two-layer 1x1 MLP on the *other* groups predicts ``(scale_i, shift_i)`` and the
  group is convolved after ``x_i * 2 sigmoid(scale_i) + shift_i``. MANet uses ``sigmoid(scale)``;
  the factor 2 makes a zero predictor output the identity modulation (sigmoid(0) = 1/2), so
  MAConv with zeroed predictors is exactly the grouped plain convolution, while the scale stays
  bounded in (0, 2) as in MANet.
* :class:`ResidualDenseBlock` / :class:`RRDB` are ESRGAN's (5 convs, growth ``gc``, LeakyReLU 0.2,
  residual scaling 0.2).
* :func:`pixel_shuffle_up` upsamples by x2 stages for powers of two, else one x s stage.

``config_from_dict`` is the one helper every family's frozen config uses to load a dict: unknown
keys are a :class:`ConfigError` with a "did you mean"; configs composed of other configs (the
diffusion model's ``amf`` and ``schedule``) load from nested mappings, and ``with_overrides``
merges nested overrides key by key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.config import dataclass_from_mapping
from ssr_core.errors import ConfigError

T = TypeVar("T")


def _composed_fields(cls: type) -> dict[str, type]:
    """Return ``{field name: dataclass type}`` for the fields of ``cls`` that hold a config."""
    hints = typing.get_type_hints(cls)  # resolves the string annotations of `from __future__`
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if isinstance(hints.get(f.name), type) and dataclasses.is_dataclass(hints[f.name])}


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build the frozen config dataclass ``cls`` from ``data`` with the project's strict loader.

    Lists become tuples (JSON has no tuples; the configs are frozen and hashable). A field
    declared as another config dataclass (a composed config, e.g. ``DiffusionConfig.amf:
    AMFConfig``) is built from its nested mapping the same strict way; an error there names the
    field (``amf: unknown AMFConfig key ...``).

    Raises:
        ConfigError: an unknown key (with "did you mean"), a missing required one, or a boolean
            where the field is a number (``ssr_core.config.dataclass_from_mapping``).
    """
    values = dict(data)
    for name, sub in _composed_fields(cls).items():
        if isinstance(values.get(name), Mapping):
            try:
                values[name] = config_from_dict(sub, values[name])
            except ConfigError as exc:
                raise ConfigError(f"{name}: {exc}") from None
    return dataclass_from_mapping(cls, values, lambda key, hint: f"unknown {cls.__name__} key {key!r}{hint}")


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``overrides``, nested mappings merged key by key (not replaced)."""
    out = dict(base)
    for key, value in overrides.items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            value = _merged(out[key], value)
        out[key] = value
    return out


def with_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """Return ``config`` with ``overrides`` applied; unknown keys raise ConfigError ("did you mean").

    A composed field takes a partial mapping (``amf={"use_depth": False}`` changes that one
    key of ``config.amf``) or a whole config instance.
    """
    return config_from_dict(type(config), _merged(dataclasses.asdict(config), overrides))  # type: ignore[arg-type]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    """Return a 3x3 conv with padding 1: (B, in, H, W) -> (B, out, ceil(H/stride), ceil(W/stride))."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias)


def pixel_shuffle_up(channels: int, scale: int) -> nn.Sequential:
    """Return conv + PixelShuffle stages: (B, C, h, w) -> (B, C, scale*h, scale*w).

    Powers of two use log2(scale) x2 stages (ESRGAN/EDSR practice), any other integer one stage.
    """
    if not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be an integer >= 1, got {scale!r}")
    factors = [2] * (scale.bit_length() - 1) if scale & (scale - 1) == 0 else [scale]
    layers: list[nn.Module] = []
    for f in factors:
        layers += [conv3x3(channels, channels * f * f), nn.PixelShuffle(f), nn.LeakyReLU(0.2, True)]
    return nn.Sequential(*layers)


class SFTLayer(nn.Module):
    """Modulate features with a condition map: ``x * (1 + gamma(c)) + beta(c)`` (residual SFT).

    Args:
        channels: feature channels C of ``x``.
        cond_channels: channels C_c of the condition map.
        hidden: channels of the predictors' hidden layer.

    Shapes: ``x`` (B, C, H, W), ``cond`` (B, C_c, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, cond_channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.gamma = nn.Sequential(conv3x3(cond_channels, hidden), nn.LeakyReLU(0.1, True),
                                   conv3x3(hidden, channels))
        self.beta = nn.Sequential(conv3x3(cond_channels, hidden), nn.LeakyReLU(0.1, True),
                                  conv3x3(hidden, channels))
        for head in (self.gamma[-1], self.beta[-1]):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[-2:] != x.shape[-2:]:
            raise ConfigError(f"condition size {tuple(cond.shape[-2:])} != feature size "
                              f"{tuple(x.shape[-2:])}")
        return x * (1 + self.gamma(cond)) + self.beta(cond)


class MAConv(nn.Module):
    """Mutual affine convolution (MANet): each channel group is modulated by the others, then conv.

    Args:
        in_channels, out_channels: C_in, C_out; both split into ``split`` near-equal groups.
        kernel_size, stride, padding: of each group's conv.
        split: number of groups (>= 2).
        reduction: hidden width of each affine MLP is ``(C_in - C_i) // reduction`` (>= 1).

    Shapes: (B, C_in, H, W) -> (B, C_out, H', W') as for ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, split: int = 2, reduction: int = 2, bias: bool = True) -> None:
        super().__init__()
        if split < 2 or in_channels < split or out_channels < split:
            raise ConfigError(f"MAConv needs split >= 2 and >= split channels, got split={split}, "
                              f"in={in_channels}, out={out_channels}")
        self.in_split = _split_sizes(in_channels, split)
        self.out_split = _split_sizes(out_channels, split)
        self.affine = nn.ModuleList()
        self.convs = nn.ModuleList()
        for c_in, c_out in zip(self.in_split, self.out_split, strict=True):
            rest = in_channels - c_in
            hidden = max(1, rest // reduction)
            self.affine.append(nn.Sequential(nn.Conv2d(rest, hidden, 1), nn.ReLU(True),
                                             nn.Conv2d(hidden, 2 * c_in, 1)))
            self.convs.append(nn.Conv2d(c_in, c_out, kernel_size, stride, padding, bias=bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.in_split, dim=1)
        out = []
        for i, (mlp, conv) in enumerate(zip(self.affine, self.convs, strict=True)):
            others = torch.cat(parts[:i] + parts[i + 1:], dim=1)
            scale, shift = torch.chunk(mlp(others), 2, dim=1)
            out.append(conv(parts[i] * (2 * torch.sigmoid(scale)) + shift))
        return torch.cat(out, dim=1)


class ResidualDenseBlock(nn.Module):
    """ESRGAN's dense block: 5 convs with growth ``gc``; (B, nf, H, W) -> (B, nf, H, W).

    ``out = x + res_scale * conv5(...)``.
    """

    def __init__(self, nf: int = 64, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.convs = nn.ModuleList([conv3x3(nf + i * gc, gc) for i in range(4)])
        self.last = conv3x3(nf + 4 * gc, nf)
        self.act = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs:
            feats.append(self.act(conv(torch.cat(feats, 1))))
        return x + self.res_scale * self.last(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block (ESRGAN): ``x + res_scale * RDB3(RDB2(RDB1(x)))``.

    Shapes: (B, nf, H, W) -> (B, nf, H, W).
    """

    def __init__(self, nf: int = 64, gc: int = 32, res_scale: float = 0.2) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(*[ResidualDenseBlock(nf, gc, res_scale) for _ in range(3)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.body(x)


def area_downsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Average (B, C, H, W) over s x s blocks to (B, C, H/s, W/s); H, W must be multiples of s."""
    h_hr, w_hr = x.shape[-2:]
    h, w = size
    if (h_hr, w_hr) == (h, w):
        return x
    if h_hr % h or w_hr % w or h_hr // h != w_hr // w:
        raise ConfigError(f"cannot area-downsample {h_hr}x{w_hr} to {h}x{w}: need one integer factor")
    return F.avg_pool2d(x, h_hr // h)


def _split_sizes(channels: int, split: int) -> list[int]:
    base = channels // split
    return [base] * (split - 1) + [channels - base * (split - 1)]
