"""The sections of bench/gpu_check.py: one function per CUDA path, each returning a summary.

Each ``section_X(ctx)`` returns ``{"summary": one line, "figures": {...}}`` or raises; CLIs run
as ``python -m <module>`` in a child process (in this process with ``--smoke``, via runpy as
``-m`` does, to save a torch import per command). See gpu_check.py's docstring for the list.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
# our own top-level modules, left out of the third-party list
PROJECT = {"degrade", "eval", "ssr_models", "ssr_datasets", "ssr_manifests", "tests", "engine",
           "train", "step_timing", "gpu_check", "gpu_check_sections", "__main__"}
# Runs a module as `python -m` does, then reports its imported top-level modules on stderr.
_LAUNCHER = ("import atexit, json, runpy, sys\n"
             "atexit.register(lambda: print('GPU_CHECK_MODULES ' + json.dumps(sorted("
             "{m.split('.')[0] for m in list(sys.modules)})), file=sys.stderr))\n"
             "mod = sys.argv[1]; sys.argv = [mod] + sys.argv[2:]\n"
             "runpy.run_module(mod, run_name='__main__', alter_sys=True)\n")


class Ctx:
    """What a section needs: device, sizes, the work folder and the child environment."""

    def __init__(self, device: str, smoke: bool, work: Path, env: dict[str, str],
                 deadline: float | None = None) -> None:
        self.device, self.smoke, self.work, self.env = device, smoke, work, env
        self.deadline = deadline  # time.time() at which the runner stops this section
        self.on_gpu = device.startswith("cuda")
        self.modules: set[str] = set()

    def cli(self, module: str, *args: str, timeout: float = 600) -> tuple[int, float, str]:
        """Run ``python -m module args``; return (exit code, seconds, last output lines).

        With ``--smoke`` the module runs in this process (runpy, as ``-m`` does): the same
        entry point and exit code without a torch import per command.
        """
        t0 = time.perf_counter()
        if self.smoke:
            code, out = _run_in_process(module, list(args))
            return code, time.perf_counter() - t0, "\n".join(out.splitlines()[-6:])
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, module, *args], env=self.env,
                              cwd=self.work, capture_output=True, text=True, timeout=timeout)
        lines = []
        for line in proc.stderr.splitlines():
            if line.startswith("GPU_CHECK_MODULES "):
                self.modules.update(json.loads(line.split(" ", 1)[1]))
            else:
                lines.append(line)
        tail = "\n".join((proc.stdout.splitlines() + lines)[-6:])
        return proc.returncode, time.perf_counter() - t0, tail

    def must(self, module: str, *args: str) -> float:
        """Run a CLI that must succeed; return its seconds or raise with its last lines."""
        code, seconds, tail = self.cli(module, *args)
        if code != 0:
            raise RuntimeError(f"python -m {module} {' '.join(args)} -> exit {code}:\n{tail}")
        return seconds


def _run_in_process(module: str, args: list[str]) -> tuple[int, str]:
    """Run ``module`` as __main__ with ``args``; return (exit code, its stdout and stderr)."""
    import contextlib
    import io
    import runpy

    buf, argv = io.StringIO(), sys.argv
    sys.argv = [module, *args]
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exc:  # click ends every command with sys.exit
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return code, buf.getvalue()


def _bench(name: str) -> Any:
    """Import bench/<name>.py (bench/ is a folder of scripts, not a package)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    return importlib.import_module(name)


# ---- sections (each returns {"summary": str, "figures": {...}}) -------------------------------

def section_a(ctx: Ctx) -> dict[str, Any]:
    engine = _bench("engine")
    if ctx.smoke:  # Triton's interpreter on CPU tensors: the code path, not a speed
        r = engine.gpu_engine_report(ctx.device, batches=(1, 2), size=(64, 96), repeats=1)
    else:
        r = engine.gpu_engine_report(ctx.device)
    ratios = " ".join(f"b{b} {row['ratio']:.2f}" for b, row in r["batches"].items())
    best = max(row["fused_img_s"] for row in r["batches"].values())
    return {"summary": f"fused/conv2d {ratios}; up to {best:,.0f} img/s; max err vs "
                       f"{r['cpu_backend']} {r['max_abs_err_255']:.1e}/255; deterministic "
                       f"{r['deterministic']}", "figures": r, "detail": engine.format_gpu_report(r)}


