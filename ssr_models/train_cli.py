"""The ``ssr-train`` command: train DKENet, NBSR and the diffusion model from shard sets.

Thin: parse, load the config, call ``ssr_models.run.train_stage`` per stage, summarize.
Library errors (SsrError) become click errors through ``ssr_core.cli.library_errors``.

Multi-process training (DDP)::

    torchrun --nproc-per-node N -m ssr_models.train_cli --shards out/train --stage all \\
        --config paper --out runs/paper --device cuda

Under torchrun (RANK and WORLD_SIZE in the environment) the process group is initialised
(NCCL on CUDA, gloo on CPU), each rank reads its own part of the shards and rank 0 writes
the run folders. ``batch_size`` in the config is per rank.

Ctrl-C (or SIGTERM) finishes the step in progress, checkpoints it and prints where the
checkpoint is and the exact command that resumes (exit code 130, or 143 for SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ssr_core.cli import depth_cache_option, device_option, library_errors
from ssr_datasets.sources import SOURCE_NAMES as _SOURCES

from . import MODELS
from .configs import ABLATIONS, ONLINE_DEPTH, STAGES

# The choices come from their registries and Literals (torch-free modules: --help stays fast).
_STAGES = STAGES
_ONLINE_DEPTH = ONLINE_DEPTH


def _init_distributed(device: str) -> tuple[bool, str]:
    """Initialise torch.distributed when launched by torchrun; return (whether it did, device).

    ``device`` is resolved ("cpu", "cuda" or "cuda:N"); under torchrun plain "cuda" becomes
    ``cuda:LOCAL_RANK``, one GPU per process.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False, device
    import torch
    import torch.distributed as dist

    if device == "cuda":
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return True, device


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             invoke_without_command=True, subcommand_metavar="[convert-checkpoint PATH]")
@click.option("--shards", metavar="PATTERN_OR_URL",
              help="Training shards (required): a built folder, a brace pattern, a .tar path or URL.")
@click.option("--stage", type=click.Choice((*_STAGES, "all")),
              help="Stage to train (required); 'all' runs kernel, nbsr, diffusion in that order.")
@click.option("--config", "config_name", default="tiny", show_default=True,
              metavar="tiny|paper|FILE.yaml", help="Built-in config name or a YAML file.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Run folder (required); each stage writes OUT/<stage>.")
@click.option("--val", "--val-shards", "val_shards", default=None, metavar="DIR_OR_PATTERN",
              help="Held-out validation shards (a built folder, pattern or URL; whole images), "
                   "scored every val_every steps: Y PSNR/SSIM (crop = scale) for images, kernel "
                   "L1 for DKENet. None given = no validation and no best.pt.")
@click.option("--resume", is_flag=True,
              help="Continue each stage from its last.pt; finished stages are skipped.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Optimizer steps per stage (overrides the config).")
@device_option(default="auto", what="Torch device (under torchrun, cuda means cuda:LOCAL_RANK)")
@click.option("--seed", type=click.IntRange(min=0), default=None,
              help="Seed of weights, data order and crops (overrides the config's, which is 0 "
                   "in the built-ins).")
@click.option("--online", is_flag=True,
              help="Degrade HR images online instead of reading shards: fresh crops, kernel "
                   "fields, noise and JPEG every step (needs --source; JPEG path: the config's "
                   "data.online_jpeg, cpu or kornia).")
@click.option("--source", type=click.Choice(_SOURCES), default=None,
              help="With --online: where HR images come from (as in degrade build).")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --online: the source's data folder (sources that need one).")
@click.option("--split", default=None, help="With --online: the source's split (default: its own).")
@click.option("--recipe", default=None, metavar="NAME|FILE.yaml",
              help="With --online: degradation recipe [default: ssr].")
@click.option("--depth", type=click.Choice(_ONLINE_DEPTH), default=None,
              help="With --online: nearness from 'gt' (the source's depth; images without it "
                   "are left out), 'prior' (weight-free) or 'cache' (a learned model with local "
                   "weights); prior and learned maps are computed once per image and kept in "
                   "the depth cache [default: prior].")
@depth_cache_option(when="With --online: ")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Wall-clock budget per stage, in minutes: when spent, the step in progress "
                   "is finished, checkpointed and the stage stops (--resume continues it).")
@click.option("--accum-steps", type=click.IntRange(min=1), default=None,
              help="Batches per optimizer step (gradient accumulation): the effective batch "
                   "is accum-steps x batch_size crops per rank [default: the config's, 1].")
