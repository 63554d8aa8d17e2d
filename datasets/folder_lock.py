"""One writer per output folder: an exclusive lock file naming its holder (pid, host, start).

Two builds into one folder corrupt it (shards of two seeds under one manifest; the second
build's temp clean-up deletes the first's open temp file), so a build holds
``<folder>/.ssr-bench.lock`` for its whole run and a second one is refused with a one-line
message naming the holder.

How: ``fcntl.flock`` on the lock file. The kernel drops the lock when its holder dies, however
it dies (SIGKILL included), so a lock we obtain whose file still names a holder was left by a
dead run: it is taken over, and the caller is told so. The holder's record is also checked:
a live pid of this host in a file whose lock we could take means a filesystem whose flock is a
no-op (some FUSE mounts), and we refuse rather than trust it. NFS (v4, and v3 with lockd)
implements flock across clients on Linux.

Object stores have no lock: :func:`exclusive_folder` only locks local paths, and the README
says that two builds into one ``s3://`` prefix must be prevented by the user.

The lock file's content is written in place (not temp-then-rename): the lock belongs to the
open inode, and a rename would put an unlocked file under the name.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ssr_core.errors import ConfigError

LOCK_NAME = ".ssr-bench.lock"

try:
    import fcntl
except ImportError:  # Windows: no flock; the lock is advisory metadata only
    fcntl = None  # type: ignore[assignment]


def _read_record(fd: int) -> dict[str, Any]:
    """Return the holder record stored in the lock file ({} when empty or unreadable)."""
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _describe(record: dict[str, Any]) -> str:
    """Return "pid N on HOST since TIME" for a holder record."""
    since = record.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(
        since, (int, float)) else "an unknown time"
    return f"pid {record.get('pid', '?')} on {record.get('host', '?')} since {when}"


def _pid_alive(pid: Any) -> bool:
    """True when ``pid`` names a running process of this machine (not this one).

    POSIX only: on Windows ``os.kill`` would end the process instead of probing it (False).
    """
    if os.name != "posix":
        return False
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _busy(folder: Path, record: dict[str, Any], what: str) -> ConfigError:
    return ConfigError(
        f"{folder} is in use by another {what} ({_describe(record)}); wait for it to finish or "
        f"choose another folder (if no such process runs, delete {folder / LOCK_NAME})")


@contextlib.contextmanager
def exclusive_folder(folder: Path, what: str = "build") -> Iterator[str | None]:
    """Hold the exclusive lock of ``folder`` (created if missing) for the ``with`` block.

    Yields:
        None, or a note when the lock of a dead holder was taken over ("took over ...").

    Raises:
        ConfigError: another live process holds the lock; the message names its pid, host and
            start time, and the file to delete if that process is known to be gone.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    host = socket.gethostname()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            record = _read_record(fd)
            os.close(fd)
            raise _busy(folder, record, what) from None
        # The previous holder unlinks the file before releasing it: if we locked an inode that
        # is no longer under the name, another process may hold the new one; start over.
        try:
            st = os.stat(path)
            same = (st.st_ino, st.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev)
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        previous = _read_record(fd)
        note = None
        if previous.get("pid") is not None:
            if previous.get("host") == host and _pid_alive(previous.get("pid")):
                raise _busy(folder, previous, what)
            note = f"took over the lock of a {what} that is gone ({_describe(previous)})"
        record = {"pid": os.getpid(), "host": host, "started": round(time.time(), 3)}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    try:
        yield note
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still locked: see the inode check above
        os.close(fd)
