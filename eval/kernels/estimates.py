"""Kernel estimates on a test set's grid, and the explicit conversions that bring them there.

An estimate is one of three kinds (``Estimate.kind``):

- ``params``: a per-LR-pixel field (3, h, w) of Gaussian (s1, s2, theta), standard deviations in
  HR px. Its taps are built on the set's grid (K, delta): a Gaussian's shape is what is
  estimated; where its centre sits is the set's downsampling convention, not the estimator's.
- ``taps``: per-LR-pixel K x K taps. Converted from the method's (K_m, delta_m) to the set's
  (K, delta): the kernel is moved by ``delta - delta_m`` taps (refused unless that is an
  integer: a fractional move needs interpolation, which would change the estimate) and zero-
  padded or cropped to K (refused if the crop drops more than 1% of any kernel's mass).
- ``invariant``: one kernel (K_m, K_m) for the whole image, how KernelGAN, DAN and DCLS report
  their estimates. Their grid offset is unknowable, so, as DIV2KRK evaluations do (KernelGAN's
  and FKP's ``kernel_shift``), the kernel is moved so that its centre of mass sits where the set's
  kernels have theirs, ``(R + delta, R + delta)`` in tap indices (``scipy.ndimage.shift``, cubic
  spline, zeros outside), then cropped/padded to K x K and renormalized to sum 1 (refused if more
  than 1% of its mass falls outside the window). It is compared with every pixel's true kernel.

Variances (KAIR, MANet) are converted to standard deviations by the folder loader
(``conventions.json``: ``"sigma": "variance"``); every conversion is recorded in
``Estimate.conversions``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from degrade.ops.kernels import gaussian_kernels
from ssr_core.errors import ConfigError

EstimateKind = Literal["params", "taps", "invariant"]
#: Largest share of a kernel's mass a crop to the set's K may drop before it is refused.
MAX_CROP_LOSS = 0.01


@dataclass(frozen=True)
class Geometry:
    """The kernel grid of a test set: window K (odd), LR grid offset delta (HR px), scale s."""

    kernel_size: int
    delta: float
    scale: int

    @property
    def radius(self) -> int:
        """Return R = K // 2."""
        return self.kernel_size // 2


def true_taps(field_rows: np.ndarray, geometry: Geometry) -> torch.Tensor:
    """Return float32 taps (m, w, K, K) of a (3, m, w) field of (s1, s2, theta) on the set's grid.

    float32, like the engine and the shards' fields: a kernel PSNR of 60 dB is a tap MSE of 1e-6,
    far above float32's rounding of taps below 1 (< 6e-8), and it is 2.5x faster than float64.
    """
    p = torch.from_numpy(np.ascontiguousarray(field_rows, dtype=np.float32)).permute(1, 2, 0)
    return gaussian_kernels(p, geometry.kernel_size, geometry.delta)


@dataclass(frozen=True, eq=False)
class Estimate:
    """One image's estimate on the set's grid (see the module docstring).

    Attributes:
        kind: ``params``, ``taps`` or ``invariant``.
        data: (3, h, w) parameters, float32 (h, w, K*K) taps or a (K, K) kernel.
        conversions: What was done to bring it to the set's grid (for the provenance).
        gaussian: For an invariant kernel that is one Gaussian (the oracle): its (s1, s2, theta),
            so that the parameter metrics apply to it.
        lr_shape: (h, w) of the image, for an invariant kernel with ``gaussian``.
    """

    kind: EstimateKind
    data: np.ndarray
    conversions: tuple[str, ...] = field(default_factory=tuple)
    gaussian: tuple[float, float, float] | None = None
    lr_shape: tuple[int, int] | None = None

    def params_field(self) -> np.ndarray | None:
        """Return the (3, h, w) Gaussian parameters, or None for taps."""
        if self.kind == "params":
            return self.data
        if self.gaussian is not None and self.lr_shape is not None:
            p = np.asarray(self.gaussian, np.float64)[:, None, None]
            return np.broadcast_to(p, (3, *self.lr_shape))
        return None

    def taps_rows(self, r0: int, r1: int, geometry: Geometry) -> torch.Tensor:
        """Return float32 taps (r1 - r0, w, K*K) of LR rows r0..r1 (an invariant kernel: w = 1).

        An invariant kernel comes back as (r1 - r0, 1, K*K) and broadcasts over the row.
        """
        kk = geometry.kernel_size ** 2
        if self.kind == "params":
            return true_taps(self.data[:, r0:r1], geometry).reshape(r1 - r0, -1, kk)
        if self.kind == "taps":
            return torch.from_numpy(self.data[r0:r1])
        k = torch.from_numpy(np.asarray(self.data, np.float32)).reshape(1, 1, kk)
        return k.expand(r1 - r0, 1, kk)


