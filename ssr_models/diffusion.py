"""Residual-shifting diffusion SR conditioned through AMF: SSR paper Sec. 3.1, 3.3 (Eq. 3-5).

The paper fine-tunes a latent diffusion model guided by AMF (Eq. 4: p(z_{t-1} | f_1, f_2, f_3, z_t)).
DESIGN.md section 6 asks for a model that trains from scratch on one GPU, so this is a pixel-space
conditional UNet with ResShift's few-step residual-shifting schedule (Yue et al., NeurIPS 2023):

* Forward (ResShift Eq. 1-2), y_0 = bicubic-upsampled LR, e_0 = y_0 - x_0::

      q(x_t | x_0, y_0) = N(x_0 + eta_t e_0, kappa^2 eta_t I)        t = 1 .. T

* Posterior (ResShift Eq. 7), alpha_t = eta_t - eta_{t-1}, eta_0 = 0::

      q(x_{t-1} | x_t, x_0) = N(eta_{t-1}/eta_t x_t + alpha_t/eta_t x_0,
                                kappa^2 eta_{t-1}/eta_t alpha_t I)

  Because the chain adds independent Gaussians, the same formula holds between any s < t with
  alpha = eta_t - eta_s; :meth:`ResShiftSchedule.posterior` uses that for ``steps < T``.
* Schedule (ResShift Eq. 10): sqrt(eta_t) = sqrt(eta_1) b0^{beta_t},
  beta_t = ((t-1)/(T-1))^p (T-1), b0 = exp(log(eta_T/eta_1) / (2(T-1))), which simplifies to
  ``eta_t = eta_1 (eta_T/eta_1)^(((t-1)/(T-1))^p)``: geometric in a warped time, eta_1 and eta_T
  hit exactly. T = 15, kappa = 2, p = 0.3, eta_1 = min((0.04/kappa)^2, 0.001) = 4e-4,
  eta_T = 0.99 (the paper's values; ResShift's code sets sqrt(eta_T) = 0.99 instead).

Choices where the papers are silent (configurable in :class:`DiffusionConfig`):

* Indices: code uses 0-based ``t`` in [0, T), index t is the paper's t + 1; ``t = -1`` is eta_0 = 0.
* Value range: the network works in [-1, 1] (images map by 2x - 1), so kappa = 2 means the
  same noise level as in ResShift; the public API takes and returns [0, 1].
* Network input: concat(x_t / sqrt(kappa^2 eta_t + 1), y_0) (ResShift's input scaling), output
  x_0 (ResShift predicts x_0; Eq. 5's epsilon loss of the paper does not apply to this schedule).
  Loss: L1 or L2 (``loss``) on x_0 plus the AMF Eq. 5 penalty.
* UNet: GroupNorm-SiLU-conv residual blocks with an added sinusoidal time embedding, stride-2
  conv down, nearest+conv up, no attention (pixel space, small images). AMF follows the last
  residual block of every encoder level listed in ``amf_levels`` and the middle block; the
  encodings are computed once per forward (they do not depend on t).
* Sampling starts from x_T = y_0 + kappa sqrt(eta_T) eps (ResShift), uses ``steps`` evenly spaced
  indices (always including T-1 and 0), clamps each x_0 estimate to [-1, 1], and returns the
  final x_0 estimate. BN/train mode is left as the caller set it (use ``model.eval()``).
* Data consistency (BlindDiff's kernel-aware term): after each x_0 estimate, ``dc_steps``
  steps x0 <- x0 - dc_weight * mu * grad 0.5 ||A(x0) - lr||^2 on [0, 1] images, A = Eq. 1, mu
  the exact line search (A A^T has norm ~1 / (4 pi s1 s2), so a fixed step would be tiny).
  A is the engine's own operator, ``apply_kernel_field(..., backend="autograd")`` (the unfold
  form through which gradients flow). dc_weight in (0, 2) always decreases
  the residual; default 1 (the optimal single step).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from degrade.ops.blur import apply_kernel_field
from ssr_core.errors import ConfigError
from ssr_models.amf import AMF, AMFConfig, AMFEncoder
from ssr_models.layers import config_from_dict


class ResShiftSchedule:
    """Residual-shifting noise schedule (no network): eta_t, q_sample, posterior, p_sample."""

    def __init__(self, steps: int = 15, kappa: float = 2.0, power: float = 0.3,
                 min_noise_level: float = 0.04, eta_max: float = 0.99) -> None:
        if steps < 2:
            raise ConfigError(f"steps must be >= 2, got {steps}")
        self.steps, self.kappa, self.power = steps, float(kappa), float(power)
        eta_1 = min((min_noise_level / kappa) ** 2, 0.001)
        warp = (torch.arange(steps, dtype=torch.float64) / (steps - 1)) ** power
        self.etas = (eta_1 * (eta_max / eta_1) ** warp).float()  # (T,), etas[t] = paper eta_{t+1}

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

    def p_sample(self, xt: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor,
                 s: torch.Tensor | None = None, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
        """Draw x_s from the posterior given the predicted x_0 (no noise when s = -1)."""
        mean, var = self.posterior(xt, x0_hat, t, s)
        noise = torch.randn(xt.shape, generator=generator, dtype=xt.dtype, device=xt.device)
        return mean + var.sqrt() * noise

    def prior_sample(self, y0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw x_T = y0 + kappa sqrt(eta_T) eps."""
        noise = torch.randn(y0.shape, generator=generator, dtype=y0.dtype, device=y0.device)
        return y0 + self.kappa * self.etas[-1].sqrt().item() * noise


