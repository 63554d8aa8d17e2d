"""Learning check (issue 14.4): does each learned stage beat its trivial baseline on held-out images?

Run: ``python bench/learning.py --data FOLDER [--minutes M] [--quick] [--out FILE]``.

What it does, on this machine's CPU, seeded (``--seed``):

1. Split the images of ``--data`` (every png/jpg/bmp/tif/webp, sorted, then a seeded
   permutation) 80 / 20 into train and held-out test; build both with ``degrade build``'s
   library (``--recipe``, default ``ssr-clean``: the ``ssr`` defocus model without noise or
   JPEG; weight-free ``prior`` depth). Train: ``--train-crop`` HR crops, ``--samples-per-image``
   per photo. Test: whole images, scored on their ``--eval-crop`` HR centre crop (the tiny
   diffusion samplers on whole 0.15 MP photos would eat the budget on 2 cores).
2. Train the ``tiny`` config's stages through ``ssr_models.run.train_stage`` (what ``ssr-train``
   calls), each for ``--minutes`` of wall clock (``max_minutes``; ``--steps`` is only the
   cosine schedule's length, so a stage stopped by the budget never reaches a rate of 0):
   DKENet, NBSR, the pixel diffusion model (``ssr-pixel-tiny``, full conditioning), the three
   Table 2 ablations (diffusion stage only; kernel/NBSR stages copied from the full run) at
   ``--ablation-minutes`` each, and latent SSR: first a tiny VQ-f4 + latent SR UNet backbone is
   fitted on the training split for ``--minutes`` (``bench/latent_backbone_fit.py``: the CompVis
   backbone cannot run here; a random one decodes noise), then ``ssr-latent-tiny``'s encoders
   and AMF train on it, backbone frozen. No validation during training: best.pt would then be
   picked on the test images.
3. Score on the test crops: Y PSNR with a 4 px crop (``degrade.ops.quality.psnr``, BasicSR
   conventions) of uint8 outputs for bicubic (torch, as the trainers' baseline), NBSR with the
   true kernel field, NBSR with the mean training kernel for every pixel, SVKR (``SRPipeline``,
   3 iterations, ``prior`` depth), the pixel diffusion model and the ablations (blind:
   ``SRPipeline``'s kernel and depth estimates), each twice: one sample of the full reverse
   process, and the x_0 estimate at T (one step), which approximates the posterior mean
   E[x_0 | LR] (the PSNR-optimal output; a sample's expected squared error is the mean's plus
   the sample variance, up to twice the mean's for a perfect sampler, so a PSNR comparison of a
   sample with bicubic penalises exactly what a diffusion model is for); the latent backbone
   alone (SSR's trivial baseline: zero-initialised AMF) and latent SSR, same noise, plus both
   models' held-out Eq. 5 denoising error (the adapters' own objective, no sampling variance);
   and the kernel L1 (per-pixel sum of |taps|, in [0, 2]) of DKENet and of the mean training
   kernel (``eval.kernels``).

Prints one markdown table (method, PSNR, delta vs bicubic), the kernel rows, the Table 2 rows,
the latent denoising errors, the latent backbone's fit and VQ ceiling, the budgets, the wall
time and the load average (the machine may be shared). ``--quick``: a smoke run (a few steps
per stage, 32 px eval crops), for tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from degrade.ops.quality import psnr  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
ABLATION_ROWS = ("di-kernel-only", "depth-only", "no-svkr")
PIXEL = "pixel diffusion (ssr-pixel-tiny, full)"
SAMPLE, ONE_STEP = ": one sample", ": x0 estimate at T (1 step)"
BACKBONE_ROW = "latent backbone alone (tiny, fitted here)"
LATENT_ROW = "latent SSR (ssr-latent-tiny on that backbone)"


@dataclass(frozen=True)
class Budget:
    """Per-stage training budget: minutes of wall clock (None: steps only) and schedule length."""

    minutes: float | None
    ablation_minutes: float | None
    steps: int


def split_images(folder: Path, seed: int, test_fraction: float = 0.2) -> tuple[list[Path], list[Path]]:
    """Return (train, test) image paths of ``folder``: a seeded permutation, ``test_fraction`` held out."""
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if len(images) < 2:
        raise SystemExit(f"error: {folder} holds {len(images)} images; need at least 2")
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = max(1, round(test_fraction * len(images)))
    test = sorted(images[i] for i in order[:n_test])
    train = sorted(images[i] for i in order[n_test:])
    return train, test


def build_set(images: list[Path], out: Path, recipe: str, seed: int, crop: int | None,
              samples_per_image: int) -> Path:
    """Link ``images`` into a folder and build it as a shard set in ``out`` (prior depth)."""
    from degrade.build import BuildConfig, DepthOptions, build
    from degrade.recipes import load_recipe

    root = out.with_name(out.name + "-images")
    root.mkdir(parents=True)
    for p in images:
        (root / p.name).symlink_to(p.resolve())
    config = BuildConfig(recipe=load_recipe(recipe), source="folder", root=str(root), depth="prior",
                         seed=seed, samples_per_image=samples_per_image,
                         crop=(crop, crop) if crop else None)
    build(config, out, preview=False, depth_options=DepthOptions(use_cache=False))
    return out


def train(run: Path, shards: Path, budget: Budget, seed: int, *, stages: tuple[str, ...],
          ablation: str | None = None, model: str | None = None, backbone: str | None = None,
          minutes: float | None = None) -> float | None:
    """Train ``stages`` of the tiny config into ``run``; return the seconds spent (None: none trained).

    A stage that already has a checkpoint (``--reuse``) is kept as it is.
    """
    from ssr_models.configs import load_train_config
    from ssr_models.run import stage_step, train_stage

    config = load_train_config("tiny").with_model(model, backbone).with_ablation(ablation)
    t0, trained = time.perf_counter(), False
    for stage in stages:
        if stage_step(run / stage) is not None:
            continue
        trained = True
        sc = config.stage(stage)
        sc = replace(sc, trainer={**sc.trainer, "tensorboard": False, "log_every": 10**6})
        train_stage(stage, sc, str(shards), run / stage, steps=budget.steps, seed=seed,
                    device="cpu", trainer_overrides={"max_minutes": minutes})
    return time.perf_counter() - t0 if trained else None


def with_shared_stages(run: Path, full: Path) -> Path:
    """Copy the full run's kernel and nbsr stages into ``run`` (a diffusion-only run)."""
    for stage in ("kernel", "nbsr"):
        if not (run / stage).exists():
            shutil.copytree(full / stage, run / stage)
    return run


