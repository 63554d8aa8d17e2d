"""Tests for ssr_models.svkr (Algorithm 1, Eq. 2) with recording stub estimators."""

from __future__ import annotations

import math

import pytest
import torch

from degrade.ops.kernels import covariance_from_sigmas, sigmas_from_covariance
from ssr_core.errors import ConfigError
from ssr_models.svkr import (
    PRIOR_FIXED_POINT_NOTE,
    SVKR,
    blend_kernels,
    paper_depth_provider,
    provider_depth_estimator,
)

S, KK = 2, 9  # scale, taps of a 3x3 per-pixel kernel


class Recorder:
    """Stub DE / KE / NBSR: deterministic outputs that encode the call number, inputs recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, torch.Tensor]] = []

    def de(self, rgb: torch.Tensor) -> torch.Tensor:
        self.calls.append(("DE", rgb.clone()))
        return rgb.mean(1, keepdim=True)

    def ke(self, lr: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        n = sum(name == "KE" for name, _ in self.calls)
        self.calls.append(("KE", depth.clone()))
        taps = torch.full((lr.shape[0], KK, lr.shape[2], lr.shape[3]), 1.0 / KK)
        taps[:, n % KK] += 1.0  # a different kernel each call (unnormalized is fine for the stub)
        return taps

    def nbsr(self, lr: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        self.calls.append(("NBSR", kernel.clone()))
        n = sum(name == "NBSR" for name, _ in self.calls)
        return torch.full((lr.shape[0], 3, lr.shape[2] * S, lr.shape[3] * S), 0.1 * n)


def test_algorithm_1_call_order_and_momentum() -> None:
    rec = Recorder()
    lr = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    sr, kernel, depth = SVKR(rec.ke, rec.nbsr, rec.de, iterations=3, gamma=0.9, scale=S)(lr)
    names = [name for name, _ in rec.calls]
    # init: DE(I^0), KE; then 3 x (DE, KE, NBSR)
    assert names == ["DE", "KE"] + ["DE", "KE", "NBSR"] * 3
    de_inputs = [x for name, x in rec.calls if name == "DE"]
    torch.testing.assert_close(de_inputs[0], lr)  # I^0 = LR, as Algorithm 1 writes it
    torch.testing.assert_close(de_inputs[1], lr)  # D^1 = DE(I^0)
    for t in (2, 3):  # D^t = DE(I^{t-1}), the latest SR image
        torch.testing.assert_close(de_inputs[t], torch.full((1, 3, 8, 8), 0.1 * (t - 1)))
    # DE of the LR image is brought to HR size for KE (bilinear, the one addition to Algorithm 1)
    ke_depths = [x for name, x in rec.calls if name == "KE"]
    expected_d0 = torch.nn.functional.interpolate(lr.mean(1, keepdim=True), size=(8, 8), mode="bilinear",
                                                  align_corners=False)
    torch.testing.assert_close(ke_depths[0], expected_d0)
    # Eq. 2 by hand: K^{t+1} = gamma * KE(LR, D^{t+1}) + (1 - gamma) * K^t
    raw = []
    for n in range(4):
        k = torch.full((1, KK, 4, 4), 1.0 / KK)
        k[:, n] += 1.0
        raw.append(k)
    expected = raw[0]
    for n in (1, 2, 3):
        expected = 0.9 * raw[n] + 0.1 * expected
        torch.testing.assert_close([x for name, x in rec.calls if name == "NBSR"][n - 1], expected)
    torch.testing.assert_close(kernel, expected)
    torch.testing.assert_close(sr, torch.full((1, 3, 8, 8), 0.3))
    torch.testing.assert_close(depth, de_inputs[3].mean(1, keepdim=True))


def test_initial_nearness_and_zero_iterations() -> None:
    rec = Recorder()
    lr = torch.rand(1, 3, 4, 4)
    d0 = torch.full((1, 1, 8, 8), 0.25)
    sr, kernel, depth = SVKR(rec.ke, rec.nbsr, rec.de, iterations=0, scale=S)(lr, initial_nearness=d0)
    assert [name for name, _ in rec.calls] == ["KE"]
    torch.testing.assert_close(rec.calls[0][1], d0)
    assert torch.equal(sr, lr) and torch.equal(depth, d0)  # I^0 = LR: no restorer call at T = 0


def test_blend_parameter_fields_through_covariance() -> None:
    new = torch.tensor([2.0, 1.0, 0.05]).view(1, 3, 1, 1)
    old = torch.tensor([1.5, 0.5, math.pi - 0.05]).view(1, 3, 1, 1)
    out = blend_kernels(new, old, 0.9)
    cov = 0.9 * covariance_from_sigmas(*new[0, :, 0, 0]) + 0.1 * covariance_from_sigmas(*old[0, :, 0, 0])
    s1, s2, th = sigmas_from_covariance(cov)
    torch.testing.assert_close(out[0, :, 0, 0], torch.stack([s1, s2, th]))
    # theta near 0 and near pi are neighbours: the blend stays near the wrap, not at pi / 2
    assert min(out[0, 2].item(), math.pi - out[0, 2].item()) < 0.1
    with pytest.raises(ConfigError, match="differ in shape"):
        blend_kernels(new, old.expand(1, 3, 2, 2), 0.9)


def test_default_depth_estimator_is_prior_provider() -> None:
    de = provider_depth_estimator("prior")
    out = de(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 1, 16, 16) and out.dtype == torch.float32
    assert 0.0 <= out.min().item() and out.max().item() <= 1.0


def test_rejects_bad_settings() -> None:
    rec = Recorder()
    with pytest.raises(ConfigError, match="gamma"):
        SVKR(rec.ke, rec.nbsr, rec.de, gamma=1.5)
    with pytest.raises(ConfigError, match="lr must be"):
        SVKR(rec.ke, rec.nbsr, rec.de)(torch.rand(1, 1, 4, 4))


def test_paper_depth_provider_prefers_local_midas(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.degrade.tiny_depth_models import tiny_hybrid, weights_dir_with

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # the developer's cache may hold MiDaS
    monkeypatch.delenv("SSR_BENCH_DEPTH_WEIGHTS", raising=False)
    provider, note = paper_depth_provider(str(tmp_path / "empty"))
    assert provider == "prior" and note == PRIOR_FIXED_POINT_NOTE and "fixed point" in note
    root = weights_dir_with(tmp_path, {"Intel/dpt-hybrid-midas": tiny_hybrid(tmp_path / "hybrid")})
    assert paper_depth_provider(str(root)) == ("midas", None)
