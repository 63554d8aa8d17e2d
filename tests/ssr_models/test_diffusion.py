"""Tests for ssr_models.diffusion (ResShift schedule, UNet, DiffusionSR)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from degrade.ops.blur import apply_kernel_field
from ssr_core.errors import ConfigError
from ssr_models.batch import Batch
from ssr_models.diffusion import (
    DiffusionConfig,
    ResShiftSchedule,
    diffusion_tiny,
    kernel_consistency_step,
)

S, K, HR = 4, 9, 32


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small convs are ~20x slower when threads compete for 2 cores."""


def _batch(b: int = 2, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    hr = F.avg_pool2d(torch.rand(b, 3, HR, HR, generator=g), 3, 1, 1)  # smooth-ish image
    field = torch.stack([torch.full((b, HR // S, HR // S), 1.5), torch.full((b, HR // S, HR // S), 0.8),
                         torch.rand(b, HR // S, HR // S, generator=g) * math.pi], dim=1)
    lr = apply_kernel_field(hr, field, S, K, 1.5, backend="torch")
    nearness = torch.rand(b, 1, 1, 1, generator=g).expand(b, 1, HR, HR).clone()
    return Batch(hr, lr, nearness, field, S, K, 1.5)


def test_eta_schedule() -> None:
    sch = ResShiftSchedule()
    eta = sch.etas.double()
    assert eta.shape == (15,)
    assert eta[0].item() == pytest.approx(min((0.04 / 2) ** 2, 0.001), rel=1e-6)
    assert eta[-1].item() == pytest.approx(0.99, rel=1e-6)
    assert bool((eta[1:] > eta[:-1]).all())
    # ResShift Eq. 10 written out: sqrt(eta_t) = sqrt(eta_1) * b0 ** beta_t
    b0 = math.exp(math.log(0.99 / 4e-4) / (2 * 14))
    for t in range(1, 16):
        beta = ((t - 1) / 14) ** 0.3 * 14
        assert math.sqrt(eta[t - 1].item()) == pytest.approx(math.sqrt(4e-4) * b0**beta, rel=1e-5)


def test_q_sample_at_T_mean_and_std() -> None:
    sch = ResShiftSchedule()
    g = torch.Generator().manual_seed(0)
    x0, y0 = torch.zeros(4000, 1, 2, 2), torch.full((4000, 1, 2, 2), 0.5)
    xt = sch.q_sample(x0, y0, torch.full((4000,), 14), generator=g)
    eta_T = 0.99
    assert xt.mean().item() == pytest.approx(eta_T * 0.5, abs=0.05)  # 16000 draws, std 2: se 0.016
    assert xt.std().item() == pytest.approx(2 * math.sqrt(eta_T), rel=0.03)


def test_posterior_matches_resshift_formula() -> None:
    sch = ResShiftSchedule()
    g = torch.Generator().manual_seed(1)
    xt, x0 = torch.randn(3, 3, 4, 4, generator=g), torch.randn(3, 3, 4, 4, generator=g)
    eta = sch.etas.double().tolist()
    for t in (1, 7, 14):
        mean, var = sch.posterior(xt, x0, torch.full((3,), t))
        alpha = eta[t] - eta[t - 1]
        torch.testing.assert_close(mean, (eta[t - 1] / eta[t] * xt + alpha / eta[t] * x0).float())
        assert var.flatten()[0].item() == pytest.approx(4 * eta[t - 1] / eta[t] * alpha, rel=1e-5)
    mean, var = sch.posterior(xt, x0, torch.zeros(3, dtype=torch.long))  # t = 1 -> x_0 exactly
    torch.testing.assert_close(mean, x0)
    assert float(var.abs().max()) == 0.0


def test_unet_output_shape_and_config_roundtrip() -> None:
    model = diffusion_tiny()
    b = _batch()
    y0 = model.upsample(b.lr, (HR, HR))
    enc = model.encode(y0, b.kernel, b.nearness)
    out = model.predict_x0(torch.randn(2, 3, HR, HR), torch.tensor([0, 14]), y0, enc)
    assert out.shape == (2, 3, HR, HR)
    assert DiffusionConfig.from_dict(model.config.to_dict()) == model.config
    with pytest.raises(ConfigError, match="did you mean"):
        DiffusionConfig.from_dict({"kapa": 1.0})


def test_differentiable_operator_matches_engine() -> None:
    b = _batch()
    hr = b.hr.clone().requires_grad_(True)
    ours = apply_kernel_field(hr, b.kernel, S, K, b.delta, backend="autograd")
    torch.testing.assert_close(ours, b.lr, atol=1e-5, rtol=1e-5)  # float32 sums of 81 taps
    ours.sum().backward()
    assert hr.grad is not None and hr.grad.abs().sum() > 0


def test_tiny_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = diffusion_tiny()
    full = _batch(b=1)
    batch = Batch(full.hr[..., :16, :16], full.lr[..., :4, :4], full.nearness[..., :16, :16],
                  full.kernel[..., :4, :4], S, K, full.delta)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(50):
        loss, logs = model.training_step(batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(logs["loss_x0"])
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first / 5, (first, last)
    assert set(logs) == {"loss", "loss_x0", "penalty"}


def test_sampling_deterministic_and_validation() -> None:
    torch.manual_seed(0)
    model = diffusion_tiny().eval()
    b = _batch()
    runs = [model.sample(b.lr, b.kernel, b.nearness, steps=4, generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert runs[0].shape == b.hr.shape
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    other = model.sample(b.lr, b.kernel, b.nearness, steps=4, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)
    metrics = model.validation_step(b)
    assert set(metrics) == {"psnr", "psnr_bicubic", "psnr_y", "ssim_y", "psnr_y_bicubic"}
    assert math.isfinite(metrics["psnr"])


def test_data_consistency_reduces_redegradation_error() -> None:
    b = _batch()

    def err(x: torch.Tensor) -> float:
        return (apply_kernel_field(x, b.kernel, S, K, b.delta, backend="torch") - b.lr).pow(2).sum().item()

    x0 = torch.rand(b.hr.shape, generator=torch.Generator().manual_seed(2))
    stepped = kernel_consistency_step(x0, b.lr, b.kernel, S, K, b.delta, weight=1.0)
    assert err(stepped) < 0.5 * err(x0)
    torch.manual_seed(0)
    model = diffusion_tiny().eval()
    kw = dict(steps=3, scale=S, kernel_size=K, delta=b.delta)
    plain = model.sample(b.lr, b.kernel, b.nearness, generator=torch.Generator().manual_seed(0), **kw)
    dc = model.sample(b.lr, b.kernel, b.nearness, data_consistency=True, dc_steps=3,
                      generator=torch.Generator().manual_seed(0), **kw)
    assert err(dc) < 0.5 * err(plain)
