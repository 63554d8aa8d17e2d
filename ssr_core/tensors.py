"""Compare tensor-name -> shape maps: how a checkpoint differs from the model it should fill.

One owner for the check that names missing, unexpected and mis-shaped tensors before a strict
load (weights of table metrics, the latent model's diffusers backbone), so every such refusal
reads the same. Shapes only: no tensor library needed here.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["compare_shapes"]


def compare_shapes(got: Mapping[str, tuple[int, ...]], want: Mapping[str, tuple[int, ...]]) -> str | None:
    """Return a short description of how two key->shape maps differ, or None if they agree.

    >>> compare_shapes({"w": (1, 2)}, {"w": (1, 3), "b": (3,)})
    "1 missing key(s) (e.g. 'b'); 1 shape mismatch(es) (e.g. 'w': (1, 2) instead of (1, 3))"
    """
    missing = [k for k in want if k not in got]
    unexpected = [k for k in got if k not in want]
    wrong = [k for k in want if k in got and tuple(got[k]) != tuple(want[k])]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(map(repr, missing[:3]))})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(map(repr, unexpected[:3]))})")
    if wrong:
        parts.append(f"{len(wrong)} shape mismatch(es) (e.g. "
                     + ", ".join(f"{k!r}: {tuple(got[k])} instead of {tuple(want[k])}" for k in wrong[:3])
                     + ")")
    return "; ".join(parts) or None
