"""Find a data set's folder under ``--root`` and name exactly what is missing from it.

Shared by the sources of public data sets: each accepts the layouts that the official
archives (and the common re-distributions) extract to, validates names and counts, and
turns a gap into a MissingAssetError that names the folder, the count found against the
count expected, the first missing names and how to get the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ssr_core.errors import ConfigError, MissingAssetError

#: Sources whose files ``degrade datasets download NAME`` fetches from public URLs
#: (manifests/datasets/); the others pass their own instructions as ``manual``.
DOWNLOADABLE = frozenset({"div2k", "flickr2k", "div2krk", "nyuv2", "middlebury"})

#: How many names a message lists before it says "... and N more".
PREVIEW = 5


def require_root(name: str, root: Path | None) -> Path:
    """Return ``root`` as a Path, or refuse a missing one.

    Raises:
        ConfigError: ``root`` is None or not a directory.
    """
    if root is None:
        raise ConfigError(f"source {name!r} needs --root, the folder that holds the data set "
                          f"(got root=None); {download_hint(name, '<DIR>')}")
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"source {name!r}: root {str(root)!r} is not a directory")
    return root


def download_hint(name: str, root: Path | str, manual: str | None = None) -> str:
    """Say how to get a data set: the download command, or ``manual`` (``{root}`` filled in)."""
    if name in DOWNLOADABLE:
        return f"run `degrade datasets download {name} --root {root}`"
    if manual:
        return manual.replace("{root}", str(root))
    return f"see manifests/datasets/{name}.yaml for where to get it"


def preview(names: Sequence[str], n: int = PREVIEW) -> str:
    """Join the first ``n`` names and count the rest.

    >>> preview(["a", "b", "c"], 2)
    'a, b and 1 more'
    """
    head = ", ".join(names[:n])
    return head if len(names) <= n else f"{head} and {len(names) - n} more"


def find_folder(root: Path, candidates: Sequence[str]) -> Path | None:
    """Return the first ``root / candidate`` that is a directory, or None."""
    for rel in candidates:
        if (root / rel).is_dir():
            return root / rel
    return None


def files_in(folder: Path, suffixes: Iterable[str] = (".png",)) -> list[str]:
    """Return the names of the non-hidden files in ``folder`` with a suffix (any case), sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".")
                  and p.name.lower().endswith(suffixes))


def no_layout(name: str, root: Path, candidates: Sequence[str], what: str,
              manual: str | None = None) -> MissingAssetError:
    """Return the error for a data set none of whose accepted folders exists under root."""
    looked = ", ".join(str(root / c) for c in candidates)
    return MissingAssetError(what, root / candidates[0],
                             hint=f"looked for {looked}; {download_hint(name, root, manual)}")


def check_expected(name: str, root: Path, folder: Path, found: Iterable[str],
                   expected: Sequence[str], what: str, manual: str | None = None) -> None:
    """Compare the names found in a folder with the names a data set must have.

    Raises:
        MissingAssetError: Some expected names are absent (first few named, counts given; when
            some are there, the message also says how to use those as a plain folder).
        ConfigError: Names that do not belong to the data set are present.
    """
    found = set(found)
    missing = [n for n in expected if n not in found]
    if missing:
        have = len(expected) - len(missing)
        hint = download_hint(name, root, manual)
        if have:  # a partial copy is still usable, under the folder source's ids
            hint += (f"; or use the {have} image(s) there as they are: "
                     f"`--source folder --root {folder}`")
        raise MissingAssetError(
            f"{len(missing)} of {len(expected)} {what} (found {have} of {len(expected)}; "
            f"absent: {preview(missing)})", folder, hint=hint)
    extra = sorted(found.difference(expected))
    if extra:
        raise ConfigError(f"{folder}: {len(extra)} files that are not {what}: {preview(extra)}; "
                          f"expected exactly {preview(list(expected), 2)} ({len(expected)} files)")


def check_count(name: str, root: Path, folder: Path, found: int, expected: int, what: str,
                missing: Sequence[str] = (), manual: str | None = None) -> None:
    """Require exactly ``expected`` items where the names are not known in advance.

    Raises:
        MissingAssetError: Fewer items than expected (``missing`` names listed when known).
        ConfigError: More items than expected.
    """
    if found < expected:
        named = f"; absent: {preview(list(missing))}" if missing else ""
        raise MissingAssetError(f"{expected - found} of {expected} {what} (found {found} of "
                                f"{expected}{named})", folder,
                                hint=download_hint(name, root, manual))
    if found > expected:
        raise ConfigError(f"{folder}: found {found} {what}, expected {expected}; remove the "
                          "extra files or point --root at the original data set")


def rel_to(root: Path, path: Path) -> str:
    """Return ``path`` relative to ``root`` in posix form (what items record)."""
    return path.relative_to(root).as_posix()
