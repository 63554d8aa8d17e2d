"""The field's test protocols: what each built-in recipe reproduces, and what a sample records.

Every built-in recipe file may carry a ``protocol:`` block (paper, released code, test sets,
kernel convention, downsampler, what is exact and what only matches in distribution). It is
description, not configuration: :func:`degrade.recipes.load_recipe` leaves it out of the Recipe
and its hash, and this module reads it for ``degrade protocols``. The names are the recipe
registry's (:data:`degrade.recipes.BUILTIN_RECIPES`): one source.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
import yaml

from ssr_core.config import dataclass_from_mapping
from ssr_core.errors import ConfigError

from .fields import DegradationDraw
from .ops.downsample import mirror_indices
from .ops.kernels import gaussian_kernels
from .recipes import BUILTIN_RECIPES, Recipe, recipe_path

# uint8 rounding of a float32 LR value is settled in float64 when value * 255 lies this close to
# a .5 tie: the engine's float32 result is within ~1e-7 of the exact sum on [0, 1] (2.6e-5 on the
# 0-255 scale), so outside this band float32 and float64 round the same way.
TIE_BAND_255 = 1e-4
_SETTLE_CHUNK = 4096  # LR pixels whose K x K x 3 float64 windows are gathered at once (~44 MB)


@dataclass(frozen=True)
class ProtocolInfo:
    """What one built-in recipe reproduces (the ``protocol:`` block of its file)."""

    name: str
    title: str
    paper: str
    code: str = ""
    test_sets: tuple[str, ...] = ()
    kernel: str = ""
    downsampler: str = ""
    exact: str = ""
    not_exact: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the info as JSON-able data (``degrade protocols --json``)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in fields(self)}


def load_protocol(name: str) -> ProtocolInfo:
    """Read the ``protocol:`` block of built-in recipe ``name``.

    Raises:
        ConfigError: an unknown recipe name, or a block that is missing or has unknown keys.
    """
    path = recipe_path(name)  # the recipe registry refuses unknown names, listing the choices
    block = (yaml.safe_load(path.read_text()) or {}).get("protocol")
    if not isinstance(block, dict):
        raise ConfigError(f"{path}: no 'protocol:' mapping describing what the recipe reproduces")
    return dataclass_from_mapping(
        ProtocolInfo, {"name": name, **block},
        lambda key, hint: f"{path}: unknown key protocol.{key}{hint}")


def list_protocols() -> list[ProtocolInfo]:
    """Return the protocol info of every built-in recipe, in registry order."""
    return [load_protocol(name) for name in BUILTIN_RECIPES]


def protocol_meta(recipe: Recipe, draw: DegradationDraw, settled: int) -> dict[str, Any]:
    """Return the sample-json keys a protocol recipe adds (none for the original recipes).

    Taps recipes record the exact K x K taps applied (``kernel_taps``, rows = row offset), their
    family, border rule and passes; ``kernel.npy`` then holds the Gaussian the taps were drawn
    from (before the multiplicative noise). ``ties_settled_float64`` counts LR values whose uint8
    rounding was decided by the float64 direct formula (see :func:`settle_ties`).
    """
    extra: dict[str, Any] = {}
    if draw.taps is not None:
        extra.update(kernel_family=f"taps-{recipe.blur.model}", kernel_taps=draw.taps.tolist(),
                     padding=recipe.padding, blur_passes=draw.passes)
    if draw.second_order is not None:
        extra.update(kernel_family=f"second-order-{recipe.blur.model}", second_order=draw.second_order)
    if recipe.downsampler != "direct":
        extra["exact_at_lr_positions"] = False
    if settled:
        extra["ties_settled_float64"] = settled
    return extra


def settle_ties(lr: np.ndarray, lr_t: torch.Tensor, hr: np.ndarray, draw: DegradationDraw,
                recipe: Recipe) -> int:
    """Round LR values that sit on a .5 tie by the float64 direct formula (Eq. 1), in place.

    A float32 sum cannot tell x.5 - 1e-6 from x.5 + 1e-6 on the 0-255 scale; narrow kernels at a
    centred delta put many LR values there (four equal central taps average four uint8 values:
    cmos-defocus's sigma 0.3 made 0.32% of its LR values one level off the float64 formula).
    Only noise-free Gaussian-field recipes with the direct downsampler are exact to begin with,
    so only they are settled; with noise the tie is a draw, and JPEG comes after this.

    Args:
        lr: uint8 (h, w, 3) rounded LR, corrected in place.
        lr_t: the float32 (3, h, w) LR it was rounded from.
        hr: uint8 (H, W, 3) HR.

    Returns:
        How many LR values were recomputed in float64.
    """
    if recipe.uses_taps or recipe.downsampler != "direct" or draw.noise_sigma_255 is not None:
        return 0
    v = lr_t.detach().to("cpu", torch.float64).numpy() * 255.0
    near = np.abs(v - np.floor(v) - 0.5) < TIE_BAND_255
    pix = np.argwhere(near.any(axis=0))  # (N, 2) LR (i, j) with a channel near a tie
    if len(pix) == 0:
        return 0
    s, k, delta = recipe.scale, recipe.kernel_size, recipe.delta_px
    rows = mirror_indices(hr.shape[0], k // 2, "reflect")
    cols = mirror_indices(hr.shape[1], k // 2, "reflect")
    offs = np.arange(k)
    hr64 = hr.astype(np.float64) / 255.0
    for start in range(0, len(pix), _SETTLE_CHUNK):
        ij = pix[start:start + _SETTLE_CHUNK]
        params = torch.from_numpy(draw.kernel_field[:, ij[:, 0], ij[:, 1]].T.astype(np.float64))
        kern = gaussian_kernels(params, k, delta).numpy()  # (n, K, K)
        win = hr64[rows[s * ij[:, 0, None] + offs][:, :, None], cols[s * ij[:, 1, None] + offs][:, None, :]]
        exact = np.einsum("nab,nabc->nc", kern, win) * 255.0  # (n, 3)
        lr[ij[:, 0], ij[:, 1]] = np.clip(np.rint(exact), 0, 255).astype(np.uint8)
    return int(near.sum())
