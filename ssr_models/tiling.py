"""Tiled inference: overlapping LR windows placed evenly, outputs blended without seams.

:func:`tile_starts` places, on each axis of n LR px, the fewest ``tile``-px windows whose
neighbours share at least ``overlap`` px, m = ceil((n - overlap) / (tile - overlap)), and
spreads their starts evenly over [0, n - tile] (an axis of 512 px in 256-px tiles starts at 0,
128, 256; placing them at a fixed stride and moving the last one flush with the edge gave
0, 240, 256, a last tile 94% on top of the one before, computed for almost nothing).

:func:`blend_tiles` runs a function on every window (row-major order) and blends the outputs
with a separable raised-cosine window that rises over ``overlap`` px on every side that has a
neighbour (flat 1 at image edges), then divides by the summed weights, so the result is
continuous across tile borders. Kernel fields (s1, s2, theta) are blended through their
covariances (as SVKR's Eq. 2 does), which avoids the theta = 0 / pi wrap.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from degrade.ops.kernels import covariance_from_sigmas, sigmas_from_covariance
from ssr_core.errors import ConfigError

__all__ = ["TileFn", "blend_tiles", "ramp_window", "tile_starts"]

# (sr (1, 3, sT, sT), nearness (1, 1, sT, sT) | None, field (1, 3, T, T) | None) of one LR tile
TileFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Return the starts of the fewest ``tile``-px windows covering [0, n) with overlaps >= ``overlap``.

    m = ceil((n - overlap) / (tile - overlap)) windows (the least m with m tile - (m - 1) overlap
    >= n), their starts spread evenly over [0, n - tile] (rounded), so neighbouring overlaps differ
    by at most 1 px instead of the last window sitting almost on top of the one before.

    >>> tile_starts(512, 256, 16)
    [0, 128, 256]
    """
    if not 0 <= overlap < tile:
        raise ConfigError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {tile}")
    if n <= tile:
        return [0]
    count = -(-(n - overlap) // (tile - overlap))
    # integer arithmetic: round(i (n - tile) / (count - 1)), halves up
    return [(2 * i * (n - tile) + count - 1) // (2 * (count - 1)) for i in range(count)]


def ramp_window(length: int, ramp: int, left: bool, right: bool) -> torch.Tensor:
    """Return a (length,) raised-cosine weight rising over ``ramp`` px on the flagged ends, else 1."""
    x = torch.arange(length, dtype=torch.float64)
    w = torch.ones(length, dtype=torch.float64)
    if ramp > 0:
        if left:
            w = w * torch.sin(0.5 * math.pi * ((x + 0.5) / ramp).clamp(0, 1)) ** 2
        if right:
            w = w * torch.sin(0.5 * math.pi * ((length - 0.5 - x) / ramp).clamp(0, 1)) ** 2
    return w


def blend_tiles(lr: torch.Tensor, fn: TileFn, scale: int, tile: int, overlap: int
                ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Run ``fn`` on overlapping LR tiles of lr (1, C, h, w) and blend; see the module docstring.

    Returns:
        sr (1, 3, s*h, s*w), nearness (1, 1, s*h, s*w) or None, field (1, 3, h, w) or None.
    """
    if not 0 <= overlap < tile:
        raise ConfigError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {tile}")
    h, w = lr.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    acc: dict[str, torch.Tensor] = {}
    for y in ys:
        for x in xs:
            sr, near, field = fn(lr[..., y:y + th, x:x + tw])
            for res, ramp_scale in ((scale, scale), (1, 1)):
                wy = ramp_window(th * res, overlap * ramp_scale, y > 0, y + th < h)
                wx = ramp_window(tw * res, overlap * ramp_scale, x > 0, x + tw < w)
                wgt = (wy[:, None] * wx[None, :]).to(lr.dtype).to(lr.device)
                if res == 1:
                    if field is None:
                        continue
                    cov = covariance_from_sigmas(field[0, 0], field[0, 1], field[0, 2])  # (T, T, 2, 2)
                    parts = {"cov": cov * wgt[..., None, None], "w_lr": wgt}
                else:
                    parts = {"sr": sr[0] * wgt, "w_hr": wgt}
                    if near is not None:
                        parts["near"] = near[0] * wgt
                sl = (slice(y * res, (y + th) * res), slice(x * res, (x + tw) * res))
                for name, value in parts.items():
                    if name not in acc:
                        shape = (*value.shape[:-2], h * res, w * res) if name != "cov" else (h, w, 2, 2)
                        acc[name] = torch.zeros(shape, dtype=value.dtype, device=value.device)
                    if name == "cov":
                        acc[name][sl] += value
                    else:
                        acc[name][(..., *sl)] += value
    sr = (acc["sr"] / acc["w_hr"])[None]
    near = (acc["near"] / acc["w_hr"])[None] if "near" in acc else None
    field = None
    if "cov" in acc:
        s1, s2, theta = sigmas_from_covariance(acc["cov"] / acc["w_lr"][..., None, None])
        field = torch.stack([s1, s2, theta])[None]
    return sr, near, field
