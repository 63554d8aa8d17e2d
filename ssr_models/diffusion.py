"""``ssr-pixel``: residual-shifting diffusion SR conditioned through AMF, trained from scratch.

SSR paper Sec. 3.1, 3.3 (Eq. 3-5). The paper fine-tunes a latent diffusion model guided by AMF
(Eq. 4: p(z_{t-1} | f_1, f_2, f_3, z_t)); that is ``ssr-latent`` (ssr_models.latent). This family
is the from-scratch option of DESIGN.md section 6: a pixel-space conditional UNet with ResShift's
few-step residual-shifting schedule (Yue et al., NeurIPS 2023). Registered as ``ssr-pixel-tiny``,
``ssr-pixel`` and the Table 2 ablations ``ssr-pixel-{di-kernel-only,depth-only,no-svkr}``; the
former names ``diffusion*`` are aliases (``ssr_models.ALIASES``).

* Schedule: :mod:`ssr_models.resshift` (ResShift Eq. 1-2, 7, 10; T = 15, kappa = 2, p = 0.3),
  a diffusers-style scheduler: the sampler below calls ``set_timesteps`` and ``step``.
* Config: :class:`DiffusionConfig` is composed of the UNet's own fields, an ``amf``
  (:class:`~ssr_models.amf.AMFConfig`) and a ``schedule``
  (:class:`~ssr_models.resshift.ResShiftConfig`); ``config.json`` holds them nested.
  Overrides reach a nested field with a partial mapping: ``create_model("ssr-pixel",
  amf={"use_depth": False})``. Run folders written before the composition (flat ``amf_*``,
  ``use_*``, ``lambda_*``, ``timesteps``, ``kappa``, ``power`` keys) load through
  :func:`upgrade_flat_config`, the one place that knows the old names.

Choices where the papers are silent (configurable in :class:`DiffusionConfig`):

* Indices: code uses 0-based ``t`` in [0, T), index t is the paper's t + 1; ``t = -1`` is eta_0 = 0.
* Value range: the network works in [-1, 1] (images map by 2x - 1), so kappa = 2 means the
  same noise level as in ResShift; the public API takes and returns [0, 1].
* Network input: concat(x_t / sqrt(kappa^2 eta_t + 1), y_0) (ResShift's input scaling); the x_0
  estimate is ``y_0 + UNet(...)``, a learned residual over bicubic whose last conv is
  zero-initialised: an untrained (or undertrained) model predicts bicubic exactly and can only
  improve on it, where a raw x_0 output starts at 0, i.e. grey (issue 14: a tiny run's SR was
  grey-green, 2.7 dB below bicubic). ResShift predicts x_0; Eq. 5's epsilon loss of the paper
  does not apply to this schedule. Loss: L1 or L2 (``loss``) on x_0 plus the AMF Eq. 5 penalty.
* Weights format (``PIXEL_FORMAT``, saved as the ``format_version`` buffer): 2 = the residual
  form. Format-1 weights (raw x_0, no buffer) have the same keys and shapes but would predict
  nonsense here, so loading them is refused with a ConfigError that says to retrain.
* UNet: :mod:`ssr_models.pixel_unet` (residual blocks with a time embedding, AMF after the
  levels in ``amf_levels`` and the middle block).
* Sampling starts from x_T = y_0 + kappa sqrt(eta_T) eps (ResShift), uses ``steps`` evenly spaced
  indices (always including T-1 and 0), clamps each x_0 estimate to [-1, 1], and returns the
  final x_0 estimate. BN/train mode is left as the caller set it (use ``model.eval()``).
* What to score: ``steps=1`` returns the x_0 estimate at T, where x_T holds almost nothing of
  x_0 - y_0 (weight 1 - eta_T = 0.01 against noise of std kappa sqrt(eta_T) ~ 2), so it
  approximates the posterior mean E[x_0 | LR, conditions], the PSNR-optimal output. T steps
  give a sample: its squared error is the mean's plus the sample's variance (an exact posterior
  sampler doubles it; this plug-in sampler, given the exact x_0 predictor of a Gaussian toy, adds
  ~0.26 of the posterior variance: ``test_a_sample_of_an_exact_x0_predictor_...``). On BSD100
  (bench/learning.py, issue 14) the tiny model's one-step estimate beat bicubic while its 15-step
  sample lost 1.5-2.2 dB to it; the sample is what a diffusion model is for (detail, realism),
  the one-step estimate is what a PSNR comparison with a regression baseline should use.
* Data consistency (BlindDiff's kernel-aware term): after each x_0 estimate, ``dc_steps``
  steps x0 <- x0 - dc_weight * mu * grad 0.5 ||A(x0) - lr||^2 on [0, 1] images, A = Eq. 1, mu
  the exact line search (A A^T has norm ~1 / (4 pi s1 s2), so a fixed step would be tiny).
  A is the engine's own operator, ``apply_kernel_field(..., backend="autograd")`` (the unfold
  form through which gradients flow). dc_weight in (0, 2) always decreases
  the residual; default 1 (the optimal single step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from degrade.ops.blur import apply_kernel_field
from ssr_core.errors import ConfigError
from ssr_models.amf import AMFConfig, AMFEncoder
from ssr_models.layers import config_from_dict, with_overrides
from ssr_models.pixel_unet import ConditionalUNet
from ssr_models.resshift import ResShiftConfig, ResShiftSchedule

_AMF_FLAT = {"amf_small_channels": "small_channels", "amf_lr_channels": "lr_channels",
             "amf_hidden": "hidden", "amf_combine": "combine", "use_kernel": "use_kernel",
             "use_depth": "use_depth", "use_svkr": "use_svkr", "lambda_kernel": "lambda_kernel",
             "lambda_depth": "lambda_depth", "lambda_lr": "lambda_lr"}
_SCHEDULE_FLAT = {"timesteps": "num_train_timesteps", "kappa": "kappa", "power": "power"}


def upgrade_flat_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return a DiffusionConfig mapping with the flat keys of older run folders nested.

    Before the configs were composed, ``config.json``/``run.json`` held the AMF and schedule
    settings as flat keys (``amf_hidden``, ``use_depth``, ``timesteps``, ...); they move under
    ``amf`` and ``schedule``. A mapping without them is returned unchanged (a copy).

    Raises:
        ConfigError: a flat key and its nested form both given with different values.

    >>> upgrade_flat_config({"use_depth": False, "timesteps": 15, "loss": "l1"})
    {'loss': 'l1', 'amf': {'use_depth': False}, 'schedule': {'num_train_timesteps': 15}}
    """
    out = {k: v for k, v in data.items() if k not in _AMF_FLAT and k not in _SCHEDULE_FLAT}
    for group, names in (("amf", _AMF_FLAT), ("schedule", _SCHEDULE_FLAT)):
        moved = {new: data[old] for old, new in names.items() if old in data}
        if not moved:
            continue
        nested = out.get(group, {})
        nested = dataclasses.asdict(nested) if dataclasses.is_dataclass(nested) else dict(nested)
        clash = [k for k, v in moved.items() if k in nested and nested[k] != v]
        if clash:
            raise ConfigError(f"{group}.{clash[0]} given twice with different values (flat and nested)")
        out[group] = {**nested, **moved}
    return out


