"""Blind SR inference from a training run folder: SVKR, one DKENet -> NBSR pass, or diffusion.

``SRPipeline.from_checkpoint(run_dir)`` rebuilds the trained stages (``run_dir/kernel``,
``run_dir/nbsr``, ``run_dir/diffusion``; EMA weights) through :mod:`ssr_models.run`, and
``pipeline(lr_uint8)`` returns an :class:`SRResult`. Methods (``Method``):

* ``svkr``: Algorithm 1 (:class:`ssr_models.svkr.SVKR`) with DKENet as KE, NBSR as the restorer
  and the degrade depth provider ``depth`` (default ``prior``) as DE; the SR image is I^T.
* ``nbsr-dkenet``: one pass, D = DE(bicubic LR), K = DKENet(LR, D), SR = NBSR(LR, K).
* ``diffusion``: ``PixelSSR.sample`` conditioned on DKENet's kernel field and the nearness.
  When the run also has an nbsr stage, ``svkr_iterations > 0`` and the diffusion model was
  trained with ``use_svkr``, K and D come from SVKR (K^T, D^T), else from the one pass above.
* ``auto``: ``diffusion`` when its stage's recorded validation beats bicubic, else ``svkr``
  (:func:`ssr_models.method_choice.choose_method`; ``SRPipeline.choice`` holds the reason and a
  warning when the chosen stage validated below bicubic).

Kernel field for diffusion (and for ``SRResult.kernel_field``): (s1, s2, theta) per LR pixel.
A param-head DKENet gives it directly. A kernel-head DKENet gives K x K taps; each is reduced to
its second central moments, Sigma = sum_ab k (d - mu)(d - mu)^T with d = (column offset, row
offset) in HR px, then :func:`degrade.ops.kernels.sigmas_from_covariance`. The LR grid offset
delta drops out of central moments. A Gaussian cut by the K x K window has a smaller variance
than its sigma^2, so wide kernels come out a little narrow; s1, s2 are clamped below at the
DKENet's ``min_sigma`` (a one-tap kernel would give 0, which Eq. 1's precision cannot take).

Tiling (any image size; :mod:`ssr_models.tiling`): evenly spread ``tile`` x ``tile`` LR px
windows overlapping by at least ``overlap`` px, blended with a raised-cosine ramp. Every window
runs the whole method on its own: the nearness and the kernel field are estimated per tile, so
a global depth cue (the ``prior`` provider's top-to-bottom ramp) restarts in every tile; use a
tile at least the image size when that matters. Images (or tiles) smaller than ``min_size`` or
not a multiple of what the diffusion UNet needs are reflect-padded at the bottom and right and
the output is cropped back.

Progress: ``pipeline(lr, progress=fn)`` calls ``fn(Progress)`` once before the first tile and
after every work unit: an SVKR iteration, a diffusion reverse step, or a whole tile of the
one-pass nbsr-dkenet (:meth:`SRPipeline.plan` counts them); the library never prints.

Determinism: no global RNG; diffusion noise comes from one ``torch.Generator`` seeded with
``seed`` per image, tiles are drawn in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from degrade.depth import check_depth_provider
from degrade.ops.kernels import centered_delta, sigmas_from_covariance
from ssr_core.devices import resolve_device
from ssr_core.errors import ConfigError

from .method_choice import (
    DEPTH_CHOICES,
    METHODS,
    STAGES,
    DepthChoice,
    Method,
    MethodChoice,
    choose_method,
    find_stages,
    paper_method,
    resolve_method,
    stages_used,
)
from .svkr import PRIOR_FIXED_POINT_NOTE, SVKR, paper_depth_provider, provider_depth_estimator
from .tiling import TileFn, blend_tiles, ramp_window, tile_starts

__all__ = ["DEPTH_CHOICES", "METHODS", "STAGES", "Method", "MethodChoice", "Progress", "SRPipeline",
           "SRResult", "TileFn", "blend_tiles", "choose_method", "find_stages", "taps_to_kernel_field",
           "paper_method", "ramp_window", "resolve_method", "stages_used", "tile_starts"]

ProgressFn = Callable[["Progress"], None]


@dataclass(frozen=True)
class SRResult:
    """One super-resolved image.

    Attributes:
        sr: uint8 (s*h, s*w, 3) RGB.
        nearness: float32 (s*h, s*w) in [0, 1] (1 = near), the depth the method used, or None.
        kernel_field: float32 (3, h, w) of (s1, s2, theta) per LR pixel (HR px, radians), or None.
    """

    sr: np.ndarray
    nearness: np.ndarray | None
    kernel_field: np.ndarray | None


@dataclass(frozen=True)
class Progress:
    """Where one image stands: ``step`` of ``steps`` done in tile ``tile`` of ``tiles`` (1-based tile)."""

    tile: int
    tiles: int
    step: int
    steps: int

    @property
    def done(self) -> int:
        """Work units done in this image (a unit = one diffusion step, or one tile otherwise)."""
        return (self.tile - 1) * self.steps + self.step

    @property
    def total(self) -> int:
        """Work units of this image."""
        return self.tiles * self.steps


def taps_to_kernel_field(kernel_taps: torch.Tensor, min_sigma: float = 0.2) -> torch.Tensor:
    """Fit (s1, s2, theta) (B, 3, h, w) to per-pixel kernel_taps (B, K*K, h, w) by their second moments.

    s1 >= s2 >= ``min_sigma`` in HR px, theta in [0, pi) from +x toward +y (DESIGN.md section 3).
    """
    b, kk, h, w = kernel_taps.shape
    k = math.isqrt(kk)
    if k * k != kk or k % 2 == 0:
        raise ConfigError(f"kernels must have K*K channels with K odd, got {kk}")
    taps = kernel_taps.double().view(b, k, k, h, w)
    taps = taps / taps.sum((1, 2), keepdim=True).clamp_min(1e-12)
    d = torch.arange(k, dtype=torch.float64, device=kernel_taps.device) - k // 2
    dy, dx = d.view(1, k, 1, 1, 1), d.view(1, 1, k, 1, 1)
    mx, my = (taps * dx).sum((1, 2)), (taps * dy).sum((1, 2))
    xx = (taps * dx * dx).sum((1, 2)) - mx * mx
    yy = (taps * dy * dy).sum((1, 2)) - my * my
    xy = (taps * dx * dy).sum((1, 2)) - mx * my
    cov = torch.stack([torch.stack([xx, xy], -1), torch.stack([xy, yy], -1)], -2)
    s1, s2, theta = sigmas_from_covariance(cov)
    return torch.stack([s1.clamp_min(min_sigma), s2.clamp_min(min_sigma), theta], 1).to(kernel_taps.dtype)


def _reflect_pad(lr: torch.Tensor, min_size: int, multiple: int) -> torch.Tensor:
    """Reflect-pad lr (1, 3, h, w) at the bottom/right to >= min_size and a multiple of ``multiple``."""
    h, w = lr.shape[-2:]
    th = -(-max(h, min_size) // multiple) * multiple
    tw = -(-max(w, min_size) // multiple) * multiple
    if (th, tw) == (h, w):
        return lr
    arr = np.pad(lr.cpu().numpy(), ((0, 0), (0, 0), (0, th - h), (0, tw - w)), mode="symmetric")
    return torch.from_numpy(arr).to(lr.device)


class SRPipeline:
    """Super-resolve uint8 RGB images with trained SSR stages; see the module docstring."""

    def __init__(self, method: Method, kernel_net: nn.Module, *, scale: int,
                 restorer: nn.Module | None = None,
                 diffusion: nn.Module | None = None, delta: float | None = None, device: str = "cpu",
                 svkr_iterations: int = 3, gamma: float = 0.9, depth: DepthChoice = "auto",
                 tile: int = 256, overlap: int = 16, min_size: int = 16, seed: int = 0,
                 steps: int | None = None, allow_download: bool = False) -> None:
        """Hold eval-mode models; ``method`` must already be resolved (not "auto").

        Args:
            kernel_net: DKENet. restorer: NBSR (svkr, nbsr-dkenet; optional for diffusion).
            diffusion: PixelSSR (diffusion). scale: s. delta: LR grid offset, HR px (None: centred).
            svkr_iterations: T of Algorithm 1 (>= 1 for svkr). gamma: Eq. 2 weight.
            depth: degrade depth provider used as DE; "auto" is the paper's learned DE (MiDaS, then
                Depth Anything) when its weights are on disk, else "prior" (see ``depth_note``).
            tile, overlap, min_size: LR px (tiling).
            seed: diffusion noise seed. steps: diffusion reverse steps (None: all T).
            allow_download: let a learned ``depth`` fetch missing weights from the hub (once,
                here; never when HF_HUB_OFFLINE is set).
        """
        need = {"svkr": restorer, "nbsr-dkenet": restorer, "diffusion": diffusion}
        if method not in need or need[method] is None:
            raise ConfigError(f"method {method!r} needs its restorer model (methods: {METHODS[1:]})")
        if method == "svkr" and svkr_iterations < 1:
            raise ConfigError(f"svkr needs svkr_iterations >= 1, got {svkr_iterations}")
        if depth not in DEPTH_CHOICES:
            raise ConfigError(f"unknown depth provider {depth!r}; choose one of: {', '.join(DEPTH_CHOICES)}")
        if tile < 1 or not 0 <= overlap < tile or min_size < 1:
            raise ConfigError(f"need tile >= 1, 0 <= overlap < tile, min_size >= 1; "
                              f"got tile {tile}, overlap {overlap}, min_size {min_size}")
        torch_device = torch.device(resolve_device(device))
        if depth == "auto":
            depth = paper_depth_provider()[0]  # type: ignore[assignment]
        check_depth_provider(depth, device=device, allow_download=allow_download)
        self.method, self.device, self.scale = method, torch_device, int(scale)
        self.kernel_net = kernel_net.to(self.device).eval()
        self.restorer = restorer.to(self.device).eval() if restorer is not None else None
        self.diffusion = diffusion.to(self.device).eval() if diffusion is not None else None
        self.delta = centered_delta(self.scale) if delta is None else float(delta)
        self.svkr_iterations, self.gamma, self.seed, self.steps = svkr_iterations, gamma, seed, steps
        self.depth_estimator = provider_depth_estimator(depth)
        self.multiple = 1
        # The pixel UNet needs H, W multiples of its factor; a model with ``size_multiple``
        # (latent SSR) pads its input itself.
        if self.diffusion is not None and method == "diffusion" and not hasattr(self.diffusion,
                                                                                "size_multiple"):
            factor = self.diffusion.unet.factor
            self.multiple = factor // math.gcd(factor, self.scale)
        self.min_size = -(-min_size // self.multiple) * self.multiple
        self.tile = max(self.min_size, tile // self.multiple * self.multiple)
        self.overlap = min(overlap, self.tile - 1)
        self.choice = MethodChoice(method, "given to the constructor")
        self.checkpoints: dict[str, str] = {}  # stage -> checkpoint used (from_checkpoint)
        self.depth = depth
        self.depth_note = PRIOR_FIXED_POINT_NOTE if depth == "prior" and self._refines() else None

    @classmethod
    def from_checkpoint(cls, path: str | Path, method: Method = "auto", device: str = "cpu",
                        svkr_iterations: int = 3, depth: DepthChoice = "auto",
                        backbone: str | None = None, **options: object) -> SRPipeline:
        """Load the stages of a run folder (EMA weights) and build the pipeline for ``method``.

        Each stage loads ``best.pt`` when it has one, else ``last.pt``; ``checkpoints`` holds
        what was used per stage (``ssr_models.run.load_stage``'s notes).
        ``options`` go to the constructor (tile, overlap, min_size, seed, steps, gamma).
        ``backbone``: where an ssr-latent diffusion stage's backbone is on this machine (default:
        the folder or hub id its run recorded; the recorded sha256 must match either way).

        Raises:
            InputError: no such folder, or a stage the method needs is missing (names the folder
                and the missing stage).
            ConfigError: stages disagree on the scale; unknown method.
        """
        from .run import load_stage, read_run

        stages = find_stages(path)
        choice = choose_method(method, stages, path)
        method = choice.method
        use = stages_used(method, stages)
        runs = {s: read_run(stages[s]) for s in use}
        scales = {s: int(r["scale"]) for s, r in runs.items()}
        if len(set(scales.values())) != 1:
            raise ConfigError(f"{path}: stages disagree on the scale: {scales}")
        over = {"diffusion": {"backbone": str(backbone)}} if backbone is not None else {}
        loaded = {s: load_stage(stages[s], use_ema=True, map_location="cpu",
                                model_overrides=over.get(s)) for s in use}
        models = {s: model for s, (model, _) in loaded.items()}
        pipeline = cls(method, models["kernel"], scale=next(iter(scales.values())),  # type: ignore[arg-type]
                       restorer=models.get("nbsr"), diffusion=models.get("diffusion"),
                       delta=runs["kernel"].get("delta"), device=device,
                       svkr_iterations=svkr_iterations, depth=depth, **options)  # type: ignore[arg-type]
        pipeline.choice = choice
        pipeline.checkpoints = {s: note for s, (_, note) in loaded.items()}
        return pipeline

    def plan(self, h: int, w: int) -> tuple[int, int]:
        """Return (tiles, work units per tile) for an (h, w) LR image; see :class:`Progress`.

        A unit is one SVKR iteration (its restorer call) or one diffusion reverse step; the
        one-pass nbsr-dkenet counts one unit per tile.
        """
        tiles = len(tile_starts(h, self.tile, self.overlap)) * len(tile_starts(w, self.tile, self.overlap))
        units = self.svkr_iterations if self._refines() else 0
        if self.method == "diffusion":
            default = getattr(self.diffusion, "default_steps", None)  # latent SSR: its sampler's
            if default is None:
                default = self.diffusion.schedule.num_train_timesteps
            units += default if self.steps is None else self.steps
        return tiles, max(units, 1)

    def _refines(self) -> bool:
        """True when a tile runs SVKR (svkr; diffusion trained with use_svkr, given an nbsr stage)."""
        return self.restorer is not None and self.svkr_iterations > 0 and (
            self.method == "svkr" or (self.method == "diffusion" and self.diffusion.config.amf.use_svkr))

    # ---- one tile -----------------------------------------------------------------------------
    def _estimate(self, lr: torch.Tensor, nearness: torch.Tensor) -> torch.Tensor:
        """KE for SVKR/NBSR: a kernel field (param head, or kernel sizes differ), else kernel taps."""
        est = self.kernel_net(lr, nearness, self.delta)
        if est.kernel_field is not None:
            return est.kernel_field
        k_restorer = None if self.restorer is None else self.restorer.config.kernel_size
        if k_restorer is not None and k_restorer != self.kernel_net.config.kernel_size:
            return taps_to_kernel_field(est.kernel_taps, self.kernel_net.config.min_sigma)
        return est.kernel_taps

    def _as_kernel_field(self, kernel: torch.Tensor) -> torch.Tensor:
        """Return a kernel estimate (taps (1, K*K, h, w) or a kernel field) as a kernel field."""
        if kernel.shape[1] == 3:
            return kernel
        return taps_to_kernel_field(kernel, self.kernel_net.config.min_sigma)

    def _run_tile(self, lr: torch.Tensor, generator: torch.Generator, tick: Callable[[], None]
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Run the method on one LR tile (1, 3, h, w); ``tick()`` after every work unit."""
        h, w = lr.shape[-2:]
        lr = _reflect_pad(lr, self.min_size, self.multiple)
        if self._refines():
            def restore(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
                out = self.restorer.super_resolve(x, kernel)
                tick()  # SVKR calls the restorer once per iteration
                return out

            svkr = SVKR(self._estimate, restore, self.depth_estimator, self.svkr_iterations,
                        self.gamma, self.scale)
            sr, kernel, near = svkr(lr)
        else:
            # Algorithm 1's initialization line (I^0 = LR, D^0, K^0) without its loop.
            _, kernel, near = SVKR(self._estimate, lambda *_: lr, self.depth_estimator, 0,
                                   self.gamma, self.scale)(lr)
            sr = None
            if self.method == "nbsr-dkenet":
                sr = self.restorer.super_resolve(lr, kernel)
                tick()
        kernel_field = self._as_kernel_field(kernel)
        if self.method == "diffusion":
            sr = self.diffusion.sample(lr, kernel_field, near, steps=self.steps, generator=generator,
                                       scale=self.scale, kernel_size=self.kernel_net.config.kernel_size,
                                       delta=self.delta, callback=lambda done, total: tick())
        s = self.scale
        return sr[..., :s * h, :s * w], near[..., :s * h, :s * w], kernel_field[..., :h, :w]

    # ---- one image ----------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(self, lr: np.ndarray, seed: int | None = None, progress: ProgressFn | None = None
                 ) -> SRResult:
        """Super-resolve lr uint8 (h, w, 3) RGB.

        Args:
            seed: overrides the pipeline's diffusion seed.
            progress: called with a :class:`Progress` before the first tile and after each unit.
        """
        if not isinstance(lr, np.ndarray) or lr.dtype != np.uint8 or lr.ndim != 3 or lr.shape[2] != 3:
            got = f"{lr.dtype} {lr.shape}" if isinstance(lr, np.ndarray) else type(lr).__name__
            raise ConfigError(f"lr must be a uint8 (h, w, 3) RGB array, got {got}")
        if min(lr.shape[:2]) < 1:
            raise ConfigError(f"lr has zero size {lr.shape}")
        x = torch.from_numpy(np.array(lr, order="C")).permute(2, 0, 1)[None].float().div(255).to(self.device)
        generator = torch.Generator(device=self.device).manual_seed(self.seed if seed is None else seed)
        tiles, steps = self.plan(*lr.shape[:2])
        where = [0, 0]  # tile (1-based), units done in it

        def tick() -> None:
            where[1] += 1
            if progress is not None:
                progress(Progress(where[0], tiles, min(where[1], steps), steps))

        def run(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
            where[:] = [where[0] + 1, 0]
            return self._run_tile(t, generator, tick)

        if progress is not None:
            progress(Progress(1, tiles, 0, steps))
        sr, near, kernel_field = blend_tiles(x, run, self.scale, self.tile, self.overlap)
        out = (sr[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        return SRResult(np.ascontiguousarray(out),
                        None if near is None else near[0, 0].float().cpu().numpy(),
                        None if kernel_field is None else kernel_field[0].float().cpu().numpy())
