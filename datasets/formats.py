"""The image file suffixes that ``ssr_datasets.imageio.read_image`` decodes (lower case).

Kept apart from ``imageio`` so that command-line modules can name them without importing numpy.
"""

from __future__ import annotations

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
