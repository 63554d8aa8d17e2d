"""The ``middlebury`` source: Middlebury 2014 stereo scenes with ground-truth depth.

Layout (the official ``<Scene>-perfect.zip`` / ``<Scene>-imperfect.zip`` archives):
``ROOT/<Scene>-perfect/{im0.png, disp0.pfm, calib.txt}``. Splits: ``perfect`` (default,
exact rectification) and ``imperfect``. The 23 scenes with public ground truth must all be
present (a subset is an error naming the missing scenes; use ``folder`` for ad hoc subsets).

Depth of the left view (Scharstein et al., GCPR 2014, calib.txt documentation):
``depth_mm = baseline * f / (d + doffs)`` with ``f`` from ``cam0=[f 0 cx; 0 f cy; 0 0 1]``,
``baseline`` in millimetres and ``doffs`` the x-difference of the principal points, in
pixels. ``disp0.pfm`` stores rows bottom-to-top and +inf where the disparity is unknown;
unknown pixels are filled from the nearest known one and the fill is recorded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssr_core.errors import InputError, MissingAssetError

from ..imageio import pixel_sha256, read_image
from .base import LoadedImage, SourceItem, resolve_split
from .depth import fill_unknown
from .layout import download_hint, preview, rel_to, require_root

NAME = "middlebury"
SCENES = ("Adirondack", "Backpack", "Bicycle1", "Cable", "Classroom1", "Couch", "Flowers",
          "Jadeplant", "Mask", "Motorcycle", "Piano", "Pipes", "Playroom", "Playtable",
          "Recycle", "Shelves", "Shopvac", "Sticks", "Storage", "Sword1", "Sword2", "Umbrella",
          "Vintage")
FILES = ("im0.png", "disp0.pfm", "calib.txt")
URL = "https://vision.middlebury.edu/stereo/data/scenes2014/"

_NUMBER = r"[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?"
_CAM0 = re.compile(rf"^cam0\s*=\s*\[\s*({_NUMBER})\s", re.MULTILINE)


@dataclass(frozen=True)
class Calibration:
    """The calib.txt values the depth needs: focal length and doffs (px), baseline (mm)."""

    f_px: float
    doffs_px: float
    baseline_mm: float


def read_calib(path: str | Path) -> Calibration:
    """Parse a Middlebury 2014 ``calib.txt``.

    Raises:
        InputError: Unreadable file, or ``cam0``, ``doffs`` or ``baseline`` missing or bad.
    """
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise InputError(path, f"cannot read calib.txt: {exc.strerror or exc}") from exc
    cam0 = _CAM0.search(text)
    values = {}
    for key in ("doffs", "baseline"):
        found = re.search(rf"^{key}\s*=\s*({_NUMBER})\s*$", text, re.MULTILINE)
        if found is None:
            raise InputError(path, f"calib.txt has no '{key}=<number>' line")
        values[key] = float(found.group(1))
    if cam0 is None:
        raise InputError(path, "calib.txt has no 'cam0=[f 0 cx; 0 f cy; 0 0 1]' line")
    f_px = float(cam0.group(1))
    if f_px <= 0 or values["baseline"] <= 0:
        raise InputError(path, f"calib.txt: focal {f_px} px and baseline "
                               f"{values['baseline']} mm must be > 0")
    return Calibration(f_px, values["doffs"], values["baseline"])


def disparity_to_depth_m(disp: np.ndarray, calib: Calibration) -> np.ndarray:
    """Convert disparity (px, non-finite unknown) to depth in metres (NaN unknown), float32.

    >>> disparity_to_depth_m(np.array([10.0, np.inf]), Calibration(1000.0, 10.0, 200.0))
    array([10., nan], dtype=float32)
    """
    disp = np.asarray(disp, dtype=np.float64)
    depth = np.full(disp.shape, np.nan)
    known = np.isfinite(disp) & (disp + calib.doffs_px > 0)
    depth[known] = calib.baseline_mm * calib.f_px / (disp[known] + calib.doffs_px) / 1000.0
    return depth.astype(np.float32)


class MiddleburySource:
    """Middlebury 2014 scenes (left view ``im0``) with depth from ``disp0.pfm``."""

    name = NAME
    description = "Middlebury 2014 stereo scenes (23), left view with GT depth"
    splits = ("perfect", "imperfect")

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List the 23 scenes of a split; ids are the scene names.

        Raises:
            ConfigError: No root or an unknown split.
            MissingAssetError: Scenes or files in them are missing (named in the message).
        """
        root = require_root(NAME, root)
        split = resolve_split(self, split)
        hint = download_hint(NAME, root, f"download <Scene>-{split}.zip from {URL}")
        missing = [s for s in SCENES if not (root / f"{s}-{split}").is_dir()]
        if missing:
            raise MissingAssetError(
                f"{len(missing)} of {len(SCENES)} Middlebury 2014 scene folders "
                f"<Scene>-{split} (found {len(SCENES) - len(missing)} of {len(SCENES)}; "
                f"absent: {preview([f'{s}-{split}' for s in missing])})", root,
                url=URL, hint=hint)
        items = []
        for scene in SCENES:
            folder = root / f"{scene}-{split}"
            absent = [f for f in FILES if not (folder / f).is_file()]
            if absent:
                raise MissingAssetError(", ".join(absent), folder, url=URL, hint=hint)
            items.append(SourceItem(NAME, scene, str(folder / "im0.png"),
                                    str(folder / "disp0.pfm"), rel_to(root, folder / "im0.png")))
        return items

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode ``im0.png`` and convert ``disp0.pfm`` to metric depth (holes filled).

        Raises:
            InputError: Bad image, disparity or calibration, or sizes that differ.
        """
        from .pfm import read_pfm

        decoded = read_image(item.path)
        disp_path = item.depth_path or str(Path(item.path).with_name("disp0.pfm"))
        calib_path = Path(disp_path).with_name("calib.txt")
        calib = read_calib(calib_path)
        disp = read_pfm(disp_path)
        if disp.ndim != 2:
            raise InputError(disp_path, f"disparity must be a 1-channel PFM ('Pf'), got shape "
                                        f"{disp.shape}")
        if disp.shape != decoded.rgb.shape[:2]:
            raise InputError(disp_path, f"disparity {disp.shape[1]}x{disp.shape[0]} does not "
                                        f"match image {decoded.rgb.shape[1]}x"
                                        f"{decoded.rgb.shape[0]}")
        depth, notes = fill_unknown(disp_path, disparity_to_depth_m(disp, calib))
        note = (f"depth: from Middlebury disparity (baseline {calib.baseline_mm:g} mm, "
                f"f {calib.f_px:g} px, doffs {calib.doffs_px:g} px)")
        return LoadedImage(rgb=decoded.rgb, depth_m=depth,
                           conversions=(*decoded.conversions, note, *notes),
                           pixel_sha256=pixel_sha256(decoded.rgb))


SOURCE = MiddleburySource()
