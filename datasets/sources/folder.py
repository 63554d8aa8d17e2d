"""The ``folder`` source: every image under a user's folder, with optional depth beside it.

Images: ``*.png, *.jpg, *.jpeg, *.bmp, *.tif, *.tiff, *.webp`` (any case), found
recursively, hidden files and folders skipped, symlinked folders not followed.
Depth beside ``<dir>/<stem>.<ext>``: ``<stem>.depth.npy`` (float32 metres) or
``<stem>_depth.png`` (16-bit millimetres, 0 = unknown). A ``*_depth.png`` counts as
depth (and is not listed as an image) only when an image ``<stem>.<ext>`` sits beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from ssr_core.errors import ConfigError, InputError

from ..formats import IMAGE_SUFFIXES
from ..imageio import pixel_sha256, read_image
from .base import LoadedImage, SourceItem, unique_ids
from .depth import fill_unknown, match_size, read_depth_file

NAME = "folder"

NPY_DEPTH_SUFFIX = ".depth.npy"
PNG_DEPTH_SUFFIX = "_depth.png"


def _walk_images(root: Path) -> list[str]:
    """Return image paths relative to root (posix), sorted, hidden entries skipped."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = Path(dirpath).relative_to(root)
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES):
                found.append((rel_dir / name).as_posix())
    return sorted(found)


def _depth_partner_stems(rel_paths: list[str]) -> set[str]:
    """Return the stems (relative, posix, no extension) of all listed images."""
    return {p.rsplit(".", 1)[0] for p in rel_paths}


class FolderSource:
    """Images in a user folder (recursive) with optional depth files beside them."""

    name = NAME
    description = "your own images in a folder (recursive); depth beside as .depth.npy/_depth.png"

    def list_items(self, root: Path | None = None) -> list[SourceItem]:
        """List images under ``root``; ids come from relative paths (sanitized, unique).

        Raises:
            ConfigError: ``root`` is missing or not a directory.
        """
        if root is None:
            raise ConfigError("source 'folder' needs a root folder (got root=None)")
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"source 'folder': root {str(root)!r} is not a directory")
        rel_paths = _walk_images(root)
        stems = _depth_partner_stems(rel_paths)
        # A *_depth.png whose partner image exists is depth, not an image.
        rel_paths = [p for p in rel_paths
                     if not (p.endswith(PNG_DEPTH_SUFFIX)
                             and p[: -len(PNG_DEPTH_SUFFIX)] in stems)]
        ids = unique_ids(p.rsplit(".", 1)[0] for p in rel_paths)
        items = []
        for rel, image_id in zip(rel_paths, ids, strict=True):
            path = root / rel
            items.append(SourceItem(NAME, image_id, str(path), _find_depth(path), rel))
        return sorted(items, key=lambda it: it.image_id)

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one image and its depth (resized when the aspect agrees, holes filled).

        Raises:
            InputError: Bad image, bad depth, two depth files, or mismatched aspect.
        """
        decoded = read_image(item.path)
        notes = list(decoded.conversions)
        depth = None
        if item.depth_path is not None:
            others = [p for p in _depth_candidates(Path(item.path))
                      if p.is_file() and str(p) != item.depth_path]
            if others:
                raise InputError(item.depth_path, f"two depth files for one image: also "
                                                  f"{others[0].name}; keep one")
            h, w = decoded.rgb.shape[:2]
            depth = read_depth_file(item.depth_path)
            depth, more = match_size(item.depth_path, depth, h, w)
            notes += more
            depth, more = fill_unknown(item.depth_path, depth)
            notes += more
        return LoadedImage(rgb=decoded.rgb, depth_m=depth, conversions=tuple(notes),
                           pixel_sha256=pixel_sha256(decoded.rgb), source_png=decoded.source_png)


def _depth_candidates(image: Path) -> list[Path]:
    """Return the depth files that may belong to an image, in order of precedence."""
    stem = image.name.rsplit(".", 1)[0]
    return [image.with_name(stem + NPY_DEPTH_SUFFIX), image.with_name(stem + PNG_DEPTH_SUFFIX)]


def _find_depth(image: Path) -> str | None:
    """Return the first existing depth file beside an image, or None."""
    for candidate in _depth_candidates(image):
        if candidate.is_file():
            return str(candidate)
    return None


SOURCE = FolderSource()
