"""What the Trainer needs from torch.distributed: the DDP step module, rank agreement, teardown.

Every helper here works without a process group too (one process: rank 0 of 1), so the
Trainer calls them unconditionally.
"""

from __future__ import annotations

import gc
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .batch import Batch

__all__ = ["StepModule", "any_rank", "end_distributed", "gather_objects", "is_distributed"]


def is_distributed() -> bool:
    """Whether a torch.distributed process group is initialized."""
    return dist.is_available() and dist.is_initialized()


class StepModule(nn.Module):
    """Routes DDP's ``forward`` to the wrapped model's ``training_step``.

    DDP only syncs the gradients of calls made through its ``forward``; wrapping the model in
    this module makes the family's ``training_step`` that call.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.training_step(batch)


def any_rank(flag: bool, device: torch.device) -> bool:
    """Return whether ``flag`` is true on any rank (a collective under DDP: all ranks call it).

    Decisions that start collectives (a checkpoint's gather, stopping) must be the same on
    every rank, or the ranks that decided otherwise hang.
    """
    if not is_distributed():
        return flag
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(mine: Any) -> list[Any]:
    """Return every rank's ``mine`` in rank order (``[mine]`` without a process group)."""
    if not is_distributed():
        return [mine]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return gathered


def end_distributed() -> None:
    """Destroy the default process group after freeing what still holds it (call once, last).

    Trainers (their DDP module and reducer) can outlive ``fit`` in reference cycles, some of
    them inside torch (the optimizer's first construction keeps import frames alive); if they
    are freed only at interpreter exit, after the group is gone, gloo aborts the process
    ("terminate called without an active exception"). Collecting first frees them while the
    group still exists.
    """
    gc.collect()
    dist.destroy_process_group()
