"""The ``div2k`` and ``flickr2k`` sources: the DF2K training family of numbered HR PNGs.

DIV2K (Agustsson and Timofte, NTIRE 2017): splits ``train`` (default; ``0001.png`` to
``0800.png``) and ``valid`` (``0801.png`` to ``0900.png``), in the folders that the official
``DIV2K_train_HR.zip`` / ``DIV2K_valid_HR.zip`` extract to: ``ROOT/DIV2K_train_HR/`` or
``ROOT/DIV2K/DIV2K_train_HR/`` (same for ``valid``).

Flickr2K (Lim et al., EDSR 2017): no splits, ``000001.png`` to ``002650.png`` in
``ROOT/Flickr2K/Flickr2K_HR/`` (the official tarball) or ``ROOT/Flickr2K_HR/``.

Listing checks that every expected file is present and that no foreign PNG sits among
them; image ids are the file stems (``0001``, ``000001``). Neither set has depth. A partial copy
is refused with the command that uses it as a plain folder (``--source folder``).

``degrade datasets verify`` also reads each PNG's header (not its pixels): both sets are "2K
resolution" photos (2K pixels on at least one axis, Agustsson and Timofte 2017; Lim et al. 2017),
so a long side outside :data:`LONG_SIDE_PX` means a wrong file (an LR image, a thumbnail, a
re-encoded copy). No per-image size list or per-image sha256 is published for either set (the
archives' sha256 are, and are checked), so this is a plausibility check, not an identity check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .base import LoadedImage, SourceItem, load_image_only, resolve_split
from .layout import check_expected, files_in, find_folder, no_layout, preview, rel_to, require_root

#: Plausible (min, max) long side in px of a DIV2K / Flickr2K HR photo ("2K resolution").
LONG_SIDE_PX = (1900, 2048)


@dataclass(frozen=True)
class _Split:
    folders: tuple[str, ...]  # accepted locations relative to root, in order of preference
    first: int
    last: int
    digits: int

    def names(self) -> list[str]:
        return [f"{i:0{self.digits}d}.png" for i in range(self.first, self.last + 1)]


class NumberedHRSource:
    """HR images named by consecutive numbers in one folder per split."""

    def __init__(self, name: str, description: str, split_layouts: dict[str, _Split],
                 title: str, has_splits: bool) -> None:
        self.name = name
        self.description = description
        self._layouts = split_layouts
        self._title = title
        self.splits: tuple[str, ...] = tuple(split_layouts) if has_splits else ()

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List every HR image of a split, after checking that all of them are there.

        Raises:
            ConfigError: No root, an unknown split, or foreign PNGs in the folder.
            MissingAssetError: The folder or some of its images are missing.
        """
        root = require_root(self.name, root)
        key = resolve_split(self, split) or next(iter(self._layouts))
        layout = self._layouts[key]
        expected = layout.names()
        split_word = f" {key}" if self.splits else ""
        what = f"{self._title}{split_word} HR images {expected[0]}..{expected[-1]}"
        folder = find_folder(root, layout.folders)
        if folder is None:
            raise no_layout(self.name, root, layout.folders, f"folder with {len(expected)} {what}")
        check_expected(self.name, root, folder, files_in(folder), expected, what)
        return [SourceItem(self.name, n[:-4], str(folder / n), None, rel_to(root, folder / n))
                for n in expected]

    def size_problems(self, items: Sequence[SourceItem]) -> list[str]:
        """Return one line per item whose PNG header is unreadable or whose size is implausible.

        Reads only each file's header (cheap: no decoding). The plausible long side is
        :data:`LONG_SIDE_PX`.
        """
        from PIL import Image, UnidentifiedImageError

        lo, hi = LONG_SIDE_PX
        bad: list[str] = []
        for item in items:
            try:
                with Image.open(item.path) as im:
                    w, h = im.size
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                bad.append(f"{item.rel_path}: not a readable image ({exc})")
                continue
            if not lo <= max(w, h) <= hi:
                bad.append(f"{item.rel_path}: {w}x{h} px")
        if not bad:
            return []
        return [f"{len(bad)} of {len(items)} {self._title} image(s) are not {self._title} HR "
                f"photos (long side {lo}-{hi} px expected): {preview(bad)}"]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one HR image (uint8 RGB, no depth).

        Raises:
            InputError: The file is unreadable or not an image.
        """
        return load_image_only(item)


DIV2K = NumberedHRSource(
    "div2k", "DIV2K HR photos (2K): train 0001-0800, valid 0801-0900",
    {"train": _Split(("DIV2K_train_HR", "DIV2K/DIV2K_train_HR"), 1, 800, 4),
     "valid": _Split(("DIV2K_valid_HR", "DIV2K/DIV2K_valid_HR"), 801, 900, 4)},
    "DIV2K", has_splits=True)

FLICKR2K = NumberedHRSource(
    "flickr2k", "Flickr2K HR photos (2K): 000001-002650",
    {"all": _Split(("Flickr2K/Flickr2K_HR", "Flickr2K_HR"), 1, 2650, 6)},
    "Flickr2K", has_splits=False)