@dataclass(frozen=True)
class DiffusionConfig:
    """UNet, AMF and schedule settings (flat, so a factory override is one keyword)."""

    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 2
    amf_levels: tuple[int, ...] = (0, 1, 2, 3)
    groups: int = 8
    timesteps: int = 15
    kappa: float = 2.0
    power: float = 0.3
    loss: Literal["l1", "l2"] = "l2"
    val_steps: int = 4
    val_seed: int = 0
    use_kernel: bool = True
    use_depth: bool = True
    use_svkr: bool = True
    amf_small_channels: int = 16
    amf_lr_channels: int = 64
    amf_hidden: int = 128
    amf_combine: Literal["sum", "sequential"] = "sum"
    lambda_kernel: float = 1e-4
    lambda_depth: float = 1e-4
    lambda_lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        bad = [lv for lv in self.amf_levels if not 0 <= lv < len(self.channel_mult)]
        if bad:
            raise ConfigError(f"amf_levels {bad} outside 0..{len(self.channel_mult) - 1}")
        if any(self.base_channels * m % self.groups for m in self.channel_mult):
            raise ConfigError(f"base_channels * channel_mult must divide by groups={self.groups}")

    @property
    def amf(self) -> AMFConfig:
        return AMFConfig(use_kernel=self.use_kernel, use_depth=self.use_depth, use_svkr=self.use_svkr,
                         small_channels=self.amf_small_channels, lr_channels=self.amf_lr_channels,
                         hidden=self.amf_hidden, combine=self.amf_combine,
                         lambda_kernel=self.lambda_kernel, lambda_depth=self.lambda_depth,
                         lambda_lr=self.lambda_lr)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionConfig:
        return config_from_dict(cls, data)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Return sinusoidal embeddings (B, dim) of integer steps t (B,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class TimeResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, time embedding added in between, 1x1 skip on width change."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(nn.GroupNorm(min(groups, c_in), c_in), nn.SiLU(),
                                       nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Linear(emb_dim, c_out)
        self.out_layers = nn.Sequential(nn.GroupNorm(groups, c_out), nn.SiLU(),
                                        nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.in_layers(x) + self.emb(emb)[:, :, None, None]
        return self.skip(x) + self.out_layers(h)


class ConditionalUNet(nn.Module):
    """Predict x_0 (B, 3, H, W) from concat(x_t, y_0) (B, 6, H, W), t (B,) and AMF encodings."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        c, g, amf_cfg = config.base_channels, config.groups, config.amf
        emb = 4 * c
        self.emb_ch = c
        self.time_mlp = nn.Sequential(nn.Linear(c, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.head = nn.Conv2d(6, c, 3, padding=1)
        self.down_blocks, self.down_amf, self.downsample = nn.ModuleList(), nn.ModuleDict(), nn.ModuleList()
        skips, ch = [c], c
        for lv, m in enumerate(config.channel_mult):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks):
                blocks.append(TimeResBlock(ch, c * m, emb, g))
                ch = c * m
                skips.append(ch)
            self.down_blocks.append(blocks)
            if lv in config.amf_levels:
                self.down_amf[str(lv)] = AMF(ch, amf_cfg)
            last = lv == len(config.channel_mult) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1))
            if not last:
                skips.append(ch)
        self.mid1, self.mid2 = TimeResBlock(ch, ch, emb, g), TimeResBlock(ch, ch, emb, g)
        self.mid_amf = AMF(ch, amf_cfg)
        self.up_blocks, self.upsample = nn.ModuleList(), nn.ModuleList()
        for lv, m in reversed(list(enumerate(config.channel_mult))):
            blocks = nn.ModuleList()
            for _ in range(config.num_res_blocks + 1):
                blocks.append(TimeResBlock(ch + skips.pop(), c * m, emb, g))
                ch = c * m
            self.up_blocks.append(blocks)
            self.upsample.append(nn.Identity() if lv == 0 else nn.Conv2d(ch, ch, 3, padding=1))
        self.tail = nn.Sequential(nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, 3, 3, padding=1))
        self.factor = 2 ** (len(config.channel_mult) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, enc: dict[str, torch.Tensor]) -> torch.Tensor:
        if x.shape[-1] % self.factor or x.shape[-2] % self.factor:
            raise ConfigError(f"H, W must be multiples of {self.factor}, got {tuple(x.shape[-2:])}")
        emb = self.time_mlp(timestep_embedding(t, self.emb_ch))
        h = self.head(x)
        hs = [h]
        for lv, (blocks, down) in enumerate(zip(self.down_blocks, self.downsample, strict=True)):
            for block in blocks:
                h = block(h, emb)
                hs.append(h)
            if str(lv) in self.down_amf:
                h = self.down_amf[str(lv)](h, enc)
                hs[-1] = h
            if not isinstance(down, nn.Identity):
                h = down(h)
                hs.append(h)
        h = self.mid_amf(self.mid2(self.mid1(h, emb), emb), enc)
        for blocks, up in zip(self.up_blocks, self.upsample, strict=True):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), emb)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.tail(h)


def kernel_consistency_step(x0: torch.Tensor, lr: torch.Tensor, field: torch.Tensor, scale: int,
                            kernel_size: int, delta: float | None, weight: float = 1.0) -> torch.Tensor:
    """Return x0 - weight * mu * grad, one steepest-descent step on 0.5 ||A(x0) - lr||^2 (Eq. 1 A).

    ``grad = A^T (A x0 - lr)`` by autograd; ``mu = ||grad||^2 / ||A grad||^2`` is the exact line
    search of this quadratic per image, so ``weight`` = 1 is the best single step and any
    weight in (0, 2) decreases the residual.

    Args:
        x0: (B, 3, H, W) HR estimate in [0, 1]; lr: (B, 3, H/s, W/s) in [0, 1].
        field: (B, 3, H/s, W/s) (s1, s2, theta) in HR px and radians.
    """
    with torch.enable_grad():
        z = x0.detach().requires_grad_(True)
        resid = apply_kernel_field(z, field, scale, kernel_size, delta, backend="autograd") - lr
        (grad,) = torch.autograd.grad(0.5 * resid.pow(2).sum(), z)
    a_grad = apply_kernel_field(grad, field, scale, kernel_size, delta, backend="autograd")
    mu = grad.pow(2).flatten(1).sum(1) / a_grad.pow(2).flatten(1).sum(1).clamp_min(1e-20)
    return (x0 - weight * mu.view(-1, 1, 1, 1) * grad).detach()


class DiffusionSR(nn.Module):
    """ResShift schedule + AMF-conditioned UNet predicting x_0; images in [0, 1] at the API."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.schedule = ResShiftSchedule(config.timesteps, config.kappa, config.power)
        self.encoder = AMFEncoder(config.amf)
        self.unet = ConditionalUNet(config)

    @staticmethod
    def upsample(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Return bicubic-upsampled LR in [-1, 1] (y_0)."""
        return F.interpolate(lr * 2 - 1, size=size, mode="bicubic", align_corners=False)

    def encode(self, y0: torch.Tensor, kernel: torch.Tensor | None,
               nearness: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Return the AMF encodings f_i (depend on the conditions only, not on t)."""
        return self.encoder(kernel, nearness, y0)

    def predict_x0(self, xt: torch.Tensor, t: torch.Tensor, y0: torch.Tensor,
                   enc: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the x_0 estimate in [-1, 1] space from x_t, 0-based t (B,), y_0 and encodings."""
        scale = (self.schedule.kappa**2 * self.schedule.eta(t) + 1).sqrt().to(xt.dtype)
        return self.unet(torch.cat([xt / scale, y0], dim=1), t, enc)

    def training_step(self, batch: Any, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, logs): x_0 loss at a random t plus the Eq. 5 penalty."""
        x0 = batch.hr * 2 - 1
        y0 = self.upsample(batch.lr, x0.shape[-2:])
        t = torch.randint(0, self.schedule.steps, (x0.shape[0],), generator=generator).to(x0.device)
        xt = self.schedule.q_sample(x0, y0, t, generator=generator)
        enc = self.encode(y0, batch.kernel, batch.nearness)
        pred = self.predict_x0(xt, t, y0, enc)
        rec = F.l1_loss(pred, x0) if self.config.loss == "l1" else F.mse_loss(pred, x0)
        pen = self.encoder.penalty(enc)
        loss = rec + pen
        return loss, {"loss": loss.item(), "loss_x0": rec.item(), "penalty": pen.item()}

    @torch.no_grad()
    def sample(self, lr: torch.Tensor, kernel_field: torch.Tensor | None, nearness: torch.Tensor | None,
               steps: int | None = None, data_consistency: bool = False, dc_weight: float = 1.0,
               dc_steps: int = 1, generator: torch.Generator | None = None, scale: int | None = None,
               kernel_size: int = 21, delta: float | None = None,
               callback: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Run the reverse process; return SR (B, 3, H, W) in [0, 1].

        Args:
            lr: (B, 3, h, w) in [0, 1]. kernel_field: (B, 3, h, w) (s1, s2, theta), HR px/radians.
            nearness: (B, 1, H, W) in [0, 1]; fixes H = s h unless ``scale`` is given.
            steps: number of reverse steps (<= T, default T), evenly spaced indices.
            data_consistency: apply :func:`kernel_consistency_step` to every x_0 estimate
                (needs kernel_field); dc_weight, dc_steps: its step size and count.
            generator: source of all noise (deterministic output given its seed).
            kernel_size, delta: the degradation's window (HR px) and LR grid offset.
            callback: called as ``callback(done, total)`` after each reverse step (progress).
        """
        steps = self.schedule.steps if steps is None else steps
        if not 1 <= steps <= self.schedule.steps:
            raise ConfigError(f"steps must be in [1, {self.schedule.steps}], got {steps}")
        if scale is None:
            if nearness is None:
                raise ConfigError("give scale when nearness is None")
            scale = nearness.shape[-1] // lr.shape[-1]
        if data_consistency and kernel_field is None:
            raise ConfigError("data_consistency needs kernel_field")
        b = lr.shape[0]
        size = (lr.shape[-2] * scale, lr.shape[-1] * scale)
        y0 = self.upsample(lr, size)
        enc = self.encode(y0, kernel_field, nearness)
        idx = torch.linspace(self.schedule.steps - 1, 0, steps).round().long().unique_consecutive()
        x = self.schedule.prior_sample(y0, generator=generator)
        x0 = y0
        for i, t_val in enumerate(idx.tolist()):
            t = torch.full((b,), t_val, dtype=torch.long, device=lr.device)
            x0 = self.predict_x0(x, t, y0, enc).clamp(-1, 1)
            if data_consistency:
                img = (x0 + 1) / 2
                for _ in range(dc_steps):
                    img = kernel_consistency_step(img, lr, kernel_field, scale, kernel_size, delta, dc_weight)
                x0 = img * 2 - 1
            if t_val > 0:
                s_val = idx[i + 1].item() if i + 1 < len(idx) else -1
                s = torch.full((b,), s_val, dtype=torch.long, device=lr.device)
                x = self.schedule.p_sample(x, x0, t, s, generator=generator)
            if callback is not None:
                callback(i + 1, len(idx))
        return ((x0 + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def validation_sr(self, batch: Any) -> torch.Tensor:
        """Return a ``val_steps``-step sample (B, 3, H, W) in [0, 1], seeded by ``val_seed``.

        Whole images of any size: padded to the UNet's multiple and cropped back.
        """
        from .validation import padded_sr

        # On the batch's device: torch.randn(device="cuda") refuses a CPU generator.
        g = torch.Generator(device=batch.lr.device).manual_seed(self.config.val_seed)
        return padded_sr(batch, self.unet.factor, lambda b: self.sample(
            b.lr, b.kernel, b.nearness, steps=self.config.val_steps, generator=g, scale=b.scale,
            kernel_size=b.kernel_size, delta=b.delta))

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        """Return ``ssr_models.validation.image_scores`` of :meth:`validation_sr` (dB, SSIM)."""
        from .validation import image_scores

        return image_scores(self.validation_sr(batch), batch)


def diffusion_tiny(**overrides: Any) -> DiffusionSR:
    """Return a tiny model for tests and smoke runs (base 16, two levels, one block per level)."""
    base = dict(base_channels=16, channel_mult=(1, 2), num_res_blocks=1, amf_levels=(0, 1),
                amf_small_channels=8, amf_lr_channels=16, amf_hidden=32)
    return DiffusionSR(DiffusionConfig(**{**base, **overrides}))


def diffusion(**overrides: Any) -> DiffusionSR:
    """Return the paper-scale model (AMF hidden 128 at every level, T = 15, kappa = 2)."""
    return DiffusionSR(DiffusionConfig(**overrides))


def diffusion_di_kernel_only(**overrides: Any) -> DiffusionSR:
    """Return Table 2 row 1: DI-kernel and LR, no depth, no SVKR."""
    return diffusion(**{"use_depth": False, "use_svkr": False, **overrides})


def diffusion_depth_only(**overrides: Any) -> DiffusionSR:
    """Return Table 2 row 2: depth and LR, no kernel, no SVKR."""
    return diffusion(**{"use_kernel": False, "use_svkr": False, **overrides})


def diffusion_no_svkr(**overrides: Any) -> DiffusionSR:
    """Return Table 2 row 3: kernel, depth and LR, kernel/depth not refined by SVKR."""
    return diffusion(**{"use_svkr": False, **overrides})
