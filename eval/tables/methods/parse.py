"""Turn a ``--method`` value into a table method of the right kind (:func:`parse_method`)."""

from __future__ import annotations

import re
from pathlib import Path

from ssr_core.config import did_you_mean
from ssr_core.devices import resolve_device
from ssr_core.errors import ConfigError

from .base import Method, kinds_help
from .bicubic import BUILTINS, builtin_method
from .folder import FolderMethod
from .nbsr_oracle import NBSROracleMethod
from .run_stages import RunStages
from .spandrel import SpandrelMethod
from .ssr import SSRMethod

CHECKPOINT_SUFFIXES: tuple[str, ...] = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


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
        hint = did_you_mean(text, BUILTINS)
        if not hint and Path(text).expanduser().exists():
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
        return SpandrelMethod.load(name, path, device=device, tile=tile, overlap=overlap)
    if _is_run(path):
        return SSRMethod(name, RunStages.read(path), device=resolve_device(device), tile=tile,
                         overlap=overlap, depth=_depth(depth))
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
    if not path.is_dir() or not _is_run(path):
        raise ConfigError(f"--method {name}={path}: the NBSR oracle needs an ssr-train run folder "
                          "holding nbsr/ (or the nbsr stage folder)")
    stages = RunStages.read(path)
    if "nbsr" not in stages.folders:
        found = ", ".join(f"{s}/" for s in sorted(stages.folders)) or "none"
        raise ConfigError(f"--method {name}={path}: the run has no nbsr stage (found: {found})")
    return NBSROracleMethod(name, stages, device=resolve_device(device), tile=tile, overlap=overlap)
