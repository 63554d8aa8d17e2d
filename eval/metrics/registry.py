"""The metrics a user can name, registered explicitly with typed metadata.

Each entry says what the tables need (direction, range, unit), what it compares (full-reference
or not), which implementation computes it and which optional extra it needs. ``version`` is part
of every cached score's key: bump it whenever an implementation change can move a value.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Literal

from ssr_core.errors import ConfigError
from ssr_core.registry import Registry


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
    # What it scores: SR images (``ssr-eval score``/``run``), or kernel estimates against the
    # true kernel field (``ssr-eval kernels``, computed by eval.kernels, never by create_metric).
    target: Literal["image", "kernel"] = "image"

    @property
    def arrow(self) -> str:
        """Return the table arrow: an up arrow when higher is better, else a down arrow."""
        return "\u2191" if self.higher_is_better else "\u2193"


#: Every metric a user can name; the entry's object is its (eager) :class:`MetricSpec`, whose
#: ``factory`` is imported only by :func:`create_metric`.
METRICS: Registry[MetricSpec, None] = Registry("metric")


def register(spec: MetricSpec) -> MetricSpec:
    """Add a metric under ``spec.name``; a duplicate name is a ConfigError."""
    return METRICS.register(spec.name, spec)


def get_metric(name: str) -> MetricSpec:
    """Return a registered metric; an unknown name lists the choices (with "did you mean")."""
    return METRICS.get(name)


def image_metrics() -> list[str]:
    """Return the names of the metrics that score SR images (``target == "image"``)."""
    return [n for n, s in METRICS.items() if s.target == "image"]


def create_metric(name: str, **options: Any) -> Any:
    """Instantiate an image metric by name (imports its implementation only now).

    Raises:
        ConfigError: unknown name, or a kernel-track metric (scored by ``eval.kernels``).
    """
    spec = get_metric(name)
    if spec.target != "image":
        raise ConfigError(f"{name} scores kernel estimates, not images: use `ssr-eval kernels`")
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


# --- the kernel-estimation track (eval.kernels; conventions in eval/kernels/metrics.py) -------
_KERNEL_FACTORY = "eval.kernels.metrics:score_image"
register(MetricSpec(
    "kernel_psnr", "Kernel PSNR", True, True, "dB", (0.0, float("inf")), "1", _KERNEL_FACTORY, None,
    "10 log10(1 / MSE) over the K x K taps (each kernel sums to 1) of every LR pixel of the image, "
    "on the set's K and delta (DIV2KRK's kernel PSNR for one kernel per image; invariant estimates "
    "centred by centre of mass); mean of per-image values; equal fields give +inf", target="kernel"))
register(MetricSpec(
    "kernel_l1", "Kernel L1", False, True, "", (0.0, 2.0), "1", _KERNEL_FACTORY, None,
    "mean over LR pixels of sum_ab |k - k*| over the K x K taps, in [0, 2] (DKENet's "
    "validation kernel_l1)", target="kernel"))
register(MetricSpec(
    "sigma_mae", "sigma MAE", False, True, "px", (0.0, float("inf")), "1", _KERNEL_FACTORY, None,
    "mean over LR pixels of (|s1 - s1*| + |s2 - s2*|) / 2, standard deviations in HR px, both "
    "fields canonical (s1 >= s2); Gaussian-parameter estimates only", target="kernel"))
register(MetricSpec(
    "theta_err", "theta err", False, True, "deg", (0.0, 90.0), "1", _KERNEL_FACTORY, None,
    "angle between the major axes modulo pi (in [0, 90] degrees), mean weighted by the true "
    "anisotropy (s1* - s2*) / (s1* + s2*); Gaussian-parameter estimates only", target="kernel"))
register(MetricSpec(
    "size_mae", "size MAE", False, True, "px", (0.0, float("inf")), "1", _KERNEL_FACTORY, None,
    "mean over LR pixels of |sqrt(s1 s2) - sqrt(s1* s2*)| (blur size, HR px); Gaussian-parameter "
    "estimates only", target="kernel"))
register(MetricSpec(
    "redeg_psnr", "Re-deg PSNR", True, True, "dB", (0.0, float("inf")), "1", _KERNEL_FACTORY, None,
    "HR degraded by Eq. 1 with the estimated field, rounded to uint8 (half to even) like the "
    "build, vs the set's LR: PSNR on RGB [0, 255], no crop; noise-free sets only (the true field "
    "gives +inf)", target="kernel"))
