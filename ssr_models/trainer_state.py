"""What a Trainer checkpoint holds, and restoring a Trainer from one (bit-for-bit resume).

The file format (keys, safe loading) is :mod:`ssr_models.checkpoint`'s; this module fills it
from a live :class:`ssr_models.trainer.Trainer` and back: weights, EMA, optimizer, LR schedule,
GradScaler, each rank's RNG and data-stream position, and the best validation so far
(``best``: ``{"metric", "direction", "value", "step"}`` or None, see
:mod:`ssr_models.retention`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ssr_core.errors import ConfigError, SsrError
from ssr_core.io import link_atomic

from .checkpoint import (
    CKPT_FORMAT,
    CKPT_VERSION,
    load_checkpoint,
    refuse_resume_changes,
    rng_state,
    save_atomic,
    saved_settings,
    set_rng_state,
)
from .distributed import gather_objects
from .precision import kernel_choice
from .retention import BEST, LAST, prune_checkpoints
from .schedule import LRSchedule

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["NonFiniteError", "resume_trainer", "save_trainer"]


class NonFiniteError(SsrError):
    """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


def _float_states(*modules: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    for module in modules:
        for name, value in module.state_dict().items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                yield name, value


def save_trainer(trainer: Trainer, best: bool = False) -> Path | None:
    """Write ``ckpt-{step:07d}.pt``, link ``last.pt`` (and ``best.pt``), prune; return the path.

    Collective under DDP (every rank's RNG and stream position are gathered); only rank 0
    writes and gets the path, the others None.

    Raises:
        NonFiniteError: The weights hold NaN/Inf (nothing is written).
    """
    per_rank = gather_objects({"rng": rng_state(), "data": (
        trainer.stream.state_dict() if hasattr(trainer.stream, "state_dict") else None)})
    trainer._saved_step = trainer.step  # on every rank, so all agree on the final save
    if not trainer.is_main:
        return None
    for name, p in _float_states(trainer.model, trainer.ema):
        if not torch.isfinite(p).all():
            raise NonFiniteError(f"refusing to checkpoint non-finite weights ({name}) at "
                                 f"step {trainer.step}; the last checkpoint is kept")
    ckpt = {"format": CKPT_FORMAT, "version": CKPT_VERSION, "step": trainer.step,
            "model": trainer.model.state_dict(), "ema": trainer.ema.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.scaler.state_dict(),
            "schedule": trainer.schedule.state_dict(), "per_rank": per_rank,
            "world_size": trainer.world_size, "best": trainer.best}
    out = trainer.out_dir
    path = out / f"ckpt-{trainer.step:07d}.pt"
    save_atomic(ckpt, path)
    link_atomic(path, out / LAST)
    if best:
        link_atomic(path, out / BEST)
    prune_checkpoints(out, trainer.config.keep_last)  # only once both links name the new file
    return path


def resume_trainer(trainer: Trainer, path: str | Path) -> int:
    """Restore ``trainer`` from checkpoint ``path``; return its step (see ``Trainer.resume``)."""
    ckpt = load_checkpoint(path, map_location=trainer.device)
    refuse_resume_changes(path, saved_settings(path), trainer.config_record)
    if ckpt["world_size"] != trainer.world_size:
        raise ConfigError(f"{path}: saved with world_size {ckpt['world_size']}, now "
                          f"{trainer.world_size}; bitwise resume needs the same world size")
    trainer.model.load_state_dict(ckpt["model"])
    trainer.ema.load_state_dict(ckpt["ema"])
    trainer.optimizer.load_state_dict(ckpt["optimizer"])
    for group in trainer.optimizer.param_groups:  # the saved groups carry the saving device's
        group.update(kernel_choice(trainer.device))  # implementation; keep this device's
    trainer.scheduler.load_state_dict(ckpt["scheduler"])
    trainer.scaler.load_state_dict(ckpt["scaler"])
    trainer.step = int(ckpt["step"])
    trainer.best = ckpt.get("best")  # checkpoints from before best.pt existed have none
    saved = LRSchedule.from_state_dict(ckpt["schedule"])
    trainer.schedule, trainer.resume_note = saved.with_steps(trainer.config.steps, trainer.step)
    for group, base in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs,
                           strict=True):
        group["lr"] = base * trainer.schedule.factor(trainer.step)  # the next step's rate
    mine = ckpt["per_rank"][trainer.rank]
    set_rng_state(mine["rng"])
    if mine["data"] is not None and hasattr(trainer.stream, "load_state_dict"):
        trainer.stream.load_state_dict(mine["data"])
    if trainer.is_main:
        trainer.log.truncate(trainer.step)
    return trainer.step
