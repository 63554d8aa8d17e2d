"""Input coercion and the luminance conversions of the native metrics (DESIGN.md section 7).

Every native metric first turns its input into one float64 ``(H, W, 3)`` RGB array on the 0-255
scale with :func:`to_float255`, then takes the luminance its reference implementation uses:

- PSNR and SSIM: :func:`rgb_to_y`, the Y of BT.601 YCbCr as MATLAB ``rgb2ycbcr`` computes it
  (BasicSR's ``bgr2ycbcr(..., y_only=True)``), on [0, 255] and without rounding.
- NIQE: :func:`rgb_to_gray`, MATLAB ``rgb2gray`` on [0, 255]: the weights its documentation
  prints as (0.2989, 0.5870, 0.1140), taken unrounded (see ``GRAY_WEIGHTS``).

Float inputs in [0, 1] are multiplied by 255 and *not* rounded: a network's float output is
scored as it is, a uint8 image scores exactly as its float copy ``x / 255`` does.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ssr_datasets.errors import ConfigError

# MATLAB rgb2ycbcr, Y row, for RGB in [0, 255]: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0
_Y_OFFSET = 16.0
# MATLAB rgb2gray: the first row of the inverse of the NTSC (YIQ -> RGB) matrix, which its
# documentation prints rounded as 0.2989, 0.5870, 0.1140. The unrounded values matter for NIQE
# after rounding to integers: with them the published NIQE of pyiqa's calibration image I03 is
# met within 0.007, with the 4-digit ones it is off by 0.17 (pyiqa uses YIQ 0.299, 0.587, 0.114).
_NTSC_TO_RGB = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
GRAY_WEIGHTS: tuple[float, float, float] = tuple(float(v) for v in np.linalg.inv(_NTSC_TO_RGB)[0])


def _torch_tensor_type() -> type | None:
    """Return ``torch.Tensor`` if torch is already imported, else None (never import it here)."""
    torch = sys.modules.get("torch")
    return None if torch is None else torch.Tensor


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
    _check_hw3(img255)
    return np.asarray(img255, dtype=np.float64) @ _Y_WEIGHTS + _Y_OFFSET


def rgb_to_gray(img255: np.ndarray) -> np.ndarray:
    """Return the MATLAB rgb2gray luminance ``0.2989 R + 0.5870 G + 0.1140 B`` on [0, 255].

    The weights are MATLAB's exact ones (``GRAY_WEIGHTS``: 0.298936..., 0.587043...,
    0.114021..., summing to 1), of which the formula above is the printed rounding.

    Args:
        img255: float ``(H, W, 3)`` RGB on [0, 255] (see :func:`to_float255`).

    Returns:
        float64 ``(H, W)``, not rounded (NIQE rounds it, as MATLAB does for uint8 images).

    >>> round(float(rgb_to_gray(np.full((1, 1, 3), 100.0))[0, 0]), 6)
    100.0
    """
    _check_hw3(img255)
    return np.asarray(img255, dtype=np.float64) @ np.array(GRAY_WEIGHTS)


def _check_hw3(img: np.ndarray) -> None:
    """Raise ConfigError unless img is an (H, W, 3) array."""
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", type(img).__name__)
        raise ConfigError(f"expected an (H, W, 3) RGB array on [0, 255], got {shape}")
