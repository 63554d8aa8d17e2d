"""The one training loop: AdamW, clipping, EMA, AMP, logs, atomic checkpoints, resume, DDP.

Each model family supplies ``training_step(batch) -> (loss, logs)`` (a scalar tensor and a
dict of floats) and, optionally, ``validation_step(batch) -> logs``; the Trainer owns the
rest (composition: it holds the model, it is not a base class).

Choices:

* Schedule: linear warm-up for ``warmup_steps`` then cosine to 0 at ``steps``
  (``schedule="constant"`` keeps the rate after warm-up); ``ssr_models.schedule``. A resume
  with another step count continues the rate smoothly to 0 at the new total.
* EMA: ``ema = d * ema + (1 - d) * w`` after every optimizer step with
  ``d = min(ema_decay, (1 + step) / (10 + step))`` so early averages are not stuck at the
  initial weights; buffers are copied. Validation runs the EMA copy.
* Precision and optimizer (``ssr_models.precision``): ``amp`` off/fp16/bf16 autocast on CUDA
  (fp16 with a GradScaler; under fp16 overflowing gradients are the scaler's business,
  otherwise a non-finite gradient norm is an error), fused AdamW on CUDA and ``foreach``
  elsewhere; ``compile=True`` compiles the networks' forward (the EMA copy stays eager).
* Non-finite guard: a NaN/Inf loss (checked on every rank) or gradient raises
  ``NonFiniteError`` before the optimizer step, so weights, EMA and the files on disk keep
  the last good state; a checkpoint is never written from non-finite weights.
* Checkpoints (``ssr_models.checkpoint``): ``ckpt-{step:07d}.pt`` written atomically,
  ``last.pt`` a hard link to it; ``config.json`` beside them (written when ``fit`` starts).
  Per-rank RNG and data-stream states make a resume (same world size) continue bit for bit;
  ``resume`` refuses settings other than config.json's but the step count, naming the keys.
* Logs (``ssr_models.train_log``: metrics.jsonl, TensorBoard): ``train/data_wait_share`` is
  the fraction of step time spent in ``next()`` on the stream, per log window
  (``data_wait_share``: since ``fit`` began).
* Progress and stopping: ``fit(callback=...)`` reports events (``ssr_models.train_events``);
  SIGINT/SIGTERM finish the current step, checkpoint it and raise ``TrainingInterrupted``.
* DDP: when ``torch.distributed`` is initialized the model is wrapped in
  ``DistributedDataParallel`` through a small module whose ``forward`` is the model's
  ``training_step`` (DDP only syncs gradients of calls made through its ``forward``);
  only rank 0 writes files and validates.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import math
import os
import time
import warnings
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ssr_core.errors import ConfigError, SsrError
from ssr_core.io import link_atomic, write_json_atomic
from ssr_datasets.storage import remove_stale_temps

from .batch import Batch
from .checkpoint import (
    CKPT_FORMAT,
    CKPT_VERSION,
    load_checkpoint,
    refuse_resume_changes,
    rng_state,
    save_atomic,
    saved_settings,
    seed_all,
    set_rng_state,
)
from .precision import adamw, amp_dtype, compile_networks, kernel_choice
from .schedule import LRSchedule
from .train_events import Callback, TrainEvent, TrainingInterrupted, graceful_stop
from .train_log import MetricsLog, StepWindow
from .trainer_config import AMP_MODES, Amp, TrainerConfig

__all__ = ["AMP_MODES", "Amp", "NonFiniteError", "Trainer",
           "TrainerConfig", "TrainingInterrupted", "load_checkpoint"]


class NonFiniteError(SsrError):
    """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


