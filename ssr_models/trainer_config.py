"""The Trainer's settings (``TrainerConfig``), as written to ``config.json`` beside checkpoints.

Kept apart from the loop (``ssr_models.trainer``) so that configs and the CLI read the settings
without the loop's imports; ``ssr_models.trainer`` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ssr_core.errors import ConfigError

from .retention import BestMetric
from .schedule import Schedule

__all__ = ["AMP_MODES", "Amp", "TrainerConfig"]

Amp = Literal["off", "fp16", "bf16"]
AMP_MODES: tuple[str, ...] = ("off", "fp16", "bf16")


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
        compile: ``torch.compile`` the model's networks, forward only; the loss bookkeeping
            stays eager (GPU speed-up, compile time once per run; ``precision.compile_networks``).
        log_every, val_every, ckpt_every: Periods in steps (0 disables val/ckpt; the final
            step is always checkpointed).
        warmup_steps: Linear warm-up length. schedule: after warm-up, cosine or constant.
        seed: Seeds torch, numpy and random (offset by the rank).
        out_dir: Folder for checkpoints, ``config.json`` and logs.
        tensorboard: Also log to TensorBoard when it is installed.
        find_unused_parameters: Passed to DDP (families with optional branches).
        accum_steps: Batches whose gradients are summed into one optimizer step (the loss of
            each is divided by it): an effective batch of ``accum_steps * batch_size`` per rank.
        keep_last: Keep the newest n ``ckpt-*.pt`` files (0 = all); ``last.pt`` and
            ``best.pt`` are always kept (``ssr_models.retention``).
        best_metric: Validation value that picks ``best.pt``: "auto" (Y PSNR for images, kernel
            L1 for DKENet), a known name (psnr_y, ssim_y, lpips, kernel_l1, ...) or
            "NAME:max" / "NAME:min".
        max_minutes: Wall-clock budget of one ``fit`` in minutes; when spent, the step in
            progress finishes, is checkpointed and training stops (None = no budget).
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
    accum_steps: int = 1
    keep_last: int = 0
    best_metric: str = "auto"
    max_minutes: float | None = None

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
        if type(self.accum_steps) is not int or self.accum_steps < 1:
            raise ConfigError(f"accum_steps must be an integer >= 1, got {self.accum_steps!r}")
        if type(self.keep_last) is not int or self.keep_last < 0:
            raise ConfigError(f"keep_last must be an integer >= 0 (0 keeps every checkpoint), "
                              f"got {self.keep_last!r}")
        if self.max_minutes is not None and not (
                isinstance(self.max_minutes, (int, float)) and self.max_minutes > 0):
            raise ConfigError(f"max_minutes must be > 0 or null, got {self.max_minutes!r}")
        BestMetric.parse(self.best_metric)  # a ConfigError names what is wrong
        if self.schedule not in ("cosine", "constant"):
            raise ConfigError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
