"""What ``ssr-train`` shows while it trains: a live bar (or log lines), validations, a summary.

CLI layer only (the Trainer reports ``TrainEvent``s; this turns them into text on stderr):

* on a terminal, a tqdm bar per stage with step, loss, learning rate, data-wait share and ETA;
* otherwise (a log file, CI, a pipe) one line every ``log_every`` steps and at the end::

      kernel  step 100/300  loss 0.0412  lr 1.8e-03  data-wait 4%  2.9 step/s  ETA 1m09s

* each validation as it comes, with bicubic's PSNR beside the model's when the family
  reports it (marked ``[below bicubic]`` when lower);
* after each stage, :func:`stage_summary` lines (stdout), with a warning (stderr) when the
  stage's last validation is below bicubic.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

import click

from .train_events import TrainEvent

__all__ = ["TrainProgress", "below_bicubic", "stage_summary", "validation_text"]


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, s = divmod(seconds, 60)
    return f"{minutes}m{s:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def validation_text(val: dict[str, float]) -> str:
    """Return validation means as text: PSNR beside bicubic's, other keys as they are."""
    v = {k.removeprefix("val/"): x for k, x in val.items()}
    parts = []
    if "psnr" in v and "psnr_bicubic" in v:
        gain = v["psnr"] - v["psnr_bicubic"]
        parts.append(f"PSNR {v['psnr']:.2f} dB vs bicubic {v['psnr_bicubic']:.2f} dB "
                     f"({gain:+.2f} dB)")
    if "psnr_y" in v and "psnr_y_bicubic" in v:
        parts.append(f"Y PSNR {v['psnr_y']:.2f} dB vs {v['psnr_y_bicubic']:.2f} dB")
    shown = ("psnr", "psnr_bicubic", "psnr_y", "psnr_y_bicubic")
    parts += [f"{k} {x:.4g}" for k, x in v.items() if k not in shown]
    return ", ".join(parts)


def below_bicubic(val: dict[str, float]) -> bool:
    """Whether validation PSNR is below bicubic's (False when either is missing)."""
    psnr, bic = val.get("val/psnr"), val.get("val/psnr_bicubic")
    return psnr is not None and bic is not None and psnr < bic


class TrainProgress:
    """Event callback of one stage: live bar or periodic lines on ``file`` (stderr)."""

    def __init__(self, stage: str, file: IO[str] | None = None, tty: bool | None = None) -> None:
        self.stage = stage
        self.file = file if file is not None else sys.stderr
        self.tty = self.file.isatty() if tty is None else tty
        self.bar: Any = None
        self.every, self.steps, self.first = 1, 0, 0
        self.t0 = time.perf_counter()
        self.wait = self.busy = 0.0

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            click.echo(line, file=self.file)

    def __call__(self, event: TrainEvent) -> None:
        d = event.data
        if event.kind == "start":
            self.every, self.steps, self.first = d["log_every"], d["steps"], d["step"]
            self.t0 = time.perf_counter()
            if d.get("note"):
                self._write(f"{self.stage}: note: {d['note']}")
            if self.tty:
                from tqdm import tqdm

                self.bar = tqdm(total=self.steps, initial=self.first, desc=self.stage,
                                unit="step", file=self.file, dynamic_ncols=True, leave=False)
        elif event.kind == "step":
            self._step(d)
        elif event.kind == "val":
            val = {k: v for k, v in d.items() if k.startswith("val/")}
            flag = "  [below bicubic]" if below_bicubic(val) else ""
            self._write(f"{self.stage}  step {d['step']}  validation: {validation_text(val)}{flag}")

    def _step(self, d: dict[str, Any]) -> None:
        self.wait, self.busy = self.wait + d["data_wait_s"], self.busy + d["step_s"]
        done = d["step"] - self.first
        rate = done / max(time.perf_counter() - self.t0, 1e-9)
        share = self.wait / self.busy if self.busy > 0 else 0.0
        eta = _duration((d["steps"] - d["step"]) / rate) if rate > 0 else "?"
        if self.bar is not None:
            self.bar.set_postfix_str(f"loss {d['loss']:.4g} lr {d['lr']:.1e} "
                                     f"data-wait {share:.0%}", refresh=False)
            self.bar.update(1)
        elif d["step"] % self.every == 0 or d["step"] == d["steps"]:
            self._write(f"{self.stage}  step {d['step']}/{d['steps']}  loss {d['loss']:.4g}  "
                        f"lr {d['lr']:.1e}  data-wait {share:.0%}  {rate:.2f} step/s  ETA {eta}")
        if d["step"] % self.every == 0:  # the share shown covers the last log window
            self.wait = self.busy = 0.0

    def close(self) -> None:
        """Remove the bar (the summary follows)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stage_summary(stage: str, result: Any) -> list[tuple[str, bool]]:
    """Return the summary lines of a trained stage as (text, is_warning) pairs.

    Args:
        result: ``ssr_models.run.StageResult``.
    """
    if result.skipped:
        return [(f"{stage}: already at step {result.step} -> {result.folder}", False)]
    lines = [(f"{stage}: trained to step {result.step} in {_duration(result.seconds)} "
              f"(data wait {result.data_wait_share:.0%} of step time) -> {result.folder}", False)]
    if result.stop_note:
        lines.append((f"  {result.stop_note}", False))
    if result.val:
        lines.append((f"  validation: {validation_text(result.val)}", False))
    if result.best:
        b = result.best
        lines.append((f"  best: val {b['metric']} {b['value']:.4g} ({b['direction']}) at step "
                      f"{b['step']} -> {result.folder / 'best.pt'} (ssr-infer/ssr-eval use it)",
                      False))
        if below_bicubic(result.val):
            lines.append((f"  warning: {stage} validates below bicubic; its outputs are worse "
                          "than plain upsampling: train longer, or on more data", True))
    else:
        lines.append(("  no validation (pass --val DIR to compare with bicubic)", False))
    if result.val and "val/psnr_y" in result.val and "val/lpips" not in result.val:
        lines.append(("  (no LPIPS in training validation: its weights load through ssr-eval; "
                      "score the run there)", False))
    return lines
