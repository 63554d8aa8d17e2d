"""The ``sample`` source: colour photos shipped inside scikit-image's wheel (offline).

astronaut, chelsea, coffee, rocket, and motorcycle (Middlebury 2014 left view) with
metric depth from its ground-truth disparity. Files are read from scikit-image's
package data folder, never through ``skimage.data``'s fetchers, so nothing downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssr_core.errors import ConfigError, InputError, MissingAssetError

from ..imageio import pixel_sha256, read_image
from .base import LoadedImage, SourceItem
from .depth import fill_unknown

NAME = "sample"

#: image_id -> (image file, depth file or None), files in scikit-image's data folder.
_FILES: dict[str, tuple[str, str | None]] = {
    "astronaut": ("astronaut.png", None),
    "chelsea": ("chelsea.png", None),
    "coffee": ("coffee.png", None),
    "motorcycle": ("motorcycle_left.png", "motorcycle_disp.npz"),
    "rocket": ("rocket.jpg", None),
}

# Middlebury 2014 "Motorcycle" calibration (documented in skimage.data.stereo_motorcycle):
# depth_mm = baseline * focal / (disparity + doffs).
MOTORCYCLE_BASELINE_MM = 193.001
MOTORCYCLE_FOCAL_PX = 994.978
MOTORCYCLE_DOFFS_PX = 31.086


def data_dir() -> Path:
    """Return scikit-image's installed data folder."""
    import skimage  # lazy: only this source needs it

    return Path(skimage.__file__).resolve().parent / "data"


def disparity_to_depth_m(disp: np.ndarray) -> np.ndarray:
    """Convert Motorcycle disparity (pixels, +inf/NaN unknown) to depth in metres (NaN unknown).

    >>> disparity_to_depth_m(np.array([np.inf]))
    array([nan], dtype=float32)
    """
    disp = np.asarray(disp, dtype=np.float64)
    depth_mm = np.full(disp.shape, np.nan)
    known = np.isfinite(disp) & (disp + MOTORCYCLE_DOFFS_PX > 0)
    depth_mm[known] = (MOTORCYCLE_BASELINE_MM * MOTORCYCLE_FOCAL_PX
                       / (disp[known] + MOTORCYCLE_DOFFS_PX))
    return (depth_mm / 1000.0).astype(np.float32)


class SampleSource:
    """Offline demo photos from scikit-image; ``motorcycle`` carries ground-truth depth."""

    name = NAME
    description = "scikit-image's bundled colour photos (offline); motorcycle has GT depth"

    def list_items(self, root: Path | None = None) -> list[SourceItem]:
        """List the five bundled photos, sorted by image_id.

        Raises:
            ConfigError: ``root`` was given (this source has no folder).
            MissingAssetError: scikit-image's data folder lacks a file.
        """
        if root is not None:
            raise ConfigError(f"source 'sample' takes no root folder, got root={str(root)!r}")
        folder = data_dir()
        items = []
        for image_id, (image_file, depth_file) in sorted(_FILES.items()):
            for name in (image_file, depth_file):
                if name is not None and not (folder / name).is_file():
                    raise MissingAssetError(name, folder, hint="reinstall scikit-image")
            depth_path = str(folder / depth_file) if depth_file else None
            items.append(SourceItem(NAME, image_id, str(folder / image_file), depth_path,
                                    f"skimage/data/{image_file}"))
        return items

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one photo; for motorcycle convert disparity to metres and fill holes.

        Raises:
            InputError: The file is unreadable or the depth does not match the image.
        """
        decoded = read_image(item.path)
        notes = list(decoded.conversions)
        depth = None
        if item.depth_path is not None:
            depth, depth_notes = _motorcycle_depth(item.depth_path, decoded.rgb.shape[:2])
            notes += depth_notes
        return LoadedImage(rgb=decoded.rgb, depth_m=depth, conversions=tuple(notes),
                           pixel_sha256=pixel_sha256(decoded.rgb), source_png=decoded.source_png)


def _motorcycle_depth(path: str, shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Load motorcycle_disp.npz and return filled metric depth (H, W) float32."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            disp = npz["arr_0"]
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise InputError(path, f"cannot read disparity: {exc}") from exc
    if disp.shape != tuple(shape):
        raise InputError(path, f"disparity shape {disp.shape} != image shape {tuple(shape)}")
    depth, notes = fill_unknown(path, disparity_to_depth_m(disp))
    return depth, ["depth: from Middlebury disparity (baseline 193.001 mm, f 994.978 px, "
                   "doffs 31.086 px)", *notes]


SOURCE = SampleSource()