def fit_backbone(folder: Path, shards: Path, budget: Budget, seed: int) -> float | None:
    """Fit the tiny latent backbone into ``folder`` unless it exists; return seconds (None: kept).

    Writes ``fit.json`` beside it (steps, losses, seconds) for the report.
    """
    from bench.latent_backbone_fit import fit_tiny_backbone
    from ssr_core.io import write_json_atomic

    if (folder / "fit.json").is_file():
        return None
    shutil.rmtree(folder, ignore_errors=True)  # a fit that stopped half-written
    fit = fit_tiny_backbone(folder, shards, minutes=budget.minutes, max_steps=budget.steps,
                            seed=seed)
    write_json_atomic(folder / "fit.json", {"vq_steps": fit.vq_steps, "unet_steps": fit.unet_steps,
                                            "seconds": fit.seconds, "vq_loss": fit.vq_loss,
                                            "unet_loss": fit.unet_loss})
    return fit.seconds


def train_all(runs: dict[str, Path], shards: Path, backbone: Path, budget: Budget,
              seed: int) -> dict[str, float]:
    """Train every run of ``runs`` (full, the ablations, the backbone, latent) on ``shards``.

    Returns: seconds per run that trained something (runs kept by ``--reuse`` are left out).
    """
    seconds: dict[str, float | None] = {"full": train(runs["full"], shards, budget, seed,
                             stages=("kernel", "nbsr", "diffusion"), minutes=budget.minutes)}
    for a in ABLATION_ROWS:
        seconds[a] = train(runs[a], shards, budget, seed, stages=("diffusion",), ablation=a,
                           minutes=budget.ablation_minutes)
        with_shared_stages(runs[a], runs["full"])
    seconds["backbone"] = fit_backbone(backbone, shards, budget, seed)
    seconds["latent"] = train(runs["latent"], shards, budget, seed, stages=("diffusion",),
                              model="ssr-latent-tiny", backbone=str(backbone), minutes=budget.minutes)
    with_shared_stages(runs["latent"], runs["full"])
    return {name: v for name, v in seconds.items() if v is not None}


