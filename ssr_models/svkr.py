"""Spatially Variant Kernel Refinement (SVKR): SSR paper Sec. 3.2, Algorithm 1 and Eq. 2.

Algorithm 1 as the paper writes it::

    Input: LR, depth estimator DE, DKENet KE, iterations T, gamma = 0.9
    Initialization: t = 0, I^0 = LR; D^0 = DE(I^0); K^0 = KE(LR, D^0)
    while t < T:
        D^{t+1} <- DE(I^t)                                   # estimate depth map
        K^{t+1} <- KE(LR, D^{t+1})                           # estimate kernel
        K^{t+1} <- gamma K^{t+1} + (1 - gamma) K^t           # momentum, Eq. 2
        I^{t+1} <- NBSR(LR, K^{t+1}); t <- t + 1             # non-blind SR
    return D^T, K^T

Eq. 2 prints ``K^{t+1} = gamma K^t + (1 - gamma) K^{t-1}``; with its indices shifted by one that is
the algorithm's line (fresh estimate weighted gamma, previous kept kernel 1 - gamma), which is
what is implemented. Paper values: T = 3, gamma = 0.9.

Choices where the paper is silent:

* I^0 = LR, as written. DE runs on the LR image for D^0 and D^1 and on the HR SR image after;
  KE takes an HR-sized map (``Batch.nearness``, (B, 1, H, W)), so a DE output of another size is
  resized bilinearly to H x W (the only addition to the algorithm). ``initial_nearness`` replaces
  D^0 when given (e.g. a ground-truth or cached map).
* The first loop iteration recomputes DE(I^0) and KE(LR, D^1) although they equal D^0 and K^0
  for deterministic estimators: kept literal so that stochastic estimators behave as written.
* Momentum on a kernel: a per-pixel kernel map (B, K*K, h, w) (any channel count other than 3)
  is blended linearly, which keeps every kernel non-negative and summing to 1. A parameter field
  (B, 3, h, w) of (s1, s2, theta) is blended through its covariance,
  Sigma = gamma Sigma_new + (1 - gamma) Sigma_old, then converted back (s1 >= s2, theta in
  [0, pi)): a linear blend of theta would break at the theta = 0 / pi wrap.
* Output: besides D^T and K^T the call returns I^T, the last SR image (the pipeline feeds K^T and
  D^T to the diffusion model; I^T is useful for inspection and for NBSR-only baselines). With
  ``iterations=0`` the result is the initialization line alone (I^0 = LR, K^0, D^0), which is the
  pipeline's "without SVKR" setting of Table 2.
* Default DE (:func:`paper_depth_provider`): a learned monocular model when its weights are on
  disk, MiDaS (DPT-Hybrid) first as the paper cites [4, 43], then Depth Anything V2; otherwise the
  offline ``prior``. The prior reads position and coarse image statistics, which the SR estimates
  barely change, so with it D^t (and hence K^t) stays close to D^0: the loop is then nearly a
  fixed point, and callers print :data:`PRIOR_FIXED_POINT_NOTE`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from degrade.depth import estimate_nearness, resolve_depth
from degrade.ops.kernels import covariance_from_sigmas, sigmas_from_covariance
from ssr_core.errors import ConfigError

DepthEstimator = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) [0, 1] -> (B, 1, H, W)
KernelEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (LR, D) -> kernel field
Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (LR, K) -> (B, 3, H, W)

PRIOR_FIXED_POINT_NOTE = (
    "SVKR runs with depth 'prior' (no learned depth weights found locally): its map barely changes "
    "between iterations, so the loop is close to a fixed point (K^T ~ K^0). For the paper's DE put "
    "MiDaS weights (Intel/dpt-hybrid-midas) in the Hugging Face cache or $SSR_BENCH_DEPTH_WEIGHTS "
    "(`degrade depth fetch` downloads them where the network is reachable).")


def paper_depth_provider(weights_dir: str | None = None) -> tuple[str, str | None]:
    """Return (DE provider, note): a learned model with local weights, else ("prior", the note).

    Looks without downloading (degrade.depth.resolve_depth "auto" for an image without ground
    truth): "midas" first, then "depth-anything". ``weights_dir`` None means
    ``$SSR_BENCH_DEPTH_WEIGHTS`` and the Hugging Face cache.
    """
    provider, _ = resolve_depth("auto", has_gt=False, weights_dir=weights_dir)
    return provider, (PRIOR_FIXED_POINT_NOTE if provider == "prior" else None)


def provider_depth_estimator(provider: str = "prior") -> DepthEstimator:
    """Return DE: (B, 3, H, W) float in [0, 1] -> (B, 1, H, W) nearness via a degrade provider."""

    def estimate(rgb: torch.Tensor) -> torch.Tensor:
        arrays = (rgb.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        maps = [estimate_nearness(provider, np.ascontiguousarray(a), None).nearness for a in arrays]
        return torch.from_numpy(np.stack(maps)[:, None]).to(device=rgb.device, dtype=rgb.dtype)

    return estimate


def blend_kernels(new: torch.Tensor, old: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return the Eq. 2 momentum update gamma * new + (1 - gamma) * old of two kernel estimates.

    Args:
        new, old: (B, C, h, w) both; C = 3 means (s1, s2, theta) fields (HR px, radians) blended
            through their covariances; any other C means per-pixel kernel taps, blended linearly.
        gamma: weight of the fresh estimate, in [0, 1].
    """
    if new.shape != old.shape:
        raise ConfigError(f"kernel estimates differ in shape: {tuple(new.shape)} vs {tuple(old.shape)}")
    if new.shape[1] != 3:
        return gamma * new + (1 - gamma) * old
    cov_new = covariance_from_sigmas(new[:, 0], new[:, 1], new[:, 2])
    cov_old = covariance_from_sigmas(old[:, 0], old[:, 1], old[:, 2])
    s1, s2, theta = sigmas_from_covariance(gamma * cov_new + (1 - gamma) * cov_old)
    return torch.stack([s1, s2, theta], dim=1).to(new.dtype)


