"""What the four CLIs (degrade, ssr-train, ssr-infer, ssr-eval) share, defined once.

Library errors become click errors here (:func:`library_errors`); the options that several CLIs
take are defined once, so they accept the same values everywhere: ``--device``
(:func:`device_option`), ``--tile``/``--overlap`` (:func:`tile_options`), ``--weights-dir``
(:func:`weights_dir_option`), ``--allow-download`` (:func:`allow_download_option`); a registry's
names become a ``click.Choice`` through :func:`registry_choice`; SIGTERM stops like Ctrl-C
(:func:`sigterm_as_interrupt`). The only module of ssr_core that imports click.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from .devices import DEVICE_CHOICES, resolve_device
from .errors import ConfigError, SsrError
from .registry import Registry

#: Smallest --tile, LR px. SRPipeline (ssr_models.infer) reflect-pads every tile to at least its
#: ``min_size`` of 16 LR px, so a smaller tile would cost the work of a 16-px one on more tiles.
MIN_TILE = 16


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


def tile_options(what: str = "Tile side in LR px") -> Callable[[Any], Any]:
    """Return the ``--tile`` and ``--overlap`` options (LR px), one minimum for every CLI.

    ``what`` starts the ``--tile`` help. Check ``overlap < tile`` with :func:`check_overlap`.
    """
    tile = click.option(
        "--tile", type=click.IntRange(min=MIN_TILE), default=256, show_default=True, metavar="PX",
        help=f"{what} (at least {MIN_TILE}: the SSR pipeline pads a smaller tile to {MIN_TILE} LR px).")
    overlap = click.option(
        "--overlap", type=click.IntRange(min=0), default=16, show_default=True, metavar="PX",
        help="Tile overlap in LR px (blended with a cosine ramp); must be < --tile.")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return tile(overlap(fn))

    return decorate


def check_overlap(tile: int, overlap: int) -> None:
    """Refuse ``--overlap`` >= ``--tile`` as a usage error (exit code 2) naming ``--overlap``."""
    if overlap >= tile:
        raise click.BadParameter(f"--overlap {overlap} must be smaller than --tile {tile}",
                                 param_hint="--overlap")


def weights_dir_option(help: str) -> Callable[[Any], Any]:
    """Return the ``--weights-dir`` option (a folder, default None); ``help`` says what is there."""
    return click.option("--weights-dir", type=click.Path(path_type=Path, file_okay=False),
                        default=None, help=help)


def depth_cache_option(when: str = "") -> Callable[[Any], Any]:
    """Return the ``--depth-cache`` option (the folder of cached nearness maps, default None).

    ``when`` starts the help ("With --online: ") where the option applies only with another one.
    """
    return click.option(
        "--depth-cache", type=click.Path(path_type=Path, file_okay=False), default=None,
        help=f"{when}where learned nearness maps are kept, keyed by (image pixels, model): "
             "rebuilding with another recipe never recomputes depth. Default: "
             "$SSR_BENCH_CACHE/depth or ~/.cache/ssr-bench/depth.")


def registry_choice(registry: Registry[Any, Any]) -> click.Choice:
    """Return a ``click.Choice`` of a registry's names (registration order): one source of names."""
    return click.Choice(list(registry.names()))


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
