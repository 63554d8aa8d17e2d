"""Recipes: the validated, hashable description of a degradation (YAML files in manifests/recipes/).

A recipe holds every range with its unit in the key name (``_px`` = HR pixels, ``_255`` = the
0-255 intensity scale). Files are validated at load: unknown keys are errors with a "did you
mean" hint. The hash is over the resolved recipe (after CLI overrides), not the file bytes, so
two files that mean the same thing hash the same.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from ssr_core.config import dataclass_from_mapping, named_or_yaml_path
from ssr_core.errors import ConfigError
from ssr_core.registry import Registry
from ssr_manifests import RECIPES_DIR

BlurModel = Literal["defocus", "thin-lens", "iso", "aniso", "iso-list", "aniso-disturbed", "div2krk",
                    "realesrgan", "bsrgan"]
#: Blur models that are a whole degradation chain of their own (downsampler "chain").
CHAIN_MODELS: tuple[str, ...] = ("realesrgan", "bsrgan")
DeltaMode = Literal["centered", "topleft"]
#: "direct": Eq. 1, the kernel evaluated at LR positions (exact); "bicubic": blur at every HR
#: pixel, then MATLAB imresize(1/s) with antialiasing (IKC/DAN/DCLS; not exact at LR positions);
#: "chain": the protocol's own chain of blurs and resizes (blur.model in CHAIN_MODELS).
Downsampler = Literal["direct", "bicubic", "chain"]
#: Border rule of the blur: numpy "reflect" (d c b | a b c d, torch's and the engine's) or
#: "symmetric" (edge repeated, c b a | a b c d: scipy.ndimage's "reflect", MATLAB's "symmetric").
Padding = Literal["reflect", "symmetric"]
#: Blur models whose kernel is one K x K array of taps per sample, not the Gaussian field alone.
TAPS_MODELS: tuple[str, ...] = ("aniso-disturbed", "div2krk")

#: The built-in recipes (names a user types for --recipe): name -> its YAML file, registered here
#: and nowhere else; ``degrade recipes``, ``degrade protocols`` and the CLI choices read it.
RECIPES: Registry[Path, None] = Registry("recipe")
for _name in ("ssr", "ssr-nonoise", "ssr-nojpeg", "ssr-clean", "ssr-wide", "cmos-defocus", "iso",
              "aniso", "gaussian8", "dcls-aniso", "div2krk", "realesrgan", "bsrgan"):
    RECIPES.register(_name, RECIPES_DIR / f"{_name}.yaml")
BUILTIN_RECIPES: tuple[str, ...] = RECIPES.names()
# A recipe whose kernels lose more than this share of their mass to the K x K window warns.
TRUNCATION_WARN = 0.01
# Later fields and their defaults (JSON form), left out of to_dict and so of the hash.
_OMIT_AT_DEFAULT: dict[str, Any] = {
    "padding": "reflect",
    "blur.sigma_list_px": [],
    "blur.variance_range_px2": [0.6, 5.0],
    "blur.kernel_noise_range": [0.0, 0.0],
}

#: The documented range of every numeric recipe value: key -> (low, high, integer), inclusive.
#: Values must also be finite: NaN and inf are refused at load, naming the key and this range
#: (an inf sigma used to pass, write a shard and then fail on the manifest's JSON). The upper
#: bounds are far beyond any sensible setting; they keep a typo (3500 for 3.5) from costing hours.
RANGES: dict[str, tuple[float, float, bool]] = {
    "version": (1, 1_000_000, True),
    "scale": (1, 16, True),
    "kernel_size": (1, 99, True),  # odd; the CLI's --kernel-size has the same range
    "blur.sigma_range_px": (0.05, 50.0, False),
    "blur.max_blur_range_px": (0.05, 50.0, False),
    "blur.focus_range": (0.0, 1.0, False),
    "blur.anisotropy_range": (1.0, 100.0, False),
    "blur.coc_max_range_px": (0.0, 400.0, False),
    "blur.field_cells": (1, 1024, True),
    "blur.sigma_list_px": (0.05, 50.0, False),
    "blur.variance_range_px2": (0.0025, 2500.0, False),
    "blur.kernel_noise_range": (-0.99, 10.0, False),
    "noise.sigma_range_255": (0.0, 255.0, False),
    "noise.gray_prob": (0.0, 1.0, False),
    "jpeg.quality_range": (1, 100, True),
}


@dataclass(frozen=True)
class BlurSpec:
    """How a nearness map becomes a per-LR-pixel (s1, s2, theta) field."""

    model: BlurModel = "defocus"
    sigma_range_px: tuple[float, float] = (0.6, 3.5)  # clip range of s1, s2 (std devs, HR px)
    # defocus: blur size b = sigma_min + (b_max - sigma_min) * |n - focus| / max(focus, 1 - focus)
    max_blur_range_px: tuple[float, float] = (1.5, 3.5)  # b_max drawn per sample
    focus_range: tuple[float, float] = (0.0, 1.0)  # focus plane, nearness units
    anisotropy_range: tuple[float, float] = (1.0, 3.0)  # s1/s2 ceiling drawn per sample
    field_cells: int = 4  # cells of the low-frequency random fields along the longer side
    # thin-lens (SYNDOF's rule): sigma = (CoC - 1) / 4, CoC = coc_max * |n - focus| / ...
    coc_max_range_px: tuple[float, float] = (9.0, 15.0)
    # iso-list: the fixed widths (std devs, HR px); variant v of an image uses entry v mod len.
    sigma_list_px: tuple[float, ...] = ()
    # div2krk: eigenvalues of the covariance (variances, HR px^2), as KernelGAN's generator draws.
    variance_range_px2: tuple[float, float] = (0.6, 5.0)
    # aniso-disturbed / div2krk: every tap times (1 + U[low, high]), then renormalised.
    kernel_noise_range: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class NoiseSpec:
    """Additive Gaussian noise after downsampling, sigma on the 0-255 scale."""

    sigma_range_255: tuple[float, float] = (1.0, 25.0)
    gray_prob: float = 0.4


@dataclass(frozen=True)
class JpegSpec:
    """JPEG compression with a real codec, quality drawn per sample (integers, inclusive)."""

    quality_range: tuple[int, int] = (30, 95)


@dataclass(frozen=True)
class Recipe:
    """A complete degradation recipe (DESIGN.md section 3)."""

    name: str
    version: int = 1
    description: str = ""
    scale: int = 4
    kernel_size: int = 21
    delta: DeltaMode = "centered"
    downsampler: Downsampler = "direct"
    padding: Padding = "reflect"
    blur: BlurSpec = field(default_factory=BlurSpec)
    noise: NoiseSpec | None = field(default_factory=NoiseSpec)
    jpeg: JpegSpec | None = field(default_factory=JpegSpec)

    def __post_init__(self) -> None:
        # Every way of making a Recipe (file, dict, dataclasses.replace, CLI overrides) is
        # validated, so an invalid one never reaches a build that would write shards first.
        _validate(self)

    @property
    def delta_px(self) -> float:
        """Return the LR grid offset in HR px for this recipe's delta mode and scale.

        With the bicubic downsampler the blur is evaluated at every HR pixel, centred on it
        (delta 0); the resampler's half-pixel geometry then centres LR pixels on s x s blocks.
        """
        if self.downsampler == "bicubic":
            return 0.0
        return (self.scale - 1) / 2.0 if self.delta == "centered" else 0.0

    @property
    def uses_taps(self) -> bool:
        """True when each sample's kernel is a K x K array of taps (``blur.model`` in TAPS_MODELS)."""
        return self.blur.model in TAPS_MODELS

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved recipe as plain JSON-able data.

        Fields added after version 1 of the recipe format are left out while they hold their
        defaults, so the hash (and so every seed and byte) of an older recipe does not change.
        """
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        for dotted, default in _OMIT_AT_DEFAULT.items():
            *parents, leaf = dotted.split(".")
            node = data
            for part in parents:
                node = node.get(part) or {}
            if leaf in node and node[leaf] == default:
                del node[leaf]
        return data

    @property
    def hash(self) -> str:
        """Return the sha256 (hex) of the canonical JSON of the resolved recipe."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def with_overrides(
        self,
        *,
        scale: int | None = None,
        kernel_size: int | None = None,
        no_noise: bool = False,
        no_jpeg: bool = False,
    ) -> Recipe:
        """Return a copy with CLI overrides applied (None / False means keep)."""
        changes: dict[str, Any] = {}
        if scale is not None:
            changes["scale"] = scale
        if kernel_size is not None:
            changes["kernel_size"] = kernel_size
        if no_noise:
            changes["noise"] = None
        if no_jpeg:
            changes["jpeg"] = None
        return dataclasses.replace(self, **changes)


