"""Image sources, registered here explicitly (no folder scanning) and imported lazily.

Each entry (``SOURCES`` below, an :class:`ssr_core.registry.Registry`) names a module and the
object in it, an object with ``name``, ``description``, ``list_items(root[, split])`` and
``load_item(item)``; optional ``splits`` and ``real_pairs`` (see ``base.Source``).
"""

from __future__ import annotations

from pathlib import Path

from ssr_core.errors import ConfigError, InputError
from ssr_core.registry import Registry

from .base import (
    LoadedImage,
    RealPairSource,
    Source,
    SourceItem,
    resolve_split,
    sanitize_id,
    source_splits,
    unique_ids,
)

#: The one place sources are registered: name -> ``.module:OBJECT`` (relative to this package),
#: imported on first lookup so listing the names (``degrade --help``) imports no source module.
SOURCES: Registry[Source, None] = Registry("source", package=__name__)
SOURCES.register_lazy("sample", ".sample:SOURCE")
SOURCES.register_lazy("folder", ".folder:SOURCE")
SOURCES.register_lazy("div2k", ".df2k:DIV2K")
SOURCES.register_lazy("flickr2k", ".df2k:FLICKR2K")
SOURCES.register_lazy("set5", ".benchmarks:SET5")
SOURCES.register_lazy("set14", ".benchmarks:SET14")
SOURCES.register_lazy("bsds100", ".benchmarks:BSDS100")
SOURCES.register_lazy("urban100", ".benchmarks:URBAN100")
SOURCES.register_lazy("drealsr", ".drealsr:SOURCE")
SOURCES.register_lazy("div2krk", ".div2krk:SOURCE")
SOURCES.register_lazy("nyuv2", ".nyuv2:SOURCE")
SOURCES.register_lazy("cityscapes", ".cityscapes:SOURCE")
SOURCES.register_lazy("middlebury", ".middlebury:SOURCE")

#: The source names in registration order (derived: click choices and help read this).
SOURCE_NAMES: tuple[str, ...] = SOURCES.names()

__all__ = [
    "SOURCES", "SOURCE_NAMES", "LoadedImage", "RealPairSource", "Source", "SourceItem", "get_source",
    "list_items", "load_item", "pair_source", "require_build_source", "split_by_pixel_cap",
    "sanitize_id", "splits_of", "unique_ids",
]


def get_source(name: str) -> Source:
    """Return the registered source called ``name``.

    Raises:
        ConfigError: Unknown name; the message lists the choices (with "did you mean").
    """
    return SOURCES.get(name)


def splits_of(name: str) -> tuple[str, ...]:
    """Return the splits of a source, default first (``()`` when it takes none).

    Raises:
        ConfigError: Unknown source.
    """
    return source_splits(get_source(name))


def list_items(name: str, root: Path | None = None, split: str | None = None) -> list[SourceItem]:
    """List a source's items sorted by image_id (deterministic for the same files).

    Args:
        name: Registered source name.
        root: The folder holding the data set, for sources that need one.
        split: One of the source's splits (None: its default); sources without splits
            (``sample``, ``folder``, ...) accept only None.

    Raises:
        ConfigError: Unknown source or split, or a root that the source refuses or needs.
        MissingAssetError: The data set under ``root`` is absent or incomplete.
    """
    source = get_source(name)
    root = None if root is None else Path(root)
    resolved = resolve_split(source, split)
    if resolved is None:
        items = source.list_items(root)
    else:
        items = source.list_items(root, resolved)
    return sorted(items, key=lambda item: item.image_id)


def load_item(item: SourceItem, max_pixels: int | None = None) -> LoadedImage:
    """Decode one item with the source that listed it.

    Args:
        item: A listed item.
        max_pixels: Refuse an image (or depth image) whose header declares more pixels,
            before decoding it (None: no limit).

    Raises:
        InputError: The image or its depth cannot be used, or is over ``max_pixels``.
        ConfigError: ``item.source`` is not registered.
    """
    if max_pixels is not None:
        from ..imageio import check_pixel_count

        for path in (item.path, item.depth_path):
            if path is not None:
                check_pixel_count(path, max_pixels)
    return get_source(item.source).load_item(item)


def split_by_pixel_cap(items: list[SourceItem], max_pixels: int
                       ) -> tuple[list[SourceItem], dict[str, str]]:
    """Split ``items`` into those whose headers stay within ``max_pixels`` and the skipped ones.

    Only headers are read (``check_pixel_count``, image and depth files), so an image bomb is
    left out with its reason before anything decodes it (``ssr-train --online`` at start).

    Returns:
        (kept items, {portable path: reason} of the skipped ones).
    """
    from ..imageio import check_pixel_count

    kept: list[SourceItem] = []
    skipped: dict[str, str] = {}
    for item in items:
        try:
            for path in (item.path, item.depth_path):
                if path is not None:
                    check_pixel_count(path, max_pixels)
        except InputError as exc:
            skipped[item.portable_path] = exc.reason
            continue
        kept.append(item)
    return kept, skipped


def pair_source(name: str) -> RealPairSource:
    """Return the registered source ``name`` when it holds real LR/HR pairs.

    Raises:
        ConfigError: Unknown source, or one without pairs (``real_pairs`` false).
    """
    source = get_source(name)
    if not getattr(source, "real_pairs", False):
        raise ConfigError(f"{name} holds no real LR/HR pairs: it is an input of degrade build, "
                          "scored through a synthetic test set")
    return source  # type: ignore[return-value]  # real_pairs promises RealPairSource's methods


def require_build_source(name: str) -> None:
    """Refuse sources that are not inputs to a synthetic degradation build.

    Raises:
        ConfigError: Unknown source, or one that holds real LR/HR pairs (``real_pairs``).
    """
    if getattr(get_source(name), "real_pairs", False):
        raise ConfigError(f"{name} holds real LR/HR pairs: score them with ssr-eval; it is not "
                          "a degrade build source")
