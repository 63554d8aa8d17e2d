"""The run folder: what ``ssr-train`` leaves per stage and ``ssr-infer`` reads back.

Contract (one folder per stage, ``OUT/kernel``, ``OUT/nbsr``, ``OUT/diffusion``):

* ``last.pt`` and ``ckpt-{step:07d}.pt``: Trainer checkpoints (``ssr_models.trainer``);
  ``last.pt`` names the newest, ``best.pt`` (when validation ran) the best by ``best_metric``
  (``ssr_models.retention``). Inference loads ``best.pt`` when present, else ``last.pt``
  (:func:`load_stage` says which), and the ``ema`` weights by default.
* ``config.json``, ``metrics.jsonl``: written by the Trainer.
* ``run.json`` (written atomically, sorted keys)::

      {"stage": "kernel" | "nbsr" | "diffusion",
       "model": registry name (ssr_models.MODELS),
       "model_config": model.config.to_dict(),   # create_model(model, **model_config) rebuilds it
       "scale": int, "kernel_size": int, "delta": float,   # of the training shards (HR px)
       "shards": the --shards argument as given ("online:SOURCE" with --online),
       "val_shards": the --val-shards one or null,
       "online": only with --online: OnlineSpec as a dict (source, root, split, recipe,
                 depth, jpeg, depth_cache),
       "trainer": TrainerConfig as a dict, "data": the DataConfig used (after small-set fixes),
       "versions": {"ssr-bench", "torch", "numpy", "python", "run_format"}}

``train_stage`` makes one such folder: stream(s), model, Trainer, run.json, fit; with
``resume=True`` it continues from ``last.pt`` and skips a stage whose ``last.pt`` already
reached the configured steps. A resume whose settings (run.json without ``versions``) differ
from the stage's in anything but ``trainer.steps`` is refused before anything is written, and
the message names every differing key.

A shard set with fewer samples than one batch per rank (the 5-image sample set with a batch of
8) trains with a warning: each epoch repeats the samples (with other random crops) up to the
smallest multiple of the set that fills a batch.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ssr_core.errors import ConfigError, InputError
from ssr_core.io import write_json_atomic
from ssr_datasets.manifest import read_manifest
from ssr_datasets.storage import is_remote

from . import create_model
from .checkpoint import load_checkpoint, refuse_resume_changes
from .configs import STAGES, DataConfig
from .online import OnlineSpec, OnlineStream
from .retention import BEST, LAST, stage_checkpoint
from .trainer_config import TrainerConfig

__all__ = ["BEST", "LAST", "RUN_FILE", "RUN_FORMAT", "StageResult", "checkpoint_note", "load_model_from_run",
           "load_stage", "read_run", "run_versions", "stage_step", "train_stage", "write_run"]

RUN_FILE = "run.json"
RUN_FORMAT = 1
_KEYS = ("stage", "model", "model_config", "scale", "kernel_size", "delta", "shards", "trainer",
         "versions")


def run_versions() -> dict[str, str]:
    """Return the versions that produced a run (package, torch, numpy, python, run format)."""
    try:
        own = metadata.version("ssr-bench")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        own = "unknown"
    return {"ssr-bench": own, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "run_format": str(RUN_FORMAT)}


def write_run(folder: str | Path, *, stage: str, model: str, model_config: dict[str, Any],
              scale: int, kernel_size: int, delta: float, shards: str,
              trainer: TrainerConfig | dict[str, Any], val_shards: str | None = None,
              online: dict[str, Any] | None = None,
              data: DataConfig | dict[str, Any] | None = None) -> Path:
    """Write ``folder/run.json`` atomically and return its path (see the module docstring).

    Raises:
        ConfigError: ``stage`` is not one of STAGES.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r}; choose one of: {', '.join(STAGES)}")
    trainer_dict = dataclasses.asdict(trainer) if dataclasses.is_dataclass(trainer) else dict(trainer)
    record = {"stage": stage, "model": model, "model_config": model_config, "scale": int(scale),
              "kernel_size": int(kernel_size), "delta": float(delta), "shards": str(shards),
              "val_shards": None if val_shards is None else str(val_shards),
              "trainer": trainer_dict, "versions": run_versions()}
    if online is not None:  # what ssr-train --online degraded from (source, recipe, depth, jpeg)
        record["online"] = online
    if data is not None:
        record["data"] = dataclasses.asdict(data) if dataclasses.is_dataclass(data) else dict(data)
    path = Path(folder) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, record)
    return path


