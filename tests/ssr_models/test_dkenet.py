"""DKENet: kernel normalization, pi-periodic param head, Eq. 1 re-blur, losses, one-batch overfit."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from degrade.ops.blur import apply_kernel_field
from ssr_core.errors import ConfigError
from ssr_models.dkenet import DKENetConfig, canonical_kernel_field, dkenet_tiny, reblur
from ssr_models.kernel_pca import kernel_field_to_taps
from tests.ssr_models import make_batch, overfit


@pytest.mark.parametrize("head", ["kernel", "param"])
def test_kernels_are_normalized_per_pixel(head: str) -> None:
    torch.manual_seed(0)
    model = dkenet_tiny(head=head, kernel_size=9)
    est = model(torch.rand(2, 3, 11, 13), torch.rand(2, 1, 44, 52), delta=1.5)
    assert est.kernel_taps.shape == (2, 81, 11, 13)
    assert bool((est.kernel_taps >= 0).all())
    torch.testing.assert_close(est.kernel_taps.sum(1), torch.ones(2, 11, 13), rtol=0, atol=1e-5)
    if head == "param":
        s1, s2, theta = est.kernel_field.unbind(1)
        assert bool((s2 >= model.config.min_sigma).all() and (s1 >= s2).all())
        assert bool((theta >= 0).all() and (theta < math.pi).all())
    else:
        assert est.kernel_field is None


def test_nearness_at_hr_is_area_averaged() -> None:
    torch.manual_seed(0)
    model = dkenet_tiny(kernel_size=5)
    lr, near = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 32, 32)
    lr_near = torch.nn.functional.avg_pool2d(near, 4)
    torch.testing.assert_close(model(lr, near).kernel_taps, model(lr, lr_near).kernel_taps)


def test_param_head_angle_is_pi_periodic() -> None:
    torch.manual_seed(0)
    model = dkenet_tiny(head="param", kernel_size=9)
    p = torch.tensor([2.0, 1.0, 0.3]).view(1, 3, 1, 1)
    q = p + torch.tensor([0.0, 0.0, math.pi]).view(1, 3, 1, 1)
    torch.testing.assert_close(kernel_field_to_taps(p, 9, 1.5), kernel_field_to_taps(q, 9, 1.5))
    torch.testing.assert_close(canonical_kernel_field(q), canonical_kernel_field(p))
    batch = make_batch(h=6, kernel_size=9)
    turned = torch.tensor([0.0, 0.0, math.pi]).view(1, 3, 1, 1)
    shifted = replace(batch, kernel_field=batch.kernel_field + turned)
    torch.testing.assert_close(model.losses(batch)["angle"], model.losses(shifted)["angle"])


def test_canonical_kernel_field_swaps_axes() -> None:
    p = torch.tensor([1.0, 2.0, 0.2]).view(1, 3, 1, 1)
    c = canonical_kernel_field(p)
    assert c.flatten().tolist() == pytest.approx([2.0, 1.0, 0.2 + math.pi / 2])
    torch.testing.assert_close(kernel_field_to_taps(c, 11, 0.0), kernel_field_to_taps(p, 11, 0.0))


def test_reblur_matches_engine_eq1() -> None:
    batch = make_batch(h=8, kernel_size=21)
    kernels = kernel_field_to_taps(batch.kernel_field, 21, batch.delta)
    ref = apply_kernel_field(batch.hr, batch.kernel_field, 4, 21, batch.delta, backend="torch")
    torch.testing.assert_close(reblur(batch.hr, kernels, 4), ref, rtol=1e-5, atol=1e-5)


def test_redegradation_loss_is_switchable() -> None:
    batch = make_batch(h=6, kernel_size=9)
    for head in ("kernel", "param"):
        off, logs_off = dkenet_tiny(head=head, kernel_size=9).training_step(batch)
        assert "loss_redeg" not in logs_off
        model = dkenet_tiny(head=head, kernel_size=9, lambda_redeg=1.0)
        loss, logs = model.training_step(batch)
        loss.backward()
        assert logs["loss_redeg"] > 0 and model.head.weight.grad is not None


def test_validation_reports_field_errors_for_param_head() -> None:
    batch = make_batch(h=6, kernel_size=9)
    assert set(dkenet_tiny(kernel_size=9).validation_step(batch)) == {"kernel_l1"}
    logs = dkenet_tiny(head="param", kernel_size=9).validation_step(batch)
    assert set(logs) == {"kernel_l1", "s1_mae", "s2_mae", "theta_mae"}
    assert 0 <= logs["kernel_l1"] <= 2 and 0 <= logs["theta_mae"] <= math.pi / 2


def test_config_round_trip_and_errors() -> None:
    cfg = DKENetConfig(head="param", channels=16)
    assert DKENetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="head must be"):
        DKENetConfig(head="mlp")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="kernel_size"):
        dkenet_tiny(kernel_size=9).training_step(make_batch(h=6, kernel_size=11))


def test_tiny_overfits_one_batch() -> None:
    torch.manual_seed(0)
    batch = make_batch(h=16, kernel_size=21)
    first, last = overfit(dkenet_tiny(), batch, steps=70, lr=3e-3)
    assert last < first / 5, (first, last)
