"""Small shared test helpers (image makers, tiny build folders and configs); independent
references live in tests/reference.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from degrade.build import BuildConfig
from degrade.recipes import load_recipe
from ssr_datasets.manifest import read_manifest
from ssr_datasets.schema import Sample
from ssr_datasets.shards import iter_shard


def image_pair(h: int = 40, w: int = 52, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return a smooth structured uint8 (h, w, 3) image and a noisy, slightly shifted copy."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 90 * np.sin(xx / 5.0 + c) * np.cos(yy / 7.0 - c) for c in range(3)], -1)
    gt = np.clip(base + rng.normal(0, 8, base.shape), 0, 255).round().astype(np.uint8)
    pred = np.clip(gt + rng.normal(0, 12, gt.shape) + 5, 0, 255).round().astype(np.uint8)
    return gt, pred


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """Return a uint8 (H, W, 3) image as a float (3, H, W) tensor in [0, 1]."""
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def with_random_residual(model: torch.nn.Module, seed: int = 11) -> torch.nn.Module:
    """Give an ssr-pixel model's zero-initialised last layer small random weights (in place).

    A fresh ssr-pixel predicts bicubic whatever x_t is; after training its x_0 depends on x_t
    and so on the sampling noise, which the sampler tests need.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        tail = model.unet.tail[-1]
        tail.weight.copy_(torch.randn(tail.weight.shape, generator=g) * 0.05)
    return model


# The flat model_config that run folders held before the configs were composed (regression
# fixture: the keys of the old DiffusionConfig.to_dict() for diffusion-tiny with an ablation).
FLAT_PIXEL_CONFIG_V1: dict[str, object] = {
    "base_channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1, "amf_levels": [0, 1],
    "groups": 8, "timesteps": 15, "kappa": 2.0, "power": 0.3, "loss": "l2", "val_steps": 4,
    "val_seed": 0, "use_kernel": True, "use_depth": False, "use_svkr": False,
    "amf_small_channels": 8, "amf_lr_channels": 16, "amf_hidden": 32, "amf_combine": "sum",
    "lambda_kernel": 1e-4, "lambda_depth": 1e-4, "lambda_lr": 1e-4}


# --- tiny folder sources and finished builds (the build-pipeline, CLI and training tests) ---

H, W = 48, 64  # HR input size: LR 12 x 16 at x4, comfortably above the 21 px kernel window
NAMES = ("delta", "alpha", "foxtrot", "charlie", "echo", "bravo")  # written in this (unsorted) order


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 (H, W, 3) RGB (or uint16) with OpenCV (BGR order; the suffix picks the format),
    creating the parent folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise OSError(f"cv2 could not write {path}")


def write_folder(root: Path, names: tuple[str, ...] | list[str] = NAMES, seed: int = 0,
                 h: int = H, w: int = W) -> dict[str, np.ndarray]:
    """Write one random RGB PNG per name under ``root``; return name -> written RGB pixels."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images = {}
    for name in names:
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        write_rgb(root / f"{name}.png", rgb)
        images[name] = rgb
    return images


def make_config(root: Path, recipe: str = "ssr", no_noise: bool = False, no_jpeg: bool = False,
                **kw: Any) -> BuildConfig:
    """Return a folder-source BuildConfig (shard_size 2 unless given)."""
    kw.setdefault("shard_size", 2)
    rec = load_recipe(recipe).with_overrides(no_noise=no_noise, no_jpeg=no_jpeg)
    return BuildConfig(recipe=rec, source="folder", root=str(root), **kw)


def shard_bytes(out_dir: Path) -> dict[str, bytes]:
    """Return every ``*.tar`` in ``out_dir`` as name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(Path(out_dir).glob("*.tar"))}


def samples_by_key(out_dir: Path) -> dict[str, Sample]:
    """Decode every sample of a finished build (manifest order) into key -> Sample."""
    manifest = read_manifest(out_dir)
    return {s.key: s for entry in manifest["shards"] for s in iter_shard(Path(out_dir) / entry["name"])}


def tmp_files(out_dir: Path) -> list[Path]:
    """Return temp files (hidden or not) left in ``out_dir``."""
    return sorted(p for p in Path(out_dir).iterdir() if p.name.endswith(".tmp"))
