"""Image sources, registered here explicitly (no folder scanning) and imported lazily.

Each entry names a module that defines ``SOURCE``, an object with ``name``,
``description``, ``list_items(root)`` and ``load_item(item)``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from ..errors import ConfigError
from .base import LoadedImage, Source, SourceItem, sanitize_id, unique_ids

#: Source name -> module (relative to this package) that defines ``SOURCE``.
_MODULES: dict[str, str] = {
    "sample": ".sample",
    "folder": ".folder",
}

SOURCE_NAMES: tuple[str, ...] = ("sample", "folder")

__all__ = [
    "SOURCE_NAMES", "LoadedImage", "Source", "SourceItem", "get_source", "list_items",
    "load_item", "sanitize_id", "unique_ids",
]


def get_source(name: str) -> Source:
    """Return the registered source called ``name``.

    Raises:
        ConfigError: Unknown name; the message lists the choices.
    """
    if name not in _MODULES:
        raise ConfigError(f"unknown source {name!r}; choose one of: {', '.join(SOURCE_NAMES)}")
    module = importlib.import_module(_MODULES[name], __name__)
    return module.SOURCE


def list_items(name: str, root: Path | None = None) -> list[SourceItem]:
    """List a source's items sorted by image_id (deterministic for the same files).

    Raises:
        ConfigError: Unknown source, or a root that the source refuses or needs.
    """
    items = get_source(name).list_items(None if root is None else Path(root))
    return sorted(items, key=lambda item: item.image_id)


def load_item(item: SourceItem) -> LoadedImage:
    """Decode one item with the source that listed it.

    Raises:
        InputError: The image or its depth cannot be used.
        ConfigError: ``item.source`` is not registered.
    """
    return get_source(item.source).load_item(item)
