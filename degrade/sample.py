"""One sample, start to finish: a loaded image becomes HR, LR, nearness and kernel field.

Order of operations (DESIGN.md section 3): mod-crop, optional random crop, nearness, kernel
field, exact blur + direct downsampling, noise, clip, uint8 by rounding, JPEG. The per-sample
generator is seeded from (global seed, recipe hash, key) and drawn in a fixed order: the crop
position first, then the recipe's draws (see :mod:`degrade.fields`), then the noise itself.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ssr_datasets.errors import InputError
from ssr_datasets.schema import SCHEMA_VERSION, Sample, make_key, nearness_to_u16
from ssr_datasets.sources import LoadedImage, SourceItem

from . import __version__
from .depth import DepthRequest, DepthResult
from .fields import draw_degradation
from .ops.blur import apply_kernel_field, select_backend
from .ops.kernels import truncation_stats
from .ops.noise import add_gaussian_noise
from .ops.quantize import jpeg_roundtrip, to_uint8
from .recipes import TRUNCATION_WARN, Recipe


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over samples."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, start: float) -> float:
        """Add the time since ``start`` (perf_counter) to ``stage`` and return now."""
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - start
        return now

    def merge(self, other: dict[str, float]) -> None:
        """Add another record's seconds into this one."""
        for k, v in other.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v


def sample_rng(seed: int, recipe_hash: str, key: str) -> np.random.Generator:
    """Return the sample's generator: Philox seeded by (global seed, recipe hash, key hash)."""
    key_hash = int(hashlib.sha256(key.encode()).hexdigest()[:32], 16)
    return np.random.Generator(np.random.Philox(np.random.SeedSequence(
        [int(seed), int(recipe_hash[:32], 16), key_hash])))


def crop_box(shape: tuple[int, int], crop: tuple[int, int] | None, scale: int,
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Return (top, left, height, width) of the HR region: a random crop, or the mod-cropped image.

    Crop corners are drawn on the LR grid (multiples of ``scale``) so that HR and LR stay aligned.
    """
    h, w = shape
    hm, wm = h - h % scale, w - w % scale
    if crop is None:
        return 0, 0, hm, wm
    ch, cw = crop
    if ch > hm or cw > wm:
        raise ValueError(f"image {h}x{w} is smaller than the crop {ch}x{cw}")
    top = int(rng.integers(0, (hm - ch) // scale + 1)) * scale
    left = int(rng.integers(0, (wm - cw) // scale + 1)) * scale
    return top, left, ch, cw


def check_usable(item: SourceItem, loaded: LoadedImage, recipe: Recipe, depth: DepthRequest) -> None:
    """Raise InputError if an image cannot give samples (too small, or no depth for --depth gt)."""
    s, k = recipe.scale, recipe.kernel_size
    h, w = loaded.rgb.shape[:2]
    if min(h - h % s, w - w % s) < max(k, 2 * s):
        raise InputError(item.portable_path, f"image {h}x{w} is smaller than the {k}x{k} kernel window")
    if depth == "gt" and loaded.depth_m is None:
        # A per-image fact, not a bad option: skip this image, keep the build going.
        raise InputError(item.portable_path, "no ground-truth depth (asked for --depth gt)")


def make_samples(
    item: SourceItem,
    loaded: LoadedImage,
    recipe: Recipe,
    depth: DepthResult,
    *,
    variants: int,
    seed: int,
    crop: tuple[int, int] | None,
    times: StageTimes,
) -> list[Sample]:
    """Degrade one loaded image with its nearness ``variants`` times; InputError if unusable."""
    s = recipe.scale
    h, w = loaded.rgb.shape[:2]
    depth_meta = depth.info
    depth_result = depth
    samples = []
    for variant in range(variants):
        key = make_key(item.source, item.image_id, variant)
        rng = sample_rng(seed, recipe.hash, key)
        try:
            top, left, ch, cw = crop_box((h, w), crop, s, rng)
        except ValueError as exc:
            raise InputError(item.portable_path, str(exc)) from exc
        hr = loaded.rgb[top:top + ch, left:left + cw].copy()
        near = depth_result.nearness[top:top + ch, left:left + cw].copy()
        samples.append(_degrade(item, loaded, recipe, key, variant, seed, rng, hr, near,
                                (top, left, ch, cw), depth_meta, times))
    return samples


def _degrade(item: SourceItem, loaded: LoadedImage, recipe: Recipe, key: str, variant: int,
             seed: int, rng: np.random.Generator, hr: np.ndarray, near: np.ndarray,
             box: tuple[int, int, int, int], depth_meta: dict[str, Any],
             times: StageTimes) -> Sample:
    s, k, delta = recipe.scale, recipe.kernel_size, recipe.delta_px
    t = time.perf_counter()
    draw = draw_degradation(recipe, near, rng)
    kfield = torch.from_numpy(draw.field)
    t = times.add("field", t)
    hr_t = torch.from_numpy(hr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    backend = select_backend(hr_t, kfield.unsqueeze(0), k, delta)
    lr_t = apply_kernel_field(hr_t, kfield.unsqueeze(0), s, k, delta, backend=backend)[0]
    t = times.add("blur", t)
    if draw.noise_sigma_255 is not None:
        lr_t = add_gaussian_noise(lr_t, draw.noise_sigma_255, bool(draw.noise_gray), rng)
    lr = to_uint8(lr_t.clamp_(0.0, 1.0))
    if draw.jpeg_quality is not None:
        lr = jpeg_roundtrip(lr, draw.jpeg_quality)
    t = times.add("noise_jpeg", t)
    trunc_max, trunc_mean = truncation_stats(kfield, k, delta)
    t = times.add("stats", t)

    top, left, ch, cw = box
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "package_version": __version__,
        "key": key,
        "source": item.source,
        "image_id": item.image_id,
        "variant": variant,
        "input": {
            "path": item.portable_path,
            "pixel_sha256": loaded.pixel_sha256,
            "size": list(loaded.rgb.shape[:2]),
            "conversions": list(loaded.conversions),
        },
        "crop": {"top": top, "left": left, "height": ch, "width": cw},
        "scale": s,
        "kernel_size": k,
        "delta": delta,
        "delta_mode": recipe.delta,
        "downsampler": recipe.downsampler,
        "blur_backend": backend,
        "kernel_family": "anisotropic-gaussian-v1",
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "recipe_hash": recipe.hash,
        "seed": seed,
        "blur": draw.blur_params,
        "kernel_range": {
            "s1": [float(draw.field[0].min()), float(draw.field[0].max())],
            "s2": [float(draw.field[1].min()), float(draw.field[1].max())],
        },
        "truncated_mass": {"max": trunc_max, "mean": trunc_mean,
                           "warn": trunc_max > TRUNCATION_WARN},
        "noise": None if draw.noise_sigma_255 is None else {
            "type": "gaussian", "sigma_255": draw.noise_sigma_255,
            "channels": "gray" if draw.noise_gray else "rgb"},
        "jpeg": None if draw.jpeg_quality is None else {
            "quality": draw.jpeg_quality, "codec": "opencv"},
        "rounding": "round-half-even",
        "depth": depth_meta,
    }
    return Sample(key=key, hr=hr, lr=lr, nearness=nearness_to_u16(near),
                  kernel=draw.field, meta=meta)
