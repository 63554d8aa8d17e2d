"""The one training loop: AdamW, clipping, EMA, AMP, logs, atomic checkpoints, resume, DDP.

Each model family supplies ``training_step(batch) -> (loss, logs)`` (a scalar tensor and a
dict of floats) and, optionally, ``validation_step(batch) -> logs``; the Trainer owns the
rest (composition: it holds the model, it is not a base class).

Choices:

* Schedule: linear warm-up for ``warmup_steps`` then cosine to 0 at ``steps``
  (``schedule="constant"`` keeps the rate after warm-up).
* EMA: ``ema = d * ema + (1 - d) * w`` after every optimizer step with
  ``d = min(ema_decay, (1 + step) / (10 + step))`` so early averages are not stuck at the
  initial weights; buffers are copied. Validation runs the EMA copy.
* AMP: ``amp="fp16"`` = float16 autocast + GradScaler, ``amp="bf16"`` = bfloat16 autocast
  without a scaler (bfloat16 has float32's exponent range, so gradients cannot overflow it;
  Ampere or newer), ``"off"`` = float32; YAML's ``true``/``false`` mean fp16/off. CUDA only
  (AMP on CPU is ignored with a warning). Under fp16, overflowing gradients are the scaler's
  business (it skips the step); otherwise a non-finite gradient norm is an error.
* Optimizer: AdamW with the fused CUDA kernel on CUDA (one launch for all parameters) and the
  multi-tensor ``foreach`` path elsewhere; both compute the same update as the loop version.
* ``compile=True`` runs the training step (forward and loss) through ``torch.compile``; the
  EMA copy used for validation and checkpoints stays eager. It pays off on GPUs for steps with
  many small kernels (measure: ``bench/gpu_check.py``); on CPU it mostly costs compile time.
* Non-finite guard: a NaN/Inf loss (checked on every rank) or gradient raises
  ``NonFiniteError`` before the optimizer step, so weights, EMA and the files on disk keep
  the last good state; a checkpoint is never written from non-finite weights.
* Checkpoints: ``ckpt-{step:07d}.pt`` written to a temp file, fsynced, renamed; ``last.pt``
  is a hard link to it (copy where links are impossible), also swapped in by rename.
  ``config.json`` (trainer + model config) sits beside them. RNG and data-stream states are
  stored per rank, so a resumed run (same world size) continues bit for bit.
* Logs: ``metrics.jsonl`` always (means over ``log_every`` steps, validation as ``val/``
  keys); TensorBoard too when it is installed. On resume, lines past the checkpoint's step
  (from the interrupted run) are dropped.
* DDP: when ``torch.distributed`` is initialized the model is wrapped in
  ``DistributedDataParallel`` through a small module whose ``forward`` is the model's
  ``training_step`` (DDP only syncs gradients of calls made through its ``forward``);
  only rank 0 writes files and validates.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from ssr_datasets.errors import ConfigError, SsrError
from ssr_datasets.shards import write_bytes_atomic, write_json_atomic
from ssr_datasets.storage import remove_stale_temps

from .batch import Batch
from .checkpoint import (
    CKPT_FORMAT,
    CKPT_VERSION,
    link_atomic,
    load_checkpoint,
    rng_state,
    save_atomic,
    seed_all,
    set_rng_state,
)

__all__ = ["NonFiniteError", "Trainer", "TrainerConfig", "load_checkpoint"]

Schedule = Literal["cosine", "constant"]
Amp = Literal["off", "fp16", "bf16"]
AMP_MODES: tuple[str, ...] = ("off", "fp16", "bf16")
_AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


class NonFiniteError(SsrError):
    """The loss or the gradients became NaN/Inf; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainerConfig:
    """Optimisation and bookkeeping settings (written to ``config.json``).

    Attributes:
        steps: Optimizer steps in total.
        lr: Peak AdamW learning rate. betas, weight_decay: AdamW's.
        grad_clip: Max global gradient L2 norm; None disables clipping.
        ema_decay: EMA decay in [0, 1).
        amp: Mixed precision on CUDA: "off", "fp16" (with a GradScaler) or "bf16" (no scaler
            needed); a YAML boolean means fp16 (true) or off (false).
        compile: Run the training step through ``torch.compile`` (GPU speed-up, compile time
            up front; see ``bench/gpu_check.py``).
        log_every, val_every, ckpt_every: Periods in steps (0 disables val/ckpt; the final
            step is always checkpointed).
        warmup_steps: Linear warm-up length. schedule: after warm-up, cosine or constant.
        seed: Seeds torch, numpy and random (offset by the rank).
        out_dir: Folder for checkpoints, ``config.json`` and logs.
        tensorboard: Also log to TensorBoard when it is installed.
        find_unused_parameters: Passed to DDP (families with optional branches).
    """

    steps: int
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    amp: Amp | bool = "off"
    compile: bool = False
    log_every: int = 50
    val_every: int = 1000
    ckpt_every: int = 1000
    seed: int = 0
    out_dir: str = "runs/train"
    warmup_steps: int = 0
    schedule: Schedule = "cosine"
    tensorboard: bool = True
    find_unused_parameters: bool = False

    def __post_init__(self) -> None:
        if self.steps < 1 or self.log_every < 1:
            raise ConfigError(f"steps and log_every must be >= 1, got {self.steps}, "
                              f"{self.log_every}")
        if min(self.val_every, self.ckpt_every, self.warmup_steps) < 0:
            raise ConfigError("val_every, ckpt_every and warmup_steps must be >= 0")
        if not self.lr > 0 or not 0 <= self.ema_decay < 1:
            raise ConfigError(f"need lr > 0 and 0 <= ema_decay < 1, got {self.lr}, "
                              f"{self.ema_decay}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be > 0 or None, got {self.grad_clip}")
        if isinstance(self.amp, bool):  # YAML 1.1 reads `amp: off` as False (and true as True)
            object.__setattr__(self, "amp", "fp16" if self.amp else "off")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile must be true or false, got {self.compile!r}")
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")


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
        if config.compile:  # in place: state_dict keys and the DDP wrapper stay as they are
            self._step_module.compile()
        self.optimizer = _adamw(self.model, config, self.device)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.amp_dtype = _amp_dtype(config.amp, self.device)
        self.use_amp = self.amp_dtype is not None
        # bfloat16 needs no loss scaling: its exponent range is float32's.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step = 0
        self._saved_step = -1
        self._writer: Any = None
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for temp in remove_stale_temps(self.out_dir):  # a killed run's partial checkpoints
                warnings.warn(str(temp), stacklevel=2)
            write_json_atomic(self.out_dir / "config.json", {
                "trainer": dataclasses.asdict(config), "model_class":
                f"{type(model).__module__}.{type(model).__qualname__}",
                "model": _model_config(model), "world_size": self.world_size})

    # ---- schedule and EMA -----------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        warm = self.config.warmup_steps
        if step < warm:
            return (step + 1) / warm
        if self.config.schedule == "constant":
            return 1.0
        progress = (step - warm) / max(1, self.config.steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            e.lerp_(p.detach(), 1.0 - d)
        for e, b in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            e.copy_(b)

    # ---- one step -------------------------------------------------------------------------
    def _train_step(self, batch: Batch) -> tuple[float, dict[str, float]]:
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
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self._update_ema()
        return float(loss.detach()), {"grad_norm": float(norm), **logs}

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
        if not self.is_main:
            return
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": self.step, "time": time.time(), **metrics}) + "\n")
        if self._writer is None and self.config.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional; metrics.jsonl has everything
                self._writer = False
            else:
                self._writer = SummaryWriter(str(self.out_dir / "tb"))
        if self._writer:
            for k, v in metrics.items():
                self._writer.add_scalar(k, v, self.step)
            self._writer.flush()

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
                "per_rank": per_rank, "world_size": self.world_size}
        path = self.out_dir / f"ckpt-{self.step:07d}.pt"
        save_atomic(ckpt, path)
        link_atomic(path, self.out_dir / "last.pt")
        return path

    def resume(self, path: str | Path) -> int:
        """Load weights, EMA, optimizer, schedule, RNG and stream position; return the step.

        Raises:
            ConfigError: Not a checkpoint, or saved with another world size.
        """
        ckpt = load_checkpoint(path, map_location=self.device)
        if ckpt["world_size"] != self.world_size:
            raise ConfigError(f"{path}: saved with world_size {ckpt['world_size']}, now "
                              f"{self.world_size}; bitwise resume needs the same world size")
        self.model.load_state_dict(ckpt["model"])
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group in self.optimizer.param_groups:  # the saved groups carry the saving device's
            group.update(_kernel_choice(self.device))  # implementation; keep this device's
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        mine = ckpt["per_rank"][self.rank]
        set_rng_state(mine["rng"])
        if mine["data"] is not None and hasattr(self.stream, "load_state_dict"):
            self.stream.load_state_dict(mine["data"])
        if self.is_main:
            self._truncate_metrics()
        return self.step

    def _truncate_metrics(self) -> None:
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = [line for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip() and json.loads(line)["step"] <= self.step]
        write_bytes_atomic(path, "".join(line + "\n" for line in keep).encode("utf-8"))

    # ---- the loop -------------------------------------------------------------------------
    def fit(self, stop_at: int | None = None) -> int:
        """Train from the current step to ``config.steps`` (or ``stop_at``); return the step.

        The last step reached is always checkpointed (collective under DDP).

        Raises:
            NonFiniteError: A NaN/Inf loss or gradient (nothing is saved from that state).
        """
        cfg = self.config
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        sums: dict[str, float] = {}
        count = 0
        batches = iter(self.stream)
        try:
            while self.step < end:
                loss, logs = self._train_step(next(batches))
                for k, v in {"loss": loss, **logs}.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                count += 1
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    self._log({**{f"train/{k}": v / count for k, v in sums.items()},
                               "train/lr": self.scheduler.get_last_lr()[0]})
                    sums, count = {}, 0
                if cfg.val_every and self.step % cfg.val_every == 0 and self.is_main:
                    self._log(self.validate())
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or self.step == cfg.steps:
                    self.save_checkpoint()
            if self._saved_step != self.step:  # stopped early (stop_at): keep the position
                self.save_checkpoint()
        finally:
            if self._writer:
                self._writer.flush()
        return self.step


def _kernel_choice(device: torch.device) -> dict[str, bool]:
    """AdamW's implementation for ``device``: the fused kernel on CUDA, foreach elsewhere."""
    fused = device.type == "cuda"
    return {"fused": fused, "foreach": not fused}


def _adamw(model: nn.Module, config: TrainerConfig, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                             weight_decay=config.weight_decay, **_kernel_choice(device))


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype for ``amp`` on ``device``, or None (float32)."""
    if amp == "off":
        return None
    if device.type != "cuda":
        warnings.warn(f"amp={amp!r} is ignored: mixed precision runs on CUDA only", stacklevel=3)
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp='bf16' needs a GPU with bfloat16 support (Ampere or newer); "
                          f"{torch.cuda.get_device_name(device)} has none: use amp: fp16")
    return _AMP_DTYPES[amp]


def _float_states(*modules: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    for module in modules:
        for name, value in module.state_dict().items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                yield name, value
