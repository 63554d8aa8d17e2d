"""Released test sets with their true kernels (DIV2KRK) as kernel-track sets, read in place.

A real-pair source whose object has ``true_kernel(item)`` and ``kernel_geometry(split)``
(``ssr_datasets.sources.div2krk``) gives one true (K, K) kernel per image, spatially invariant:
the kernel track scores estimates against it as released (never moved or re-normalized), on the
grid the release uses (K of the split, delta = its kernels' centre, scale of the split). Every
pixel of an image shares the kernel, so kernel PSNR is DIV2KRK's per-image kernel PSNR, and the
Gaussian-parameter metrics are n/a (the truth has no parameters). Re-degradation PSNR is n/a:
the released LR images come from the authors' generator (its border rule and its uint8
conversion), so not even the true kernel reproduces them byte for byte through this engine.

HR is cropped at the bottom/right to s x LR, as the tables do for real pairs. The fingerprint
covers every HR, LR and kernel file's path (relative to the root) and sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ssr_core.errors import ConfigError
from ssr_core.io import sha256_file, sha256_json

from ..tables.testsets import crop_pair
from .estimates import Geometry
from .methods import KernelImage
from .run import KernelSet

if TYPE_CHECKING:
    from ssr_datasets.sources import SourceItem

REDEG_REASON = ("the released LR images come from the authors' generator (its borders and "
                "rounding), not this engine: re-degradation PSNR is n/a on a released set")


def has_true_kernels(source_name: str) -> bool:
    """Return True when a registered source releases one true kernel per image (DIV2KRK)."""
    from ssr_datasets.sources import get_source

    source = get_source(source_name)
    return bool(getattr(source, "real_pairs", False)) and hasattr(source, "true_kernel")


def released_kernel_set(source_name: str, split: str | None, root: Path, items: list[SourceItem],
                        max_images: int | None = None, name: str | None = None) -> KernelSet:
    """Open a released set (listed ``items`` of ``source_name`` under ``root``) for the kernel track.

    Args:
        source_name: A source for which :func:`has_true_kernels` holds (``div2krk``).
        split: Its split (``x2``, ``x4``); None for the source's default.
        root: The root the items were listed under (paths are recorded relative to it).
        items: ``list_items(source_name, root, split)``.
        max_images: Only the first N items (a different, recorded set).

    Raises:
        ConfigError: A source without released kernels. InputError (when read): unreadable
            files, or a kernel file that is refused (``load_kernel``'s checks).
    """
    from ssr_datasets.sources import get_source, resolve_split

    if not has_true_kernels(source_name):
        raise ConfigError(f"source {source_name!r} releases no true kernels")
    source = get_source(source_name)
    split = resolve_split(source, split)
    kernel_size, delta, scale = source.kernel_geometry(split)  # type: ignore[attr-defined]
    items = items[:max_images] if max_images is not None else items
    files = []
    for item in items:
        paths = (Path(item.path), source.lr_partner(item),  # type: ignore[attr-defined]
                 source.kernel_path(item))  # type: ignore[attr-defined]
        files.append([[p.relative_to(root).as_posix(), sha256_file(p)] for p in paths])
    fingerprint = sha256_json({"source": source_name, "split": split, "files": files})
    keys = [item.image_id for item in items]

    def images() -> Iterator[KernelImage]:
        for item in items:
            lr, hr = crop_pair(*source.load_pair(item), scale)  # type: ignore[attr-defined]
            yield KernelImage(item.image_id, lr, hr, None, None,
                              source.true_kernel(item))  # type: ignore[attr-defined]

    info = {"kind": "released", "source": source_name, "split": split, "root": str(root),
            "count": len(keys), "max_images": max_images, "fingerprint": fingerprint,
            "kernel_size": kernel_size, "delta": delta, "scale": scale,
            "alignment": f"HR cropped at the bottom/right to {scale} x LR; kernels as released"}
    return KernelSet(name or f"{source_name} {split} (released)", str(root),
                     Geometry(kernel_size, delta, scale), keys, fingerprint, REDEG_REASON, info,
                     images)
