"""Independent, slow references for the tests. Never imported by the package."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np


def bivariate_gaussian_basicsr(kernel_size: int, sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """BasicSR's ``bivariate_Gaussian(..., isotropic=False)`` (degradations.py), restated in float64."""
    d_matrix = np.array([[sig_x**2, 0.0], [0.0, sig_y**2]])
    u = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sigma = u @ d_matrix @ u.T
    ax = np.arange(-kernel_size // 2 + 1.0, kernel_size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    xy = np.stack([xx, yy], axis=-1)
    k = np.exp(-0.5 * np.sum(np.dot(xy, np.linalg.inv(sigma)) * xy, axis=2))
    return k / k.sum()


def gaussian_kernel_direct(s1: float, s2: float, theta: float, kernel_size: int,
                           delta: float) -> np.ndarray:
    """DESIGN.md section 3's kernel, tap by tap in float64: rows = row offset a, cols = column b."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T)
    r = kernel_size // 2
    k = np.empty((kernel_size, kernel_size))
    for ia, a in enumerate(range(-r, r + 1)):
        for ib, b in enumerate(range(-r, r + 1)):
            d = np.array([b - delta, a - delta])
            k[ia, ib] = math.exp(-0.5 * d @ inv @ d)
    return k / k.sum()


def direct_degradation(hr: np.ndarray, field: np.ndarray, scale: int, kernel_size: int,
                       delta: float) -> np.ndarray:
    """Eq. 1 literally: per LR pixel, build its kernel and sum over the reflect-padded window.

    hr: (C, H, W) float64; field: (3, H/s, W/s). Returns (C, H/s, W/s) float64.
    """
    c, h_hr, w_hr = hr.shape
    r = kernel_size // 2
    pad = np.pad(hr, ((0, 0), (r, r), (r, r)), mode="reflect")
    h, w = h_hr // scale, w_hr // scale
    out = np.zeros((c, h, w))
    offs = np.arange(-r, r + 1, dtype=np.float64)
    for i in range(h):
        for j in range(w):
            s1, s2, th = (float(v) for v in field[:, i, j])
            rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
            inv = np.linalg.inv(rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T)
            k = np.empty((kernel_size, kernel_size))
            for ia, a in enumerate(offs):
                for ib, b in enumerate(offs):
                    d = np.array([b - delta, a - delta])
                    k[ia, ib] = math.exp(-0.5 * d @ inv @ d)
            k /= k.sum()
            ci, cj = scale * i + r, scale * j + r
            window = pad[:, ci - r:ci + r + 1, cj - r:cj + r + 1]
            out[:, i, j] = (window * k).sum(axis=(1, 2))
    return out


def gaussian_outside_box_scipy(s1: float, s2: float, theta: float, lo: float, hi: float) -> float:
    """Mass of N(0, R diag(s1^2, s2^2) R^T) outside the box [lo, hi]^2, by scipy's CDF.

    The box probability is the inclusion-exclusion of four CDF values (Genz's algorithm, tolerance
    1e-10), independent of the package's Gauss-Legendre quadrature.
    """
    from scipy.stats import multivariate_normal

    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    cov = rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T

    def cdf(x: float, y: float) -> float:
        return float(multivariate_normal.cdf(np.array([x, y]), mean=np.zeros(2), cov=cov,
                                             abseps=1e-10, releps=1e-10))

    inside = cdf(hi, hi) - cdf(lo, hi) - cdf(hi, lo) + cdf(lo, lo)
    return 1.0 - inside


def lattice_outside_window(s1: float, s2: float, theta: float, kernel_size: int, delta: float,
                           half_extent: int = 80) -> float:
    """Share of the sampled Gaussian's lattice sum (taps d = (b - delta, a - delta)) outside K x K."""
    r = kernel_size // 2
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T)
    ax = np.arange(-half_extent, half_extent + 1, dtype=np.float64)
    aa, bb = np.meshgrid(ax, ax, indexing="ij")
    dx, dy = bb - delta, aa - delta
    g = np.exp(-0.5 * (inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy))
    inside = (np.abs(aa) <= r) & (np.abs(bb) <= r)
    return float(g[~inside].sum() / g.sum())


