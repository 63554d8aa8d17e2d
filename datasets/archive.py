"""Extract downloaded .zip / .tar / .tar.gz archives safely and atomically.

Every member is checked before anything is written: absolute paths, ``..`` components,
symbolic and hard links, and device files / FIFOs are refused (the whole archive is rejected,
nothing is extracted). Links are refused outright, in zip and tar alike, because no data set
we support ships them and a link check on the text of a path cannot see what earlier links
make of it (``p -> .`` then ``p/p/p/q -> ../../..`` reads as ``.`` and is three levels up).
An archive must also read to its end: every zip member's CRC, every tar header up to the
end-of-archive marker (and the gzip/bz2/xz check of a compressed tar). Extraction goes to a hidden temp folder
inside ``dest_dir``; only when every member is out are its top-level entries renamed into
``dest_dir`` (one rename per entry, so a folder such as ``DIV2K_valid_HR/`` appears whole or
not at all), and a completion marker is written last under ``<dest_dir>/.ssr-bench/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ssr_core.errors import InputError
from ssr_core.io import write_json_atomic, writer_tag

#: Hidden folder under a dataset root for markers and the checksum lock file.
STATE_DIR = ".ssr-bench"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExtractResult:
    """What an extraction put in place.

    Attributes:
        archive: The archive that was extracted.
        dest_dir: The folder it was extracted into.
        entries: Top-level names created or updated in ``dest_dir``, sorted.
        members: Number of archive members written.
        marker: The completion marker file.
    """

    archive: Path
    dest_dir: Path
    entries: tuple[str, ...]
    members: int
    marker: Path


def archive_kind(path: str | Path) -> str:
    """Return ``"zip"`` or ``"tar"`` from the file name (``.zip``, ``.tar``, ``.tar.gz``, ``.tgz``).

    >>> archive_kind("DIV2K_valid_HR.zip")
    'zip'

    Raises:
        InputError: Any other suffix.
    """
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")):
        return "tar"
    raise InputError(path, "not an archive this tool extracts (expected .zip, .tar, .tar.gz)")


def marker_path(dest_dir: str | Path, archive_name: str) -> Path:
    """Return the completion marker of ``archive_name`` extracted into ``dest_dir``."""
    return Path(dest_dir) / STATE_DIR / "extracted" / f"{archive_name}.json"


def _safe_name(archive: Path, name: str) -> str:
    """Return the normalized relative posix name of a member, or raise on an unsafe one."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise InputError(archive, f"unsafe member {name!r}: absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InputError(archive, f"unsafe member {name!r}: '..' leaves the destination")
    if not parts:
        raise InputError(archive, f"unsafe member {name!r}: empty name")
    if parts[0] == STATE_DIR:
        raise InputError(archive, f"unsafe member {name!r}: {STATE_DIR}/ is reserved")
    return "/".join(parts)


def _refuse_link(archive: Path, member: str, kind: str) -> None:
    """Raise for a link member: links are never extracted (see the module docstring)."""
    raise InputError(archive, f"unsafe member {member!r}: {kind}; links in archives are "
                              "refused (no supported data set ships them)")


def _zip_plan(archive: Path, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str, str]]:
    """Check every zip member; return (info, safe name, kind) with kind file/dir."""
    plan = []
    for info in zf.infolist():
        name = _safe_name(archive, info.filename)
        mode = info.external_attr >> 16
        if info.is_dir():
            kind = "dir"
        elif stat.S_ISLNK(mode):
            _refuse_link(archive, info.filename, "symbolic link")
        elif mode and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
            raise InputError(archive, f"unsafe member {info.filename!r}: special file "
                                      f"(mode {oct(stat.S_IFMT(mode))})")
        else:
            kind = "file"
        plan.append((info, name, kind))
    return plan


def _extract_zip(archive: Path, tmp: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        plan = _zip_plan(archive, zf)
        for info, name, kind in plan:
            out = tmp / name
            if kind == "dir":
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK)
        return len(plan)


def _tar_plan(archive: Path, tf: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """Check every tar member; return the members with normalized names."""
    members = []
    for m in tf.getmembers():
        name = _safe_name(archive, m.name)
        if m.ischr() or m.isblk() or m.isfifo() or m.isdev():
            raise InputError(archive, f"unsafe member {m.name!r}: device file or FIFO")
        if m.issym() or m.islnk():
            _refuse_link(archive, m.name, "symbolic link" if m.issym() else "hard link")
        if not (m.isfile() or m.isdir()):
            raise InputError(archive, f"unsafe member {m.name!r}: unsupported tar entry type")
        m.name = name
        members.append(m)
    return members


def _extract_tar(archive: Path, tmp: Path) -> int:
    with tarfile.open(archive, mode="r:*") as tf:
        members = _tar_plan(archive, tf)
        # Our checks ran on every member; the "data" filter (Python >= 3.10.12) is a second
        # guard and also strips setuid bits and ownership.
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tf.extractall(tmp, members=members, **kwargs)  # noqa: S202 - members checked above
        _check_tar_end(archive, tf)
        return len(members)


def _check_tar_end(archive: Path, tf: tarfile.TarFile) -> None:
    """Raise unless only zero bytes follow the last member (tarfile stops silently at a bad
    header after the first, so a corrupt tail would otherwise pass as a shorter archive).

    Reading the stream to its end also runs the gzip/bz2/xz integrity check.
    """
    f = tf.fileobj
    f.seek(tf.offset)
    while block := f.read(_CHUNK):
        if block.strip(b"\0"):
            raise InputError(archive, f"corrupt archive: unreadable data after the last good "
                                      f"member (byte {tf.offset} of the tar stream)")


def _move_into(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; merge into an existing folder entry by entry."""
    if dst.is_dir() and not dst.is_symlink() and src.is_dir() and not src.is_symlink():
        for child in sorted(src.iterdir()):
            _move_into(child, dst / child.name)
        src.rmdir()
        return
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)


def extract(archive: str | Path, dest_dir: str | Path) -> ExtractResult:
    """Extract a .zip or .tar(.gz) into ``dest_dir`` safely, all-or-nothing per entry.

    Args:
        archive: The archive file.
        dest_dir: Destination folder (created if needed). Existing top-level folders of the
            same name are merged into (files replaced); other contents are left alone.

    Returns:
        The top-level entries put in place, the member count and the marker path.

    Raises:
        InputError: The archive is corrupt or contains an absolute path, a ``..`` component,
            a symbolic or hard link, or a device file; nothing is extracted.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    kind = archive_kind(archive)
    dest_dir.mkdir(parents=True, exist_ok=True)
    # The name carries our pid, so a rerun after a kill can remove it (remove_stale_temps).
    tmp = Path(tempfile.mkdtemp(dir=dest_dir, prefix=f".{archive.name}.{writer_tag()}.",
                                suffix=".extract"))
    try:
        try:
            count = _extract_zip(archive, tmp) if kind == "zip" else _extract_tar(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, UnicodeError) as exc:
            if isinstance(exc, getattr(tarfile, "FilterError", ())):
                raise InputError(archive, f"unsafe member refused by tarfile: {exc}") from exc
            raise InputError(archive, f"corrupt or unreadable archive: {exc}") from exc
        entries = tuple(sorted(p.name for p in tmp.iterdir()))
        for entry in entries:
            _move_into(tmp / entry, dest_dir / entry)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    marker = marker_path(dest_dir, archive.name)
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(marker, {"archive": archive.name, "entries": list(entries),
                               "members": count})
    return ExtractResult(archive=archive, dest_dir=dest_dir, entries=entries, members=count,
                         marker=marker)
