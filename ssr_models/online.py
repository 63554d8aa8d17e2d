"""Online degradation: training batches made from HR images, degraded afresh for every step.

The build pipeline's pieces, reused as they are: sources (``ssr_datasets.sources``), depth
providers (``degrade.depth``), recipes and kernel fields (``degrade.recipes``,
``degrade.fields``), the exact blur (``degrade.ops.blur.apply_kernel_field``, backend
``auto``: the fused Triton kernel on CUDA, the C kernel on CPU), noise and quantization
(``degrade.ops.noise``, ``degrade.ops.quantize``). The batch is the same ``Batch`` shards
give (HR, LR, nearness on the shards' uint16 grid, the ground-truth kernel field), so every
stage and model trains unchanged on either input.

Where the work happens:

* DataLoader workers (CPU, :mod:`ssr_models.loader`; each image decoded by one worker):
  load the image, its nearness (``gt`` from the source's depth; ``prior`` or ``cache``, a
  learned model with local weights: through the depth cache, so each image's map is computed
  once, on first use, and read back afterwards), then per
  crop an aligned random crop, one of the 8 flips/rotations, and the recipe's draws (kernel
  field, noise sigma, JPEG quality).
* The training device (main process): blur + direct downsampling of the whole batch, noise,
  clip, rounding to 8 bits, JPEG: ``cpu`` = OpenCV (the build's codec, exact), ``kornia`` =
  ``kornia.enhance.jpeg_codec_differentiable`` on the device (DiffJPEG, as Real-ESRGAN
  trains; an approximation of a real codec), then rounding to 8 bits again.

Randomness (DESIGN.md section 5): crop ``i`` of step ``t`` on rank ``r`` draws everything
from ``Philox(seed, t, r, i)`` (crop offset, flip/rotation, then the recipe's draws in the
order of :func:`degrade.fields.draw_degradation`, then the noise itself); the generator's
state travels with the batch so the device side continues the same stream. Which image
fills a slot comes from a per-epoch permutation of the source's images by ``(seed, epoch)``,
slot ``g = (t * world_size + r) * images_per_batch + j`` (disjoint across ranks). So the
batches depend only on (seed, step, rank): any ``num_workers`` gives the same ones, and
resuming is setting the step.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.formats import DEFAULT_MAX_PIXELS
from ssr_datasets.schema import NEARNESS_MAX, make_key, nearness_to_u16

from .augment import draw_symmetry, symmetry_image
from .batch import Batch
from .configs import ONLINE_DEPTH, OnlineDepth
from .loader import LoaderOptions, iterate, philox
from .prefetch import prefetched

__all__ = ["ONLINE_DEPTH", "ONLINE_JPEG", "OnlineDepth", "OnlineJpeg", "OnlineSpec",
           "OnlineStream", "PendingBatch", "degrade_batch"]

OnlineJpeg = Literal["cpu", "kornia"]
ONLINE_JPEG: tuple[str, ...] = get_args(OnlineJpeg)
_TAG_ORDER, _TAG_CROP = 11, 12


@dataclass(frozen=True)
class OnlineSpec:
    """Where HR images come from and how they are degraded (recorded in run.json).

    Attributes:
        source: A registered source name (``ssr_datasets.sources``), e.g. ``sample``, ``div2k``.
        root: The source's data folder (None for sources that need none).
        split: The source's split (None: its default).
        recipe: Built-in recipe name or a recipe YAML path.
        depth: ``gt`` (the source's metric depth; images without it are left out), ``prior``
            or ``cache`` (a learned model with local weights, maps kept in the depth cache).
        jpeg: ``cpu`` (OpenCV, exact) or ``kornia`` (differentiable, on the training device).
        depth_cache: Depth cache folder for ``prior`` and ``cache`` maps (None: the default,
            ``$SSR_BENCH_CACHE/depth`` or ``~/.cache/ssr-bench/depth``).
    """

    source: str
    root: str | None = None
    split: str | None = None
    recipe: str = "ssr"
    depth: OnlineDepth = "prior"
    jpeg: OnlineJpeg = "cpu"
    depth_cache: str | None = None

    def __post_init__(self) -> None:
        if self.depth not in ONLINE_DEPTH:
            raise ConfigError(f"online depth must be one of {', '.join(ONLINE_DEPTH)}, "
                              f"got {self.depth!r}")
        if self.jpeg not in ONLINE_JPEG:
            raise ConfigError(f"online_jpeg must be one of {', '.join(ONLINE_JPEG)}, "
                              f"got {self.jpeg!r}")


@dataclass
class PendingBatch:
    """What a worker hands over: crops and draws, not yet blurred (B crops, side H HR px).

    Attributes:
        hr: uint8 (B, 3, H, W) RGB (a quarter of float32's bytes between processes).
        nearness: float32 (B, 1, H, W) in [0, 1] on the shards' uint16 grid.
        kernel_field: float32 (B, 3, H/s, W/s): s1, s2 (HR px), theta (rad) per LR pixel.
        noise: Per crop (sigma on the 0-255 scale, gray) or None.
        jpeg_quality: Per crop the JPEG quality or None.
        rng_states: Per crop the Philox state after the worker's draws (noise comes next).
        keys: ``{source}-{image_id}-{crop:03d}`` per crop.
    """

    hr: torch.Tensor
    nearness: torch.Tensor
    kernel_field: torch.Tensor
    noise: list[tuple[float, bool] | None]
    jpeg_quality: list[int | None]
    rng_states: list[dict[str, Any]]
    keys: tuple[str, ...]

    def pin_memory(self) -> PendingBatch:
        """Return a copy with pinned tensors (DataLoader ``pin_memory=True`` calls this)."""
        return dataclasses.replace(self, **{n: getattr(self, n).pin_memory()
                                            for n in ("hr", "nearness", "kernel_field")})


def _quantize(x: torch.Tensor) -> torch.Tensor:
    # Same values as degrade.ops.quantize.to_uint8 (round half to even) / 255, on the device.
    return torch.round(x * 255.0).clamp_(0.0, 255.0).div_(255.0)


def degrade_batch(pending: PendingBatch, scale: int, kernel_size: int, delta: float,
                  device: torch.device | str, jpeg: OnlineJpeg = "cpu") -> Batch:
    """Blur, downsample, add noise, quantize and JPEG a pending batch on ``device``.

    Returns:
        A ``Batch`` on ``device``: LR (B, 3, H/s, W/s) on the 8-bit grid, like a shard's.
    """
    from degrade.ops.blur import apply_kernel_field
    from degrade.ops.noise import add_gaussian_noise
    from degrade.ops.quantize import jpeg_roundtrip, to_uint8

    hr = pending.hr.to(device, non_blocking=True).float().div_(255.0)
    kernel = pending.kernel_field.to(device, non_blocking=True)
    near = pending.nearness.to(device, non_blocking=True)
    lr = apply_kernel_field(hr, kernel, scale, kernel_size, delta, backend="auto")
    rows = []
    for i, noise in enumerate(pending.noise):
        row = lr[i]
        if noise is not None:
            rng = np.random.Generator(np.random.Philox())
            rng.bit_generator.state = pending.rng_states[i]
            row = add_gaussian_noise(row, noise[0], noise[1], rng)
        rows.append(row)
    lr = torch.stack(rows).clamp_(0.0, 1.0)
    quality = pending.jpeg_quality
    if jpeg == "cpu":
        out = []
        lr_host = lr.detach().cpu()  # one copy (and one sync) for the whole batch
        for i, q in enumerate(quality):
            u8 = to_uint8(lr_host[i])
            out.append(torch.from_numpy(u8 if q is None else jpeg_roundtrip(u8, q)))
        lr = torch.stack(out).permute(0, 3, 1, 2).to(device).float().div_(255.0)
    else:
        try:
            from kornia.enhance import jpeg_codec_differentiable
        except ImportError:
            raise ConfigError("online_jpeg: kornia needs kornia: pip install "
                              "'ssr-bench[online]' (or use online_jpeg: cpu)") from None

        lr = _quantize(lr)
        sel = [i for i, q in enumerate(quality) if q is not None]
        if sel:
            q = torch.tensor([float(quality[i]) for i in sel], device=lr.device)
            lr[sel] = _quantize(jpeg_codec_differentiable(lr[sel], q).clamp_(0.0, 1.0))
    return Batch(hr=hr, lr=lr.contiguous(), nearness=near, kernel_field=kernel, scale=scale,
                 kernel_size=kernel_size, delta=delta, keys=pending.keys)


class OnlineStream:
    """Endless, reproducible, resumable batches degraded online from a source's HR images.

    Args:
        spec: Source, recipe, depth and JPEG choices.
        crop_hr: HR crop side in px (a multiple of the recipe's scale).
        batch_size: Crops per step (per rank).
        seed: Seeds image order, crops and every draw.
        rank, world_size: DDP rank and number of ranks.
        num_workers, prefetch_factor, pin_memory: as for ``TrainingStream``.
        crops_per_image: Crops per loaded image (one decode and one nearness map for all).
        device: Where the blur, noise and JPEG run (the training device).
        prefetch: Batches degraded ahead in a background thread while the caller trains
            (0 = degrade inside ``next()``, in the caller's thread; None = 2 on CUDA, 0 on a
            CPU, where the thread competes with the step for cores); same batches either way.
        max_pixels: Images whose header declares more pixels are left out when the stream
            starts (``skipped``: portable path -> reason, and a warning), as ``degrade build
            --max-pixels`` skips them.
        augment: Flip/rotate each HR crop before it is degraded (the field is drawn on it).

    Raises:
        ConfigError: Invalid sizes, an unknown source/recipe, or ``cache`` depth without
            learned weights on disk.
        MissingAssetError: The source's data is absent.
        InputError: No usable image (e.g. none with depth for ``gt``).
    """

    def __init__(self, spec: OnlineSpec, crop_hr: int, batch_size: int, seed: int, *,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0,
                 prefetch_factor: int = 2, pin_memory: bool = False, crops_per_image: int = 1,
                 device: torch.device | str = "cpu", prefetch: int | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, augment: bool = True) -> None:
        from degrade.recipes import load_recipe
        from ssr_datasets.sources import list_items, require_build_source, split_by_pixel_cap

        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"need 0 <= rank < world_size, got rank {rank} of {world_size}")
        if prefetch is not None and prefetch < 0:
            raise ConfigError(f"prefetch must be >= 0, got {prefetch}")
        if batch_size < 1 or crops_per_image < 1 or batch_size % crops_per_image:
            raise ConfigError(f"need batch_size >= 1 and crops_per_image dividing it, got "
                              f"{batch_size}, {crops_per_image}")
        self.recipe = load_recipe(spec.recipe)
        if self.recipe.uses_taps or self.recipe.downsampler != "direct":
            # Training consumes the exact kernel field as ground truth: protocol recipes with
            # taps or a bicubic downsampler are for building test shards (degrade build).
            raise ConfigError(f"recipe {self.recipe.name!r} ({self.recipe.blur.model}, "
                              f"{self.recipe.downsampler} downsampler) is not supported online: "
                              "online degradation takes Gaussian-field recipes with the direct "
                              "downsampler; build shards with `degrade build` instead")
        s = self.recipe.scale
        if crop_hr < max(s, 1) or crop_hr % s:
            raise ConfigError(f"crop_hr must be a positive multiple of the scale {s}, got {crop_hr}")
        require_build_source(spec.source)
        items = list_items(spec.source, Path(spec.root) if spec.root else None, spec.split)
        if spec.depth == "gt":  # a per-image fact: images without depth are left out
            items = [it for it in items if it.depth_path is not None]
        items, self.skipped = split_by_pixel_cap(items, max_pixels)
        if self.skipped:
            listed = "; ".join(f"{p}: {r}" for p, r in list(self.skipped.items())[:5])
            warnings.warn(f"online stream: {len(self.skipped)} image(s) over max_pixels "
                          f"{max_pixels} left out ({listed})", stacklevel=2)
        if not items:
            raise InputError(spec.root or spec.source, "no usable images" + (
                " with ground-truth depth (--depth gt)" if spec.depth == "gt" else "") + (
                f" ({len(self.skipped)} over max_pixels {max_pixels})" if self.skipped else ""))
        self.provider = self._provider(spec)
        self.spec, self.items = spec, items
        self.crop_hr, self.batch_size, self.seed = crop_hr, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.crops_per_image, self.augment = crops_per_image, bool(augment)
        self.images_per_batch = batch_size // crops_per_image
        self.loader = LoaderOptions(num_workers, prefetch_factor, pin_memory)
        self.device = torch.device(device)
        self.prefetch = (2 if self.device.type == "cuda" else 0) if prefetch is None else prefetch
        self.scale, self.kernel_size, self.delta = s, self.recipe.kernel_size, self.recipe.delta_px
        self._step = 0

    @staticmethod
    def _provider(spec: OnlineSpec) -> str:
        if spec.depth != "cache":
            return spec.depth
        from degrade.depth import check_depth_provider, resolve_depth

        provider, _ = resolve_depth("auto", has_gt=False)
        if provider == "prior":
            raise ConfigError("--depth cache needs a learned depth model with weights on disk "
                              "(pip install 'ssr-bench[depth]' and its weights; see degrade "
                              "build --help), or use --depth prior")
        check_depth_provider(provider)
        return provider

    # ---- position -------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"seed": self.seed, "batch_size": self.batch_size, "crop_hr": self.crop_hr,
                "world_size": self.world_size, "crops_per_image": self.crops_per_image,
                "n_images": len(self.items), "recipe_hash": self.recipe.hash,
                "depth": self.spec.depth, "jpeg": self.spec.jpeg, "augment": self.augment}

    def state_dict(self) -> dict[str, Any]:
        """Return the position (the next step) and the settings it is valid for."""
        return {"step": self._step, **self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position.

        Raises:
            ConfigError: The state came from a stream with other settings.
        """
        state = {"augment": True, **state}  # states from before augment was a setting
        diff = {k: (state.get(k), v) for k, v in self._identity().items() if state.get(k) != v}
        if diff:
            raise ConfigError(f"online stream state does not match this stream (saved, now): "
                              f"{diff}")
        self._step = int(state["step"])

    # ---- plan (cheap, in every worker) and make (one worker per step) ---------------------
    def plan(self, epoch: int, batch: int) -> Iterator[tuple[int, int, Any]]:
        """Yield ``(0, step, (step, image indices))`` from step ``batch`` on."""
        n, ipb = len(self.items), self.images_per_batch
        perms: dict[int, np.ndarray] = {}
        step = batch
        while True:
            picks = []
            for j in range(ipb):
                g = (step * self.world_size + self.rank) * ipb + j
                e = g // n
                if e not in perms:
                    perms = {e: philox(self.seed, e, _TAG_ORDER).permutation(n)}
                picks.append(int(perms[e][g % n]))
            yield epoch, step, (step, picks)
            step += 1

    def nearness(self, loaded: Any) -> np.ndarray:
        """Nearness (H, W) float32 of a loaded image, on the shards' uint16 grid.

        ``prior`` and learned maps go through the depth cache, keyed by the image's pixels,
        so each image's map is computed once per cache (not per crop, step or run).
        """
        import warnings

        from degrade import __version__
        from degrade.depth import estimate_nearness, estimate_nearness_batch
        from degrade.depth.cache import DepthCache, DepthKey

        cache = DepthCache(self.spec.depth_cache)
        if self.provider == "gt":
            near = estimate_nearness("gt", loaded.rgb, loaded.depth_m).nearness
        elif self.provider == "prior":
            key = DepthKey(loaded.pixel_sha256, f"prior@ssr-bench-{__version__}")
            near = cache.get(key)
            if near is None or near.shape != loaded.rgb.shape[:2]:
                near = estimate_nearness("prior", loaded.rgb, None).nearness
                try:
                    cache.put(key, near)
                except OSError as exc:  # a full or read-only cache costs time, not the run
                    warnings.warn(f"depth cache {cache.folder} not written: {exc}", stacklevel=2)
        else:
            near = estimate_nearness_batch(self.provider, [loaded.rgb], [None],
                                           [loaded.pixel_sha256], cache=cache,
                                           batch_size=1)[0].nearness
        # The shards' grid, so that online and shard batches carry the same nearness values.
        return nearness_to_u16(near).astype(np.float32) / np.float32(NEARNESS_MAX)

    def make(self, work: tuple[int, list[int]]) -> PendingBatch:
        """Load each picked image once; cut, augment and draw its ``crops_per_image`` crops."""
        from degrade.fields import draw_degradation
        from ssr_datasets.sources import load_item

        step, picks = work
        c, s = self.crop_hr, self.scale
        hrs, nears, fields, noise, quality, states, keys = [], [], [], [], [], [], []
        for j, index in enumerate(picks):
            item = self.items[index]
            loaded = load_item(item)
            h, w = loaded.rgb.shape[:2]
            if min(h, w) < c:
                raise InputError(item.portable_path, f"image {h}x{w} is smaller than the {c} px "
                                                     "crop; lower crop_hr or leave it out")
            near_img = self.nearness(loaded)
            for k in range(self.crops_per_image):
                i = j * self.crops_per_image + k
                rng = philox(self.seed, step, self.rank, i, _TAG_CROP)
                top = int(rng.integers((h - c) // s + 1)) * s
                left = int(rng.integers((w - c) // s + 1)) * s
                code = draw_symmetry(rng) * self.augment  # drawn either way: later draws stay put
                hr = symmetry_image(loaded.rgb[top:top + c, left:left + c], code)
                near = symmetry_image(near_img[top:top + c, left:left + c], code)
                draw = draw_degradation(self.recipe, near, rng)
                hrs.append(hr)
                nears.append(near)
                fields.append(draw.kernel_field)
                noise.append(None if draw.noise_sigma_255 is None
                             else (draw.noise_sigma_255, bool(draw.noise_gray)))
                quality.append(draw.jpeg_quality)
                states.append(rng.bit_generator.state)
                keys.append(make_key(item.source, item.image_id, k))
        return PendingBatch(
            hr=torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).contiguous(),
            nearness=torch.from_numpy(np.stack(nears))[:, None],
            kernel_field=torch.from_numpy(np.stack(fields)), noise=noise, jpeg_quality=quality,
            rng_states=states, keys=tuple(keys))

    def __iter__(self) -> Iterator[Batch]:
        """Yield degraded batches on ``device`` forever from the current step.

        With ``prefetch`` > 0 the device work of the next batches runs in a background thread
        (:func:`ssr_models.prefetch.prefetched`) while the caller trains on this one; the
        position (``state_dict``) counts only the batches handed to the caller.
        """
        # Workers start here, in the caller's thread (never fork from the prefetch thread).
        planned = iterate(self, 0, self._step, self.loader)
        made = prefetched(((step, degrade_batch(pending, self.scale, self.kernel_size,
                                                self.delta, self.device, self.spec.jpeg))
                           for _, step, pending in planned), self.prefetch, self.device)
        try:
            for step, batch in made:
                self._step = step + 1
                yield batch
        finally:
            made.close()
