"""NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013) with the published pristine model.

The computation follows the original release (``computequality.m``), which MATLAB's ``niqe`` and
pyiqa's default ``niqe`` reproduce (DESIGN.md section 7). Two conventions (:data:`Convention`)
differ only in numerics that the result is sensitive to:

- ``"pyiqa"`` (the default; what diffusion-SR papers, SSR's Table 1 among them, report): the
  luminance, window, resize precision and shape grid as pyiqa computes them (below). Within
  4e-13 (relative) of pyiqa 0.1.16 on each of the 100 BSD100 images (``bench/niqe_vs_pyiqa.py``).
- ``"matlab"``: the published MATLAB values (``rgb2gray``; the window in float64). Within 0.015
  of the values IQA-PyTorch publishes for MATLAB on its calibration images.

Why they differ: in a flat (saturated) area, a window that sums to exactly 1 gives MSCN
coefficients of exactly 0, which neither side of the AGGD fit counts; pyiqa's float32 window sums
to 1 + 1.1e-8, which leaves coefficients of about -3e-6 at level 255, all of one sign, and they are
counted on that side: a block that is part flat gets a smaller beta and another alpha. NIQE moves by up
to 1.5% on BSD100 images with such blocks (5% on calibration image I19).

1. Luminance. pyiqa: ``round(255 * Y)`` with the YIQ Y of the float32 image in [0, 1], rounded
   half to even (:func:`eval.metrics.color.yiq_luma_pyiqa`). matlab: ``rgb2gray`` weights
   (0.2989, 0.5870, 0.1140, unrounded: see ``eval.metrics.color.GRAY_WEIGHTS``) on [0, 255],
   rounded half up to integers as ``rgb2gray`` does for uint8 images. Optional ``crop_border``
   pixels are removed from every side, then the image is cut (bottom/right) to whole 96x96 blocks.
2. At each of two scales: MSCN coefficients ``(I - mu) / (sigma + 1)``, mu and sigma from a 7x7
   Gaussian window (sigma 7/6) with replicate borders. pyiqa: MATLAB ``fspecial`` computed in
   float64, stored as float32 and applied in float64 (2-D), ``sigma = sqrt(|var| + eps)``;
   matlab: the vendored float64 window (separable). Per block (96x96 at scale 1, 48x48 at
   scale 2) 18 features: an AGGD fit of the coefficients (alpha, mean of the two betas) and of
   the products with their neighbours along (0, 1), (1, 0), (1, 1), (1, -1) (circular shifts
   within the block, MATLAB ``circshift``), each giving (alpha, mean, beta_l, beta_r). The
   AGGD shape alpha is the grid point of 0.2:0.001:10 nearest the moment ratio (pyiqa: its
   float32 grid, see :func:`_alpha_grid`).
3. The second scale is MATLAB ``imresize(I, 0.5)``: bicubic (a = -0.5) with antialiasing
   (the kernel stretched by 2), symmetric borders, rows first (:func:`imresize_half`); pyiqa:
   of ``I / 255`` in float32, times 255 (9e-5 of the score on BSD100 image 2 if done in float64);
   matlab: in float64.
4. The 36 features of all blocks give mu (``nanmean``) and the covariance of the rows without a
   NaN (``nancov``, N - 1 normalisation); the score is
   ``sqrt((mu_p - mu)^T pinv((cov_p + cov) / 2) (mu_p - mu))``.

A block without negative or without positive coefficients (a flat block) has NaN features; as in
MATLAB, its alpha is then the first grid point (0.2) and still enters the mean. An image with
fewer than two NaN-free blocks has no covariance and raises ConfigError.

Block features are computed for all blocks at once (a (blocks, 96, 96) view), and the alpha
search uses the monotonicity of the moment ratio (a binary search instead of 9801 comparisons).
"""
from __future__ import annotations

import functools
import hashlib
import io
import math
from importlib import resources
from typing import Any, Literal, get_args

import cv2
import numpy as np
from scipy.special import gamma as gamma_fn

from degrade.ops.resize import cubic_kernel
from eval.metrics.color import GRAY_WEIGHTS, rgb_to_gray, to_float255, yiq_luma_pyiqa
from ssr_core.errors import ConfigError