def _build_args(ctx: Ctx) -> list[str]:
    args = ["build", "--source", "sample", "--no-preview", "--seed", "0"]
    # smoke: 8 samples of 64 x 64 (the tiny config's largest batch) from two photos
    return args + (["--max-images", "2", "--samples-per-image", "4", "--crop", "64", "64"]
                   if ctx.smoke else [])


def _shard_hashes(folder: Path) -> list[str]:
    return [s["sha256"] for s in json.loads((folder / "manifest.json").read_text())["shards"]]


def _lr_difference(a: Path, b: Path) -> dict[str, float]:
    from ssr_datasets.shards import iter_shard

    def samples(folder: Path) -> list[Any]:
        return [s for p in sorted(folder.glob("*.tar")) for s in iter_shard(p)]

    diffs, equal_kernels = [], True
    for x, y in zip(samples(a), samples(b), strict=True):
        diffs.append(abs(x.lr.astype(int) - y.lr.astype(int)).ravel())
        equal_kernels &= bool((x.kernel_field == y.kernel_field).all() and (x.hr == y.hr).all())
    import numpy as np

    d = np.concatenate(diffs)
    return {"lr_max_levels": int(d.max()), "lr_share_differing": float((d > 0).mean()),
            "hr_and_kernels_identical": equal_kernels}


def section_b(ctx: Ctx) -> dict[str, Any]:
    dev, w, common = ctx.device, ctx.work, _build_args(ctx)
    t1 = ctx.must("degrade.cli", *common, "--device", dev, "--out", str(w / "shards"))
    t2 = ctx.must("degrade.cli", *common, "--device", dev, "--out", str(w / "shards-again"))
    same = _shard_hashes(w / "shards") == _shard_hashes(w / "shards-again")
    figures: dict[str, Any] = {"seconds": [t1, t2], "byte_identical": same}
    summary = f"exit 0 twice ({t1:.1f} s, {t2:.1f} s); shards byte-identical: {same}"
    if ctx.on_gpu:  # without JPEG, so that LR levels show the blur's float32 agreement
        cpu_workers = str(min(8, os.cpu_count() or 1))
        ctx.must("degrade.cli", *common, "--no-jpeg", "--device", dev, "--out", str(w / "nj-gpu"))
        ctx.must("degrade.cli", *common, "--no-jpeg", "--device", "cpu", "--workers", cpu_workers,
                 "--out", str(w / "nj-cpu"))
        agree = _lr_difference(w / "nj-gpu", w / "nj-cpu")
        figures["vs_cpu_no_jpeg"] = agree
        summary += (f"; vs CPU (no JPEG): LR differs by <= {agree['lr_max_levels']} level in "
                    f"{100 * agree['lr_share_differing']:.3f}% of values, HR/kernels identical "
                    f"{agree['hr_and_kernels_identical']}")
    return {"summary": summary, "figures": figures}


def section_c(ctx: Ctx) -> dict[str, Any]:
    w, shards = ctx.work, ctx.work / "shards"
    if not (shards / "manifest.json").exists():  # section b failed or was left out
        ctx.must("degrade.cli", *_build_args(ctx), "--device", "cpu", "--out", str(shards))
    steps = ["--steps", "1" if ctx.smoke else "100"]  # 100: one validation and checkpoint
    t = ctx.must("ssr_models.train_cli", "--shards", str(shards), "--val-shards", str(shards),
                 "--stage", "all", "--config", "tiny", "--out", str(w / "run"),
                 "--device", ctx.device, *steps)
    return {"summary": f"kernel, nbsr, diffusion trained in {t:.1f} s (exit 0)",
            "figures": {"seconds": t}}


def section_d(ctx: Ctx) -> dict[str, Any]:
    t = ctx.must("ssr_models.train_cli", "--online", "--source", "sample",
                 "--stage", "kernel" if ctx.smoke else "all", "--config", "tiny",
                 "--out", str(ctx.work / "run-online"), "--device", ctx.device,
                 "--steps", "1" if ctx.smoke else "50")
    return {"summary": f"{'kernel' if ctx.smoke else 'all stages'} trained online in {t:.1f} s "
                       "(exit 0)", "figures": {"seconds": t}}


