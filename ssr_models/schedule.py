"""The learning-rate schedule: linear warm-up, then cosine to 0 (or constant), extendable.

``factor(k)`` multiplies the peak rate for the optimizer step after ``k`` steps (what
``torch.optim.lr_scheduler.LambdaLR`` calls with ``last_epoch = k``):

* warm-up, ``k < warmup``: ``(k + 1) / warmup``;
* ``constant``: 1;
* ``cosine``: ``0.5 (1 + cos(pi p))`` with the progress ``p`` in [0, 1] linear in ``k`` between
  an anchor ``(k0, p0)`` and ``(steps, 1)``: ``p = p0 + (1 - p0) (k - k0) / (steps - k0)``.
  A new schedule's anchor is ``(warmup, 0)``, which is the usual cosine over ``steps``.

Changing the step count of a resumed run (``ssr-train --resume --steps N``) moves the anchor to
the resume step and its progress, so the rate continues from where it was and decays to 0 at the
new total: no jump, no restart. A run whose cosine had already ended (``p = 1``, rate 0) cannot
continue that way; it follows the new total's cosine from the resume step (what a run started
with ``N`` steps would use there), and :meth:`LRSchedule.with_steps` says so in its note.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from ssr_core.errors import ConfigError

__all__ = ["LRSchedule", "Schedule"]

Schedule = Literal["cosine", "constant"]


@dataclass(frozen=True)
class LRSchedule:
    """Warm-up + cosine/constant schedule over ``steps`` optimizer steps (see the module doc).

    Attributes:
        steps: Total optimizer steps (the cosine reaches 0 there).
        warmup: Linear warm-up length in steps.
        kind: "cosine" or "constant" after the warm-up.
        anchor_step, anchor_progress: The cosine's anchor ``(k0, p0)``; None = ``(warmup, 0)``.
    """

    steps: int
    warmup: int = 0
    kind: Schedule = "cosine"
    anchor_step: int | None = None
    anchor_progress: float = 0.0

    def progress(self, k: int) -> float:
        """Return the cosine progress in [0, 1] after ``k`` steps (0 during the warm-up)."""
        k0 = self.warmup if self.anchor_step is None else self.anchor_step
        if k <= k0:
            return self.anchor_progress if self.anchor_step is not None else 0.0
        p = self.anchor_progress + (1.0 - self.anchor_progress) * (k - k0) / max(1, self.steps - k0)
        return min(1.0, p)

    def factor(self, k: int) -> float:
        """Return the rate multiplier in [0, 1] for the step after ``k`` steps."""
        if k < self.warmup:
            return (k + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * self.progress(k)))

    def with_steps(self, steps: int, at: int) -> tuple[LRSchedule, str | None]:
        """Return the schedule continued at step ``at`` with a new total, and a note or None.

        Raises:
            ConfigError: ``steps`` is not above ``at``.
        """
        if steps == self.steps:
            return self, None
        if steps <= at:
            raise ConfigError(f"cannot continue at step {at} with a total of {steps} steps")
        if self.kind == "constant" or at < self.warmup:
            return replace(self, steps=steps), None
        p = self.progress(at)
        if p < 1.0:
            return replace(self, steps=steps, anchor_step=at, anchor_progress=p), None
        fresh = LRSchedule(steps, self.warmup, self.kind)
        return fresh, (f"the cosine schedule had ended at step {self.steps} (rate 0); steps "
                       f"{at + 1}-{steps} follow the {steps}-step cosine (rate x"
                       f"{fresh.factor(at):.3f} of the peak at step {at + 1})")

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule as plain values (stored in checkpoints)."""
        return {"steps": self.steps, "warmup": self.warmup, "kind": self.kind,
                "anchor_step": self.anchor_step, "anchor_progress": self.anchor_progress}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> LRSchedule:
        """Rebuild a schedule saved by :meth:`state_dict`."""
        return cls(steps=int(state["steps"]), warmup=int(state["warmup"]), kind=state["kind"],
                   anchor_step=None if state["anchor_step"] is None else int(state["anchor_step"]),
                   anchor_progress=float(state["anchor_progress"]))
