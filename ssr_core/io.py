"""Local files written atomically, and hashed: the one temp-then-rename of the project.

``atomic_file(path)`` yields a binary file whose bytes become ``path`` only if the block
completes: a temp file beside the target (same file system, so the rename is atomic), ``fsync``,
``os.replace``, ``fsync`` of the folder (so the rename itself survives a power cut). On any
exception the temp is removed and ``path`` is untouched; a killed writer's temp keeps its
hidden name ``.{name}.{pid}-{host}.{random}.tmp``, which ``ssr_datasets.storage.
remove_stale_temps`` parses back to remove it once that process is gone.

Object stores and other fsspec URLs have their own temp-then-move, in ``ssr_datasets.storage``
(the only module that knows URLs); it writes its local files through this one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any

__all__ = ["FILE_MODE", "atomic_file", "dump_json", "fsync_dir", "link_atomic", "sha256_file",
           "sha256_json", "sha256_stream", "write_bytes_atomic", "write_json_atomic", "writer_tag"]

#: Mode of every file the project writes (``mkstemp`` creates 0600; outputs are meant to be shared).
FILE_MODE = 0o644
_BLOCK = 1 << 20  # 1 MiB: hashing and copying read this much at a time


@cache
def host_tag() -> str:
    """Return 8 hex digits of the host name's sha256 (a pid means something on one host only)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def writer_tag() -> str:
    """Return ``{pid}-{host}``: what every temp name carries, e.g. ``4242-1a2b3c4d``.

    Temp names are ``.{name}.{writer_tag()}[.{random}].tmp`` (``.extract`` for the archive
    extraction folder); ``ssr_datasets.storage.remove_stale_temps`` parses them back.
    """
    return f"{os.getpid()}-{host_tag()}"


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Persist a rename in ``folder`` (POSIX); silently skipped where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Yield a binary file that becomes local ``path`` only if the block completes.

    The temp file ``.<name>.<pid>-<host>.<random>.tmp`` sits beside ``path``; it is fsynced,
    renamed over ``path`` (mode 0644) and the folder fsynced. On any exception it is removed and
    ``path`` is untouched. The folder must exist.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{writer_tag()}.",
                               suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def link_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Make ``dst`` name the same bytes as ``src``: hard link to a temp beside ``dst``, rename.

    Readers of ``dst`` see the old file or the new one, never a partial one (a trainer's
    ``last.pt`` -> newest checkpoint). Where hard links fail (another file system, FAT, some
    network shares) the bytes are copied through :func:`atomic_file` instead. The temp is
    ``.{name}.{pid}-{host}.tmp``, which ``remove_stale_temps`` recognises.
    """
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(f".{dst.name}.{writer_tag()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError:
        tmp.unlink(missing_ok=True)
        with atomic_file(dst) as out, open(src, "rb") as f:
            for block in iter(lambda: f.read(_BLOCK), b""):
                out.write(block)
        return
    fsync_dir(dst.parent)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` as local ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as f:
        f.write(data)


def dump_json(obj: Any) -> bytes:
    """Encode ``obj`` as the project's JSON files are: indent 2, sorted keys, no NaN, newline.

    >>> dump_json({"b": 1, "a": [2]})
    b'{\\n  "a": [\\n    2\\n  ],\\n  "b": 1\\n}\\n'

    Raises:
        ValueError: ``obj`` holds a NaN or an infinity (strict JSON has neither).
    """
    return (json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as JSON (:func:`dump_json`) to local ``path`` atomically."""
    write_bytes_atomic(path, dump_json(obj))


def sha256_json(obj: Any) -> str:
    """Return the hex sha256 of ``obj`` encoded by :func:`dump_json` (a fingerprint of a record)."""
    return hashlib.sha256(dump_json(obj)).hexdigest()


def sha256_stream(f: IO[bytes]) -> str:
    """Return the hex sha256 of everything left in a binary file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_BLOCK), b""):
        h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex sha256 of a local file, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be read (FileNotFoundError when it is missing).
    """
    with open(path, "rb") as f:
        return sha256_stream(f)
