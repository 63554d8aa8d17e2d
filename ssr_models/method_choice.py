"""Which SR method a training run folder can run, and which one ``auto`` picks (and why).

A run folder (``ssr-train --out``) holds one folder per stage (``kernel``, ``nbsr``,
``diffusion``; see :mod:`ssr_models.run`). Methods and the stages they need (``_NEEDS``):
``svkr`` and ``nbsr-dkenet`` need kernel + nbsr, ``diffusion`` needs kernel + diffusion.

``auto`` (:func:`choose_method`) reads each stage's recorded validation: the Trainer appends
``{"step", "time", "val/psnr", "val/psnr_bicubic", ...}`` rows to the stage's ``metrics.jsonl``
whenever it validates (``ssr-train --val-shards``); the last row holding both values counts
(:func:`stage_validation`). The paper's method is the diffusion model, so ``auto`` takes
``diffusion`` when its stage validated above bicubic, else ``svkr`` (diffusion that is not shown
to beat bicubic is not worth 15 UNet passes per tile); with no nbsr stage it falls back to
``diffusion``. The nbsr stage validates NBSR fed the ground-truth kernels, an upper bound of
what SVKR reaches with estimated ones. The choice carries a one-line reason and, when the chosen
method's stage validated at or below bicubic, a warning; the library returns both, the CLI
prints them.

:func:`paper_method` is the structural rule (diffusion when the run has it, else svkr) that
benchmark tables use: a table row measures the paper's method, whatever its validation says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from degrade.depth import DEPTH_REQUESTS
from ssr_core.errors import ConfigError, InputError

Method = Literal["auto", "svkr", "nbsr-dkenet", "diffusion"]
METHODS: tuple[str, ...] = get_args(Method)
#: The depth ssr-infer can use: the depth providers' requests (degrade.depth) except "gt" (an
#: LR image to super-resolve has no ground-truth depth). The Literal is for the type checker;
#: tests/test_registries.py checks that it agrees with the registry.
DepthChoice = Literal["auto", "prior", "midas", "depth-anything"]
DEPTH_CHOICES: tuple[str, ...] = tuple(r for r in DEPTH_REQUESTS if r != "gt")
STAGES: tuple[str, ...] = ("kernel", "nbsr", "diffusion")
_NEEDS: dict[str, tuple[str, ...]] = {"svkr": ("kernel", "nbsr"), "nbsr-dkenet": ("kernel", "nbsr"),
                                      "diffusion": ("kernel", "diffusion")}
# the stage whose validation speaks for a method's output (DKENet validates kernels, not images)
_JUDGED_BY: dict[str, str] = {"svkr": "nbsr", "nbsr-dkenet": "nbsr", "diffusion": "diffusion"}
_HOW: dict[str, str] = {"nbsr": "NBSR with ground-truth kernels", "diffusion": "diffusion samples"}


@dataclass(frozen=True)
class Validation:
    """A stage's last recorded validation: PSNR (dB, RGB, [0, 1]) of the stage and of bicubic."""

    step: int
    psnr: float
    psnr_bicubic: float

    @property
    def beats_bicubic(self) -> bool:
        """True when the stage's PSNR is above bicubic's (NaN never is)."""
        return self.psnr > self.psnr_bicubic

    def text(self) -> str:
        """Return e.g. ``"18.08 dB vs bicubic 20.61 dB at step 200"``."""
        return f"{self.psnr:.2f} dB vs bicubic {self.psnr_bicubic:.2f} dB at step {self.step}"


@dataclass(frozen=True)
class MethodChoice:
    """A resolved method, the one-line reason for it, and a warning (or None) for the user."""

    method: str
    reason: str
    warning: str | None = None


def find_stages(path: str | Path) -> dict[str, Path]:
    """Return {stage: folder} of a run folder, or of a stage folder plus its siblings.

    Raises:
        InputError: ``path`` is not a folder, or a stage folder lacks ``last.pt``.
    """
    from .run import read_run

    root = Path(path)
    if not root.is_dir():
        raise InputError(root, "checkpoint must be a training run folder (holding kernel/, nbsr/, "
                               "diffusion/) or one stage folder; no such folder")
    stages: dict[str, Path] = {}
    if (root / "run.json").is_file():  # a stage folder given directly: siblings in its parent
        stages[str(read_run(root)["stage"])] = root
        root = root.parent
    for stage in STAGES:
        folder = root / stage
        if stage not in stages and (folder / "run.json").is_file():
            stages[stage] = folder
    for stage, folder in stages.items():
        if not (folder / "last.pt").is_file():
            raise InputError(folder, f"stage {stage!r} has run.json but no last.pt checkpoint")
    return stages


