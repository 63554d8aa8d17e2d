"""The ``cityscapes`` source: street scenes with depth from stereo disparity (Cordts et al. 2016).

Layout (the official packages ``leftImg8bit_trainvaltest.zip``, ``disparity_trainvaltest.zip``
and ``camera_trainvaltest.zip`` extracted into one ROOT; ``train_extra`` from the
``*_trainextra`` packages):

- ``ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png``
- ``ROOT/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png``
- ``ROOT/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json``

Splits: ``train`` (default, 2975 images), ``val`` (500), ``test`` (1525), ``train_extra``
(19998); the image count of a split is checked. Image ids are ``<city>_<seq>_<frame>``.

Depth (the Cityscapes README, "disparity"): a 16-bit disparity PNG value ``p > 0`` encodes
``d = (p - 1) / 256`` pixels and ``p = 0`` is invalid; ``depth_m = baseline * fx / d`` with
``extrinsic.baseline`` (metres) and ``intrinsic.fx`` (pixels) from the camera JSON. Invalid
pixels and ``d = 0`` are unknown and filled from the nearest known pixel (recorded). An
image whose disparity or camera file is missing fails at load (a recorded skip) naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ssr_core.errors import InputError

from ..imageio import decode_png, pixel_sha256, read_image
from .base import LoadedImage, SourceItem, resolve_split
from .depth import fill_unknown
from .layout import check_count, no_layout, rel_to, require_root

NAME = "cityscapes"
COUNTS = {"train": 2975, "val": 500, "test": 1525, "train_extra": 19998}
URL = "https://www.cityscapes-dataset.com/downloads/"
_MANUAL = (f"download leftImg8bit_trainvaltest.zip, disparity_trainvaltest.zip and "
           f"camera_trainvaltest.zip from {URL} (login required) into {{root}} and run "
           "`degrade datasets download cityscapes --root {root}` (it checks and extracts them)")
_IMAGE = re.compile(r"^([A-Za-z0-9-]+)_(\d+)_(\d+)_leftImg8bit\.png$")
IMAGE_SUFFIX = "_leftImg8bit.png"


def disparity_to_depth_m(raw: np.ndarray, baseline_m: float, fx_px: float) -> np.ndarray:
    """Convert a Cityscapes 16-bit disparity map to depth in metres (NaN unknown), float32.

    >>> disparity_to_depth_m(np.array([0, 1, 257], np.uint16), 0.2, 2000.0)
    array([ nan,  nan, 400.], dtype=float32)
    """
    p = np.asarray(raw, dtype=np.float64)
    disp = (p - 1.0) / 256.0
    depth = np.full(p.shape, np.nan)
    known = (p > 0) & (disp > 0)
    depth[known] = baseline_m * fx_px / disp[known]
    return depth.astype(np.float32)


def companion(image: Path, kind: str) -> Path:
    """Return the disparity (``kind="disparity"``) or camera file that belongs to an image."""
    # .../leftImg8bit/<split>/<city>/<name>_leftImg8bit.png -> .../<kind>/<split>/<city>/...
    city_dir = image.parent
    root = city_dir.parent.parent.parent
    stem = image.name[: -len(IMAGE_SUFFIX)]
    ext = "png" if kind == "disparity" else "json"
    return root / kind / city_dir.parent.name / city_dir.name / f"{stem}_{kind}.{ext}"


def read_camera(path: Path) -> tuple[float, float]:
    """Return ``(baseline_m, fx_px)`` from a Cityscapes camera JSON.

    Raises:
        InputError: Missing or unreadable file, or the keys are absent or not > 0.
    """
    if not path.is_file():
        raise InputError(path, f"missing camera file (extract camera_trainvaltest.zip into "
                               f"{path.parents[3]})")
    try:
        camera = json.loads(path.read_text(encoding="utf-8"))
        baseline, fx = float(camera["extrinsic"]["baseline"]), float(camera["intrinsic"]["fx"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"cannot read extrinsic.baseline and intrinsic.fx: {exc}") from exc
    if not (baseline > 0 and fx > 0):
        raise InputError(path, f"baseline {baseline} m and fx {fx} px must be > 0")
    return baseline, fx


class CityscapesSource:
    """Cityscapes left images with depth from disparity and camera calibration."""

    name = NAME
    description = "Cityscapes street scenes (train 2975 / val 500 / test 1525) with stereo depth"
    splits = ("train", "val", "test", "train_extra")

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List a split's left images (all cities), after checking their number.

        Raises:
            ConfigError: No root, an unknown split, or more images than the split has.
            MissingAssetError: The split folder is absent or holds too few images.
        """
        root = require_root(NAME, root)
        split = resolve_split(self, split)
        rel = f"leftImg8bit/{split}"
        folder = root / rel
        if not folder.is_dir():
            raise no_layout(NAME, root, (rel,), f"folder leftImg8bit/{split}/<city>/ with "
                                                f"{COUNTS[split]} images", _MANUAL)
        images = sorted(p for p in folder.glob(f"*/*{IMAGE_SUFFIX}")
                        if not p.name.startswith(".") and _IMAGE.match(p.name))
        check_count(NAME, root, folder, len(images), COUNTS[split],
                    f"Cityscapes {split} images <city>/*{IMAGE_SUFFIX}", manual=_MANUAL)
        return [SourceItem(NAME, p.name[: -len(IMAGE_SUFFIX)], str(p),
                           str(companion(p, "disparity")), rel_to(root, p)) for p in images]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode one left image and its depth from disparity and camera (holes filled).

        Raises:
            InputError: Bad image; missing or bad disparity or camera file; sizes differ.
        """
        decoded = read_image(item.path)
        image = Path(item.path)
        disp_path = Path(item.depth_path) if item.depth_path else companion(image, "disparity")
        if not disp_path.is_file():
            raise InputError(disp_path, f"missing disparity file (extract "
                                        f"disparity_trainvaltest.zip into {disp_path.parents[3]})")
        baseline, fx = read_camera(companion(image, "camera"))
        try:
            raw = decode_png(disp_path.read_bytes())
        except InputError as exc:
            raise InputError(disp_path, exc.reason) from exc
        except OSError as exc:
            raise InputError(disp_path, f"cannot read disparity: {exc}") from exc
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise InputError(disp_path, f"disparity must be a 16-bit single-channel PNG, got "
                                        f"{raw.dtype} {tuple(raw.shape)}")
        if raw.shape != decoded.rgb.shape[:2]:
            raise InputError(disp_path, f"disparity {raw.shape[1]}x{raw.shape[0]} does not match "
                                        f"image {decoded.rgb.shape[1]}x{decoded.rgb.shape[0]}")
        depth, notes = fill_unknown(disp_path, disparity_to_depth_m(raw, baseline, fx))
        note = (f"depth: from Cityscapes disparity (d = (p - 1) / 256, baseline {baseline:g} m, "
                f"fx {fx:g} px)")
        return LoadedImage(rgb=decoded.rgb, depth_m=depth,
                           conversions=(*decoded.conversions, note, *notes),
                           pixel_sha256=pixel_sha256(decoded.rgb))


SOURCE = CityscapesSource()
