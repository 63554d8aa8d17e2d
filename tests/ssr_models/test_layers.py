"""Shared blocks (SFT, MAConv, RRDB, upsampling, config loading) and the model registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import ssr_models
from ssr_core.errors import ConfigError
from ssr_models.layers import (
    RRDB,
    MAConv,
    SFTLayer,
    area_downsample,
    config_from_dict,
    pixel_shuffle_up,
    with_overrides,
)


def test_sft_starts_as_identity_and_keeps_shape() -> None:
    torch.manual_seed(0)
    sft = SFTLayer(8, 3)
    x, c = torch.randn(2, 8, 5, 7), torch.randn(2, 3, 5, 7)
    assert torch.equal(sft(x, c), x)
    torch.nn.init.normal_(sft.gamma[-1].weight)
    y = sft(x, c)
    assert y.shape == x.shape and not torch.allclose(y, x)


def test_sft_rejects_condition_of_other_size() -> None:
    with pytest.raises(ConfigError, match="condition size"):
        SFTLayer(4, 2)(torch.zeros(1, 4, 5, 5), torch.zeros(1, 2, 4, 4))


@pytest.mark.parametrize(("c_in", "c_out", "stride", "split"), [(8, 8, 1, 2), (9, 6, 2, 3)])
def test_maconv_shape(c_in: int, c_out: int, stride: int, split: int) -> None:
    conv = MAConv(c_in, c_out, stride=stride, split=split)
    assert conv(torch.randn(2, c_in, 9, 10)).shape == (2, c_out, -(-9 // stride), -(-10 // stride))


def test_maconv_with_zeroed_predictors_is_a_plain_grouped_conv() -> None:
    torch.manual_seed(0)
    conv = MAConv(8, 6, split=2)
    for mlp in conv.affine:
        torch.nn.init.zeros_(mlp[-1].weight)
        torch.nn.init.zeros_(mlp[-1].bias)
    x = torch.randn(2, 8, 6, 6)
    weight = torch.cat([c.weight for c in conv.convs], 0)  # (6, 4, 3, 3): groups of 4 -> 3
    bias = torch.cat([c.bias for c in conv.convs], 0)
    expected = F.conv2d(x, weight, bias, padding=1, groups=2)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-6)


def test_maconv_rejects_too_few_channels() -> None:
    with pytest.raises(ConfigError, match="split"):
        MAConv(1, 4, split=2)


def test_rrdb_residual_scaling() -> None:
    torch.manual_seed(0)
    block = RRDB(8, 4)
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        base = block(x) - x
        block.res_scale = 0.4  # the outer scaling only; the dense blocks keep theirs
        torch.testing.assert_close(block(x) - x, 2 * base, rtol=1e-5, atol=1e-6)
        block.res_scale = 0.0
        assert torch.equal(block(x), x)


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_pixel_shuffle_up_scales(scale: int) -> None:
    assert pixel_shuffle_up(4, scale)(torch.randn(1, 4, 5, 6)).shape == (1, 4, 5 * scale, 6 * scale)


def test_area_downsample_averages_blocks() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert area_downsample(x, (2, 2)).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]
    with pytest.raises(ConfigError, match="area-downsample"):
        area_downsample(x, (3, 3))


@dataclass(frozen=True)
class _Cfg:
    channels: int = 4
    sizes: tuple[int, ...] = (1, 2)


def test_config_from_dict_restores_tuples_and_rejects_unknown_keys() -> None:
    assert config_from_dict(_Cfg, {"sizes": [3, 4]}) == _Cfg(sizes=(3, 4))
    with pytest.raises(ConfigError, match="did you mean 'channels'"):
        config_from_dict(_Cfg, {"channel": 3})


def test_registry_lists_names_and_builds_with_overrides() -> None:
    assert {"dkenet-tiny", "dkenet", "nbsr-tiny", "nbsr"} <= set(ssr_models.MODELS)
    model = ssr_models.create_model("dkenet-tiny", head="param", kernel_size=7)
    assert model.config.head == "param" and model.config.kernel_size == 7


def test_registry_unknown_name_lists_choices() -> None:
    with pytest.raises(ConfigError, match="choose one of: .*dkenet-tiny"):
        ssr_models.create_model("dkenet-huge")
    with pytest.raises(ConfigError, match="did you mean 'channels'"):
        ssr_models.create_model("dkenet-tiny", channel=4)


@dataclass(frozen=True)
class _Outer:
    inner: _Cfg = _Cfg()
    scale: int = 4


def test_composed_configs_load_and_override_nested_keys() -> None:
    assert config_from_dict(_Outer, {"inner": {"sizes": [5]}}) == _Outer(inner=_Cfg(sizes=(5,)))
    base = _Outer(inner=_Cfg(channels=8))
    # a partial nested mapping changes only its keys; a whole instance replaces the field
    assert with_overrides(base, {"inner": {"sizes": (7,)}}) == _Outer(inner=_Cfg(channels=8, sizes=(7,)))
    assert with_overrides(base, {"inner": _Cfg(channels=2)}) == _Outer(inner=_Cfg(channels=2))
    with pytest.raises(ConfigError, match=r"inner: unknown _Cfg key 'channel' \(did you mean 'channels'\?\)"):
        with_overrides(base, {"inner": {"channel": 3}})


@pytest.mark.parametrize("name", sorted(ssr_models.MODELS))
def test_every_registered_model_checks_its_overrides(name: str) -> None:
    # a typo is a ConfigError with a hint for every family (it was a TypeError for diffusion)
    with pytest.raises(ConfigError, match=r"unknown [\w-]+ key 'chanels' \(did you mean"):
        ssr_models.create_model(name, chanels=3)