def read_run(folder: str | Path) -> dict[str, Any]:
    """Return the parsed ``folder/run.json``.

    Raises:
        InputError: No run.json, not JSON, or a key of the contract missing.
    """
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        raise InputError(str(path), "no run.json: not an ssr-train stage folder "
                                    "(give OUT/kernel, OUT/nbsr or OUT/diffusion)")
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(str(path), f"unreadable run.json: {exc}") from None
    missing = [k for k in _KEYS if k not in run]
    if missing:
        raise InputError(str(path), f"run.json lacks {', '.join(missing)}")
    return run


def stage_step(folder: str | Path) -> int | None:
    """Return the step of ``folder/last.pt``, or None when the stage has no checkpoint yet."""
    path = Path(folder) / LAST
    return int(load_checkpoint(path)["step"]) if path.is_file() else None


def checkpoint_note(path: Path, ckpt: dict[str, Any]) -> str:
    """Return e.g. ``"kernel/best.pt (step 40, best val kernel_l1 0.4123)"`` for a loaded checkpoint."""
    text = f"{path.parent.name}/{path.name} (step {int(ckpt['step'])}"
    best = ckpt.get("best")
    if path.name == BEST and isinstance(best, dict):
        text += f", best val {best.get('metric')} {float(best.get('value', float('nan'))):.4g}"
    return text + ")"


def load_stage(folder: str | Path, use_ema: bool = True, map_location: str | torch.device = "cpu",
               which: Literal["auto", "best", "last"] = "auto",
               model_overrides: dict[str, Any] | None = None) -> tuple[nn.Module, str]:
    """Rebuild a stage's model from ``run.json`` and load its checkpoint (eval mode).

    Args:
        folder: A stage folder (``OUT/kernel`` ...).
        use_ema: Load the EMA weights (what validation and inference use) rather than the raw ones.
        map_location: Where the weights (and the returned model) go.
        which: "auto" = ``best.pt`` when the stage has one, else ``last.pt``; or either one.
        model_overrides: Config values replacing run.json's (``backbone``: where an ssr-latent
            run's backbone lives on this machine; its recorded sha256 is still checked).

    Returns:
        The model and a note naming the checkpoint used (:func:`checkpoint_note`).

    Raises:
        InputError: No run.json or no such checkpoint.
        ConfigError: A checkpoint that is not a Trainer's, or weights whose keys/shapes do not
            match the rebuilt model (strict loading).
    """
    run = read_run(folder)
    ckpt_path = stage_checkpoint(folder, which)
    if not ckpt_path.is_file():
        raise InputError(str(ckpt_path), "no last.pt: the stage has not checkpointed yet"
                         if ckpt_path.name == LAST else
                         "no best.pt: the stage never validated (train it with --val)")
    ckpt = load_checkpoint(ckpt_path, map_location=map_location)
    # JSON turned the config's tuples into lists; not every factory converts them back.
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in run["model_config"].items()}
    model = create_model(run["model"], **{**config, **(model_overrides or {})})
    try:
        model.load_state_dict(ckpt["ema" if use_ema else "model"], strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{ckpt_path}: weights do not match model {run['model']!r} "
                          f"rebuilt from run.json: {str(exc).splitlines()[0]}") from None
    except ConfigError as exc:  # a model that refuses the weights' format says why
        raise ConfigError(f"{ckpt_path}: {exc}") from None
    return model.to(map_location).eval(), checkpoint_note(ckpt_path, ckpt)


