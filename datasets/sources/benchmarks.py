"""The ``set5``, ``set14``, ``bsds100`` and ``urban100`` sources: the classic SR test sets.

A set lives in ``ROOT/<Set>/`` (``Set5``, ``Set14``, ``BSDS100``/``B100``/``BSD100``,
``Urban100``, or the same names in lower case) in one of the layouts that circulate, tried in this order:

1. ``<Set>/HR/*``             (plain HR folder of many re-distributions)
2. ``<Set>/original/*``       (BasicSR's benchmark archive, before mod-cropping)
3. ``<Set>/GTmod12/*``        (BasicSR's benchmark archive, mod-12 cropped)
4. ``<Set>/*``                (images directly in the set folder)
5. ``<Set>/image_SRF_4/*_HR.*`` (Huang et al.'s SelfExSR archive; LR files there are ignored)

Files: png, bmp, jpg, jpeg, tif, tiff. Counts: 5, 14, 100, 100; a different count is an
error naming the folder. No depth.

Image ids come from file stems, normalized so that one image gets one id in every layout:
the suffixes ``_SRF_<n>_HR``, ``_HR`` and ``_GT`` are dropped, ``img001``/``img_001`` become
``img_001``, and for Set5/Set14, whose SelfExSR numbering follows the alphabetical order of
the original names (checked against the image sizes), ``img_NNN`` maps to the name
(``img_003`` of Set14 is ``bridge``). Set14's ``bridge`` is grayscale; it is converted to RGB
and the conversion recorded.
"""

from __future__ import annotations

import re
from pathlib import Path

from ssr_core.errors import ConfigError

from .base import LoadedImage, SourceItem, load_image_only
from .layout import check_count, files_in, find_folder, no_layout, rel_to, require_root

#: Image files a benchmark folder may hold.
EXTENSIONS = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

#: Sub-folders of a set folder, in order of preference ("" = the set folder itself).
LAYOUTS = ("HR", "original", "GTmod12", "", "image_SRF_4")

SET5_NAMES = ("baby", "bird", "butterfly", "head", "woman")
SET14_NAMES = ("baboon", "barbara", "bridge", "coastguard", "comic", "face", "flowers",
               "foreman", "lenna", "man", "monarch", "pepper", "ppt3", "zebra")

_SUFFIX = re.compile(r"(_SRF_\d+)?_(HR|GT)$", re.IGNORECASE)
_NUMBERED = re.compile(r"^img_?(\d+)$", re.IGNORECASE)


def normalize_id(stem: str, names: tuple[str, ...] = ()) -> str:
    """Map a benchmark file stem to its image id.

    >>> normalize_id("img_003_SRF_4_HR", SET14_NAMES), normalize_id("img007"), normalize_id("baby_GT")
    ('bridge', 'img_007', 'baby')
    """
    stem = _SUFFIX.sub("", stem)
    match = _NUMBERED.match(stem)
    if match:
        number = int(match.group(1))
        if names and 1 <= number <= len(names):
            return names[number - 1]
        return f"img_{number:03d}"
    return stem.lower() if names else stem


class BenchmarkSource:
    """One of the small SR test sets, in any of the common layouts."""

    def __init__(self, name: str, title: str, folders: tuple[str, ...], count: int,
                 names: tuple[str, ...] = ()) -> None:
        self.name = name
        self.title = title
        self.description = f"{title} test set ({count} images), HR only"
        self._folders = folders
        self._count = count
        self._names = names

    def _manual(self, root: Path) -> str:
        # No official archive exists (manifests/datasets/<name>.yaml): say where files go.
        return (f"put the {self.title} HR images in {root / self._folders[0]} and check them "
                f"with `degrade datasets verify {self.name} --root {root}`")

    def _set_folder(self, root: Path) -> Path:
        folder = find_folder(root, self._folders)
        if folder is None:
            raise no_layout(self.name, root, self._folders,
                            f"folder with the {self._count} {self.title} images",
                            self._manual(root))
        return folder

    def list_items(self, root: Path | None) -> list[SourceItem]:
        """List the set's images from the first layout that holds any, after counting them.

        Raises:
            ConfigError: No root, two files with one id, or too many images.
            MissingAssetError: The set folder is absent or holds too few images.
        """
        root = require_root(self.name, root)
        set_dir = self._set_folder(root)
        folder, files = set_dir, []
        for sub in LAYOUTS:
            candidate = set_dir / sub if sub else set_dir
            if not candidate.is_dir():
                continue
            files = files_in(candidate, EXTENSIONS)
            if sub.startswith("image_SRF_"):
                files = [f for f in files if f.rsplit(".", 1)[0].upper().endswith("_HR")]
            if files:
                folder = candidate
                break
        ids = [normalize_id(f.rsplit(".", 1)[0], self._names) for f in files]
        seen: dict[str, str] = {}
        for f, image_id in zip(files, ids, strict=True):
            if image_id in seen:
                raise ConfigError(f"{folder}: {seen[image_id]} and {f} are the same image "
                                  f"{image_id!r}; keep one")
            seen[image_id] = f
        missing = [n for n in self._names if n not in seen]
        check_count(self.name, root, folder, len(files), self._count, f"{self.title} images",
                    missing, self._manual(root))
        return [SourceItem(self.name, i, str(folder / f), None, rel_to(root, folder / f))
                for f, i in zip(files, ids, strict=True)]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one image to uint8 RGB (grayscale converted and recorded); no depth.

        Raises:
            InputError: The file is unreadable or not an image.
        """
        return load_image_only(item)


SET5 = BenchmarkSource("set5", "Set5", ("Set5", "set5"), 5, SET5_NAMES)
SET14 = BenchmarkSource("set14", "Set14", ("Set14", "set14"), 14, SET14_NAMES)
BSDS100 = BenchmarkSource("bsds100", "BSDS100", ("BSDS100", "B100", "BSD100", "bsds100", "b100",
                                                 "bsd100"), 100)
URBAN100 = BenchmarkSource("urban100", "Urban100", ("Urban100", "urban100"), 100)
