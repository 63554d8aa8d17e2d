"""The metrics a user can name, registered explicitly with typed metadata.

Each entry says what the tables need (direction, range, unit), what it compares (full-reference
or not), which implementation computes it and which optional extra it needs. ``version`` is part
of every cached score's key: bump it whenever an implementation change can move a value.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from ssr_core.config import did_you_mean
from ssr_core.errors import ConfigError


@dataclass(frozen=True)
class MetricSpec:
    """One metric's metadata; ``factory`` is "module:callable" returning a Metric (lazy)."""

    name: str
    title: str
    higher_is_better: bool
    full_reference: bool
    unit: str
    value_range: tuple[float, float] | None
    version: str
    factory: str
    extra: str | None  # optional dependency group it needs ("metrics" = pyiqa), None = base
    convention: str  # one line for tables and JSON: what exactly is computed

    @property
    def arrow(self) -> str:
        """Return the table arrow: an up arrow when higher is better, else a down arrow."""
        return "\u2191" if self.higher_is_better else "\u2193"


METRICS: dict[str, MetricSpec] = {}


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric; a duplicate name is an error."""
    if spec.name in METRICS:
        raise ConfigError(f"metric {spec.name!r} is registered twice")
    METRICS[spec.name] = spec
    return spec


def get_metric(name: str) -> MetricSpec:
    """Return a registered metric; unknown names list the choices."""
    if name not in METRICS:
        raise ConfigError(f"unknown metric {name!r}{did_you_mean(name, METRICS)}; "
                          f"choose from {', '.join(METRICS)}")
    return METRICS[name]


def create_metric(name: str, **options: Any) -> Any:
    """Instantiate a metric by name (imports its implementation only now)."""
    spec = get_metric(name)
    module, _, attr = spec.factory.partition(":")
    return getattr(importlib.import_module(module), attr)(spec, **options)


# --- the six metrics of Table 1 (DESIGN.md section 7) ----------------------------------------
register(MetricSpec(
    "psnr", "PSNR", True, True, "dB", (0.0, float("inf")), "1", "eval.metrics.native:PSNR", None,
    "PSNR on Y of BT.601 YCbCr from RGB in [0,255] (MATLAB rgb2ycbcr, no rounding), "
    "crop_border = scale; identical images give +inf"))
register(MetricSpec(
    "ssim", "SSIM", True, True, "", (-1.0, 1.0), "1", "eval.metrics.native:SSIM", None,
    "SSIM (Wang et al. 2004) on Y of BT.601 YCbCr, 11x11 Gaussian window sigma 1.5, "
    "K1 0.01, K2 0.03, L 255, valid region only, crop_border = scale"))
register(MetricSpec(
    "lpips", "LPIPS", False, True, "", (0.0, float("inf")), "1", "eval.metrics.learned:LPIPS",
    "metrics", "LPIPS AlexNet v0.1 (pyiqa default), RGB in [0,1]"))
register(MetricSpec(
    "musiq", "MUSIQ", True, False, "", (0.0, 100.0), "1", "eval.metrics.learned:MUSIQ",
    "metrics", "MUSIQ trained on KonIQ-10k (pyiqa default 'musiq')"))
register(MetricSpec(
    "clipiqa", "CLIP-IQA", True, False, "", (0.0, 1.0), "1", "eval.metrics.learned:CLIPIQA",
    "metrics", "CLIP-IQA (pyiqa default 'clipiqa')"))
register(MetricSpec(
    "niqe", "NIQE", False, False, "", (0.0, float("inf")), "2", "eval.metrics.niqe_model:NIQE", None,
    "NIQE (Mittal et al. 2013) with the published pristine model as pyiqa computes it (YIQ "
    "luminance, float32 window), 96x96 blocks, no border crop by default"))