Convention = Literal["pyiqa", "matlab"]
CONVENTIONS: tuple[str, ...] = get_args(Convention)
BLOCK = 96
_MODEL_FILE = "niqe_pris_params.npz"
_GAM = np.arange(0.2, 10.001, 0.001)  # MATLAB 0.2:0.001:10 (9801 points)
# r(gamma) = Gamma(2/g)^2 / (Gamma(1/g) Gamma(3/g)): strictly increasing on the grid.
_R_GAM = gamma_fn(2.0 / _GAM) ** 2 / (gamma_fn(1.0 / _GAM) * gamma_fn(3.0 / _GAM))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Return the vendored pristine model: mu (36,), cov (36, 36), window (7, 7), file sha256."""
    raw = resources.files("eval.metrics").joinpath("data", _MODEL_FILE).read_bytes()
    with np.load(io.BytesIO(raw)) as d:
        mu = d["mu_pris_param"].astype(np.float64).ravel()
        cov = d["cov_pris_param"].astype(np.float64)
        window = d["gaussian_window"].astype(np.float64)
    return mu, cov, window, hashlib.sha256(raw).hexdigest()


def _resize_weights(in_len: int, out_len: int, scale: float,
                    dtype: type[np.floating] = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """Return MATLAB imresize's (indices, weights), each (out_len, taps), for one dimension.

    Bicubic with antialiasing when shrinking: ``h(x) = scale * cubic(scale * x)`` over a kernel
    of width ``4 / scale``; output pixel j (1-based) samples the input at
    ``u = j / scale + 0.5 (1 - 1 / scale)`` (1-based); weights normalised to sum 1; indices
    outside the image are mirrored symmetrically (MATLAB's ``[1:n, n:-1:1]`` rule). Positions and
    distances are exact in either ``dtype``; the cubic and the normalisation round in it.
    """
    width = 4.0 / scale if scale < 1 else 4.0
    u = (np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)).astype(dtype)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps, dtype=dtype)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = dtype(scale) * cubic_kernel(dtype(scale) * dist) if scale < 1 else cubic_kernel(dist)
    w /= w.sum(axis=1, keepdims=True)
    m = np.mod(idx - 1, 2 * in_len).astype(np.int64)  # 0-based, period 2n
    idx0 = np.where(m < in_len, m, 2 * in_len - 1 - m)
    return idx0, w


def imresize_half(img: np.ndarray, dtype: type[np.floating] = np.float64) -> np.ndarray:
    """Halve an image as MATLAB ``imresize(img, 0.5)`` does (bicubic, antialiased).

    Args:
        img: float ``(H, W)`` array (any scale; no clipping is done, as MATLAB for doubles).
        dtype: the precision of the weights and sums: float64 (MATLAB), or float32 (pyiqa's
            ``imresize`` casts to float32 whatever it is given).

    Returns:
        float64 ``(ceil(H / 2), ceil(W / 2))`` (computed in ``dtype``); rows first, then columns.

    >>> imresize_half(np.full((8, 6), 7.0)).round(12).tolist()[0]
    [7.0, 7.0, 7.0]
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise ConfigError(f"imresize_half expects an (H, W) array, got {img.shape}")
    h, w = img.shape
    out = img.astype(dtype)
    for axis, n in ((0, h), (1, w)):
        idx, wt = _resize_weights(n, int(math.ceil(n * 0.5)), 0.5, dtype)
        if axis == 0:
            out = np.einsum("jk,jkw->jw", wt, out[idx])
        else:
            out = np.einsum("jk,hjk->hj", wt, out[:, idx])
    return out.astype(np.float64)


def _blocks(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Return the (n_blocks, bh, bw) tiles of an image whose sides are multiples of the block."""
    h, w = img.shape
    return img.reshape(h // bh, bh, w // bw, bw).transpose(0, 2, 1, 3).reshape(-1, bh, bw)


def _aggd(v: np.ndarray, grid: tuple[np.ndarray, np.ndarray] = (_GAM, _R_GAM)
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an AGGD to each row of v (n, m): return alpha, beta_l, beta_r, each (n,).

    As ``estimateaggdparam.m``: left/right standard deviations of the negative/positive values,
    ``rhat = mean|v|^2 / mean v^2`` corrected by the asymmetry ``gammahat``, alpha = the grid
    point minimising ``(r(alpha) - rhatnorm)^2``. Empty sides give NaN (MATLAB mean of []).
    """
    gam, r_gam = grid
    sq = v * v
    neg, pos = v < 0, v > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt((sq * neg).sum(1) / neg.sum(1))
        right_std = np.sqrt((sq * pos).sum(1) / pos.sum(1))
        gammahat = left_std / right_std
        rhat = np.abs(v).mean(1) ** 2 / sq.mean(1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
    # argmin over a strictly increasing grid = the nearer of the two neighbours of rhatnorm;
    # ties go to the lower index (argmin's first minimum); NaN gives index 0 like MATLAB's min.
    hi = np.clip(np.searchsorted(r_gam, np.nan_to_num(rhatnorm, nan=-np.inf)), 1, len(gam) - 1)
    lower_wins = (r_gam[hi - 1] - rhatnorm) ** 2 <= (r_gam[hi] - rhatnorm) ** 2
    pos_idx = np.where(lower_wins | np.isnan(rhatnorm), hi - 1, hi)
    alpha = gam[pos_idx]
    ratio = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


@functools.lru_cache(maxsize=2)
def _alpha_grid(convention: Convention) -> tuple[np.ndarray, np.ndarray]:
    """Return the AGGD shape grid 0.2:0.001:10 and its moment ratios r(alpha), both (9801,).

    matlab: the float64 grid. pyiqa: its float32 grid, taken from ``torch.arange`` itself as
    pyiqa builds it: torch's stepping gives other float32 values than ``float32(0.2 + 0.001 i)``
    in about half of the points, and such a 1e-7 shift decides a near tie of the fit on BSD100
    image 18 (2e-4 of its score).
    """
    if convention == "matlab":
        return _GAM, _R_GAM
    import torch

    gam = torch.arange(0.2, 10 + 0.001, 0.001, dtype=torch.float32).double().numpy()
    return gam, gamma_fn(2.0 / gam) ** 2 / (gamma_fn(1.0 / gam) * gamma_fn(3.0 / gam))


def _block_features(blocks: np.ndarray, convention: Convention = "matlab") -> np.ndarray:
    """Return the 18 NIQE features of each MSCN block: (n, bh, bw) -> (n, 18)."""
    grid = _alpha_grid(convention)
    n = blocks.shape[0]
    flat = blocks.reshape(n, -1)
    alpha, bl, br = _aggd(flat, grid)
    feats = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        pair = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(n, -1)
        alpha, bl, br = _aggd(pair, grid)
        mean = (br - bl) * (gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha))
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def pyiqa_window() -> np.ndarray:
    """Return pyiqa's 7x7 Gaussian window (sigma 7/6) as float64 values of its float32 copy.

    MATLAB ``fspecial('gaussian', 7, 7/6)`` in float64 (taps below ``eps * max`` zeroed, then
    normalised), stored as float32 (``pyiqa.matlab_utils.fspecial``) and cast back to float64 by
    the filtering: its sum is 1 only to float32 precision, which is what leaves the small MSCN
    coefficients of flat areas (see the module docstring).
    """
    y, x = np.ogrid[-3.0:4.0, -3.0:4.0]
    h = np.exp(-(x * x + y * y) / (2.0 * (7.0 / 6.0) ** 2))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    h /= h.sum()
    return h.astype(np.float32).astype(np.float64)


def _mscn(img: np.ndarray, convention: Convention) -> np.ndarray:
    """Return ``(I - mu) / (sigma + 1)`` with the 7x7 Gaussian, replicate borders, float64."""
    if convention == "pyiqa":
        window = pyiqa_window()  # symmetric: correlation = convolution

        def blur(a: np.ndarray) -> np.ndarray:
            return cv2.filter2D(a, cv2.CV_64F, window, borderType=cv2.BORDER_REPLICATE)

        eps = np.finfo(np.float64).eps  # pyiqa's safe_sqrt
    else:
        # The vendored 7x7 window is an outer product; its row sums are the 1-D Gaussian.
        w1 = pristine_model()[2].sum(axis=1)

        def blur(a: np.ndarray) -> np.ndarray:
            return cv2.sepFilter2D(a, cv2.CV_64F, w1, w1, borderType=cv2.BORDER_REPLICATE)

        eps = 0.0
    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu) + eps)
    return (img - mu) / (sigma + 1.0)


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ConfigError(f"unknown NIQE convention {convention!r}; choose one of: {', '.join(CONVENTIONS)}")


