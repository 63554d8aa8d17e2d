"""Real-ESRGAN's second-order degradation as a pure function of drawn parameters.

Restated from Real-ESRGAN's released code (xinntao/Real-ESRGAN: ``realesrgan_dataset.py`` draws
the kernels, ``realesrgan_model.py`` / ``realesrnet_model.py`` ``feed_data`` runs the pipeline,
BasicSR ``degradations.py`` the kernel and noise formulas, ``img_process_util`` ``filter2D``
and ``USMSharp``). The parameters are drawn elsewhere (:mod:`degrade.second_order`) from the
per-sample generator; everything here is deterministic given them and the ``noise_rng``.

Kernels (K x K, rows = y, columns = x offsets ``-K//2+1 .. K//2``, normalised to sum 1):
``iso`` / ``aniso`` ``exp(-q/2)``, ``generalized_*`` ``exp(-(q^beta)/2)``, ``plateau_*``
``1 / (q^beta + 1)`` with ``q = d^T Sigma^-1 d``, ``Sigma = R diag(sx^2, sy^2) R^T`` (sx, sy
standard deviations; iso uses sx for both), and ``sinc``: the circular low-pass
``w J1(w r) / (2 pi r)`` (``w^2 / (4 pi)`` at r = 0). Kernels smaller than 21 are zero-padded
to 21. Blur = BasicSR ``filter2D``: reflect padding + correlation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from ssr_core.errors import ConfigError

from .downsample import correlate_taps, mirror_indices
from .quantize import jpeg_roundtrip

PAD_TO = 21  # Real-ESRGAN pads every kernel to 21 x 21
_USM_RADIUS, _USM_WEIGHT, _USM_THRESHOLD = 51, 0.5, 10.0  # USMSharp(radius=50 -> 51, sigma=0)


def mixed_kernel(kind: str, size: int, sig_x: float, sig_y: float, theta: float,
                 beta: float = 1.0) -> np.ndarray:
    """Return BasicSR's ``kind`` kernel (float64, (size, size), sum 1); see the module docstring.

    >>> k = mixed_kernel("iso", 7, 1.0, 1.0, 0.0)
    >>> round(float(k.sum()), 12), k.shape
    (1.0, (7, 7))
    """
    if size % 2 == 0 or size < 1:
        raise ConfigError(f"kernel size must be odd and >= 1, got {size}")
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    if kind.endswith("iso") and not kind.endswith("aniso"):
        sig_y, theta = sig_x, 0.0
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    inv = np.linalg.inv(rot @ np.diag([sig_x**2, sig_y**2]) @ rot.T)
    q = inv[0, 0] * xx * xx + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy * yy
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind in ("generalized_iso", "generalized_aniso"):
        k = np.exp(-0.5 * np.power(q, beta))
    elif kind in ("plateau_iso", "plateau_aniso"):
        k = np.reciprocal(np.power(q, beta) + 1)
    else:
        raise ConfigError(f"unknown kernel kind {kind!r}")
    return k / k.sum()


def sinc_kernel(cutoff: float, size: int, pad_to: int = 0) -> np.ndarray:
    """Return BasicSR's ``circular_lowpass_kernel(cutoff, size, pad_to)`` in float64."""
    if size % 2 == 0:
        raise ConfigError(f"kernel size must be odd, got {size}")
    ax = np.arange(size) - (size - 1) / 2
    r = np.sqrt(ax[:, None] ** 2 + ax[None, :] ** 2)
    # scipy's J1 (Cephes, ~1e-16): torch.special.bessel_j1 is off by up to 6e-6 relative.
    j1 = special.j1(cutoff * r)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1 / (2 * np.pi * r)
    k[(size - 1) // 2, (size - 1) // 2] = cutoff**2 / (4 * np.pi)
    k = k / k.sum()
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k


def kernel_from_params(p: dict[str, Any]) -> np.ndarray:
    """Build a drawn kernel (``{"kind", "size", ...}``) padded to 21 x 21; identity for "pulse"."""
    if p["kind"] == "pulse":
        k = np.zeros((PAD_TO, PAD_TO))
        k[PAD_TO // 2, PAD_TO // 2] = 1.0
        return k
    if p["kind"] == "sinc":
        return sinc_kernel(p["omega_c"], p["size"], PAD_TO)
    k = mixed_kernel(p["kind"], p["size"], p["sig_x"], p["sig_y"], p["theta"], p.get("beta", 1.0))
    pad = (PAD_TO - p["size"]) // 2
    return np.pad(k, ((pad, pad), (pad, pad)))


def usm_sharpen(img: torch.Tensor) -> torch.Tensor:
    """BasicSR ``USMSharp()(img)``: radius 51 Gaussian (cv2 sigma 8), weight 0.5, threshold 10.

    (B, C, H, W) in [0, 1] -> same shape; H and W must exceed 25 (reflect padding).
    """
    g = np.exp(-((np.arange(_USM_RADIUS) - _USM_RADIUS // 2) ** 2) / (2 * 8.0**2))
    g = torch.from_numpy(g / g.sum()).to(img.dtype)  # cv2.getGaussianKernel(51, 0): sigma 8
    blur = _separable(img, g)
    residual = img - blur
    mask = (residual.abs() * 255 > _USM_THRESHOLD).to(img.dtype)
    soft = _separable(mask, g)
    sharp = (img + _USM_WEIGHT * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * img


def _separable(img: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Correlate (B, C, H, W) with the outer product g g^T, reflect borders, as two 1-D passes.

    The same sum as ``correlate_taps(img, outer(g, g))`` (up to summation order), K times fewer
    operations: USM's 51 x 51 window at DIV2K size is 42 GFLOP in 2-D.
    """
    b, c, h, w = img.shape
    r = g.numel() // 2
    rows = torch.from_numpy(mirror_indices(h, r, "reflect")).to(img.device)
    cols = torch.from_numpy(mirror_indices(w, r, "reflect")).to(img.device)
    x = img.index_select(2, rows).reshape(b * c, 1, h + 2 * r, w)
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    x = x.reshape(b, c, h, w).index_select(3, cols).reshape(b * c, 1, h, w + 2 * r)
    return F.conv2d(x, g.view(1, 1, 1, -1)).reshape(b, c, h, w)


def _resize(img: torch.Tensor, r: dict[str, Any]) -> torch.Tensor:
    if "size" in r:
        return F.interpolate(img, size=tuple(r["size"]), mode=r["mode"])
    return F.interpolate(img, scale_factor=r["scale"], mode=r["mode"])


def _noise(img: torch.Tensor, n: dict[str, Any], rng: np.random.Generator) -> torch.Tensor:
    _, c, h, w = img.shape
    if n["type"] == "gaussian":
        planes = 1 if n["gray"] else c
        noise = rng.standard_normal((planes, h, w)) * n["sigma_255"] / 255.0
        noise_t = torch.from_numpy(noise).to(img.dtype).expand(c, h, w)[None]
    else:  # poisson, on the image rounded to 8 bits; values scaled to 2^ceil(log2(#levels))
        src = img
        if n["gray"]:
            wts = torch.tensor([0.2989, 0.587, 0.114], dtype=img.dtype).view(1, 3, 1, 1)
            src = (img * wts).sum(1, keepdim=True)
        q = torch.clamp((src * 255.0).round(), 0, 255) / 255.0
        vals = 2.0 ** math.ceil(math.log2(len(torch.unique(q))))
        out = torch.from_numpy(rng.poisson(q.double().numpy() * vals) / vals).to(img.dtype)
        noise_t = ((out - q) * n["scale"]).expand(1, c, h, w)
    return (img + noise_t).clamp(0, 1)


def _jpeg(img: torch.Tensor, quality: float) -> torch.Tensor:
    # Real-ESRGAN's DiffJPEG takes a float quality; OpenCV's codec takes the rounded integer.
    rgb = np.clip(np.rint(img[0].permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
    out = jpeg_roundtrip(rgb, int(round(quality)))
    return torch.from_numpy(out).permute(2, 0, 1)[None].to(img.dtype) / 255.0


def apply_realesrgan(hr: torch.Tensor, params: dict[str, Any], scale: int,
                     noise_rng: np.random.Generator) -> torch.Tensor:
    """Run Real-ESRGAN's two degradation rounds on one (1, 3, H, W) HR image in [0, 1].

    Returns the (1, 3, H/s, W/s) LR before its final 8-bit rounding. ``noise_rng`` supplies the
    Gaussian/Poisson noise values, drawn in pipeline order after all parameters.
    """
    if hr.ndim != 4 or hr.shape[0] != 1 or hr.shape[1] != 3:
        raise ConfigError(f"hr must be (1, 3, H, W), got {tuple(hr.shape)}")
    h, w = hr.shape[-2:]
    out = usm_sharpen(hr) if params["usm"] else hr
    for r in params["rounds"]:
        if r["blur"] is not None:
            out = correlate_taps(out, torch.from_numpy(kernel_from_params(r["blur"])))
        out = _resize(out, r["resize"])
        out = _noise(out, r["noise"], noise_rng)
        if "jpeg_quality" in r:
            out = _jpeg(out.clamp(0, 1), r["jpeg_quality"])
    fin = params["final"]
    sinc = torch.from_numpy(kernel_from_params(fin["sinc"]))
    size = {"size": (h // scale, w // scale), "mode": fin["mode"]}
    if fin["order"] == "resize-sinc-jpeg":
        out = _jpeg(correlate_taps(_resize(out, size), sinc).clamp(0, 1), fin["jpeg_quality"])
    else:
        out = correlate_taps(_resize(_jpeg(out.clamp(0, 1), fin["jpeg_quality"]), size), sinc)
    return out.clamp(0, 1)
