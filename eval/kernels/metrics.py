"""Kernel-estimation metrics: an estimated kernel field against a shard's true one, per LR pixel.

Every value compares kernels *on the test set's grid*: K x K taps (tap ``(a, b)``, ``a, b`` in
``-R..R``, weighs ``HRpad[s*i + a, s*j + b]``), each kernel normalized to sum 1, the true kernel
of LR pixel (i, j) being the set's Gaussian (s1, s2, theta) centred at ``(delta, delta)``
(DESIGN.md section 3), or, on a released set whose truth is one K x K kernel per image
(DIV2KRK, :mod:`eval.kernels.released`), that kernel as released (the Gaussian-parameter
metrics are then n/a: the truth has no parameters). Estimates are brought to that grid before they get here
(:mod:`eval.kernels.estimates`). Conventions, metric by metric (also in the registry entries):

- ``kernel_psnr`` (dB, higher is better): ``10 log10(1 / MSE)`` with the MSE over every tap of
  every LR pixel of the image; a kernel's peak value is at most 1, so 1 is the peak signal. This
  is the kernel PSNR of DIV2KRK evaluations (FKP's ``calculate_psnr(k_gt, k_est, is_kernel=True)``,
  KernelGAN/DIP-FKP's tables): for a spatially invariant set (one kernel per image) the two are
  the same number. Identical fields give +inf. The set value is the mean of per-image values.
- ``kernel_l1`` (in [0, 2], lower is better): mean over LR pixels of ``sum_ab |k - k*|``, the
  number DKENet's validation logs as ``kernel_l1``.
- ``sigma_mae`` (HR px): mean over LR pixels of ``(|s1 - s1*| + |s2 - s2*|) / 2``, both fields
  canonical (``s1 >= s2``; swapping the axes adds pi/2 to theta). Standard deviations, not
  variances. Only for estimates that give Gaussian parameters.
- ``theta_err`` (degrees): the angle between the major axes, modulo pi (so in [0, 90]), averaged
  with weights ``w = (s1* - s2*) / (s1* + s2*)`` (the true field's anisotropy, in [0, 1)): the
  axis of a near-isotropic kernel is meaningless, so it counts little; an exactly isotropic
  image has no angle to estimate (NaN, reported n/a). DKENet's validation ``theta_mae`` uses the
  same weights (in radians).
- ``size_mae`` (HR px): mean over LR pixels of ``|sqrt(s1 s2) - sqrt(s1* s2*)|``, the error in
  blur size (the geometric-mean standard deviation) whatever the orientation.
- ``redeg_psnr`` (dB): HR degraded with the estimated field by Eq. 1 (the engine's
  ``apply_kernel_field`` for Gaussian parameters, ``ssr_models.dkenet.reblur`` for taps), rounded
  to uint8 like the build (round half to even), against the set's LR: PSNR on RGB in [0, 255],
  no border crop. Only on noise-free sets (no noise, no JPEG, direct downsampler), where the true
  field reproduces the LR byte for byte: its value is +inf up to the engine's float32 agreement
  between backends (2e-6 of the range; a value that lands on a rounding tie may move one level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ssr_core.errors import ConfigError

from .estimates import Estimate, Geometry, taps_moment_size

if TYPE_CHECKING:
    from degrade.recipes import Recipe

#: LR pixels per chunk of the per-pixel computations: (n, K*K) float32 tap arrays of about
#: 7 MB at K = 21, so large images never hold a whole tap field in memory.
_CHUNK_PIXELS = 4096
#: Names of the metrics in table order; ``PARAM_METRICS`` need Gaussian parameters.
KERNEL_METRICS: tuple[str, ...] = ("kernel_psnr", "kernel_l1", "sigma_mae", "theta_err",
                                   "size_mae", "redeg_psnr")
PARAM_METRICS: tuple[str, ...] = ("sigma_mae", "theta_err", "size_mae")


@dataclass
class ImageKernelScores:
    """One image's values and error maps.

    Attributes:
        values: metric -> value (see the module docstring); a metric absent here is n/a.
        maps: name -> float32 (h, w) LR-grid map: ``kernel_l1``, ``kernel_psnr`` (per pixel,
            +inf where equal), ``true_size`` and ``est_size`` (sqrt(s1 s2) in HR px; from the
            taps' second moments for estimates without parameters), with parameters
            ``size_err`` and ``theta_err`` (degrees, unweighted); ``redeg_err`` (mean |diff|
            over channels, 0-255) when re-degraded.
        why_na: metric -> reason it has no value for this image.
    """

    values: dict[str, float] = field(default_factory=dict)
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    why_na: dict[str, str] = field(default_factory=dict)


def canonical(params: np.ndarray) -> np.ndarray:
    """Return (3, ...) (s1, s2, theta) with s1 >= s2 and theta in [0, pi): the same Gaussians.

    >>> canonical(np.array([1.0, 2.0, 0.0])).round(4).tolist()
    [2.0, 1.0, 1.5708]
    """
    s1, s2, th = params[0], params[1], params[2]
    swap = s1 < s2
    theta = np.mod(np.where(swap, th + math.pi / 2, th), math.pi)
    return np.stack([np.maximum(s1, s2), np.minimum(s1, s2), theta])


def angle_error(theta: np.ndarray, theta_true: np.ndarray) -> np.ndarray:
    """Return the angle between two axes in radians, modulo pi: in [0, pi/2].

    >>> float(angle_error(np.array(0.05), np.array(math.pi - 0.05)).round(6))
    0.1
    """
    d = np.mod(theta - theta_true, math.pi)
    return np.minimum(d, math.pi - d)


def anisotropy(params: np.ndarray) -> np.ndarray:
    """Return ``(s1 - s2) / (s1 + s2)`` of a canonical (3, ...) field: 0 isotropic, -> 1 a line."""
    return (params[0] - params[1]) / (params[0] + params[1])


def param_errors(est: np.ndarray, true: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Return the Gaussian-parameter metrics and maps of two (3, h, w) fields (see the docstring).

    Raises:
        ConfigError: shapes differ.
    """
    if est.shape != true.shape or est.ndim != 3 or est.shape[0] != 3:
        raise ConfigError(f"parameter fields must both be (3, h, w), got {est.shape} and {true.shape}")
    e, t = canonical(est.astype(np.float64)), canonical(true.astype(np.float64))
    sig = 0.5 * (np.abs(e[0] - t[0]) + np.abs(e[1] - t[1]))
    ang = angle_error(e[2], t[2])
    w = anisotropy(t)
    est_size, true_size = np.sqrt(e[0] * e[1]), np.sqrt(t[0] * t[1])
    size = np.abs(est_size - true_size)
    values = {"sigma_mae": float(sig.mean()), "size_mae": float(size.mean())}
    if w.sum() > 0:
        values["theta_err"] = float(np.degrees((w * ang).sum() / w.sum()))
    maps = {"size_err": size, "theta_err": np.degrees(ang), "true_size": true_size,
            "est_size": est_size}
    return values, {k: v.astype(np.float32) for k, v in maps.items()}


def tap_errors(estimates: list[Estimate], truth: np.ndarray | Estimate, geometry: Geometry,
               lr_shape: tuple[int, int] | None = None
               ) -> list[tuple[dict[str, float], dict[str, np.ndarray]]]:
    """Return kernel_psnr and kernel_l1 of each estimate and their per-pixel maps.

    LR rows are processed in chunks, the true taps of a chunk built once for all estimates.

    Args:
        estimates: On ``geometry``'s grid, covering the (h, w) LR grid.
        truth: float (3, h, w) true (s1, s2, theta), or the truth as an Estimate on the grid
            (a released set's one (K, K) kernel per image: ``Estimate("invariant", k)``).
        geometry: The set's K and delta.
        lr_shape: (h, w); needed when ``truth`` is an Estimate (a field gives its own).

    Returns:
        Per estimate, in order: (values, maps).
    """
    if isinstance(truth, Estimate):
        if lr_shape is None:
            raise ConfigError("tap_errors: give lr_shape with a true kernel (it has no grid)")
        true_est, (h, w) = truth, lr_shape
    else:
        true_est, (h, w) = Estimate("params", truth), truth.shape[1:]
    kk = geometry.kernel_size ** 2
    l1 = np.empty((len(estimates), h, w), np.float64)
    sq = np.empty((len(estimates), h, w), np.float64)
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        t = true_est.taps_rows(r0, r1, geometry)  # (rows, w, K*K); one true kernel: (rows, 1, K*K)
        for n, estimate in enumerate(estimates):
            d = estimate.taps_rows(r0, r1, geometry) - t  # an invariant kernel broadcasts over w
            l1[n, r0:r1] = d.abs().sum(-1, dtype=torch.float64).numpy()
            sq[n, r0:r1] = (d * d).sum(-1, dtype=torch.float64).numpy()
    out = []
    for n in range(len(estimates)):
        mse = float(sq[n].sum()) / (h * w * kk)
        with np.errstate(divide="ignore"):
            psnr_map = 10 * np.log10(kk / sq[n])
        values = {"kernel_psnr": kernel_psnr_from_mse(mse), "kernel_l1": float(l1[n].mean())}
        out.append((values, {"kernel_l1": l1[n].astype(np.float32),
                             "kernel_psnr": psnr_map.astype(np.float32)}))
    return out


def _moment_size(estimate: Estimate, shape: tuple[int, ...], geometry: Geometry) -> np.ndarray:
    """Return the (h, w) blur size of tap estimates from their moments (a display aid)."""
    h, w = shape
    rows = max(1, _CHUNK_PIXELS // max(w, 1))
    out = np.empty((h, w), np.float32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        out[r0:r1] = taps_moment_size(estimate.taps_rows(r0, r1, geometry), geometry).numpy()
    return out


def kernel_psnr_from_mse(mse: float) -> float:
    """Return ``10 log10(1 / mse)`` (peak 1, kernels summing to 1); +inf for mse = 0."""
    return math.inf if mse <= 0 else 10 * math.log10(1.0 / mse)


def redegrade(estimate: Estimate, hr: np.ndarray, geometry: Geometry,
              recipe: Recipe | None = None) -> np.ndarray:
    """Degrade uint8 HR (H, W, 3) with the estimated field (Eq. 1); return uint8 LR (h, w, 3).

    Gaussian parameters go through the engine (``apply_kernel_field``, backend ``auto``, like the
    build); taps through ``ssr_models.dkenet.reblur`` (the same sum, an unfold: about 5 KB of
    memory per LR pixel at K = 21). Rounded like the build: clip to [0, 1], round half to even,
    and for Gaussian parameters with the set's ``recipe`` the values on a .5 tie settled by the
    float64 formula (``degrade.protocols.settle_ties``, as noise-free builds do), so the true
    field gives the set's LR byte for byte. Taps are not settled: a tie may move one level.
    """
    from degrade.fields import DegradationDraw
    from degrade.ops.blur import apply_kernel_field
    from degrade.ops.quantize import to_uint8
    from degrade.protocols import settle_ties

    x = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None].float().div_(255.0)
    params = estimate.params_field()
    if params is not None:
        kfield = np.ascontiguousarray(params, dtype=np.float32)
        lr = apply_kernel_field(x, torch.from_numpy(kfield)[None], geometry.scale,
                                geometry.kernel_size, geometry.delta)[0].clamp_(0.0, 1.0)
        out = to_uint8(lr)
        if recipe is not None:
            settle_ties(out, lr, hr, DegradationDraw(kfield, None, None, None), recipe)
        return out
    from ssr_models.dkenet import reblur

    h, w = hr.shape[0] // geometry.scale, hr.shape[1] // geometry.scale
    taps = estimate.taps_rows(0, h, geometry).expand(h, w, -1)  # an invariant kernel: w = 1
    lr = reblur(x, taps.permute(2, 0, 1)[None].contiguous(), geometry.scale)
    return to_uint8(lr[0].clamp_(0.0, 1.0))


def redeg_psnr(lr_hat: np.ndarray, lr: np.ndarray) -> tuple[float, np.ndarray]:
    """Return PSNR (dB, RGB, [0, 255], no crop) of two uint8 LR images and the |diff| map (h, w).

    Raises:
        ConfigError: shapes differ.
    """
    if lr_hat.shape != lr.shape:
        raise ConfigError(f"re-degraded LR {lr_hat.shape} does not match the set's LR {lr.shape}")
    d = lr_hat.astype(np.float64) - lr.astype(np.float64)
    mse = float((d * d).mean())
    value = math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    return value, np.abs(d).mean(2).astype(np.float32)


def score_image(estimate: Estimate, true_field: np.ndarray | None, geometry: Geometry, *,
                hr: np.ndarray | None = None, lr: np.ndarray | None = None,
                redeg_reason: str | None = None, true_kernel: np.ndarray | None = None,
                lr_shape: tuple[int, int] | None = None) -> ImageKernelScores:
    """Compute every kernel metric of one image (module docstring) and its error maps.

    Args:
        estimate: On the set's grid.
        true_field: float (3, h, w) of the set, or None when the truth is ``true_kernel``.
        geometry: K, delta, scale of the set.
        hr, lr: uint8 images for the re-degradation PSNR.
        redeg_reason: Why the set cannot be re-degraded (noise, JPEG, ...); None = re-degrade.
        true_kernel: A released set's one true (K, K) kernel on the set's grid (DIV2KRK), used
            as it is; the Gaussian-parameter metrics are then n/a (the truth has none).
        lr_shape: (h, w) of the LR grid with ``true_kernel`` (default: ``lr``'s).
    """
    return score_estimates([estimate], true_field, geometry, hr=hr, lr=lr,
                           redeg_reason=redeg_reason, true_kernel=true_kernel,
                           lr_shape=lr_shape)[0]


def score_estimates(estimates: list[Estimate], true_field: np.ndarray | None, geometry: Geometry, *,
                    hr: np.ndarray | None = None, lr: np.ndarray | None = None,
                    redeg_reason: str | None = None, recipe: Recipe | None = None,
                    true_kernel: np.ndarray | None = None,
                    lr_shape: tuple[int, int] | None = None) -> list[ImageKernelScores]:
    """Score several estimates of one image (the true taps are built once); see score_image.

    Raises:
        ConfigError: neither or both of ``true_field`` and ``true_kernel``, a true kernel that
            is not (K, K) of the set, or one without an LR shape.
    """
    truth: np.ndarray | Estimate
    if (true_field is None) == (true_kernel is None):
        raise ConfigError("give the truth as exactly one of true_field (3, h, w) and true_kernel (K, K)")
    if true_kernel is not None:
        k = geometry.kernel_size
        if true_kernel.shape != (k, k):
            raise ConfigError(f"the true kernel is {true_kernel.shape}, the set's grid is {k}x{k}")
        lr_shape = lr_shape or (None if lr is None else lr.shape[:2])
        if lr_shape is None:
            raise ConfigError("a true kernel needs the LR shape (lr or lr_shape)")
        truth = Estimate("invariant", true_kernel)
    else:
        truth = true_field
        lr_shape = true_field.shape[1:]
    results = []
    for estimate, (values, maps) in zip(estimates, tap_errors(estimates, truth, geometry, lr_shape),
                                        strict=True):
        out = ImageKernelScores(dict(values), dict(maps))
        params = estimate.params_field()
        if params is None or true_field is None:
            why = ("the true kernels are released taps, not Gaussian parameters"
                   if true_field is None else f"{estimate.kind} estimates give no Gaussian parameters")
            for m in PARAM_METRICS:
                out.why_na[m] = why
            out.maps["est_size"] = _moment_size(estimate, lr_shape, geometry)
            if true_field is None:
                out.maps["true_size"] = _moment_size(truth, lr_shape, geometry)  # type: ignore[arg-type]
            else:
                t = canonical(true_field.astype(np.float64))
                out.maps["true_size"] = np.sqrt(t[0] * t[1]).astype(np.float32)
        else:
            values, maps = param_errors(params, true_field)
            out.values.update(values)
            out.maps.update(maps)
            if "theta_err" not in values:
                out.why_na["theta_err"] = "the true field is isotropic: no angle to estimate"
        if redeg_reason is not None:
            out.why_na["redeg_psnr"] = redeg_reason
        elif hr is None or lr is None:
            out.why_na["redeg_psnr"] = "no HR/LR images given"
        else:
            value, err = redeg_psnr(redegrade(estimate, hr, geometry, recipe), lr)
            out.values["redeg_psnr"] = value
            out.maps["redeg_err"] = err
        results.append(out)
    return results