def stage_validation(folder: str | Path) -> Validation | None:
    """Return the last validation in ``folder/metrics.jsonl`` with psnr and psnr_bicubic, or None.

    Lines that are not JSON objects (a run killed mid-write) are skipped, not fatal: this only
    informs a choice.
    """
    path = Path(folder) / "metrics.jsonl"
    if not path.is_file():
        return None
    last = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "val/psnr" in row and "val/psnr_bicubic" in row:
                last = row
    if last is None:
        return None
    try:
        return Validation(int(last.get("step", -1)), float(last["val/psnr"]),
                          float(last["val/psnr_bicubic"]))
    except (TypeError, ValueError):
        return None


def paper_method(stages: Mapping[str, object]) -> str:
    """Return the paper's method a run can run: ``diffusion`` with kernel + diffusion, else ``svkr``."""
    return "diffusion" if {"kernel", "diffusion"} <= stages.keys() else "svkr"


def _judge(method: str, stages: Mapping[str, Path]) -> tuple[str, str | None]:
    """Return (what the judging stage's validation says, warning or None) for a method."""
    stage = _JUDGED_BY[method]
    val = stage_validation(stages[stage])
    if val is None:
        return (f"its {stage} stage has no recorded validation (train with --val-shards to "
                "compare it with bicubic)"), None
    said = f"its {stage} stage validated {val.text()} ({_HOW[stage]})"
    if val.beats_bicubic:
        return said, None
    return said, (f"{method} may be worse than bicubic: the {stage} stage validated {val.text()}; "
                  "train longer or on more data (config paper) before trusting its output")


def choose_method(method: str, stages: Mapping[str, Path], path: str | Path) -> MethodChoice:
    """Resolve ``method`` ("auto" by validation, see the module docstring) with reason and warning.

    Raises:
        ConfigError: unknown method. InputError: a stage the method needs is missing.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if method != "auto":
        _require(method, stages, path)
        said, warning = _judge(method, stages)
        return MethodChoice(method, f"asked for; {said}", warning)
    has_svkr = {"kernel", "nbsr"} <= stages.keys()
    if {"kernel", "diffusion"} <= stages.keys():
        val = stage_validation(stages["diffusion"])
        if val is not None and val.beats_bicubic:
            return MethodChoice("diffusion", f"the diffusion stage validated {val.text()} (the "
                                             "paper's method, and it beats bicubic)")
        if not has_svkr:
            said, warning = _judge("diffusion", stages)
            return MethodChoice("diffusion", f"the run has no nbsr stage for svkr; {said}", warning)
        why = ("the diffusion stage has no recorded validation" if val is None
               else f"the diffusion stage validated below bicubic ({val.text()})")
    else:
        why = "the run has no diffusion stage"
    _require("svkr", stages, path)
    said, warning = _judge("svkr", stages)
    return MethodChoice("svkr", f"{why}; {said}", warning)


def _require(method: str, stages: Mapping[str, object], path: str | Path) -> None:
    missing = [s for s in _NEEDS[method] if s not in stages]
    if missing:
        found = ", ".join(sorted(stages)) or "none"
        raise InputError(path, f"method {method!r} needs the stages {' + '.join(_NEEDS[method])}; "
                               f"missing: {', '.join(f'{s}/ (with run.json and last.pt)' for s in missing)}"
                               f"; found: {found}")


def resolve_method(method: str, stages: Mapping[str, Path], path: str | Path) -> str:
    """Return :func:`choose_method`'s method ("auto" resolved by validation)."""
    return choose_method(method, stages, path).method


def stages_used(method: str, stages: Mapping[str, object]) -> list[str]:
    """Return the stages a resolved method loads: its needs, plus nbsr for diffusion (SVKR's K, D)."""
    return [s for s in STAGES if s in stages and (s in _NEEDS[method] or method == "diffusion")]


__all__ = ["DEPTH_CHOICES", "METHODS", "STAGES", "DepthChoice", "Method", "MethodChoice", "Validation",
           "choose_method", "find_stages", "paper_method", "resolve_method", "stage_validation",
           "stages_used"]
