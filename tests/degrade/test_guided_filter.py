"""Tests for degrade.ops.guided_filter against a direct per-pixel implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from degrade.ops.guided_filter import box_filter, guided_filter, guided_filter_coefficients
from ssr_core.errors import ConfigError
from tests.reference import box_mean_direct, guided_filter_direct


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("radius,eps", [(1, 1e-3), (2, 1e-2), (4, 1e-4)])
def test_matches_direct_reference(channels: int, radius: int, eps: float) -> None:
    rng = np.random.default_rng(channels * 100 + radius)
    guide = rng.random((channels, 9, 11)).astype(np.float32)
    src = rng.random((9, 11)).astype(np.float32)
    guide_t, src_t = torch.from_numpy(guide)[None], torch.from_numpy(src)[None, None]
    got = guided_filter(guide_t, src_t, radius, eps)
    want = guided_filter_direct(guide.astype(np.float64), src.astype(np.float64), radius, eps)
    assert got.dtype == torch.float32 and got.shape == (1, 1, 9, 11)
    # Internals are float64; the only loss is the final cast to float32 (|q| <~ 2, ulp ~ 2.4e-7)
    # plus float64 round-off amplified by (Sigma + eps U)^-1, i.e. by up to 1/eps = 1e4: 1e-4 is
    # a safe bound that a wrong window/normalization (errors ~1e-2) would still fail.
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-4, rtol=0)


def test_radius_larger_than_image_and_batch() -> None:
    rng = np.random.default_rng(1)
    guide = rng.random((2, 3, 5, 6)).astype(np.float32)
    src = rng.random((2, 1, 5, 6)).astype(np.float32)
    got = guided_filter(torch.from_numpy(guide), torch.from_numpy(src), 10, 1e-2)
    for i in range(2):
        want = guided_filter_direct(guide[i].astype(float), src[i, 0].astype(float), 10, 1e-2)
        np.testing.assert_allclose(got[i, 0].numpy(), want, atol=1e-4)


def test_box_filter_matches_direct_and_is_edge_normalized() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((7, 10)).astype(np.float32)
    got = box_filter(torch.from_numpy(x)[None, None], 2)[0, 0].numpy()
    np.testing.assert_allclose(got, box_mean_direct(x.astype(np.float64), 2), atol=1e-6)
    ones = box_filter(torch.ones(1, 1, 7, 10), 3)
    assert torch.equal(ones, torch.ones(1, 1, 7, 10))


@pytest.mark.parametrize("channels", [1, 3])
def test_constant_src_stays_constant(channels: int) -> None:
    guide = torch.rand(1, channels, 16, 20, generator=torch.Generator().manual_seed(0))
    src = torch.full((1, 1, 16, 20), 0.7)
    out = guided_filter(guide, src, 3, 1e-4)
    torch.testing.assert_close(out, src, atol=1e-6, rtol=0)


@pytest.mark.parametrize("channels", [1, 3])
def test_huge_eps_gives_double_box_filter(channels: int) -> None:
    # eps -> inf drives a -> 0 and b -> box(p); q = box(b) is the box filter applied twice.
    gen = torch.Generator().manual_seed(1)
    guide = torch.rand(1, channels, 12, 15, generator=gen)
    src = torch.rand(1, 1, 12, 15, generator=gen)
    out = guided_filter(guide, src, 2, 1e9)
    torch.testing.assert_close(out, box_filter(box_filter(src, 2), 2), atol=1e-6, rtol=0)


def test_self_guided_small_eps_preserves_edges() -> None:
    step = torch.zeros(1, 1, 20, 20)
    step[..., 10:] = 1.0
    out = guided_filter(step, step, 4, 1e-6)
    box = box_filter(step, 4)
    torch.testing.assert_close(out, step, atol=1e-3, rtol=0)
    # the plain box filter of the same radius smears the edge; the guided filter does not
    assert (box - step).abs().max() > 0.3


def test_colour_guide_transfers_edges_to_smooth_src() -> None:
    guide = torch.zeros(1, 3, 24, 24)
    guide[:, 0, :, 12:] = 1.0  # a red/black edge seen only in one channel
    ramp = torch.linspace(0, 1, 24).view(1, 1, 1, 24).expand(1, 1, 24, 24).contiguous()
    out = guided_filter(guide, ramp, 6, 1e-3)[0, 0]
    jumps = (out[:, 1:] - out[:, :-1]).mean(dim=0)
    assert int(jumps.argmax()) == 11  # the largest step sits between columns 11 and 12


def test_coefficients_reproduce_output() -> None:
    gen = torch.Generator().manual_seed(3)
    guide = torch.rand(1, 3, 8, 9, generator=gen)
    src = torch.rand(1, 2, 8, 9, generator=gen)
    mean_a, mean_b = guided_filter_coefficients(guide, src, 2, 1e-2)
    assert mean_a.shape == (1, 2, 3, 8, 9) and mean_b.shape == (1, 2, 8, 9)
    q = (mean_a * guide.double()[:, None]).sum(2) + mean_b
    torch.testing.assert_close(q.float(), guided_filter(guide, src, 2, 1e-2))
    # each source channel is filtered independently
    torch.testing.assert_close(guided_filter(guide, src[:, 1:], 2, 1e-2)[0, 0], q[0, 1].float())


def test_float64_and_two_channel_guide() -> None:
    gen = torch.Generator().manual_seed(4)
    guide = torch.rand(1, 2, 6, 7, generator=gen, dtype=torch.float64)
    src = torch.rand(1, 1, 6, 7, generator=gen, dtype=torch.float64)
    got = guided_filter(guide, src, 1, 1e-2)
    assert got.dtype == torch.float64
    want = guided_filter_direct(guide[0].numpy(), src[0, 0].numpy(), 1, 1e-2)
    np.testing.assert_allclose(got[0, 0].numpy(), want, atol=1e-10)


@pytest.mark.parametrize(
    "guide,src,radius,eps,match",
    [
        (torch.rand(3, 8, 8), torch.rand(1, 1, 8, 8), 1, 1e-3, r"guide must be \(B, C, H, W\)"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 9), 1, 1e-3, "must share B, H, W"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), -1, 1e-3, "radius must be an int >= 0"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), 1.5, 1e-3, "radius must be an int >= 0"),
        (torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), 1, 0.0, "eps must be a number > 0"),
        (torch.rand(1, 3, 8, 8).half(), torch.rand(1, 1, 8, 8), 1, 1e-3, "float32 or float64"),
    ],
)
def test_input_checks(guide, src, radius, eps, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        guided_filter(guide, src, radius, eps)


def test_box_filter_input_check() -> None:
    with pytest.raises(ConfigError, match="floating"):
        box_filter(torch.ones(1, 1, 3, 3, dtype=torch.int64), 1)
