"""Training benchmark: tiny config on this CPU, paper config sizes (and GPU step time).

Run: ``python bench/train.py`` (builds 8 synthetic 64 x 64 images into a temp shard set);
``python bench/train.py --loader`` measures the shard loader alone (below).

Measured, per stage of the ``tiny`` config on CPU (the config's crop and batch size):
* steps/s: ``training_step`` + backward + AdamW step over 20 steps after 5 warm-up steps,
  batches pre-read (model compute only; data decoding is reported separately as batches/s).
* peak memory: growth of the process's max RSS (``resource.getrusage``, KiB on Linux) over
  the stage's warm-up + timed steps: the whole process (Python objects, torch CPU allocator,
  autograd buffers); 0 means the stage fitted in memory an earlier stage already touched.
For the ``paper`` config: parameter count per model; one training step's time on CUDA at the
config's crop and batch size (float16 autocast, as configured) when a GPU is available.

``--loader``: ``TrainingStream`` throughput (samples decoded per second) over shards of
DIV2K-like samples (1020 x 680 HR, a quarter of DIV2K's area, to keep the run short) at crop
256, batch 4, with 0, 1 and 2 DataLoader workers, after two warm-up batches per worker; the
ratio 2 workers / 1 worker is the scaling figure (the issue's target is >= 1.8 on 2 cores).
"""

from __future__ import annotations

import argparse
import os
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


def _loader_shards(folder: Path, n: int = 12, per_shard: int = 4) -> Path:
    """Write ``n`` DIV2K-like samples (natural image content, 1020 x 680 HR, x4) as shards."""
    import cv2
    from skimage import data as skdata

    from ssr_datasets.schema import SCHEMA_VERSION, Sample, nearness_to_u16
    from ssr_datasets.shards import shard_name, write_shard

    h, w, s = 680, 1020, 4
    rng = np.random.default_rng(0)
    base = cv2.resize(skdata.astronaut(), (w, h), interpolation=cv2.INTER_CUBIC)
    for first in range(0, n, per_shard):
        samples = []
        for i in range(first, min(n, first + per_shard)):
            # Film-grain-like noise keeps PNG sizes (and decode cost) close to real photographs.
            hr = np.clip(np.roll(base, 16 * i, 1) + rng.normal(0, 3, base.shape), 0, 255
                         ).astype(np.uint8)
            lr = cv2.resize(hr, (w // s, h // s), interpolation=cv2.INTER_AREA)
            near = nearness_to_u16(np.linspace(0, 1, h)[:, None].repeat(w, 1))
            kernel = np.stack([np.full((h // s, w // s), v, np.float32) for v in (1.5, 1.0, 0.3)])
            meta = {"schema_version": SCHEMA_VERSION, "scale": s, "kernel_size": 21,
                    "delta": 1.5}
            samples.append(Sample(f"bench-img{i:03d}-000", hr, lr, near, kernel, meta))
        write_shard(folder / shard_name("train", first // per_shard), samples)
    return folder


def loader(num_batches: int = 12) -> None:
    """Print TrainingStream samples/s with 0, 1, 2 workers and the 2-vs-1 worker ratio."""
    with tempfile.TemporaryDirectory() as tmp:
        urls = [str(p) for p in sorted(_loader_shards(Path(tmp)).glob("*.tar"))]
        rates = {}
        load = os.getloadavg()[0]
        for workers in (0, 1, 2):
            stream = TrainingStream(urls, 256, 4, seed=0, epoch_samples=12,
                                    num_workers=workers)
            it = iter(stream)
            for _ in range(2 * max(1, workers)):  # start-up and first prefetch
                next(it)
            t0 = time.perf_counter()
            for _ in range(num_batches):
                next(it)
            rates[workers] = num_batches * 4 / (time.perf_counter() - t0)
            del it
            print(f"  {workers} worker(s): {rates[workers]:6.1f} samples/s")
        print(f"loader: 2 workers / 1 worker = {rates[2] / rates[1]:.2f}x "
              f"(load average before: {load:.2f} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loader", action="store_true", help="measure the shard loader only")
    if parser.parse_args().loader:
        loader()
        return
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
