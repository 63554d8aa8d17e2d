"""Training benchmark: tiny config on this CPU, paper config sizes (and GPU step time).

Run: ``python bench/train.py`` (builds 8 synthetic 64 x 64 images into a temp shard set).

Measured, per stage of the ``tiny`` config on CPU (the config's crop and batch size):
* steps/s: ``training_step`` + backward + AdamW step over 20 steps after 5 warm-up steps,
  batches pre-read (model compute only; data decoding is reported separately as batches/s).
* peak memory: growth of the process's max RSS (``resource.getrusage``, KiB on Linux) over
  the stage's warm-up + timed steps: the whole process (Python objects, torch CPU allocator,
  autograd buffers); 0 means the stage fitted in memory an earlier stage already touched.
For the ``paper`` config: parameter count per model; one training step's time on CUDA at the
config's crop and batch size (float16 autocast, as configured) when a GPU is available.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrade.pipeline import build  # noqa: E402
from ssr_models import create_model  # noqa: E402
from ssr_models.batch import Batch  # noqa: E402
from ssr_models.configs import STAGES, load_train_config  # noqa: E402
from ssr_models.data import TrainingStream  # noqa: E402
from tests.degrade.conftest import make_config, write_folder  # noqa: E402


def _steps(model: torch.nn.Module, batches: list[Batch], device: str, amp: bool = False) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    for b in batches:
        b = b.to(device)
        with torch.autocast(device, dtype=torch.float16, enabled=amp):
            loss, _ = model.training_step(b)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def tiny_cpu(shards: Path) -> None:
    cfg = load_train_config("tiny")
    print(f"tiny config, CPU, {torch.get_num_threads()} threads")
    for stage in STAGES:
        sc = cfg.stage(stage)
        stream = TrainingStream(str(shards), sc.data.crop_hr, sc.data.batch_size, seed=0)
        it = iter(stream)
        t0 = time.perf_counter()
        batches = [next(it) for _ in range(25)]
        data_rate = 25 / (time.perf_counter() - t0)
        torch.manual_seed(0)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = create_model(sc.model, **sc.model_overrides).train()
        _steps(model, batches[:5], "cpu")
        dt = _steps(model, batches[5:], "cpu")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0
        print(f"  {stage:9s} {sc.model:15s} crop {sc.data.crop_hr} batch {sc.data.batch_size}: "
              f"{20 / dt:6.1f} steps/s (compute), data {data_rate:5.1f} batches/s, "
              f"peak RSS +{rss / 1024:.1f} MiB")


def paper(shards: Path) -> None:
    cfg = load_train_config("paper")
    gpu = torch.cuda.is_available()
    print("paper config" + ("" if gpu else " (no GPU: parameter counts only)"))
    for stage in STAGES:
        sc = cfg.stage(stage)
        model = create_model(sc.model, **sc.model_overrides)
        n = sum(p.numel() for p in model.parameters())
        line = f"  {stage:9s} {sc.model:10s} {n / 1e6:7.2f} M parameters"
        if gpu:
            # Synthetic batch of the configured size (the 64 px sample shards are too small).
            c, bs, s = sc.data.crop_hr, sc.data.batch_size, 4
            one = next(iter(TrainingStream(str(shards), 32, 1, seed=0)))
            b = Batch(hr=torch.rand(bs, 3, c, c), lr=torch.rand(bs, 3, c // s, c // s),
                      nearness=torch.rand(bs, 1, c, c),
                      kernel=one.kernel.mean((2, 3), keepdim=True).expand(bs, 3, c // s, c // s)
                      .contiguous(), scale=s, kernel_size=one.kernel_size, delta=one.delta)
            model = model.cuda().train()
            amp = bool(sc.trainer.get("amp", False))
            _steps(model, [b] * 2, "cuda", amp)
            dt = _steps(model, [b] * 5, "cuda", amp) / 5
            mem = torch.cuda.max_memory_allocated() / 2**30
            line += f", one step {dt * 1000:.0f} ms (crop {c}, batch {bs}, amp {amp}), peak {mem:.1f} GiB"
            torch.cuda.reset_peak_memory_stats()
        print(line)
    if not gpu:
        print("  no GPU")


def main() -> None:
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_folder(root / "images", [f"img{i}" for i in range(8)], h=64, w=64)
        build(make_config(root / "images", no_noise=True, no_jpeg=True), root / "shards",
              command="bench", preview=False)
        np.random.seed(0)
        tiny_cpu(root / "shards")
        paper(root / "shards")


if __name__ == "__main__":
    main()