def niqe_gray(gray: np.ndarray, convention: Convention = "pyiqa") -> float:
    """Return NIQE of a luminance image on [0, 255] (already rounded and cropped as wanted).

    Args:
        gray: float ``(H, W)``, H and W at least 96 (smaller parts than a block are dropped).
        convention: the window of step 2 (see the module docstring).

    Returns:
        NIQE (lower is better), dimensionless.

    >>> g = np.random.default_rng(0).integers(0, 256, (192, 192)).astype(float)
    >>> niqe_gray(g) > 10  # white noise is far from natural
    True
    """
    _check_convention(convention)
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2:
        raise ConfigError(f"niqe_gray expects an (H, W) luminance array, got {gray.shape}")
    mu_p, cov_p, _, _ = pristine_model()
    h, w = gray.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ConfigError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got an image of "
                          f"{h}x{w} (HxW) after cropping")
    img = gray[: nh * BLOCK, : nw * BLOCK]
    feats = []
    for scale in (1, 2):
        b = BLOCK // scale
        feats.append(_block_features(_blocks(_mscn(img, convention), b, b), convention))
        if scale == 1 and convention == "matlab":
            img = imresize_half(img)
        elif scale == 1:  # pyiqa resizes I / 255 in float32
            img = imresize_half(img / 255.0, np.float32) * 255.0
    dist = np.concatenate(feats, axis=1)  # (blocks, 36)
    complete = dist[~np.isnan(dist).any(axis=1)]  # MATLAB nancov: rows without NaN
    if complete.shape[0] < 2:
        raise ConfigError(f"NIQE is undefined for this image: only {complete.shape[0]} of its "
                          f"{dist.shape[0]} {BLOCK}x{BLOCK} blocks have finite features "
                          "(a flat or nearly flat image)")
    mu = np.nanmean(dist, axis=0)  # MATLAB nanmean: per feature (every column has >= 2 values)
    cov = np.cov(complete, rowvar=False)
    d = mu_p - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2.0) @ d))


