"""Tests for ssr_models.resshift: the schedule (Eq. 10), draws, posterior, set_timesteps/step."""

from __future__ import annotations

import math

import pytest
import torch

from ssr_core.errors import ConfigError
from ssr_models.resshift import ResShiftConfig, ResShiftSchedule
from tests.reference import resshift_etas


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


def test_etas_follow_the_config() -> None:
    cfg = ResShiftConfig(num_train_timesteps=10, kappa=1.0, power=0.5, min_noise_level=0.02, eta_max=0.9)
    want = resshift_etas(10, 1.0, 0.5, 0.02, 0.9)
    torch.testing.assert_close(ResShiftSchedule(cfg).etas.double(), torch.tensor(want, dtype=torch.float64),
                               rtol=1e-6, atol=0)  # float32 storage
    for bad, match in [({"num_train_timesteps": 1}, "integer >= 2"), ({"eta_max": 1.5}, r"\(0, 1\]"),
                       ({"kappa": 0.0}, "kappa must be > 0")]:
        with pytest.raises(ConfigError, match=match):
            ResShiftConfig(**bad)


def test_set_timesteps_spaces_indices_evenly() -> None:
    sch = ResShiftSchedule()
    assert sch.timesteps.tolist() == list(range(14, -1, -1))  # all T before set_timesteps
    for n, want in [(15, list(range(14, -1, -1))), (4, [14, 9, 5, 0]), (5, [14, 10, 7, 4, 0]),
                    (2, [14, 0]), (1, [14])]:  # linspace(14, 0, n) rounded half to even
        sch.set_timesteps(n)
        assert sch.timesteps.tolist() == want, n
    for n in (0, 16, 2.0):
        with pytest.raises(ConfigError, match=r"steps must be in \[1, 15\]"):
            sch.set_timesteps(n)  # type: ignore[arg-type]


def test_step_draws_from_the_posterior_between_scheduled_indices() -> None:
    sch = ResShiftSchedule()
    sch.set_timesteps(4)  # 14, 9, 5, 0
    g = torch.Generator().manual_seed(3)
    xt, x0 = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    eta = resshift_etas(15, 2.0, 0.3, 0.04, 0.99)
    out = sch.step(x0, 9, xt, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(xt.shape, generator=torch.Generator().manual_seed(7))
    e_t, e_s = eta[9], eta[5]  # 0-based 9 -> 5: ResShift Eq. 7 between s < t
    want = e_s / e_t * xt + (e_t - e_s) / e_t * x0 + math.sqrt(4 * e_s / e_t * (e_t - e_s)) * eps
    torch.testing.assert_close(out.prev_sample, want, rtol=1e-5, atol=1e-5)
    assert out.pred_original_sample is x0
    # after index 0 the posterior is x_0 itself: returned as is, no noise drawn
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    assert sch.step(x0, 0, xt, generator=g).prev_sample is x0
    assert torch.equal(g.get_state(), state)
    with pytest.raises(ConfigError, match=r"timestep 13 is not one of the scheduled \[14, 9, 5, 0\]"):
        sch.step(x0, 13, xt)
