"""The last stages of a degradation: uint8 by rounding and a real JPEG codec round trip."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ssr_core.errors import ConfigError


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """Round a (3, H, W) image in [0, 1] to uint8 (H, W, 3) RGB (round half to even, then clip).

    >>> to_uint8(torch.full((3, 1, 1), 0.5))[0, 0].tolist()
    [128, 128, 128]
    """
    if img.ndim != 3 or img.shape[0] != 3:
        raise ConfigError(f"img must be (3, H, W), got shape {tuple(img.shape)}")
    arr = img.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    return np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Encode uint8 (H, W, 3) RGB as baseline JPEG at ``quality`` (1-100) with OpenCV and decode it."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ConfigError(f"rgb must be uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality must be in [1, 100], got {quality!r}")
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ConfigError(f"OpenCV could not JPEG-encode an image of shape {rgb.shape}")
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