def conditioning_flags(model_config: Mapping[str, Any]) -> dict[str, bool]:
    """Return ``{"use_kernel", "use_depth", "use_svkr"}`` of a saved model config (run.json).

    Reads the nested form (``amf.use_depth``) and the flat one of older run folders; a flag the
    config does not hold is left out.

    >>> conditioning_flags({"amf": {"use_depth": False, "hidden": 8}})
    {'use_depth': False}
    """
    amf = upgrade_flat_config(model_config).get("amf", {})
    amf = dataclasses.asdict(amf) if dataclasses.is_dataclass(amf) else amf
    return {k: amf[k] for k in ("use_kernel", "use_depth", "use_svkr") if k in amf}


@dataclass(frozen=True)
class DiffusionConfig:
    """The pixel model: UNet settings, its AMF (``amf``) and its ResShift schedule (``schedule``).

    Attributes:
        base_channels, channel_mult, num_res_blocks, groups: UNet widths (channels), level
            multipliers, residual blocks per level, GroupNorm groups.
        amf_levels: UNet levels (0-based) followed by an AMF (the middle block always is).
        loss: "l1" or "l2" on the x_0 estimate.
        val_steps, val_seed: Reverse steps and seed of the validation samples.
        amf: The AMF encoders and fusion (Eq. 3, 5). schedule: The ResShift schedule.
    """

    base_channels: int = 64
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 2
    amf_levels: tuple[int, ...] = (0, 1, 2, 3)
    groups: int = 8
    loss: Literal["l1", "l2"] = "l2"
    val_steps: int = 4
    val_seed: int = 0
    amf: AMFConfig = field(default_factory=AMFConfig)
    schedule: ResShiftConfig = field(default_factory=ResShiftConfig)

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "l2"):
            raise ConfigError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
        bad = [lv for lv in self.amf_levels if not 0 <= lv < len(self.channel_mult)]
        if bad:
            raise ConfigError(f"amf_levels {bad} outside 0..{len(self.channel_mult) - 1}")
        if any(self.base_channels * m % self.groups for m in self.channel_mult):
            raise ConfigError(f"base_channels * channel_mult must divide by groups={self.groups}")
        for name, cls in (("amf", AMFConfig), ("schedule", ResShiftConfig)):
            if not isinstance(getattr(self, name), cls):
                got = type(getattr(self, name)).__name__
                raise ConfigError(f"{name} must be a {cls.__name__}, got {got}")

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config, nested (``amf``, ``schedule``), as plain values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DiffusionConfig:
        """Rebuild a config from :meth:`to_dict` (or the flat form of older run folders)."""
        return config_from_dict(cls, upgrade_flat_config(data))


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