@click.option("--keep-last", type=click.IntRange(min=0), default=None,
              help="Keep only the newest N ckpt-*.pt files per stage (0 = all); last.pt and "
                   "best.pt are always kept [default: the config's, 0].")
@click.option("--best-metric", default=None, metavar="NAME[:max|min]",
              help="Validation value that picks best.pt: psnr_y, ssim_y (dB / 0..1, higher is "
                   "better), lpips, kernel_l1 (lower), or NAME:max / NAME:min [default: auto = "
                   "psnr_y for image stages, kernel_l1 for the kernel stage].")
@click.option("--model", type=click.Choice(tuple(MODELS)), default=None,
              help="Train this registered model in the stage that trains its kind (its data and "
                   "trainer settings from the config), e.g. ssr-latent for the diffusion stage: "
                   "the paper's SSR on a pretrained latent backbone (needs --backbone).")
@click.option("--backbone", default=None, metavar="DIR|ORG/NAME",
              help="Pretrained backbone of an ssr-latent model: a folder in the diffusers "
                   "pipeline layout (vqvae/, unet/, scheduler/ with config.json + safetensors) "
                   "or a hub id in the Hugging Face cache [default: "
                   "CompVis/ldm-super-resolution-4x-openimages]. Never downloads.")
@click.option("--ablation", type=click.Choice(tuple(ABLATIONS)), default=None,
              help="Table 2 ablation of the diffusion stage: di-kernel-only (no depth, no SVKR), "
                   "depth-only (no kernel, no SVKR), no-svkr. Default: the full model.")
@click.pass_context
@library_errors
def main(ctx: click.Context, shards: str | None, stage: str | None, config_name: str,
         out: Path | None, val_shards: str | None, resume: bool, steps: int | None,
         device: str, seed: int | None, online: bool, source: str | None,
         root: Path | None, split: str | None, recipe: str | None, depth: str | None,
         depth_cache: Path | None, max_minutes: float | None, accum_steps: int | None,
         keep_last: int | None, best_metric: str | None, model: str | None, backbone: str | None,
         ablation: str | None) -> None:
    """Train the SSR models on degraded shard sets (ssr-infer reads OUT/<stage>).

    \b
    Quick start (CPU, under a minute on 2 cores; smoke-test models, --steps 300 trains longer):
      degrade build --out out/sample
      ssr-train --shards out/sample --stage all --config tiny --out runs/tiny
      ssr-train --online --source sample --stage kernel --config tiny --out runs/online

    \b
    Progress goes to stderr: a live bar on a terminal, else a line every log_every steps.
    --resume continues each stage from its last.pt; only --steps, --max-minutes and
    --keep-last may differ from the run's settings (a new --steps makes the learning-rate
    schedule decay to 0 at the new total).
    With --val, each validation that beats the best so far writes OUT/<stage>/best.pt, which
    ssr-infer and ssr-eval load by default (else last.pt).
    A Table 2 ablation row (one run each; ssr-eval tables lists them; SHARDS: your shards):
      ssr-train --shards SHARDS --stage all --config paper --ablation no-svkr --out runs/no-svkr

    \b
    The paper's SSR (AMF on a pretrained latent SR backbone, diffusers layout, safetensors):
      ssr-train --shards SHARDS --stage all --model ssr-latent --backbone DIR --out runs/latent

    \b
    Old checkpoints (format 1, before safe loading) are refused (loading them needs pickle);
    convert your own once with: ssr-train convert-checkpoint RUN_OR_FILE
    """
    if ctx.invoked_subcommand is not None:
        return
    data_option = ("--source", source) if online else ("--shards", shards)
    for name, value in (data_option, ("--stage", stage), ("--out", out)):
        if value is None:
            raise click.UsageError(f"Missing option '{name}'.", ctx)
    online_only = {"--source": source, "--root": root, "--split": split, "--recipe": recipe,
                   "--depth": depth, "--depth-cache": depth_cache}
    if online and shards is not None:
        raise click.UsageError("--online trains from --source images; drop --shards", ctx)
    given = [name for name, value in online_only.items() if value is not None]
    if given and not online:
        raise click.UsageError(f"{', '.join(given)} only apply with --online", ctx)
    from .configs import STAGES, load_train_config
    from .online import OnlineSpec
    from .run import LAST, train_stage
    from .train_events import TrainingInterrupted
    from .train_progress import TrainProgress, stage_summary

    spec = None
    if online:
        spec = OnlineSpec(source=str(source), root=None if root is None else str(root),
                          split=split, recipe=recipe or "ssr", depth=depth or "prior",  # type: ignore[arg-type]
                          depth_cache=None if depth_cache is None else str(depth_cache))

    config = load_train_config(config_name).with_model(model, backbone).with_ablation(ablation)
    overrides = {"max_minutes": max_minutes, "accum_steps": accum_steps, "keep_last": keep_last,
                 "best_metric": best_metric}
    stages = [s for s in STAGES if s in config.stages] if stage == "all" else [stage]
    for s in stages:  # fail on a missing stage before any training
        config.stage(s)
    if ablation and "diffusion" not in stages:
        raise click.UsageError("--ablation changes the diffusion stage: use --stage diffusion "
                               "or --stage all", ctx)
    import torch

    # Denormal floats (DKENet's 441-tap softmax produces them) make x86 CPU arithmetic up to
    # 50x slower; flushing them to zero changes no result that matters. No effect on CUDA.
    torch.set_flush_denormal(True)
    distributed, device = _init_distributed(device)
    current = stages[0]
    try:
        with _warnings_to_stderr():
            for current in stages:
                progress = TrainProgress(current) if _is_main() else None
                try:
                    result = train_stage(current, config.stage(current), shards, out / current,
                                         val_shards=val_shards, resume=resume, steps=steps,
                                         seed=seed, device=device, online=spec,
                                         callback=progress, trainer_overrides=overrides)
                finally:
                    if progress is not None:
                        progress.close()
                if _is_main():
                    for line, warn in stage_summary(current, result):
                        click.secho(line, fg="yellow" if warn else None, err=warn)
    except TrainingInterrupted as exc:
        _report_stop(ctx, exc.signal_name, current, exc.checkpoint, exc.step)
        ctx.exit(143 if exc.signal_name == "SIGTERM" else 130)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the training loop started
        last = out / current / LAST
        _report_stop(ctx, "SIGINT", current, last if last.is_file() else None)
        ctx.exit(130)
    finally:
        if distributed:
            from .trainer import end_distributed

            end_distributed()


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """Show library warnings (a small shard set, AMP on CPU) as one yellow line each."""
    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        if _is_main():
            click.secho(f"warning: {message}", fg="yellow", err=True)

    with warnings.catch_warnings():  # restores showwarning afterwards
        warnings.showwarning = show
        yield


