"""PSNR and SSIM as the SR literature computes them (BasicSR / MATLAB scripts; DESIGN.md sec. 7).

Conventions, recorded by :meth:`PSNR.conventions` / :meth:`SSIM.conventions` in every output:

- Inputs: see :func:`eval.metrics.color.to_float255` (uint8 HWC RGB, or float in [0, 1] times
  255 without rounding). Everything is computed in float64.
- Channel: Y of BT.601 YCbCr from RGB on [0, 255], MATLAB ``rgb2ycbcr`` without rounding
  (``y_channel=True``, default); or the three RGB channels (``y_channel=False``: PSNR over all
  values, SSIM the mean of the per-channel SSIMs).
- ``crop_border`` pixels are removed from every side before anything else is computed (the SR
  convention is crop_border = scale; the scorer passes it).
- PSNR: ``10 log10(255^2 / MSE)`` in dB; identical images give ``float('inf')``.
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window of sigma 1.5 (the outer product of
  ``cv2.getGaussianKernel(11, 1.5)``), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, population
  (biased) local variances, averaged over the *valid* region only: BasicSR filters with
  ``cv2.filter2D`` and crops ``[5:-5, 5:-5]``, so the map is 10 pixels smaller in each dimension.
  We filter with the separable form (two 11-tap passes instead of 121 taps), which computes the
  same sums up to float64 rounding (about 1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from eval.metrics.color import rgb_to_y, to_float255
from ssr_datasets.errors import ConfigError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2, DATA_RANGE = 0.01, 0.03, 255.0


def _check_crop(crop_border: int) -> int:
    """Return crop_border as an int, or raise ConfigError unless it is a non-negative integer."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ConfigError(f"crop_border must be an integer >= 0 (pixels), got {crop_border!r}")
    return int(crop_border)


def prepare_pair(gt: Any, pred: Any, crop_border: int = 0, y_channel: bool = True,
                 min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Coerce, check, crop and convert a pair of images for a full-reference metric.

    Args:
        gt, pred: images accepted by :func:`to_float255`, of the same height and width.
        crop_border: pixels removed from each of the four sides.
        y_channel: True for BT.601 Y ``(H', W')``, False for RGB ``(H', W', 3)``.
        min_size: the smallest height and width allowed after cropping.

    Returns:
        ``(gt, pred)`` float64 on the 0-255 scale, ``H' = H - 2 crop_border`` (same for W).
    """
    crop = _check_crop(crop_border)
    a, b = to_float255(gt), to_float255(pred)
    if a.shape != b.shape:
        raise ConfigError(f"gt and pred differ in size: gt {a.shape[:2]} (H, W), pred {b.shape[:2]}")
    h, w = a.shape[:2]
    if min(h, w) - 2 * crop < min_size:
        raise ConfigError(f"image {h}x{w} (HxW) with crop_border {crop} leaves less than "
                          f"{min_size}x{min_size} pixels")
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if y_channel:
        return rgb_to_y(a), rgb_to_y(b)
    return a, b


def psnr(gt: Any, pred: Any, crop_border: int = 0, y_channel: bool = True) -> float:
    """Return the PSNR in dB on the 0-255 scale: ``10 log10(255^2 / MSE)``.

    Args:
        gt: reference image; uint8 ``(H, W, 3)`` RGB, or float in [0, 1] (numpy ``(H, W, 3)``,
            torch ``(3, H, W)`` / ``(1, 3, H, W)``), see :func:`to_float255`.
        pred: the image to score, same height and width (any accepted type).
        crop_border: pixels removed from each side first (SR convention: the scale).
        y_channel: compare BT.601 Y (MATLAB rgb2ycbcr, unrounded) if True, else the RGB values.

    Returns:
        PSNR in dB; ``float('inf')`` when the compared values are identical (MSE = 0).

    >>> a = np.zeros((4, 4, 3), np.uint8)
    >>> psnr(a, a)
    inf
    >>> round(psnr(a, a + 1, y_channel=False), 4)  # MSE = 1
    48.1308
    """
    a, b = prepare_pair(gt, pred, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(DATA_RANGE**2 / mse)


def _gauss_1d() -> np.ndarray:
    """Return the 11-tap Gaussian of sigma 1.5 as OpenCV builds it (sums to 1), float64."""
    return cv2.getGaussianKernel(SSIM_WINDOW, SSIM_SIGMA, cv2.CV_64F).ravel()


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    """Return the mean SSIM over the valid region of two float64 (H, W) arrays on [0, 255]."""
    g = _gauss_1d()
    r = SSIM_WINDOW // 2

    def local_mean(a: np.ndarray) -> np.ndarray:
        # Valid region only: no window centred there touches the padding, so the border mode
        # (BasicSR's filter2D default, reflect-101) never enters the result.
        return cv2.sepFilter2D(a, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT_101)[r:-r, r:-r]

    mu_x, mu_y = local_mean(x), local_mean(y)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    mu_xy = mu_x * mu_y
    # Variances as E[x^2] - mu^2 in float64 (values up to 255^2: no loss at this precision).
    num = local_mean(x * y)
    num -= mu_xy
    num *= 2.0
    num += c2
    mu_xy *= 2.0
    mu_xy += c1
    num *= mu_xy  # (2 mu_x mu_y + C1) (2 sigma_xy + C2)
    mu_x *= mu_x
    mu_y *= mu_y
    den = local_mean(x * x)
    den += local_mean(y * y)
    den -= mu_x
    den -= mu_y
    den += c2  # sigma_x^2 + sigma_y^2 + C2
    mu_x += mu_y
    mu_x += c1  # mu_x^2 + mu_y^2 + C1
    den *= mu_x
    num /= den
    return float(num.mean())


def ssim(gt: Any, pred: Any, crop_border: int = 0, y_channel: bool = True) -> float:
    """Return the SSIM (Wang et al. 2004) in [-1, 1], BasicSR/MATLAB convention.

    11x11 Gaussian window (sigma 1.5), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, mean
    over the valid region (``H' - 10`` by ``W' - 10`` positions after cropping), float64.

    Args:
        gt: reference image (see :func:`psnr` for the accepted types).
        pred: the image to score, same height and width.
        crop_border: pixels removed from each side first (SR convention: the scale).
        y_channel: BT.601 Y if True; else the mean of the R, G and B channel SSIMs.

    Returns:
        SSIM, 1.0 for identical images.

    Raises:
        ConfigError: bad inputs, or fewer than 11x11 pixels left after cropping.

    >>> a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    >>> ssim(a, a)
    1.0
    """
    a, b = prepare_pair(gt, pred, crop_border, y_channel, min_size=SSIM_WINDOW)
    if a.ndim == 2:
        return _ssim_channel(a, b)
    return float(np.mean([_ssim_channel(np.ascontiguousarray(a[..., c]), np.ascontiguousarray(b[..., c]))
                          for c in range(3)]))


class _FullReference:
    """Shared state of the native full-reference metrics: the spec and the two options.

    Other keyword options (``device``, ...) are accepted and ignored so that the scorer can pass
    one option set to every metric; the native metrics run on the CPU in numpy/OpenCV.
    """

    _fn: Callable[..., float]  # the pure function, set by each subclass

    def __init__(self, spec: Any, crop_border: int = 0, y_channel: bool = True, **_: Any) -> None:
        self.spec = spec
        self.crop_border = _check_crop(crop_border)
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
