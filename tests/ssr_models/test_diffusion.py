"""Tests for ssr_models.diffusion (UNet, PixelSSR, its composed config)."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from degrade.ops.blur import apply_kernel_field
from ssr_core.errors import ConfigError
from ssr_models import create_model
from ssr_models.amf import AMFConfig
from ssr_models.batch import Batch
from ssr_models.diffusion import (
    DiffusionConfig,
    conditioning_flags,
    kernel_consistency_step,
    ssr_pixel_tiny,
    upgrade_flat_config,
)
from ssr_models.resshift import ResShiftConfig
from tests.helpers import FLAT_PIXEL_CONFIG_V1, with_random_residual
from tests.reference import resshift_etas, resshift_sample_loop

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


def test_unet_output_shape_and_config_roundtrip() -> None:
    model = ssr_pixel_tiny()
    b = _batch()
    y0 = model.upsample(b.lr, (HR, HR))
    enc = model.encode(y0, b.kernel_field, b.nearness)
    out = model.predict_x0(torch.randn(2, 3, HR, HR), torch.tensor([0, 14]), y0, enc)
    assert out.shape == (2, 3, HR, HR)
    assert DiffusionConfig.from_dict(model.config.to_dict()) == model.config
    with pytest.raises(ConfigError, match="did you mean"):
        DiffusionConfig.from_dict({"schedule": {"kapa": 1.0}})  # kappa is a schedule setting


def test_differentiable_operator_matches_engine() -> None:
    b = _batch()
    hr = b.hr.clone().requires_grad_(True)
    ours = apply_kernel_field(hr, b.kernel_field, S, K, b.delta, backend="autograd")
    torch.testing.assert_close(ours, b.lr, atol=1e-5, rtol=1e-5)  # float32 sums of 81 taps
    ours.sum().backward()
    assert hr.grad is not None and hr.grad.abs().sum() > 0


def test_tiny_overfits_one_batch() -> None:
    torch.manual_seed(0)
    model = ssr_pixel_tiny()
    full = _batch(b=1)
    batch = Batch(full.hr[..., :16, :16], full.lr[..., :4, :4], full.nearness[..., :16, :16],
                  full.kernel_field[..., :4, :4], S, K, full.delta)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(80):  # the model starts at bicubic (first ~ bicubic's loss), not at grey
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
    model = with_random_residual(ssr_pixel_tiny()).eval()
    b = _batch()
    runs = [model.sample(b.lr, b.kernel_field, b.nearness, steps=4,
                         generator=torch.Generator().manual_seed(5))
            for _ in range(2)]
    assert runs[0].shape == b.hr.shape
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
    other = model.sample(b.lr, b.kernel_field, b.nearness, steps=4,
                         generator=torch.Generator().manual_seed(6))
    assert not torch.equal(runs[0], other)
    metrics = model.validation_step(b)
    assert set(metrics) == {"psnr", "psnr_bicubic", "psnr_y", "ssim_y", "psnr_y_bicubic"}
    assert math.isfinite(metrics["psnr"])


def test_data_consistency_reduces_redegradation_error() -> None:
    b = _batch()

    def err(x: torch.Tensor) -> float:
        blurred = apply_kernel_field(x, b.kernel_field, S, K, b.delta, backend="torch")
        return (blurred - b.lr).pow(2).sum().item()

    x0 = torch.rand(b.hr.shape, generator=torch.Generator().manual_seed(2))
    stepped = kernel_consistency_step(x0, b.lr, b.kernel_field, S, K, b.delta, weight=1.0)
    assert err(stepped) < 0.5 * err(x0)
    torch.manual_seed(0)
    model = ssr_pixel_tiny().eval()
    kw = dict(steps=3, scale=S, kernel_size=K, delta=b.delta)
    plain = model.sample(b.lr, b.kernel_field, b.nearness, generator=torch.Generator().manual_seed(0), **kw)
    dc = model.sample(b.lr, b.kernel_field, b.nearness, data_consistency=True, dc_steps=3,
                      generator=torch.Generator().manual_seed(0), **kw)
    assert err(dc) < 0.5 * err(plain)


@pytest.mark.parametrize("steps", [15, 4, 1])
def test_sampler_is_the_resshift_loop_bit_for_bit(steps: int) -> None:
    torch.manual_seed(0)
    model = with_random_residual(ssr_pixel_tiny()).eval()
    b = _batch()
    got = model.sample(b.lr, b.kernel_field, b.nearness, steps=steps,
                       generator=torch.Generator().manual_seed(5))
    y0 = model.upsample(b.lr, (HR, HR))
    enc = model.encode(y0, b.kernel_field, b.nearness)
    etas = torch.tensor(resshift_etas(15, 2.0, 0.3, 0.04, 0.99)).float().tolist()  # Eq. 10, float32
    with torch.no_grad():
        x0 = resshift_sample_loop(lambda x, t: model.predict_x0(x, torch.full((2,), t), y0, enc),
                                  y0, etas, 2.0, steps, torch.Generator().manual_seed(5))
    assert torch.equal(got, ((x0 + 1) / 2).clamp(0, 1))


def test_config_round_trips_through_json_with_nested_settings() -> None:
    model = create_model("diffusion-tiny", loss="l1", amf={"hidden": 24, "use_depth": False},
                         schedule={"min_noise_level": 0.05, "eta_max": 0.95})
    cfg = model.config
    assert cfg.amf == AMFConfig(small_channels=8, lr_channels=16, hidden=24, use_depth=False)
    assert cfg.schedule == ResShiftConfig(min_noise_level=0.05, eta_max=0.95)
    saved = json.loads(json.dumps(cfg.to_dict()))  # what config.json / run.json hold
    assert saved["schedule"]["eta_max"] == 0.95 and saved["schedule"]["min_noise_level"] == 0.05
    assert DiffusionConfig.from_dict(saved) == cfg
    assert create_model("diffusion-tiny", **saved).config == cfg  # how a run folder is reloaded
    assert model.schedule.etas[-1].item() == pytest.approx(0.95) and \
        model.schedule.etas[0].item() == pytest.approx((0.05 / 2) ** 2)
    hint = r"amf: unknown AMFConfig key 'use_dept' \(did you mean 'use_depth'\?\)"
    with pytest.raises(ConfigError, match=hint):
        create_model("diffusion-tiny", amf={"use_dept": False})


def test_flat_configs_of_older_runs_load_nested() -> None:
    want = DiffusionConfig(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, amf_levels=(0, 1),
                           amf=AMFConfig(small_channels=8, lr_channels=16, hidden=32,
                                         use_depth=False, use_svkr=False))
    assert DiffusionConfig.from_dict(FLAT_PIXEL_CONFIG_V1) == want
    assert create_model("diffusion-tiny", **FLAT_PIXEL_CONFIG_V1).config == want
    assert conditioning_flags(FLAT_PIXEL_CONFIG_V1) == conditioning_flags(want.to_dict()) == \
        {"use_kernel": True, "use_depth": False, "use_svkr": False}
    with pytest.raises(ConfigError, match="amf.hidden given twice with different values"):
        upgrade_flat_config({"amf_hidden": 8, "amf": {"hidden": 16}})


def test_untrained_model_predicts_bicubic_exactly_and_learns_a_residual() -> None:
    torch.manual_seed(0)
    model = ssr_pixel_tiny()
    b = _batch()
    y0 = F.interpolate(b.lr * 2 - 1, size=(HR, HR), mode="bicubic", align_corners=False)  # bicubic, [-1, 1]
    enc = model.encode(y0, b.kernel_field, b.nearness)
    xt = torch.randn(2, 3, HR, HR, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.predict_x0(xt, torch.tensor([3, 14]), y0, enc), y0)
    sr = model.eval().sample(b.lr, b.kernel_field, b.nearness, steps=4,
                             generator=torch.Generator().manual_seed(2))
    assert torch.equal(sr, ((y0 + 1) / 2).clamp(0, 1))  # noise in x_t cannot move a zero residual
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss, _ = model.training_step(b, generator=torch.Generator().manual_seed(0))
    loss.backward()
    opt.step()  # the zero last layer gets a gradient: the residual leaves 0 after one step
    assert not torch.equal(model.predict_x0(xt, torch.tensor([3, 14]), y0, enc), y0)


def test_weights_of_the_raw_x0_format_are_refused() -> None:
    model = ssr_pixel_tiny()
    state = model.state_dict()
    assert int(state["format_version"]) == 2
    old = {k: v for k, v in state.items() if k != "format_version"}  # format 1 had no marker
    with pytest.raises(ConfigError, match=r"weights of format 1 .*retrain the diffusion stage"):
        ssr_pixel_tiny().load_state_dict(old)
    with pytest.raises(ConfigError, match="weights of format 3"):
        ssr_pixel_tiny().load_state_dict({**state, "format_version": torch.tensor(3)})
    fresh = ssr_pixel_tiny()
    fresh.load_state_dict(state)
    assert all(torch.equal(v, state[k]) for k, v in fresh.state_dict().items())


def test_former_diffusion_names_are_aliases_of_ssr_pixel() -> None:
    from ssr_models import MODELS
    from ssr_models.configs import parse_train_config

    assert "diffusion-tiny" not in MODELS and "ssr-pixel-tiny" in MODELS
    assert create_model("diffusion-no-svkr").config == create_model("ssr-pixel-no-svkr").config
    assert create_model("diffusion-no-svkr").config.amf.use_svkr is False
    stage = {"model": "diffusion-tiny", "trainer": {"steps": 1}, "data": {"crop_hr": 16, "batch_size": 1}}
    assert parse_train_config({"stages": {"diffusion": stage}}).stages["diffusion"].model == "ssr-pixel-tiny"


def test_a_sample_of_an_exact_x0_predictor_is_further_from_hr_than_its_one_step_estimate() -> None:
    """Why the pixel model's sample lost to bicubic in bench/learning.py while its x_0 estimate won.

    Toy posterior with a closed form: HR = y_0 + r, r ~ N(0, s^2) independent of y_0, so the
    MMSE estimate is y_0 itself and E[x_0 | x_t] = y_0 + g_t (x_t - y_0) with
    g_t = (1 - eta_t) s^2 / ((1 - eta_t)^2 s^2 + kappa^2 eta_t) (ResShift Eq. 1-2). With that exact
    predictor, one step from T returns y_0 (the posterior mean, MSE s^2), while T steps return
    y_0 + d with d independent of r: MSE s^2 + Var(d). Var(d) is the chain's variance, written
    out here from ResShift's equations (tests/reference.resshift_etas): V_T = kappa^2 eta_T,
    V_s = c_t^2 V_t + kappa^2 eta_s alpha / eta_t, c_t = (eta_s + alpha g_t) / eta_t, output g_0^2 V_0.
    """
    s, kappa = 0.1, 2.0
    model = ssr_pixel_tiny(amf={"use_kernel": False, "use_depth": False}).eval()
    cfg = model.config.schedule
    etas = resshift_etas(cfg.num_train_timesteps, kappa, cfg.power, cfg.min_noise_level, cfg.eta_max)

    def gain(eta: float | torch.Tensor) -> float | torch.Tensor:
        return (1 - eta) * s**2 / ((1 - eta) ** 2 * s**2 + kappa**2 * eta)

    model.predict_x0 = lambda xt, t, y0, enc: y0 + gain(model.schedule.eta(t)) * (xt - y0)
    lr = torch.full((4, 3, 16, 16), 0.5)  # y_0 = 0 on [-1, 1]: no clamp reached at s = 0.1
    r = s * torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    one = model.sample(lr, None, None, steps=1, scale=S, generator=torch.Generator().manual_seed(0)) * 2 - 1
    full = model.sample(lr, None, None, scale=S, generator=torch.Generator().manual_seed(0)) * 2 - 1
    v = kappa**2 * etas[-1]
    for t in range(len(etas) - 1, 0, -1):
        eta_t, eta_s = etas[t], etas[t - 1]
        alpha = eta_t - eta_s
        v = ((eta_s + alpha * gain(eta_t)) / eta_t) ** 2 * v + kappa**2 * eta_s * alpha / eta_t
    want_var = gain(etas[0]) ** 2 * v
    assert one.abs().max() < 1e-3  # the posterior mean, up to g_T ~ 3e-5 of x_T's noise
    assert full.var().item() == pytest.approx(want_var, rel=0.05)
    assert 0.2 * s**2 < want_var < s**2  # below an exact posterior sampler's s^2, far above 0
    mse_one, mse_full = (one - r).pow(2).mean().item(), (full - r).pow(2).mean().item()
    assert mse_one == pytest.approx(s**2, rel=0.03)
    assert mse_full == pytest.approx(s**2 + want_var, rel=0.05) and mse_full > 1.2 * mse_one
