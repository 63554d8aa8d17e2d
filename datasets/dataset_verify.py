"""Check a dataset folder: archive checksums, layout per split, image sizes, benchmark pixel hashes.

Not to be confused with ``manifest.verify_shard_set``, which checks a built shard set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ssr_core.errors import InputError, SsrError

from .catalog import DatasetSpec, check_present, is_provided, load_dataset

ImageStatus = Literal["match", "differs", "missing"]


@dataclass(frozen=True)
class ImageCheck:
    """Decoded-pixel check of one benchmark image.

    Attributes:
        path: The manifest's path (relative to the root).
        status: ``match`` (same decoded pixels; possibly found under another name, see
            ``found``), ``differs`` (the file exists with other pixels), ``missing``.
        found: Where the matching or differing file is, relative to the root.
        detail: Shapes or hashes when they differ.
    """

    path: str
    status: ImageStatus
    found: str | None = None
    detail: str = ""


@dataclass
class VerifyReport:
    """The outcome of ``verify_dataset``: per-file, per-split and per-image lines.

    ``problems`` make the check fail; ``warnings`` (such as a benchmark copy whose pixels
    differ from the recorded copy) fail it only in strict mode.
    """

    name: str
    root: Path
    files: list[tuple[str, str]] = field(default_factory=list)
    splits: list[tuple[str, str]] = field(default_factory=list)
    images: list[ImageCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    strict: bool = False

    @property
    def ok(self) -> bool:
        """True when there is no problem (and, in strict mode, no warning)."""
        return not self.problems and not (self.strict and self.warnings)


def _verify_files(spec: DatasetSpec, root: Path, report: VerifyReport) -> None:
    for f in spec.files:
        path = root / f.name
        if path.is_file():
            try:
                status, _ = check_present(root, f, path)
            except InputError as exc:
                report.files.append((f.name, "mismatch"))
                report.problems.append(str(exc))
                continue
            report.files.append((f.name, "sha256 verified" if status == "verified" else
                                 "sha256 not recorded yet (none published; `degrade datasets "
                                 "download` records it once the archive extracts)"))
        elif f.extract and is_provided(root, f):
            report.files.append((f.name, f"archive not kept; {f.provides} present"))
        else:
            report.files.append((f.name, "absent"))
            where = f" (or its extracted {f.provides})" if f.provides else ""
            report.problems.append(f"{f.name}{where} is not in {root}; run `degrade datasets "
                                   f"download {spec.name} --root {root}`"
                                   + ("" if f.urls else f" or: {spec.manual}"))


def _verify_layout(spec: DatasetSpec, root: Path, report: VerifyReport) -> None:
    """List each split with the registered source (the source owns the layout rules)."""
    from . import sources

    if spec.name not in getattr(sources, "SOURCE_NAMES", ()):
        report.splits.append(("*", f"skipped: no registered source named {spec.name!r}"))
        return
    source_splits = sources.splits_of(spec.name) if hasattr(sources, "splits_of") else ()
    calls: list[str | None] = [s for s in spec.splits if s in source_splits] if source_splits \
        else [None]
    for split in calls:
        label = split or "*"
        try:
            items = sources.list_items(spec.name, root, split) if split else \
                sources.list_items(spec.name, root)
        except SsrError as exc:
            report.splits.append((label, "layout error"))
            report.problems.append(f"layout ({label}): {exc}")
            continue
        report.splits.append((label, f"{len(items)} item(s)"))
        if not items:
            report.problems.append(f"layout ({label}): the source lists no image under {root}")
        sizes = getattr(sources.get_source(spec.name), "size_problems", None)
        if sizes is not None and items:  # sources that know their images' plausible sizes
            report.problems += [f"sizes ({label}): {line}" for line in sizes(items)]


def _image_files(root: Path) -> list[Path]:
    exts = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts))


def _verify_images(spec: DatasetSpec, root: Path, report: VerifyReport) -> None:
    from .imageio import pixel_sha256, read_image

    def decode(path: Path) -> tuple[str, tuple[int, ...]] | None:
        try:
            rgb = read_image(path).rgb
        except InputError:
            return None
        return pixel_sha256(rgb), tuple(rgb.shape)

    pending = []
    for img in spec.images:
        path = root / img.path
        got = decode(path) if path.is_file() else None
        if got and got[0] == img.pixel_sha256:
            report.images.append(ImageCheck(img.path, "match", img.path))
        elif got:
            report.images.append(ImageCheck(img.path, "differs", img.path,
                                            f"shape {got[1]} vs recorded {img.shape}"))
        else:
            pending.append(img)
    if pending:  # same pixels under another name (copies rename files): look for them by hash
        from PIL import Image

        sizes = {(img.shape[1], img.shape[0]) for img in pending if len(img.shape) >= 2}
        by_hash: dict[str, str] = {}
        for p in _image_files(root):
            try:
                with Image.open(p) as im:
                    if sizes and im.size not in sizes:
                        continue
            except OSError:
                continue
            got = decode(p)
            if got:
                by_hash.setdefault(got[0], p.relative_to(root).as_posix())
        for img in pending:
            found = by_hash.get(img.pixel_sha256)
            report.images.append(ImageCheck(img.path, "match" if found else "missing", found))
    for check in report.images:
        if check.status == "differs":
            report.warnings.append(f"{check.path}: decoded pixels differ from the recorded copy "
                                   f"({spec.pixel_sha256_source}); {check.detail}")
        elif check.status == "missing":
            report.warnings.append(f"{check.path}: no image with the recorded pixels under {root}")


def verify_dataset(name: str | DatasetSpec, root: str | Path, strict: bool = False) -> VerifyReport:
    """Check a dataset folder: archive checksums, layout per split, benchmark pixel hashes.

    Args:
        name: A built-in dataset name, a manifest path, or a loaded DatasetSpec.
        root: The dataset's folder.
        strict: Count differing or missing benchmark images as failures.

    Returns:
        The report; ``report.ok`` is False on any problem. A file without a published or
        recorded sha256 gets its checksum recorded (reported as ``sha256 recorded``).

    Raises:
        ConfigError: Unknown dataset.
        InputError: ``root`` is not a folder.
    """
    spec = name if isinstance(name, DatasetSpec) else load_dataset(name)
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, f"not a folder; download {spec.name} there first")
    report = VerifyReport(spec.name, root, strict=strict)
    _verify_files(spec, root, report)
    _verify_layout(spec, root, report)
    _verify_images(spec, root, report)
    return report
