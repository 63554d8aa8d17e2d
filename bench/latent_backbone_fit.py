"""A tiny latent SR backbone fitted in-process on the learning check's training split.

The latent rows of ``bench/learning.py`` need a backbone whose VQ decoder and denoiser mean
something: on a random one (``tests/ssr_models/tiny_backbone.py``) SSR decodes through a random
VQ decoder (-11.7 dB below bicubic, a plumbing check only). The paper's backbone,
``CompVis/ldm-super-resolution-4x-openimages``, is too large to train or even sample on 2 CPU
cores in the bench's budget, so this module makes a toy stand-in of the same layout and trains it
on the training split only, within a time budget:

1. VQ-f4 autoencoder (diffusers ``VQModel``, 3 latent channels, ``NUM_CODES`` codes): L1
   reconstruction of HR crops in [-1, 1] through the quantiser (straight-through) plus
   diffusers' commitment loss; the codebook starts from encoder outputs of the first batch
   (a random uniform codebook near 0 would leave most codes dead).
2. Latent SR denoiser (diffusers ``UNet2DModel``, input = noisy latent concatenated with the LR
   in [-1, 1], LDM-SR's layout; epsilon prediction with LDM's scaled-linear ``DDIMScheduler``),
   trained on the frozen encoder's pre-quantisation latents, as ``LatentSSR.training_step``.

``save_pretrained`` writes it in the diffusers pipeline layout (``vqvae/``, ``unet/``,
``scheduler/``) that ``ssr_models.latent_backbone`` loads and hashes, so SSR then trains its
encoders and AMF on top of it with the backbone frozen, exactly as on the CompVis weights.
All randomness comes from ``seed`` (torch's global RNG, seeded here, and the stream's seed).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ssr_models.latent_backbone import tiny_backbone_models

WIDTH = 16  # channels of the VQ levels and the UNet's first level (the test backbone's: 8)
NUM_CODES = 256  # 16 (the test backbone's) posterises every 4 x 4 HR block to 16 colours
VQ_SHARE = 0.4  # of the budget: the autoencoder converges faster than the denoiser


@dataclass(frozen=True)
class BackboneFit:
    """What :func:`fit_tiny_backbone` did (for the report).

    Attributes:
        folder: The written backbone (diffusers layout).
        vq_steps, unet_steps: Optimizer steps of each part.
        seconds: Wall-clock time of the whole fit.
        vq_loss, unet_loss: Mean training loss over each part's last 20 steps (L1 on [-1, 1]
            pixels + commitment; epsilon MSE).
    """

    folder: Path
    vq_steps: int
    unet_steps: int
    seconds: float
    vq_loss: float
    unet_loss: float


def _models(seed: int) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    """Return fresh (VQModel, UNet2DModel, DDIMScheduler) of the bench's tiny backbone."""
    return tiny_backbone_models(WIDTH, NUM_CODES, seed)


def _init_codebook(vq: torch.nn.Module, hr: torch.Tensor, generator: torch.Generator) -> None:
    """Set the codebook to NUM_CODES encoder outputs of ``hr`` (B, 3, H, W) in [-1, 1]."""
    with torch.no_grad():
        z = vq.encode(hr).latents  # pre-quantisation, (B, C, h, w)
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        pick = torch.randint(0, flat.shape[0], (NUM_CODES,), generator=generator)
        vq.quantize.embedding.weight.copy_(flat[pick])


def _standardise_latents(vq: torch.nn.Module, hr: torch.Tensor) -> tuple[float, list[float]]:
    """Reparametrise ``vq`` so its latents of ``hr`` have mean 0 and std 1; return (scale, mean).

    The denoiser's noise schedule assumes unit-variance latents (LDM's ``scaling_factor``, which
    ``LatentSSR`` does not apply); a freshly fitted encoder gives std ~0.1-0.3, where the schedule
    drowns the signal. z' = c (z - m) with one scale c for all channels: quant_conv and the
    codebook map to z', post_quant_conv (1 x 1) maps back, and nearest-code assignment is
    unchanged (a translation and a uniform scaling keep the order of distances), so decoding is
    the same function as before.
    """
    with torch.no_grad():
        z = vq.encode(hr).latents
        m = z.mean((0, 2, 3))
        c = float(1.0 / (z - m.view(1, -1, 1, 1)).std())
        qc, pq, emb = vq.quant_conv, vq.post_quant_conv, vq.quantize.embedding.weight
        qc.weight.mul_(c)
        qc.bias.copy_(c * (qc.bias - m))
        emb.copy_(c * (emb - m))
        pq.bias.add_(pq.weight[:, :, 0, 0] @ m)
        pq.weight.div_(c)
    return c, m.tolist()


