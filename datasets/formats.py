"""The image file suffixes that ``ssr_datasets.imageio.read_image`` decodes (lower case).

Kept apart from ``imageio`` so that command-line modules can name them without importing numpy.
"""

from __future__ import annotations

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

#: Largest input a build decodes, in pixels (width x height), checked on the file's header
#: before any decoding (``imageio.check_pixel_count``): 16 MP, about 4000 x 4000. DIV2K and
#: Flickr2K (at most 2040 x 2040, 4.2 MP), Middlebury 2014 full size (about 3000 x 2000, 6 MP)
#: and Cityscapes (2048 x 1024) pass. Memory grows ~60 bytes per pixel through a build, so a
#: 9000 x 9000 PNG of 236 KB would cost 5 GB per worker.
DEFAULT_MAX_PIXELS = 16_000_000
