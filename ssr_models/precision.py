"""Mixed precision and the optimizer's kernels, per device (the Trainer's hardware choices).

* AMP: ``amp="fp16"`` = float16 autocast + GradScaler, ``amp="bf16"`` = bfloat16 autocast
  without a scaler (bfloat16 has float32's exponent range, so gradients cannot overflow it;
  Ampere or newer), ``"off"`` = float32; YAML's ``true``/``false`` mean fp16/off. CUDA only
  (AMP on CPU is ignored with a warning). Under fp16, overflowing gradients are the scaler's
  business (it skips the step); otherwise a non-finite gradient norm is an error.
* Optimizer: AdamW with the fused CUDA kernel on CUDA (one launch for all parameters) and the
  multi-tensor ``foreach`` path elsewhere; both compute the same update as the loop version.
* ``compile=True`` compiles the networks, not the training step (:func:`compile_networks`):
  the model's ``forward`` when its class defines one (DKENet, NBSR), else each child module that
  does (PixelSSR's AMF encoder and UNet). The rest of the families' ``training_step`` (loss
  terms, ground truth, ``float()`` of every logged term) stays eager: compiled whole, each of
  those host syncs broke the graph and recompiled (the GPU check's compile section ran past its
  limit on an H200). Shapes are static (``dynamic=False``): a stage trains on one crop and
  batch size, so one graph is built and reused; validation runs the eager EMA copy, so its
  other sizes never recompile. Compilation is paid once per run (the first step); it pays off
  on GPUs (measure: ``bench/gpu_check.py`` section i); on CPU inductor mostly costs C++
  compile time.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ssr_core.errors import ConfigError

from .trainer_config import TrainerConfig

__all__ = ["AMP_DTYPES", "adamw", "amp_dtype", "compile_networks", "kernel_choice"]

AMP_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def kernel_choice(device: torch.device) -> dict[str, bool]:
    """AdamW's implementation for ``device``: the fused kernel on CUDA, foreach elsewhere."""
    fused = device.type == "cuda"
    return {"fused": fused, "foreach": not fused}


def adamw(model: nn.Module, config: TrainerConfig, device: torch.device) -> torch.optim.AdamW:
    """Return AdamW over ``model``'s parameters with ``config``'s rate, betas and decay."""
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas,
                             weight_decay=config.weight_decay, **kernel_choice(device))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Return the autocast dtype for ``amp`` on ``device``, or None (float32)."""
    if amp == "off":
        return None
    if device.type != "cuda":
        warnings.warn(f"amp={amp!r} is ignored: mixed precision runs on CUDA only", stacklevel=3)
        return None
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"amp='bf16' needs a GPU with bfloat16 support (Ampere or newer); "
                          f"{torch.cuda.get_device_name(device)} has none: use amp: fp16")
    return AMP_DTYPES[amp]


def _defines_forward(module: nn.Module) -> bool:
    return type(module).forward is not nn.Module.forward  # ModuleList/ModuleDict: no forward


def compile_networks(model: nn.Module) -> list[str]:
    """Compile ``model``'s networks in place (``nn.Module.compile``); return their names.

    ``""`` names the model itself (its class defines ``forward``); otherwise the direct children
    that define ``forward`` and hold parameters. In place, so ``state_dict`` keys, the optimizer's
    parameters and a DDP wrapper around the model stay as they are. Call it after copying the
    EMA model, which must stay eager (``deepcopy`` would carry the compiled call along).

    Raises:
        ConfigError: nothing to compile (a model whose step calls no module of its own).
    """
    if _defines_forward(model):
        targets = [("", model)]
    else:
        targets = [(name, child) for name, child in model.named_children()
                   if _defines_forward(child) and any(True for _ in child.parameters())]
    if not targets:
        raise ConfigError(f"compile=True: {type(model).__name__} defines no forward and has no "
                          "child module with one and parameters; nothing to compile (use "
                          "compile: false)")
    for _, module in targets:
        module.compile(dynamic=False)
    return [name for name, _ in targets]
