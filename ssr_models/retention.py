"""Which checkpoints a stage folder keeps: the best one by a validation metric, and the newest.

Files (beside ``ckpt-{step:07d}.pt``, see :mod:`ssr_models.trainer`):

* ``last.pt``: the newest checkpoint (a hard link, swapped in by rename);
* ``best.pt``: the checkpoint whose validation was best so far by ``best_metric``, a hard link
  (or copy) made by the same atomic swap; it outlives the ``ckpt-*`` name it was linked from.
  ``ssr-infer`` and ``ssr-eval`` load it by default when it exists (:func:`stage_checkpoint`).

``best_metric`` (``TrainerConfig``) names a validation value (the key without ``val/``) and a
direction: ``"psnr_y"`` or ``"kernel_l1:min"``. Known names carry their direction
(:data:`METRIC_DIRECTIONS`: PSNR/SSIM up, LPIPS, kernel errors and losses down); any other name
needs ``:max`` or ``:min``. ``"auto"`` (the default) takes the first of :data:`AUTO_ORDER`
that the validation reports: Y-channel PSNR for the image stages, the kernel L1 for DKENet.
Ties keep the earlier checkpoint (a later one must be strictly better).

Retention (``keep_last`` = n > 0): after a checkpoint is safely written and linked as
``last.pt``, the ``ckpt-*.pt`` files older than the newest n are deleted. ``last.pt`` and
``best.pt`` are names of their own, never deleted. 0 keeps everything.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ssr_core.errors import ConfigError

__all__ = ["AUTO_ORDER", "BEST", "LAST", "METRIC_DIRECTIONS", "BestMetric", "Direction",
           "checkpoint_steps", "prune_checkpoints", "stage_checkpoint"]

BEST = "best.pt"
LAST = "last.pt"
Direction = Literal["max", "min"]
# Validation values (val/<name>) whose better direction is known.
METRIC_DIRECTIONS: dict[str, Direction] = {
    "psnr_y": "max", "ssim_y": "max", "psnr": "max", "ssim": "max", "lpips": "min",
    "kernel_l1": "min", "field_l1": "min", "s1_mae": "min", "s2_mae": "min",
    "theta_mae": "min", "loss": "min",
}
AUTO_ORDER: tuple[str, ...] = ("psnr_y", "kernel_l1", "psnr", "loss")
_CKPT = re.compile(r"ckpt-(\d{7,})\.pt")


@dataclass(frozen=True)
class BestMetric:
    """A validation value and its better direction.

    Attributes:
        name: The validation key without ``val/`` (e.g. ``psnr_y``); "auto" until resolved.
        direction: "max" (higher is better) or "min".
    """

    name: str
    direction: Direction = "max"

    @classmethod
    def parse(cls, text: str) -> BestMetric:
        """Parse ``"NAME"`` (a known name), ``"NAME:max"``, ``"NAME:min"`` or ``"auto"``.

        Raises:
            ConfigError: An empty name, a direction other than max/min, or an unknown name
                without a direction.
        """
        name, _, direction = str(text).removeprefix("val/").partition(":")
        if not name:
            raise ConfigError(f"best_metric needs a name, got {text!r}")
        if name == "auto" and not direction:
            return cls("auto")
        if direction and direction not in ("max", "min"):
            raise ConfigError(f"best_metric direction must be max or min, got {text!r}")
        if not direction:
            if name not in METRIC_DIRECTIONS:
                raise ConfigError(f"best_metric {name!r} has no known direction: write "
                                  f"{name}:max or {name}:min (known: "
                                  f"{', '.join(METRIC_DIRECTIONS)})")
            direction = METRIC_DIRECTIONS[name]
        return cls(name, direction)  # type: ignore[arg-type]

    def resolve(self, val: dict[str, float]) -> BestMetric | None:
        """Return the metric to judge ``val`` (``val/...`` keys) by, or None if it has none."""
        if self.name != "auto":
            return self if f"val/{self.name}" in val else None
        name = next((n for n in AUTO_ORDER if f"val/{n}" in val), None)
        return None if name is None else BestMetric(name, METRIC_DIRECTIONS[name])

    def better(self, new: float, old: float | None) -> bool:
        """Whether ``new`` beats ``old`` (None = nothing yet); NaN never does."""
        if math.isnan(new):
            return False
        if old is None:
            return True
        return new > old if self.direction == "max" else new < old

    def text(self) -> str:
        """Return ``name:direction`` (what config.json and messages show)."""
        return self.name if self.name == "auto" else f"{self.name}:{self.direction}"


def checkpoint_steps(folder: str | Path) -> list[tuple[int, Path]]:
    """Return ``(step, path)`` of the ``ckpt-*.pt`` files in ``folder``, oldest first."""
    found = []
    for path in Path(folder).glob("ckpt-*.pt"):
        m = _CKPT.fullmatch(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return sorted(found)


def prune_checkpoints(folder: str | Path, keep_last: int) -> list[Path]:
    """Delete ``ckpt-*.pt`` files but the newest ``keep_last``; return the deleted paths.

    ``last.pt`` and ``best.pt`` are never touched (they are names of their own). Call it only
    after the newest checkpoint is written and linked. ``keep_last`` 0 deletes nothing.

    Raises:
        ConfigError: ``keep_last`` < 0.
    """
    if keep_last < 0:
        raise ConfigError(f"keep_last must be >= 0, got {keep_last}")
    if keep_last == 0:
        return []
    old = [path for _, path in checkpoint_steps(folder)[:-keep_last]]
    for path in old:
        path.unlink(missing_ok=True)
    return old


def stage_checkpoint(folder: str | Path, which: Literal["auto", "best", "last"] = "auto") -> Path:
    """Return the checkpoint a stage folder is used with: ``best.pt`` when present, else ``last.pt``.

    Args:
        which: "auto" (best, else last), or one of them explicitly.

    Raises:
        ConfigError: An unknown ``which``.
    """
    if which not in ("auto", "best", "last"):
        raise ConfigError(f"which must be auto, best or last, got {which!r}")
    folder = Path(folder)
    if which == "last" or (which == "auto" and not (folder / BEST).is_file()):
        return folder / LAST
    return folder / BEST