def params_estimate(params: np.ndarray, lr_shape: tuple[int, int], *, variance: bool = False,
                    where: str = "") -> Estimate:
    """Check a (3, h, w) Gaussian-parameter field and return its Estimate (std in HR px).

    Raises:
        ConfigError: wrong shape, non-finite or non-positive sigmas (names ``where``).
    """
    h, w = lr_shape
    if params.shape != (3, h, w):
        raise ConfigError(f"{where}: expected Gaussian parameters (3, {h}, {w}), got "
                          f"{params.shape}")
    p = params.astype(np.float64)
    if not np.isfinite(p).all() or (p[:2] <= 0).any():
        raise ConfigError(f"{where}: s1, s2 must be finite and > 0 (min {np.nanmin(p[:2]):.3g}), "
                          "theta finite")
    notes: tuple[str, ...] = ()
    if variance:
        p = np.concatenate([np.sqrt(p[:2]), p[2:]])
        notes = ("variances -> standard deviations (sqrt)",)
    return Estimate("params", p, notes)


def taps_estimate(taps: np.ndarray, kernel_size: int, delta: float, geometry: Geometry, *,
                  where: str = "") -> Estimate:
    """Bring per-pixel taps (h, w, K_m, K_m) from the method's grid to the set's (docstring).

    Raises:
        ConfigError: non-finite taps, a fractional grid move, or a crop losing > 1% of a kernel.
    """
    notes: list[str] = []
    k = np.asarray(taps, np.float64)
    if not np.isfinite(k).all():
        raise ConfigError(f"{where}: taps hold non-finite values")
    move = geometry.delta - delta
    if abs(move - round(move)) > 1e-9:
        raise ConfigError(
            f"{where}: taps centred at delta {delta:g} cannot be converted to the set's delta "
            f"{geometry.delta:g}: the move of {move:g} taps is not a whole number (it would need "
            "interpolation, which changes the estimate); give Gaussian parameters, or taps on "
            "the set's grid")
    shift = int(round(move))
    if shift:
        k = np.roll(_pad(k, abs(shift)), (shift, shift), axis=(-2, -1))
        notes.append(f"moved by {shift} tap(s) (delta {delta:g} -> {geometry.delta:g})")
    k = _fit_window(k, geometry.kernel_size, where, notes)
    sums = k.sum((-2, -1), keepdims=True)
    if (sums <= 0).any():
        raise ConfigError(f"{where}: a kernel has no positive mass in the set's {geometry.kernel_size}"
                          f"x{geometry.kernel_size} window")
    k = k / sums
    h, w = k.shape[:2]
    return Estimate("taps", k.reshape(h, w, -1).astype(np.float32), tuple(notes))


def invariant_estimate(kernel: np.ndarray, geometry: Geometry, *, where: str = "") -> Estimate:
    """Centre one (K_m, K_m) kernel by its centre of mass on the set's grid (module docstring).

    Raises:
        ConfigError: not 2-D, non-finite, no positive mass, or > 1% of it outside the window.
    """
    from scipy.ndimage import center_of_mass, shift

    k = np.asarray(kernel, np.float64)
    if k.ndim != 2 or not np.isfinite(k).all() or k.sum() <= 0:
        raise ConfigError(f"{where}: an invariant kernel must be a finite 2-D array with positive "
                          f"mass, got shape {k.shape}")
    k = k / k.sum()
    K, r = geometry.kernel_size, geometry.radius
    n = max(k.shape) + K + 4  # a canvas wide enough that the move loses nothing at its edges
    canvas = np.zeros((n, n))
    canvas[:k.shape[0], :k.shape[1]] = k
    target = n // 2 + geometry.delta
    com = np.array(center_of_mass(canvas))
    moved = shift(canvas, target - com, order=3, mode="constant", cval=0.0)
    c = n // 2
    window = moved[c - r:c + r + 1, c - r:c + r + 1]
    lost = 1.0 - window.sum() / moved.sum()
    if lost > MAX_CROP_LOSS:
        raise ConfigError(f"{where}: {100 * lost:.1f}% of the kernel's mass lies outside the set's "
                          f"{K}x{K} window once centred (at most {100 * MAX_CROP_LOSS:g}%); score "
                          "it on a set with a larger K (recipe ssr-wide, K = 31)")
    window = window / window.sum()
    notes = (f"{k.shape[0]}x{k.shape[1]} kernel centred by its centre of mass at tap "
             f"{r + geometry.delta:g} (DIV2KRK convention), window {K}x{K}, "
             f"{100 * max(lost, 0.0):.2f}% mass outside",)
    return Estimate("invariant", window, notes)


