"""Registry-wide metric test: every registered image metric that needs no downloaded weights runs
through ``create_metric`` and agrees with its own metadata (range, direction, reference).

The learned metrics (LPIPS, MUSIQ, CLIP-IQA: the ``metrics`` extra) run end to end on stand-in
weights in the real layout in test_learned.py; the kernel-track metrics in tests/eval/kernels.
"""

from __future__ import annotations

import math

import pytest

from eval.metrics.registry import METRICS, create_metric
from ssr_core.errors import ConfigError
from tests.helpers import image_pair

BASE = [n for n, s in METRICS.items() if s.target == "image" and s.extra is None]


def test_the_base_image_metrics_are_the_papers() -> None:
    assert sorted(BASE) == ["niqe", "psnr", "ssim"]


@pytest.mark.parametrize("name", BASE)
def test_every_base_metric_scores_within_its_range_and_direction(name: str) -> None:
    spec = METRICS[name]
    gt, pred = image_pair(96, 200)  # NIQE needs two 96 x 96 blocks
    metric = create_metric(name)
    assert metric.check() is None
    value = metric(pred, gt) if spec.full_reference else metric(pred)
    low, high = spec.value_range  # type: ignore[misc]
    assert math.isfinite(value) and low <= value <= high, (name, value)
    if spec.full_reference:
        # a perfect prediction scores better than a noisy one, in the registered direction
        perfect = metric(gt, gt)
        assert (perfect > value) == spec.higher_is_better, (name, perfect, value)
        with pytest.raises(ConfigError, match="full-reference metric: pass gt"):
            metric(pred)


def test_kernel_track_metrics_are_not_image_metrics() -> None:
    kernel = [n for n, s in METRICS.items() if s.target == "kernel"]
    assert kernel
    for name in kernel:
        with pytest.raises(ConfigError, match="scores kernel estimates, not images"):
            create_metric(name)