def _resume_command(ctx: click.Context) -> str:
    """Return the command line that resumes this run (torchrun's when launched by it).

    Every option given on the command line is repeated, so that the resumed run has the same
    resolved settings (which resume requires); defaults stay implicit.
    """
    args: list[str] = []
    for param in ctx.command.params:
        name = param.name or ""
        value = ctx.params.get(name)
        if (not isinstance(param, click.Option) or name == "resume" or value is None
                or value is False
                or ctx.get_parameter_source(name) is click.core.ParameterSource.DEFAULT):
            continue
        args += [param.opts[0]] if value is True else [param.opts[0], str(value)]
    if "WORLD_SIZE" in os.environ:
        head = ["torchrun", "--nproc-per-node", os.environ["WORLD_SIZE"], "-m",
                "ssr_models.train_cli"]
    else:
        head = ["ssr-train"]
    return shlex.join([*head, *args, "--resume"])


def _report_stop(ctx: click.Context, signal_name: str, stage: str, checkpoint: Path | None,
                 step: int | None = None) -> None:
    """Say where the last checkpoint is and how to resume (rank 0, stderr)."""
    if not _is_main():
        return
    from .run import stage_step

    where = "no checkpoint yet (the stage starts over)"
    if checkpoint is not None:
        step = stage_step(checkpoint.parent) if step is None else step
        where = f"last checkpoint: {checkpoint} (step {step})"
    click.echo(f"\ninterrupted by {signal_name} in stage {stage}; {where}", err=True)
    click.echo(f"resume with:\n  {_resume_command(ctx)}", err=True)


@main.command("convert-checkpoint")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@library_errors
def convert_checkpoint_cmd(path: Path) -> None:
    """Convert old (format-1) checkpoints to the safe format 2, in place.

    PATH is a .pt file, a stage folder or a run folder (every *.pt below it). Runs no code
    from the files: they are read by torch's restricted unpickler, allowing only the numpy
    arrays format 1 held; anything else is refused. Files already in format 2 are kept.
    """
    from .checkpoint import convert_checkpoint

    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*.pt") if not p.name.startswith("."))
    if not files:
        raise click.ClickException(f"{path}: no .pt files to convert")
    for f in files:
        done = convert_checkpoint(f)
        click.echo(f"{'converted' if done else 'already format 2, kept'}: {f}")


def _is_main() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


if __name__ == "__main__":
    main()
