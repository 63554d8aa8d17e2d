"""BSRGAN's degradation model (Zhang et al., ICCV 2021) as a pure function of drawn parameters.

Restated from the released ``degradation_bsrgan`` (BSRGAN / KAIR ``utils_blindsr.py``; the same
function ships as ``ldm/modules/image_degradation/bsrgan.py`` in latent-diffusion). It works as
theirs on float32 (H, W, 3) images in [0, 1] with OpenCV and scipy.ndimage; the parameters come
from :func:`degrade.second_order.draw_bsrgan`, the noise values from ``noise_rng``.

Kernels: ``aniso`` = ``anisotropic_Gaussian``: Sigma = V diag(l1, l2) V with V = [[c, s], [s,
-c]] (l1, l2 are VARIANCES), sampled on the centred integer grid and normalised (the normal pdf's
constant cancels); ``iso`` = MATLAB ``fspecial('gaussian', size, sigma)`` (sigma a STANDARD
DEVIATION; taps below eps * max zeroed). Blur = ``ndimage.convolve(mode='mirror')`` (numpy
'reflect' borders). Resizes are ``cv2.resize`` with INTER_LINEAR / CUBIC / AREA, or MATLAB's
antialiased bicubic for the optional first x1/2.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import torch
from scipy import ndimage
from scipy.linalg import orth

from ssr_core.errors import ConfigError

from .quantize import jpeg_roundtrip
from .resize import imresize_bicubic_down


def bsrgan_kernel(p: dict[str, Any]) -> np.ndarray:
    """Return the float64 blur kernel of a drawn ``{"kind": "aniso"|"iso", ...}`` entry."""
    size = p["size"]
    ax = np.arange(size) - (size - 1) / 2  # gm_blur_kernel's cx = x - size/2 - 0.5 + 1
    xx, yy = np.meshgrid(ax, ax)
    if p["kind"] == "aniso":
        c, s = math.cos(p["theta"]), math.sin(p["theta"])
        v = np.array([[c, s], [s, -c]])
        inv = np.linalg.inv(v @ np.diag([p["l1"], p["l2"]]) @ np.linalg.inv(v))
        q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
        k = np.exp(-0.5 * q)
    elif p["kind"] == "iso":
        k = np.exp(-(xx * xx + yy * yy) / (2 * p["sigma"] ** 2))
        k[k < np.finfo(float).eps * k.max()] = 0
    else:
        raise ConfigError(f"unknown BSRGAN kernel kind {p['kind']!r}")
    return k / k.sum()


def shift_pixel(k: np.ndarray, sf: int) -> np.ndarray:
    """BSRGAN's ``shift_pixel(k, sf)``: sample k bilinearly at (x + (sf-1)/2, y + (sf-1)/2), clipped.

    Theirs uses ``scipy.interpolate.interp2d`` (linear), removed from SciPy 1.14; bilinear
    interpolation on the grid with coordinates clipped to the kernel is the same function.
    """
    h, w = k.shape
    shift = (sf - 1) * 0.5
    y = np.clip(np.arange(h) + shift, 0, h - 1)
    x = np.clip(np.arange(w) + shift, 0, w - 1)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return ndimage.map_coordinates(k, [yy, xx], order=1, mode="nearest")


def _convolve(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``ndimage.convolve(img, k[..., None], mode='mirror')`` computed by OpenCV.

    A convolution is a correlation with the flipped kernel, scipy's 'mirror' is OpenCV's
    BORDER_REFLECT_101, and the anchor is the centre for odd kernels; cv2.filter2D switches to a
    DFT for large kernels (9 s -> ~1 s per DIV2K image), agreeing to float32 precision.
    """
    flipped = np.ascontiguousarray(k[::-1, ::-1]).astype(np.float32)
    return cv2.filter2D(img, -1, flipped, borderType=cv2.BORDER_REFLECT_101)


def _resize(img: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    return np.clip(cv2.resize(img, size, interpolation=interp), 0.0, 1.0)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    u8 = np.uint8((img.clip(0, 1) * 255.0).round())  # util.single2uint
    return jpeg_roundtrip(u8, quality).astype(np.float32) / 255.0


def _gaussian_noise(img: np.ndarray, n: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    h, w = img.shape[:2]
    if n["kind"] == "color":
        img = img + rng.normal(0, n["level"] / 255.0, img.shape).astype(np.float32)
    elif n["kind"] == "gray":
        img = img + rng.normal(0, n["level"] / 255.0, (h, w, 1)).astype(np.float32)
    else:  # correlated across channels: covariance |L^2 U^T D U|, L = noise_level2 / 255
        u = orth(np.array(n["A"]))
        cov = np.abs((n["level2"] / 255.0) ** 2 * (u.T @ np.diag(n["D"]) @ u))
        img = img + rng.multivariate_normal([0, 0, 0], cov, (h, w)).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def apply_bsrgan(hr: torch.Tensor, params: dict[str, Any], scale: int,
                 noise_rng: np.random.Generator) -> torch.Tensor:
    """Run BSRGAN's degradation on one (1, 3, H, W) HR image in [0, 1]; (1, 3, H/s, W/s) out."""
    if hr.ndim != 4 or hr.shape[0] != 1 or hr.shape[1] != 3:
        raise ConfigError(f"hr must be (1, 3, H, W), got {tuple(hr.shape)}")
    img = hr[0].permute(1, 2, 0).numpy().astype(np.float32)
    sf = scale
    d1 = params["down1"]
    if d1 is not None:
        if d1["method"] == "matlab":
            t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
            img = imresize_bicubic_down(t, 2)[0].numpy().transpose(1, 2, 0)
        else:
            img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=d1["interp"])
        img = np.clip(img, 0.0, 1.0).astype(np.float32)
        sf = 2
    a = b = 0
    for op in params["ops"]:
        kind = op["op"]
        if kind == "blur":
            img = _convolve(img, bsrgan_kernel(op["kernel"]))
        elif kind == "down2":
            a, b = img.shape[1], img.shape[0]
            if "sf1" in op:
                img = _resize(img, (int(1 / op["sf1"] * a), int(1 / op["sf1"] * b)), op["interp"])
            else:
                k = bsrgan_kernel({"kind": "iso", "size": 25, "sigma": op["sigma"]})
                k = shift_pixel(k, sf)
                img = np.clip(_convolve(img, k / k.sum())[0::sf, 0::sf, ...], 0.0, 1.0)
        elif kind == "down3":
            img = _resize(img, (int(1 / sf * a), int(1 / sf * b)), op["interp"])
        elif kind == "noise":
            img = _gaussian_noise(img, op, noise_rng)
        elif kind == "jpeg" and op["quality"] is not None:
            img = _jpeg(img, op["quality"])
    img = _jpeg(img, params["final_jpeg_quality"])
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].to(hr.dtype)
