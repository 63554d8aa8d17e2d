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

``--online``: crops/s of ``OnlineStream`` (the ``sample`` source's photos, prior depth from a
warm depth cache, recipe ssr, JPEG on OpenCV and on kornia) beside ``TrainingStream`` over
shards built from the same photos, at crop 128, batch 8, 2 workers, all on this CPU.
``online_report(device, config, steps)`` (called by bench/gpu_check.py) trains a config's
stages with online degradation through the real Trainer and returns step time and the share
of it spent waiting for data, from the Trainer's own per-step events.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrade.build import build  # noqa: E402
from ssr_models import create_model  # noqa: E402
from ssr_models.batch import Batch  # noqa: E402
from ssr_models.configs import STAGES, load_train_config  # noqa: E402
from ssr_models.data import TrainingStream  # noqa: E402
from tests.helpers import make_config, write_folder  # noqa: E402


def autocast_dtype(sc: Any) -> torch.dtype | None:
    """The autocast dtype a stage's ``trainer.amp`` asks for (None: float32).

    Through TrainerConfig, which reads YAML's ``amp: off``/``true`` (booleans) and the names
    ``off``/``fp16``/``bf16``: ``bool("off")`` would be True, i.e. float16.
    """
    from ssr_models.precision import AMP_DTYPES

    return AMP_DTYPES.get(str(sc.trainer_config(".").amp))


def _steps(model: torch.nn.Module, batches: list[Batch], device: str,
           amp: torch.dtype | None = None) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t0 = time.perf_counter()
    for b in batches:
        b = b.to(device)
        with torch.autocast(device, dtype=amp or torch.float16, enabled=amp is not None):
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
                      kernel_field=one.kernel_field.mean((2, 3), keepdim=True).expand(bs, 3, c // s, c // s)
                      .contiguous(), scale=s, kernel_size=one.kernel_size, delta=one.delta)
            model = model.cuda().train()
            amp = autocast_dtype(sc)
            _steps(model, [b] * 2, "cuda", amp)
            dt = _steps(model, [b] * 5, "cuda", amp) / 5
            mem = torch.cuda.max_memory_allocated() / 2**30
            line += (f", one step {dt * 1000:.0f} ms (crop {c}, batch {bs}, autocast {amp}), "
                     f"peak {mem:.1f} GiB")
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


def loader(num_batches: int = 12, rounds: int = 3) -> None:
    """Print TrainingStream samples/s with 0, 1, 2 workers and the 2-vs-1 worker ratio.

    The machine is shared, so 1 and 2 workers are measured alternately ``rounds`` times and
    the best round of each is kept (the least disturbed one). Beside it, a figure that load
    cannot bend: the workers' CPU time per delivered sample (``RUSAGE_CHILDREN`` once the
    workers have exited; it includes the <= 2 prefetched batches per worker): equal for 1 and
    2 workers when no work is duplicated, which is what lets 2 workers use 2 cores.
    """
    import gc

    with tempfile.TemporaryDirectory() as tmp:
        urls = [str(p) for p in sorted(_loader_shards(Path(tmp)).glob("*.tar"))]
        rates: dict[int, float] = {}
        cpu_ms: dict[int, float] = {}
        load = os.getloadavg()[0]
        for workers in [0] + [1, 2] * rounds:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            stream = TrainingStream(urls, 256, 4, seed=0, epoch_samples=12,
                                    num_workers=workers)
            it = iter(stream)
            for _ in range(2 * max(1, workers)):  # start-up and first prefetch
                next(it)
            t0 = time.perf_counter()
            for _ in range(num_batches):
                next(it)
            rates[workers] = max(rates.get(workers, 0.0),
                                 num_batches * 4 / (time.perf_counter() - t0))
            del it
            gc.collect()  # joins the workers, so their CPU time is in RUSAGE_CHILDREN
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if workers:
                used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
                delivered = (num_batches + 2 * workers) * 4
                cpu_ms[workers] = min(cpu_ms.get(workers, math.inf), 1000 * used / delivered)
        for workers, r in sorted(rates.items()):
            extra = f", workers' CPU {cpu_ms[workers]:5.1f} ms/sample" if workers else ""
            print(f"  {workers} worker(s): {r:6.1f} samples/s{extra}")
        print(f"loader: 2 workers / 1 worker = {rates[2] / rates[1]:.2f}x samples/s, "
              f"{cpu_ms[2] / cpu_ms[1]:.2f}x CPU per sample (best of {rounds}; load average "
              f"before: {load:.2f}, after: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")