class _Step(nn.Module):
    """Routes DDP's ``forward`` to the wrapped model's ``training_step``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return self.model.training_step(batch)


def _model_config(model: nn.Module) -> Any:
    cfg = getattr(model, "config", None)
    return dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else None


class Trainer:
    """Train ``model`` on ``train_stream`` with the settings of ``config``.

    Args:
        model: An ``nn.Module`` with ``training_step(batch) -> (loss, logs)``.
        config: Optimisation and bookkeeping settings.
        train_stream: Endless iterable of ``Batch`` (e.g. ``TrainingStream``); when it has
            ``state_dict``/``load_state_dict`` its position is checkpointed.
        val_batches: Re-iterable validation batches (e.g. ``validation_batches(...)``).
        device: Defaults to ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.

    Raises:
        ConfigError: No ``training_step``, a one-shot iterator as ``val_batches``, or a
            stream whose rank/world_size disagree with torch.distributed.
    """

    def __init__(self, model: nn.Module, config: TrainerConfig, train_stream: Iterable[Batch],
                 val_batches: Iterable[Batch] | None = None,
                 device: torch.device | str | None = None) -> None:
        if not callable(getattr(model, "training_step", None)):
            raise ConfigError(f"{type(model).__name__} has no training_step(batch)")
        if val_batches is not None and iter(val_batches) is val_batches:
            raise ConfigError("val_batches is a one-shot iterator; pass a re-iterable "
                              "(validation_batches(...) or a list)")
        self.distributed = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.distributed else 0
        self.world_size = dist.get_world_size() if self.distributed else 1
        for name, want in (("rank", self.rank), ("world_size", self.world_size)):
            got = getattr(train_stream, name, want)
            if got != want:
                raise ConfigError(f"train_stream.{name} is {got} but torch.distributed says "
                                  f"{want}: build the stream with rank=dist.get_rank(), "
                                  "world_size=dist.get_world_size()")
        if device is None:
            local = int(os.environ.get("LOCAL_RANK", 0))
            device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.config, self.stream, self.val_batches = config, train_stream, val_batches
        self.out_dir = Path(config.out_dir)
        self.is_main = self.rank == 0

        seed_all(config.seed + self.rank)
        self.model = model.to(self.device)
        step_module: nn.Module = _Step(self.model)
        if self.distributed:  # broadcasts rank 0's weights to every rank
            step_module = nn.parallel.DistributedDataParallel(
                step_module, device_ids=[self.device.index] if self.device.type == "cuda"
                else None, find_unused_parameters=config.find_unused_parameters)
        self._step_module = step_module
        # After the DDP broadcast, so that every rank's EMA starts from the same weights.
        self.ema = copy.deepcopy(self.model).requires_grad_(False).eval()
        if config.compile:  # the networks only: loss bookkeeping stays eager (precision.py)
            compile_networks(self.model)
        self.optimizer = adamw(self.model, config, self.device)
        self.schedule = LRSchedule(config.steps, config.warmup_steps, config.schedule)
        me = weakref.ref(self)  # not self: LambdaLR keeps the function (a reference cycle)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda k: me().schedule.factor(k))  # type: ignore[union-attr]
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.use_amp = self.amp_dtype is not None
        # bfloat16 needs no loss scaling: its exponent range is float32's.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self._saved_step = -1
        self.log = MetricsLog(self.out_dir, config.tensorboard)
        self.config_record = {"trainer": dataclasses.asdict(config), "model_class":
                              f"{type(model).__module__}.{type(model).__qualname__}",
                              "model": _model_config(model), "world_size": self.world_size}
        self.resume_note: str | None = None  # set by resume() when the schedule was extended
        self.last_val: dict[str, float] = {}  # the latest validation means (val/... keys)
        self._wait_s = self._busy_s = 0.0  # since fit() began: waiting for data, whole steps
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for temp in remove_stale_temps(self.out_dir):  # a killed run's partial checkpoints
                warnings.warn(str(temp), stacklevel=2)

    @property
    def data_wait_share(self) -> float:
        """Fraction in [0, 1] of step time spent waiting for batches since ``fit`` began."""
        return self._wait_s / self._busy_s if self._busy_s > 0 else 0.0

    # ---- EMA ------------------------------------------------------------------------------
    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            e.copy_(b)

    # ---- one step -------------------------------------------------------------------------
    def _train_step(self, batch: Batch) -> tuple[float, float, dict[str, float]]:
        """Take one optimizer step; return (loss, learning rate used, the family's logs)."""
        self.model.train()
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.use_amp):
            loss, logs = self._step_module(batch)
        finite = torch.isfinite(loss.detach()).float()
        if self.distributed:  # every rank must stop together, or the others hang in backward
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if finite.item() < 1:
            raise NonFiniteError(f"non-finite loss at step {self.step + 1} (loss "
                                 f"{loss.item()} on rank {self.rank}); weights are left at "
                                 f"step {self.step}, the last checkpoint is kept")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.config.grad_clip if self.config.grad_clip is not None else math.inf
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        if not self.scaler.is_enabled() and not torch.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(f"non-finite gradient norm at step {self.step + 1}; weights "
                                 f"are left at step {self.step}, the last checkpoint is kept")
        lr = float(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self._update_ema()
        return float(loss.detach()), lr, {"grad_norm": float(norm), **logs}

    # ---- validation, logs -----------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Run the EMA model over ``val_batches``; return the mean of each logged value."""
        if self.val_batches is None:
            return {}
        sums: dict[str, float] = {}
        count = 0
        step_fn = getattr(self.ema, "validation_step", None)
        for batch in self.val_batches:
            batch = batch.to(self.device)
            if callable(step_fn):
                logs = dict(step_fn(batch))
            else:
                loss, logs = self.ema.training_step(batch)
                logs = {"loss": float(loss), **logs}
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
        return {f"val/{k}": v / max(count, 1) for k, v in sums.items()}

    def _log(self, metrics: dict[str, float]) -> None:
        if self.is_main:
            self.log.write(self.step, metrics)

    # ---- checkpoints ----------------------------------------------------------------------
    def _per_rank_state(self) -> list[dict[str, Any]]:
        mine = {"rng": rng_state(), "data": (self.stream.state_dict()
                                              if hasattr(self.stream, "state_dict") else None)}
        if not self.distributed:
            return [mine]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        return gathered

    def save_checkpoint(self) -> Path | None:
        """Write ``ckpt-{step:07d}.pt`` and point ``last.pt`` at it (rank 0; collective)."""
        per_rank = self._per_rank_state()  # every rank joins the gather
        self._saved_step = self.step  # on every rank, so all agree on the final save
        if not self.is_main:
            return None
        for name, p in _float_states(self.model, self.ema):
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"refusing to checkpoint non-finite weights ({name}) at "
                                     f"step {self.step}; the last checkpoint is kept")
        ckpt = {"format": CKPT_FORMAT, "version": CKPT_VERSION, "step": self.step,
                "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "schedule": self.schedule.state_dict(), "per_rank": per_rank,
                "world_size": self.world_size}
        path = self.out_dir / f"ckpt-{self.step:07d}.pt"
        save_atomic(ckpt, path)
        link_atomic(path, self.out_dir / "last.pt")
        return path

    def resume(self, path: str | Path) -> int:
        """Load weights, EMA, optimizer, schedule, RNG and stream position; return the step.

        A larger or smaller ``config.steps`` than the checkpoint's continues the schedule to the
        new total (``LRSchedule.with_steps``; ``resume_note`` says when that is not smooth).

        Raises:
            ConfigError: Not a checkpoint, other settings than config.json beside it (but
                the step count), or saved with another world size.
            InputError: A file that needs pickle (refused, nothing of it runs).
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        refuse_resume_changes(path, saved_settings(path), self.config_record)
        if ckpt["world_size"] != self.world_size:
            raise ConfigError(f"{path}: saved with world_size {ckpt['world_size']}, now "
                              f"{self.world_size}; bitwise resume needs the same world size")
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the saving device's
            group.update(kernel_choice(self.device))  # implementation; keep this device's
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        saved = LRSchedule.from_state_dict(ckpt["schedule"])
        self.schedule, self.resume_note = saved.with_steps(self.config.steps, self.step)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * self.schedule.factor(self.step)  # the next step's rate
        mine = ckpt["per_rank"][self.rank]
        set_rng_state(mine["rng"])
        if mine["data"] is not None and hasattr(self.stream, "load_state_dict"):
            self.stream.load_state_dict(mine["data"])
        if self.is_main:
            self.log.truncate(self.step)
        return self.step

    # ---- the loop -------------------------------------------------------------------------
    def _stop_requested(self, signum: int | None) -> bool:
        """Whether any rank received a stop signal (all ranks must stop at the same step)."""
        if not self.distributed:
            return signum is not None
        flag = torch.tensor([float(signum is not None)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)

    def _interrupt(self, signal_name: str, emit: Callback) -> None:
        """Checkpoint the finished step (collective) and raise TrainingInterrupted."""
        if self._saved_step != self.step:
            emit(TrainEvent("ckpt", {"path": self.save_checkpoint()}))
        raise TrainingInterrupted(self.step, self.out_dir / "last.pt" if self.is_main else None,
                                  signal_name)

    def _validate(self, emit: Callback) -> None:
        self.last_val = self.validate()
        self._log(self.last_val)
        emit(TrainEvent("val", {"step": self.step, **self.last_val}))

    def fit(self, stop_at: int | None = None, callback: Callback | None = None) -> int:
        """Train from the current step to ``config.steps`` (or ``stop_at``); return the step.

        The last step reached is always checkpointed (collective under DDP), and validated
        when validation is on (``val_batches`` and ``val_every`` > 0).

        Args:
            stop_at: Stop (and checkpoint) at this step, before ``config.steps``.
            callback: Receives a ``TrainEvent`` per step, validation and checkpoint (rank 0).

        Raises:
            NonFiniteError: A NaN/Inf loss or gradient (nothing is saved from that state).
            TrainingInterrupted: SIGINT/SIGTERM: the step in progress was finished and saved.
        """
        cfg = self.config
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)

        def emit(event: TrainEvent) -> None:
            if callback is not None and self.is_main:
                callback(event)

        if self.is_main:
            write_json_atomic(self.out_dir / "config.json", self.config_record)
        emit(TrainEvent("start", {"step": self.step, "steps": cfg.steps,
                                  "log_every": cfg.log_every, "note": self.resume_note}))
        window = StepWindow()
        batches = iter(self.stream)
        try:
            with graceful_stop() as stop:
                while self.step < end:
                    t0 = time.perf_counter()
                    try:
                        batch = next(batches)
                    except Exception:
                        # A terminal's Ctrl-C also reaches DataLoader workers, which may die
                        # first; the weights are at a finished step, so stop cleanly there
                        # (alone: under DDP the other ranks are not at this point to save).
                        if stop.signum is None or self.distributed:
                            raise
                        self._interrupt(stop.name, emit)
                    waited = time.perf_counter() - t0
                    loss, lr, logs = self._train_step(batch)
                    busy = time.perf_counter() - t0
                    window.add({"loss": loss, **logs}, waited, busy)
                    self._wait_s, self._busy_s = self._wait_s + waited, self._busy_s + busy
                    emit(TrainEvent("step", {"step": self.step, "steps": cfg.steps, "loss": loss,
                                             "lr": lr, "data_wait_s": waited, "step_s": busy}))
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        self._log({**window.pop(), "train/lr": lr})
                    last = self.step == end
                    if (cfg.val_every and self.is_main and self.val_batches is not None
                            and (self.step % cfg.val_every == 0 or last)):
                        self._validate(emit)
                    if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or self.step == cfg.steps:
                        emit(TrainEvent("ckpt", {"path": self.save_checkpoint()}))
                    if self._stop_requested(stop.signum):
                        self._interrupt(stop.name or "a signal on another rank", emit)
                if self._saved_step != self.step:  # stopped early (stop_at): keep the position
                    emit(TrainEvent("ckpt", {"path": self.save_checkpoint()}))
        finally:
            getattr(batches, "close", lambda: None)()  # stops a stream's prefetch thread
            self.log.close()
        return self.step


def _float_states(*modules: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    for module in modules:
        for name, value in module.state_dict().items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                yield name, value


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
