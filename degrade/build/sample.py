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

from ssr_core.errors import InputError
from ssr_datasets.imageio import encode_png, minimal_png
from ssr_datasets.schema import SCHEMA_VERSION, Sample, encode_sample, make_key, nearness_to_u16
from ssr_datasets.sources import LoadedImage, SourceItem

from .. import __version__
from ..depth import DepthRequest, DepthResult
from ..fields import DegradationDraw, draw_degradation
from ..ops.downsample import blur_downsample
from ..ops.kernels import truncation_stats
from ..ops.noise import add_gaussian_noise
from ..ops.quantize import jpeg_roundtrip, to_uint8
from ..protocols import protocol_meta, settle_ties
from ..recipes import TRUNCATION_WARN, Recipe

# Samples of one size blurred per apply_kernel_field call: 16 DIV2K images are ~0.5 GB of float32
# on a GPU (input, padded copy), and a GPU reaches its throughput at a few images per call.
DEVICE_BATCH = 16


Clock = tuple[float, float]  # (perf_counter, thread_time) seconds


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over samples: wall clock and this thread's CPU time.

    The CPU seconds are what a stage costs on a shared machine (wall time there includes
    waiting for a core); encoding threads of device builds each add their own.
    """

    seconds: dict[str, float] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def now() -> Clock:
        """Return the clocks to pass to :meth:`add` later."""
        return time.perf_counter(), time.thread_time()

    def add(self, stage: str, start: Clock) -> Clock:
        """Add the time since ``start`` (from :meth:`now`) to ``stage`` and return now."""
        now = self.now()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now[0] - start[0]
        self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + now[1] - start[1]
        return now

    def merge(self, other: StageTimes) -> None:
        """Add another record's seconds into this one."""
        for mine, theirs in ((self.seconds, other.seconds), (self.cpu_seconds, other.cpu_seconds)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v


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


@dataclass
class PreparedSample:
    """One sample with its random draws done and its degradation not yet: the CPU half.

    ``hr`` is the uint8 (H, W, 3) crop, ``near`` its float nearness (H, W), ``draw`` the kernel
    field and stage parameters; ``rng`` is the sample's generator, positioned after those draws
    (the noise comes next).
    """

    item: SourceItem
    loaded: LoadedImage
    key: str
    variant: int
    rng: np.random.Generator
    hr: np.ndarray
    near: np.ndarray
    box: tuple[int, int, int, int]
    draw: DegradationDraw
    depth_meta: dict[str, Any]


def prepare_samples(
    item: SourceItem,
    loaded: LoadedImage,
    recipe: Recipe,
    depth: DepthResult,
    *,
    variants: int,
    seed: int,
    crop: tuple[int, int] | None,
    times: StageTimes,
) -> list[PreparedSample]:
    """Draw crop and kernel field of each variant of one image (CPU); InputError if unusable.

    The field stays on the CPU on every device: it is drawn from the per-sample numpy generator
    at LR resolution (2% of a CPU build), so CPU and GPU builds write the same ``kernel.npy``.
    """
    s = recipe.scale
    h, w = loaded.rgb.shape[:2]
    out = []
    for variant in range(variants):
        key = make_key(item.source, item.image_id, variant)
        rng = sample_rng(seed, recipe.hash, key)
        try:
            top, left, ch, cw = crop_box((h, w), crop, s, rng)
        except ValueError as exc:
            raise InputError(item.portable_path, str(exc)) from exc
        hr = loaded.rgb[top:top + ch, left:left + cw].copy()
        near = depth.nearness[top:top + ch, left:left + cw].copy()
        t = times.now()
        draw = draw_degradation(recipe, near, rng, variant)
        times.add("field", t)
        out.append(PreparedSample(item, loaded, key, variant, rng, hr, near, (top, left, ch, cw),
                                  draw, depth.info))
    return out


def degrade_batch(prepared: list[PreparedSample], recipe: Recipe, device: str, times: StageTimes,
                  max_batch: int = DEVICE_BATCH) -> list[tuple[torch.Tensor, str]]:
    """Blur + downsample (Eq. 1) and add noise to prepared samples on ``device``, in batches.

    Samples of equal HR size go through ``apply_kernel_field`` together (at most ``max_batch``
    at a time, in order); the noise is drawn from each sample's generator on the CPU and added on
    the device. Batching changes no bit: every backend computes each image on its own.

    Returns:
        Per sample, in order: the noisy LR as a float32 (3, h, w) CPU tensor in [0, 1], and the
        blur backend that ran ("c", "triton", "torch").
    """
    out: list[tuple[torch.Tensor, str] | None] = [None] * len(prepared)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, p in enumerate(prepared):
        by_shape.setdefault(p.hr.shape, []).append(i)
    for idx in by_shape.values():
        for start in range(0, len(idx), max_batch):
            chunk = idx[start:start + max_batch]
            t = times.now()
            hr_np = np.stack([prepared[i].hr for i in chunk])
            hr_t = torch.from_numpy(hr_np).to(device).permute(0, 3, 1, 2).float().div_(255.0)
            lr_t, backend = _blur_downsample_chunk(hr_t, [prepared[i] for i in chunk], recipe)
            t = times.add("blur", t)
            for n, i in enumerate(chunk):
                draw = prepared[i].draw
                lr = lr_t[n]
                if draw.noise_sigma_255 is not None:
                    lr = add_gaussian_noise(lr, draw.noise_sigma_255, bool(draw.noise_gray),
                                            prepared[i].rng)
                out[i] = (lr.clamp_(0.0, 1.0).cpu(), backend)
            times.add("noise_jpeg", t)
    return [o for o in out if o is not None]


def _blur_downsample_chunk(hr_t: torch.Tensor, prepared: list[PreparedSample],
                           recipe: Recipe) -> tuple[torch.Tensor, str]:
    """Blur + downsample a chunk of equal-size HR images with their draws' kernels."""
    s, k, delta, dev = recipe.scale, recipe.kernel_size, recipe.delta_px, hr_t.device
    draws = [p.draw for p in prepared]
    if recipe.downsampler == "chain":  # Real-ESRGAN, BSRGAN: one image at a time, on the CPU
        from ..ops.bsrgan import apply_bsrgan
        from ..ops.second_order import apply_realesrgan

        apply = apply_realesrgan if recipe.blur.model == "realesrgan" else apply_bsrgan
        lrs = [apply(hr_t[n:n + 1].cpu(), p.draw.second_order, s, p.rng)
               for n, p in enumerate(prepared)]
        return torch.cat(lrs).to(dev), f"{recipe.blur.model}-chain"
    if recipe.uses_taps:
        taps = torch.from_numpy(np.stack([d.taps for d in draws])).to(dev)
        return blur_downsample(hr_t, s, k, delta, recipe.downsampler, kernel_taps=taps,
                               passes=draws[0].passes, padding=recipe.padding)
    field = torch.from_numpy(np.stack([d.kernel_field for d in draws])).to(dev)
    return blur_downsample(hr_t, s, k, delta, recipe.downsampler, kernel_field=field)


def finish_sample(p: PreparedSample, lr_t: torch.Tensor, backend: str, recipe: Recipe, seed: int,
                  times: StageTimes, shared: dict | None = None) -> Sample:
    """Round to uint8, JPEG, truncation statistics and metadata: the sample as the shard holds it.

    ``shared`` (see :func:`encode_members`) keeps the uint16 nearness of each (image, crop)
    for the image's other variants. Thread-safe (OpenCV's codec releases the GIL): device
    builds run it on CPU threads.
    """
    s, k, delta = recipe.scale, recipe.kernel_size, recipe.delta_px
    item, loaded, draw, key, variant = p.item, p.loaded, p.draw, p.key, p.variant
    t = times.now()
    lr = to_uint8(lr_t)
    settled = settle_ties(lr, lr_t, p.hr, draw, recipe)
    if draw.jpeg_quality is not None:
        lr = jpeg_roundtrip(lr, draw.jpeg_quality)
    t = times.add("noise_jpeg", t)
    kfield = torch.from_numpy(draw.kernel_field)
    trunc_max, trunc_mean = truncation_stats(kfield, k, delta)
    times.add("stats", t)

    top, left, ch, cw = p.box
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
            "s1": [float(draw.kernel_field[0].min()), float(draw.kernel_field[0].max())],
            "s2": [float(draw.kernel_field[1].min()), float(draw.kernel_field[1].max())],
        },
        "truncated_mass": {"max": trunc_max, "mean": trunc_mean,
                           # the chain's kernels are the protocol's own (21 x 21), not a window to widen
                           "warn": trunc_max > TRUNCATION_WARN and draw.second_order is None},
        "noise": None if draw.noise_sigma_255 is None else {
            "type": "gaussian", "sigma_255": draw.noise_sigma_255,
            "channels": "gray" if draw.noise_gray else "rgb"},
        "jpeg": None if draw.jpeg_quality is None else {
            "quality": draw.jpeg_quality, "codec": "opencv"},
        "rounding": "round-half-even",
        "depth": p.depth_meta,
    }
    meta.update(protocol_meta(recipe, draw, settled))
    t = times.now()
    nearness = _once(shared, p, "nearness", lambda: nearness_to_u16(p.near))
    times.add("encode", t)
    return Sample(key=key, hr=p.hr, lr=lr, nearness=nearness, kernel_field=draw.kernel_field, meta=meta)


