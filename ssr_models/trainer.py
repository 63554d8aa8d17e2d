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
  initial weights; buffers are copied. Validation runs the EMA copy. (timm's ``ModelEmaV3``
  with ``exclude_buffers``, ``use_warmup``, ``warmup_gamma=9``, ``warmup_power=1`` and
  ``step = k + 2`` computes the same average bit for bit; not used because timm requires
  torchvision, which pins torch. timm's ``CosineLRScheduler`` is not used either: it cannot
  continue a resumed run smoothly to a new step count, as the schedule above does.)
* Precision and optimizer (``ssr_models.precision``): ``amp`` off/fp16/bf16 autocast on CUDA
  (fp16 with a GradScaler; under fp16 overflowing gradients are the scaler's business,
  otherwise a non-finite gradient norm is an error), fused AdamW on CUDA and ``foreach``
  elsewhere; ``compile=True`` compiles the networks' forward (the EMA copy stays eager).
* Non-finite guard: a NaN/Inf loss (checked on every rank) or gradient raises
  ``NonFiniteError`` before the optimizer step, so weights, EMA and the files on disk keep
  the last good state; a checkpoint is never written from non-finite weights.
* Gradient accumulation: ``accum_steps`` = a batches per optimizer step, each loss divided
  by a, gradients summed (under DDP synchronised on the last one only): the step equals one
  on the a batches stacked, for models without batch-dependent layers.
* Checkpoints (``ssr_models.checkpoint``): ``ckpt-{step:07d}.pt`` written atomically,
  ``last.pt`` a hard link to it; ``config.json`` beside them (written when ``fit`` starts).
  ``best.pt`` and retention (``keep_last``): ``ssr_models.retention``. A validation that
  beats the best so far (``best_metric``) checkpoints its step and links ``best.pt`` to it.
  Per-rank RNG and data-stream states make a resume (same world size) continue bit for bit;
  ``resume`` refuses settings other than config.json's but the step count, naming the keys.
* Logs (``ssr_models.train_log``: metrics.jsonl, TensorBoard): ``train/data_wait_share`` is
  the fraction of step time spent in ``next()`` on the stream, per log window
  (``data_wait_share``: since ``fit`` began).
* Progress and stopping: ``fit(callback=...)`` reports events (``ssr_models.train_events``);
  SIGINT/SIGTERM finish the current step, checkpoint it and raise ``TrainingInterrupted``.
  ``max_minutes``: when the budget is spent ``fit`` checkpoints the finished step and returns
  (``stop_note`` says so); ``--resume`` continues from there.
* DDP (``ssr_models.distributed``): when ``torch.distributed`` is initialized the model is
  wrapped in ``DistributedDataParallel`` through a small module whose ``forward`` is the
  model's ``training_step``; only rank 0 writes files and validates, and every decision that
  starts a collective (stop, budget, a best checkpoint) is agreed by all ranks.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
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

from ssr_core.errors import ConfigError
from ssr_core.io import write_json_atomic
from ssr_datasets.storage import remove_stale_temps

from .batch import Batch
from .checkpoint import load_checkpoint, seed_all
from .distributed import StepModule, any_rank, end_distributed
from .precision import adamw, amp_dtype, compile_networks
from .retention import LAST, BestMetric
from .schedule import LRSchedule
from .train_events import Callback, TrainEvent, TrainingInterrupted, graceful_stop
from .train_log import MetricsLog, StepWindow
from .trainer_config import AMP_MODES, Amp, TrainerConfig
from .trainer_state import NonFiniteError, resume_trainer, save_trainer
from .validation import LpipsFn, validate_model

