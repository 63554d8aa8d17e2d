"""NIQE (Mittal, Soundararajan and Bovik, IEEE SPL 2013) with the published pristine model.

The computation follows the original release (``computequality.m``), which MATLAB's ``niqe`` and
pyiqa's default ``niqe`` reproduce (DESIGN.md section 7):

1. Luminance: MATLAB ``rgb2gray`` weights (0.2989, 0.5870, 0.1140, unrounded: see
   ``eval.metrics.color.GRAY_WEIGHTS``) on [0, 255], rounded half up to integers as
   ``rgb2gray`` does for the uint8 images the published values were computed on (pyiqa rounds
   too, with the YIQ weights 0.299, 0.587, 0.114). Optional ``crop_border`` pixels are removed
   from every side, then the image is cut (bottom/right) to whole 96x96 blocks.
2. At each of two scales: MSCN coefficients ``(I - mu) / (sigma + 1)``, mu and sigma from the
   7x7 Gaussian window (sigma 7/6) with replicate borders; per block (96x96 at scale 1, 48x48 at
   scale 2) 18 features: an AGGD fit of the coefficients (alpha, mean of the two betas) and of
   the products with their neighbours along (0, 1), (1, 0), (1, 1), (1, -1) (circular shifts
   within the block, MATLAB ``circshift``), each giving (alpha, mean, beta_l, beta_r). The
   AGGD shape alpha is the grid point of 0.2:0.001:10 nearest the moment ratio.
3. The second scale is MATLAB ``imresize(I, 0.5)``: bicubic (a = -0.5) with antialiasing
   (the kernel stretched by 2), symmetric borders, rows first (:func:`imresize_half`).
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
from typing import Any

import cv2
import numpy as np
from scipy.special import gamma as gamma_fn

from degrade.ops.resize import cubic_kernel
from eval.metrics.color import GRAY_WEIGHTS, rgb_to_gray, to_float255
from ssr_core.errors import ConfigError

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


def _resize_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Return MATLAB imresize's (indices, weights), each (out_len, taps), for one dimension.

    Bicubic with antialiasing when shrinking: ``h(x) = scale * cubic(scale * x)`` over a kernel
    of width ``4 / scale``; output pixel j (1-based) samples the input at
    ``u = j / scale + 0.5 (1 - 1 / scale)`` (1-based); weights normalised to sum 1; indices
    outside the image are mirrored symmetrically (MATLAB's ``[1:n, n:-1:1]`` rule).
    """
    width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1, dtype=np.float64) / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    dist = u[:, None] - idx
    w = scale * cubic_kernel(scale * dist) if scale < 1 else cubic_kernel(dist)
    w /= w.sum(axis=1, keepdims=True)
    m = np.mod(idx - 1, 2 * in_len).astype(np.int64)  # 0-based, period 2n
    idx0 = np.where(m < in_len, m, 2 * in_len - 1 - m)
    return idx0, w


def imresize_half(img: np.ndarray) -> np.ndarray:
    """Halve an image as MATLAB ``imresize(img, 0.5)`` does (bicubic, antialiased), float64.

    Args:
        img: float ``(H, W)`` array (any scale; no clipping is done, as MATLAB for doubles).

    Returns:
        float64 ``(ceil(H / 2), ceil(W / 2))``; rows are resized first, then columns.

    >>> imresize_half(np.full((8, 6), 7.0)).round(12).tolist()[0]
    [7.0, 7.0, 7.0]
    """
    img = np.asarray(img, dtype=np.float64)
    if img.ndim != 2:
        raise ConfigError(f"imresize_half expects an (H, W) array, got {img.shape}")
    h, w = img.shape
    out = img
    for axis, n in ((0, h), (1, w)):
        idx, wt = _resize_weights(n, int(math.ceil(n * 0.5)), 0.5)
        if axis == 0:
            out = np.einsum("jk,jkw->jw", wt, out[idx])
        else:
            out = np.einsum("jk,hjk->hj", wt, out[:, idx])
    return out


