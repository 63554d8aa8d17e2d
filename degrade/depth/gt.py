"""Metric ground-truth depth -> nearness, exactly invertible (DESIGN.md section 3).

Nearness is inverse depth rescaled to [0, 1] over the image's valid range:
``1/z = 1/z_max + n * (1/z_min - 1/z_max)``, so n = 1 at the nearest valid pixel and n = 0 at
the farthest. Thin-lens defocus is linear in 1/z, which is why inverse depth (not depth) is
normalized. ``z_min_m`` and ``z_max_m`` are recorded so that depth can be recovered.

Invalid pixels (0, negative, NaN or inf: the "no return" values of Kinect, LiDAR and stereo
data sets) take the nearness of the nearest valid pixel, so that the blur field has no holes;
their fraction is recorded in the info dict.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ssr_core.errors import ConfigError, InputError


def nearness_to_depth(nearness: np.ndarray, z_min_m: float, z_max_m: float) -> np.ndarray:
    """Invert :func:`gt_nearness`: nearness (H, W) in [0, 1] -> depth (H, W) float32 in metres.

    Args:
        nearness: (H, W) array in [0, 1], 1 = nearest.
        z_min_m: nearest valid depth in metres, > 0.
        z_max_m: farthest valid depth in metres, >= z_min_m.

    Returns:
        (H, W) float32 depth in metres.

    Example:
        >>> nearness_to_depth(np.array([[0.0, 1.0]]), 1.0, 4.0).tolist()
        [[4.0, 1.0]]
    """
    if not 0 < z_min_m <= z_max_m:
        raise ConfigError(f"need 0 < z_min_m <= z_max_m, got z_min_m={z_min_m}, z_max_m={z_max_m}")
    inv = 1.0 / z_max_m + nearness.astype(np.float64) * (1.0 / z_min_m - 1.0 / z_max_m)
    return (1.0 / inv).astype(np.float32)


def gt_nearness(depth_m: np.ndarray) -> tuple[np.ndarray, dict]:
    """Convert metric depth (H, W) in metres to nearness (H, W) float32 in [0, 1], 1 = nearest.

    Args:
        depth_m: (H, W) float depth in metres; values <= 0 or not finite count as invalid.

    Returns:
        (nearness, info): info holds ``z_min_m``/``z_max_m`` (floats, metres) over the valid
        pixels, ``invalid_fraction`` and, for a constant depth, a ``note`` (nearness is then 0.5
        everywhere, and the formula still recovers the depth).

    Raises:
        ConfigError: if depth_m is not a 2-D floating array.
        InputError: if no pixel has a valid depth.

    Example:
        >>> n, info = gt_nearness(np.array([[1.0, 2.0, 4.0]], dtype=np.float32))
        >>> [round(float(v), 4) for v in n[0]], info["z_min_m"], info["z_max_m"]
        ([1.0, 0.3333, 0.0], 1.0, 4.0)
    """
    if not isinstance(depth_m, np.ndarray) or depth_m.ndim != 2 or depth_m.dtype.kind != "f":
        got = (
            f"{depth_m.dtype} {depth_m.shape}"
            if isinstance(depth_m, np.ndarray)
            else (type(depth_m).__name__)
        )
        raise ConfigError(f"gt depth expects depth_m as a (H, W) float array in metres, got {got}")
    z = depth_m.astype(np.float64)
    valid = np.isfinite(z) & (z > 0)
    n_valid = int(valid.sum())
    if n_valid == 0:
        raise InputError("depth_m", f"no valid depth value (all <= 0 or non-finite) in {z.shape}")
    z_min, z_max = float(z[valid].min()), float(z[valid].max())
    info: dict = {
        "z_min_m": z_min,
        "z_max_m": z_max,
        "normalization": "inverse depth: 1/z = 1/z_max + n (1/z_min - 1/z_max)",
        "invalid_fraction": 1.0 - n_valid / z.size,
    }
    if z_max == z_min:
        info["note"] = "constant depth: nearness set to 0.5 everywhere"
        return np.full(z.shape, 0.5, dtype=np.float32), info
    near = np.zeros(z.shape, dtype=np.float64)
    near[valid] = (1.0 / z[valid] - 1.0 / z_max) / (1.0 / z_min - 1.0 / z_max)
    if n_valid < z.size:
        # index of the nearest valid pixel for every pixel (exact Euclidean distance transform)
        idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
        near = near[tuple(idx)]
        info["invalid_fill"] = "nearest valid pixel"
    return np.clip(near, 0.0, 1.0).astype(np.float32), info
