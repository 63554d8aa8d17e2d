"""Tests of ssr_models.tiling: window placement against its direct definition, ramps, blending."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssr_core.errors import ConfigError
from ssr_models.tiling import blend_tiles, ramp_window, tile_starts

SCALE = 4


def fewest_tiles(n: int, tile: int, overlap: int) -> int:
    """The least m such that m windows of ``tile`` px, neighbours sharing >= overlap px, span n."""
    m = 1
    while m * tile - (m - 1) * overlap < n:
        m += 1
    return m


@pytest.mark.parametrize("tile", [8, 13, 16])
def test_tile_starts_are_the_fewest_evenly_spread_covering_windows(tile: int) -> None:
    for n in range(1, 90):
        for overlap in range(tile):
            starts = tile_starts(n, tile, overlap)
            size = min(tile, n)
            covered = np.zeros(n, int)
            for s in starts:
                assert 0 <= s and s + size <= n, (n, overlap, starts)
                covered[s:s + size] += 1
            assert covered.min() >= 1, (n, overlap, starts)  # coverage
            assert len(starts) == fewest_tiles(n, tile, overlap), (n, overlap, starts)  # count
            if len(starts) > 1:
                shared = [size - (b - a) for a, b in zip(starts, starts[1:], strict=False)]
                assert starts[0] == 0 and starts[-1] == n - tile
                assert min(shared) >= overlap, (n, overlap, starts)  # overlap at least asked
                assert max(shared) - min(shared) <= 1, (n, overlap, starts)  # evenly spread


def test_tile_starts_no_longer_stack_the_last_tile_on_the_previous() -> None:
    # the case: 512 LR px, tile 256, overlap 16 used to start at [0, 240, 256] (94% overlap)
    assert tile_starts(512, 256, 16) == [0, 128, 256]
    assert tile_starts(10, 16, 4) == [0]
    with pytest.raises(ConfigError, match="overlap < tile"):
        tile_starts(40, 16, 16)


def test_ramp_window_is_one_at_image_edges_and_rises_over_overlap() -> None:
    w = ramp_window(20, 6, left=True, right=False)
    assert w[-1] == 1 and w[6:].eq(1).all() and 0 < w[0] < 0.02
    assert torch.all(w[1:6] > w[:5])
    assert ramp_window(20, 6, left=False, right=False).eq(1).all()


def test_blend_tiles_equals_untiled_for_a_per_pixel_function() -> None:
    lr = torch.rand(1, 3, 29, 35, generator=torch.Generator().manual_seed(0))

    def per_pixel(t: torch.Tensor):  # SR, nearness and field depend on each pixel alone
        sr = t.repeat_interleave(SCALE, -2).repeat_interleave(SCALE, -1)
        field = torch.stack([1 + t[:, 0], 0.5 + 0.4 * t[:, 1], 3.0 * t[:, 2]], 1)
        return sr, sr[:, :1], field

    whole = blend_tiles(lr, per_pixel, SCALE, 64, 8)
    tiled = blend_tiles(lr, per_pixel, SCALE, 12, 5)
    for a, b in zip(whole, tiled, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5)
    with pytest.raises(ConfigError, match="overlap < tile"):
        blend_tiles(lr, per_pixel, SCALE, 8, 8)
