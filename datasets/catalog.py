"""Dataset manifests (manifests/datasets/*.yaml) and the checksum lock of a dataset root.

A manifest lists a dataset's files (URLs, sizes, published sha256 and where each comes from)
and, for benchmarks, the decoded-pixel hashes of its images. A file whose manifest publishes no
sha256 gets one recorded on first download in ``<root>/.ssr-bench/checksums.json`` (trust on
first use; an archive's only once it extracted, i.e. read to its end, so a resumed transfer that
joined two versions of a file is never trusted); later downloads and verifies hold it to that
value. A mismatch is never accepted silently.

Layout per dataset: ``root`` is the dataset's own folder (what ``sources.list_items`` takes);
archives are saved there and extracted there, so ``provides`` paths are relative to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import yaml

from ssr_core.config import dataclass_at, named_or_yaml_path
from ssr_core.errors import ConfigError, InputError
from ssr_core.io import sha256_file, write_json_atomic

from .archive import STATE_DIR, marker_path

#: Datasets with a manifest in ssr_manifests/datasets/, registered here explicitly.
DATASET_NAMES: tuple[str, ...] = (
    "div2k", "flickr2k", "set5", "set14", "bsds100", "urban100", "drealsr", "div2krk", "nyuv2",
    "cityscapes", "middlebury",
)
LOCK_NAME = "checksums.json"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

Availability = Literal["download", "manual", "partial"]


# --------------------------------------------------------------------------- manifests
@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset, as listed under ``files:`` in its manifest.

    Attributes:
        name: Plain file name saved in the dataset root.
        urls: Official URL first, then mirrors; empty when the file must be fetched by hand.
        bytes: Size in bytes, or None when unpublished.
        sha256: Published hex sha256, or None (then the first download records one).
        checksum_source: Where ``sha256`` comes from, in words.
        extract: Whether the file is an archive to extract into the root.
        provides: What extraction creates, relative to the root (``DIV2K_valid_HR/``); its
            presence means the archive need not be fetched.
        splits: Splits that need the file (empty: every split).
    """

    name: str
    urls: tuple[str, ...] = ()
    bytes: int | None = None
    sha256: str | None = None
    checksum_source: str = "none published; the first download records it"
    extract: bool = False
    provides: str | None = None
    splits: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImageSpec:
    """Decoded-pixel hash of one benchmark image, ``path`` relative to the dataset root."""

    path: str
    pixel_sha256: str
    shape: tuple[int, ...] = ()
    split: str = "test"


@dataclass(frozen=True)
class DatasetSpec:
    """A validated dataset manifest."""

    name: str
    description: str
    homepage: str
    license: str
    citation: str
    splits: tuple[str, ...]
    files: tuple[FileSpec, ...] = ()
    manual: str | None = None
    layout: str | None = None
    notes: str | None = None
    pixel_sha256_source: str | None = None
    images: tuple[ImageSpec, ...] = ()

    @property
    def total_bytes(self) -> int | None:
        """Sum of the files' sizes, or None when a size is unknown or there are no files."""
        sizes = [f.bytes for f in self.files]
        return None if not sizes or None in sizes else sum(sizes)  # type: ignore[arg-type]

    @property
    def availability(self) -> Availability:
        """``download`` when every file has a URL, ``manual`` when none has, else ``partial``."""
        with_url = [bool(f.urls) for f in self.files]
        if with_url and all(with_url):
            return "download"
        return "partial" if any(with_url) else "manual"

    def files_for(self, split: str | None) -> tuple[FileSpec, ...]:
        """Return the files a split needs (all files when ``split`` is None)."""
        if split is None:
            return self.files
        if split not in self.splits:
            raise ConfigError(f"dataset {self.name!r} has no split {split!r}; choose one of: "
                              f"{', '.join(self.splits)}")
        return tuple(f for f in self.files if not f.splits or split in f.splits)


def _check_type(value: Any, kinds: tuple[type, ...], where: str) -> None:
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        want = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        raise ConfigError(f"{where}: expected {want}, got {value!r:.80}")


