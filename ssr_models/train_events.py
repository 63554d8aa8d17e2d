"""What a running Trainer reports (events) and how it is asked to stop (SIGINT/SIGTERM).

Events go to an optional callback, so that progress bars and printing stay in the CLI layer:

* ``"start"``: ``{"step", "steps", "log_every"}`` once, when ``fit`` begins (``step`` > 0 after
  a resume);
* ``"step"``: after every optimizer step, ``{"step", "steps", "loss", "lr", "data_wait_s",
  "step_s"}``: seconds spent waiting for the batch and for the whole step (wait included);
* ``"val"``: the validation means (``val/...`` keys) when they are computed;
* ``"ckpt"``: ``{"path"}`` of each checkpoint written.

Stopping: inside :func:`graceful_stop` the first SIGINT (Ctrl-C) or SIGTERM only sets a flag;
the Trainer finishes the step it is in, checkpoints it and raises :class:`TrainingInterrupted`
(never a half-updated state on disk). A second SIGINT interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ssr_core.errors import SsrError

__all__ = ["EventKind", "StopFlag", "TrainEvent", "TrainingInterrupted", "graceful_stop"]

EventKind = Literal["start", "step", "val", "ckpt"]


@dataclass(frozen=True)
class TrainEvent:
    """One report of a running Trainer (see the module docstring for each kind's data)."""

    kind: EventKind
    data: dict[str, Any]


Callback = Callable[[TrainEvent], None]


class TrainingInterrupted(SsrError):
    """Training stopped on a signal after checkpointing; ``checkpoint`` is where it is."""

    def __init__(self, step: int, checkpoint: Path | None, signal_name: str) -> None:
        self.step, self.checkpoint, self.signal_name = step, checkpoint, signal_name
        where = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint (not rank 0)"
        super().__init__(f"stopped by {signal_name} at step {step}; {where}")


@dataclass
class StopFlag:
    """The signal that asked training to stop, if any (set by :func:`graceful_stop`)."""

    signum: int | None = None

    @property
    def name(self) -> str:
        """Name of the received signal ("SIGINT", "SIGTERM"), or "" when none."""
        return signal.Signals(self.signum).name if self.signum is not None else ""


@contextlib.contextmanager
def graceful_stop() -> Iterator[StopFlag]:
    """Turn SIGINT/SIGTERM into a flag for the duration of the block (main thread only).

    Outside the main thread (where Python cannot install handlers) the flag is never set and
    signals keep their usual effect.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop now
        flag.signum = signum

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
