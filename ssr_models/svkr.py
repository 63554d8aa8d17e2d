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

* I^0 = LR: DE needs the same resolution every iteration and every later I^t is HR, so I^0 is the
  LR image bicubic-upsampled by the restorer's scale (clamped to [0, 1]); every D^t is HR-sized,
  matching ``Batch.nearness`` (B, 1, H, W). ``initial_nearness`` replaces D^0 when given (e.g. a
  ground-truth or cached map).
* The first loop iteration recomputes DE(I^0) and KE(LR, D^1) although they equal D^0 and K^0
  for deterministic estimators: kept literal so that stochastic estimators behave as written.
* Momentum on a kernel: a per-pixel kernel map (B, K*K, h, w) (any channel count other than 3)
  is blended linearly, which keeps every kernel non-negative and summing to 1. A parameter field
  (B, 3, h, w) of (s1, s2, theta) is blended through its covariance,
  Sigma = gamma Sigma_new + (1 - gamma) Sigma_old, then converted back (s1 >= s2, theta in
  [0, pi)): a linear blend of theta would break at the theta = 0 / pi wrap.
* Output: besides D^T and K^T the call returns I^T, the last SR image (the pipeline feeds K^T and
  D^T to the diffusion model; I^T is useful for inspection and for NBSR-only baselines). With
  ``iterations=0`` the result is the initialization line alone (I^0, K^0, D^0), which is the
  pipeline's "without SVKR" setting of Table 2.
* Default DE: the degrade depth provider ``prior`` applied per image to the current estimate
  (uint8 RGB), offline and deterministic; pass a learned provider wrapper for the paper's DPT.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from degrade.depth import estimate_nearness
from degrade.ops.kernels import covariance_from_sigmas, sigmas_from_covariance
from ssr_datasets.errors import ConfigError

DepthEstimator = Callable[[torch.Tensor], torch.Tensor]  # (B, 3, H, W) [0, 1] -> (B, 1, H, W)
KernelEstimator = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (LR, D) -> kernel field
Restorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (LR, K) -> (B, 3, H, W)


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
            depth_estimator: DE(rgb (B, 3, H, W) in [0, 1]) -> nearness (B, 1, H, W);
                default :func:`provider_depth_estimator` ("prior").
            iterations: T >= 0. gamma: Eq. 2 weight of the fresh kernel estimate, in [0, 1].
            scale: s, used only to upsample LR into I^0.
        """
        if iterations < 0 or not 0.0 <= gamma <= 1.0 or scale < 1:
            raise ConfigError(f"need iterations >= 0, gamma in [0, 1], scale >= 1; "
                              f"got {iterations}, {gamma}, {scale}")
        self.kernel_estimator, self.restorer = kernel_estimator, restorer
        self.depth_estimator = depth_estimator or provider_depth_estimator("prior")
        self.iterations, self.gamma, self.scale = iterations, gamma, scale

    def __call__(self, lr: torch.Tensor, initial_nearness: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (I^T (B, 3, H, W), K^T, D^T (B, 1, H, W)) for lr (B, 3, h, w) in [0, 1]."""
        if lr.ndim != 4 or lr.shape[1] != 3:
            raise ConfigError(f"lr must be (B, 3, h, w), got {tuple(lr.shape)}")
        size = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        image = F.interpolate(lr, size=size, mode="bicubic", align_corners=False).clamp(0, 1)  # I^0
        depth = self.depth_estimator(image) if initial_nearness is None else initial_nearness  # D^0
        kernel = self.kernel_estimator(lr, depth)  # K^0
        for _ in range(self.iterations):
            depth = self.depth_estimator(image)  # D^{t+1} = DE(I^t)
            kernel = blend_kernels(self.kernel_estimator(lr, depth), kernel, self.gamma)  # K^{t+1}
            image = self.restorer(lr, kernel)  # I^{t+1}
        return image, kernel, depth
