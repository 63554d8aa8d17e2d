"""Resumable, verified downloads: one file (``fetch``) and a dataset's files (``download_dataset``).

The pooch pattern, made resumable: bytes stream into ``<dest>.part`` (continued with an HTTP
Range request after an interruption, restarted cleanly when a server ignores Range), size and
sha256 are checked, and only then is the file renamed to its final name. Expected checksums
come from the manifest or the root's checksum lock (see ``catalog``); a file with neither gets
its sha256 recorded there on first download, an archive only after it extracted completely.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ssr_core.errors import DownloadError, InputError, MissingAssetError
from ssr_core.io import fsync_dir, sha256_file

from .archive import extract
from .catalog import (
    DatasetSpec,
    check_present,
    expected_sha256,
    is_provided,
    load_dataset,
    lock_path,
    record_checksum,
)

_CHUNK = 1 << 16
_USER_AGENT = "ssr-bench-datasets/0.1 (+urllib)"

#: ``progress(file_name, bytes_done, bytes_total_or_None)``, called as bytes arrive.
Progress = Callable[[str, int, "int | None"], None]


# --------------------------------------------------------------------------- fetch
@dataclass(frozen=True)
class FetchResult:
    """A completed, verified download.

    Attributes:
        path: The final file.
        url: The URL that delivered the (last part of the) bytes.
        bytes: File size.
        sha256: Hex sha256 of the file (computed while streaming).
        resumed_from: Bytes of an earlier ``.part`` that were kept (0 for a fresh download).
        verified: True when the sha256 was checked against an expected value.
    """

    path: Path
    url: str
    bytes: int
    sha256: str
    resumed_from: int
    verified: bool


class _Interrupted(Exception):
    """The connection ended before Content-Length bytes arrived (the .part is kept)."""


def _stream(url: str, part: Path, progress: Progress | None, total: int | None,
            timeout: float) -> tuple[int, int]:
    """Append the rest of ``url`` to ``part``; return (bytes kept from before, final size)."""
    have = part.stat().st_size if part.exists() else 0
    if total is not None and have > total:
        have = 0  # longer than the file can be: not ours
    if total is not None and have == total:
        return have, have
    headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) checked at load
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our .part is not a prefix the server recognises
            part.unlink()
            return _stream(url, part, progress, total, timeout)
        raise
    with resp:
        start = 0
        if have and resp.status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            start = int(m.group(1)) if m else -1
            if start != have:
                raise _Interrupted(f"server answered the range request from byte {start}, "
                                   f"not {have}")
        length = resp.headers.get("Content-Length")
        expect = int(length) if length and length.isdigit() else None
        got = 0
        with open(part, "ab" if start else "wb") as out:
            done = start
            while True:
                try:
                    block = resp.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:  # reset, read timeout
                    raise _Interrupted(f"transfer broke after {got} bytes: {exc}") from exc
                if not block:
                    break
                out.write(block)
                got += len(block)
                done += len(block)
                if progress:
                    progress(part.name[:-5], done, total)
            out.flush()
            os.fsync(out.fileno())
        if expect is not None and got < expect:
            raise _Interrupted(f"connection closed after {got} of {expect} bytes")
    return start, start + got


def fetch(url_list: list[str] | tuple[str, ...], dest: str | Path, bytes: int | None,
          sha256: str | None, progress: Progress | None = None, *, timeout: float = 60.0,
          retries: int = 3) -> FetchResult:
    """Download a file to ``dest`` via ``dest.part``, resuming, trying mirrors in order.

    Args:
        url_list: URLs of the same file, official first; each is tried in turn.
        dest: Final path; its folder is created. Written only after every check passed.
        bytes: Expected size in bytes, or None when unknown.
        sha256: Expected hex sha256, or None (then it is computed and returned unchecked).
        progress: Called as ``progress(dest.name, bytes_done, bytes or None)``.
        timeout: Seconds a connect or a read may stall before that attempt fails.
        retries: Resumptions per URL after an interrupted transfer before the next URL.

    Returns:
        Where the file is, which URL served it, its size and sha256, how much was resumed.

    Raises:
        DownloadError: Every URL failed (each failure listed), or the size or sha256 differs
            (the ``.part`` is deleted, nothing is written at ``dest``).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed = part.stat().st_size if part.exists() else 0
    failures: list[str] = []
    served = None
    for url in url_list:
        for attempt in range(retries + 1):
            try:
                kept, _ = _stream(url, part, progress, bytes, timeout)
                resumed = min(resumed, kept)
                served = url
                break
            except _Interrupted as exc:
                failures.append(f"{url}: {exc}")
                if attempt == retries:
                    break
            except urllib.error.HTTPError as exc:
                failures.append(f"{url}: HTTP {exc.code} {exc.reason}")
                break
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                failures.append(f"{url}: {type(exc).__name__}: {reason}")
                break
        if served:
            break
    if served is None:
        kept = f"; {part.stat().st_size} bytes kept in {part} for resuming" if part.exists() else ""
        raise DownloadError(f"could not download {dest.name}{kept}:\n  " + "\n  ".join(failures)
                            if failures else f"no URL given for {dest.name}")
    size = part.stat().st_size
    if bytes is not None and size != bytes:
        part.unlink()
        raise DownloadError(f"{dest.name}: size mismatch: expected {bytes} bytes, got {size} "
                            f"(from {served}); the partial file was deleted")
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise DownloadError(f"{dest.name}: sha256 mismatch: expected {sha256}, got {digest} "
                            f"(from {served}); the downloaded file was deleted")
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return FetchResult(path=dest, url=served, bytes=size, sha256=digest,
                       resumed_from=resumed, verified=sha256 is not None)