class SVKR:
    """Alternate depth estimation, kernel estimation and non-blind SR (Algorithm 1)."""

    def __init__(self, kernel_estimator: KernelEstimator, restorer: Restorer,
                 depth_estimator: DepthEstimator | None = None, iterations: int = 3,
                 gamma: float = 0.9, scale: int = 4) -> None:
        """Hold the three estimators.

        Args:
            kernel_estimator: KE(lr (B, 3, h, w), nearness (B, 1, H, W)) -> kernel estimate
                (B, K*K, h, w) taps or (B, 3, h, w) (s1, s2, theta).
            restorer: NBSR(lr, kernel) -> SR (B, 3, H, W) in [0, 1].
            depth_estimator: DE(rgb (B, 3, H', W') in [0, 1]) -> nearness (B, 1, H', W'), called
                on LR (I^0) and on SR images; default: the provider of :func:`paper_depth_provider`.
            iterations: T >= 0. gamma: Eq. 2 weight of the fresh kernel estimate, in [0, 1].
            scale: s, used only to upsample LR into I^0.
        """
        if iterations < 0 or not 0.0 <= gamma <= 1.0 or scale < 1:
            raise ConfigError(f"need iterations >= 0, gamma in [0, 1], scale >= 1; "
                              f"got {iterations}, {gamma}, {scale}")
        self.kernel_estimator, self.restorer = kernel_estimator, restorer
        self.depth_estimator = depth_estimator or provider_depth_estimator(paper_depth_provider()[0])
        self.iterations, self.gamma, self.scale = iterations, gamma, scale

    def __call__(self, lr: torch.Tensor, initial_nearness: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (I^T (B, 3, H, W), K^T, D^T (B, 1, H, W)) for lr (B, 3, h, w) in [0, 1]."""
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ConfigError(f"lr must be (B, 3, h, w), got {tuple(lr.shape)}")
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        image = lr  # I^0
        depth = self._depth(image, size) if initial_nearness is None else initial_nearness  # D^0
        kernel = self.kernel_estimator(lr, depth)  # K^0
        for _ in range(self.iterations):
            depth = self._depth(image, size)  # D^{t+1} = DE(I^t)
            kernel = blend_kernels(self.kernel_estimator(lr, depth), kernel, self.gamma)  # K^{t+1}
            image = self.restorer(lr, kernel)  # I^{t+1}
        return image, kernel, depth

    def _depth(self, image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Return DE(image) as an HR-sized (B, 1, H, W) map (bilinear when DE gives another size)."""
        near = self.depth_estimator(image)
        if tuple(near.shape[-2:]) != size:
            near = F.interpolate(near, size=size, mode="bilinear", align_corners=False).clamp(0, 1)
        return near