def _train(step_fn: Callable[[], torch.Tensor], params: list[torch.nn.Parameter], lr: float, max_steps: int,
           seconds: float | None) -> tuple[int, float]:
    """Run AdamW on ``step_fn() -> loss`` until ``max_steps`` or ``seconds``; return (steps, tail loss)."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    t0, steps, tail = time.perf_counter(), 0, []
    while steps < max_steps and (seconds is None or time.perf_counter() - t0 < seconds):
        loss = step_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        steps += 1
        tail = (tail + [loss.item()])[-20:]
    return steps, float(sum(tail) / max(len(tail), 1))


def fit_tiny_backbone(folder: Path, shards: Path, *, minutes: float | None, max_steps: int,
                      seed: int, crop_hr: int = 64, unet_crop_hr: int = 32,
                      batch_size: int = 8) -> BackboneFit:
    """Fit the tiny VQ-f4 autoencoder, then the latent SR UNet, on ``shards``; write ``folder``.

    Args:
        folder: Output (``vqvae/``, ``unet/``, ``scheduler/``; must not exist yet).
        shards: Training shard folder (HR crops of at least ``crop_hr`` px, x4).
        minutes: Wall-clock budget of the whole fit (``VQ_SHARE`` for the autoencoder); None:
            ``max_steps`` only. max_steps: Step cap of each part.
        seed: Seeds the weights, the codebook pick, the noise and the crop streams.
        crop_hr, unet_crop_hr: HR crop side (px) of the autoencoder's and the UNet's batches
            (the UNet is convolutional: smaller crops buy it more steps in the budget).
        batch_size: Crops per batch, 4 from each decoded image.
    """
    from ssr_models.data import TrainingStream

    t0 = time.perf_counter()
    vq, unet, sched = _models(seed)
    g = torch.Generator().manual_seed(seed)
    stream = iter(TrainingStream(shards, crop_hr=crop_hr, batch_size=batch_size, seed=seed,
                                 crops_per_image=4, augment=True))
    budget = None if minutes is None else 60 * minutes
    _init_codebook(vq, next(stream).hr * 2 - 1, g)

    def vq_step() -> torch.Tensor:
        x = next(stream).hr * 2 - 1
        out = vq(x)
        return F.l1_loss(out.sample, x) + out.commit_loss.mean()

    vq.train()
    vq_steps, vq_loss = _train(vq_step, list(vq.parameters()), 1e-3, max_steps,
                               None if budget is None else VQ_SHARE * budget)
    vq.eval().requires_grad_(False)
    _standardise_latents(vq, torch.cat([next(stream).hr for _ in range(4)]) * 2 - 1)

    stream = iter(TrainingStream(shards, crop_hr=unet_crop_hr, batch_size=batch_size,
                                 seed=seed + 1, crops_per_image=4, augment=True))

    def unet_step() -> torch.Tensor:
        b = next(stream)
        with torch.no_grad():
            z0 = vq.encode(b.hr * 2 - 1).latents
        noise = torch.randn(z0.shape, generator=g)
        t = torch.randint(0, sched.config.num_train_timesteps, (z0.shape[0],), generator=g)
        zt = sched.add_noise(z0, noise, t)
        return F.mse_loss(unet(torch.cat([zt, b.lr * 2 - 1], 1), t).sample, noise)

    unet.train()
    left = None if budget is None else max(1.0, budget - (time.perf_counter() - t0))
    unet_steps, unet_loss = _train(unet_step, list(unet.parameters()), 1e-3, max_steps, left)
    unet.eval()
    vq.save_pretrained(folder / "vqvae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    sched.save_pretrained(folder / "scheduler")
    return BackboneFit(folder, vq_steps, unet_steps, time.perf_counter() - t0, vq_loss, unet_loss)


def load_vq(folder: Path) -> torch.nn.Module:
    """Return the VQ autoencoder of the backbone ``folder`` (diffusers layout), in eval mode."""
    from diffusers import VQModel

    return VQModel.from_pretrained(folder / "vqvae").eval()


def vq_round_trip(vq: torch.nn.Module, hr: torch.Tensor) -> torch.Tensor:
    """Return HR (B, 3, H, W) in [0, 1] encoded and decoded (quantised) by ``vq``.

    The ceiling of every latent row: no sampler can decode better than the HR's own latent.
    """
    with torch.no_grad():
        return (vq.decode(vq.encode(hr * 2 - 1).latents).sample.clamp(-1, 1) + 1) / 2


def denoising_errors(model: torch.nn.Module, batches: list, seed: int,
                     timesteps: int = 10) -> tuple[float, float]:
    """Return held-out Eq. 5 epsilon (or velocity) MSE of (backbone alone, latent SSR).

    The loss SSR's adapters are trained on, at ``timesteps`` evenly spaced t (the training
    draw is uniform in t), with the same z_t for both (noise seeded per image) and the batches'
    true kernel field and nearness (as in training): the adapters' gain over their trivial
    baseline (zero AMF = the backbone) in their own objective, free of sampling variance.

    Args:
        model: A ``LatentSSR`` in eval mode. batches: ``Batch`` es of held-out images.
    """
    sched = model.noise_scheduler
    n_train = sched.config.num_train_timesteps
    ts = [round((i + 0.5) * n_train / timesteps) for i in range(timesteps)]
    sums = [0.0, 0.0]
    with torch.no_grad():
        for i, b in enumerate(batches):
            g = torch.Generator().manual_seed(seed + i)
            lr = b.lr * 2 - 1
            z0 = model.vqvae.encode(b.hr * 2 - 1).latents
            enc = model.encode(lr, b.kernel_field, b.nearness)
            for t in ts:
                noise = torch.randn(z0.shape, generator=g)
                tt = torch.full((z0.shape[0],), t)
                zt = sched.add_noise(z0, noise, tt)
                target = noise if sched.config.prediction_type == "epsilon" else \
                    sched.get_velocity(z0, noise, tt)
                for j, e in enumerate((None, enc)):
                    sums[j] += F.mse_loss(model.eps(zt, lr, tt, e), target).item()
    n = len(batches) * len(ts)
    return sums[0] / n, sums[1] / n