def encode_members(p: PreparedSample, sample: Sample, times: StageTimes,
                   shared: dict | None = None) -> dict[str, bytes]:
    """Encode a finished sample's five members (``ssr_datasets.schema.encode_sample``).

    ``hr.png`` and ``depth.png`` are encoded once per (image, crop box) and shared by the
    image's variants through ``shared`` (a dict the caller keeps for one group of images).
    When the HR is the whole input image and the input is an 8-bit RGB PNG, ``hr.png`` is
    the input's own compressed pixels (:func:`ssr_datasets.imageio.minimal_png`): the same
    pixels, without encoding them again.
    """
    t = times.now()

    def hr_png() -> bytes:
        h, w = p.loaded.rgb.shape[:2]
        if p.loaded.source_png is not None and p.box == (0, 0, h, w):
            reused = minimal_png(p.loaded.source_png, (h, w))
            if reused is not None:
                return reused
        return encode_png(sample.hr)

    done = {"hr.png": _once(shared, p, "hr.png", hr_png),
            "depth.png": _once(shared, p, "depth.png", lambda: encode_png(sample.nearness))}
    members = encode_sample(sample, done)
    times.add("encode", t)
    return members


def _once(shared: dict | None, p: PreparedSample, what: str, make: Any) -> Any:
    """Return ``make()``, computed once per (image, crop box, what) when ``shared`` is given."""
    if shared is None:
        return make()
    key = (id(p.loaded), p.box, what)
    if key not in shared:  # two encoding threads may both compute it: same value, no lock
        shared[key] = make()
    return shared[key]