def _one_lr_image(shards: Path, folder: Path) -> Path:
    """Write the first sample's LR image as folder/<key>.png (smoke: one small input)."""
    import cv2

    from ssr_core.io import atomic_file
    from ssr_datasets.shards import iter_shard

    tars = sorted(shards.glob("*.tar"))
    if not tars:
        raise FileNotFoundError(f"no shards in {shards} (section b builds them)")
    sample = next(iter_shard(tars[0]))
    folder.mkdir(exist_ok=True)
    ok, png = cv2.imencode(".png", sample.lr[..., ::-1])
    with atomic_file(folder / f"{sample.key}.png") as f:
        f.write(png.tobytes())
    return folder


def section_e(ctx: Ctx) -> dict[str, Any]:
    w, out = ctx.work, {}
    source = _one_lr_image(w / "shards", w / "lr-one") if ctx.smoke else w / "shards"
    for method in ("svkr", "diffusion"):
        extra = ["--steps", "1", "--svkr-iterations", "1"] if ctx.smoke else []
        out[method] = ctx.must("ssr_models.infer_cli", "--checkpoint", str(w / "run"), "--input",
                               str(source), "--out", str(w / f"sr-{method}"), "--method",
                               method, "--device", ctx.device, *extra)
    n = len(list((w / "sr-svkr").glob("*.png")))
    return {"summary": f"{n} image(s); svkr {out['svkr']:.1f} s, diffusion "
                       f"{out['diffusion']:.1f} s (exit 0)", "figures": out}


def section_f(ctx: Ctx) -> dict[str, Any]:
    w = ctx.work
    t = ctx.must("eval", "run", "--table", "1", "--stand-in", "sample", "--method",
                 f"SSR={w / 'run'}", "--device", ctx.device, "--metrics", "psnr,ssim",
                 "--max-images", "1" if ctx.smoke else "2", "--work-dir", str(w / "tables"),
                 "--out", str(w / "table1.json"))
    table = json.loads((w / "table1.json").read_text())
    return {"summary": f"table 1 written in {t:.1f} s (exit 0)",
            "figures": {"seconds": t, "keys": sorted(table)[:8]}}


def section_g(ctx: Ctx) -> dict[str, Any]:
    train = _bench("train")
    if ctx.smoke:  # prefetch 1: the background thread's path on a CPU too
        r = train.online_report(ctx.device, config="tiny", steps=3, warmup=1, num_workers=0,
                                stages=("kernel",), prefetch=1)
    else:  # data.online_prefetch as configured (null: 2 batches ahead on CUDA)
        r = train.online_report(ctx.device, config="paper", steps=30)
    parts = [f"{s} {v['step_ms']:.0f} ms/step, wait {100 * v['data_wait_fraction']:.1f}%"
             for s, v in r.items()]
    figures = dict(r)
    if not ctx.smoke and (ctx.deadline is None or ctx.deadline - time.time() > 25):
        # What the overlap gains: the kernel stage (the shortest step) with the device work
        # inside next(), between steps.
        base = train.online_report(ctx.device, config="paper", steps=30, stages=("kernel",),
                                   prefetch=0)["kernel"]
        figures["kernel_prefetch_0"] = base
        parts.append(f"kernel without prefetch {base['step_ms']:.0f} ms/step, wait "
                     f"{100 * base['data_wait_fraction']:.1f}%")
    return {"summary": "; ".join(parts), "figures": figures}


def section_h(ctx: Ctx) -> dict[str, Any]:
    r = _bench("step_timing").step_times(ctx.device, smoke=ctx.smoke)
    parts = [f"{s} " + "/".join(f"{v:.1f}" for v in row.values()) for s, row in r.items()]
    return {"summary": f"ms/step ({'/'.join(next(iter(r.values())))}): " + "; ".join(parts),
            "figures": r}


