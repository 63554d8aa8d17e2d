"""Fixtures for the build-pipeline and CLI tests: tiny folder sources and shard helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from degrade.build import BuildConfig
from degrade.recipes import load_recipe
from ssr_datasets.manifest import read_manifest
from ssr_datasets.schema import Sample
from ssr_datasets.shards import iter_shard

H, W = 48, 64  # HR input size: LR 12 x 16 at x4, comfortably above the 21 px kernel window
NAMES = ("delta", "alpha", "foxtrot", "charlie", "echo", "bravo")  # written in this (unsorted) order


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 (H, W, 3) RGB (or uint16) as PNG; cv2 wants BGR."""
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


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder source of six 48x64 random RGB PNGs named out of sorted order."""
    root = tmp_path / "images"
    write_folder(root)
    return root
