"""A folder of files on a local disk or behind an fsspec URL, written atomically.

Shard sets live in one folder: ``Storage`` is that folder. A plain path (or ``file://`` URL) uses
``os`` directly (the fast path, and the only one that fsyncs); any other URL (``memory://``,
``s3://``, ``gs://``, ``az://``, ...) goes through fsspec and needs fsspec's backend for that
protocol (``s3fs``, ``gcsfs``, ``adlfs``, ...).

What "atomic" means per backend (every write goes to a hidden ``.{name}.{pid}-{host}.{random}.tmp``
first, then takes its final name, so a killed writer never leaves a file that looks complete; the
writer's pid and a hash of its host name let ``remove_stale_temps`` tell a dead writer's leftovers
from a live writer's work in progress):

- Local disk, and shared filesystems mounted at the same path on every machine (NFS, Lustre,
  CephFS, ...): ``ssr_core.io.atomic_file``: temp file in the same folder, ``fsync``,
  ``os.replace``, ``fsync`` of the folder.
  The rename is atomic on POSIX filesystems; on NFS other clients see the new file once their
  attribute cache expires (close-to-open consistency).
- Object stores (S3, GCS, Azure Blob): an object appears under a name only when its upload has
  completed (single PUT, completed multipart or finalized resumable upload), and readers see the
  old or the new object, never a mixture. ``fs.mv`` is a server-side copy and a delete, not a
  rename: the final object still appears whole, a listing may briefly show both names, and a
  crash between the two leaves a hidden ``.tmp`` object that the next build removes. There is no
  fsync: durability is the store's.
- ``memory://`` (tests): a dict inside one process; copy then delete under the GIL. Other
  processes (workers of a cluster) cannot see it.
- Other fsspec backends (sftp, hdfs, smb, ...): ``fs.mv`` is the server's rename, atomic where
  the server's rename is.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from ssr_core.errors import ConfigError
from ssr_core.io import atomic_file, dump_json, host_tag, sha256_stream, writer_tag

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_BLOCK = 1 << 20


def is_remote(location: str | os.PathLike[str]) -> bool:
    """Return True for a URL that fsspec must open (any ``scheme://`` except ``file://``).

    >>> is_remote("s3://bucket/out"), is_remote("out/run1"), is_remote("file:///tmp/out")
    (True, False, False)
    """
    text = os.fspath(location)
    return bool(_URL.match(text)) and not text.lower().startswith("file://")


def local_path(location: str | os.PathLike[str]) -> Path | None:
    """Return the local path of a plain path or ``file://`` URL; None for other URLs."""
    if isinstance(location, Path):
        return location
    text = os.fspath(location)
    if text.lower().startswith("file://"):
        return Path(url2pathname(urlparse(text).path))
    return None if is_remote(text) else Path(text)


#: ``.{name}.{pid}-{host}[.{random}].tmp|.extract``, as ``writer_tag`` makes them.
_TEMP_NAME = re.compile(r"\..+\.(?P<pid>\d+)-(?P<host>[0-9a-f]{8})(?:\.[A-Za-z0-9_]+)?"
                        r"\.(?:tmp|extract)")


@dataclass(frozen=True)
class StaleTemp:
    """A temp file or folder that ``remove_stale_temps`` removed: its path and dead writer."""

    path: Path
    pid: int

    def __str__(self) -> str:
        return f"removed {self.path}: left by process {self.pid}, which is no longer running"


def _running(pid: int) -> bool:
    """Tell whether a process with this pid exists on this host (signal 0 checks, sends none)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process, or a pid we cannot ask about
        pass
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> list[StaleTemp]:
    """Remove the temps in ``folder`` whose writer, on this host, is no longer running.

    Only names made with ``writer_tag`` are considered: a temp of a live process (pid reuse
    included), of another host (a shared folder) or of another naming scheme is kept. Call it
    where a command starts on its folder (the dataset root, ``--out``, a run folder), so the
    next run of a killed command cleans up after it. POSIX only (elsewhere nothing is removed:
    ``os.kill`` would end the process instead of probing it).

    Args:
        folder: A local folder; a missing folder has nothing to remove.

    Returns:
        What was removed, sorted by name; each prints as one line for the command to show.
    """
    folder = Path(folder)
    if os.name != "posix" or not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or m["host"] != host_tag() or _running(int(m["pid"])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        if not os.path.lexists(entry):
            removed.append(StaleTemp(entry, int(m["pid"])))
    return removed


def is_temp_name(name: str) -> bool:
    """Return True for the hidden temp names that ``Storage`` writes (``.{name}.*.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


class Storage:
    """One folder, local or behind an fsspec URL; files are addressed by bare name.

    Args:
        location: A path, a ``file://`` URL or an fsspec URL (``memory://bucket/out``).

    Raises:
        ConfigError: fsspec has no usable backend for the URL's protocol.
    """

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.local = local_path(location)
        if self.local is not None:
            self.location = str(self.local)
            self.fs, self._root = None, str(self.local)
            return
        self.location = os.fspath(location).rstrip("/")
        try:
            from fsspec.core import url_to_fs

            self.fs, root = url_to_fs(self.location)
        except ImportError as exc:
            scheme = self.location.split("://", 1)[0]
            raise ConfigError(f"{self.location}: reading or writing {scheme}:// URLs needs an "
                              f"fsspec backend that is not installed ({exc})") from exc
        except ValueError as exc:  # unknown protocol
            raise ConfigError(f"{self.location}: {exc}") from exc
        self._root = root.rstrip("/")

    @classmethod
    def of_file(cls, location: str | os.PathLike[str]) -> tuple[Storage, str]:
        """Split a file's path or URL into its folder's Storage and its name."""
        local = local_path(location)
        if local is not None:
            return cls(local.parent), local.name
        text = os.fspath(location).rstrip("/")
        folder, name = text.rsplit("/", 1)
        return cls(folder), name

    def __repr__(self) -> str:
        return f"Storage({self.location!r})"

    # ------------------------------------------------------------------ names and paths

    def _path(self, name: str) -> str:
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"expected a bare file name, got {name!r}")
        if self.local is not None:
            return str(self.local / name)
        return posixpath.join(self._root, name)

    def url(self, name: str) -> str:
        """Return the file's address as a user would type it (a path when local)."""
        self._path(name)  # validates the name
        return str(self.local / name) if self.local is not None else f"{self.location}/{name}"

    def target(self, name: str) -> Path | str:
        """Return what ``write_shard`` and friends take: a Path when local, else the URL."""
        return self.local / name if self.local is not None else self.url(name)

    # ------------------------------------------------------------------ queries

    def is_folder(self) -> bool:
        """Return True if the folder exists (object stores: a prefix with at least one object)."""
        if self.local is not None:
            return self.local.is_dir()
        return bool(self.fs.isdir(self._root))

    def is_file(self) -> bool:
        """Return True if the location itself is a file (so it cannot be used as a folder)."""
        if self.local is not None:
            return self.local.exists() and not self.local.is_dir()
        return bool(self.fs.isfile(self._root))

    def exists(self, name: str) -> bool:
        """Return True if ``name`` is a file in the folder."""
        if self.local is not None:
            return Path(self._path(name)).is_file()
        return bool(self.fs.isfile(self._path(name)))

    def size(self, name: str) -> int:
        """Return the file's size in bytes.

        Raises:
            FileNotFoundError: No such file.
        """
        if self.local is not None:
            return os.stat(self._path(name)).st_size
        return int(self.fs.size(self._path(name)))

    def listdir(self) -> list[str]:
        """Return the sorted names of the files directly in the folder ([] if it is missing)."""
        if self.local is not None:
            if not self.local.is_dir():
                return []
            return sorted(p.name for p in self.local.iterdir() if p.is_file())
        try:
            entries = self.fs.ls(self._root, detail=True)
        except FileNotFoundError:
            return []
        return sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries
                      if e.get("type") == "file")

    def open_read(self, name: str) -> IO[bytes]:
        """Open a file for reading (binary, seekable).

        Raises:
            FileNotFoundError: No such file.
        """
        if self.local is not None:
            return open(self._path(name), "rb")
        return self.fs.open(self._path(name), "rb")

    def read_bytes(self, name: str) -> bytes:
        """Return a whole file's bytes."""
        with self.open_read(name) as f:
            return f.read()

    def sha256(self, name: str) -> str:
        """Return the hex sha256 of a file, streamed in 1 MiB blocks."""
        with self.open_read(name) as f:
            return sha256_stream(f)

    # ------------------------------------------------------------------ writes

    def makedirs(self) -> None:
        """Create the folder (and parents) if needed; a no-op for object-store prefixes."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
        else:
            self.fs.makedirs(self._root, exist_ok=True)

    def _temp_name(self, name: str) -> str:
        return f".{name}.{writer_tag()}.{uuid.uuid4().hex[:12]}.tmp"

    @contextlib.contextmanager
    def atomic_writer(self, name: str) -> Iterator[IO[bytes]]:
        """Yield a binary file that becomes ``name`` only if the block completes.

        Local: ``atomic_file`` beside the target. Remote: a local temp file (streamed, so a
        multi-GB shard never sits in memory), uploaded to a hidden temp name, then ``fs.mv``
        to ``name`` (see the module docstring for what that guarantees per backend).
        """
        if self.local is not None:
            with atomic_file(Path(self._path(name))) as f:
                yield f
            return
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.{writer_tag()}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
            self.put_file_atomic(tmp, name)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def put_file_atomic(self, local_file: str | os.PathLike[str], name: str) -> None:
        """Copy a finished local file into the folder as ``name`` (temp name, then move)."""
        if self.local is not None:
            with atomic_file(Path(self._path(name))) as out, open(local_file, "rb") as src:
                for block in iter(lambda: src.read(_BLOCK), b""):
                    out.write(block)
            return
        tmp = self._path(self._temp_name(name))
        try:
            self.fs.put_file(os.fspath(local_file), tmp)
            self.fs.mv(tmp, self._path(name))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def write_bytes_atomic(self, name: str, data: bytes) -> None:
        """Write ``data`` as ``name`` atomically."""
        if self.local is not None:
            with atomic_file(Path(self._path(name))) as f:
                f.write(data)
            return
        tmp = self._path(self._temp_name(name))
        try:
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self._path(name))
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(tmp)
            raise

    def write_json_atomic(self, name: str, obj: Any) -> None:
        """Write ``obj`` as JSON (indent 2, sorted keys, strict: no NaN) atomically."""
        self.write_bytes_atomic(name, dump_json(obj))

    def remove(self, name: str, missing_ok: bool = True) -> None:
        """Delete a file.

        Raises:
            FileNotFoundError: No such file and not ``missing_ok``.
        """
        try:
            if self.local is not None:
                os.unlink(self._path(name))
            else:
                self.fs.rm_file(self._path(name))
        except FileNotFoundError:
            if not missing_ok:
                raise
