"""Latent SSR: a pretrained latent SR diffusion model steered by AMF (SSR paper Sec. 3.1, 3.3, Eq. 3-5).

The paper: "inspired by StableDiffusion, we encode LR images into a latent space using a VAEGAN
encoder"; the LR, depth and kernel encodings, aligned by AMF (Eq. 3), "fine-tune the diffusion
model, reducing the number of parameters and the complexity of training"; the loss (Eq. 5) is
the latent epsilon-prediction loss plus L1 penalties on the three modality features. So:

* Backbone (:mod:`ssr_models.latent_backbone`): a diffusers ``VQModel`` + ``UNet2DModel`` +
  noise scheduler, by default ``CompVis/ldm-super-resolution-4x-openimages``: VQ-f4 latents,
  the LR image in [-1, 1] concatenated to the latent as UNet input channels (latent px = LR px
  at x4), epsilon prediction. Frozen by default (``requires_grad`` off, kept in eval mode
  whatever ``train()`` says); ``train_backbone_blocks`` unfreezes named UNet blocks
  (``"up_blocks.3"``, ``"mid_block"``, ...). Only trainable weights go into state dicts and
  checkpoints: the frozen backbone is reloaded from its folder, whose weight files' sha256
  are recorded in the config (``backbone_sha256``) and checked on every reload.
* Encoders (:mod:`ssr_models.encoders`): the LR half UNet (IB, MB, FTB) and smaller kernel and
  depth encoders, each giving one feature map per backbone resolution level (ControlNet-style).
* AMF (:class:`ssr_models.amf.AMF`, residual form) after EVERY block of the backbone UNet (each
  down block, the mid block, each up block), with the encodings of that block's output level.
  Forward hooks replace the block output (a down block's output also replaces its last skip
  tensor, which diffusers returns as the same tensor), so diffusers' own UNet forward runs
  unchanged. M_alpha and M_beta end in zero-initialised layers: at step 0 SSR's epsilon and
  samples EQUAL the backbone's (tested with ``torch.equal`` against diffusers'
  ``LDMSuperResolutionPipeline``).
* Training (Eq. 5): z_0 = VQ encoder(HR in [-1, 1]) (the pre-quantisation latent, as LDM trains),
  t ~ U{0 .. T-1}, z_t = the backbone scheduler's ``add_noise``;
  ``loss = ||eps - eps_theta(z_t, LR, t, f)||^2 + sum_i lambda_i C_i(f_i)`` (v-prediction
  backbones: the velocity target). All noise from the global torch RNG the Trainer seeds and
  checkpoints.

Choices where the paper is silent (all in :class:`LatentConfig`):

* The LR encoder reads the LR pixels at latent resolution (the backbone's own LR input) rather
  than a VQ encoding of LR: with an f4 VQ the encoding of LR would be 4x smaller than the latent.
* C_i(f_i) = the mean over levels of mean |f_i^l| (level-size independent, as ``amf.py``).
* Sampling: any diffusers scheduler built from the backbone's scheduler config (``sampler``:
  DDIM default, ``sample_steps`` 50, eta 0); ``scale_model_input`` scales the latent only (the
  LR part of the input stays in [-1, 1]; for DDIM/DDPM it is the identity either way). The VQ
  decoder quantises (as the diffusers pipeline). Inputs whose size is not a multiple of the UNet's
  ``2^(levels-1)`` are replicate-padded and cropped back.
* Precision: ``sample_amp`` (fp16 by default) autocasts the UNet and encoders on CUDA during
  sampling; the VQ decoder runs in float32. Training precision is the Trainer's ``amp``.
* Tiling (``tile`` latent px, 0 = never): larger latents are denoised in overlapping tiles
  (:func:`ssr_models.tiling.tile_starts` placement, raised-cosine blend of epsilon at every step)
  and decoded in the same tiles blended in pixel space, so one noise draw covers the image and
  no seam is fixed at step 0. Encodings are computed per tile (once per sampling).
* Ablations (Table 2): ``use_kernel`` / ``use_depth`` drop that encoder; ``use_svkr`` is read by
  the inference pipeline only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from degrade.ops.kernels import centered_delta
from ssr_core.config import did_you_mean
from ssr_core.errors import ConfigError
from ssr_models.amf import AMF, AMFConfig, kernel_features
from ssr_models.encoders import HalfUNetEncoder, SmallEncoder
from ssr_models.latent_backbone import load_backbone
from ssr_models.latent_config import LatentConfig
from ssr_models.latent_sampling import make_sampler, reverse_process

__all__ = ["LatentConfig", "LatentSSR", "ssr_latent", "ssr_latent_tiny"]

_PCA_KERNEL_SIZE = 21  # K of the kernels the PCA code is fitted on (the `ssr` recipe's)


class _Site(nn.Module):
    """AMF after one backbone UNet block; ``hook`` is the block's forward hook."""

    def __init__(self, level: int, channels: int, config: AMFConfig) -> None:
        super().__init__()
        self.level = level
        self.amf = AMF(channels, config, residual=True)
        self.features: dict[str, torch.Tensor] | None = None  # set around each UNet call

    def hook(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.features is None:  # the plain backbone (no encodings given)
            return None
        if isinstance(output, tuple):  # a down block: (hidden, skips); skips[-1] is hidden
            hidden, skips = output[0], output[1]
            new = self.amf(hidden, self.features)
            skips = (*skips[:-1], new) if skips and skips[-1] is hidden else skips
            return (new, skips, *output[2:])
        return self.amf(output, self.features)


def _block_sites(unet: nn.Module) -> list[tuple[str, nn.Module, int, int]]:
    """Return (name, block, output level, output channels) for every down, mid and up block."""
    out, level = [], 0
    for i, block in enumerate(unet.down_blocks):
        level += int(getattr(block, "downsamplers", None) is not None)
        out.append((f"down_blocks.{i}", block, level, block.resnets[-1].out_channels))
    if unet.mid_block is not None:
        out.append(("mid_block", unet.mid_block, level, unet.mid_block.resnets[-1].out_channels))
    for i, block in enumerate(unet.up_blocks):
        level -= int(getattr(block, "upsamplers", None) is not None)
        out.append((f"up_blocks.{i}", block, level, block.resnets[-1].out_channels))
    return out


class LatentSSR(nn.Module):
    """SSR on a pretrained latent SR backbone; images in [0, 1] at the API (see module doc)."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        backbone = load_backbone(config.backbone, config.backbone_sha256)
        info = backbone.info
        if info.vq_factor != config.scale:
            raise ConfigError(f"backbone {config.backbone}: its VQ autoencoder downsamples by "
                              f"{info.vq_factor}, the model's scale is {config.scale}: they must agree")
        self.config = dataclasses.replace(config, backbone_sha256=info.sha256)
        self.backbone_info = info
        self.vqvae, self.unet = backbone.vqvae, backbone.unet
        import diffusers

        self.scheduler_config = backbone.scheduler_config
        self.noise_scheduler = getattr(diffusers, self.scheduler_config["_class_name"]).from_config(
            self.scheduler_config)
        sites = _block_sites(self.unet)
        self.levels = max(level for _, _, level, _ in sites) + 1
        amf = config.amf
        pca = config.kernel_pca_components
        self.pca = None
        if pca:
            from ssr_models.kernel_pca import KernelPCA

            self.pca = KernelPCA(_PCA_KERNEL_SIZE, centered_delta(config.scale), pca)
            self.pca.fit(4000, torch.Generator().manual_seed(0))
        enc: dict[str, nn.Module] = {"lr": HalfUNetEncoder(3, config.lr_base_channels, self.levels,
                                                           amf.lr_channels)}
        if amf.use_kernel:
            enc["kernel"] = SmallEncoder(4 + pca, amf.small_channels, self.levels)
        if amf.use_depth:
            enc["depth"] = SmallEncoder(config.scale**2, amf.small_channels, self.levels)
        self.encoders = nn.ModuleDict(enc)
        self.sites = nn.ModuleDict()
        for name, block, level, channels in sites:
            site = _Site(level, channels, amf)
            self.sites[name.replace(".", "_")] = site
            block.register_forward_hook(site.hook)  # a bound method: deepcopy (EMA) remaps it
        self._frozen_prefixes = self._freeze(config.train_backbone_blocks)
        self.register_load_state_dict_post_hook(_ignore_frozen_missing)

    # ---- freezing -------------------------------------------------------------------------
    def _freeze(self, blocks: tuple[str, ...]) -> tuple[str, ...]:
        """Freeze the backbone but ``blocks``; return the state-dict prefixes left out of checkpoints."""
        names = dict(self.unet.named_modules())
        for name in blocks:
            if name not in names or not name:
                hint = did_you_mean(name, [n for n in names if n])
                raise ConfigError(f"train_backbone_blocks: the UNet has no block {name!r}{hint}")
            names[name].requires_grad_(True)
        self._trainable_blocks = tuple(blocks)
        return ("vqvae.", "unet.")

    def _is_frozen_key(self, key: str) -> bool:
        return key.startswith(self._frozen_prefixes) and not any(
            key.startswith(f"unet.{b}.") for b in self._trainable_blocks)

    def train(self, mode: bool = True) -> LatentSSR:
        """Set train mode on the encoders/AMF (and unfrozen blocks); the backbone stays in eval."""
        super().train(mode)
        self.vqvae.eval()
        self.unet.eval()
        modules = dict(self.unet.named_modules())
        for name in self._trainable_blocks:
            modules[name].train(mode)
        return self

    def state_dict(self, *args: Any, destination: Any = None, prefix: str = "",
                   keep_vars: bool = False) -> Any:
        """Return the state dict without the frozen backbone (reloaded from its folder instead)."""
        out = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in out if k.startswith(prefix) and self._is_frozen_key(k[len(prefix):])]:
            del out[key]
        return out

    # ---- network --------------------------------------------------------------------------
    @property
    def size_multiple(self) -> int:
        """LR (= latent) px multiple the UNet needs: 2^(levels - 1)."""
        return 2 ** (self.levels - 1)

    @property
    def default_steps(self) -> int:
        """Reverse steps of :meth:`sample` when none are given (``sample_steps``)."""
        return self.config.sample_steps

    def encode(self, lr: torch.Tensor, kernel_field: torch.Tensor | None,
               nearness: torch.Tensor | None) -> dict[str, list[torch.Tensor]]:
        """Return {modality: [f at level 0 .. L-1]} from LR in [-1, 1] (B, 3, h, w).

        kernel_field: (B, 3, h, w) (s1, s2 HR px, theta rad). nearness: (B, 1, s h, s w) in [0, 1].
        """
        size, s = lr.shape[-2:], self.config.scale
        out = {"lr": self.encoders["lr"](lr)}
        if "kernel" in self.encoders:
            if kernel_field is None:
                raise ConfigError("use_kernel is on but no kernel_field was given")
            feats = kernel_features(kernel_field, size)
            if self.pca is not None:
                from ssr_models.kernel_pca import kernel_field_to_taps

                taps = kernel_field_to_taps(kernel_field.float(), self.pca.kernel_size, self.pca.delta)
                feats = torch.cat([feats, self.pca.encode(taps).to(feats.dtype)], 1)
            out["kernel"] = self.encoders["kernel"](feats)
        if "depth" in self.encoders:
            want = (lr.shape[0], 1, size[0] * s, size[1] * s)
            if nearness is None or tuple(nearness.shape) != want:
                got = None if nearness is None else tuple(nearness.shape)
                raise ConfigError(f"nearness must be {want} (HR size), got {got}")
            out["depth"] = self.encoders["depth"](F.pixel_unshuffle(nearness, s))
        return out

    def penalty(self, enc: dict[str, list[torch.Tensor]]) -> torch.Tensor:
        """Return Eq. 5's sum_i lambda_i * mean over levels of mean |f_i^l| (a scalar)."""
        lambdas = self.config.amf.lambdas
        total = sum(lambdas[m] * torch.stack([f.abs().mean() for f in fs]).mean()
                    for m, fs in enc.items())
        return torch.as_tensor(total)

    def eps(self, z: torch.Tensor, lr: torch.Tensor, t: torch.Tensor,
            enc: dict[str, list[torch.Tensor]] | None) -> torch.Tensor:
        """Return the UNet's prediction (B, C_latent, h, w) for latent z, LR in [-1, 1], steps t.

        ``enc`` None runs the plain backbone (AMF sites pass their block's output through).
        """
        m = self.size_multiple
        if z.shape[-1] % m or z.shape[-2] % m:
            raise ConfigError(f"latent size {tuple(z.shape[-2:])} must be a multiple of {m}")
        sites = list(self.sites.values())
        try:
            if enc is not None:
                for site in sites:
                    site.features = {k: fs[site.level] for k, fs in enc.items()}
            return self.unet(torch.cat([z, lr.to(z.dtype)], 1), t).sample
        finally:
            for site in sites:
                site.features = None

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Return (loss, logs): Eq. 5 at a random t per sample (module doc)."""
        lr = batch.lr * 2 - 1
        with torch.no_grad():
            z0 = self.vqvae.encode(batch.hr * 2 - 1).latents
        sched = self.noise_scheduler
        noise = torch.randn_like(z0)
        t = torch.randint(0, sched.config.num_train_timesteps, (z0.shape[0],)).to(z0.device)
        zt = sched.add_noise(z0, noise, t)
        target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(z0, noise, t)
        enc = self.encode(lr, batch.kernel_field, batch.nearness)
        rec = F.mse_loss(self.eps(zt, lr, t, enc).float(), target.float())
        pen = self.penalty(enc)
        loss = rec + pen
        return loss, {"loss": loss.item(), "loss_eps": rec.item(), "penalty": pen.item()}

    # ---- sampling -------------------------------------------------------------------------
    def make_sampler(self, sampler: str | None = None) -> Any:
        """Return a fresh diffusers scheduler ``sampler`` (default: the config's) on the backbone's betas."""
        return make_sampler(sampler or self.config.sampler, self.scheduler_config)

    @torch.no_grad()
    def sample(self, lr: torch.Tensor, kernel_field: torch.Tensor | None,
               nearness: torch.Tensor | None, steps: int | None = None,
               generator: torch.Generator | None = None, callback: Callable[[int, int], None] | None = None,
               sampler: str | None = None, plain: bool = False, **_: Any) -> torch.Tensor:
        """Run the reverse process; return SR (B, 3, s h, s w) in [0, 1].

        Args:
            lr: (B, 3, h, w) in [0, 1]. kernel_field: (B, 3, h, w). nearness: (B, 1, s h, s w).
            steps: reverse steps (default ``sample_steps``). generator: all noise (seeded = same
                output). callback: ``callback(done, total)`` after each step. sampler: a
                SAMPLERS name (default the config's). plain: the backbone alone (no encodings).
            Other keywords (scale, kernel_size, delta of the pixel model's API) are ignored.
        """
        return reverse_process(self, lr, kernel_field, nearness, steps=steps or self.config.sample_steps,
                               generator=generator, callback=callback,
                               sampler=self.make_sampler(sampler), plain=plain)

    @torch.no_grad()
    def validation_sr(self, batch: Any) -> torch.Tensor:
        """Return a ``val_steps``-step sample (B, 3, H, W) in [0, 1], seeded by ``val_seed``."""
        g = torch.Generator(device=batch.lr.device).manual_seed(self.config.val_seed)
        return self.sample(batch.lr, batch.kernel_field, batch.nearness, steps=self.config.val_steps,
                           generator=g)

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        """Return ``ssr_models.validation.image_scores`` of :meth:`validation_sr` (dB, SSIM)."""
        from .validation import image_scores

        return image_scores(self.validation_sr(batch), batch)


def _ignore_frozen_missing(module: LatentSSR, incompatible: Any) -> None:
    """Let strict loading pass without the frozen backbone's keys (they are not checkpointed)."""
    missing = incompatible.missing_keys
    kept = []
    for key in missing:
        parts = key.split(".")
        rel = next((".".join(parts[i:]) for i in range(len(parts))
                    if parts[i] in ("vqvae", "unet")), None)
        if rel is None or not module._is_frozen_key(rel):
            kept.append(key)
    missing[:] = kept


def _build(base: dict[str, Any], overrides: dict[str, Any]) -> LatentSSR:
    return LatentSSR(LatentConfig().with_overrides(**base).with_overrides(**overrides))


def ssr_latent(**overrides: Any) -> LatentSSR:
    """Return the paper-scale model (LR half UNet base 64, f widths 64/16, AMF hidden 128)."""
    return _build({}, overrides)


def ssr_latent_tiny(**overrides: Any) -> LatentSSR:
    """Return a tiny model for tests and smoke runs (base 8, f widths 8/4, hidden 16, 4 val steps)."""
    return _build({"lr_base_channels": 8, "val_steps": 4, "sample_steps": 10,
                   "amf": {"lr_channels": 8, "small_channels": 4, "hidden": 16}}, overrides)