def section_i(ctx: Ctx) -> dict[str, Any]:
    """Eager vs ``compile=True`` (the networks' forward, bf16), compile time apart; nbsr only if
    the section's time allows it. ``--smoke``: the tiny kernel stage traced by dynamo with the
    eager backend (the plumbing; inductor on a CPU compiles C++ for minutes)."""
    timing = _bench("step_timing")

    def progress(line: str) -> None:  # the runner shows the last lines if the limit strikes
        print(f"[i] {line}", flush=True)

    if ctx.smoke:
        r = timing.compile_times(ctx.device, config="tiny", stages=("kernel",),
                                 amp="bf16" if ctx.on_gpu else "off", steps=3, warmup=1,
                                 backend="inductor" if ctx.on_gpu else "eager", progress=progress)
    else:
        r = timing.compile_times(ctx.device, deadline=ctx.deadline, progress=progress)
    parts = [f"{s} {v['eager_ms']:.1f} -> {v['compiled_ms']:.1f} ms/step (x{v['speedup']:.2f}; "
             f"compile {v['compile_s']:.0f} s once per run)" for s, v in r.items()]
    missing = [s for s in (("kernel",) if ctx.smoke else ("kernel", "nbsr")) if s not in r]
    tail = f"; {', '.join(missing)} not timed (out of time)" if missing else ""
    return {"summary": "eager -> compiled: " + "; ".join(parts) + tail, "figures": r}


def section_j(ctx: Ctx) -> dict[str, Any]:
    """Latent SSR on a tiny saved backbone: identity with the backbone, bf16 training steps,
    fp16 sampling against float32 (max abs difference, 0-1 scale) and sampling time."""
    import dataclasses
    import itertools

    import torch

    from ssr_models import create_model
    from ssr_models.batch import Batch
    from ssr_models.trainer import Trainer, TrainerConfig
    from tests.ssr_models.tiny_backbone import make_tiny_backbone

    backbone = make_tiny_backbone(ctx.work / "latent-backbone")
    dev, side = torch.device(ctx.device), 16 if ctx.smoke else 64
    torch.manual_seed(0)
    model = create_model("ssr-latent-tiny", backbone=str(backbone)).to(dev).eval()
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 3, side, side, generator=g).to(dev)
    field = torch.stack([torch.full((2, side, side), 1.5), torch.full((2, side, side), 1.0),
                         torch.zeros(2, side, side)], 1).to(dev)
    near = torch.rand(2, 1, 4 * side, 4 * side, generator=g).to(dev)
    z, t = torch.randn(2, 3, side, side, generator=g).to(dev), torch.tensor([10, 900], device=dev)
    with torch.no_grad():
        same = torch.equal(model.eps(z, lr * 2 - 1, t, model.encode(lr * 2 - 1, field, near)),
                           model.eps(z, lr * 2 - 1, t, None))
    batch = Batch(hr=torch.rand(2, 3, 4 * side, 4 * side, generator=g), lr=lr.cpu(),
                  nearness=near.cpu(), kernel_field=field.cpu(), scale=4, kernel_size=21, delta=1.5)
    steps = 2 if ctx.smoke else 20
    cfg = TrainerConfig(steps=steps, out_dir=str(ctx.work / "latent-run"), amp="bf16" if ctx.on_gpu
                        else "off", val_every=0, ckpt_every=steps, tensorboard=False)
    t0 = time.perf_counter()
    Trainer(model, cfg, itertools.repeat(batch), device=dev).fit()
    train_s = time.perf_counter() - t0
    model.eval()
    outs = {}
    for amp in ("off", "fp16"):
        model.config = dataclasses.replace(model.config, sample_amp=amp)
        t0 = time.perf_counter()
        outs[amp] = model.sample(lr, field, near, steps=4, generator=torch.Generator(dev).manual_seed(1))
        outs[amp + "_s"] = time.perf_counter() - t0
    diff = float((outs["off"] - outs["fp16"]).abs().max())
    finite = bool(torch.isfinite(outs["fp16"]).all())
    if not same or not finite:
        raise RuntimeError(f"identity at init {same}, fp16 sample finite {finite}")
    return {"summary": f"identity ok; {steps} steps in {train_s:.1f} s; fp16 vs fp32 sample max "
                       f"diff {diff:.4f}; sample {outs['off_s']:.2f} s / {outs['fp16_s']:.2f} s",
            "figures": {"train_s": train_s, "fp16_max_diff": diff, "sample_fp32_s": outs["off_s"],
                        "sample_fp16_s": outs["fp16_s"]}}


RUNNERS: dict[str, Callable[[Ctx], dict[str, Any]]] = {
    "a": section_a, "b": section_b, "c": section_c, "d": section_d, "e": section_e,
    "f": section_f, "g": section_g, "h": section_h, "i": section_i,
    "j": section_j}
