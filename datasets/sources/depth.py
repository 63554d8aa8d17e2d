"""Read metric depth maps, resize them to the image, and fill unknown pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ssr_core.errors import InputError

from ..imageio import decode_png

#: Aspect ratios of image and depth may differ by this fraction before we refuse to resize.
ASPECT_TOLERANCE = 0.01


def read_depth_file(path: str | Path) -> np.ndarray:
    """Read a depth map as float32 (H, W) metres with NaN for unknown pixels.

    ``*.npy`` holds float metres (non-finite or <= 0 is unknown); ``*.png`` is a
    16-bit PNG in millimetres (0 is unknown).

    Raises:
        InputError: Unreadable file, wrong dtype or shape, or an unknown suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            raw = np.load(path, allow_pickle=False)
            if not np.issubdtype(raw.dtype, np.floating):
                raise InputError(path, f"depth .npy must be float metres, got dtype {raw.dtype}")
            depth = raw.astype(np.float32)
        elif suffix == ".png":
            raw = decode_png(path.read_bytes())
            if raw.dtype != np.uint16 or raw.ndim != 2:
                raise InputError(path, "depth .png must be 16-bit single-channel millimetres, "
                                       f"got {raw.dtype} {tuple(raw.shape)}")
            depth = raw.astype(np.float32) / 1000.0
            depth[raw == 0] = np.nan
        else:
            raise InputError(path, f"unknown depth format {suffix!r}; expected .npy or .png")
    except InputError as exc:
        if exc.path != str(path):
            raise InputError(path, exc.reason) from exc
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read depth: {exc}") from exc
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[..., 0]
    if depth.ndim != 2 or 0 in depth.shape:
        raise InputError(path, f"depth must be a non-empty (H, W) map, got {tuple(depth.shape)}")
    return depth


def resize_nearest(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (h, w) -> (height, width) by nearest neighbour on pixel centres.

    Pixel centres are aligned, so each output pixel takes the input pixel whose
    area contains its centre; unknown (NaN) pixels stay unknown.
    """
    h, w = depth.shape
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return depth[rows[:, None], cols[None, :]]


def match_size(
    path: str | Path, depth: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, list[str]]:
    """Bring a depth map to the image size when the aspect ratios agree within 1%.

    Raises:
        InputError: The aspect ratios differ by more than ``ASPECT_TOLERANCE``.
    """
    h, w = depth.shape
    if (h, w) == (height, width):
        return depth, []
    ratio = (h / w) / (height / width)
    if abs(ratio - 1.0) > ASPECT_TOLERANCE:
        raise InputError(path, f"depth size {w}x{h} does not match image {width}x{height} "
                               f"(aspect ratios differ by {abs(ratio - 1) * 100:.1f}% > 1%)")
    note = f"depth: resized {w}x{h} -> {width}x{height} (nearest)"
    return resize_nearest(depth, height, width), [note]


def fill_unknown(path: str | Path, depth: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Replace non-finite or <= 0 depth by the nearest valid pixel's depth (float32).

    Valid pixels are returned unchanged.

    Raises:
        InputError: No pixel of the map is valid.
    """
    depth = np.asarray(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        unknown = ~np.isfinite(depth) | (depth <= 0)
    n = int(unknown.sum())
    if n == 0:
        return np.ascontiguousarray(depth), []
    if n == depth.size:
        raise InputError(path, f"depth has no valid pixel (all {n} are non-finite or <= 0)")
    # The EDT of the unknown mask gives, for each pixel, the index of the nearest valid one.
    rows, cols = ndimage.distance_transform_edt(unknown, return_distances=False,
                                                return_indices=True)
    filled = depth[rows, cols]
    return np.ascontiguousarray(filled, dtype=np.float32), [
        f"depth: filled {n} unknown pixels (nearest valid)"]
