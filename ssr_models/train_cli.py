"""The ``ssr-train`` command: train DKENet, NBSR and the diffusion model from shard sets.

Thin: parse, load the config, call ``ssr_models.run.train_stage`` per stage, summarize.
Library errors (SsrError) become click errors through ``degrade.cli_support.library_errors``.

Multi-process training (DDP)::

    torchrun --nproc-per-node N -m ssr_models.train_cli --shards out/train --stage all \\
        --config paper --out runs/paper --device cuda

Under torchrun (RANK and WORLD_SIZE in the environment) the process group is initialised
(NCCL on CUDA, gloo on CPU), each rank reads its own part of the shards and rank 0 writes
the run folders. ``batch_size`` in the config is per rank.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from degrade.cli_support import device_option, library_errors
from ssr_datasets.sources import SOURCE_NAMES as _SOURCES

_STAGES = ("kernel", "nbsr", "diffusion")  # = ssr_models.configs.STAGES (kept import-free for --help)
_ONLINE_DEPTH = ("gt", "prior", "cache")  # = ssr_models.online.ONLINE_DEPTH (import-free --help)


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
@click.option("--val-shards", default=None, metavar="PATTERN_OR_URL",
              help="Validation shards (centre crops); none given = no validation.")
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
@click.option("--depth-cache", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="With --online: depth cache folder [default: $SSR_BENCH_CACHE/depth or "
                   "~/.cache/ssr-bench/depth].")
@click.pass_context
@library_errors
def main(ctx: click.Context, shards: str | None, stage: str | None, config_name: str,
         out: Path | None, val_shards: str | None, resume: bool, steps: int | None,
         device: str, seed: int | None, online: bool, source: str | None,
         root: Path | None, split: str | None, recipe: str | None, depth: str | None,
         depth_cache: Path | None) -> None:
    """Train the SSR models on degraded shard sets (ssr-infer reads OUT/<stage>).

    \b
    Quick start (CPU, minutes):
      degrade build --out out/sample
      ssr-train --shards out/sample --stage all --config tiny --out runs/tiny
      ssr-train --online --source sample --stage kernel --config tiny --out runs/online

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
    from .run import train_stage

    spec = None
    if online:
        spec = OnlineSpec(source=str(source), root=None if root is None else str(root),
                          split=split, recipe=recipe or "ssr", depth=depth or "prior",  # type: ignore[arg-type]
                          depth_cache=None if depth_cache is None else str(depth_cache))

    config = load_train_config(config_name)
    stages = [s for s in STAGES if s in config.stages] if stage == "all" else [stage]
    for s in stages:  # fail on a missing stage before any training
        config.stage(s)
    import torch

    # Denormal floats (DKENet's 441-tap softmax produces them) make x86 CPU arithmetic up to
    # 50x slower; flushing them to zero changes no result that matters. No effect on CUDA.
    torch.set_flush_denormal(True)
    distributed, device = _init_distributed(device)
    try:
        for s in stages:
            result = train_stage(s, config.stage(s), shards, out / s, val_shards=val_shards,
                                 resume=resume, steps=steps, seed=seed, device=device,
                                 online=spec)
            if _is_main():
                verb = "already at" if result.skipped else "trained to"
                click.echo(f"{s}: {verb} step {result.step} -> {result.folder}")
    finally:
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


@main.command("convert-checkpoint")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@library_errors
def convert_checkpoint_cmd(path: Path) -> None:
    """Convert your own old (format-1) checkpoints to the safe format 2, in place.

    PATH is a .pt file, a stage folder or a run folder (every *.pt below it). This UNPICKLES
    the files, which runs any code they carry: use it only on checkpoints you trust (that
    you trained yourself). Files already in format 2 are left as they are.
    """
    from .checkpoint import convert_checkpoint

    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*.pt") if not p.name.startswith("."))
    if not files:
        raise click.ClickException(f"{path}: no .pt files to convert")
    for f in files:
        convert_checkpoint(f)
        click.echo(f"converted (trusted, unpickled): {f}")


def _is_main() -> bool:
    return int(os.environ.get("RANK", 0)) == 0


if __name__ == "__main__":
    main()