def backbone_note(folder: Path) -> str:
    """Return the report line of the latent backbone's fit (``fit.json``)."""
    import json

    fit = json.loads((folder / "fit.json").read_text())
    return (f"latent backbone: fitted here on the training split in {fit['seconds']:.0f} s (VQ-f4 "
            f"autoencoder {fit['vq_steps']} steps, final L1 + commitment {fit['vq_loss']:.3f}; "
            f"latent SR UNet {fit['unet_steps']} steps, final epsilon MSE {fit['unet_loss']:.3f}), "
            "then frozen under latent SSR")


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) uint8, rounded as a saved image is."""
    return (x[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def stage_steps(run: Path) -> dict[str, int]:
    """Return {stage: optimizer steps done} of a run folder."""
    from ssr_models.run import stage_step

    return {s: stage_step(run / s) or 0 for s in ("kernel", "nbsr", "diffusion") if (run / s).is_dir()}


def score_images(test: Path, train_shards: Path, runs: dict[str, Path], backbone: Path,
                 eval_crop: int, seed: int, sample_steps: int | None = None
                 ) -> tuple[dict[str, float], list[str], tuple[float, float]]:
    """Return ({row: mean Y PSNR (crop 4)}, notes, latent denoising errors) over the test crops.

    The denoising errors: ``denoising_errors`` of the backbone alone and of latent SSR.

    ``sample_steps``: reverse steps of the diffusion samplers (None: each model's default).
    """
    from bench.latent_backbone_fit import denoising_errors, load_vq, vq_round_trip
    from eval.kernels.estimates import Geometry, mean_kernel
    from ssr_datasets.manifest import manifest_shards, read_manifest
    from ssr_datasets.shards import iter_shard
    from ssr_models.data import validation_batches
    from ssr_models.infer import SRPipeline
    from ssr_models.run import load_stage, read_run

    batches = list(validation_batches(test, eval_crop, 1, at_most=True))
    first = batches[0]
    s, k = first.scale, first.kernel_size
    geometry = Geometry(k, first.delta, s)
    fields = [x.kernel_field for info in manifest_shards(train_shards, read_manifest(train_shards))
              for x in iter_shard(train_shards / info.name)]
    mean_taps = torch.from_numpy(mean_kernel(fields, geometry)).float().reshape(1, k * k, 1, 1)
    # Kernel and NBSR stages are shared by every run (copied): load them once.
    kernel_net, nbsr = (load_stage(runs["full"] / st)[0].eval() for st in ("kernel", "nbsr"))
    delta = float(read_run(runs["full"] / "kernel")["delta"])

    def pipeline(method: str, diffusion: torch.nn.Module | None = None,
                 steps: int | None = sample_steps) -> SRPipeline:
        return SRPipeline(method, kernel_net, scale=s, restorer=nbsr, diffusion=diffusion,  # type: ignore[arg-type]
                          delta=delta, depth="prior", tile=4096, seed=seed, steps=steps)

    pipes = {"SVKR (DKENet + NBSR, 3 iterations)": pipeline("svkr")}
    notes = [f"{len(batches)} test images, {eval_crop} px HR centre crops (x{s}, K = {k})"]
    for row, name in [(PIXEL, "full"), *[(f"ablation {a}", a) for a in ABLATION_ROWS]]:
        model = load_stage(runs[name] / "diffusion")[0]
        pipes[row + SAMPLE] = pipeline("diffusion", model)
        pipes[row + ONE_STEP] = pipeline("diffusion", model, steps=1)
    latent = load_stage(runs["latent"] / "diffusion")[0].eval()
    pipes[LATENT_ROW] = pipeline("diffusion", latent)
    vq = load_vq(backbone)
    sums: dict[str, list[float]] = {}

    def add(row: str, hr: np.ndarray, sr: np.ndarray) -> None:
        sums.setdefault(row, []).append(psnr(hr, sr, crop_border=s, y_channel=True))

    with torch.no_grad():
        for i, b in enumerate(batches):
            hr, lr = to_uint8(b.hr), to_uint8(b.lr)
            up = torch.nn.functional.interpolate(b.lr, scale_factor=s, mode="bicubic",
                                                 align_corners=False)
            add("bicubic", hr, to_uint8(up))
            add("NBSR, true kernel field", hr, to_uint8(nbsr.super_resolve(b.lr, b.kernel_field)))
            taps = mean_taps.expand(1, k * k, *b.lr.shape[-2:])
            add("NBSR, mean training kernel", hr, to_uint8(nbsr.super_resolve(b.lr, taps)))
            # A seed per image: with one seed, every (same-size) crop gets the same noise and a
            # sample row averages a single draw (one run's latent rows moved by 4 dB with it).
            for row, pipe in pipes.items():
                add(row, hr, pipe(lr, seed=seed + i).sr)
            # SSR's trivial baseline: the backbone alone, with the pipeline's noise (its seed,
            # nothing drawn before sampling), so the two latent rows differ by the adapters only
            g = torch.Generator().manual_seed(seed + i)
            add(BACKBONE_ROW, hr, to_uint8(latent.sample(b.lr, None, None, steps=sample_steps,
                                                         generator=g, plain=True)))
            add("VQ round trip", hr, to_uint8(vq_round_trip(vq, b.hr)))
    out = {row: float(np.mean(v)) for row, v in sums.items()}
    out[LATENT_ROW] = out.pop(LATENT_ROW)  # after its baseline
    notes.append(f"latent backbone's VQ round trip of the test HR crops (ceiling of both latent "
                 f"rows): {out.pop('VQ round trip'):.2f} dB; latent SSR vs backbone alone: "
                 f"{out[LATENT_ROW] - out[BACKBONE_ROW]:+.2f} dB")
    return out, notes, denoising_errors(latent, batches, seed)


def kernel_errors(test: Path, train_shards: Path, full: Path) -> dict[str, float]:
    """Return {row: mean kernel L1} of DKENet and the mean training kernel on the test set."""
    from eval.kernels import parse_kernel_method, score_kernel_set, shard_kernel_set

    methods = [parse_kernel_method(f"mean:{train_shards}"), parse_kernel_method(f"DKENet={full}")]
    scores = score_kernel_set(shard_kernel_set(test), methods)
    return {f"kernel L1, {m.name}": float(m.mean("kernel_l1") or float("nan")) for m in scores}


def table(psnrs: dict[str, float], kernels: dict[str, float]) -> list[str]:
    """Return the markdown table lines: PSNR rows with delta vs bicubic, then the kernel rows."""
    base = psnrs["bicubic"]
    lines = ["| method | held-out PSNR Y, crop 4 (dB) | delta vs bicubic (dB) |",
             "|---|---:|---:|"]
    for row, v in psnrs.items():
        if not row.startswith("ablation"):
            lines.append(f"| {row} | {v:.2f} | {v - base:+.2f} |")
    lines += ["", "| kernel estimator | kernel L1 (sum of abs tap errors, 0..2) | vs mean kernel |",
              "|---|---:|---:|"]
    mean = kernels.get("kernel L1, mean", float("nan"))
    for row, v in kernels.items():
        lines.append(f"| {row.removeprefix('kernel L1, ')} | {v:.4f} | {v - mean:+.4f} |")
    return lines


def ablation_table(psnrs: dict[str, float]) -> list[str]:
    """Return the Table 2 rows at this scale (full = the pixel diffusion run, SVKR-refined K, D).

    Two PSNR columns per row: one sample, and the x_0 estimate at T (1 step); deltas vs bicubic.
    """
    base = psnrs["bicubic"]
    rows = [(a, f"ablation {a}") for a in ABLATION_ROWS]
    rows.append(("full (kernel + depth + SVKR)", PIXEL))
    lines = ["| Table 2 row | one sample: PSNR Y, crop 4 (dB) | delta vs bicubic (dB) "
             "| x0 at T (1 step): PSNR Y (dB) | delta vs bicubic (dB) |",
             "|---|---:|---:|---:|---:|"]
    for r, key in rows:
        a, b = psnrs[key + SAMPLE], psnrs[key + ONE_STEP]
        lines.append(f"| {r} | {a:.2f} | {a - base:+.2f} | {b:.2f} | {b - base:+.2f} |")
    return lines


def latent_table(denoise: tuple[float, float]) -> list[str]:
    """Return the held-out denoising error rows: the backbone alone, then latent SSR (Eq. 5)."""
    plain, ssr = denoise
    return ["| latent model | held-out epsilon MSE (Eq. 5 loss, 10 t, true K and D) | vs backbone alone |",
            "|---|---:|---:|", f"| {BACKBONE_ROW} | {plain:.4f} | |",
            f"| {LATENT_ROW} | {ssr:.4f} | {100 * (ssr / plain - 1):+.1f}% |"]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the check, print (and with ``--out`` write) its report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of HR images (80/20 split)")
    ap.add_argument("--minutes", type=float, default=3.5,
                    help="wall-clock minutes per stage (default 3.5: 7 trainings + build + scoring "
                         "<= 30 min on 2 cores)")
    ap.add_argument("--ablation-minutes", type=float, default=None,
                    help="minutes per Table 2 ablation run (default: --minutes)")
    ap.add_argument("--steps", type=int, default=3000, help="schedule length per stage (default 3000)")
    ap.add_argument("--recipe", default="ssr-clean", help="degradation recipe (default ssr-clean)")
    ap.add_argument("--train-crop", type=int, default=128, help="HR crop of training samples (px)")
    ap.add_argument("--samples-per-image", type=int, default=2)
    ap.add_argument("--eval-crop", type=int, default=64,
                    help="HR centre crop scored per test image (px, default 64)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 step per stage, 2 reverse steps, no time budget, 32 px crops")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--work", type=Path, default=None, help="keep shards and runs here (default: temp)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the shards and the trained stages an earlier run left in --work "
                         "(build and train only what is missing; give the same options)")
    ap.add_argument("--out", type=Path, default=None, help="also write the report (markdown) here")
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        ap.error(f"--data {args.data}: no such folder")
    if args.reuse and (args.work is None or not (args.work / "test").is_dir()):
        ap.error("--reuse needs the --work folder of an earlier run")
    torch.set_flush_denormal(True)  # as ssr-train: DKENet's softmax tails are denormal on x86
    threads = torch.get_num_threads()
    if args.threads:
        # 1 on a shared, oversubscribed machine: 2 threads on 2 busy cores cost 7x the CPU time
        # of 1 (the --quick run: 69 s vs 10 s of user time at load 9).
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)  # callers in the same process (tests) keep theirs


def _run(args: argparse.Namespace) -> int:
    """Split, build, train, score and report (see the module docstring)."""
    if args.quick:
        budget = Budget(None, None, 1)
        args.train_crop, args.eval_crop, args.samples_per_image = 64, 32, 1
    else:
        budget = Budget(args.minutes, args.ablation_minutes or args.minutes, args.steps)
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="ssr-learning-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        train_imgs, test_imgs = split_images(args.data, args.seed)
        tr, te = work / "train", work / "test"
        runs = {name: work / "runs" / name for name in ("full", *ABLATION_ROWS, "latent")}
        if not args.reuse:
            build_set(train_imgs, tr, args.recipe, args.seed, args.train_crop, args.samples_per_image)
            build_set(test_imgs, te, args.recipe, args.seed + 1, None, 1)
        t_build = time.perf_counter() - t_start
        seconds = train_all(runs, tr, work / "backbone", budget, args.seed)
        t_score = time.perf_counter()
        psnrs, notes, denoise = score_images(te, tr, runs, work / "backbone", args.eval_crop, args.seed,
                                    2 if args.quick else None)
        notes.insert(0, backbone_note(work / "backbone"))
        kernels = kernel_errors(te, tr, runs["full"])
        t_score = time.perf_counter() - t_score
        steps = {name: stage_steps(run) for name, run in runs.items()}
    total = time.perf_counter() - t_start
    load_end = os.getloadavg()
    report = [f"# Learning check ({args.data.name}: {len(train_imgs)} train / {len(test_imgs)} "
              f"test images, recipe {args.recipe}, seed {args.seed})", ""]
    report += table(psnrs, kernels) + [""] + ablation_table(psnrs) + [""] + latent_table(denoise)
    report += [""]
    if budget.minutes is None:
        report.append(f"budget: --quick, {budget.steps} steps per stage (a smoke run, not a measurement)")
    else:
        reduced = budget.ablation_minutes < budget.minutes
        report.append(f"budget: {budget.minutes:g} min per stage (schedule {budget.steps} steps), "
                      f"Table 2 ablations {budget.ablation_minutes:g} min each"
                      + (" (REDUCED budget: compare them with each other, not with the full run)"
                         if reduced else ""))
    report.append("steps done: " + "; ".join(
        f"{n}: " + ", ".join(f"{s} {v}" for s, v in st.items()) for n, st in steps.items()))
    report += notes
    if args.reuse:
        report.append(f"--reuse: shards and the stages trained before kept from {args.work} "
                      "(their training times are not in the wall line)")
    report.append(f"wall: build {t_build:.0f} s, training " + (", ".join(
        f"{n} {v:.0f} s" for n, v in seconds.items()) or "none")
        + f", scoring {t_score:.0f} s, total {total / 60:.1f} min")
    report.append(f"load average (1/5/15 min): start {load_start[0]:.1f}/{load_start[1]:.1f}/"
                  f"{load_start[2]:.1f}, end {load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f} "
                  f"on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    text = "\n".join(report)
    print(text)
    if args.out is not None:
        from ssr_core.io import atomic_file

        with atomic_file(args.out) as f:
            f.write((text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