__all__ = ["AMP_MODES", "Amp", "NonFiniteError", "Trainer", "TrainerConfig",
           "TrainingInterrupted", "end_distributed", "load_checkpoint"]


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
        lpips: Optional ``fn(sr, hr) -> (B,)`` LPIPS for validation (``ssr_models.validation``;
            ssr_models cannot load LPIPS weights itself: they live with ``eval.metrics``).

    Raises:
        ConfigError: No ``training_step``, a one-shot iterator as ``val_batches``, or a
            stream whose rank/world_size disagree with torch.distributed.
    """

    def __init__(self, model: nn.Module, config: TrainerConfig, train_stream: Iterable[Batch],
                 val_batches: Iterable[Batch] | None = None,
                 device: torch.device | str | None = None, lpips: LpipsFn | None = None) -> None:
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
        self.lpips = lpips
        self.out_dir = Path(config.out_dir)
        self.is_main = self.rank == 0

        seed_all(config.seed + self.rank)
        self.model = model.to(self.device)
        step_module: nn.Module = StepModule(self.model)
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
        self.stop_note: str | None = None  # set by fit() when the time budget stopped it
        self.last_val: dict[str, float] = {}  # the latest validation means (val/... keys)
        self.best_metric = BestMetric.parse(config.best_metric)
        # {"metric", "direction", "value", "step"} of best.pt, or None; saved in checkpoints
        self.best: dict[str, Any] | None = None
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
    def _train_step(self, batches: list[Batch]) -> tuple[float, float, dict[str, float]]:
        """Take one optimizer step on ``accum_steps`` batches; return (loss, lr used, logs).

        The loss and logs are means over the batches.
        """
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        n = len(batches)
        total, sums = 0.0, {}
        for i, batch in enumerate(batches):
            batch = batch.to(self.device, non_blocking=True)
            # DDP all-reduces gradients in backward; only the last batch's needs it.
            sync = (self._step_module.no_sync() if self.distributed and i < n - 1
                    else contextlib.nullcontext())
            with sync:
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.use_amp):
                    loss, logs = self._step_module(batch)
                # every rank must stop together, or the others hang in backward
                if any_rank(not bool(torch.isfinite(loss.detach())), self.device):
                    self.optimizer.zero_grad(set_to_none=True)
                    raise NonFiniteError(f"non-finite loss at step {self.step + 1} (loss "
                                         f"{loss.item()} on rank {self.rank}); weights are left "
                                         f"at step {self.step}, the last checkpoint is kept")
                self.scaler.scale(loss / n if n > 1 else loss).backward()
            total += float(loss.detach())
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v)
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
        return total / n, lr, {"grad_norm": float(norm), **{k: v / n for k, v in sums.items()}}

    # ---- validation, logs -----------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Run the EMA model over ``val_batches``; return the mean of each value (``val/...``).

        Image stages: Y PSNR/SSIM (crop = scale) and bicubic's, LPIPS with a callback; the
        kernel stage: kernel L1 (``ssr_models.validation``).
        """
        if self.val_batches is None:
            return {}
        return validate_model(self.ema, self.val_batches, self.device, self.lpips)

    def _log(self, metrics: dict[str, float]) -> None:
        if self.is_main:
            self.log.write(self.step, metrics)

    # ---- checkpoints ----------------------------------------------------------------------
    def save_checkpoint(self, best: bool = False) -> Path | None:
        """Write ``ckpt-{step:07d}.pt``, point ``last.pt`` (and ``best.pt``) at it (collective).

        Then deletes the ``ckpt-*.pt`` files beyond the newest ``keep_last``
        (``ssr_models.trainer_state.save_trainer``).
        """
        return save_trainer(self, best)

    def resume(self, path: str | Path) -> int:
        """Load weights, EMA, optimizer, schedule, RNG and stream position; return the step.

        A larger or smaller ``config.steps`` than the checkpoint's continues the schedule to the
        new total (``LRSchedule.with_steps``; ``resume_note`` says when that is not smooth).

        Raises:
            ConfigError: Not a checkpoint, other settings than config.json beside it (but
                the step count, budget and retention), or saved with another world size.
            InputError: A file that needs pickle (refused, nothing of it runs).
        """
        return resume_trainer(self, path)

    # ---- the loop -------------------------------------------------------------------------
    def _interrupt(self, signal_name: str, emit: Callback) -> None:
        """Checkpoint the finished step (collective) and raise TrainingInterrupted."""
        if self._saved_step != self.step:
            emit(TrainEvent("ckpt", {"path": self.save_checkpoint()}))
        raise TrainingInterrupted(self.step, self.out_dir / LAST if self.is_main else None,
                                  signal_name)

    def _validate(self, emit: Callback) -> bool:
        """Validate (rank 0), log, and return whether this step is the best so far."""
        self.last_val = self.validate()
        self._log(self.last_val)
        emit(TrainEvent("val", {"step": self.step, **self.last_val}))
        metric = self.best_metric.resolve(self.last_val)
        if metric is None:
            return False
        value = float(self.last_val[f"val/{metric.name}"])
        old = self.best["value"] if self.best and self.best["metric"] == metric.name else None
        if not metric.better(value, old):
            return False
        self.best = {"metric": metric.name, "direction": metric.direction, "value": value,
                     "step": self.step}
        return True

    def _next_batches(self, batches: Any, stop: Any, emit: Callback) -> list[Batch]:
        """Take ``accum_steps`` batches from the stream (a Ctrl-C there stops cleanly)."""
        out = []
        for _ in range(self.config.accum_steps):
            try:
                out.append(next(batches))
            except Exception:
                # A terminal's Ctrl-C also reaches DataLoader workers, which may die first;
                # the weights are at a finished step, so stop cleanly there (alone: under DDP
                # the other ranks are not at this point to save).
                if stop.signum is None or self.distributed:
                    raise
                self._interrupt(stop.name, emit)
        return out

    def fit(self, stop_at: int | None = None, callback: Callback | None = None) -> int:
        """Train from the current step to ``config.steps`` (or ``stop_at``); return the step.

        The last step reached is always checkpointed (collective under DDP), and validated
        when validation is on (``val_batches`` and ``val_every`` > 0). With ``max_minutes``
        the loop also ends, checkpointed, once that much wall time has passed since ``fit``
        began (``stop_note`` then says where it stopped).

        Args:
            stop_at: Stop (and checkpoint) at this step, before ``config.steps``.
            callback: Receives a ``TrainEvent`` per step, validation and checkpoint (rank 0).

        Raises:
            NonFiniteError: A NaN/Inf loss or gradient (nothing is saved from that state).
            TrainingInterrupted: SIGINT/SIGTERM: the step in progress was finished and saved.
        """
        cfg = self.config
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        started = time.monotonic()
        budget_s = math.inf if cfg.max_minutes is None else 60.0 * cfg.max_minutes
        self.stop_note = None

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
                    group = self._next_batches(batches, stop, emit)
                    waited = time.perf_counter() - t0
                    loss, lr, logs = self._train_step(group)
                    busy = time.perf_counter() - t0
                    window.add({"loss": loss, **logs}, waited, busy)
                    self._wait_s, self._busy_s = self._wait_s + waited, self._busy_s + busy
                    emit(TrainEvent("step", {"step": self.step, "steps": cfg.steps, "loss": loss,
                                             "lr": lr, "data_wait_s": waited, "step_s": busy}))
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        self._log({**window.pop(), "train/lr": lr})
                    spent = any_rank(time.monotonic() - started >= budget_s, self.device)
                    last = self.step == end or spent
                    best = False
                    if (cfg.val_every and self.is_main and self.val_batches is not None
                            and (self.step % cfg.val_every == 0 or last)):
                        best = self._validate(emit)
                    best = any_rank(best, self.device)  # rank 0 decided; all join the save
                    if (best or (cfg.ckpt_every and self.step % cfg.ckpt_every == 0)
                            or self.step == cfg.steps):
                        emit(TrainEvent("ckpt", {"path": self.save_checkpoint(best=best)}))
                    if any_rank(stop.signum is not None, self.device):
                        self._interrupt(stop.name or "a signal on another rank", emit)
                    if spent and self.step < end:
                        self.stop_note = (f"time budget of {cfg.max_minutes:g} min spent: "
                                          f"stopped at step {self.step} of {cfg.steps} "
                                          "(--resume continues)")
                        break
                if self._saved_step != self.step:  # stopped early (stop_at, budget)
                    emit(TrainEvent("ckpt", {"path": self.save_checkpoint()}))
        finally:
            getattr(batches, "close", lambda: None)()  # stops a stream's prefetch thread
            self.log.close()
        return self.step