# --------------------------------------------------------------------------- dataset level
Action = Literal["already-extracted", "archive-present", "downloaded", "manual-present"]


@dataclass(frozen=True)
class FileOutcome:
    """What ``download_dataset`` did for one file.

    Attributes:
        name: File name.
        action: ``already-extracted`` (its ``provides`` exists, nothing fetched),
            ``archive-present`` (kept, checksum matched), ``downloaded``, ``manual-present``.
        checksum: ``verified`` (against the manifest or a recorded value), ``recorded`` (no
            published value: this one is now recorded), or ``skipped``.
        extracted: True when the archive was extracted by this call.
        detail: A short human-readable note.
    """

    name: str
    action: Action
    checksum: Literal["verified", "recorded", "skipped"]
    extracted: bool = False
    detail: str = ""



def download_dataset(name: str | DatasetSpec, root: str | Path, split: str | None = None,
                     mirror: str | None = None, progress: Progress | None = None, *,
                     timeout: float = 60.0) -> list[FileOutcome]:
    """Download, verify and extract a dataset's files into ``root`` (idempotent, resumable).

    Args:
        name: A built-in dataset name, a manifest path, or a loaded DatasetSpec.
        root: The dataset's folder (created).
        split: Fetch only the files this split needs (None: all).
        mirror: Base URL tried first for every file, as ``<mirror>/<file name>``.
        progress: ``progress(file_name, bytes_done, bytes_total_or_None)``.
        timeout: Seconds a connection may stall.

    Returns:
        One outcome per file, in manifest order.

    Raises:
        MissingAssetError: A file has no URL and is not in ``root`` (names the file, the
            folder and the manual instructions).
        DownloadError: Every URL of a file failed, or a checksum did not match.
        InputError: A file already present fails its size/sha256 check, or an archive is unsafe
            or does not read to its end (a corrupt archive's hash is never recorded; the
            message names the file to delete).
        ConfigError: Unknown dataset or split.
    """
    spec = name if isinstance(name, DatasetSpec) else load_dataset(name)
    root = Path(root)
    wanted = spec.files_for(split)
    if not wanted:
        raise MissingAssetError(f"the {spec.name} images", root, hint=spec.manual or "")
    absent = [f.name for f in wanted if not f.urls and not (root / f.name).exists()
              and not (f.extract and is_provided(root, f))]
    if absent:  # say everything the user must fetch by hand before downloading anything
        raise MissingAssetError(", ".join(absent), root, hint=spec.manual or "no public URL is known")
    root.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for f in wanted:
        path = root / f.name
        if f.extract and is_provided(root, f):
            outcomes.append(FileOutcome(f.name, "already-extracted", "skipped",
                                        detail=f"{f.provides} exists; nothing to download"))
            continue
        record = None  # (sha256, bytes, url): trusted only once the archive read to its end
        if path.exists():
            checksum, digest = check_present(root, f, path)
            action: Action = "archive-present" if f.urls else "manual-present"
            detail = "already downloaded" + (", checksum verified" if checksum == "verified"
                                              else "")
            if checksum == "unrecorded":
                record = (digest, path.stat().st_size, None)
        else:
            urls = ([mirror.rstrip("/") + "/" + f.name] if mirror else []) + list(f.urls)
            want, _ = expected_sha256(f, root)
            got = fetch(urls, path, f.bytes, want, progress, timeout=timeout)
            action, detail = "downloaded", f"from {got.url}"
            if got.resumed_from:
                detail += f" (resumed at byte {got.resumed_from})"
            checksum = "verified" if want is not None else "unrecorded"
            if want is None:
                record = (got.sha256, got.bytes, got.url)
        extracted = False
        if f.extract and not is_provided(root, f):
            try:
                extract(path, root)
            except InputError as exc:
                if record is None:
                    raise
                # Nothing vouches for these bytes (a resumed transfer may join two versions of
                # the file): never record the hash of an archive that does not read to its end.
                raise InputError(path, f"{exc.reason}; its sha256 was not recorded: delete "
                                       f"{path} and rerun to download it again") from exc
            extracted = True
            if f.provides and not is_provided(root, f):
                raise InputError(path, f"extracted, but {f.provides} did not appear; the "
                                       "manifest's 'provides' is wrong or the archive changed")
        if record is not None:
            record_checksum(root, f.name, *record)
            checksum = "recorded"
            detail += f"; sha256 {record[0]} recorded in {lock_path(root)}"
        outcomes.append(FileOutcome(f.name, action, checksum, extracted, detail))
    return outcomes