def _pad(k: np.ndarray, n: int) -> np.ndarray:
    widths = [(0, 0)] * (k.ndim - 2) + [(n, n), (n, n)]
    return np.pad(k, widths)


def _fit_window(k: np.ndarray, kernel_size: int, where: str, notes: list[str]) -> np.ndarray:
    """Zero-pad or centre-crop the last two axes to kernel_size, refusing lossy crops."""
    size = k.shape[-1]
    if size == kernel_size:
        return k
    if size < kernel_size:
        notes.append(f"zero-padded {size}x{size} -> {kernel_size}x{kernel_size}")
        return _pad(k, (kernel_size - size) // 2)
    c = (size - kernel_size) // 2
    inner = k[..., c:c + kernel_size, c:c + kernel_size]
    total = k.sum((-2, -1))
    lost = 1.0 - inner.sum((-2, -1)) / np.where(total > 0, total, 1.0)
    worst = float(lost.max()) if lost.size else 0.0
    if worst > MAX_CROP_LOSS:
        raise ConfigError(f"{where}: cropping {size}x{size} taps to the set's {kernel_size}x"
                          f"{kernel_size} drops up to {100 * worst:.1f}% of a kernel's mass (at most "
                          f"{100 * MAX_CROP_LOSS:g}%); score it on a set with K >= {size}")
    notes.append(f"cropped {size}x{size} -> {kernel_size}x{kernel_size} (<= {100 * worst:.2f}% mass)")
    return inner


def taps_moment_size(taps: torch.Tensor, geometry: Geometry) -> torch.Tensor:
    """Return sqrt(s1 s2) (HR px) of taps (..., K*K) from their second moments about the centre.

    A display aid for estimates without parameters (the heat-map page): truncation at K makes it
    slightly smaller than the Gaussian's own value.
    """
    K = geometry.kernel_size
    k = taps.reshape(*taps.shape[:-1], K, K)
    d = torch.arange(K, dtype=k.dtype) - geometry.radius - geometry.delta
    dy, dx = d.view(-1, 1), d.view(1, -1)
    mass = k.sum((-2, -1)).clamp_min(1e-12)
    mx = (k * dx).sum((-2, -1)) / mass
    my = (k * dy).sum((-2, -1)) / mass
    vxx = (k * dx * dx).sum((-2, -1)) / mass - mx * mx
    vyy = (k * dy * dy).sum((-2, -1)) / mass - my * my
    vxy = (k * dx * dy).sum((-2, -1)) / mass - mx * my
    det = (vxx * vyy - vxy * vxy).clamp_min(0)
    return det.sqrt().sqrt()


def mean_kernel(fields: list[np.ndarray], geometry: Geometry, max_points: int = 16384) -> np.ndarray:
    """Return the mean (K, K) taps over the fields' LR pixels (<= max_points per field, a grid).

    The constant estimate with the smallest expected tap MSE over those pixels.
    """
    total = torch.zeros(geometry.kernel_size, geometry.kernel_size, dtype=torch.float64)
    count = 0
    for f in fields:
        _, h, w = f.shape
        step = max(1, math.ceil(math.sqrt(h * w / max_points)))
        sub = f[:, ::step, ::step]
        taps = true_taps(sub, geometry)
        total += taps.sum((0, 1), dtype=torch.float64)
        count += taps.shape[0] * taps.shape[1]
    if count == 0:
        raise ConfigError("no kernel field to average")
    return (total / count).numpy()
