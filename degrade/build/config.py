"""What a build is: its config (which decides the bytes), its units of work and its results."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ssr_core.errors import ConfigError
from ssr_datasets.formats import DEFAULT_MAX_PIXELS
from ssr_datasets.shards import ShardInfo
from ssr_datasets.sources import SourceItem
from ssr_datasets.sources.base import portable_name

from ..depth import DepthRequest
from ..recipes import Recipe


@dataclass(frozen=True)
class BuildConfig:
    """Everything that decides the bytes of a shard set (workers and output folder do not)."""

    recipe: Recipe
    source: str = "sample"
    root: str | None = None
    depth: DepthRequest = "auto"
    seed: int = 0
    samples_per_image: int = 1
    crop: tuple[int, int] | None = None
    shard_size: int = 64
    max_images: int | None = None
    split: str | None = None  # the source's split (its default when None); also names shards
    depth_model: str | None = None  # learned depth checkpoint (alias or hub id); None = default
    depth_device: str = "cpu"  # torch device of the learned depth model (GPU rounds differently)
    # Torch device of the blur and noise ("cpu", "cuda", "cuda:N"). A GPU's float32 rounding
    # differs from the CPU's (lr.png may differ by one level in rare pixels), so it is config.
    device: str = "cpu"
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger inputs are skipped (header read, no decode)

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved config as JSON-able data (the recipe by name and hash)."""
        d = asdict(self)
        d["recipe"] = {"name": self.recipe.name, "hash": self.recipe.hash}
        d["crop"] = list(self.crop) if self.crop else None
        d["root"] = portable_name(self.root) if self.root is not None else None  # valid UTF-8
        return d

    @property
    def hash(self) -> str:
        """Return the sha256 of the canonical JSON of the config."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class DepthOptions:
    """Where learned depth comes from and is kept: changes no byte of the output."""

    weights_dir: str | None = None  # --depth-weights; None = $SSR_BENCH_DEPTH_WEIGHTS, HF cache
    cache_dir: str | None = None  # None = $SSR_BENCH_CACHE/depth or ~/.cache/ssr-bench/depth
    use_cache: bool = True
    batch_size: int = 4  # images per group: one learned-depth forward pass, one blur batch
    allow_download: bool = False  # --allow-download: fetch absent learned weights from the hub


@dataclass(frozen=True)
class ShardTask:
    """One unit of work: the (item, variant-count) inputs of one shard, in order."""

    index: int
    name: str
    items: tuple[SourceItem, ...]


@dataclass
class ShardResult:
    """What a worker reports for one shard."""

    index: int
    info: ShardInfo | None  # None when every input of the shard was skipped
    skipped: list[dict[str, str]]
    seconds: dict[str, float]
    depth_providers: dict[str, int]
    truncation: dict[str, float] = field(default_factory=dict)  # {"warned": n, "worst": mass}
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU time per stage


@dataclass
class BuildResult:
    """Summary of a finished build (``out_dir``/``preview``: a Path, or a URL for fsspec)."""

    out_dir: Path | str
    manifest: dict[str, Any]
    reused_shards: int
    built_shards: int
    seconds: float
    preview: Path | str | None
    warnings: list[str] = field(default_factory=list)
    removed_temps: list[str] = field(default_factory=list)  # a killed run's temps, one line each


def validate_config(config: BuildConfig) -> None:
    """Raise ConfigError for options that cannot work together."""
    s = config.recipe.scale
    if config.samples_per_image < 1:
        raise ConfigError(f"--samples-per-image must be >= 1, got {config.samples_per_image}")
    if config.shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1, got {config.shard_size}")
    if config.max_images is not None and config.max_images < 1:
        raise ConfigError(f"--max-images must be >= 1, got {config.max_images}")
    if isinstance(config.max_pixels, bool) or not isinstance(config.max_pixels, int) \
            or config.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be an integer >= 1, got {config.max_pixels!r}")
    if config.crop is not None:
        ch, cw = config.crop
        if ch % s or cw % s or ch < config.recipe.kernel_size or cw < config.recipe.kernel_size:
            raise ConfigError(
                f"--crop {ch} {cw}: both sides must be multiples of the scale {s} and at least "
                f"the kernel size {config.recipe.kernel_size}"
            )
    if config.depth_model is not None and config.depth not in ("midas", "depth-anything", "auto"):
        raise ConfigError(f"--depth-model needs --depth midas or depth-anything, got --depth {config.depth}")
    check_device(config.device)
    if config.split is not None and not config.split.replace("_", "").isalnum():
        raise ConfigError(f"--split must be letters, digits or '_', got {config.split!r}")


def shard_prefix(config: BuildConfig) -> str:
    """Return the shard name prefix: the source's split, or ``train`` for sources without splits."""
    from ssr_datasets.sources import splits_of

    splits = splits_of(config.source)
    if config.split is not None:
        return config.split
    return splits[0] if splits else "train"


def source_split(config: BuildConfig) -> str | None:
    """Return the split to list from the source (None for sources without splits)."""
    from ssr_datasets.sources import splits_of

    splits = splits_of(config.source)
    if not splits:
        return None
    return config.split if config.split is not None else splits[0]


def check_device(device: str) -> None:
    """Raise ConfigError unless ``device`` is a concrete device this machine has (cpu, cuda, cuda:N).

    ``auto`` is refused: the device decides bytes, so the config records the one that ran
    (the CLI resolves ``auto`` before it builds the config).
    """
    from ssr_core.devices import resolve_device

    if resolve_device(device) != device:
        raise ConfigError(f"BuildConfig.device must be cpu, cuda or cuda:N, got {device!r}; "
                          "resolve it first (ssr_core.devices.resolve_device)")
