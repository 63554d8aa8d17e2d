"""SR methods that fill table rows: what ``--method`` names and how each one super-resolves.

Kinds (:data:`METHOD_KINDS`, the one registry; ``parse_method`` picks the kind):

* ``bicubic``: MATLAB ``imresize`` bicubic of the LR (:mod:`degrade.ops.resize`), rounded to
  uint8 as MATLAB's uint8 conversion does (half away from zero: ``floor(x + 0.5)`` on x >= 0).
* ``nbsr-oracle``: an NBSR stage fed the test set's ground-truth kernel field, an upper bound.
* ``ssr``: a training run folder through :class:`ssr_models.infer.SRPipeline` (the paper's
  method: diffusion when the run has it, else svkr; seed 0, the depth provider ``depth``).
* ``spandrel``: a pretrained checkpoint (SwinIR, HAT, Real-ESRGAN, DAT, ...); see
  :mod:`eval.tables.spandrel_method`.
* ``folder``: outputs made elsewhere, matched by file stem (the only kind not cached: the
  outputs already are files).

Every method has the :class:`Method` shape. ``fingerprint_for(testset)`` changes whenever the
method's outputs on that set can change: for model kinds it covers the weights' bytes, the
options that reach the output and a per-kind code version (``CODE_VERSIONS``: bump it when the code
changes outputs); for ``folder`` it covers the matched files' names and bytes, which depend on
the test set, hence the argument for all kinds. Learned models (``nbsr-oracle``, ``ssr``) are
loaded on first use so a run whose outputs are all cached never loads them; ``spandrel`` loads at
parse time because its scale is only known from the weights.

Tiling: ``nbsr-oracle`` and ``spandrel`` go through :func:`ssr_models.infer.blend_tiles`
(``tile``/``overlap`` LR px); ``ssr`` tiles inside its pipeline with the same options.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from ssr_datasets.devices import resolve_device
from ssr_datasets.errors import ConfigError
from ssr_datasets.storage import dump_json

from .spec import RowSpec
from .testsets import TestImage, TestSet

if TYPE_CHECKING:  # torch is imported when a method runs, so that --help stays fast
    import torch

MethodKind = Literal["bicubic", "nbsr-oracle", "ssr", "spandrel", "folder"]
BUILTINS: tuple[str, ...] = ("bicubic",)  # kinds that need no path: ``--method bicubic``
CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
# part of every fingerprint: bump a kind's version when a code change can move its outputs
# (2: tiles spread evenly by ssr_models.infer.tile_starts)
CODE_VERSIONS: dict[str, str] = {"bicubic": "1", "nbsr-oracle": "2", "ssr": "2", "spandrel": "2",
                                 "folder": "1"}


@dataclass(frozen=True)
class MethodKindInfo:
    """One kind of method: what the user types and a line for ``--help``."""

    kind: MethodKind
    usage: str
    summary: str
    extra: str | None = None  # optional dependency group it needs


METHOD_KINDS: dict[str, MethodKindInfo] = {}


def _register(info: MethodKindInfo) -> None:
    if info.kind in METHOD_KINDS:
        raise ConfigError(f"method kind {info.kind!r} is registered twice")
    METHOD_KINDS[info.kind] = info


_register(MethodKindInfo("bicubic", "bicubic", "MATLAB imresize bicubic upscaling of the LR (built in)"))
_register(MethodKindInfo("nbsr-oracle", "nbsr-oracle=RUN_DIR", "the run's NBSR fed the ground-truth "
                         "kernel field: an upper bound (synthetic sets only)"))
_register(MethodKindInfo("ssr", "NAME=RUN_DIR", "an ssr-train run folder (kernel/, nbsr/, diffusion/), "
                         "run as ssr-infer --method diffusion runs it (svkr without a diffusion stage)"))
_register(MethodKindInfo("spandrel", "NAME=WEIGHTS.pth|.pt|.ckpt|.safetensors|.bin", "a pretrained SR "
                         "checkpoint spandrel can load (SwinIR, HAT, Real-ESRGAN, DAT, ...)",
                         extra="methods"))
_register(MethodKindInfo("folder", "NAME=DIR", "SR outputs made elsewhere, named {key} or {image_id} "
                         "(in DIR/<group>/ when that folder exists)"))


class Method(Protocol):
    """What the table runner needs of an SR method (see the module docstring)."""

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
    return hashlib.sha256(dump_json(obj)).hexdigest()


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


@dataclass
class BicubicMethod:
    """MATLAB bicubic upscaling of the LR; see the module docstring for the rounding."""

    name: str = "bicubic"
    kind: MethodKind = "bicubic"
    caches_outputs: bool = True

    def fingerprint_for(self, testset: TestSet) -> str:
        return digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind]})

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "implementation": "degrade.ops.resize.imresize_bicubic",
                "convention": "MATLAB imresize bicubic (a = -0.5, half-pixel centres, symmetric "
                              "borders), float64, uint8 by floor(x + 0.5) and clipping",
                "version": CODE_VERSIONS[self.kind]}

    def unsupported(self, testset: TestSet) -> str | None:
        return None

    def check_row(self, row: RowSpec) -> None:
        refuse_expects(self, row)

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        import torch

        from degrade.ops.resize import imresize_bicubic

        lr = torch.from_numpy(np.array(image.lr)).permute(2, 0, 1).double()
        up = imresize_bicubic(lr, testset.scale).permute(1, 2, 0).numpy()
        return np.clip(np.floor(up + 0.5), 0, 255).astype(np.uint8)


def builtin_method(builtin: str, name: str | None = None) -> Method:
    """Return the built-in method ``builtin`` (a row's ``builtin:``) filling row ``name``.

    Raises:
        ConfigError: not a built-in (lists them).
    """
    if builtin not in BUILTINS:
        raise ConfigError(f"unknown built-in method {builtin!r}; built-ins: {', '.join(BUILTINS)}")
    return BicubicMethod(name or builtin)


def kinds_help() -> str:
    """Return one line per method kind (usage: summary) for ``--method``'s help."""
    return "\n".join(f"{k.usage}: {k.summary}" for k in METHOD_KINDS.values())


def parse_method(text: str, *, device: str = "cpu", tile: int = 256, overlap: int = 16,
                 depth: str = "prior") -> Method:
    """Turn one ``--method`` value into a method.

    ``bicubic`` (a built-in, bare), or ``NAME=SPEC`` where NAME is the row it fills
    (``[A-Za-z0-9][A-Za-z0-9_.+-]*``) and SPEC a path: NAME ``nbsr-oracle`` -> the NBSR oracle
    of a run folder; a run folder (run.json, or kernel/ nbsr/ diffusion/ stage folders holding
    one) -> ``ssr``; a file ending in a checkpoint suffix -> ``spandrel``; any other folder ->
    ``folder``.

    Args:
        device: torch device of learned methods. tile, overlap: LR px, tiling of learned methods.
        depth: the depth provider of ``ssr`` methods (ssr_models.infer.DEPTH_CHOICES).

    Raises:
        ConfigError: malformed text, unknown built-in, bad NAME, missing path (named), a file that
            is not a checkpoint, bad options; InputError from reading a run folder or checkpoint.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ConfigError(f"need tile >= 1 and 0 <= overlap < tile (LR px), got tile {tile}, "
                          f"overlap {overlap}")
    name, sep, spec = text.partition("=")
    if not sep:
        if text in BUILTINS:
            return builtin_method(text)
        if text.lower() == "nbsr-oracle":
            raise ConfigError("--method nbsr-oracle needs the NBSR it runs: --method nbsr-oracle=RUN_DIR "
                              "(an ssr-train run folder holding nbsr/, or the nbsr stage folder)")
        close = difflib.get_close_matches(text, BUILTINS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        if not close and Path(text).expanduser().exists():
            hint = f" (to use this path: --method NAME={text})"
        raise ConfigError(f"--method {text!r}: expected NAME=PATH or a built-in{hint}; forms:\n"
                          + kinds_help())
    if not _NAME.match(name):
        raise ConfigError(f"--method {text!r}: NAME {name!r} must start with a letter or digit and hold "
                          "only letters, digits and _ . + -")
    if not spec:
        raise ConfigError(f"--method {text!r}: no path after '='")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ConfigError(f"--method {text!r}: no such file or folder: {path}")
    path = path.resolve()
    if name.lower() == "nbsr-oracle":
        return _oracle(name, path, device=device, tile=tile, overlap=overlap)
    if path.is_file():
        if path.suffix.lower() not in CHECKPOINT_SUFFIXES:
            raise ConfigError(f"--method {text!r}: {path} is a file but not a checkpoint "
                              f"({', '.join(CHECKPOINT_SUFFIXES)}); outputs go in a folder: NAME=DIR")
        if (path.parent / "run.json").is_file():
            raise ConfigError(f"--method {text!r}: {path} belongs to an ssr-train stage folder; give the "
                              f"run folder instead: {name}={path.parent.parent}")
        from .spandrel_method import SpandrelMethod

        return SpandrelMethod.load(name, path, device=device, tile=tile, overlap=overlap)
    if _is_run(path):
        from .run_methods import RunStages, SSRMethod

        return SSRMethod(name, RunStages.read(path), device=resolve_device(device), tile=tile,
                         overlap=overlap, depth=_depth(depth))
    from .folder_method import FolderMethod

    return FolderMethod(name, path)


def _is_run(path: Path) -> bool:
    return (path / "run.json").is_file() or any((path / s / "run.json").is_file()
                                                for s in ("kernel", "nbsr", "diffusion"))


def _depth(depth: str) -> str:
    from ssr_models.infer import DEPTH_CHOICES

    if depth not in DEPTH_CHOICES:
        raise ConfigError(f"unknown depth provider {depth!r}; choose one of: {', '.join(DEPTH_CHOICES)}")
    return depth


def _oracle(name: str, path: Path, *, device: str, tile: int, overlap: int) -> Method:
    from .run_methods import NBSROracleMethod, RunStages

    if not path.is_dir() or not _is_run(path):
        raise ConfigError(f"--method {name}={path}: the NBSR oracle needs an ssr-train run folder "
                          "holding nbsr/ (or the nbsr stage folder)")
    stages = RunStages.read(path)
    if "nbsr" not in stages.folders:
        found = ", ".join(f"{s}/" for s in sorted(stages.folders)) or "none"
        raise ConfigError(f"--method {name}={path}: the run has no nbsr stage (found: {found})")
    return NBSROracleMethod(name, stages, device=resolve_device(device), tile=tile, overlap=overlap)
