"""What every `degrade` command shares: library errors become click errors here, once."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from ssr_datasets.errors import SsrError


def library_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an SsrError raised by a command into a click error (message, exit code 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SsrError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper
