"""NBSR: output size, PSNR logs against bicubic, batch checks, one-batch overfit."""

from __future__ import annotations

import pytest
import torch

from degrade.ops.quality import batch_psnr
from ssr_core.errors import ConfigError
from ssr_models.nbsr import NBSRConfig, bicubic_up, nbsr_tiny
from tests.ssr_models import make_batch, overfit


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_is_scale_times_input(scale: int) -> None:
    torch.manual_seed(0)
    model = nbsr_tiny(scale=scale, kernel_size=9, pca_samples=300)
    lr = torch.rand(2, 3, 7, 5)
    sr = model.super_resolve(lr, torch.rand(2, 3, 7, 5) + 0.7)
    assert sr.shape == (2, 3, 7 * scale, 5 * scale)
    assert model(lr, torch.zeros(2, 15, 7, 5)).shape == sr.shape


def test_validation_compares_with_bicubic() -> None:
    batch = make_batch(h=8, kernel_size=21)
    logs = nbsr_tiny(pca_samples=300).validation_step(batch)
    assert set(logs) == {"psnr", "psnr_bicubic", "psnr_y", "ssim_y", "psnr_y_bicubic"}
    mse = float((bicubic_up(batch.lr, 4).clamp(0, 1) - batch.hr).pow(2).mean())
    assert logs["psnr_bicubic"] == pytest.approx(10 * torch.log10(torch.tensor(1 / mse)).item(), rel=1e-5)
    assert float(batch_psnr(batch.hr, batch.hr)) == pytest.approx(120.0)


def test_pca_is_saved_with_the_model() -> None:
    a = nbsr_tiny(pca_samples=300, pca_seed=1)
    b = nbsr_tiny(pca_samples=300, pca_seed=2)
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(b.pca.components, a.pca.components)


def test_batch_must_match_model() -> None:
    with pytest.raises(ConfigError, match="does not match"):
        nbsr_tiny(pca_samples=300).training_step(make_batch(h=6, kernel_size=9))
    with pytest.raises(ConfigError, match="codes"):
        nbsr_tiny(pca_samples=300)(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))


def test_config_round_trip() -> None:
    cfg = NBSRConfig(scale=2, delta=0.0)
    assert NBSRConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.resolved_delta == 0.0 and NBSRConfig(scale=4).resolved_delta == 1.5


def test_tiny_overfits_one_batch() -> None:
    torch.manual_seed(0)
    batch = make_batch(h=8, kernel_size=21)
    model = nbsr_tiny(pca_samples=500)
    first, last = overfit(model, batch, steps=60, lr=4e-3)
    assert last < first / 5, (first, last)
    logs = model.validation_step(batch)
    assert logs["psnr"] > logs["psnr_bicubic"] + 5