def online_report(device: str = "cuda", config: str = "paper", steps: int = 30,
                  stages: tuple[str, ...] = STAGES, warmup: int = 5,
                  num_workers: int | None = None, jpeg: str | None = None,
                  prefetch: int | None = None) -> dict[str, Any]:
    """Train ``config``'s stages with online degradation; return step time and data wait.

    Source: the ``sample`` photos (offline), prior depth (cached once per image before
    timing), the stage's crop, batch, JPEG path (``data.online_jpeg``) and Trainer settings;
    ``num_workers`` None = the machine's cores less two (the training process and the
    pin-memory thread keep one each); ``jpeg`` "cpu" or "kornia" overrides the config's;
    ``prefetch`` (batches degraded ahead in a thread, 0 = in ``next()``) overrides
    ``data.online_prefetch`` (None there: 2 on CUDA, 0 on a CPU).

    Returns:
        ``{stage: {"step_ms", "data_wait_ms", "data_wait_fraction", "crops_per_s", "batch",
        "crop", "workers", "jpeg", "prefetch", "amp"}}``: means over steps ``warmup + 1 .. steps`` of the
        Trainer's own step events (``data_wait_s``: time in ``next()`` on the stream, which
        includes the online blur/noise/JPEG calls; ``step_s``: the whole step).
    """
    from ssr_models.online import OnlineSpec, OnlineStream
    from ssr_models.trainer import Trainer

    torch.set_flush_denormal(True)  # as ssr-train does (denormals slow CPUs up to 50x)
    cfg = load_train_config(config)
    dev = torch.device(device)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in stages:
            sc = cfg.stage(stage)
            # "With the machine's cores": all but two (the training process, the pin thread).
            workers = (max(1, (os.cpu_count() or 1) - 2) if num_workers is None
                       else num_workers)
            spec = OnlineSpec("sample", depth="prior", jpeg=jpeg or sc.data.online_jpeg,  # type: ignore[arg-type]
                              depth_cache=str(Path(tmp) / "depth"))
            stream = OnlineStream(spec, sc.data.crop_hr, sc.data.batch_size, seed=0,
                                  num_workers=workers, pin_memory=dev.type == "cuda",
                                  crops_per_image=sc.data.crops_per_image, device=dev,
                                  prefetch=(sc.data.online_prefetch if prefetch is None
                                            else prefetch))
            for item in stream.items:  # fill the depth cache (once per image, as in a run)
                from ssr_datasets.sources import load_item

                stream.nearness(load_item(item))
            torch.manual_seed(0)
            model = create_model(sc.model, **sc.model_overrides)
            tcfg = sc.trainer_config(Path(tmp) / stage, steps=steps, seed=0)
            tcfg = dataclasses.replace(tcfg, tensorboard=False, ckpt_every=0, val_every=0)
            events: list[dict[str, Any]] = []  # the Trainer's own per-step data-wait measure
            Trainer(model, tcfg, stream, device=dev).fit(
                callback=lambda e, sink=events: sink.append(e.data) if e.kind == "step" else None)
            timed = events[warmup:]
            step_s = float(np.mean([e["step_s"] for e in timed]))
            wait_s = float(np.mean([e["data_wait_s"] for e in timed]))
            out[stage] = {"step_ms": 1000 * step_s, "data_wait_ms": 1000 * wait_s,
                          "data_wait_fraction": wait_s / step_s,
                          "crops_per_s": sc.data.batch_size / step_s,
                          "batch": sc.data.batch_size, "crop": sc.data.crop_hr,
                          "workers": workers, "jpeg": spec.jpeg, "prefetch": stream.prefetch,
                          "amp": tcfg.amp}
    return out


def online_cpu(batches: int = 6, crop: int = 128, batch: int = 8, workers: int = 2) -> None:
    """Print online crops/s (OpenCV and kornia JPEG) beside shard crops/s, same photos."""
    from degrade.build import BuildConfig
    from degrade.recipes import load_recipe
    from ssr_models.online import OnlineSpec, OnlineStream

    def rate(stream: Any) -> float:
        it = iter(stream)
        for _ in range(2 * workers):  # start-up, first prefetch
            next(it)
        t0 = time.perf_counter()
        for _ in range(batches):
            next(it)
        return batches * batch / (time.perf_counter() - t0)

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "depth")
        build(BuildConfig(recipe=load_recipe("ssr"), source="sample", depth="prior",
                          samples_per_image=4),
              Path(tmp) / "shards", command="bench", preview=False)
        shards = rate(TrainingStream(str(Path(tmp) / "shards"), crop, batch, seed=0,
                                     num_workers=workers))
        print(f"  shards              {shards:6.1f} crops/s")
        rates = {}
        for jpeg in ("cpu", "kornia"):
            spec = OnlineSpec("sample", depth="prior", jpeg=jpeg, depth_cache=cache)
            rates[jpeg] = rate(OnlineStream(spec, crop, batch, seed=0, num_workers=workers))
            print(f"  online, JPEG {jpeg:6s} {rates[jpeg]:6.1f} crops/s "
                  f"({rates[jpeg] / shards:.2f}x shards)")
    print(f"online vs shards at crop {crop}, batch {batch}, {workers} workers "
          f"(load average before: {load:.2f} on {os.cpu_count()} cores)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loader", action="store_true", help="measure the shard loader only")
    parser.add_argument("--online", action="store_true",
                        help="online degradation vs shards, crops/s on this CPU")
    args = parser.parse_args()
    if args.loader:
        loader()
        return
    if args.online:
        torch.set_flush_denormal(True)
        online_cpu()
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
