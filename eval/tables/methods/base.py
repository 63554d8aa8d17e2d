"""What every table method shares: the ``Method`` protocol, the kind registry, fingerprints, tiling.

The kinds (:data:`METHOD_KINDS`) are registered here, in one visible place; each kind lives in its
own module of this package and :mod:`.parse` turns a ``--method`` value into one of them. The
registry names the kind modules lazily (imported on lookup), so the kinds import this one without
a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ssr_core.errors import ConfigError
from ssr_core.io import sha256_json
from ssr_core.registry import Registry

from ..spec import RowSpec
from ..testsets import TestImage, TestSet

if TYPE_CHECKING:  # torch is imported when a method runs, so that --help stays fast
    import torch

MethodKind = Literal["bicubic", "nbsr-oracle", "ssr", "spandrel", "folder"]


@dataclass(frozen=True)
class MethodKindInfo:
    """One kind of method: what the user types, a line for ``--help``, its code version.

    ``version`` is part of every fingerprint of the kind's outputs: bump it when a code change can
    move them (2: tiles spread evenly by ``ssr_models.infer.tile_starts``).
    """

    usage: str
    summary: str
    version: str
    extra: str | None = None  # optional dependency group it needs


#: kind -> its method class (imported on first lookup), with :class:`MethodKindInfo` metadata
METHOD_KINDS: Registry[type, MethodKindInfo] = Registry("method kind", package=__package__)
METHOD_KINDS.register_lazy("bicubic", ".bicubic:BicubicMethod", meta=MethodKindInfo(
    "bicubic", "MATLAB imresize bicubic upscaling of the LR (built in)", "1"))
METHOD_KINDS.register_lazy("nbsr-oracle", ".nbsr_oracle:NBSROracleMethod", meta=MethodKindInfo(
    "nbsr-oracle=RUN_DIR", "the run's NBSR fed the ground-truth kernel field: an upper bound "
    "(synthetic sets only)", "2"))
METHOD_KINDS.register_lazy("ssr", ".ssr:SSRMethod", meta=MethodKindInfo(
    "NAME=RUN_DIR", "an ssr-train run folder (kernel/, nbsr/, diffusion/), run as ssr-infer "
    "--method diffusion runs it (svkr without a diffusion stage)", "2"))
METHOD_KINDS.register_lazy("spandrel", ".spandrel:SpandrelMethod", meta=MethodKindInfo(
    "NAME=WEIGHTS.pth|.pt|.ckpt|.safetensors|.bin", "a pretrained SR checkpoint spandrel can load "
    "(SwinIR, HAT, Real-ESRGAN, DAT, ...)", "2", extra="methods"))
METHOD_KINDS.register_lazy("folder", ".folder:FolderMethod", meta=MethodKindInfo(
    "NAME=DIR", "SR outputs made elsewhere, named {key} or {image_id} (in DIR/<group>/ when that "
    "folder exists)", "1"))
#: kind -> code version (part of every fingerprint), from the registry's metadata
CODE_VERSIONS: dict[str, str] = {k: METHOD_KINDS.meta(k).version for k in METHOD_KINDS}


class Method(Protocol):
    """What the table runner needs of an SR method (see :mod:`eval.tables.methods`)."""

    name: str  # the table row it fills
    kind: MethodKind
    caches_outputs: bool

    def fingerprint_for(self, testset: TestSet) -> str:
        """Return a sha256 hex that changes whenever the outputs on ``testset`` can change."""
        ...

    def describe(self) -> dict[str, Any]:
        """Return JSON-able provenance (kind, path, weights sha256, scale, options, versions)."""
        ...

    def unsupported(self, testset: TestSet) -> str | None:
        """Return None if the method can run on ``testset``, else the reason (an n/a footnote)."""
        ...

    def check_row(self, row: RowSpec) -> None:
        """Raise ConfigError if this method cannot fill ``row`` (its ``expects`` flags)."""
        ...

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        """Return the uint8 (s*h, s*w, 3) RGB output for one image of ``testset``."""
        ...


def digest(obj: Any) -> str:
    """Return the sha256 hex of ``obj`` as canonical JSON (sorted keys)."""
    return sha256_json(obj)


def refuse_expects(method: Method, row: RowSpec) -> None:
    """Raise ConfigError when ``row`` expects a diffusion config that ``method`` cannot show."""
    if row.expects:
        raise ConfigError(f"--method {method.name}: row {row.id} expects a training run whose diffusion "
                          f"stage has {flags_text(row.expects)}; {method.kind} methods cannot fill it "
                          f"(give --method {row.id}=RUN_DIR)")


def run_tiled(x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], scale: int, tile: int,
              overlap: int) -> np.ndarray:
    """Run ``fn`` over overlapping tiles of x (1, C, h, w) and blend; return uint8 (s*h, s*w, 3).

    ``fn`` maps a tile (1, C, t, t') to SR (1, 3, s*t, s*t') in [0, 1]; ``tile``/``overlap`` in
    LR px (``ssr_models.infer.blend_tiles``); the blend is clamped to [0, 1] and rounded half to
    even (``degrade.ops.quantize.to_uint8``).
    """
    import torch

    from degrade.ops.quantize import to_uint8
    from ssr_models.infer import blend_tiles

    with torch.inference_mode():
        sr, _, _ = blend_tiles(x, lambda t: (fn(t), None, None), scale, tile, overlap)
    return to_uint8(sr[0].clamp(0, 1))


def flags_text(flags: dict[str, Any]) -> str:
    """Return ``use_depth=false, use_kernel=true`` for a flag dict (sorted)."""
    return ", ".join(f"{k}={str(v).lower()}" for k, v in sorted(flags.items()))


def lr_tensor(image: TestImage) -> torch.Tensor:
    """Return image.lr as float32 (1, 3, h, w) in [0, 1]."""
    import torch

    return torch.from_numpy(np.array(image.lr)).permute(2, 0, 1)[None].float().div(255)


def kinds_help() -> str:
    """Return one line per method kind (usage: summary) for ``--method``'s help."""
    return "\n".join(f"{METHOD_KINDS.meta(k).usage}: {METHOD_KINDS.meta(k).summary}" for k in METHOD_KINDS)
