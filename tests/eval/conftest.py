"""Fixtures for the scorer and `ssr-eval` tests: fake metrics that count their calls, images."""

from __future__ import annotations

import sys
import types
from collections import Counter
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from eval.metrics.registry import METRICS, MetricSpec
from ssr_core.errors import ConfigError, MissingAssetError

FAKE_MODULE = "ssr_bench_test_fake_metrics"  # a module made in memory: registry factories import it
CALLS: Counter[str] = Counter()  # metric name -> __call__ count


class FakeMetric:
    """A metric with the registry's contract whose value is trivially checkable.

    fake_fr: mean |pred - gt| over the cropped RGB values; fake_nr: mean of pred (uint8 scale);
    fake_missing: check() raises MissingAssetError.
    """

    def __init__(self, spec: MetricSpec, crop_border: int = 0) -> None:
        self.spec, self.crop_border = spec, crop_border

    def check(self) -> None:
        if self.spec.name == "fake_missing":
            raise MissingAssetError("fake_weights.pth", "/nowhere/weights",
                                    url="https://example.invalid/fake_weights.pth")

    def __call__(self, pred: np.ndarray, gt: np.ndarray | None = None) -> float:
        CALLS[self.spec.name] += 1
        c = self.crop_border
        p = pred[c:pred.shape[0] - c, c:pred.shape[1] - c].astype(np.float64)
        if not self.spec.full_reference:
            return float(p.mean())
        if gt is None:
            raise ConfigError("fake_fr needs gt")
        g = gt[c:gt.shape[0] - c, c:gt.shape[1] - c].astype(np.float64)
        return float(np.abs(p - g).mean())

    def conventions(self) -> dict[str, Any]:
        return {"fake": True, "crop_border": self.crop_border}


def fake_spec(name: str, full_reference: bool, version: str = "1", extra: str | None = None,
              higher_is_better: bool = False) -> MetricSpec:
    return MetricSpec(name, name.upper(), higher_is_better, full_reference, "", None, version,
                      f"{FAKE_MODULE}:FakeMetric", extra, f"{name}: a test metric")


@pytest.fixture
def fake_metrics(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Register fake_fr, fake_nr and fake_missing; yield the call counter.

    The test may register or unregister more metrics: the registry is restored after it.
    """
    module = types.ModuleType(FAKE_MODULE)
    module.FakeMetric = FakeMetric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, FAKE_MODULE, module)
    with METRICS.scoped():
        for spec in (fake_spec("fake_fr", True), fake_spec("fake_nr", False, higher_is_better=True),
                     fake_spec("fake_missing", True)):
            METRICS.register(spec.name, spec)
        CALLS.clear()
        yield CALLS


def random_rgb(seed: int, h: int = 32, w: int = 40) -> np.ndarray:
    """Return a uint8 (h, w, 3) random RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def noisy(img: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    """Return ``img`` plus Gaussian noise of ``sigma`` (0-255 scale), rounded and clipped."""
    n = np.random.default_rng(seed).normal(0.0, sigma, img.shape)
    return np.clip(np.rint(img + n), 0, 255).astype(np.uint8)


def smooth_rgb(seed: int, h: int = 128, w: int = 128) -> np.ndarray:
    """Return a natural-ish uint8 image: smoothed noise plus a gradient (NIQE needs structure)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.normal(128, 60, (h, w, 3)), (0, 0), 2.0)
    ramp = np.linspace(-40, 40, w)[None, :, None]
    return np.clip(np.rint(base + ramp), 0, 255).astype(np.uint8)
