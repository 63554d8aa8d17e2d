"""Full-reference quality math as the SR literature computes it: BT.601 Y, PSNR, SSIM.

Why here (DESIGN.md sections 2 and 7): nothing imports ``eval``, yet training validation must
report the same PSNR/SSIM as the paper tables. So the pure math has one owner, in the pure ops
layer; ``eval.metrics`` wraps it with registry metadata and ``ssr_models`` validates with it.

Conventions (BasicSR / MATLAB SR scripts):

- Inputs (:func:`to_float255`): uint8 HWC RGB as is, or float in [0, 1] times 255 *without*
  rounding (a network's float output is scored as it is; a uint8 image scores exactly as its
  float copy ``x / 255``). Everything is computed in float64.
- Channel: Y of BT.601 YCbCr from RGB on [0, 255], MATLAB ``rgb2ycbcr`` without rounding
  (``y_channel=True``, default), or the three RGB channels (PSNR over all values, SSIM the mean
  of the per-channel SSIMs).
- ``crop_border`` pixels are removed from every side first (the SR convention: the scale).
- PSNR: ``10 log10(255^2 / MSE)`` in dB; identical images give ``float('inf')`` (numpy API) or
  the 120 dB cap of :func:`batch_psnr` (so that batch means stay finite).
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window of sigma 1.5 (the outer product of
  ``cv2.getGaussianKernel(11, 1.5)``), ``C1 = (0.01 * 255)^2``, ``C2 = (0.03 * 255)^2``, population
  (biased) local variances, averaged over the *valid* region only: BasicSR filters with
  ``cv2.filter2D`` and crops ``[5:-5, 5:-5]``, so the map is 10 pixels smaller in each dimension.
  We filter with the separable form (two 11-tap passes instead of 121 taps), which computes the
  same sums up to float64 rounding (about 1e-12).

torch is not imported by this module (``ssr-eval`` scores numpy images without paying for it);
tensors are recognised when torch is already loaded, and :func:`batch_psnr` works on tensors.
"""

from __future__ import annotations

import math
import sys
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ssr_core.errors import ConfigError

if TYPE_CHECKING:
    import torch

# MATLAB rgb2ycbcr, Y row, for RGB in [0, 255]: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
Y_WEIGHTS_255: tuple[float, float, float] = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
_Y_WEIGHTS = np.array(Y_WEIGHTS_255) / 255.0

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2, DATA_RANGE = 0.01, 0.03, 255.0
#: batch_psnr's floor on the MSE of [0, 1] images: identical images score 120 dB, not inf.
BATCH_PSNR_MSE_FLOOR = 1e-12


def _torch_tensor_type() -> type | None:
    """Return ``torch.Tensor`` if torch is already imported, else None (never import it here)."""
    torch_mod = sys.modules.get("torch")
    return None if torch_mod is None else torch_mod.Tensor


def to_float255(img: Any) -> np.ndarray:
    """Return an RGB image as float64 ``(H, W, 3)`` on the 0-255 scale (no rounding).

    Args:
        img: one of
            - a uint8 numpy array ``(H, W, 3)``, RGB, values 0-255 (taken as they are);
            - a float numpy array ``(H, W, 3)``, RGB, values in [0, 1] (multiplied by 255);
            - a float torch tensor ``(3, H, W)`` or ``(1, 3, H, W)``, RGB, values in [0, 1]
              (multiplied by 255; any device, gradients are not kept).

    Returns:
        float64 array ``(H, W, 3)``, values in [0, 255].

    Raises:
        ConfigError: another type, dtype or shape, a batch of more than one image, an empty
            image, or float values outside [0, 1] (NaN included).

    >>> to_float255(np.full((2, 2, 3), 255, np.uint8)).max()
    np.float64(255.0)
    >>> float(to_float255(np.full((2, 2, 3), 0.5))[0, 0, 0])
    127.5
    """
    tensor_type = _torch_tensor_type()
    if tensor_type is not None and isinstance(img, tensor_type):
        if not img.is_floating_point():
            raise ConfigError(f"expected a float tensor in [0, 1], got dtype {img.dtype} "
                              "(pass uint8 images as numpy (H, W, 3) arrays)")
        shape = tuple(img.shape)
        if img.ndim == 4 and shape[0] == 1:
            img = img[0]
        if img.ndim != 3 or img.shape[0] != 3:
            raise ConfigError(f"expected a tensor of shape (3, H, W) or (1, 3, H, W), got {shape}")
        arr = img.detach().to("cpu").double().permute(1, 2, 0).numpy()
        return _scale_float(arr, f"tensor {shape}")
    if not isinstance(img, np.ndarray):
        raise ConfigError(f"expected a numpy array (H, W, 3) or a torch tensor (3, H, W), "
                          f"got {type(img).__name__}")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ConfigError(f"expected a numpy array of shape (H, W, 3) (RGB, channels last), "
                          f"got {img.shape}")
    if img.dtype == np.uint8:
        out = img.astype(np.float64)
    elif np.issubdtype(img.dtype, np.floating):
        out = _scale_float(img.astype(np.float64), f"array {img.shape}")
    else:
        raise ConfigError(f"expected dtype uint8 (0-255) or float (0-1), got {img.dtype}")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise ConfigError(f"expected a non-empty image, got shape {img.shape}")
    return out