def niqe(img: Any, crop_border: int = 0, convention: Convention = "pyiqa") -> float:
    """Return NIQE (lower is better) of an RGB image with the published pristine model.

    Args:
        img: uint8 ``(H, W, 3)`` RGB, or float in [0, 1] (numpy ``(H, W, 3)``, torch
            ``(3, H, W)`` / ``(1, 3, H, W)``), see :func:`eval.metrics.color.to_float255`.
        crop_border: pixels removed from each side of the luminance before scoring (default 0,
            pyiqa's and MATLAB's default).
        convention: ``"pyiqa"`` (default) or ``"matlab"``: luminance and window (module docstring).

    Returns:
        NIQE, dimensionless; about 3-5 for natural photos, larger for distorted ones.

    Raises:
        ConfigError: bad input or convention; fewer than two 96x96 blocks after cropping; a flat
            image.

    >>> rgb = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    >>> niqe(rgb) > 10
    True
    """
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ConfigError(f"crop_border must be an integer >= 0 (pixels), got {crop_border!r}")
    _check_convention(convention)
    if convention == "pyiqa":
        gray = yiq_luma_pyiqa(to_float255(img))
    else:
        # MATLAB rgb2gray returns uint8 for uint8 input: the rounding is part of the reference.
        # MATLAB rounds half away from zero (np.round would round half to even); values are >= 0.
        gray = np.floor(rgb_to_gray(to_float255(img)) + 0.5)
    c = int(crop_border)
    if c:
        if min(gray.shape) <= 2 * c:
            raise ConfigError(f"crop_border {c} removes the whole {gray.shape[0]}x{gray.shape[1]} image")
        gray = gray[c:-c, c:-c]
    return niqe_gray(gray, convention)


class NIQE:
    """NIQE metric object: ``NIQE(spec, crop_border=0, convention="pyiqa")(pred) -> float``.

    gt is ignored (no-reference).

    Other keyword options (``device``, ...) are accepted and ignored so that the scorer can pass
    one option set to every metric; NIQE runs on the CPU in numpy/OpenCV.
    """

    def __init__(self, spec: Any, crop_border: int = 0, convention: Convention = "pyiqa",
                 **_: Any) -> None:
        if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
            raise ConfigError(f"crop_border must be an integer >= 0 (pixels), got {crop_border!r}")
        _check_convention(convention)
        self.spec = spec
        self.crop_border = int(crop_border)
        self.convention = convention

    def __call__(self, pred: Any, gt: Any = None) -> float:
        """Score pred (no-reference: gt is accepted and ignored)."""
        return niqe(pred, crop_border=self.crop_border, convention=self.convention)

    def check(self) -> None:
        """Load the vendored pristine model (raises if the package data is missing)."""
        pristine_model()

    def conventions(self) -> dict[str, Any]:
        """Return what exactly is computed (recorded beside every score)."""
        pyiqa = self.convention == "pyiqa"
        luminance = ("Y of YIQ (0.299, 0.587, 0.114) of the float32 image in [0, 1], x 255 in "
                     "float32, rounded half to even (pyiqa)" if pyiqa else
                     "MATLAB rgb2gray weights ({:.9f}, {:.9f}, {:.9f}) on [0, 255], "
                     "rounded half up to integers".format(*GRAY_WEIGHTS))
        window = ("fspecial 7x7 sigma 7/6 stored as float32 (pyiqa), 2-D, sigma = sqrt(|var| + eps)"
                  if pyiqa else "7x7 Gaussian sigma 7/6 in float64 (separable)")
        return {
            "metric": self.spec.name,
            "implementation": "ssr-bench native (numpy/OpenCV), original NIQE release",
            "convention": self.convention,
            "luminance": luminance,
            "crop_border": self.crop_border,
            "block": f"{BLOCK}x{BLOCK}, no overlap, image cut to whole blocks",
            "mscn": f"{window}, replicate borders, (I - mu) / (sigma + 1)",
            "scales": "2; second = MATLAB imresize 0.5 bicubic antialiased (float64)",
            "model": f"{_MODEL_FILE} sha256 {pristine_model()[3]}",
        }
