"""Torch device names as users type them: one parser and one availability check for every CLI
and library entry point (``--device`` of degrade, ssr-train, ssr-infer and ssr-eval).

Accepted: ``cpu``, ``cuda`` (the current CUDA device), ``cuda:N`` and ``auto`` (``cuda`` when
CUDA is available, else ``cpu``). A CUDA device is refused up front with one line when this
torch cannot reach it, instead of a traceback from deep inside the first ``.to(device)``.
torch is imported only when a CUDA name has to be checked, so ``--help`` stays fast.
"""

from __future__ import annotations

import re

from .errors import ConfigError

DEVICE_CHOICES = "cpu, cuda, cuda:N or auto"
_SYNTAX = re.compile(r"cpu|auto|cuda(?::(\d+))?")


def parse_device(spec: str) -> str:
    """Return ``spec`` normalised (stripped, lower case) if it is a device name; no torch needed.

    >>> parse_device(" CUDA:1 "), parse_device("cpu")
    ('cuda:1', 'cpu')

    Raises:
        ConfigError: anything but cpu, cuda, cuda:N or auto (the choices are listed).
    """
    text = str(spec).strip().lower()
    if not _SYNTAX.fullmatch(text):
        raise ConfigError(f"unknown device {spec!r}: expected {DEVICE_CHOICES} "
                          "(N = a CUDA device index, 0 = the first GPU)")
    return text


def resolve_device(spec: str) -> str:
    """Return the torch device string ``spec`` means on this machine ('auto' decided here).

    Args:
        spec: cpu, cuda, cuda:N or auto (see :func:`parse_device`).

    Returns:
        "cpu", "cuda" or "cuda:N", usable as ``torch.device(...)``.

    Raises:
        ConfigError: a malformed name, CUDA asked for where ``torch.cuda.is_available()`` is
            False, or an index at or beyond ``torch.cuda.device_count()``.
    """
    text = parse_device(spec)
    if text == "cpu":
        return text
    import torch

    available = torch.cuda.is_available()
    if text == "auto":
        return "cuda" if available else "cpu"
    if not available:
        raise ConfigError(f"device {text!r} needs CUDA, but torch.cuda.is_available() is False "
                          "here (no NVIDIA GPU or driver, or a CPU-only torch build); use cpu")
    index = _SYNTAX.fullmatch(text).group(1)  # type: ignore[union-attr]
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise ConfigError(f"device {text!r} does not exist: this machine has {count} CUDA "
                          f"device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return text
