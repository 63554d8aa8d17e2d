"""Training step time of a config's models by precision (fp32, fp16, bf16) and torch.compile.

Each variant trains a fresh model through the real Trainer (fused AdamW on CUDA, EMA, clipping)
on one synthetic batch of the stage's crop and batch size that already sits on the device, so
the figure is pure compute: the median gap between two consecutive batch requests, after the
warm-up steps (the first compiled step, which includes compilation, is reported apart). The
Trainer syncs once per step (it reads the loss), so the gaps are real GPU time.

    python bench/step_timing.py --device cuda [--config paper] [--compile]
    python bench/step_timing.py --kernels         # ground-truth kernels: float32 vs float64

``bench/gpu_check.py`` calls :func:`step_times` (precision) and :func:`compile_times`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssr_core.devices import resolve_device  # noqa: E402
from ssr_models import create_model  # noqa: E402
from ssr_models.batch import Batch  # noqa: E402
from ssr_models.configs import STAGES, load_train_config  # noqa: E402
from ssr_models.trainer import Trainer  # noqa: E402

SCALE, KERNEL_SIZE, DELTA = 4, 21, 1.5  # the ssr recipe at x4, centred LR grid
# As ssr-train does: denormals (DKENet's 441-tap softmax) slow x86 CPUs down up to 50x.
torch.set_flush_denormal(True)


def synthetic_batch(crop: int, batch: int, device: torch.device) -> Batch:
    """Return a Batch of random HR/LR/nearness and an ssr-recipe-like kernel field on device."""
    g = torch.Generator().manual_seed(0)
    lr_side = crop // SCALE
    u = torch.rand(batch, 3, lr_side, lr_side, generator=g)
    field = torch.cat([0.6 + 2.9 * u[:, :2], math.pi * u[:, 2:]], 1)
    return Batch(hr=torch.rand(batch, 3, crop, crop, generator=g),
                 lr=torch.rand(batch, 3, lr_side, lr_side, generator=g),
                 nearness=torch.rand(batch, 1, crop, crop, generator=g), kernel_field=field,
                 scale=SCALE, kernel_size=KERNEL_SIZE, delta=DELTA).to(device)


class _Timed:
    """The same batch forever; records when each one is asked for."""

    def __init__(self, batch: Batch) -> None:
        self.batch, self.asked = batch, []

    def __iter__(self) -> Iterator[Batch]:
        while True:
            self.asked.append(time.perf_counter())
            yield self.batch


def _time_variant(stage: str, config: str, device: torch.device, steps: int, warmup: int,
                  **trainer: Any) -> tuple[float, float]:
    """Return (median ms per step after warm-up, seconds of the first step)."""
    sc = load_train_config(config).stage(stage)
    torch.manual_seed(0)
    model = create_model(sc.model, **sc.model_overrides)
    stream = _Timed(synthetic_batch(sc.data.crop_hr, sc.data.batch_size, device))
    with tempfile.TemporaryDirectory() as tmp:
        tcfg = dataclasses.replace(sc.trainer_config(tmp, steps=steps, seed=0), tensorboard=False,
                                   ckpt_every=0, val_every=0, log_every=steps, **trainer)
        Trainer(model, tcfg, stream, device=device).fit()
    gaps = [b - a for a, b in zip(stream.asked[:-1], stream.asked[1:], strict=True)]
    return 1000 * statistics.median(gaps[warmup:]), gaps[0]


def step_times(device: str, config: str = "paper", steps: int = 12, warmup: int = 4,
               smoke: bool = False) -> dict[str, dict[str, float]]:
    """Return {stage: {"fp32", "fp16", "bf16": ms per step}} (fp32 only off CUDA).

    ``smoke``: the tiny config's kernel stage, 3 steps, fp32 (the plumbing on a CPU).
    """
    dev = torch.device(device)
    stages = STAGES
    if smoke:
        config, steps, warmup, stages = "tiny", 3, 1, ("kernel",)
    modes = ("off", "fp16", "bf16") if dev.type == "cuda" else ("off",)
    out: dict[str, dict[str, float]] = {}
    for stage in stages:
        out[stage] = {}
        for amp in modes:
            ms, _ = _time_variant(stage, config, dev, steps, warmup, amp=amp)
            out[stage]["fp32" if amp == "off" else amp] = ms
    return out


@contextlib.contextmanager
def compile_backend(backend: str) -> Iterator[None]:
    """Make ``nn.Module.compile`` (which calls ``torch.compile``) use ``backend`` meanwhile.

    ``"eager"`` traces with dynamo and runs the captured graphs unchanged: the plumbing on a
    CPU without inductor's minutes of C++ compilation (``--smoke``).
    """
    real = torch.compile
    if backend != "inductor":
        torch.compile = functools.partial(real, backend=backend)  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.compile = real  # type: ignore[assignment]


def compile_times(device: str, config: str = "paper", stages: tuple[str, ...] = ("kernel", "nbsr"),
                  amp: str = "bf16", steps: int = 12, warmup: int = 4, backend: str = "inductor",
                  deadline: float | None = None,
                  progress: Callable[[str], None] | None = None) -> dict[str, dict[str, float]]:
    """Return {stage: {"eager_ms", "compiled_ms", "speedup", "first_step_s", "compile_s",
    "stage_s"}}: steady ms per step eager and with ``compile=True`` at ``amp``.

    ``compile_s`` is the compile time paid once per run: the first compiled step minus the
    first eager step (both include cuDNN's warm-up). ``deadline`` (``time.time()`` seconds):
    a stage after the first runs only if the time left is 1.5x what the previous stage took
    (compilation dominates and is of the same order per network), so the stages that ran are
    reported instead of a timeout. ``progress`` gets a line per finished variant.
    """
    dev = torch.device(device)
    say = progress or (lambda line: None)
    out: dict[str, dict[str, float]] = {}
    last_s = 0.0
    for stage in stages:
        if out and deadline is not None and deadline - time.time() < 1.5 * last_s:
            say(f"{stage}: not timed ({deadline - time.time():.0f} s left, the last stage took "
                f"{last_s:.0f} s)")
            break
        t0 = time.time()
        eager, eager_first = _time_variant(stage, config, dev, steps, warmup, amp=amp)
        say(f"{stage}: eager {eager:.1f} ms/step; compiling ({backend}) ...")
        with compile_backend(backend):
            compiled, first = _time_variant(stage, config, dev, steps, warmup, amp=amp,
                                            compile=True)
        last_s = time.time() - t0
        out[stage] = {"eager_ms": eager, "compiled_ms": compiled, "speedup": eager / compiled,
                      "first_step_s": first, "compile_s": max(0.0, first - eager_first),
                      "stage_s": last_s}
        say(f"{stage}: compiled {compiled:.1f} ms/step, compile {out[stage]['compile_s']:.1f} s")
    return out


def kernel_build_times(device: str = "cpu", batch: int = 16, side: int = 64,
                       repeats: int = 3) -> dict[str, dict[str, float]]:
    """Return ms to build a batch's ground-truth kernels (forward, forward + backward) in
    float32 (``kernel_field_to_taps`` now) and float64 (its former detour), the paper config's
    kernel-stage batch: 16 fields of 64 x 64 LR px, K = 21."""
    from ssr_models.kernel_pca import flush_tiny, gaussian_kernels, kernel_field_to_taps

    def float64_detour(p: torch.Tensor, k: int, d: float) -> torch.Tensor:
        b, _, h, w = p.shape
        k64 = flush_tiny(gaussian_kernels(p.permute(0, 2, 3, 1).double(), k, d))
        return k64.to(p.dtype).reshape(b, h, w, k * k).permute(0, 3, 1, 2)

    dev = torch.device(device)
    field = synthetic_batch(side * SCALE, batch, dev).kernel_field
    out = {}
    for name, fn in (("float32", kernel_field_to_taps), ("float64", float64_detour)):
        fwd, both = math.inf, math.inf
        for _ in range(repeats):
            p = field.clone().requires_grad_(True)
            t0 = time.perf_counter()
            k = fn(p, KERNEL_SIZE, DELTA)
            _sync(dev)
            t1 = time.perf_counter()
            k.sum().backward()
            _sync(dev)
            fwd, both = min(fwd, t1 - t0), min(both, time.perf_counter() - t0)
        out[name] = {"forward_ms": 1000 * fwd, "forward_backward_ms": 1000 * both}
    return out


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--config", default="paper")
    parser.add_argument("--compile", action="store_true", help="also torch.compile on/off")
    parser.add_argument("--kernels", action="store_true", help="only the GT kernel build")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    if args.kernels:
        r = kernel_build_times(args.device)
        for name, row in r.items():
            print(f"{name}: forward {row['forward_ms']:.0f} ms, forward + backward "
                  f"{row['forward_backward_ms']:.0f} ms")
        print(f"float64 / float32 (forward + backward): "
              f"{r['float64']['forward_backward_ms'] / r['float32']['forward_backward_ms']:.2f}x "
              f"({torch.get_num_threads()} threads, batch 16, 64 x 64 LR px, K = 21)")
        return
    for stage, row in step_times(args.device, args.config).items():
        print(f"{stage:9s} " + "  ".join(f"{k} {v:7.1f} ms" for k, v in row.items()))
    if args.compile:
        for stage, row in compile_times(args.device, args.config).items():
            print(f"{stage:9s} eager {row['eager_ms']:.1f} ms, compiled {row['compiled_ms']:.1f} "
                  f"ms (x{row['speedup']:.2f}), compile time {row['compile_s']:.0f} s (once per run)")


if __name__ == "__main__":
    main()
