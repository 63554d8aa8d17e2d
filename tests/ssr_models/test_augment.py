"""Flips/rotations: kernel taps move with the image, Eq. 1 stays true, streams apply them."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from ssr_core.errors import ConfigError
from ssr_datasets.schema import Sample
from ssr_models.augment import (
    SYMMETRIES,
    augment_sample,
    symmetry_image,
    symmetry_kernel_field,
    symmetry_theta,
)
from ssr_models.configs import DataConfig
from ssr_models.data import TrainingStream
from tests.reference import direct_degradation, gaussian_kernel_direct
from tests.ssr_models.conftest import CROP


def _field(rng: np.random.Generator, h: int, w: int, s_max: float = 2.0) -> np.ndarray:
    s = rng.uniform(0.6, s_max, (2, h, w))
    theta = rng.uniform(0, math.pi, (1, h, w))
    return np.concatenate([s, theta]).astype(np.float32)


def _taps(field: np.ndarray, k: int) -> np.ndarray:
    """(h, w, K, K) taps of every pixel by the direct formula (delta 0: the kernel's shape)."""
    _, h, w = field.shape
    return np.array([[gaussian_kernel_direct(*map(float, field[:, i, j]), k, 0.0)
                      for j in range(w)] for i in range(h)])


def _dihedral(img: np.ndarray, code: int, axes: tuple[int, int]) -> np.ndarray:
    """The reference symmetry, written independently: transpose/flips as index maps."""
    out = np.moveaxis(img, axes, (0, 1))
    rows, cols = out.shape[:2]
    # np.rot90 once: new[i, j] = old[j, cols - 1 - i]
    for _ in range(code % 4):
        out = np.array([[out[j, out.shape[1] - 1 - i] for j in range(out.shape[0])]
                        for i in range(out.shape[1])])
    if code >= 4:
        out = out[:, ::-1]
    return np.moveaxis(out, (0, 1), axes)


@pytest.mark.parametrize("code", range(SYMMETRIES))
def test_field_taps_move_with_the_image(code: int) -> None:
    """Taps of the transformed field == the original taps, moved and turned (8 symmetries)."""
    field = _field(np.random.default_rng(code), 3, 4)  # not square: catches swapped axes
    k = 9
    want = _dihedral(_dihedral(_taps(field, k), code, (0, 1)), code, (2, 3))
    got = _taps(symmetry_kernel_field(field, code), k)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=2e-6)  # float32 theta


def test_theta_stays_in_range_at_the_edges() -> None:
    theta = np.array([0.0, 1e-9, np.nextafter(np.float32(math.pi), 0), math.pi / 2],
                     dtype=np.float32)
    for code in range(SYMMETRIES):
        out = symmetry_theta(theta, code)
        assert out.dtype == np.float32
        assert (out >= 0).all() and (out < math.pi).all(), (code, out)
    np.testing.assert_allclose(symmetry_theta(np.array([0.3]), 1), [0.3 + math.pi / 2])
    np.testing.assert_allclose(symmetry_theta(np.array([0.3]), 4), [math.pi - 0.3])


def test_images_match_an_index_map() -> None:
    img = np.arange(2 * 3 * 3).reshape(2, 3, 3)
    for code in range(SYMMETRIES):
        np.testing.assert_array_equal(symmetry_image(img, code), _dihedral(img, code, (0, 1)))


@pytest.mark.parametrize("code", [1, 4, 7])
def test_augmented_sample_still_obeys_eq1(code: int) -> None:
    """Degrading the turned HR with the turned field gives the turned LR (centred grid).

    Exact up to truncation: with delta = 0.5 the 9 x 9 window spans offsets -4.5..3.5 around
    the kernel centre, and the turn moves the short side; sigmas <= 1 px leave < 2.5e-4 of the
    mass beyond 3.5 px, so LR values in [0, 1] agree to 1e-3.
    """
    rng = np.random.default_rng(10 + code)
    s, k, delta = 2, 9, 0.5
    hr = rng.uniform(0, 1, (8, 12, 3))
    field = _field(rng, 4, 6, s_max=1.0)
    lr = direct_degradation(hr.transpose(2, 0, 1), field, s, k, delta).transpose(1, 2, 0)
    sample = Sample(key="t-0-000", hr=hr, lr=lr, nearness=rng.uniform(0, 1, (8, 12)),
                    kernel_field=field, meta={"scale": s, "delta": delta, "kernel_size": k})
    out = augment_sample(sample, code)
    again = direct_degradation(out.hr.transpose(2, 0, 1), out.kernel_field, s, k, delta)
    np.testing.assert_allclose(again.transpose(1, 2, 0), out.lr, atol=1e-3)
    np.testing.assert_array_equal(out.nearness, symmetry_image(sample.nearness, code))
    assert out.meta["symmetry"] == code


def test_topleft_grid_and_bad_codes_are_refused() -> None:
    z = np.zeros
    sample = Sample(key="t-0-000", hr=z((8, 8, 3)), lr=z((2, 2, 3)), nearness=z((8, 8)),
                    kernel_field=np.ones((3, 2, 2), np.float32), meta={"scale": 4, "delta": 0.0})
    with pytest.raises(ConfigError, match=r"centred LR grid.*augment: false"):
        augment_sample(sample, 4)
    assert augment_sample(sample, 0) is sample  # the identity needs no grid
    with pytest.raises(ConfigError, match="0..7"):
        symmetry_image(z((2, 2)), 8)
    with pytest.raises(ConfigError, match="augment must be true or false"):
        DataConfig(crop_hr=16, batch_size=1, augment="yes")  # type: ignore[arg-type]


def test_stream_turns_the_same_crops(shard_dir: Path) -> None:
    """augment=True keeps each crop in place and applies one symmetry to all four members."""
    kw = dict(crop_hr=CROP, batch_size=2, seed=3, resampled=False, shuffle_buffer=0)
    plain = list(itertools.islice(TrainingStream(shard_dir, **kw), 3))
    turned = list(itertools.islice(TrainingStream(shard_dir, augment=True, **kw), 3))
    codes = []
    for a, b in zip(plain, turned, strict=True):
        assert a.keys == b.keys
        for i in range(len(a)):
            code = next(c for c in range(SYMMETRIES) if np.array_equal(
                symmetry_image(a.hr[i].numpy(), c, (1, 2)), b.hr[i].numpy()))
            codes.append(code)
            for name, axes in (("lr", (1, 2)), ("nearness", (1, 2))):
                np.testing.assert_array_equal(
                    symmetry_image(getattr(a, name)[i].numpy(), code, axes),
                    getattr(b, name)[i].numpy())
            np.testing.assert_array_equal(symmetry_kernel_field(a.kernel_field[i].numpy(), code),
                                          b.kernel_field[i].numpy())
    assert len(set(codes)) > 1  # random, not a fixed turn
