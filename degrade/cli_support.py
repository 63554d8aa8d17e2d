"""What the four CLIs (degrade, ssr-train, ssr-infer, ssr-eval) share, defined once: library
errors become click errors here, the one ``--device`` option, and SIGTERM that stops like Ctrl-C."""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import click

from ssr_datasets.devices import DEVICE_CHOICES, resolve_device
from ssr_datasets.errors import ConfigError, SsrError


def library_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an SsrError raised by a command into a click error (message, exit code 1)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SsrError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


class DeviceType(click.ParamType):
    """A torch device name (cpu, cuda, cuda:N, auto), resolved and checked on this machine.

    ``auto`` becomes ``cuda`` or ``cpu`` here, so commands receive a concrete device; a CUDA
    device that this torch cannot reach is a one-line usage error, not a traceback later.
    """

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        try:
            return resolve_device(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def device_option(default: str = "cpu", what: str = "Torch device") -> Callable[[Any], Any]:
    """Return the ``--device`` option: ``what`` says what runs there (first words of the help)."""
    return click.option("--device", type=DeviceType(), default=default, show_default=True,
                        metavar="cpu|cuda|cuda:N|auto",
                        help=f"{what}: {DEVICE_CHOICES} ('auto' = cuda when available, else "
                             "cpu; N = GPU index).")


def allow_download_option() -> Callable[[Any], Any]:
    """Return the ``--allow-download`` flag of every command that may need learned depth weights."""
    return click.option("--allow-download", is_flag=True,
                        help="Let a learned depth model (midas, depth-anything) whose weights are "
                             "not on disk fetch them from the Hugging Face hub into its cache "
                             "(off by default: everything runs offline; never while "
                             "HF_HUB_OFFLINE is set).")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM (``kill PID``, a job scheduler, ``docker stop``) act like Ctrl-C inside.

    Python's default for SIGTERM is to die on the spot, skipping the cleanup that Ctrl-C's
    KeyboardInterrupt runs (kill the workers, keep the finished shards, say how to resume).
    Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
