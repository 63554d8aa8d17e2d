"""Click option types shared by the ``ssr-eval`` commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from eval.metrics.registry import get_metric
from ssr_core.errors import ConfigError


class MetricList(click.ParamType):
    """A comma-separated list of registered image metrics (order kept, repeats refused).

    Kernel-track metrics (``target == "kernel"``) are refused: ``ssr-eval kernels`` scores them.
    """

    name = "list"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> list[str]:
        if isinstance(value, list):
            return value
        names = [n.strip().lower() for n in str(value).split(",") if n.strip()]
        if not names:
            self.fail("give at least one metric", param, ctx)
        for name in names:
            try:
                spec = get_metric(name)
            except ConfigError as exc:
                self.fail(str(exc), param, ctx)
            if spec.target != "image":
                self.fail(f"{name} scores kernel estimates, not images: use `ssr-eval kernels`",
                          param, ctx)
        if len(set(names)) != len(names):
            self.fail(f"a metric is listed twice in {value!r}", param, ctx)
        return names


def emit_table(result: Any, fmt: str, out: Path | None) -> None:
    """Print a rendered table (colour on a terminal) or write it atomically to ``out``.

    Args:
        result: an ``eval.tables.result.TableResult``. fmt: a format of ``eval.tables.render``.
        out: the file to write, or None for stdout; a write is announced on stderr.
    """
    from ssr_core.io import write_bytes_atomic

    from .tables.render import render

    text = render(result, fmt, color=out is None and sys.stdout.isatty())
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        write_bytes_atomic(out, text.encode("utf-8"))
        click.echo(f"wrote {out} ({fmt})", err=True)
