"""A tiny latent SR backbone in the real diffusers pipeline layout, written by ``save_pretrained``.

Same structure as ``CompVis/ldm-super-resolution-4x-openimages`` at a toy size: a VQ-f4
``VQModel`` (3 levels, 3 latent channels), a ``UNet2DModel`` taking the latent concatenated with
the RGB LR (6 channels) with a plain and an attention block per path (the real one's block
types), and a ``DDIMScheduler`` with the scaled-linear betas of LDM. Random weights, seeded.
"""

from __future__ import annotations

from pathlib import Path

from ssr_models.latent_backbone import tiny_backbone_models


def make_tiny_backbone(folder: Path, seed: int = 0) -> Path:
    """Write vqvae/, unet/, scheduler/ under ``folder`` (safetensors + config.json); return it."""
    vq, unet, sched = tiny_backbone_models(width=8, num_codes=16, seed=seed)
    vq.save_pretrained(folder / "vqvae", safe_serialization=True)
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    sched.save_pretrained(folder / "scheduler")
    return folder
