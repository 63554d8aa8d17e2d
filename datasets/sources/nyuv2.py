"""The ``nyuv2`` source: NYU Depth V2 labeled indoor scenes with Kinect depth (Silberman et al. 2012).

Files (in ``ROOT/`` or ``ROOT/NYUv2/``):

- ``nyu_depth_v2_labeled.mat``: MATLAB v7.3, i.e. HDF5, read with h5py. HDF5 stores the
  MATLAB arrays transposed, so ``images`` is (N, 3, 640, 480) uint8 and ``depths`` is
  (N, 640, 480) float32 metres, N = 1449; one image is ``images[i].transpose(2, 1, 0)``
  -> (480, 640, 3) and its depth ``depths[i].T`` -> (480, 640).
- ``splits.mat`` (optional; from the NYU toolbox, URL below): ``trainNdxs`` (795) and
  ``testNdxs`` (654), 1-based indices, MATLAB v5 (scipy) or v7.3 (h5py).

Splits: ``all`` (default, 1449 images), ``train`` and ``test`` (need splits.mat). Image ids
are ``nyu_0001`` to ``nyu_1449`` (1-based, the index into the .mat). Items keep only the
index and the path, so they stay picklable; ``load_item`` opens the file and reads one slice.
Depth 0 (no Kinect return) is unknown and filled from the nearest known pixel (recorded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssr_core.errors import InputError, MissingAssetError

from ..imageio import pixel_sha256
from .base import LoadedImage, SourceItem, resolve_split
from .depth import fill_unknown
from .layout import download_hint, rel_to, require_root

NAME = "nyuv2"
MAT_NAME = "nyu_depth_v2_labeled.mat"
SPLITS_NAME = "splits.mat"
N_IMAGES = 1449
SPLIT_SIZES = {"train": 795, "test": 654}
MAT_URL = "http://horatio.cs.nyu.edu/mit/silberman/nyu_depth_v2/nyu_depth_v2_labeled.mat"
SPLITS_URL = "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat"
FOLDERS = ("", "NYUv2")
_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}


def _h5py():
    import h5py  # lazy: only this source needs it

    return h5py


def image_id(index: int) -> str:
    """Return the id of the 0-based image ``index`` (``nyu_0001`` for 0)."""
    return f"nyu_{index + 1:04d}"


def index_of(item_id: str) -> int:
    """Return the 0-based index encoded in an id such as ``nyu_0001``.

    Raises:
        InputError: The id is not ``nyu_<number>``.
    """
    prefix, _, number = item_id.partition("_")
    if prefix != "nyu" or not number.isdigit() or int(number) < 1:
        raise InputError(item_id, "not an nyuv2 image id (expected nyu_0001 .. nyu_1449)")
    return int(number) - 1


def _check_arrays(path: Path, images: object, depths: object) -> None:
    """Check the shapes and dtypes of the ``images`` and ``depths`` datasets."""
    ishape, dshape = tuple(images.shape), tuple(depths.shape)
    if len(ishape) != 4 or ishape[1] != 3 or len(dshape) != 3 or ishape[2:] != dshape[1:] \
            or ishape[0] != dshape[0]:
        raise InputError(path, f"expected images (N, 3, W, H) and depths (N, W, H), got images "
                               f"{ishape} and depths {dshape}")
    if ishape[0] != N_IMAGES:
        raise InputError(path, f"expected the {N_IMAGES} images of the labeled NYU Depth V2 "
                               f"set, found {ishape[0]}")
    if images.dtype != np.uint8:
        raise InputError(path, f"images must be uint8, got {images.dtype}")


def read_splits(path: Path) -> dict[str, list[int]]:
    """Read splits.mat (v5 or v7.3) as 0-based sorted indices per split.

    Raises:
        InputError: Unreadable file, missing keys, wrong sizes, indices out of range or
            shared by both splits.
    """
    h5py = _h5py()
    raw: dict[str, np.ndarray] = {}
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                for key in _SPLIT_KEYS.values():
                    raw[key] = np.asarray(f[key])
        else:
            from scipy.io import loadmat

            mat = loadmat(path)
            for key in _SPLIT_KEYS.values():
                raw[key] = np.asarray(mat[key])
    except KeyError as exc:
        raise InputError(path, f"splits.mat has no variable {exc}; expected trainNdxs and "
                               "testNdxs") from exc
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:
        raise InputError(path, f"cannot read splits.mat: {exc}") from exc
    out = {}
    for split, key in _SPLIT_KEYS.items():
        values = raw[key].ravel()
        if values.size != SPLIT_SIZES[split] or not np.all(np.isfinite(values)) \
                or not np.all(values == np.round(values)):
            raise InputError(path, f"{key} must hold {SPLIT_SIZES[split]} integer indices, got "
                                   f"{values.size} values of dtype {values.dtype}")
        idx = values.astype(np.int64)
        if idx.min() < 1 or idx.max() > N_IMAGES or len(set(idx.tolist())) != idx.size:
            raise InputError(path, f"{key} must hold distinct 1-based indices in 1..{N_IMAGES}, "
                                   f"got {idx.min()}..{idx.max()}")
        out[split] = sorted(int(i) - 1 for i in idx)
    if set(out["train"]) & set(out["test"]):
        raise InputError(path, "trainNdxs and testNdxs share indices")
    return out


class NYUv2Source:
    """NYU Depth V2 labeled set: 1449 RGB-D frames from one HDF5 .mat file."""

    name = NAME
    description = "NYU Depth V2 labeled (1449 indoor RGB-D frames; all / train 795 / test 654)"
    splits = ("all", "train", "test")

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List the frames of a split after checking the .mat's variables and shapes.

        Raises:
            ConfigError: No root or an unknown split.
            MissingAssetError: The .mat, or splits.mat for train/test, is absent.
            InputError: The .mat or splits.mat is unreadable or has the wrong content.
        """
        root = require_root(NAME, root)
        split = resolve_split(self, split)
        folder = next((root / f for f in FOLDERS if (root / f / MAT_NAME).is_file()), None)
        if folder is None:
            looked = ", ".join(str(root / f / MAT_NAME) for f in FOLDERS)
            raise MissingAssetError(MAT_NAME, root, url=MAT_URL,
                                    hint=f"looked for {looked}; {download_hint(NAME, root)}")
        mat = folder / MAT_NAME
        h5py = _h5py()
        if not h5py.is_hdf5(mat):
            raise InputError(mat, "not an HDF5 (MATLAB v7.3) file; expected the labeled NYU "
                                  f"Depth V2 set from {MAT_URL}")
        try:
            with h5py.File(mat, "r") as f:
                if "images" not in f or "depths" not in f:
                    raise InputError(mat, f"expected variables 'images' and 'depths', found "
                                          f"{', '.join(sorted(f.keys()))}")
                _check_arrays(mat, f["images"], f["depths"])
        except OSError as exc:
            raise InputError(mat, f"cannot read: {exc}") from exc
        if split == "all":
            indices = list(range(N_IMAGES))
        else:
            splits_path = folder / SPLITS_NAME
            if not splits_path.is_file():
                raise MissingAssetError(
                    SPLITS_NAME, folder, url=SPLITS_URL,
                    hint=f"split {split!r} needs the official indices (trainNdxs/testNdxs of the "
                         f"NYU toolbox); {download_hint(NAME, root)}; split 'all' works "
                         "without it")
            indices = read_splits(splits_path)[split]
        rel = rel_to(root, mat)
        return [SourceItem(NAME, image_id(i), str(mat), None, f"{rel}#{i + 1:04d}")
                for i in indices]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Read one frame: RGB (480, 640, 3) uint8 and depth (480, 640) float32 metres.

        Raises:
            InputError: Unreadable file, bad id, or a frame without any valid depth.
        """
        index = index_of(item.image_id)
        h5py = _h5py()
        try:
            with h5py.File(item.path, "r") as f:
                images, depths = f["images"], f["depths"]
                if index >= images.shape[0]:
                    raise InputError(item.path, f"{item.image_id} is beyond the file's "
                                                f"{images.shape[0]} images")
                rgb = np.ascontiguousarray(np.asarray(images[index]).transpose(2, 1, 0))
                depth = np.asarray(depths[index], dtype=np.float32).T
        except (OSError, KeyError) as exc:
            raise InputError(item.path, f"cannot read {item.image_id}: {exc}") from exc
        depth, notes = fill_unknown(f"{item.path}#{item.image_id}", depth)
        return LoadedImage(rgb=rgb.astype(np.uint8, copy=False), depth_m=depth,
                           conversions=("depth: NYU Depth V2 Kinect depth (metres)", *notes),
                           pixel_sha256=pixel_sha256(rgb))


SOURCE = NYUv2Source()
