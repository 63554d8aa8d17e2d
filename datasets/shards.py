"""Write WebDataset shards deterministically and atomically, and read them back plainly.

Every file is written to a hidden temp name and then takes its final name (pooch's
temp -> verify -> move), so a killed build never leaves a file that looks complete:
locally a temp file beside the target, fsynced and renamed; for an fsspec URL a local
temp file, uploaded to a hidden temp object and moved (``storage`` documents what that
guarantees per backend). Tar headers carry no wall-clock time or user, so identical
samples give byte-identical shards. Paths may be local paths or fsspec URLs throughout.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import IO, Any

from ssr_core.errors import InputError

from .schema import MEMBERS, Sample, SchemaError, decode_sample, encode_sample
from .storage import Storage

_TAR_MODE = 0o644
_END_OF_ARCHIVE = 1024  # two zero blocks end every tar
#: Largest tar member the readers accept, in bytes (256 MiB). The biggest member a build writes
#: under the default ``--max-pixels`` (16 MP) is kernel.npy at scale 1, 192 MB; a larger size in
#: a header means a hostile or broken shard, refused before its bytes are read into memory.
MAX_MEMBER_BYTES = 256 << 20


def shard_name(split: str, index: int) -> str:
    """Name shard ``index`` of a split, e.g. ``train-000003.tar``.

    >>> shard_name("train", 3)
    'train-000003.tar'
    """
    return f"{split}-{index:06d}.tar"


@dataclass(frozen=True)
class ShardInfo:
    """What the manifest records for one shard.

    Attributes:
        name: File name inside the output folder.
        sha256: Hex sha256 of the whole file.
        bytes: File size in bytes.
        count: Number of samples.
        keys: Sample keys in file order.
    """

    name: str
    sha256: str
    bytes: int
    count: int
    keys: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (keys as a list)."""
        return {"name": self.name, "sha256": self.sha256, "bytes": self.bytes,
                "count": self.count, "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "<manifest shard entry>") -> ShardInfo:
        """Parse a dict written by ``to_dict``.

        Raises:
            InputError: A field is missing or has the wrong type (``where`` is the path).
        """
        fields = {"name": str, "sha256": str, "bytes": int, "count": int, "keys": list}
        if not isinstance(d, dict):
            raise InputError(where, f"shard entry must be an object, got {type(d).__name__}")
        for field, kind in fields.items():
            value = d.get(field)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise InputError(where, f"shard entry field {field!r}: expected "
                                        f"{kind.__name__}, got {value!r:.60}")
        if not all(isinstance(k, str) for k in d["keys"]):
            raise InputError(where, f"shard entry {d['name']!r}: keys must be strings")
        return cls(name=d["name"], sha256=d["sha256"], bytes=d["bytes"], count=d["count"],
                   keys=tuple(d["keys"]))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    """Return a tar header with every field fixed except name and size."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = _TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


class _HashingWriter:
    """Pass writes through to a file while hashing and counting them."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._f.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._f.flush()


def map_threads(fn: Callable[[Any], Any], items: Iterable[Any], threads: int) -> Iterator[Any]:
    """Yield ``fn(x)`` for each item in order, computed on ``threads`` threads when > 1.

    At most ``2 * threads`` results wait at a time, so memory stays bounded. For work that
    releases the GIL (OpenCV's PNG and JPEG codecs); the results do not depend on ``threads``.
    """
    if threads <= 1:
        yield from map(fn, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= 2 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def write_shard(path: str | os.PathLike[str], samples: Iterable[Sample], threads: int = 1) -> ShardInfo:
    """Write samples to a deterministic tar at ``path`` atomically.

    Members are ``{key}.{member}`` in ``MEMBERS`` order per sample, PAX format, mtime
    0, uid/gid 0, empty user/group names, mode 0o644.

    Args:
        path: Final shard path (its folder must exist) or fsspec URL.
        samples: Samples in shard order; each is validated before it is written.
        threads: CPU threads that encode samples (PNG) ahead of the writer; same bytes for any.

    Returns:
        The shard's name, sha256, size, sample count and keys.

    Raises:
        SchemaError: A sample does not validate or a key repeats; nothing is written.
    """
    with ShardWriter(path) as writer:
        # closing(): on an error the encoding threads stop here, not when the traceback dies
        encoded = map_threads(lambda smp: (smp.key, encode_sample(smp)), samples, threads)
        with closing(encoded):
            for key, members in encoded:
                writer.add(key, members)
    return writer.info


class ShardWriter:
    """Append encoded samples to one shard as they come; the shard appears complete or not at all.

    A context manager: the tar is written to a temp name and takes its final name when the
    block ends without an error (``info`` is then set); on an error nothing is left under the
    final name. The bytes depend only on the samples added, in order (see :func:`write_shard`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._storage, self.name = Storage.of_file(path)
        self._stack = ExitStack()
        self._keys: list[str] = []
        self._seen: set[str] = set()
        self.info: ShardInfo | None = None

    def __enter__(self) -> ShardWriter:
        with ExitStack() as stack:
            f = stack.enter_context(self._storage.atomic_writer(self.name))
            # The bytes are hashed as they are written, so a remote shard is never read back.
            self._out = _HashingWriter(f)
            self._tar = stack.enter_context(
                tarfile.open(fileobj=self._out, mode="w", format=tarfile.PAX_FORMAT))
            self._stack = stack.pop_all()
        return self

    def add(self, key: str, members: dict[str, bytes]) -> None:
        """Append one sample's encoded members (``schema.encode_sample``), in MEMBERS order.

        Raises:
            SchemaError: the key repeats in this shard, or a member is missing.
        """
        if key in self._seen:
            raise SchemaError(f"sample {key!r}", f"duplicate key in {self.name}")
        missing = [m for m in MEMBERS if m not in members]
        if missing:
            raise SchemaError(f"sample {key!r}", f"members missing: {missing}")
        self._seen.add(key)
        self._keys.append(key)
        for member in MEMBERS:
            data = members[member]
            self._tar.addfile(_tarinfo(f"{key}.{member}", len(data)), io.BytesIO(data))

    def __exit__(self, *exc: object) -> bool | None:
        suppressed = self._stack.__exit__(*exc)  # closes the tar, then renames (or removes)
        if exc[0] is None:
            self.info = ShardInfo(name=self.name, sha256=self._out.sha256.hexdigest(),
                                  bytes=self._out.size, count=len(self._keys),
                                  keys=tuple(self._keys))
        return suppressed


def iter_shard(path: str | os.PathLike[str]) -> Iterator[Sample]:
    """Yield the samples of a shard (local path or fsspec URL) in file order, validated.

    Raises:
        InputError: Truncated or corrupt tar, or a malformed member name; the path
            names the shard and the reason names the member.
        SchemaError: A sample is incomplete or does not decode/validate.
    """
    storage, name = Storage.of_file(path)
    where = str(path)
    try:
        size = storage.size(name)
        f = storage.open_read(name)
    except OSError as exc:
        raise InputError(where, f"cannot open shard: {exc.strerror or exc}") from exc
    with f:
        _check_tar_end(f, size, where)
        f.seek(0)
        yield from _iter_tar(f, where)


def check_member_size(info: tarfile.TarInfo, where: str, limit: int = MAX_MEMBER_BYTES) -> None:
    """Raise before a member's bytes are read if its header claims more than ``limit`` bytes.

    Raises:
        InputError: The member is too large (``where`` names the shard).
    """
    if info.size > limit:
        raise InputError(where, f"member {info.name!r:.80} is {info.size} bytes, over the "
                                f"readers' limit of {limit} bytes: not a shard this project "
                                "writes")


def _checked_member(info: tarfile.TarInfo, where: str) -> tuple[str, str]:
    """Return (sample key, member name) of a shard's tar entry after its name and size checks.

    Raises:
        InputError: Not a regular file, a name without ``key.member`` form or with a folder,
            or a member over :data:`MAX_MEMBER_BYTES`.
    """
    if not info.isreg() or "." not in info.name or "/" in info.name:
        raise InputError(where, f"unexpected tar entry {info.name!r}")
    check_member_size(info, where)
    key, member = info.name.split(".", 1)
    return key, member


def _iter_tar(f: IO[bytes], where: str) -> Iterator[Sample]:
    """Yield the samples of an open tar stream, grouping members by key."""
    key: str | None = None
    members: dict[str, bytes] = {}
    last = "<start>"
    try:
        with tarfile.open(fileobj=f, mode="r|") as tar:
            for info in tar:
                last = info.name
                k, member = _checked_member(info, where)
                if k != key:
                    if key is not None:
                        yield decode_sample(key, members)
                    key, members = k, {}
                if member in members:
                    raise InputError(where, f"duplicate member {info.name!r}")
                members[member] = tar.extractfile(info).read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(where, f"corrupt or truncated tar near member {last!r}: {exc}") from exc
    if key is not None:
        yield decode_sample(key, members)


def index_shard(path: str | os.PathLike[str]) -> list[tuple[str, dict[str, tuple[int, int]]]]:
    """Return each sample's key and its members' byte ranges (offset, size) in a local shard.

    Reads only the tar headers (``tarfile`` in seekable mode skips member data), so a
    loader can order samples without reading them and later fetch one sample's bytes with
    :func:`read_members`. The same checks as :func:`iter_shard` apply to names and ends.

    Raises:
        InputError: Truncated or corrupt tar, a malformed or duplicate member name.
    """
    where = str(path)
    index: list[tuple[str, dict[str, tuple[int, int]]]] = []
    last = "<start>"
    try:
        with open(path, "rb") as f:
            _check_tar_end(f, os.fstat(f.fileno()).st_size, where)
            f.seek(0)
            with tarfile.open(fileobj=f, mode="r:") as tar:
                for info in tar:
                    last = info.name
                    key, member = _checked_member(info, where)
                    if not index or index[-1][0] != key:
                        index.append((key, {}))
                    if member in index[-1][1]:
                        raise InputError(where, f"duplicate member {info.name!r}")
                    index[-1][1][member] = (info.offset_data, info.size)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InputError(where, f"corrupt or truncated tar near member {last!r}: {exc}") from exc
    return index


def read_members(path: str | os.PathLike[str],
                 ranges: dict[str, tuple[int, int]]) -> dict[str, bytes]:
    """Read members' bytes from a local shard at the ranges :func:`index_shard` returned.

    Raises:
        InputError: The file cannot be read or ends before a range (changed since indexing).
    """
    out: dict[str, bytes] = {}
    try:
        with open(path, "rb") as f:
            for member, (offset, size) in ranges.items():
                f.seek(offset)
                out[member] = f.read(size)
                if len(out[member]) != size:
                    raise InputError(str(path), f"member {member!r} ends early: shard changed "
                                                "or truncated since it was indexed")
    except OSError as exc:
        raise InputError(str(path), f"cannot read shard: {exc.strerror or exc}") from exc
    return out


def _check_tar_end(f: IO[bytes], size: int, where: str) -> None:
    """Raise unless the file ends with a tar end-of-archive marker (catches cut shards)."""
    if size % 512 or size < _END_OF_ARCHIVE:
        raise InputError(where, f"truncated tar: {size} bytes is not a whole number of "
                                "512-byte blocks with an end-of-archive marker")
    f.seek(size - _END_OF_ARCHIVE)
    if f.read(_END_OF_ARCHIVE).strip(b"\0"):
        raise InputError(where, "truncated tar: no end-of-archive marker at the end")
