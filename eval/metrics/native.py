"""PSNR and SSIM as registry metrics (BasicSR / MATLAB convention; DESIGN.md sec. 7).

The math (input coercion, BT.601 Y, crop, PSNR, SSIM) lives once in :mod:`degrade.ops.quality`,
whose docstring states every convention; training validation uses it from there, since nothing
imports ``eval``. This module wraps it with the registry-facing classes, whose
:meth:`PSNR.conventions` / :meth:`SSIM.conventions` are recorded beside every score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from degrade.ops.quality import DATA_RANGE, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW, check_crop, psnr, ssim
from ssr_core.errors import ConfigError

__all__ = ["PSNR", "SSIM", "psnr", "ssim"]


class _FullReference:
    """Shared state of the native full-reference metrics: the spec and the two options.

    Other keyword options (``device``, ...) are accepted and ignored so that the scorer can pass
    one option set to every metric; the native metrics run on the CPU in numpy/OpenCV.
    """

    _fn: Callable[..., float]  # the pure function, set by each subclass

    def __init__(self, spec: Any, crop_border: int = 0, y_channel: bool = True, **_: Any) -> None:
        self.spec = spec
        self.crop_border = check_crop(crop_border)
        if not isinstance(y_channel, bool):
            raise ConfigError(f"y_channel must be True or False, got {y_channel!r}")
        self.y_channel = y_channel

    def __call__(self, pred: Any, gt: Any = None) -> float:
        """Score pred against gt (both required); see the module docstring for the conventions."""
        if gt is None:
            raise ConfigError(f"{self.spec.name} is a full-reference metric: pass gt")
        return self._fn(gt, pred, crop_border=self.crop_border, y_channel=self.y_channel)

    def check(self) -> None:
        """Do nothing: native metrics need no weights or optional packages."""

    def _common(self) -> dict[str, Any]:
        """Return the conventions both metrics share."""
        return {
            "metric": self.spec.name,
            "implementation": "ssr-bench native (numpy/OpenCV), BasicSR/MATLAB convention",
            "input": "RGB on [0, 255], float64; float inputs x255 without rounding",
            "channel": "Y of BT.601 YCbCr (MATLAB rgb2ycbcr, 16 + (65.481 R + 128.553 G + "
                       "24.966 B) / 255, unrounded)" if self.y_channel else "RGB",
            "crop_border": self.crop_border,
        }


class PSNR(_FullReference):
    """PSNR in dB, ``10 log10(255^2 / MSE)``; identical images give +inf."""

    _fn = staticmethod(psnr)

    def conventions(self) -> dict[str, Any]:
        """Return what exactly is computed (recorded beside every score)."""
        return {**self._common(), "formula": "10 log10(255^2 / MSE)", "data_range": DATA_RANGE,
                "identical": "inf"}


class SSIM(_FullReference):
    """SSIM (Wang et al. 2004), 11x11 Gaussian sigma 1.5, valid region, BasicSR convention."""

    _fn = staticmethod(ssim)

    def conventions(self) -> dict[str, Any]:
        """Return what exactly is computed (recorded beside every score)."""
        return {**self._common(),
                "window": f"gaussian {SSIM_WINDOW}x{SSIM_WINDOW}, sigma {SSIM_SIGMA}",
                "k1": SSIM_K1, "k2": SSIM_K2, "data_range": DATA_RANGE,
                "variance": "population (biased)", "region": "valid (map cropped by 5 per side)",
                "channels": "Y" if self.y_channel else "mean of R, G, B SSIMs"}
