"""PSNR and SSIM as registry metrics: the classes wrap degrade.ops.quality (tested there)."""

from __future__ import annotations

import pytest

from eval.metrics.native import PSNR, SSIM, psnr, ssim
from eval.metrics.registry import create_metric, get_metric
from ssr_core.errors import ConfigError
from tests.helpers import image_pair as pair


# --- classes and registry -------------------------------------------------------------------
def test_metric_objects_through_the_registry() -> None:
    gt, pred = pair()
    m = create_metric("psnr", crop_border=4, device="cpu")  # unknown shared options are ignored
    assert isinstance(m, PSNR)
    assert m(pred, gt) == pytest.approx(psnr(gt, pred, crop_border=4))
    assert m.check() is None
    conv = m.conventions()
    assert conv["crop_border"] == 4 and conv["channel"].startswith("Y of BT.601")
    s = SSIM(get_metric("ssim"), crop_border=3, y_channel=False)
    assert s(pred, gt) == pytest.approx(ssim(gt, pred, crop_border=3, y_channel=False))
    assert s.conventions()["window"] == "gaussian 11x11, sigma 1.5"
    assert s.conventions()["channels"] == "mean of R, G, B SSIMs"


def test_class_option_errors() -> None:
    _, pred = pair()
    with pytest.raises(ConfigError, match="crop_border must be an integer >= 0"):
        PSNR(get_metric("psnr"), crop_border=True)
    with pytest.raises(ConfigError, match="y_channel must be True or False"):
        SSIM(get_metric("ssim"), y_channel="y")
    with pytest.raises(ConfigError, match="full-reference metric: pass gt"):
        create_metric("ssim")(pred)
