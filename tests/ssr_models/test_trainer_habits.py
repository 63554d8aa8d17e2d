"""Trainer habits: best.pt by a metric, retention, gradient accumulation, the time budget."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssr_core.errors import ConfigError
from ssr_models.batch import Batch
from ssr_models.retention import BestMetric, prune_checkpoints, stage_checkpoint
from ssr_models.trainer import Trainer, TrainerConfig, load_checkpoint
from tests.ssr_models import make_batch


def _batches(n: int, seed: int = 0) -> list[Batch]:
    return [make_batch(h=4, seed=seed + i) for i in range(n)]


class Endless:
    """Cycle a list of batches forever, with a resumable position."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches, self.pos = batches, 0

    def state_dict(self) -> dict[str, Any]:
        return {"pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = int(state["pos"])

    def __iter__(self) -> Iterator[Batch]:
        while True:
            batch = self.batches[self.pos % len(self.batches)]
            self.pos += 1
            yield batch


class Linear(nn.Module):
    """LR -> kernel field by one 1x1 conv: no batch-dependent layer, no randomness.

    ``scores`` is what successive validations report as ``val/score`` (scripted).
    """

    def __init__(self, scores: tuple[float, ...] = ()) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 1)
        self.scores, self.calls = list(scores), 0

    def training_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = F.mse_loss(self.conv(batch.lr), batch.kernel_field)
        return loss, {"mse": float(loss.detach())}

    def validation_step(self, batch: Batch) -> dict[str, float]:
        self.calls += 1
        return {"score": self.scores[self.calls - 1]}


def config(out: Path, **kw: Any) -> TrainerConfig:
    base: dict[str, Any] = dict(steps=8, lr=1e-2, log_every=1, val_every=0, ckpt_every=2,
                                ema_decay=0.9, seed=0, out_dir=str(out), tensorboard=False)
    return TrainerConfig(**{**base, **kw})


def test_accumulating_two_batches_equals_one_double_batch(tmp_path: Path) -> None:
    small = _batches(6)
    pairs = [Batch(*(torch.cat([getattr(a, n), getattr(b, n)]) for n in
                     ("hr", "lr", "nearness", "kernel_field")), a.scale, a.kernel_size, a.delta)
             for a, b in zip(small[::2], small[1::2], strict=True)]
    acc = Trainer(Linear(), config(tmp_path / "a", steps=3, accum_steps=2), Endless(small))
    big = Trainer(Linear(), config(tmp_path / "b", steps=3), Endless(pairs))
    acc.fit(), big.fit()
    for (name, p), q in zip(acc.model.state_dict().items(), big.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(acc.model.conv.weight, Linear().conv.weight)  # it trained
    assert acc.stream.pos == 6 and big.stream.pos == 3  # two batches per step


def test_best_pt_follows_the_metric_and_survives_retention(tmp_path: Path) -> None:
    # validations at steps 2, 4, 6, 8 score 1, 3, 2, 2.5: max -> step 4; min -> step 2
    out = tmp_path / "max"
    Trainer(Linear((1, 3, 2, 2.5)), config(out, val_every=2, keep_last=1, best_metric="score:max"),
            Endless(_batches(2)), val_batches=_batches(1)).fit()
    best = load_checkpoint(out / "best.pt")
    assert best["step"] == 4
    assert best["best"] == {"metric": "score", "direction": "max", "value": 3.0, "step": 4}
    assert load_checkpoint(out / "last.pt")["step"] == 8
    assert sorted(p.name for p in out.glob("*.pt")) == ["best.pt", "ckpt-0000008.pt", "last.pt"]
    assert stage_checkpoint(out) == out / "best.pt"
    out = tmp_path / "min"
    Trainer(Linear((1, 3, 2, 2.5)), config(out, val_every=2, best_metric="score:min"),
            Endless(_batches(2)), val_batches=_batches(1)).fit()
    assert load_checkpoint(out / "best.pt")["step"] == 2


def test_best_is_checkpointed_off_the_ckpt_period_and_kept_on_resume(tmp_path: Path) -> None:
    # val at 3 (score 5: best, saved though ckpt_every is 0), 6 (4), then resumed: 8 (4.5)
    out = tmp_path / "run"
    cfg = config(out, val_every=3, ckpt_every=0, best_metric="score:max")
    first = Trainer(Linear((5, 4)), cfg, Endless(_batches(2)), val_batches=_batches(1))
    assert first.fit(stop_at=6) == 6
    assert load_checkpoint(out / "best.pt")["step"] == 3
    again = Trainer(Linear((4.5,)), cfg, Endless(_batches(2)), val_batches=_batches(1))
    again.resume(out / "last.pt")
    assert again.best is not None and again.best["value"] == 5
    again.fit()
    assert load_checkpoint(out / "best.pt")["step"] == 3  # 4.5 < 5: best.pt unchanged
    assert sorted(p.name for p in out.glob("ckpt-*.pt")) == [
        "ckpt-0000003.pt", "ckpt-0000006.pt", "ckpt-0000008.pt"]


def test_time_budget_stops_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    trainer = Trainer(Linear((1.0,)), config(out, steps=50, ckpt_every=0, val_every=10,
                                             max_minutes=1e-9),
                      Endless(_batches(2)), val_batches=_batches(1))
    assert trainer.fit() == 1  # the budget is spent after the first step
    assert trainer.stop_note is not None and "time budget of 1e-09 min spent" in trainer.stop_note
    assert "stopped at step 1 of 50" in trainer.stop_note
    assert load_checkpoint(out / "last.pt")["step"] == 1
    assert trainer.last_val == {"val/score": 1.0}  # the last step reached was validated


def test_metric_parsing_and_pruning(tmp_path: Path) -> None:
    assert BestMetric.parse("psnr_y") == BestMetric("psnr_y", "max")
    assert BestMetric.parse("val/kernel_l1") == BestMetric("kernel_l1", "min")
    assert BestMetric.parse("mine:min").better(1.0, 2.0)
    assert not BestMetric.parse("psnr").better(float("nan"), None)
    auto = BestMetric.parse("auto")
    assert auto.resolve({"val/kernel_l1": 0.5, "val/loss": 1}) == BestMetric("kernel_l1", "min")
    assert auto.resolve({"val/psnr": 20.0, "val/psnr_y": 21.0}) == BestMetric("psnr_y", "max")
    assert auto.resolve({"val/other": 1.0}) is None
    with pytest.raises(ConfigError, match="no known direction: write sharpness:max or"):
        BestMetric.parse("sharpness")
    with pytest.raises(ConfigError, match="direction must be max or min"):
        TrainerConfig(steps=1, best_metric="psnr:up")
    for bad, match in (({"accum_steps": 0}, "accum_steps"), ({"keep_last": -1}, "keep_last"),
                       ({"max_minutes": 0}, "max_minutes")):
        with pytest.raises(ConfigError, match=match):
            TrainerConfig(steps=1, **bad)
    for step in (1, 2, 10):
        (tmp_path / f"ckpt-{step:07d}.pt").write_bytes(b"x")
    (tmp_path / "best.pt").write_bytes(b"b")
    assert [p.name for p in prune_checkpoints(tmp_path, 2)] == ["ckpt-0000001.pt"]
    assert prune_checkpoints(tmp_path, 0) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best.pt", "ckpt-0000002.pt", "ckpt-0000010.pt"]
    assert list(itertools.islice(Endless(_batches(1)), 2))  # the helper stream is endless
