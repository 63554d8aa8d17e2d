"""Input coercion and the luminance conversions of the native metrics (DESIGN.md section 7).

Every native metric first turns its input into one float64 ``(H, W, 3)`` RGB array on the 0-255
scale with :func:`to_float255`, then takes the luminance its reference implementation uses
(the first two are defined in :mod:`degrade.ops.quality`, the single owner of that math):

- PSNR and SSIM: :func:`rgb_to_y`, the Y of BT.601 YCbCr as MATLAB ``rgb2ycbcr`` computes it
  (BasicSR's ``bgr2ycbcr(..., y_only=True)``), on [0, 255] and without rounding.
- NIQE, pyiqa convention (the default): :func:`yiq_luma_pyiqa`, the Y of YIQ (0.299, 0.587,
  0.114) in float32 on [0, 1], times 255 and rounded half to even, as pyiqa computes it.
- NIQE, MATLAB convention: :func:`rgb_to_gray`, MATLAB ``rgb2gray`` on [0, 255]: the weights its
  documentation prints as (0.2989, 0.5870, 0.1140), taken unrounded (see ``GRAY_WEIGHTS``).

Float inputs in [0, 1] are multiplied by 255 and *not* rounded: a network's float output is
scored as it is, a uint8 image scores exactly as its float copy ``x / 255`` does.
"""

from __future__ import annotations

import numpy as np

# The coercion and the BT.601 Y live with PSNR/SSIM in the pure ops (training validation uses them
# too, and nothing imports eval); re-exported here for the metrics that share them.
from degrade.ops.quality import check_hw3, rgb_to_y, to_float255

__all__ = ["GRAY_WEIGHTS", "YIQ_Y_WEIGHTS", "rgb_to_gray", "rgb_to_y", "to_float255", "yiq_luma_pyiqa"]

# MATLAB rgb2gray: the first row of the inverse of the NTSC (YIQ -> RGB) matrix, which its
# documentation prints rounded as 0.2989, 0.5870, 0.1140. The unrounded values matter for NIQE
# after rounding to integers: with them the published NIQE of pyiqa's calibration image I03 is
# met within 0.007, with the 4-digit ones it is off by 0.17 (pyiqa uses YIQ 0.299, 0.587, 0.114).
_NTSC_TO_RGB = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]])
GRAY_WEIGHTS: tuple[float, float, float] = tuple(float(v) for v in np.linalg.inv(_NTSC_TO_RGB)[0])
#: pyiqa's ``rgb2yiq`` matrix (``pyiqa.utils.color_util``), used in float32; its first row is Y
_PYIQA_YIQ = ((0.299, 0.587, 0.114), (0.5959, -0.2746, -0.3213), (0.2115, -0.5227, 0.3112))
YIQ_Y_WEIGHTS: tuple[float, float, float] = _PYIQA_YIQ[0]


def rgb_to_gray(img255: np.ndarray) -> np.ndarray:
    """Return the MATLAB rgb2gray luminance ``0.2989 R + 0.5870 G + 0.1140 B`` on [0, 255].

    The weights are MATLAB's exact ones (``GRAY_WEIGHTS``: 0.298936..., 0.587043...,
    0.114021..., summing to 1), of which the formula above is the printed rounding.

    Args:
        img255: float ``(H, W, 3)`` RGB on [0, 255] (see :func:`to_float255`).

    Returns:
        float64 ``(H, W)``, not rounded (NIQE rounds it, as MATLAB does for uint8 images).

    >>> round(float(rgb_to_gray(np.full((1, 1, 3), 100.0))[0, 0]), 6)
    100.0
    """
    check_hw3(img255)
    return np.asarray(img255, dtype=np.float64) @ np.array(GRAY_WEIGHTS)


def yiq_luma_pyiqa(img255: np.ndarray) -> np.ndarray:
    """Return the integer luminance pyiqa's NIQE scores: ``round(255 * Y_yiq(x))`` on [0, 255].

    pyiqa (``to_y_channel(x, 255, "yiq")``) works on the float32 image ``x = rgb / 255`` in
    [0, 1]: ``torch.matmul`` by its full float32 YIQ matrix, channel Y times 255 in float32,
    rounded half to even (``torch.round``). About 1 pixel in 1000 of a uint8 image sits exactly on
    a .5 tie in exact arithmetic, so the float32 steps decide its level, and they are not the same
    on every CPU: torch's float32 matmul kernel chains fused multiply-adds on some (seen with
    AVX-512) and rounds each product on others, and 132 of 1,144,832 grid pixels then land one
    level apart. The same matmul is called here, so the levels are pyiqa's on whatever CPU it
    runs (this convention inherits that dependence; ``convention="matlab"`` does not have it).

    Args:
        img255: float ``(H, W, 3)`` RGB on [0, 255] (see :func:`to_float255`).

    Returns:
        float64 ``(H, W)`` of integers in [0, 255].

    >>> yiq_luma_pyiqa(np.array([[[255.0, 255.0, 255.0], [10.0, 20.0, 30.0]]])).tolist()
    [[255.0, 18.0]]
    """
    import torch  # lazy: only this convention needs torch's kernel, and color stays numpy-first

    check_hw3(img255)
    x = torch.from_numpy((np.asarray(img255, dtype=np.float64) / 255.0).astype(np.float32))
    yiq = torch.tensor(_PYIQA_YIQ, dtype=torch.float32).t()  # the full matrix: pyiqa's gemm shape
    y = torch.matmul(x[None], yiq)[0, :, :, 0] * 255.0
    return y.round().double().numpy()