def keys_cubic(x):  # noqa: ANN001, ANN201 - a float, numpy array or torch tensor
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize's ``cubic``), elementwise.

    1.5|x|^3 - 2.5|x|^2 + 1 for |x| <= 1, -0.5|x|^3 + 2.5|x|^2 - 4|x| + 2 for 1 < |x| <= 2, else 0.
    """
    a = abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def imresize_bicubic_matlab(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for upscaling, one output pixel at a time.

    Restated from MATLAB's imresize.m (contributions / cubic / symmetric ``aux`` indexing) as a
    direct 2-D sum: out(x, y) = sum_ij k(u - i) k(v - j) img(aux(i), aux(j)) / sum_ij k k, over
    the six candidate taps MATLAB considers (``floor(u - 2) + 0..5``, 1-based), with
    u = x / s + 0.5 (1 - 1 / s). img: (H, W) float64. Returns (s*H, s*W) float64.
    """

    def contributions(n_in: int, n_out: int) -> list[list[tuple[int, float]]]:
        aux = list(range(1, n_in + 1)) + list(range(n_in, 0, -1))  # MATLAB's symmetric rule
        rows = []
        for x in range(1, n_out + 1):
            u = x / scale + 0.5 * (1 - 1 / scale)
            left = math.floor(u - 2)
            taps = [(aux[(i - 1) % len(aux)] - 1, keys_cubic(u - i)) for i in range(left, left + 6)]
            rows.append(taps)
        return rows

    h, w = img.shape
    rows, cols = contributions(h, scale * h), contributions(w, scale * w)
    out = np.zeros((scale * h, scale * w))
    for x, rtaps in enumerate(rows):
        for y, ctaps in enumerate(cols):
            num = den = 0.0
            for i, wi in rtaps:
                for j, wj in ctaps:
                    num += wi * wj * float(img[i, j])
                    den += wi * wj
            out[x, y] = num / den
    return out


def y_reference(rgb: np.ndarray) -> np.ndarray:
    """MATLAB rgb2ycbcr Y on [0, 255] without rounding, written out channel by channel."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def ssim_skimage_valid(x: np.ndarray, y: np.ndarray) -> float:
    """scikit-image's SSIM map with BasicSR's options, averaged over the valid region only."""
    from skimage.metrics import structural_similarity

    _, smap = structural_similarity(x, y, win_size=11, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, data_range=255, full=True)
    return float(smap[5:-5, 5:-5].mean())


def psnr_direct(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB on the 0-255 scale from its definition, 10 log10(255^2 / MSE), float64."""
    return 10.0 * math.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2))


