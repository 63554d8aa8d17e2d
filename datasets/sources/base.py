"""What every source produces: listed items, loaded images, and safe, unique ids."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ssr_core.errors import ConfigError

_ID_BAD = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class SourceItem:
    """One listed input image (picklable, so it can cross process boundaries).

    Attributes:
        source: Registered source name, e.g. ``"sample"``.
        image_id: Id unique within the source, characters ``[A-Za-z0-9_]`` only.
        path: Image file.
        depth_path: Depth file that belongs to the image, or None.
        rel_path: The image's path relative to the source's root (``path`` when None): what
            samples and manifests record, so that shards do not depend on where the data lives.
    """

    source: str
    image_id: str
    path: str
    depth_path: str | None = None
    rel_path: str | None = None

    @property
    def portable_path(self) -> str:
        """Return the path to record (relative to the source's root when known), escaped by
        :func:`portable_name` so that it is valid UTF-8 whatever bytes the file name holds."""
        return portable_name(self.rel_path if self.rel_path is not None else self.path)


def portable_name(path: str) -> str:
    """Escape a file name for JSON records: bytes that are not UTF-8 become ``%XX``, ``%`` ``%25``.

    POSIX file names are bytes; Python hands undecodable ones over as lone surrogates
    (``b"\\xff"`` -> ``"\\udcff"``), which JSON can escape but no strict UTF-8 reader accepts.
    Every other character is kept, so ordinary names are recorded as they are (a ``%`` is
    doubled as ``%25`` to keep the mapping reversible: :func:`name_bytes` gives the bytes back).

    >>> portable_name("photos/b\\udcff 100%.png")
    'photos/b%FF 100%25.png'
    """
    raw = os.fsencode(path)  # the name's bytes (surrogateescape undone)
    out = []
    for ch in raw.decode("utf-8", "surrogateescape"):
        if ch == "%":
            out.append("%25")
        elif "\udc80" <= ch <= "\udcff":  # one byte that is not UTF-8
            out.append(f"%{ord(ch) - 0xDC00:02X}")
        else:
            out.append(ch)
    return "".join(out)


def name_bytes(recorded: str) -> bytes:
    """Return the original bytes of a name recorded by :func:`portable_name`.

    >>> name_bytes('photos/b%FF 100%25.png')
    b'photos/b\\xff 100%.png'
    """
    from urllib.parse import unquote_to_bytes

    return unquote_to_bytes(recorded)


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded input image with optional metric depth.

    Attributes:
        rgb: uint8 (H, W, 3) RGB.
        depth_m: float32 (H, W) depth in metres, finite and > 0 everywhere (unknown
            pixels filled, see ``conversions``), or None when the source has no depth.
        conversions: Notes on every conversion of the image and the depth.
        pixel_sha256: sha256 of the decoded RGB (``imageio.pixel_sha256``).
        source_png: The file's bytes when it is a PNG whose decoded pixels are ``rgb`` as
            they are (``imageio.DecodedImage.source_png``), else None: the build may carry
            them into ``hr.png`` instead of encoding the pixels again.
    """

    rgb: np.ndarray
    depth_m: np.ndarray | None
    conversions: tuple[str, ...]
    pixel_sha256: str
    source_png: bytes | None = None


class Source(Protocol):
    """A named image source; registered in ``ssr_datasets.sources``.

    Optional attributes, read with ``getattr`` and these defaults:

    - ``splits: tuple[str, ...] = ()``: the splits the source knows (first = default);
      a source with splits takes ``list_items(root, split)``, one without takes
      ``list_items(root)`` and refuses any split.
    - ``real_pairs: bool = False``: the source holds real LR/HR pairs for evaluation and
      is not an input to a synthetic degradation build; it then also has the methods of
      :class:`RealPairSource`.
    """

    name: str
    description: str

    def list_items(self, root: Path | None) -> list[SourceItem]:
        """List the source's images in a deterministic order."""

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one listed image (and its depth); raise InputError on bad input."""


class RealPairSource(Source, Protocol):
    """A source of real LR/HR pairs (``real_pairs = True``): its items are the HR sides."""

    def lr_partner(self, item: SourceItem) -> Path:
        """Return the LR file of a listed pair; raise InputError when it has none."""

    def load_pair(self, item: SourceItem) -> tuple[np.ndarray, np.ndarray]:
        """Decode a listed pair: HR uint8 (H, W, 3) and LR uint8 (h, w, 3); InputError on bad input."""


def sanitize_id(text: str) -> str:
    """Map any text to an id of ``[A-Za-z0-9_]`` characters (runs of others -> ``_``).

    >>> sanitize_id("a dir/IMG-01.final")
    'a_dir_IMG_01_final'
    """
    cleaned = _ID_BAD.sub("_", text).strip("_")
    return cleaned or "_"


def unique_ids(names: Iterable[str]) -> list[str]:
    """Sanitize names in the given order and suffix ``_2``, ``_3``... to make them unique.

    The first occurrence keeps the plain id, so the result depends only on the order
    of ``names`` (callers pass them sorted).

    >>> unique_ids(["a.b", "a b", "a_b_2"])
    ['a_b', 'a_b_3', 'a_b_2']
    """
    names = list(names)
    plain = [sanitize_id(n) for n in names]
    taken = set(plain)
    seen: set[str] = set()
    out = []
    for pid in plain:
        if pid not in seen:
            seen.add(pid)
            out.append(pid)
            continue
        k = 2
        while f"{pid}_{k}" in taken:
            k += 1
        new = f"{pid}_{k}"
        taken.add(new)
        seen.add(new)
        out.append(new)
    return out


def source_splits(source: object) -> tuple[str, ...]:
    """Return the splits a source declares (``()`` when it has none); the first is the default."""
    return tuple(getattr(source, "splits", ()))


def resolve_split(source: object, split: str | None) -> str | None:
    """Return the split to list: ``split`` checked against the source's, or its default.

    >>> class S: name, splits = "x", ("train", "valid")
    >>> resolve_split(S(), None), resolve_split(S(), "valid")
    ('train', 'valid')

    Raises:
        ConfigError: A split the source does not know (the message lists its splits), or
            any split for a source without splits.
    """
    name = getattr(source, "name", "?")
    splits = source_splits(source)
    if not splits:
        if split is not None:
            raise ConfigError(f"source {name!r} has no splits; got split={split!r} (leave it out)")
        return None
    if split is None:
        return splits[0]
    if split not in splits:
        raise ConfigError(f"source {name!r} has no split {split!r}; choose one of: "
                          f"{', '.join(splits)} (default {splits[0]})")
    return split


def load_image_only(item: SourceItem) -> LoadedImage:
    """Decode an item's image to uint8 RGB (conversions recorded), with no depth.

    Raises:
        InputError: The file is unreadable or not an image.
    """
    from ..imageio import pixel_sha256, read_image

    decoded = read_image(item.path)
    return LoadedImage(rgb=decoded.rgb, depth_m=None, conversions=decoded.conversions,
                       pixel_sha256=pixel_sha256(decoded.rgb), source_png=decoded.source_png)
