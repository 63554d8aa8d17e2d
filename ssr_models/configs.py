"""Training configs: YAML files naming, per stage, a model and its Trainer and data settings.

A config has up to three stages (``kernel``, ``nbsr``, ``diffusion``; DESIGN.md's training
order), each::

    kernel:
      model: dkenet-tiny          # a registry name (ssr_models.MODELS) allowed for the stage
      model_overrides: {}         # keyword overrides for the model's config dataclass
      data: {crop_hr: 48, batch_size: 4, epoch_samples: null, num_workers: 0}
      trainer: {steps: 300, lr: 0.001, ...}   # TrainerConfig fields except out_dir

Everything is validated at load: unknown keys at every level are a ConfigError with a "did you
mean"; the model name must be registered for its stage. The model overrides are validated when
the model is built (``create_model`` -> ``with_overrides``: same "did you mean"), which the CLI
does before any training. ``out_dir`` is not a config key: the CLI's ``--out`` decides it.

Built-in configs live in ``ssr_models/configs/<name>.yaml`` (``tiny``, ``paper``); any other
``*.yaml`` path is read as a file.

Ablations (Table 2 of the SSR paper; ``ssr-train --ablation NAME``) switch off conditioning
inputs of the diffusion stage through its model overrides, on top of any config:
``di-kernel-only`` (no depth, no SVKR), ``depth-only`` (no kernel, no SVKR), ``no-svkr``
(kernel and depth, not refined by SVKR). The full model is the config without ``--ablation``.
The kernel and NBSR stages are the same in every row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ssr_core.config import dataclass_from_mapping, did_you_mean, named_or_yaml_path
from ssr_core.errors import ConfigError

from . import MODELS, model_name
from .trainer_config import TrainerConfig

__all__ = ["ABLATIONS", "BACKBONE_MODELS", "BUILTIN_CONFIGS", "CONFIG_DIR", "ONLINE_DEPTH", "STAGES",
           "STAGE_MODELS", "Ablation", "OnlineDepth",
           "DataConfig", "Stage", "StageConfig", "TrainConfig", "ablation_for", "load_train_config",
           "parse_train_config", "train_command"]

Stage = Literal["kernel", "nbsr", "diffusion"]
STAGES: tuple[str, ...] = get_args(Stage)  # also the order of ``--stage all``
CONFIG_DIR = Path(__file__).parent / "configs"
BUILTIN_CONFIGS: tuple[str, ...] = ("tiny", "paper")
Ablation = Literal["di-kernel-only", "depth-only", "no-svkr"]
#: Where ``ssr-train --online`` takes nearness from (ssr_models.online; here, torch-free, so
#: ``ssr-train --help`` lists them without importing torch).
OnlineDepth = Literal["gt", "prior", "cache"]
ONLINE_DEPTH: tuple[str, ...] = get_args(OnlineDepth)
# The diffusion model's conditioning flags each Table 2 ablation sets (AMFConfig fields, which
# the diffusion stage's model_overrides reach as ``amf: {...}``).
ABLATIONS: dict[str, dict[str, bool]] = {
    "di-kernel-only": {"use_kernel": True, "use_depth": False, "use_svkr": False},
    "depth-only": {"use_kernel": False, "use_depth": True, "use_svkr": False},
    "no-svkr": {"use_kernel": True, "use_depth": True, "use_svkr": False},
}
_FULL = {"use_kernel": True, "use_depth": True, "use_svkr": True}
# Registry names each stage may train (the stage decides what run.json and ssr-infer expect),
# from each model's registered ModelInfo.stage.
STAGE_MODELS: dict[str, tuple[str, ...]] = {
    stage: tuple(n for n in MODELS if MODELS.meta(n).stage == stage) for stage in STAGES}
# Models built on a pretrained backbone (``--backbone DIR``, the ``backbone`` override).
BACKBONE_MODELS: tuple[str, ...] = tuple(n for n in MODELS if MODELS.meta(n).backbone)


@dataclass(frozen=True)
class DataConfig:
    """How the TrainingStream cuts batches.

    Attributes:
        crop_hr: HR crop side in px (a multiple of the shards' scale).
        batch_size: Samples per step per rank.
        epoch_samples: Samples per (resampled) epoch; None = the manifest's count (local folder).
        num_workers: DataLoader workers (0 = read in the training process); each sample is
            decoded by one worker, so throughput grows with workers.
        crops_per_image: Crops cut from each decoded image, all in the same batch (must
            divide batch_size); > 1 trades batch diversity for fewer decodes.
        prefetch_factor: Batches each worker prepares ahead (workers > 0).
        online_jpeg: With ``ssr-train --online``: ``cpu`` = OpenCV (the build's codec, exact)
            or ``kornia`` = differentiable JPEG on the training device (DiffJPEG-style).
        online_prefetch: With ``--online``: batches degraded ahead in a background thread
            (blur/noise/JPEG on the training device) while the step runs; 0 = inside
            ``next()``, between steps; None = 2 on CUDA, 0 on a CPU. Same batches either way.
        augment: Random flips and 90-degree rotations of every crop, aligned on HR, LR,
            nearness and the kernel field (``ssr_models.augment``; shards need the centred LR
            grid). Drawn from the per-sample generator: same batches for any worker count.
        val_crop_hr: Validation on centre crops of at most this side (HR px, a multiple of
            the scale; smaller images give the largest square that fits; faster on large
            held-out images); None (default) validates on whole images, one per batch
            (``ssr_models.validation``).
    """

    crop_hr: int
    batch_size: int
    epoch_samples: int | None = None
    num_workers: int = 0
    crops_per_image: int = 1
    prefetch_factor: int = 2
    online_jpeg: Literal["cpu", "kornia"] = "cpu"
    online_prefetch: int | None = None
    augment: bool = True
    val_crop_hr: int | None = None

    def __post_init__(self) -> None:
        if self.crop_hr < 1 or self.batch_size < 1 or self.num_workers < 0:
            raise ConfigError(f"need crop_hr >= 1, batch_size >= 1, num_workers >= 0: {self}")
        if self.crops_per_image < 1 or self.batch_size % self.crops_per_image:
            raise ConfigError(f"crops_per_image must be >= 1 and divide batch_size: {self}")
        if self.prefetch_factor < 1:
            raise ConfigError(f"prefetch_factor must be >= 1: {self}")
        if self.online_prefetch is not None and not (
                type(self.online_prefetch) is int and self.online_prefetch >= 0):
            raise ConfigError(f"online_prefetch must be null or an integer >= 0, got "
                              f"{self.online_prefetch!r}")
        if self.val_crop_hr is not None and not (type(self.val_crop_hr) is int
                                                 and self.val_crop_hr > 0):
            raise ConfigError(f"val_crop_hr must be null or an integer > 0, got "
                              f"{self.val_crop_hr!r}")
        if not isinstance(self.augment, bool):
            raise ConfigError(f"augment must be true or false, got {self.augment!r}")
        if self.online_jpeg not in ("cpu", "kornia"):
            raise ConfigError(f"online_jpeg must be 'cpu' or 'kornia', got {self.online_jpeg!r}")


@dataclass(frozen=True)
class StageConfig:
    """One stage: the model (registry name + overrides), the Trainer settings and the data."""

    model: str
    trainer: dict[str, Any]
    data: DataConfig
    model_overrides: dict[str, Any] = field(default_factory=dict)

    def trainer_config(self, out_dir: str | Path, **overrides: Any) -> TrainerConfig:
        """Return the TrainerConfig writing to ``out_dir``; ``overrides`` that are None are skipped."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return _trainer_from_mapping({**self.trainer, **given, "out_dir": str(out_dir)})


@dataclass(frozen=True)
class TrainConfig:
    """A whole config: its name and the stages it defines (a subset of STAGES)."""

    name: str
    stages: dict[str, StageConfig]

    def with_ablation(self, ablation: str | None) -> TrainConfig:
        """Return the config with ``ablation``'s flags in the diffusion stage's overrides.

        Raises:
            ConfigError: An unknown ablation, or a config without a diffusion stage.
        """
        if ablation is None:
            return self
        if ablation not in ABLATIONS:
            raise ConfigError(f"unknown ablation {ablation!r}; choose one of: "
                              f"{', '.join(ABLATIONS)}")
        if "diffusion" not in self.stages:
            raise ConfigError(f"--ablation changes the diffusion stage, which config "
                              f"{self.name!r} does not have")
        diffusion = self.stages["diffusion"]
        amf = {**diffusion.model_overrides.get("amf", {}), **ABLATIONS[ablation]}
        overrides = {**diffusion.model_overrides, "amf": amf}
        stages = {**self.stages, "diffusion": dataclasses.replace(diffusion,
                                                                  model_overrides=overrides)}
        return TrainConfig(name=f"{self.name}+{ablation}", stages=stages)

    def with_model(self, model: str | None, backbone: str | None = None) -> TrainConfig:
        """Return the config with ``model`` trained by the stage that can train it (``--model``)
        and ``backbone`` in that stage's overrides (``--backbone``, models in BACKBONE_MODELS).

        The stage's data and trainer settings stay; its model_overrides belonged to the old
        model and are dropped (apply ``with_ablation`` after this).

        Raises:
            ConfigError: An unknown model, a config without the stage that trains it, or a
                backbone for a model that takes none.
        """
        if model is None and backbone is None:
            return self
        name = model if model is not None else self.stage("diffusion").model
        stage = MODELS.meta(name).stage  # ConfigError with the choices for an unknown name
        if backbone is not None and name not in BACKBONE_MODELS:
            raise ConfigError(f"--backbone is for the models {', '.join(BACKBONE_MODELS)}; the "
                              f"{stage} stage trains {name!r} (choose one with --model)")
        old = self.stage(stage)
        overrides = dict(old.model_overrides) if model is None else {}
        if backbone is not None:
            overrides["backbone"] = str(backbone)
        stages = {**self.stages, stage: dataclasses.replace(old, model=name,
                                                            model_overrides=overrides)}
        return TrainConfig(name=self.name if model is None else f"{self.name}+{name}", stages=stages)

    def stage(self, name: str) -> StageConfig:
        """Return stage ``name``; a stage the config lacks is a ConfigError."""
        if name not in self.stages:
            raise ConfigError(f"config {self.name!r} has no stage {name!r} "
                              f"(it has: {', '.join(self.stages) or 'none'})")
        return self.stages[name]


def _unknown_key(where: str, key: str, allowed: tuple[str, ...] | list[str]) -> ConfigError:
    return ConfigError(f"unknown {where} key {key!r}{did_you_mean(key, allowed)}; "
                       f"allowed: {', '.join(allowed)}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _to_number(value: Any, declared: Any) -> Any:
    # PyYAML reads "1e-3" (no dot) as a string; accept it where the field is a float.
    if isinstance(value, str) and "float" in str(declared):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"expected a number, got {value!r}") from None
    return value


def _trainer_from_mapping(data: Mapping[str, Any]) -> TrainerConfig:
    return dataclass_from_mapping(TrainerConfig, data,
                                  lambda k, hint: f"unknown trainer key {k!r}{hint}", _to_number)


def _parse_stage(name: str, data: Any, where: str) -> StageConfig:
    data = _mapping(data, f"{where}: stage {name!r}")
    keys = [f.name for f in dataclasses.fields(StageConfig)]
    for key in data:
        if key not in keys:
            raise _unknown_key(f"{where}: stage {name!r}", key, keys)
    for key in ("model", "trainer", "data"):
        if key not in data:
            raise ConfigError(f"{where}: stage {name!r} needs a {key!r} key")
    model = model_name(str(data["model"]))  # a former name (diffusion-tiny) means its successor
    if model not in STAGE_MODELS[name]:
        hint = did_you_mean(model, STAGE_MODELS[name])
        raise ConfigError(f"{where}: stage {name!r} cannot train model {model!r}{hint}; "
                          f"choose one of: {', '.join(STAGE_MODELS[name])}")
    trainer = dict(_mapping(data["trainer"], f"{where}: {name}.trainer"))
    if "out_dir" in trainer:
        raise ConfigError(f"{where}: {name}.trainer.out_dir is set by --out, not the config")
    try:
        # Validate now (unknown keys, ranges) with a placeholder out_dir; kept as a mapping so
        # that --steps/--seed can override before the real TrainerConfig is built.
        _trainer_from_mapping({**trainer, "out_dir": "."})
        data_cfg = dataclass_from_mapping(DataConfig, _mapping(data["data"], f"{name}.data"),
                                          lambda k, hint: f"unknown data key {k!r}{hint}")
    except ConfigError as exc:
        raise ConfigError(f"{where}: stage {name!r}: {exc}") from None
    overrides = dict(_mapping(data.get("model_overrides") or {}, f"{name}.model_overrides"))
    return StageConfig(model=model, trainer=trainer, data=data_cfg, model_overrides=overrides)


def parse_train_config(data: Any, name: str = "<config>") -> TrainConfig:
    """Validate a config mapping (as read from YAML) into a TrainConfig.

    Raises:
        ConfigError: Unknown keys ("did you mean"), a missing key, a model the stage cannot
            train, or an invalid trainer/data value.
    """
    data = _mapping(data, name)
    top = ("name", "description", "stages")
    for key in data:
        if key not in top:
            raise _unknown_key(f"{name}: top-level", key, top)
    stages = _mapping(data.get("stages") or {}, f"{name}: stages")
    for key in stages:
        if key not in STAGES:
            raise _unknown_key(f"{name}: stage", key, STAGES)
    if not stages:
        raise ConfigError(f"{name}: no stages (give one or more of {', '.join(STAGES)})")
    parsed = {s: _parse_stage(s, stages[s], name) for s in STAGES if s in stages}
    return TrainConfig(name=str(data.get("name", name)), stages=parsed)


def load_train_config(name_or_path: str | Path) -> TrainConfig:
    """Load a built-in config by name (``tiny``, ``paper``) or a YAML file by path.

    Raises:
        ConfigError: An unknown name (the choices are listed), an unreadable file or an
            invalid config.
    """
    path = named_or_yaml_path(str(name_or_path), BUILTIN_CONFIGS,
                              lambda name: CONFIG_DIR / f"{name}.yaml", "config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from None
    return parse_train_config(data, name=path.name)


def ablation_for(flags: Mapping[str, bool]) -> str | None:
    """Return the ablation whose diffusion flags are ``flags`` ("" = the full model), or None.

    ``flags`` uses AMFConfig's names (``use_kernel``, ``use_depth``, ``use_svkr``), as a
    table row's ``expects`` does; flags it leaves out count as True.
    """
    want = {**_FULL, **flags}
    if want == _FULL:
        return ""
    return next((name for name, f in ABLATIONS.items() if f == want), None)


def train_command(ablation: str, shards: str = "SHARDS", config: str = "paper",
                  out: str | None = None) -> str:
    """Return the ``ssr-train`` command line that trains a run for ``ablation`` ("" = full)."""
    out = out or f"runs/{ablation or 'ssr'}"
    flag = f" --ablation {ablation}" if ablation else ""
    return f"ssr-train --shards {shards} --stage all --config {config}{flag} --out {out}"