PIXEL_FORMAT = 2  # 1: the UNet's output was x_0 itself; 2: x_0 = y_0 + the UNet's residual


class PixelSSR(nn.Module):
    """ResShift schedule + AMF-conditioned UNet: x_0 = y_0 + residual; images in [0, 1] at the API."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.schedule = ResShiftSchedule(config.schedule)
        self.encoder = AMFEncoder(config.amf)
        self.unet = ConditionalUNet(config)
        self.register_buffer("format_version", torch.tensor(PIXEL_FORMAT, dtype=torch.long))

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any) -> None:
        """Refuse weights of another format before loading (see the module docstring)."""
        saved = state_dict.get(prefix + "format_version")
        version = 1 if saved is None else int(saved)
        if version != PIXEL_FORMAT:
            raise ConfigError(
                f"ssr-pixel weights of format {version} (the UNet predicted x_0 directly); this "
                f"version predicts x_0 = bicubic + a learned residual (format {PIXEL_FORMAT}) and "
                "cannot use them: retrain the diffusion stage (ssr-train --stage diffusion)")
        super()._load_from_state_dict(state_dict, prefix, *args)

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
        """Return the x_0 estimate y_0 + residual (B, 3, H, W), [-1, 1] scale.

        Args:
            xt: (B, 3, H, W) x_t. t: (B,) 0-based indices. y0: (B, 3, H, W) bicubic LR in
            [-1, 1]. enc: the AMF encodings of :meth:`encode`.
        """
        scale = (self.schedule.kappa**2 * self.schedule.eta(t) + 1).sqrt().to(xt.dtype)
        return y0 + self.unet(torch.cat([xt / scale, y0], dim=1), t, enc)

    def training_step(self, batch: Any, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, logs): x_0 loss at a random t plus the Eq. 5 penalty."""
        x0 = batch.hr * 2 - 1
        y0 = self.upsample(batch.lr, x0.shape[-2:])
        t_max = self.schedule.num_train_timesteps
        t = torch.randint(0, t_max, (x0.shape[0],), generator=generator).to(x0.device)
        xt = self.schedule.q_sample(x0, y0, t, generator=generator)
        enc = self.encode(y0, batch.kernel_field, batch.nearness)
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
        self.schedule.set_timesteps(self.schedule.num_train_timesteps if steps is None else steps)
        if scale is None:
            if nearness is None:
                raise ConfigError("give scale when nearness is None")
            scale = nearness.shape[-1] // lr.shape[-1]
        if data_consistency and kernel_field is None:
            raise ConfigError("data_consistency needs kernel_field")
        size = (lr.shape[-2] * scale, lr.shape[-1] * scale)
        y0 = self.upsample(lr, size)
        enc = self.encode(y0, kernel_field, nearness)
        timesteps = self.schedule.timesteps.tolist()
        x = self.schedule.prior_sample(y0, generator=generator)
        for i, t_val in enumerate(timesteps):
            t = torch.full((lr.shape[0],), t_val, dtype=torch.long, device=lr.device)
            x0 = self.predict_x0(x, t, y0, enc).clamp(-1, 1)
            if data_consistency:
                img = (x0 + 1) / 2
                for _ in range(dc_steps):
                    img = kernel_consistency_step(img, lr, kernel_field, scale, kernel_size, delta, dc_weight)
                x0 = img * 2 - 1
            x = self.schedule.step(x0, t_val, x, generator=generator).prev_sample  # x0 after t = 0
            if callback is not None:
                callback(i + 1, len(timesteps))
        return ((x + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def validation_sr(self, batch: Any) -> torch.Tensor:
        """Return a ``val_steps``-step sample (B, 3, H, W) in [0, 1], seeded by ``val_seed``.

        Whole images of any size: padded to the UNet's multiple and cropped back.
        """
        from .validation import padded_sr

        # On the batch's device: torch.randn(device="cuda") refuses a CPU generator.
        g = torch.Generator(device=batch.lr.device).manual_seed(self.config.val_seed)
        return padded_sr(batch, self.unet.factor, lambda b: self.sample(
            b.lr, b.kernel_field, b.nearness, steps=self.config.val_steps, generator=g, scale=b.scale,
            kernel_size=b.kernel_size, delta=b.delta))

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        """Return ``ssr_models.validation.image_scores`` of :meth:`validation_sr` (dB, SSIM)."""
        from .validation import image_scores

        return image_scores(self.validation_sr(batch), batch)


_TINY: dict[str, Any] = {"base_channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1,
                        "amf_levels": (0, 1),
                        "amf": {"small_channels": 8, "lr_channels": 16, "hidden": 32}}


def _build(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> PixelSSR:
    """Return the model of ``base`` (a preset) with ``overrides`` (checked: "did you mean")."""
    preset = with_overrides(DiffusionConfig(), base)
    return PixelSSR(with_overrides(preset, upgrade_flat_config(overrides)))


def ssr_pixel_tiny(**overrides: Any) -> PixelSSR:
    """Return a tiny model for tests and smoke runs (base 16, two levels, one block per level)."""
    return _build(_TINY, overrides)


def ssr_pixel(**overrides: Any) -> PixelSSR:
    """Return the paper-scale model (AMF hidden 128 at every level, T = 15, kappa = 2)."""
    return _build({}, overrides)


def ssr_pixel_di_kernel_only(**overrides: Any) -> PixelSSR:
    """Return Table 2 row 1: DI-kernel and LR, no depth, no SVKR."""
    return _build({"amf": {"use_depth": False, "use_svkr": False}}, overrides)


def ssr_pixel_depth_only(**overrides: Any) -> PixelSSR:
    """Return Table 2 row 2: depth and LR, no kernel, no SVKR."""
    return _build({"amf": {"use_kernel": False, "use_svkr": False}}, overrides)


def ssr_pixel_no_svkr(**overrides: Any) -> PixelSSR:
    """Return Table 2 row 3: kernel, depth and LR, kernel/depth not refined by SVKR."""
    return _build({"amf": {"use_svkr": False}}, overrides)