def recipe_path(name: str) -> Path:
    """Return the YAML file of a built-in recipe.

    Raises:
        ConfigError: not a built-in recipe (the message lists them).
    """
    return RECIPES.get(name)


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Load a built-in recipe by name, or a user's YAML file by path, and validate it."""
    path = named_or_yaml_path(str(name_or_path), BUILTIN_RECIPES, recipe_path, "recipe")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a recipe must be a mapping, got {type(data).__name__}")
    try:
        recipe = recipe_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return recipe


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """Build and validate a Recipe from parsed YAML/JSON data.

    A top-level ``protocol`` mapping documents what the recipe reproduces (read by
    :mod:`degrade.protocols`); it is description, not configuration, so it is left out of the
    Recipe and its hash.
    """
    data = {k: v for k, v in data.items() if k != "protocol"}
    if "name" not in data:
        raise ConfigError("a recipe needs a 'name'")
    subs = {"blur": BlurSpec, "noise": NoiseSpec, "jpeg": JpegSpec}
    for key, cls in subs.items():
        if key in data and data[key] is not None:
            data[key] = _build(cls, data[key], key)
    return _build(Recipe, data, "recipe")


def _build(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    return dataclass_from_mapping(cls, data, lambda key, hint: f"unknown key {where}.{key}{hint}",
                                  _as_declared, key_prefix="" if cls is Recipe else f"{where}.")


def _as_declared(value: Any, declared: Any) -> Any:
    # YAML reads `1` as int and `1.0` as float; coerce numbers to the declared type so that two
    # files that mean the same thing resolve (and hash) the same. Anything else is left for
    # _validate to reject with a message. (Annotations are strings: `from __future__`.)
    if declared not in ("float", "tuple[float, float]", "tuple[int, int]", "tuple[float, ...]"):
        return value
    to_int = declared == "tuple[int, int]"

    def conv(v: Any) -> Any:
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return v
        if to_int:
            return int(v) if float(v).is_integer() else v
        return float(v)

    return tuple(conv(v) for v in value) if isinstance(value, tuple) else conv(value)


def _is_number(v: Any, integer: bool = False) -> bool:
    """True for a finite int/float (not a bool); with ``integer``, one with no fraction."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    return not integer or float(v).is_integer()


def _range(value: Any, where: str) -> None:
    lo, hi, integer = RANGES[where]
    if not (isinstance(value, tuple) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{where} must be a [low, high] pair of numbers, got {value!r}")
    if integer and not all(_is_number(v, integer=True) for v in value):
        raise ConfigError(f"{where} must hold integers, got {value!r}")
    a, b = value
    # NaN fails every comparison and inf passes "<= inf": both must be refused by name.
    if not (all(_is_number(v) for v in value) and lo <= a <= b <= hi):
        raise ConfigError(f"{where} must satisfy {lo:g} <= low <= high <= {hi:g} (finite "
                          f"numbers), got {list(value)!r}")


def _scalar(value: Any, where: str) -> None:
    lo, hi, integer = RANGES[where]
    if not (_is_number(value, integer) and lo <= value <= hi):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"{where} must be {kind} in [{lo:g}, {hi:g}], got {value!r}")


def _choice(value: Any, lit: Any, where: str) -> None:
    choices = get_args(lit)
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _validate(r: Recipe) -> None:
    if not isinstance(r.name, str) or not r.name:
        raise ConfigError(f"name must be a non-empty string, got {r.name!r}")
    _scalar(r.version, "version")
    _scalar(r.scale, "scale")
    _scalar(r.kernel_size, "kernel_size")
    if r.kernel_size % 2 == 0:
        raise ConfigError(f"kernel_size must be an odd integer in [1, 99], got {r.kernel_size!r}")
    _choice(r.delta, DeltaMode, "delta")
    _choice(r.downsampler, Downsampler, "downsampler")
    _choice(r.padding, Padding, "padding")
    b = r.blur
    if not isinstance(b, BlurSpec):
        raise ConfigError(f"blur must be a mapping, got {type(b).__name__}")
    _choice(b.model, BlurModel, "blur.model")
    for name in ("sigma_range_px", "max_blur_range_px", "focus_range", "anisotropy_range",
                 "coc_max_range_px"):
        _range(getattr(b, name), f"blur.{name}")
    _scalar(b.field_cells, "blur.field_cells")
    _range(b.variance_range_px2, "blur.variance_range_px2")
    _range(b.kernel_noise_range, "blur.kernel_noise_range")
    _validate_protocol_blur(r)
    if r.noise is not None:
        _range(r.noise.sigma_range_255, "noise.sigma_range_255")
        _scalar(r.noise.gray_prob, "noise.gray_prob")
    if r.jpeg is not None:
        _range(r.jpeg.quality_range, "jpeg.quality_range")


def _validate_protocol_blur(r: Recipe) -> None:
    """Check the combinations the protocol blur models need (iso-list widths, taps, padding)."""
    b = r.blur
    widths = b.sigma_list_px
    if not isinstance(widths, tuple):
        raise ConfigError(f"blur.sigma_list_px must be a list of numbers, got {widths!r}")
    lo, hi, _ = RANGES["blur.sigma_list_px"]
    for v in widths:
        if not (_is_number(v) and lo <= v <= hi):
            raise ConfigError(f"blur.sigma_list_px entries must be finite numbers in [{lo:g}, "
                              f"{hi:g}], got {v!r}")
    if b.model == "iso-list" and not widths:
        raise ConfigError("blur.model 'iso-list' needs blur.sigma_list_px (one or more widths)")
    if r.padding != "reflect" and not r.uses_taps:
        raise ConfigError(f"padding {r.padding!r} needs a taps blur model ({', '.join(TAPS_MODELS)});"
                          " the Gaussian-field engine pads with 'reflect'")
    if b.model == "div2krk":
        if r.scale not in (2, 4):
            raise ConfigError(f"blur.model 'div2krk' works at scale 2 or 4 (x4 = two x2 passes, "
                              f"as KernelGAN made DIV2KRK), got scale {r.scale}")
        if r.downsampler != "direct":
            raise ConfigError("blur.model 'div2krk' subsamples directly (downsampler: direct)")
    if (b.model in CHAIN_MODELS) != (r.downsampler == "chain"):
        raise ConfigError(f"blur.model {b.model!r} and downsampler {r.downsampler!r}: the chain "
                          f"models ({', '.join(CHAIN_MODELS)}) and downsampler 'chain' go together "
                          "(their blurs, resizes, noise and JPEG are one chain)")
    if b.model in CHAIN_MODELS and (r.noise is not None or r.jpeg is not None):
        raise ConfigError(f"blur.model {b.model!r} draws its own noise and JPEG: set noise and "
                          "jpeg to null")


def sigma_span_px(recipe: Recipe) -> tuple[float, float]:
    """Return the (smallest, largest) kernel std dev in HR px that ``recipe`` can draw.

    For the listing (``degrade recipes``): each blur model states its range its own way
    (a list of widths, variances, BSRGAN's and Real-ESRGAN's rules).
    """
    b = recipe.blur
    if b.model == "iso-list":
        return min(b.sigma_list_px), max(b.sigma_list_px)
    if b.model == "realesrgan":  # its first-round kernel range
        from .second_order import REALESRGAN_X4PLUS

        low, top = REALESRGAN_X4PLUS.blur_sigma
        return low, top
    if b.model == "bsrgan":  # isotropic std U(0, 2 + 0.2 s); anisotropic variances to 4 + s
        return 0.0, round(max(2 + 0.2 * recipe.scale, (4 + recipe.scale) ** 0.5), 2)
    if b.model == "div2krk":  # the recipe gives variances
        low, top = (round(v**0.5, 2) for v in b.variance_range_px2)
        return low, top
    low, top = b.sigma_range_px
    return low, top


def worst_truncated_mass(recipe: Recipe) -> float:
    """Return the mass of the recipe's widest kernel (isotropic) outside its K x K window."""
    import torch

    from .ops.kernels import truncated_mass

    top = sigma_span_px(recipe)[1]
    return float(truncated_mass(torch.tensor([top, top, 0.0], dtype=torch.float64),
                                recipe.kernel_size, recipe.delta_px))
