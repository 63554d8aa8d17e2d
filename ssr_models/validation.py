"""Validation of a model on held-out batches: the family's own values, averaged over batches."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .batch import Batch

__all__ = ["validate_model"]


@torch.no_grad()
def validate_model(model: nn.Module, batches: Iterable[Batch],
                   device: torch.device) -> dict[str, float]:
    """Return ``{"val/<name>": mean}`` of the family's ``validation_step`` logs over ``batches``.

    A family without ``validation_step`` is scored by its ``training_step`` (``loss`` plus its
    logs).
    """
    sums: dict[str, float] = {}
    count = 0
    step_fn = getattr(model, "validation_step", None)
    for batch in batches:
        batch = batch.to(device)
        if callable(step_fn):
            logs = dict(step_fn(batch))
        else:
            loss, logs = model.training_step(batch)
            logs = {"loss": float(loss), **logs}
        for k, v in logs.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        count += 1
    return {f"val/{k}": v / max(count, 1) for k, v in sums.items()}
