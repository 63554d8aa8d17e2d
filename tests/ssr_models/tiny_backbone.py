"""A tiny latent SR backbone in the real diffusers pipeline layout, written by ``save_pretrained``.

Same structure as ``CompVis/ldm-super-resolution-4x-openimages`` at a toy size: a VQ-f4
``VQModel`` (3 levels, 3 latent channels), a ``UNet2DModel`` taking the latent concatenated with
the RGB LR (6 channels) with a plain and an attention block per path (the real one's block
types), and a ``DDIMScheduler`` with the scaled-linear betas of LDM. Random weights, seeded.
"""

from __future__ import annotations

from pathlib import Path

import torch


def make_tiny_backbone(folder: Path, seed: int = 0) -> Path:
    """Write vqvae/, unet/, scheduler/ under ``folder`` (safetensors + config.json); return it."""
    from diffusers import DDIMScheduler, UNet2DModel, VQModel

    torch.manual_seed(seed)
    vq = VQModel(in_channels=3, out_channels=3, latent_channels=3, num_vq_embeddings=16,
                 block_out_channels=(8, 8, 8), layers_per_block=1, norm_num_groups=8,
                 down_block_types=("DownEncoderBlock2D",) * 3,
                 up_block_types=("UpDecoderBlock2D",) * 3)
    unet = UNet2DModel(in_channels=6, out_channels=3, block_out_channels=(8, 16),
                       layers_per_block=1, norm_num_groups=8, attention_head_dim=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    sched = DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                          beta_start=0.0015, beta_end=0.0155, clip_sample=False)
    vq.save_pretrained(folder / "vqvae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    sched.save_pretrained(folder / "scheduler")
    return folder
