"""Tests for ssr_models.amf (Eq. 3 fusion, Eq. 5 penalty, Table 2 switches)."""

from __future__ import annotations

import pytest
import torch

from ssr_core.errors import ConfigError
from ssr_models.amf import AMF, AMFConfig, AMFEncoder

B, H, W, S = 2, 16, 16, 4


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small convs are ~20x slower when threads compete for 2 cores."""


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kernel = torch.stack([torch.rand(B, H // S, W // S, generator=g) * 3 + 0.3,
                          torch.rand(B, H // S, W // S, generator=g) * 3 + 0.3,
                          torch.rand(B, H // S, W // S, generator=g) * 3.14], dim=1)
    nearness = torch.rand(B, 1, H, W, generator=g)
    lr_up = torch.rand(B, 3, H, W, generator=g) * 2 - 1
    return kernel, nearness, lr_up


def _randomize(module: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_shapes() -> None:
    cfg = AMFConfig(small_channels=8, lr_channels=16, hidden=32)
    enc = AMFEncoder(cfg)(*_inputs())
    assert {k: tuple(v.shape) for k, v in enc.items()} == {
        "kernel": (B, 8, H, W), "depth": (B, 8, H, W), "lr": (B, 16, H, W)}
    for combine in ("sum", "sequential"):
        amf = AMF(24, AMFConfig(small_channels=8, lr_channels=16, hidden=32, combine=combine))
        x = torch.randn(B, 24, H // 2, W // 2)
        assert amf(x, enc).shape == x.shape


def test_identity_when_mlps_output_zero() -> None:
    cfg = AMFConfig(small_channels=8, lr_channels=16)
    enc = AMFEncoder(cfg)(*_inputs())
    amf = AMF(12, cfg)  # last MLP layers are zero-initialized
    x = torch.randn(B, 12, 8, 8, generator=torch.Generator().manual_seed(3)) * 3 + 1
    mean, var = x.mean((0, 2, 3), keepdim=True), x.var((0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(amf(x, enc), (x - mean) / torch.sqrt(var + 1e-5), atol=1e-5, rtol=1e-5)
    _randomize(amf)
    assert not torch.allclose(amf(x, enc), (x - mean) / torch.sqrt(var + 1e-5), atol=1e-3)


def test_modulation_follows_eq3() -> None:
    cfg = AMFConfig(small_channels=8, lr_channels=16, use_depth=False)
    enc = AMFEncoder(cfg)(*_inputs())
    amf = AMF(12, cfg)
    _randomize(amf)
    x = torch.randn(B, 12, 4, 4)
    f = {k: torch.nn.functional.adaptive_avg_pool2d(v, (4, 4)) for k, v in enc.items()}
    bn = amf.norms[0](x)
    alpha = amf.m_alpha["kernel"](f["kernel"]) + amf.m_alpha["lr"](f["lr"])
    beta = amf.m_beta["kernel"](f["kernel"]) + amf.m_beta["lr"](f["lr"])
    torch.testing.assert_close(amf(x, enc), (1 + alpha) * bn + beta)


def test_penalty_is_weighted_mean_abs() -> None:
    cfg = AMFConfig(small_channels=8, lr_channels=16, lambda_kernel=0.1, lambda_depth=0.2, lambda_lr=0.3)
    encoder = AMFEncoder(cfg)
    enc = encoder(*_inputs())
    expected = (0.1 * enc["kernel"].abs().mean() + 0.2 * enc["depth"].abs().mean()
                + 0.3 * enc["lr"].abs().mean())
    torch.testing.assert_close(encoder.penalty(enc), expected)


@pytest.mark.parametrize(("use_kernel", "use_depth", "keys"), [
    (True, False, {"kernel", "lr"}), (False, True, {"depth", "lr"}), (True, True, {"kernel", "depth", "lr"})])
def test_ablation_switches(use_kernel: bool, use_depth: bool, keys: set[str]) -> None:
    cfg = AMFConfig(small_channels=8, lr_channels=16, use_kernel=use_kernel, use_depth=use_depth)
    encoder = AMFEncoder(cfg)
    kernel, nearness, lr_up = _inputs()
    enc = encoder(kernel if use_kernel else None, nearness if use_depth else None, lr_up)
    assert set(enc) == keys
    amf = AMF(8, cfg)
    _randomize(amf)
    amf.eval()
    x = torch.randn(B, 8, 8, 8)
    base = amf(x, enc)
    # a disabled modality's input has no effect; an enabled one changes the output
    enc_k = encoder(kernel * 2 if use_kernel else torch.zeros_like(kernel), nearness, lr_up)
    enc_d = encoder(kernel, 1 - nearness if use_depth else torch.zeros_like(nearness), lr_up)
    assert torch.allclose(amf(x, enc_k), base) != use_kernel
    assert torch.allclose(amf(x, enc_d), base) != use_depth


def test_config_roundtrip_and_errors() -> None:
    cfg = AMFConfig(use_depth=False, combine="sequential")
    assert AMFConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="did you mean .use_depth.?"):
        AMFConfig.from_dict({"use_dept": True})
    with pytest.raises(ConfigError, match="combine"):
        AMFConfig(combine="concat")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="no kernel field"):
        AMFEncoder(AMFConfig())(None, *_inputs()[1:])
