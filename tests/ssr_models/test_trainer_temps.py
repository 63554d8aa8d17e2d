"""Issue 10, finding 10: a Trainer starting on a run folder removes a killed run's temps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from ssr_models.trainer import Trainer, TrainerConfig
from tests.faults import dead_pid, temp_of


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def training_step(self, batch: object) -> tuple[torch.Tensor, dict[str, float]]:
        return self.w.sum(), {}


def test_trainer_removes_dead_runs_checkpoint_temps(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    gone = dead_pid()
    stale = [temp_of(run, "ckpt-0000004.pt", gone),  # atomic_file's temp of a checkpoint
             temp_of(run, "last.pt", gone, random=None)]  # link_atomic's temp of last.pt
    live = temp_of(run, "ckpt-0000008.pt", os.getpid())
    for path in [*stale, live]:
        path.write_bytes(b"partial")
    with pytest.warns(UserWarning, match="left by process") as seen:
        Trainer(Tiny(), TrainerConfig(steps=1, out_dir=str(run), tensorboard=False), [],
                device="cpu")
    assert sorted(str(w.message) for w in seen) == sorted(
        f"removed {p}: left by process {gone}, which is no longer running" for p in stale)
    assert not any(p.exists() for p in stale) and live.exists()