def _scale_float(arr: np.ndarray, what: str) -> np.ndarray:
    """Check a float64 HWC array is in [0, 1] and return it times 255 (a new array)."""
    if arr.size == 0:
        raise ConfigError(f"expected a non-empty image, got {what}")
    lo, hi = float(arr.min()), float(arr.max())
    if not (0.0 <= lo and hi <= 1.0):  # also false for NaN
        raise ConfigError(f"expected float values in [0, 1], got {what} with range [{lo:g}, {hi:g}]")
    return arr * 255.0


def rgb_to_y(img255: np.ndarray) -> np.ndarray:
    """Return the BT.601 luma Y in [16, 235] of an RGB image on [0, 255], as MATLAB rgb2ycbcr.

    ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255``, in float64, not rounded (BasicSR's
    ``bgr2ycbcr(img, y_only=True)`` convention used by the SR literature's PSNR/SSIM).

    Args:
        img255: float ``(H, W, 3)`` RGB on [0, 255] (see :func:`to_float255`).

    Returns:
        float64 ``(H, W)`` on [16, 235].

    >>> rgb_to_y(np.array([[[255.0, 255.0, 255.0], [0.0, 0.0, 0.0]]])).round(6).tolist()
    [[235.0, 16.0]]
    """
    check_hw3(img255)
    return np.asarray(img255, dtype=np.float64) @ _Y_WEIGHTS + Y_OFFSET


def check_hw3(img: np.ndarray) -> None:
    """Raise ConfigError unless img is an ``(H, W, 3)`` array (RGB on [0, 255])."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", type(img).__name__)
        raise ConfigError(f"expected an (H, W, 3) RGB array on [0, 255], got {shape}")


def check_crop(crop_border: Any) -> int:
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
    crop = check_crop(crop_border)
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


def batch_psnr(gt: torch.Tensor, pred: torch.Tensor, crop_border: int = 0,
               y_channel: bool = True) -> torch.Tensor:
    """Return the per-image PSNR (B,) in dB of a batch, the conventions of :func:`psnr`.

    For training validation on the batch's device: float64 arithmetic on ``x * 255`` (so it
    agrees with :func:`psnr` on the same float images to ~1e-9 dB), no gradients kept. The MSE
    (on the [0, 1] scale) is floored at ``BATCH_PSNR_MSE_FLOOR`` so identical images give 120 dB
    rather than inf and batch means stay finite. Values are not clamped or range-checked here:
    callers clamp network outputs to [0, 1] first, as the saved images would be.

    Args:
        gt: (B, 3, H, W) reference, float in [0, 1].
        pred: (B, 3, H, W) images to score, float, same shape.
        crop_border: pixels removed from each side first (SR convention: the scale).
        y_channel: BT.601 Y (MATLAB rgb2ycbcr, unrounded) if True, else the RGB values.

    Returns:
        float64 tensor (B,) on the inputs' device, dB.

    Raises:
        ConfigError: shapes differ or are not (B, 3, H, W), or the crop leaves no pixel.

    >>> import torch
    >>> x = torch.zeros(1, 3, 4, 4)
    >>> batch_psnr(x, x + 1 / 255, y_channel=False).round(decimals=4).tolist()
    [48.1308]
    """
    crop = check_crop(crop_border)
    if gt.shape != pred.shape or gt.ndim != 4 or gt.shape[1] != 3:
        raise ConfigError(f"expected gt and pred of one shape (B, 3, H, W), got "
                          f"{tuple(gt.shape)} and {tuple(pred.shape)}")
    h, w = gt.shape[-2:]
    if min(h, w) - 2 * crop < 1:
        raise ConfigError(f"images {h}x{w} (HxW) with crop_border {crop} leave no pixel")
    a, b = gt.detach().double(), pred.detach().double()
    if crop:
        a, b = a[..., crop:-crop, crop:-crop], b[..., crop:-crop, crop:-crop]
    diff = a - b
    if y_channel:
        # Y(a) - Y(b) on the 0-255 scale: the offset cancels, the weights act on x * 255 / 255.
        weights = diff.new_tensor(Y_WEIGHTS_255).view(1, 3, 1, 1)
        diff = (diff * weights).sum(1, keepdim=True) / DATA_RANGE
    mse = diff.pow(2).flatten(1).mean(1)  # on the [0, 1] scale
    return -10.0 * mse.clamp_min(BATCH_PSNR_MSE_FLOOR).log10()