def load_model_from_run(folder: str | Path, use_ema: bool = True,
                        map_location: str | torch.device = "cpu",
                        which: Literal["auto", "best", "last"] = "auto") -> nn.Module:
    """Return :func:`load_stage`'s model alone (``best.pt`` when present, else ``last.pt``)."""
    return load_stage(folder, use_ema, map_location, which)[0]


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What ``train_stage`` did.

    Attributes:
        folder: The stage folder. step: The step reached. skipped: Already at its steps.
        seconds: Wall time of ``fit``. data_wait_share: Fraction of step time spent
            waiting for batches (0..1). val: The last validation means (``val/...``; empty
            without validation). note: What the Trainer said about an extended schedule.
        stop_note: Why training stopped before its steps (the time budget), or None.
        best: ``{"metric", "direction", "value", "step"}`` of ``best.pt``, or None.
    """

    folder: Path
    step: int
    skipped: bool
    seconds: float = 0.0
    data_wait_share: float = 0.0
    val: dict[str, float] = dataclasses.field(default_factory=dict)
    note: str | None = None
    stop_note: str | None = None
    best: dict[str, Any] | None = None


def _check_shards_exist(shards: str) -> None:
    """Refuse a local --shards path that does not exist, before any reader sees it."""
    text = str(shards)
    if is_remote(text) or text.startswith("pipe:") or "{" in text or Path(text).exists():
        return
    raise InputError(text, "no such shard folder or .tar file (build one with "
                           "`degrade build --out DIR`, then pass --shards DIR)")


def _shard_geometry(shards: str) -> tuple[int, int, float]:
    """Return (scale, kernel_size, delta) of the first sample of ``shards``."""
    from .data import validation_batches

    _check_shards_exist(shards)
    batch = next(iter(validation_batches(shards, crop_hr=None, batch_size=1)), None)
    if batch is None:
        raise InputError(str(shards), "the shards hold no samples")
    return batch.scale, batch.kernel_size, batch.delta


def _check_model_matches(model: nn.Module, scale: int, kernel_size: int, delta: float) -> None:
    cfg = model.config
    for name, want in (("scale", scale), ("kernel_size", kernel_size)):
        got = getattr(cfg, name, want)
        if got != want:
            raise ConfigError(f"model {name} {got} != the shards' {name} {want}: set "
                              f"model_overrides.{name} in the config")
    got_delta = getattr(cfg, "resolved_delta", delta)
    if abs(got_delta - delta) > 1e-6:
        raise ConfigError(f"model delta {got_delta} != the shards' delta {delta}: set "
                          "model_overrides.delta in the config")


def fill_small_set(data: DataConfig, shards: str, world_size: int) -> tuple[DataConfig, str | None]:
    """Return ``data`` with ``epoch_samples`` raised so that a small set fills one batch per rank.

    A local shard folder with n samples and ``images = batch_size / crops_per_image`` images
    per batch on each of ``world_size`` ranks needs ``images * world_size`` samples per epoch;
    when n is smaller, epochs repeat the set: ``epoch_samples`` becomes the smallest multiple
    of n that is at least that (every sample equally often). Returns the new config and a
    warning, or ``data`` and None when nothing changes (or the count is unknown: remote shards).
    """
    need = data.batch_size // data.crops_per_image * world_size
    have = data.epoch_samples
    if have is None:
        folder = Path(shards)
        if is_remote(str(shards)) or not folder.is_dir():
            return data, None
        have = int(read_manifest(folder)["totals"]["samples"])
    if have >= need or have < 1:
        return data, None
    repeated = -(-need // have) * have
    return dataclasses.replace(data, epoch_samples=repeated), (
        f"{shards} holds {have} sample(s), fewer than one batch of {data.batch_size} "
        f"({need} image(s) over {world_size} rank(s)); each epoch repeats them {repeated // have}x "
        "(other random crops each time). Fine for a smoke run; use more images to train for real")


def train_stage(stage: str, stage_config: Any, shards: str | None, folder: str | Path, *,
                val_shards: str | None = None, resume: bool = False, steps: int | None = None,
                seed: int | None = None, device: str | None = None,
                online: OnlineSpec | None = None, callback: Any = None,
                trainer_overrides: dict[str, Any] | None = None) -> StageResult:
    """Train one stage into ``folder`` (run.json + Trainer files); return where it stopped.

    Args:
        stage: One of STAGES. stage_config: its ``configs.StageConfig``.
        shards, val_shards: Shard folder/pattern/URL (training; held-out validation, whole
            images unless ``data.val_crop_hr``; no validation when None).
        resume: Continue from ``folder/last.pt`` (a stage already at its steps is skipped).
        steps, seed: Override the config's trainer steps/seed when not None.
        device: torch device ("cpu", "cuda"); None = the Trainer's default.
        online: Train from HR images degraded online (``ssr_models.online``) instead of
            ``shards`` (then None); the JPEG path is the stage's ``data.online_jpeg``.
        callback: Receives the Trainer's events (``ssr_models.train_events.TrainEvent``).
        trainer_overrides: Other TrainerConfig fields to override when not None (the CLI's
            ``--max-minutes``, ``--accum-steps``, ``--keep-last``, ``--best-metric``).

    Raises:
        ConfigError: ``folder`` already holds a checkpoint and ``resume`` is False, a resume
            with other settings than the stage's (but the steps), or the model does not
            match the shards.
        InputError: Missing shards, or a checkpoint that needs pickle (refused).
        TrainingInterrupted: SIGINT/SIGTERM; the step in progress was checkpointed.
    """
    import torch.distributed as dist

    from .data import TrainingStream, validation_batches
    from .trainer import Trainer

    folder = Path(folder)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    tcfg = stage_config.trainer_config(folder, steps=steps, seed=seed, **(trainer_overrides or {}))
    done = stage_step(folder)
    if done is not None and not resume:
        raise ConfigError(f"{folder} already holds a checkpoint (step {done}); pass --resume "
                          "to continue it or choose another --out")
    if done is not None and done >= tcfg.steps:
        return StageResult(folder, done, skipped=True)
    if online is not None:
        online = dataclasses.replace(online, jpeg=stage_config.data.online_jpeg)
        from degrade.recipes import load_recipe

        recipe = load_recipe(online.recipe)
        scale, kernel_size, delta = recipe.scale, recipe.kernel_size, recipe.delta_px
    elif shards is None:
        raise ConfigError("give shards or an online spec")
    else:
        scale, kernel_size, delta = _shard_geometry(shards)
    # Seed before building: the weights' initialisation draws from the global torch RNG
    # (the Trainer seeds again, after the model exists).
    torch.manual_seed(tcfg.seed)
    model = create_model(stage_config.model, **stage_config.model_overrides)
    _check_model_matches(model, scale, kernel_size, delta)
    data, warning = (stage_config.data, None) if online is not None else fill_small_set(
        stage_config.data, shards, world)
    shards_text = str(shards) if online is None else f"online:{online.source}"
    record = {"stage": stage, "model": stage_config.model, "model_config": model.config.to_dict(),
              "scale": scale, "kernel_size": kernel_size, "delta": delta, "shards": shards_text,
              "val_shards": None if val_shards is None else str(val_shards),
              "trainer": dataclasses.asdict(tcfg), "data": dataclasses.asdict(data)}
    if online is not None:
        record["online"] = dataclasses.asdict(online)
    if done is not None:  # refused before anything is written
        saved = {k: v for k, v in read_run(folder).items() if k != "versions"}
        refuse_resume_changes(folder, saved, record)
    if warning and rank == 0:
        warnings.warn(warning, stacklevel=2)
    # Pinned batches let the Trainer's non_blocking copy to CUDA overlap the step.
    train_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = train_device.type == "cuda"
    stream: Any
    if online is not None:
        stream = OnlineStream(online, data.crop_hr, data.batch_size, tcfg.seed, rank=rank,
                              world_size=world, num_workers=data.num_workers,
                              prefetch_factor=data.prefetch_factor, pin_memory=on_cuda,
                              crops_per_image=data.crops_per_image, device=train_device,
                              prefetch=data.online_prefetch, augment=data.augment)
    else:
        stream = TrainingStream(shards, crop_hr=data.crop_hr, batch_size=data.batch_size,
                                seed=tcfg.seed, epoch_samples=data.epoch_samples, rank=rank,
                                world_size=world, num_workers=data.num_workers,
                                crops_per_image=data.crops_per_image, augment=data.augment,
                                prefetch_factor=data.prefetch_factor, pin_memory=on_cuda)
    # whole held-out images, one per batch (sizes differ), or centre crops of at most val_crop_hr
    val = (None if val_shards is None or rank != 0 else validation_batches(
        val_shards, crop_hr=data.val_crop_hr, batch_size=1, at_most=True))
    trainer = Trainer(model, tcfg, stream, val_batches=val, device=device)
    if done is not None:
        trainer.resume(folder / LAST)
    if rank == 0:
        write_run(folder, stage=stage, model=stage_config.model, model_config=model.config.to_dict(),
                  scale=scale, kernel_size=kernel_size, delta=delta, shards=shards_text,
                  trainer=tcfg, val_shards=val_shards,
                  online=None if online is None else dataclasses.asdict(online), data=data)
    start = time.perf_counter()
    step = trainer.fit(callback=callback)
    return StageResult(folder, step, skipped=False, seconds=time.perf_counter() - start,
                       data_wait_share=trainer.data_wait_share, val=dict(trainer.last_val),
                       note=trainer.resume_note, stop_note=trainer.stop_note,
                       best=trainer.best)