def dataset_from_dict(data: Any, where: str = "<dataset manifest>") -> DatasetSpec:
    """Validate parsed YAML into a DatasetSpec (types, hashes, names, splits).

    Raises:
        ConfigError: Unknown or missing key (with "did you mean"), wrong type, malformed
            sha256, a file name with a folder in it, or a split not in ``splits``.
    """
    spec = dataclass_at(DatasetSpec, data, where)
    for key in ("name", "description", "homepage", "license", "citation"):
        _check_type(getattr(spec, key), (str,), f"{where}: {key}")
    for key in ("manual", "layout", "notes", "pixel_sha256_source"):
        _check_type(getattr(spec, key), (str, type(None)), f"{where}: {key}")
    if not spec.splits or not all(isinstance(s, str) for s in spec.splits):
        raise ConfigError(f"{where}: splits must be a non-empty list of names")
    files = []
    for i, raw in enumerate(spec.files):
        w = f"{where}: files[{i}]"
        f = dataclass_at(FileSpec, raw, w)
        _check_type(f.name, (str,), f"{w}.name")
        if "/" in f.name or "\\" in f.name or f.name in ("", ".", ".."):
            raise ConfigError(f"{w}.name: a plain file name is expected, got {f.name!r}")
        if not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in f.urls):
            raise ConfigError(f"{w}.urls: expected a list of http(s) URLs, got {list(f.urls)}")
        _check_type(f.bytes, (int, type(None)), f"{w}.bytes")
        _check_type(f.sha256, (str, type(None)), f"{w}.sha256")
        if f.sha256 is not None and not _SHA256.match(f.sha256):
            raise ConfigError(f"{w}.sha256: expected 64 lower-case hex digits, got {f.sha256!r}")
        _check_type(f.extract, (bool,), f"{w}.extract")
        _check_type(f.provides, (str, type(None)), f"{w}.provides")
        bad = [s for s in f.splits if s not in spec.splits]
        if bad:
            raise ConfigError(f"{w}.splits: {bad} not among the dataset's splits {list(spec.splits)}")
        files.append(f)
    images = []
    for i, raw in enumerate(spec.images):
        img = dataclass_at(ImageSpec, raw, f"{where}: images[{i}]")
        if not _SHA256.match(str(img.pixel_sha256)):
            raise ConfigError(f"{where}: images[{i}].pixel_sha256 is not a sha256 hex digest")
        images.append(img)
    if images and not spec.pixel_sha256_source:
        raise ConfigError(f"{where}: images are listed, so say which copy they hash in "
                          "pixel_sha256_source")
    return DatasetSpec(**{**spec.__dict__, "files": tuple(files), "images": tuple(images)})


def manifest_path(name: str) -> Path:
    """Return the YAML file of a built-in dataset manifest."""
    from ssr_manifests import ROOT

    return ROOT / "datasets" / f"{name}.yaml"


def load_dataset(name_or_path: str | Path) -> DatasetSpec:
    """Load a built-in dataset manifest by name, or a YAML file by path, and validate it.

    Raises:
        ConfigError: Unknown name (with "did you mean"), unreadable or invalid YAML, or a
            built-in file whose ``name`` differs from its file name.
    """
    text = str(name_or_path)
    path = named_or_yaml_path(text, DATASET_NAMES, manifest_path, "dataset")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read dataset manifest {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    spec = dataset_from_dict(data, str(path))
    if text in DATASET_NAMES and spec.name != text:
        raise ConfigError(f"{path}: name {spec.name!r} does not match the file name {text!r}")
    return spec


# --------------------------------------------------------------------------- checksum lock
def lock_path(root: str | Path) -> Path:
    """Return ``<root>/.ssr-bench/checksums.json``, the recorded checksums of a dataset root."""
    return Path(root) / STATE_DIR / LOCK_NAME


def read_lock(root: str | Path) -> dict[str, dict[str, Any]]:
    """Return file name -> {sha256, bytes, url, recorded_at} (empty when there is no lock)."""
    path = lock_path(root)
    if not path.is_file():
        return {}
    import json

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable checksum lock file ({exc}); fix or delete it") from exc
    if not isinstance(data, dict):
        raise InputError(path, "checksum lock file must hold a JSON object; fix or delete it")
    return data


def record_checksum(root: Path, name: str, sha256: str, size: int, url: str | None) -> None:
    """Record a file's sha256 and size in the root's checksum lock (trust on first use)."""
    lock = read_lock(root)
    lock[name] = {"sha256": sha256, "bytes": size, "url": url,
                  "recorded_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    lock_path(root).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(lock_path(root), lock)


def expected_sha256(spec: FileSpec, root: str | Path) -> tuple[str | None, str]:
    """Return (sha256 to hold the file to, where it comes from: "manifest"/"recorded"/"none")."""
    if spec.sha256:
        return spec.sha256, "manifest"
    entry = read_lock(root).get(spec.name)
    if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
        return entry["sha256"], "recorded"
    return None, "none"


# --------------------------------------------------------------------------- files on disk
def is_provided(root: Path, f: FileSpec) -> bool:
    """True when what an archive extracts to is in place (its marker, without ``provides``)."""
    if f.provides:
        return (root / f.provides.rstrip("/")).exists()
    return f.extract and marker_path(root, f.name).is_file()


def check_present(root: Path, f: FileSpec, path: Path) -> tuple[Literal["verified", "unrecorded"],
                                                                   str]:
    """Verify a file already on disk against the manifest or lock; return (status, sha256).

    ``unrecorded``: neither publishes a sha256. Nothing is recorded here: the caller records
    the hash only once it trusts the bytes (``download_dataset``: after the archive extracted).

    Raises:
        InputError: The size or sha256 differs (the message says to delete the file).
    """
    want, origin = expected_sha256(f, root)
    size = path.stat().st_size
    if f.bytes is not None and size != f.bytes:
        raise InputError(path, f"size mismatch: expected {f.bytes} bytes, got {size}; delete "
                               "it to download again")
    digest = sha256_file(path)
    if want is None:
        return "unrecorded", digest
    if digest != want:
        raise InputError(path, f"sha256 mismatch: expected {want} ({origin}), got {digest}; "
                               f"delete it to download again" + (
                                   f", or remove its entry from {lock_path(root)} if the "
                                   "upstream file really changed" if origin == "recorded" else ""))
    return "verified", digest
