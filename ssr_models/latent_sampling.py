"""Latent SSR sampling: the reverse process with any diffusers scheduler, tiled in latent space.

:func:`reverse_process` runs ``model`` (a :class:`ssr_models.latent.LatentSSR`) from Gaussian
noise to an image: the scheduler's ``set_timesteps``/``scale_model_input``/``step``, epsilon
from ``model.eps`` with the encodings computed once per tile, the VQ decoder at the end.
Noise comes only from ``generator`` (diffusers' ``randn_tensor``, as its pipelines draw it).

:func:`tiled` is the latent-space counterpart of :func:`ssr_models.tiling.blend_tiles` (which
tiles whole SR methods on LR images and blends kernel fields too): the same window placement
(:func:`~ssr_models.tiling.tile_starts`) and raised-cosine weights
(:func:`~ssr_models.tiling.ramp_window`), for any batch size and channel count, with tile
sides rounded down to the multiple the UNet needs. An input that fits in one tile is passed
through whole, untouched (so an untiled run is bit-identical to the plain function).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ssr_core.errors import ConfigError
from ssr_models.tiling import ramp_window, tile_starts

__all__ = ["AMP_DTYPES", "SAMPLERS", "SampleAmp", "Sampler", "TileCall", "make_sampler",
           "reverse_process", "tiled"]

Sampler = Literal["ddim", "ddpm", "dpm-solver", "euler"]
# sampler name -> diffusers scheduler class, built from the backbone's scheduler config
SAMPLERS: dict[str, str] = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler",
                            "dpm-solver": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler"}
SampleAmp = Literal["off", "fp16", "bf16"]
AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}

# fn(x_tile (B, C, th, tw), (rows, cols) slices of the input, tile index) -> (B, C', s th, s tw)
TileCall = Callable[[torch.Tensor, tuple[slice, slice], int], torch.Tensor]


def tiled(fn: TileCall, x: torch.Tensor, tile: int, overlap: int, multiple: int = 1,
          out_scale: int = 1) -> torch.Tensor:
    """Apply ``fn`` to overlapping ``tile``-px windows of x (B, C, h, w); return the blended output.

    Args:
        fn: see :data:`TileCall`; called in row-major tile order, the index fixed per position.
        tile: window side in input px (0 = one window, the whole input); rounded down to a
            multiple of ``multiple`` (at least ``multiple``).
        overlap: at least this many px shared by neighbouring windows (< the rounded tile).
        out_scale: output px per input px (1 for epsilon, the VQ factor for decoding).

    Returns:
        (B, C', out_scale h, out_scale w): each output pixel the weighted mean of the windows
        covering it (raised-cosine ramps over ``overlap * out_scale`` px on inner edges).
    """
    h, w = x.shape[-2:]
    if tile == 0 or (h <= tile and w <= tile):
        return fn(x, (slice(0, h), slice(0, w)), 0)
    side = max(multiple, tile // multiple * multiple)
    if not 0 <= overlap < side:
        raise ConfigError(f"need 0 <= overlap < tile, got overlap {overlap}, tile {side}")
    if h % multiple or w % multiple:
        raise ConfigError(f"input {h}x{w} must be a multiple of {multiple} to tile")
    th, tw = min(side, h), min(side, w)
    s = out_scale
    out = weight = None
    key = 0
    for y in tile_starts(h, th, overlap):
        for x0 in tile_starts(w, tw, overlap):
            sl = (slice(y, y + th), slice(x0, x0 + tw))
            res = fn(x[(..., *sl)], sl, key)
            key += 1
            wy = ramp_window(th * s, overlap * s, y > 0, y + th < h)
            wx = ramp_window(tw * s, overlap * s, x0 > 0, x0 + tw < w)
            wgt = (wy[:, None] * wx[None, :]).to(device=res.device, dtype=res.dtype)
            if out is None:
                out = res.new_zeros((*res.shape[:-2], h * s, w * s))
                weight = res.new_zeros((h * s, w * s))
            region = (slice(y * s, (y + th) * s), slice(x0 * s, (x0 + tw) * s))
            out[(..., *region)] += res * wgt
            weight[region] += wgt
    return out / weight


def make_sampler(name: str, scheduler_config: dict[str, Any]) -> Any:
    """Return the diffusers scheduler ``name`` (a SAMPLERS key) built on ``scheduler_config``'s betas.

    Raises:
        ConfigError: an unknown name (the choices are listed).
    """
    import diffusers

    if name not in SAMPLERS:
        raise ConfigError(f"unknown sampler {name!r}; choose one of: {', '.join(SAMPLERS)}")
    return getattr(diffusers, SAMPLERS[name]).from_config(scheduler_config)


def reverse_process(model: Any, lr: torch.Tensor, kernel_field: torch.Tensor | None,
                    nearness: torch.Tensor | None, *, steps: int, sampler: Any,
                    generator: torch.Generator | None = None,
                    callback: Callable[[int, int], None] | None = None,
                    plain: bool = False) -> torch.Tensor:
    """Sample SR (B, 3, s h, s w) in [0, 1] from lr (B, 3, h, w) in [0, 1]; see the module doc.

    Sizes that are not a multiple of ``model.size_multiple`` are replicate-padded (LR, kernel
    field, nearness) and the output cropped back. ``plain`` runs the backbone alone.
    """
    from diffusers.utils.torch_utils import randn_tensor

    cfg = model.config
    sampler.set_timesteps(steps, device=lr.device)
    h, w = lr.shape[-2:]
    m, s = model.size_multiple, cfg.scale
    ph, pw = -h % m, -w % m
    lr2 = F.pad(lr * 2 - 1, (0, pw, 0, ph), mode="replicate")
    field = None if kernel_field is None else F.pad(kernel_field, (0, pw, 0, ph), mode="replicate")
    near = None if nearness is None else F.pad(nearness, (0, pw * s, 0, ph * s), mode="replicate")
    shape = (lr.shape[0], model.backbone_info.latent_channels, h + ph, w + pw)
    z = randn_tensor(shape, generator=generator, device=lr.device, dtype=lr.dtype)
    z = z * sampler.init_noise_sigma
    step_kw = {"generator": generator} if "generator" in inspect.signature(sampler.step).parameters else {}
    amp = AMP_DTYPES[cfg.sample_amp] if lr.device.type == "cuda" else None
    encodings: dict[int, Any] = {}  # per tile: they do not depend on t

    def predict(zt: torch.Tensor, sl: tuple[slice, slice], key: int, t: torch.Tensor) -> torch.Tensor:
        lr_t = lr2[(..., *sl)]
        if not plain and key not in encodings:
            rows, cols = sl
            f_t = None if field is None else field[(..., *sl)]
            n_t = None if near is None else near[..., rows.start * s:rows.stop * s,
                                                 cols.start * s:cols.stop * s]
            encodings[key] = model.encode(lr_t, f_t, n_t)
        return model.eps(zt, lr_t, t, None if plain else encodings[key]).float()

    total = len(sampler.timesteps)
    for i, t in enumerate(sampler.timesteps):
        zin = sampler.scale_model_input(z, t)
        with torch.autocast(lr.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            eps = tiled(lambda x, sl, key, t=t: predict(x, sl, key, t), zin, cfg.tile,
                        cfg.tile_overlap, m, 1)
        z = sampler.step(eps.to(z.dtype), t, z, **step_kw).prev_sample
        if callback is not None:
            callback(i + 1, total)
    img = tiled(lambda x, sl, key: model.vqvae.decode(x).sample, z, cfg.tile, cfg.tile_overlap, 1, s)
    return ((img[..., :h * s, :w * s].clamp(-1, 1) + 1) / 2).to(lr.dtype)