def ssim_direct(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. 2004 / BasicSR: mean over every full 11x11 window, Gaussian sigma 1.5, slow loop."""
    ax = np.arange(-5, 6, dtype=np.float64)
    g = np.exp(-(ax**2) / (2 * 1.5**2))
    win = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            mx, my = (win * px).sum(), (win * py).sum()
            vx, vy = (win * (px - mx) ** 2).sum(), (win * (py - my) ** 2).sum()
            cxy = (win * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def imresize_bicubic_down_matlab(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` (antialiasing on), one output pixel at a time.

    Restated from imresize.m's ``contributions`` for a scale below 1: the kernel is
    ``h(x) = f cubic(f x)`` with f = 1/scale, the window ``4 / f`` wide, ``u = x / f + 0.5 (1 -
    1 / f)``, taps ``floor(u - width / 2) + 0..P-1`` with P = ceil(width) + 2, weights normalised
    per output, symmetric (edge-repeating) borders. Written as a direct 2-D sum with exact
    fractions for u (1/f = scale is an integer). img: (H, W) float64, H and W multiples of scale.
    """
    f = 1.0 / scale

    def contributions(n_in: int, n_out: int) -> list[list[tuple[int, float]]]:
        aux = list(range(1, n_in + 1)) + list(range(n_in, 0, -1))
        width = 4.0 * scale
        rows = []
        for x in range(1, n_out + 1):
            u = x * scale + 0.5 * (1 - scale)
            left = math.floor(u - width / 2)
            taps = [(aux[(i - 1) % len(aux)] - 1, f * keys_cubic(f * (u - i)))
                    for i in range(left, left + math.ceil(width) + 2)]
            total = sum(w for _, w in taps)
            rows.append([(i, w / total) for i, w in taps])
        return rows

    h, w = img.shape
    rows, cols = contributions(h, h // scale), contributions(w, w // scale)
    out = np.zeros((h // scale, w // scale))
    for x, rtaps in enumerate(rows):
        for y, ctaps in enumerate(cols):
            out[x, y] = sum(wi * wj * float(img[i, j]) for i, wi in rtaps for j, wj in ctaps)
    return out


# ---------------------------------------------------------------- published protocol formulas


def ikc_isotropic_kernel(sigma: float, size: int = 21) -> np.ndarray:
    """IKC/DAN/DCLS ``stable_batch_kernel``: exp(-(x^2 + y^2) / (2 sigma^2)) on x, y = -R..R, /sum."""
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    k = np.exp(-(xx**2 + yy**2) / (2.0 * sigma**2))
    return k / k.sum()


def dcls_disturbed_kernel(sig_x: float, sig_y: float, radians: float, disturb: np.ndarray,
                          size: int = 31) -> np.ndarray:
    """DCLS ``random_batch_kernel`` (rate_iso 0, random_disturb): k + disturb * k, /sum.

    Sigma = U diag(sig_x^2, sig_y^2) U^T, U = [[cos, -sin], [sin, cos]], on the (xx, yy) grid of
    ``meshgrid(ax, ax)`` (xx = column offset); ``disturb`` is their U(0, 0.25) draw per tap.
    """
    d = np.diag([sig_x**2, sig_y**2])
    u = np.array([[math.cos(radians), -math.sin(radians)], [math.sin(radians), math.cos(radians)]])
    inv = np.linalg.inv(u @ d @ u.T)
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    xy = np.stack([xx, yy], -1)
    k = np.exp(-0.5 * np.einsum("abi,ij,abj->ab", xy, inv, xy))
    k = k + disturb * k
    return k / k.sum()


def blindsr_generator_kernel(lambda_1: float, lambda_2: float, theta: float, noise: np.ndarray,
                             size: int = 11, sf: int = 2) -> np.ndarray:
    """BlindSR_dataset_generator ``gen_kernel`` without its kernel_shift step.

    LAMBDA = diag(l1, l2) is the covariance's eigenvalues; MU = K // 2 + 0.5 (sf - K % 2) in
    index coordinates; Z = (X, Y) from ``meshgrid(range(K), range(K))``; raw = exp(-0.5 (Z - MU)^T
    Sigma^-1 (Z - MU)) (1 + noise), normalised.
    """
    q = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(q @ np.diag([lambda_1, lambda_2]) @ q.T)
    mu = size // 2 + 0.5 * (sf - size % 2)
    x, y = np.meshgrid(range(size), range(size))
    zz = np.stack([x - mu, y - mu], -1)
    raw = np.exp(-0.5 * np.einsum("abi,ij,abj->ab", zz, inv, zz)) * (1 + noise)
    return raw / raw.sum()


def correlate_reflect_full(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlate (C, H, W) float64 with a K x K kernel at every pixel, numpy 'reflect' borders.

    The torch ``F.pad(mode='reflect')`` + ``conv2d`` of IKC/DAN/DCLS's BatchBlur, as a loop over taps.
    """
    r = kernel.shape[0] // 2
    pad = np.pad(img, ((0, 0), (r, r), (r, r)), mode="reflect")
    out = np.zeros_like(img, dtype=np.float64)
    h, w = img.shape[1:]
    for a in range(kernel.shape[0]):
        for b in range(kernel.shape[1]):
            out += kernel[a, b] * pad[:, a:a + h, b:b + w]
    return out


def basicsr_mixed_kernel(kind: str, size: int, sig_x: float, sig_y: float, theta: float,
                         beta: float) -> np.ndarray:
    """BasicSR ``bivariate_Gaussian`` / ``_generalized_Gaussian`` / ``_plateau`` restated.

    isotropic kinds use ``[[sig_x^2, 0], [0, sig_x^2]]``; the others ``sigma_matrix2``;
    ``np.dot(grid, inv) * grid`` summed over the last axis is the quadratic form.
    """
    ax = np.arange(-size // 2 + 1.0, size // 2 + 1.0)
    xx, yy = np.meshgrid(ax, ax)
    grid = np.stack([xx, yy], -1)
    if kind in ("iso", "generalized_iso", "plateau_iso"):
        sigma = np.array([[sig_x**2, 0.0], [0.0, sig_x**2]])
    else:
        u = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        sigma = u @ np.diag([sig_x**2, sig_y**2]) @ u.T
    q = np.sum(np.dot(grid, np.linalg.inv(sigma)) * grid, 2)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * np.power(q, beta))
    else:
        k = np.reciprocal(np.power(q, beta) + 1)
    return k / k.sum()


def basicsr_circular_lowpass(cutoff: float, size: int, pad_to: int = 0) -> np.ndarray:
    """BasicSR ``circular_lowpass_kernel`` with scipy's Bessel J1, as its source writes it."""
    from scipy import special

    c = (size - 1) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.fromfunction(lambda x, y: cutoff * special.j1(cutoff * np.sqrt((x - c) ** 2 + (y - c) ** 2))
                            / (2 * np.pi * np.sqrt((x - c) ** 2 + (y - c) ** 2)), [size, size])
    k[int(c), int(c)] = cutoff**2 / (4 * np.pi)
    k = k / np.sum(k)
    if pad_to > size:
        p = (pad_to - size) // 2
        k = np.pad(k, ((p, p), (p, p)))
    return k


def basicsr_usm(img: np.ndarray) -> np.ndarray:
    """BasicSR ``USMSharp()`` on (C, H, W) float64: cv2.getGaussianKernel(51, 0), weight 0.5, threshold 10."""
    import cv2

    g = cv2.getGaussianKernel(51, 0)
    k = g @ g.T
    blur = correlate_reflect_full(img, k)
    residual = img - blur
    mask = (np.abs(residual) * 255 > 10).astype(np.float64)
    soft = correlate_reflect_full(mask, k)
    sharp = np.clip(img + 0.5 * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def yiq_luma_pyiqa_steps(rgb: np.ndarray) -> np.ndarray:
    """pyiqa's NIQE luminance (``to_y_channel(x, 255, "yiq")``) of uint8 (H, W, 3): float64 (H, W).

    The image as float32 in [0, 1], times its full float32 YIQ matrix (``rgb2yiq``), channel Y
    times 255, ``torch.round`` (half to even).
    """
    import torch

    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() / 255
    yiq = torch.tensor([[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213],
                        [0.2115, -0.5227, 0.3112]]).t()
    y = (x.permute(0, 2, 3, 1) @ yiq).permute(0, 3, 1, 2)[0, 0] * 255
    return y.round().double().numpy()


def _round_to_float32(q: Fraction) -> Fraction:
    """The float32 nearest the exact rational ``q``, ties to even (no double rounding)."""
    near = np.float32(float(q))
    cands = [near, np.nextafter(near, np.float32(-np.inf)), np.nextafter(near, np.float32(np.inf))]
    return min((abs(Fraction(float(c)) - q), int(c.view(np.uint32)) & 1, Fraction(float(c)))
               for c in cands)[2]


def yiq_y255_float32_orders(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """``round(255 * (0.299 R + 0.587 G + 0.114 B))`` in float32 on [0, 1], in both orders a
    float32 dot-product kernel evaluates it, in exact rational arithmetic rounded step by step.

    "rounded": each product rounded to float32, then the sums left to right. "fused": a chain of
    fused multiply-adds, ``fma(x2, w2, fma(x1, w1, x0 * w0))`` (one rounding per step).
    ``rgb``: uint8 (N, 3), a few thousand pixels at most (slow). Returns float64 (N,) per order.
    """
    w = [Fraction(float(np.float32(v))) for v in (0.299, 0.587, 0.114)]
    f255 = Fraction(255)
    out: dict[str, list[float]] = {"rounded": [], "fused": []}
    for pixel in np.asarray(rgb, dtype=np.uint8).reshape(-1, 3):
        x = [Fraction(float(np.float32(int(c) / 255.0))) for c in pixel]
        rounded = fused = _round_to_float32(x[0] * w[0])
        for xi, wi in zip(x[1:], w[1:], strict=True):
            rounded = _round_to_float32(rounded + _round_to_float32(xi * wi))
            fused = _round_to_float32(fused + xi * wi)
        for name, y in (("rounded", rounded), ("fused", fused)):
            out[name].append(float(round(_round_to_float32(y * f255))))  # round(): half to even
    return {name: np.array(v) for name, v in out.items()}


def niqe_pyiqa_steps(rgb: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray) -> float:
    """NIQE as pyiqa 0.1.x computes its default ``niqe``, restated step by step in torch.

    From pyiqa's published code (``archs/niqe_arch.py``, ``archs/func_util.py``,
    ``matlab_utils``), with its dtypes: the RGB image as float32 in [0, 1]; the Y row of its YIQ
    matrix applied in float32, x 255, ``torch.round`` (half to even), then float64; whole 96x96
    blocks; MSCN with ``fspecial(7, 7/6)`` stored as float32, replicate padding, ``F.conv2d`` in
    float64, ``sigma = sqrt(|E[I^2] - mu^2| + eps)``; per block the AGGD fit by brute force over
    ``torch.arange(0.2, 10.001, 0.001)`` (float32 grid), ``argmin |r(gam) - rhatnorm|``; the
    second scale by MATLAB ``imresize(I / 255, 0.5)`` computed in float32 (pyiqa casts to float32),
    x 255; nanmean, nancov (rows with a NaN dropped), pinv. ``rgb``: uint8 (H, W, 3);
    ``mu_pris`` (36,), ``cov_pris`` (36, 36): the pristine model.
    """
    import torch
    import torch.nn.functional as F

    img = torch.from_numpy(yiq_luma_pyiqa_steps(rgb))[None, None]
    h, w = img.shape[-2:]
    img = img[..., : h // 96 * 96, : w // 96 * 96]

    yy, xx = np.ogrid[-3.0:4.0, -3.0:4.0]
    g = np.exp(-(xx * xx + yy * yy) / (2.0 * (7 / 6) ** 2))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    window = torch.from_numpy(g / g.sum()).float().double()[None, None]

    def mscn(a: torch.Tensor) -> torch.Tensor:
        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(F.pad(t, (3, 3, 3, 3), mode="replicate"), window)

        mu = blur(a)
        sigma = torch.sqrt((blur(a * a) - mu * mu).abs() + torch.finfo(torch.float64).eps)
        return (a - mu) / (sigma + 1)

    gam = torch.arange(0.2, 10 + 0.001, 0.001).double()
    r_gam = (2 * torch.lgamma(2 / gam) - torch.lgamma(1 / gam) - torch.lgamma(3 / gam)).exp()

    def aggd(v: torch.Tensor) -> tuple[float, float, float]:
        left, right = v[v < 0], v[v > 0]
        lstd = torch.sqrt((left**2).sum() / len(left)) if len(left) else torch.tensor(float("nan"))
        rstd = torch.sqrt((right**2).sum() / len(right)) if len(right) else torch.tensor(float("nan"))
        gh = lstd / rstd
        rhat = v.abs().mean() ** 2 / (v**2).mean()
        rn = rhat * (gh**3 + 1) * (gh + 1) / (gh**2 + 1) ** 2
        alpha = gam[int((r_gam - rn).abs().argmin())] if not torch.isnan(rn) else gam[0]
        ratio = (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)).exp().sqrt()
        return float(alpha), float(lstd * ratio), float(rstd * ratio)

    def features(block: torch.Tensor) -> list[float]:
        alpha, bl, br = aggd(block)
        out = [alpha, (bl + br) / 2]
        for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
            alpha, bl, br = aggd(block * torch.roll(block, shift, dims=(0, 1)))
            a = torch.tensor(alpha, dtype=torch.float64)
            out += [alpha, (br - bl) * float((torch.lgamma(2 / a) - torch.lgamma(1 / a)).exp()), bl, br]
        return out

    def resize_half_float32(a: np.ndarray) -> np.ndarray:
        """MATLAB imresize(a, 0.5), bicubic antialiased, in float32 like pyiqa's imresize."""
        t = torch.from_numpy(a).float()
        for axis in (0, 1):
            n = t.shape[axis]
            m = math.ceil(n / 2)
            pos = (torch.arange(m, dtype=torch.float32) + 0.5) * 2 - 0.5  # input centre, 0-based
            base = pos.floor() - 4  # 10 taps: kernel 4 / 0.5 + 2
            taps = base[:, None] + torch.arange(10, dtype=torch.float32)[None]
            wt = keys_cubic((pos[:, None] - taps) * 0.5)
            wt = wt / wt.sum(1, keepdim=True)
            idx = taps.long()
            idx = torch.where(idx < 0, -idx - 1, idx)  # symmetric: edge pixels repeated
            idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
            moved = t if axis == 0 else t.t()
            moved = (moved[idx] * wt[..., None]).sum(1)
            t = moved if axis == 0 else moved.t()
        return t.double().numpy()

    feats = []
    for scale in (1, 2):
        norm = mscn(img)[0, 0]
        b = 96 // scale
        nh, nw = norm.shape[0] // b, norm.shape[1] // b
        feats.append(np.array([features(norm[i * b:(i + 1) * b, j * b:(j + 1) * b])
                               for i in range(nh) for j in range(nw)]))
        if scale == 1:
            img = torch.from_numpy(resize_half_float32(img[0, 0].numpy() / 255.0) * 255.0)[None, None]
    dist = np.concatenate(feats, axis=1)
    mu = np.nanmean(dist, axis=0)
    cov = np.cov(dist[~np.isnan(dist).any(axis=1)], rowvar=False)
    d = mu_pris - mu
    return float(np.sqrt(d @ np.linalg.pinv((cov_pris + cov) / 2) @ d))


def bsrgan_anisotropic_gaussian(ksize: int, theta: float, l1: float, l2: float) -> np.ndarray:
    """BSRGAN ``anisotropic_Gaussian`` + ``gm_blur_kernel``: scipy's normal pdf per tap, /sum."""
    from scipy.stats import multivariate_normal

    v = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) @ [1.0, 0.0]
    vv = np.array([[v[0], v[1]], [v[1], -v[0]]])
    sigma = vv @ np.diag([l1, l2]) @ np.linalg.inv(vv)
    center = ksize / 2.0 + 0.5
    k = np.zeros((ksize, ksize))
    for y in range(ksize):
        for x in range(ksize):
            k[y, x] = multivariate_normal.pdf([x - center + 1, y - center + 1], mean=[0, 0], cov=sigma)
    return k / k.sum()


def matlab_fspecial_gaussian(hsize: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', hsize, sigma)`` (values below eps * max set to 0)."""
    r = (hsize - 1) / 2
    x, y = np.meshgrid(np.arange(-r, r + 1), np.arange(-r, r + 1))
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(float).eps * h.max()] = 0
    return h / h.sum()


def kernel_scores_direct(est_kernel, true_field: np.ndarray, kernel_size: int,
                         delta: float) -> dict[str, float]:
    """Kernel PSNR (pooled MSE, peak 1) and mean per-pixel L1, pixel by pixel in float64.

    ``est_kernel(i, j)`` returns the estimated (K, K) kernel of LR pixel (i, j); the true kernel
    is :func:`gaussian_kernel_direct` of the field's (s1, s2, theta) there.
    """
    _, h, w = true_field.shape
    sq = l1 = 0.0
    for i in range(h):
        for j in range(w):
            t = gaussian_kernel_direct(*(float(v) for v in true_field[:, i, j]), kernel_size, delta)
            d = np.asarray(est_kernel(i, j), np.float64) - t
            sq += float((d * d).sum())
            l1 += float(np.abs(d).sum())
    mse = sq / (h * w * kernel_size * kernel_size)
    return {"kernel_psnr": math.inf if mse == 0 else 10 * math.log10(1.0 / mse), "kernel_l1": l1 / (h * w)}


def gaussian_param_errors_direct(est: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """sigma/size MAE and anisotropy-weighted axis angle error (degrees) from covariances.

    Independent of the package's canonicalisation: each (s1, s2, theta) becomes its covariance,
    whose eigen-decomposition (numpy.linalg.eigh) gives the sorted standard deviations and the
    major axis; the angle between axes is acos(|u . u*|).
    """
    _, h, w = true.shape
    sig, size, num, den = [], [], 0.0, 0.0
    for i in range(h):
        for j in range(w):
            out = []
            for p in (est[:, i, j], true[:, i, j]):
                s1, s2, th = (float(v) for v in p)
                rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
                vals, vecs = np.linalg.eigh(rot @ np.diag([s1 * s1, s2 * s2]) @ rot.T)
                out.append((math.sqrt(vals[1]), math.sqrt(vals[0]), vecs[:, 1]))
            (a1, a2, u), (b1, b2, v) = out
            sig.append((abs(a1 - b1) + abs(a2 - b2)) / 2)
            size.append(abs(math.sqrt(a1 * a2) - math.sqrt(b1 * b2)))
            weight = (b1 - b2) / (b1 + b2)
            num += weight * math.degrees(math.acos(min(1.0, abs(float(u @ v)))))
            den += weight
    return {"sigma_mae": float(np.mean(sig)), "size_mae": float(np.mean(size)),
            "theta_err": num / den}
def resshift_etas(steps: int, kappa: float, power: float, min_noise_level: float,
                  eta_max: float) -> list[float]:
    """ResShift Eq. 10 written out: sqrt(eta_t) = sqrt(eta_1) b0^beta_t, t = 1..T (float64)."""
    eta_1 = min((min_noise_level / kappa) ** 2, 0.001)
    b0 = math.exp(math.log(eta_max / eta_1) / (2 * (steps - 1)))
    return [(math.sqrt(eta_1) * b0 ** (((t - 1) / (steps - 1)) ** power * (steps - 1))) ** 2
            for t in range(1, steps + 1)]


def resshift_sample_loop(predict_x0, y0, etas, kappa: float, steps: int, generator):  # noqa: ANN001, ANN201
    """ResShift's reverse process from its equations, float32: x_T = y0 + kappa sqrt(eta_T) eps,
    then at each chosen index t (evenly spaced from T-1 to 0, rounded half to even):
    x0 = clamp(predict_x0(x, t)), and for t > 0 x <- N(eta_s/eta_t x + (eta_t - eta_s)/eta_t x0,
    kappa^2 eta_s/eta_t (eta_t - eta_s)) with s the next index (eta at s = -1 is 0, ResShift Eq. 7
    between any s < t). Noise is drawn in that order from ``generator``. Returns the last x0
    (B, C, H, W) in [-1, 1]. ``etas``: float32 values of eta_1..eta_T."""
    import torch

    big_t = len(etas)
    idx: list[int] = []
    for i in range(steps):
        v = round((big_t - 1) * (1 - i / (steps - 1))) if steps > 1 else big_t - 1
        if not idx or idx[-1] != v:
            idx.append(v)
    eta = torch.tensor(etas, dtype=torch.float32)
    noise = torch.randn(y0.shape, generator=generator, dtype=y0.dtype)
    x = y0 + kappa * math.sqrt(float(eta[-1])) * noise
    x0 = y0
    for i, t in enumerate(idx):
        x0 = predict_x0(x, t).clamp(-1, 1)
        if t == 0:
            break
        s = idx[i + 1] if i + 1 < len(idx) else -1
        eta_t, eta_s = eta[t], eta[s] if s >= 0 else torch.zeros(())
        mean = eta_s / eta_t * x + (eta_t - eta_s) / eta_t * x0
        var = kappa**2 * eta_s / eta_t * (eta_t - eta_s)
        x = mean + var.sqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return x0


def guided_filter_direct(guide: np.ndarray, src: np.ndarray, radius: int, eps: float):
    """Guided filter of one image, written from the paper's per-window equations (float64).

    guide (C, H, W), src (H, W). For every window centre k (clipped at the borders) solve the
    ridge regression a_k = (Sigma_k + eps U)^-1 cov_k(I, p), b_k = mean(p) - a_k . mean(I);
    then q_i = mean over the windows containing i of (a_k . I_i + b_k).
    """
    n_ch, h, w = guide.shape
    a = np.zeros((n_ch, h, w))
    b = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            y0, y1 = max(0, y - radius), min(h, y + radius + 1)
            x0, x1 = max(0, x - radius), min(w, x + radius + 1)
            win_i = guide[:, y0:y1, x0:x1].reshape(n_ch, -1)
            win_p = src[y0:y1, x0:x1].reshape(-1)
            mu = win_i.mean(axis=1)
            sigma = (win_i - mu[:, None]) @ (win_i - mu[:, None]).T / win_i.shape[1]
            cov = (win_i - mu[:, None]) @ (win_p - win_p.mean()) / win_i.shape[1]
            a[:, y, x] = np.linalg.solve(sigma + eps * np.eye(n_ch), cov)
            b[y, x] = win_p.mean() - a[:, y, x] @ mu
    q = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            y0, y1 = max(0, y - radius), min(h, y + radius + 1)
            x0, x1 = max(0, x - radius), min(w, x + radius + 1)
            mean_a = a[:, y0:y1, x0:x1].reshape(n_ch, -1).mean(axis=1)
            q[y, x] = mean_a @ guide[:, y, x] + b[y0:y1, x0:x1].mean()
    return q


def box_mean_direct(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)^2 window clipped at the borders, pixel by pixel (float64)."""
    h, w = x.shape
    out = np.zeros((h, w))
    for y in range(h):
        for c in range(w):
            rows = slice(max(0, y - radius), y + radius + 1)
            out[y, c] = x[rows, max(0, c - radius) : c + radius + 1].mean()
    return out


def imresize_bicubic_down_matlab_chw(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB imresize(1/scale, bicubic) of each channel of a (C, H, W) image."""
    return np.stack([imresize_bicubic_down_matlab(c, scale) for c in img])


def bicubic_up_matlab_u8(lr: np.ndarray) -> np.ndarray:
    """MATLAB imresize(4, bicubic) of a uint8 (h, w, 3) image, rounded half up to uint8."""
    up = np.stack([imresize_bicubic_matlab(lr[..., c].astype(np.float64), 4) for c in range(3)], -1)
    return np.clip(np.floor(up + 0.5), 0, 255).astype(np.uint8)


def psnr_y_direct(gt: np.ndarray, pred: np.ndarray, crop: int) -> float:
    """Return PSNR in dB from first principles: MATLAB rgb2ycbcr Y (unrounded), crop, 10 log10."""
    a, b = y_reference(gt), y_reference(pred)
    if crop:
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    return psnr_direct(a, b)
