"""Fault-injection helpers shared by the test packages: processes that are gone, their temps."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ssr_core.io import writer_tag


def dead_pid() -> int:
    """Return the pid of a process that ran on this host and has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def temp_of(folder: Path, name: str, pid: int, suffix: str = ".tmp",
            random: str | None = "k3j2h1x0") -> Path:
    """Return the path a writer with ``pid`` on this host gives its temp of ``name``
    (``random=None``: no random part, as ``ssr_core.io.link_atomic`` names its temp)."""
    host = writer_tag().split("-")[1]
    return folder / f".{name}.{pid}-{host}{'.' + random if random else ''}{suffix}"
