"""Flips and 90-degree rotations of training samples, aligned on HR, LR, nearness and kernel field.

The 8 symmetries of the square (the dihedral group D4) are numbered by ``code`` in 0..7:
``np.rot90`` (counter-clockwise as an array is displayed) ``code % 4`` times, then, for
``code >= 4``, a left-right flip (columns reversed). Code 0 is the identity.

Rotating or flipping an image moves the kernels with it, so the kernel field's angle changes
(DESIGN.md section 3: ``theta`` is the angle of the ``s1`` axis ``u = (cos theta, sin theta)``
in ``d = (dx, dy) = (column offset, row offset)``, in [0, pi)). A pixel offset maps as:

* ``np.rot90`` once: new row = ``W - 1 - old column``, new column = old row, so
  ``(dx, dy) -> (dy, -dx)`` and ``u -> (sin theta, -cos theta)``: ``theta -> theta - pi/2``;
* left-right flip: ``(dx, dy) -> (-dx, dy)``, ``u -> (-cos theta, sin theta)``:
  ``theta -> pi - theta``;

both taken modulo pi (an axis, not a direction). ``s1`` and ``s2`` are unchanged.

Alignment needs the centred LR grid: LR pixel ``j`` sits at HR ``s j + delta``, which a flip
sends to ``s (w - 1 - j) + (s - 1 - delta)``; that is the flipped LR pixel's own position only
when ``delta = (s - 1) / 2`` (``centered``, the default). Shards with another delta (``topleft``)
are refused rather than silently misaligned. A 90-degree rotation reverses one axis as a flip
does, so the same rule covers every code but the identity. Even then a turn is exact only up
to the kernel mass the K x K window cuts off: for a non-integer delta the window spans offsets
``-R - delta .. R - delta`` around the kernel centre, and a flip moves the short side to the
other end (the recipes keep the cut mass under 1%, so the change is below that).

Randomness: the code is drawn from the per-sample generator the caller passes in (never
global state), so the augmented batches are the same for any number of workers.
"""

from __future__ import annotations

import math

import numpy as np

from degrade.ops.kernels import centered_delta
from ssr_core.errors import ConfigError
from ssr_datasets.schema import Sample

__all__ = ["SYMMETRIES", "augment_sample", "draw_symmetry", "symmetry_image",
           "symmetry_kernel_field", "symmetry_theta"]

SYMMETRIES = 8  # codes 0..7


def _check_code(code: int) -> None:
    if not 0 <= int(code) < SYMMETRIES:
        raise ConfigError(f"symmetry code must be in 0..{SYMMETRIES - 1}, got {code}")


def draw_symmetry(rng: np.random.Generator) -> int:
    """Draw a symmetry code uniformly from 0..7 with the per-sample generator ``rng``."""
    return int(rng.integers(SYMMETRIES))


def symmetry_image(img: np.ndarray, code: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Apply symmetry ``code`` to the (row, column) ``axes`` of ``img``; return a C-contiguous copy.

    Args:
        img: Any array, e.g. HR/LR ``(H, W, 3)``, nearness ``(H, W)`` (axes (0, 1)) or a
            field ``(3, h, w)`` (axes (1, 2)).
        code: 0..7 (see the module docstring).

    >>> symmetry_image(np.array([[1, 2], [3, 4]]), 1).tolist()
    [[2, 4], [1, 3]]
    """
    _check_code(code)
    out = np.rot90(img, code % 4, axes=axes)
    if code >= 4:
        out = np.flip(out, axis=axes[1])
    return np.ascontiguousarray(out)


def symmetry_theta(theta: np.ndarray, code: int) -> np.ndarray:
    """Return the kernel angle (radians, in [0, pi)) after symmetry ``code``, same dtype.

    >>> float(symmetry_theta(np.array([0.25]), 4)[0]) == float(np.pi - 0.25)
    True
    """
    _check_code(code)
    t = np.asarray(theta, dtype=np.float64) - (code % 4) * (math.pi / 2)
    if code >= 4:
        t = math.pi - t
    t = np.mod(t, math.pi)
    out = t.astype(np.asarray(theta).dtype)
    # mod pi can land on pi itself (or round up to it in float32); pi and 0 are the same axis.
    return np.where(out >= np.pi, np.zeros_like(out), out)


def symmetry_kernel_field(kernel_field: np.ndarray, code: int) -> np.ndarray:
    """Move a kernel field (3, h, w) of (s1, s2, theta) with symmetry ``code``; rotate theta too."""
    if kernel_field.ndim != 3 or kernel_field.shape[0] != 3:
        raise ConfigError(f"kernel_field must be (3, h, w), got {kernel_field.shape}")
    out = symmetry_image(kernel_field, code, axes=(1, 2))
    out[2] = symmetry_theta(out[2], code)
    return out


def augment_sample(sample: Sample, code: int) -> Sample:
    """Return ``sample`` with HR, LR, nearness and kernel field under symmetry ``code``.

    Raises:
        ConfigError: A bad code, or a sample whose LR grid is not centred (see the module
            docstring: a flip would misalign LR pixels and their HR blocks).
    """
    _check_code(code)
    if code == 0:
        return sample
    s = int(sample.meta["scale"])
    delta = float(sample.meta["delta"])
    if abs(delta - centered_delta(s)) > 1e-9:
        raise ConfigError(f"sample {sample.key!r}: flips/rotations need the centred LR grid "
                          f"(delta = (s - 1) / 2 = {centered_delta(s)} at x{s}), got delta "
                          f"{delta}; set data.augment: false for these shards")
    return Sample(key=sample.key, hr=symmetry_image(sample.hr, code),
                  lr=symmetry_image(sample.lr, code),
                  nearness=symmetry_image(sample.nearness, code),
                  kernel_field=symmetry_kernel_field(sample.kernel_field, code),
                  meta=dict(sample.meta, symmetry=int(code)))
