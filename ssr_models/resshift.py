"""ResShift's residual-shifting schedule as a diffusers-style scheduler (no network inside).

ResShift (Yue et al., NeurIPS 2023) shifts the residual between the bicubic-upsampled LR
``y_0`` and the HR ``x_0`` in T steps instead of diffusing to pure noise:

* Forward (ResShift Eq. 1-2), e_0 = y_0 - x_0::

      q(x_t | x_0, y_0) = N(x_0 + eta_t e_0, kappa^2 eta_t I)        t = 1 .. T

* Posterior (ResShift Eq. 7), alpha_t = eta_t - eta_{t-1}, eta_0 = 0::

      q(x_{t-1} | x_t, x_0) = N(eta_{t-1}/eta_t x_t + alpha_t/eta_t x_0,
                                kappa^2 eta_{t-1}/eta_t alpha_t I)

  Because the chain adds independent Gaussians, the same formula holds between any s < t with
  alpha = eta_t - eta_s; :meth:`ResShiftSchedule.step` uses that when sampling with fewer steps.
* Schedule (ResShift Eq. 10): sqrt(eta_t) = sqrt(eta_1) b0^{beta_t},
  beta_t = ((t-1)/(T-1))^p (T-1), b0 = exp(log(eta_T/eta_1) / (2(T-1))), which simplifies to
  ``eta_t = eta_1 (eta_T/eta_1)^(((t-1)/(T-1))^p)``: geometric in a warped time, eta_1 and eta_T
  hit exactly. T = 15, kappa = 2, p = 0.3, eta_1 = min((0.04/kappa)^2, 0.001) = 4e-4,
  eta_T = 0.99 (the paper's values; ResShift's code sets sqrt(eta_T) = 0.99 instead).

The interface follows diffusers' schedulers so that a sampler reads the same for the pixel and
the latent models: ``set_timesteps(n)`` picks the indices, ``step(model_output, t, sample,
generator=...)`` moves ``sample`` from t to the next index, given the network's x_0 estimate
(ResShift predicts x_0, not epsilon). Indices are 0-based: index t is the paper's t + 1, and
t = -1 stands for eta_0 = 0. ``set_timesteps(n)`` takes ``n`` evenly spaced indices from T-1 down
to 0 (``linspace(T-1, 0, n)`` rounded, always including both ends).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ssr_core.errors import ConfigError

__all__ = ["ResShiftConfig", "ResShiftSchedule", "ResShiftStepOutput"]


@dataclass(frozen=True)
class ResShiftConfig:
    """The schedule's settings (ResShift Eq. 10; the paper's defaults).

    Attributes:
        num_train_timesteps: T, the number of forward steps (>= 2).
        kappa: Noise scale of the [-1, 1] images (2 = ResShift's level on that range).
        power: p, the time warp of Eq. 10.
        min_noise_level: Sets eta_1 = min((min_noise_level / kappa)^2, 0.001).
        eta_max: eta_T (the residual is fully shifted at T when 1).
    """

    num_train_timesteps: int = 15
    kappa: float = 2.0
    power: float = 0.3
    min_noise_level: float = 0.04
    eta_max: float = 0.99

    def __post_init__(self) -> None:
        steps = self.num_train_timesteps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ConfigError(f"num_train_timesteps must be an integer >= 2, got {steps!r}")
        for name in ("kappa", "power", "min_noise_level"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 < self.eta_max <= 1:
            raise ConfigError(f"eta_max must be in (0, 1], got {self.eta_max!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as plain values (``config.json``)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ResShiftStepOutput:
    """What :meth:`ResShiftSchedule.step` returns (diffusers' ``SchedulerOutput`` names).

    Attributes:
        prev_sample: x at the next index, (B, C, H, W); the x_0 estimate itself after t = 0.
        pred_original_sample: the x_0 estimate the step used, (B, C, H, W).
    """

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class ResShiftSchedule:
    """Residual-shifting schedule: eta_t, forward draws, posterior, and the reverse ``step``.

    Attributes:
        config: The settings. num_train_timesteps, kappa: copies of the config's.
        etas: float32 (T,), ``etas[t]`` = the paper's eta_{t+1}.
        timesteps: long (n,), the descending indices set by :meth:`set_timesteps` (all T first).
    """

    def __init__(self, config: ResShiftConfig | None = None) -> None:
        self.config = config or ResShiftConfig()
        cfg = self.config
        self.num_train_timesteps, self.kappa = cfg.num_train_timesteps, float(cfg.kappa)
        eta_1 = min((cfg.min_noise_level / cfg.kappa) ** 2, 0.001)
        warp = (torch.arange(cfg.num_train_timesteps, dtype=torch.float64)
                / (cfg.num_train_timesteps - 1)) ** cfg.power
        self.etas = (eta_1 * (cfg.eta_max / eta_1) ** warp).float()
        self.timesteps = torch.arange(cfg.num_train_timesteps - 1, -1, -1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose ``num_inference_steps`` (1..T) descending indices for sampling (``timesteps``).

        Raises:
            ConfigError: ``num_inference_steps`` outside [1, T].
        """
        t_max = self.num_train_timesteps
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) \
                or not 1 <= num_inference_steps <= t_max:
            raise ConfigError(f"steps must be in [1, {t_max}], got {num_inference_steps!r}")
        self.timesteps = torch.linspace(t_max - 1, 0, num_inference_steps).round().long().unique_consecutive()

    def eta(self, t: torch.Tensor) -> torch.Tensor:
        """Return eta at 0-based indices t (B,) as (B, 1, 1, 1); t = -1 gives eta_0 = 0."""
        padded = torch.cat([torch.zeros(1), self.etas])
        return padded.to(t.device)[t.long() + 1].view(-1, 1, 1, 1)

    def q_sample(self, x0: torch.Tensor, y0: torch.Tensor, t: torch.Tensor,
                 noise: torch.Tensor | None = None, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Draw x_t = x0 + eta_t (y0 - x0) + kappa sqrt(eta_t) eps; x0, y0 (B, C, H, W), t (B,)."""
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        eta = self.eta(t).to(x0.dtype)
        return x0 + eta * (y0 - x0) + self.kappa * eta.sqrt() * noise

    def posterior(self, xt: torch.Tensor, x0: torch.Tensor, t: torch.Tensor,
                  s: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return mean and variance (B, 1, 1, 1) of q(x_s | x_t, x_0), s = t - 1 by default."""
        s = t - 1 if s is None else s
        eta_t, eta_s = self.eta(t).to(xt.dtype), self.eta(s).to(xt.dtype)
        alpha = eta_t - eta_s
        mean = eta_s / eta_t * xt + alpha / eta_t * x0
        var = self.kappa**2 * eta_s / eta_t * alpha
        return mean, var

    def prior_sample(self, y0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x_T = y0 + kappa sqrt(eta_T) eps, the start of sampling; y0 (B, C, H, W)."""
        noise = torch.randn(y0.shape, generator=generator, dtype=y0.dtype, device=y0.device)
        return y0 + self.kappa * self.etas[-1].sqrt().item() * noise

    def next_timestep(self, t: int) -> int:
        """Return the index after ``t`` in ``timesteps`` (-1 after the last)."""
        steps = self.timesteps.tolist()
        if t not in steps:
            raise ConfigError(f"timestep {t} is not one of the scheduled {steps} (call set_timesteps)")
        i = steps.index(t)
        return steps[i + 1] if i + 1 < len(steps) else -1

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> ResShiftStepOutput:
        """Move ``sample`` = x_t to x_s, s the next scheduled index, given the x_0 estimate.

        Draws x_s from the posterior q(x_s | x_t, x_0 = model_output) with noise from
        ``generator``; after t = 0 (s = -1, eta_s = 0) the posterior is x_0 itself, returned
        without drawing.

        Args:
            model_output: the network's x_0 estimate, (B, C, H, W), [-1, 1] scale.
            timestep: the current 0-based index t, one of ``timesteps``.
            sample: x_t, (B, C, H, W).
            generator: source of the noise (same seed -> same result).
        """
        t = int(timestep)
        s = self.next_timestep(t)
        if s < 0:
            return ResShiftStepOutput(prev_sample=model_output, pred_original_sample=model_output)
        b = sample.shape[0]
        t_b = torch.full((b,), t, dtype=torch.long, device=sample.device)
        s_b = torch.full((b,), s, dtype=torch.long, device=sample.device)
        mean, var = self.posterior(sample, model_output, t_b, s_b)
        noise = torch.randn(sample.shape, generator=generator, dtype=sample.dtype, device=sample.device)
        return ResShiftStepOutput(prev_sample=mean + var.sqrt() * noise, pred_original_sample=model_output)