def _blocks(img: np.ndarray, bh: int, bw: int) -> np.ndarray:
    """Return the (n_blocks, bh, bw) tiles of an image whose sides are multiples of the block."""
    h, w = img.shape
    return img.reshape(h // bh, bh, w // bw, bw).transpose(0, 2, 1, 3).reshape(-1, bh, bw)


def _aggd(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit an AGGD to each row of v (n, m): return alpha, beta_l, beta_r, each (n,).

    As ``estimateaggdparam.m``: left/right standard deviations of the negative/positive values,
    ``rhat = mean|v|^2 / mean v^2`` corrected by the asymmetry ``gammahat``, alpha = the grid
    point minimising ``(r(alpha) - rhatnorm)^2``. Empty sides give NaN (MATLAB mean of []).
    """
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
    hi = np.clip(np.searchsorted(_R_GAM, np.nan_to_num(rhatnorm, nan=-np.inf)), 1, len(_GAM) - 1)
    lower_wins = (_R_GAM[hi - 1] - rhatnorm) ** 2 <= (_R_GAM[hi] - rhatnorm) ** 2
    pos_idx = np.where(lower_wins | np.isnan(rhatnorm), hi - 1, hi)
    alpha = _GAM[pos_idx]
    ratio = np.sqrt(gamma_fn(1.0 / alpha) / gamma_fn(3.0 / alpha))
    return alpha, left_std * ratio, right_std * ratio


def _block_features(blocks: np.ndarray) -> np.ndarray:
    """Return the 18 NIQE features of each MSCN block: (n, bh, bw) -> (n, 18)."""
    n = blocks.shape[0]
    flat = blocks.reshape(n, -1)
    alpha, bl, br = _aggd(flat)
    feats = [alpha, (bl + br) / 2.0]
    for shift in _SHIFTS:
        pair = (blocks * np.roll(blocks, shift, axis=(1, 2))).reshape(n, -1)
        alpha, bl, br = _aggd(pair)
        mean = (br - bl) * (gamma_fn(2.0 / alpha) / gamma_fn(1.0 / alpha))
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def _mscn(img: np.ndarray, window_1d: np.ndarray) -> np.ndarray:
    """Return ``(I - mu) / (sigma + 1)`` with the 7x7 Gaussian, replicate borders, float64."""
    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, window_1d, window_1d, borderType=cv2.BORDER_REPLICATE)

    mu = blur(img)
    sigma = np.sqrt(np.abs(blur(img * img) - mu * mu))
    return (img - mu) / (sigma + 1.0)


def niqe_gray(gray: np.ndarray) -> float:
    """Return NIQE of a luminance image on [0, 255] (already rounded and cropped as wanted).

    Args:
        gray: float ``(H, W)``, H and W at least 96 (smaller parts than a block are dropped).

    Returns:
        NIQE (lower is better), dimensionless.

    >>> g = np.random.default_rng(0).integers(0, 256, (192, 192)).astype(float)
    >>> niqe_gray(g) > 10  # white noise is far from natural
    True
    """
    gray = np.asarray(gray, dtype=np.float64)
    if gray.ndim != 2:
        raise ConfigError(f"niqe_gray expects an (H, W) luminance array, got {gray.shape}")
    mu_p, cov_p, window, _ = pristine_model()
    # The vendored 7x7 window is an outer product; its row sums are the 1-D Gaussian.
    w1 = window.sum(axis=1)
    h, w = gray.shape
    nh, nw = h // BLOCK, w // BLOCK
    if nh * nw < 2:
        raise ConfigError(f"NIQE needs at least two {BLOCK}x{BLOCK} blocks, got an image of "
                          f"{h}x{w} (HxW) after cropping")
    img = gray[: nh * BLOCK, : nw * BLOCK]
    feats = []
    for scale in (1, 2):
        b = BLOCK // scale
        feats.append(_block_features(_blocks(_mscn(img, w1), b, b)))
        if scale == 1:
            img = imresize_half(img)
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


def niqe(img: Any, crop_border: int = 0) -> float:
    """Return NIQE (lower is better) of an RGB image with the published pristine model.

    Args:
        img: uint8 ``(H, W, 3)`` RGB, or float in [0, 1] (numpy ``(H, W, 3)``, torch
            ``(3, H, W)`` / ``(1, 3, H, W)``), see :func:`eval.metrics.color.to_float255`.
        crop_border: pixels removed from each side of the luminance before scoring (default 0,
            pyiqa's and MATLAB's default).

    Returns:
        NIQE, dimensionless; about 3-5 for natural photos, larger for distorted ones.

    Raises:
        ConfigError: bad input; fewer than two 96x96 blocks after cropping; a flat image.

    >>> rgb = np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)
    >>> niqe(rgb) > 10
    True
    """
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        raise ConfigError(f"crop_border must be an integer >= 0 (pixels), got {crop_border!r}")
    # MATLAB rgb2gray returns uint8 for uint8 input: the rounding is part of the reference.
    # MATLAB rounds half away from zero (np.round would round half to even); values are >= 0.
    gray = np.floor(rgb_to_gray(to_float255(img)) + 0.5)
    c = int(crop_border)
    if c:
        if min(gray.shape) <= 2 * c:
            raise ConfigError(f"crop_border {c} removes the whole {gray.shape[0]}x{gray.shape[1]} image")
        gray = gray[c:-c, c:-c]
    return niqe_gray(gray)


class NIQE:
    """NIQE metric object: ``NIQE(spec, crop_border=0)(pred) -> float`` (gt is ignored).

    Other keyword options (``device``, ...) are accepted and ignored so that the scorer can pass
    one option set to every metric; NIQE runs on the CPU in numpy/OpenCV.
    """

    def __init__(self, spec: Any, crop_border: int = 0, **_: Any) -> None:
        if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
            raise ConfigError(f"crop_border must be an integer >= 0 (pixels), got {crop_border!r}")
        self.spec = spec
        self.crop_border = int(crop_border)

    def __call__(self, pred: Any, gt: Any = None) -> float:
        """Score pred (no-reference: gt is accepted and ignored)."""
        return niqe(pred, crop_border=self.crop_border)

    def check(self) -> None:
        """Load the vendored pristine model (raises if the package data is missing)."""
        pristine_model()

    def conventions(self) -> dict[str, Any]:
        """Return what exactly is computed (recorded beside every score)."""
        return {
            "metric": self.spec.name,
            "implementation": "ssr-bench native (numpy/OpenCV), original NIQE release / MATLAB",
            "luminance": "MATLAB rgb2gray weights ({:.9f}, {:.9f}, {:.9f}) on [0, 255], "
                         "rounded half up to integers".format(*GRAY_WEIGHTS),
            "crop_border": self.crop_border,
            "block": f"{BLOCK}x{BLOCK}, no overlap, image cut to whole blocks",
            "mscn": "7x7 Gaussian sigma 7/6, replicate borders, (I - mu) / (sigma + 1)",
            "scales": "2; second = MATLAB imresize 0.5 bicubic antialiased",
            "model": f"{_MODEL_FILE} sha256 {pristine_model()[3]}",
        }
