"""A training run's metric log: ``metrics.jsonl`` always, TensorBoard too when it is installed.

One JSON object per line, ``{"step", "time", **metrics}``; the keys are ``train/...`` means
over ``log_every`` steps (``train/loss``, ``train/lr``, ``train/data_wait_share``, the family's
own logs) and ``val/...`` validation means. TensorBoard (``OUT/tb``) gets the same scalars.
On resume the lines past the checkpoint's step (from the interrupted run) are dropped, so the
file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ssr_core.io import write_bytes_atomic

__all__ = ["MetricsLog", "StepWindow"]


class MetricsLog:
    """Append metrics of a run folder (rank 0 only; see the module docstring)."""

    def __init__(self, out_dir: Path, tensorboard: bool) -> None:
        self.path = out_dir / "metrics.jsonl"
        self.tensorboard = tensorboard
        self._writer: Any = None  # None: not opened yet; False: TensorBoard unavailable

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Append one line for ``step`` (and the TensorBoard scalars)."""
        if not metrics:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "time": time.time(), **metrics}) + "\n")
        if self._writer is None and self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; metrics.jsonl has everything
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.path.parent / "tb"))
        if self._writer:
            for k, v in metrics.items():
                self._writer.add_scalar(k, v, step)
            self._writer.flush()

    def truncate(self, step: int) -> None:
        """Drop the lines logged after ``step`` (an interrupted run's tail)."""
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= step]
        write_bytes_atomic(self.path, "".join(line + "\n" for line in keep).encode("utf-8"))

    def close(self) -> None:
        """Flush and close TensorBoard's writer (metrics.jsonl is closed after every line)."""
        if self._writer:
            self._writer.close()
        self._writer = None


class StepWindow:
    """One log window of steps: the means of their values and the share spent waiting for data."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count, self.wait_s, self.step_s = 0, 0.0, 0.0

    def add(self, values: dict[str, float], wait_s: float, step_s: float) -> None:
        """Add one step: its values, the seconds it waited for its batch and took in all."""
        for k, v in values.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.count += 1
        self.wait_s += wait_s
        self.step_s += step_s

    def pop(self) -> dict[str, float]:
        """Return ``train/<key>`` means and ``train/data_wait_share`` (0..1); start anew."""
        out = {f"train/{k}": v / max(self.count, 1) for k, v in self.sums.items()}
        out["train/data_wait_share"] = self.wait_s / self.step_s if self.step_s > 0 else 0.0
        self.sums, self.count, self.wait_s, self.step_s = {}, 0, 0.0, 0.0
        return out
