"""The ``folder`` method: SR outputs produced elsewhere, handed back as image files.

Matching, per test set: the folder searched is ``DIR/<testset.group>/`` when that folder exists
(one ``DIR`` can hold the outputs for every group of a table), else ``DIR`` itself; subfolders
are not searched. An image's output is the file whose stem is its key (``div2k-0801-000.png``)
or its source image id (``0801.png``), with a suffix in :data:`IMAGE_SUFFIXES` (any case). The
image id is only accepted when it names one image of the set: several variants of one source
image share an id, and one file cannot be the output of different LR inputs.

The method cannot run on a set (``unsupported`` gives the reason) when an image has no output,
when two files match one image, or when an output is not ``s*h x s*w`` (LR sizes are read from
the headers of ``testset.lr_dir/{key}.png``; ``super_resolve`` checks again on the decoded
images). Outputs are read as they are, never cached (``caches_outputs`` False), and the
fingerprint covers the matched files' relative names and sha256, so edited outputs are rescored.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ssr_core.errors import ConfigError, InputError
from ssr_core.io import sha256_file
from ssr_datasets.formats import IMAGE_SUFFIXES
from ssr_datasets.imageio import read_image

from ..spec import RowSpec
from ..testsets import TestImage, TestSet
from .base import CODE_VERSIONS, MethodKind, digest

_SHOWN = 3  # names listed in a reason before "..."


@dataclass
class _Matched:
    """The outputs found for one test set: key -> file, the problem (or None), the fingerprint."""

    where: Path
    files: dict[str, Path]
    reason: str | None
    fingerprint: str | None = None


def _listing(items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def _size(path: Path) -> tuple[int, int] | None:
    """Return (height, width) from an image file's header, or None when it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


@dataclass
class FolderMethod:
    """Outputs in a folder, matched by file stem; see the module docstring."""

    name: str
    path: Path
    kind: MethodKind = "folder"
    caches_outputs: bool = False
    _matched: dict[tuple[str, str], _Matched] = field(default_factory=dict, repr=False)

    def _match(self, testset: TestSet) -> _Matched:
        cache_key = (testset.fingerprint, testset.group)
        if cache_key in self._matched:
            return self._matched[cache_key]
        sub = self.path / testset.group
        where = sub if testset.group and sub.is_dir() else self.path
        by_stem: dict[str, list[Path]] = {}
        for p in sorted(where.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                by_stem.setdefault(p.stem, []).append(p)
        ids = Counter(testset.image_ids.get(k, k) for k in testset.keys)
        files: dict[str, Path] = {}
        missing: list[str] = []
        ambiguous: list[str] = []
        for key in testset.keys:
            image_id = testset.image_ids.get(key, key)
            stems = [key] + ([image_id] if image_id != key and ids[image_id] == 1 else [])
            found = [p for stem in stems for p in by_stem.get(stem, [])]
            if not found:
                missing.append(f"{key}.png" + (f" (or {image_id}.png)" if len(stems) > 1 else ""))
            elif len(found) > 1:
                ambiguous.append(f"{key}: {' and '.join(p.name for p in found)}")
            else:
                files[key] = found[0]
        reason = None
        n = len(testset.keys)
        if missing:
            reason = (f"{len(missing)} of {n} images have no output in {where} (any of "
                      f"{'/'.join(s.lstrip('.') for s in IMAGE_SUFFIXES)}): {_listing(missing)}")
        elif ambiguous:
            reason = f"several outputs match one image in {where}: {_listing(ambiguous)}"
        else:
            reason = self._check_sizes(files, testset)
        matched = _Matched(where, files, reason)
        self._matched[cache_key] = matched
        return matched

    def _check_sizes(self, files: dict[str, Path], testset: TestSet) -> str | None:
        s, wrong = testset.scale, []
        for key, path in files.items():
            lr = _size(Path(testset.lr_dir) / f"{key}.png")
            out = _size(path)
            if out is None:
                wrong.append(f"{path.name} cannot be read as an image")
            elif lr is not None and out != (s * lr[0], s * lr[1]):
                wrong.append(f"{path.name} is {out[1]}x{out[0]}, expected {s * lr[1]}x{s * lr[0]} "
                             f"(x{s} of the {lr[1]}x{lr[0]} LR)")
        return f"outputs of the wrong size: {_listing(wrong)}" if wrong else None

    def fingerprint_for(self, testset: TestSet) -> str:
        matched = self._match(testset)
        if matched.fingerprint is None:
            entries = sorted((p.relative_to(self.path).as_posix(), sha256_file(p))
                             for p in matched.files.values())
            matched.fingerprint = digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind],
                                          "files": entries})
        return matched.fingerprint

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.path), "suffixes": list(IMAGE_SUFFIXES),
                "matching": "file stem = image key or source image id, in DIR/<group>/ if present"}

    def unsupported(self, testset: TestSet) -> str | None:
        return self._match(testset).reason

    def check_row(self, row: RowSpec) -> None:
        """Accept any row: outputs made elsewhere carry no config to check ``expects`` against."""

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        matched = self._match(testset)
        if matched.reason is not None:
            raise ConfigError(f"--method {self.name}={self.path}: {matched.reason}")
        path = matched.files.get(image.key)
        if path is None:
            raise ConfigError(f"{testset.name}: image {image.key} is not one of the set's keys")
        rgb = read_image(path).rgb
        want = (testset.scale * image.lr.shape[0], testset.scale * image.lr.shape[1], 3)
        if rgb.shape != want:
            raise InputError(path, f"output is {rgb.shape[1]}x{rgb.shape[0]}, expected "
                                   f"{want[1]}x{want[0]} (x{testset.scale} of the LR)")
        return rgb
