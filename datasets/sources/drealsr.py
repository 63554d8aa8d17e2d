"""The ``drealsr`` source: DRealSR real LR/HR pairs (Wei et al., ECCV 2020), for evaluation only.

DRealSR's test sets pair a camera's zoomed-in shot (HR) with its zoomed-out shot (LR) of
the same scene, so they are already degraded by a real camera: they are scored with
``ssr-eval`` and refused by ``degrade build`` (``real_pairs = True``).

Layout (the authors' archive): ``ROOT/DRealSR/Test_x<s>/test_HR/*.png`` and
``.../test_LR/*.png``; also accepted with a per-scale folder ``DRealSR/x<s>/Test_x<s>/`` and
with ROOT being the ``DRealSR`` folder itself (``ROOT/Test_x<s>/``, ``ROOT/x<s>/Test_x<s>/``).
Splits: ``x4`` (default), ``x3``, ``x2`` select ``Test_x<s>``. Files pair by stem without the scale suffix:
``DSC_1454_x1.png`` (HR) with ``DSC_1454_x4.png`` (LR); the image id is that stem
(``DSC_1454``). Every HR file needs an LR partner and vice versa. No depth.

``load_item`` returns the HR image; ``load_pair`` returns HR and LR; ``lr_partner`` names the LR file
(also as methods of the source: the real-pair protocol of ``base.RealPairSource``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ssr_core.errors import ConfigError, InputError, MissingAssetError

from ..imageio import read_image
from .base import LoadedImage, SourceItem, load_image_only, resolve_split, sanitize_id
from .layout import download_hint, files_in, no_layout, preview, rel_to, require_root

NAME = "drealsr"
URL = "https://github.com/xiezw5/Component-Divide-and-Conquer-for-Real-World-Image-Super-Resolution"
_MANUAL = (f"download DRealSR from the links at {URL}, save it as DRealSR.zip in {{root}} "
           "and run `degrade datasets download drealsr --root {root}` (or extract it so that "
           "DRealSR/ exists)")
_SCALE_SUFFIX = re.compile(r"_x\d+$")


def pair_stem(filename: str) -> str:
    """Return the stem that pairs an HR and an LR file (scale suffix dropped).

    >>> pair_stem("DSC_1454_x1.png"), pair_stem("DSC_1454_x4.png")
    ('DSC_1454', 'DSC_1454')
    """
    return _SCALE_SUFFIX.sub("", filename.rsplit(".", 1)[0])


def _by_stem(folder: Path) -> dict[str, str]:
    """Map pair stem -> file name for the PNGs of a folder; two files per stem is an error."""
    out: dict[str, str] = {}
    for name in files_in(folder):
        stem = pair_stem(name)
        if stem in out:
            raise ConfigError(f"{folder}: {out[stem]} and {name} both pair as {stem!r}; keep one")
        out[stem] = name
    return out


def lr_folder(hr_path: str | Path) -> Path:
    """Return the LR folder beside the HR folder of an item (``test_HR`` -> ``test_LR``)."""
    return Path(hr_path).parent.with_name("test_LR")


class DRealSRSource:
    """DRealSR test pairs; listing and ``load_item`` give the HR side."""

    name = NAME
    description = "DRealSR real LR/HR test pairs (evaluation only, not a build source)"
    splits = ("x4", "x3", "x2")
    real_pairs = True

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List the HR images of ``Test_x<s>`` that have an LR partner (all must have one).

        Raises:
            ConfigError: No root, an unknown split, or two files with one pair stem.
            MissingAssetError: The folders are absent or a file lacks its partner.
        """
        root = require_root(NAME, root)
        split = resolve_split(self, split)
        candidates = (f"DRealSR/Test_{split}", f"DRealSR/{split}/Test_{split}", f"Test_{split}",
                      f"{split}/Test_{split}")
        base = next((root / c for c in candidates
                     if (root / c / "test_HR").is_dir() and (root / c / "test_LR").is_dir()),
                    None)
        if base is None:
            raise no_layout(NAME, root, [f"{c}/test_HR" for c in candidates],
                            f"folders test_HR/ and test_LR/ of DRealSR Test_{split}", _MANUAL)
        hr, lr = _by_stem(base / "test_HR"), _by_stem(base / "test_LR")
        hint = download_hint(NAME, root, _MANUAL)
        for have, want, side, other in ((hr, lr, "LR", "HR"), (lr, hr, "HR", "LR")):
            lonely = sorted(set(have) - set(want))
            if lonely:
                raise MissingAssetError(
                    f"{side} partners of {len(lonely)} of {len(have)} {other} images (found "
                    f"{len(have) - len(lonely)} of {len(have)} pairs; unpaired: "
                    f"{preview([have[k] for k in lonely])})", base / f"test_{side}", hint=hint)
        if not hr:
            raise MissingAssetError(f"the PNG pairs of DRealSR Test_{split} (found 0)",
                                    base / "test_HR", hint=hint)
        return [SourceItem(NAME, sanitize_id(stem), str(base / "test_HR" / name), None,
                           rel_to(root, base / "test_HR" / name))
                for stem, name in sorted(hr.items())]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode the HR side of a pair (uint8 RGB, no depth).

        Raises:
            InputError: The file is unreadable or not an image.
        """
        return load_image_only(item)

    def lr_partner(self, item: SourceItem) -> Path:
        """Return the LR file of a listed pair (:func:`lr_partner`)."""
        return lr_partner(item)

    def load_pair(self, item: SourceItem) -> tuple[np.ndarray, np.ndarray]:
        """Decode HR and LR of a listed pair (:func:`load_pair`)."""
        return load_pair(item)


def lr_partner(item: SourceItem) -> Path:
    """Return the LR file paired with an item's HR file (same pair stem, in ``test_LR``).

    Raises:
        InputError: No LR file in the LR folder pairs with the HR file.
    """
    hr_path = Path(item.path)
    stem = pair_stem(hr_path.name)
    folder = lr_folder(hr_path)
    partners = {pair_stem(n): n for n in files_in(folder)} if folder.is_dir() else {}
    if stem not in partners:
        raise InputError(hr_path, f"no LR partner {stem}_x<s>.png in {folder}")
    return folder / partners[stem]


def load_pair(item: SourceItem) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair: HR and LR, uint8 RGB (H, W, 3) and (h, w, 3).

    Raises:
        InputError: Unreadable files, no LR partner, or an LR size that is not HR / s
            (within s pixels) for the split's scale s.
    """
    hr_path = Path(item.path)
    lr_path = lr_partner(item)
    hr = read_image(hr_path).rgb
    lr = read_image(lr_path).rgb
    match = re.search(r"_x(\d+)$", hr_path.parent.parent.name)
    scale = int(match.group(1)) if match else None
    if scale is not None and any(abs(h - scale * w) >= scale
                                 for h, w in zip(hr.shape[:2], lr.shape[:2], strict=True)):
        raise InputError(lr_path, f"LR {lr.shape[1]}x{lr.shape[0]} is not HR "
                                  f"{hr.shape[1]}x{hr.shape[0]} / {scale}")
    return hr, lr


SOURCE = DRealSRSource()
