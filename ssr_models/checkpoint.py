"""Trainer checkpoints: the file format, atomic writes, and the RNG state they carry.

A checkpoint is a dict with ``format``/``version`` markers, the model, EMA, optimizer, scheduler
and scaler states, every rank's RNG and data-stream state, and the step. Files are written to a
temp name and renamed (``ssr_datasets.storage.atomic_file``); ``last.pt`` is a hard link to the
newest one, swapped in by rename, so it never names a partial file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssr_datasets.errors import ConfigError
from ssr_datasets.shards import write_bytes_atomic
from ssr_datasets.storage import atomic_file

CKPT_FORMAT = "ssr-bench-checkpoint"
CKPT_VERSION = 1


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save ``obj`` to ``path`` through a temp file and a rename (never a partial file)."""
    with atomic_file(path) as f:
        torch.save(obj, f)


def link_atomic(src: Path, dst: Path) -> None:
    """Make ``dst`` name the same bytes as ``src``: hard link (or copy) to a temp, rename."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        write_bytes_atomic(dst, src.read_bytes())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a Trainer checkpoint (``model``, ``ema``, ``step``, ``config``, ... keys).

    Raises:
        ConfigError: The file is not a Trainer checkpoint of a known version.
    """
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ConfigError(f"{path}: not an ssr-bench Trainer checkpoint")
    if ckpt.get("version") != CKPT_VERSION:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')}, "
                          f"this code reads {CKPT_VERSION}")
    return ckpt


def rng_state() -> dict[str, Any]:
    """Return the torch, numpy, python (and CUDA) RNG states."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states returned by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_all(seed: int) -> None:
    """Seed torch, numpy and python's global generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
