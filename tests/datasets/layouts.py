"""Miniature on-disk layouts of the public data sets, for the source tests (tmp_path only)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from tests.datafiles import DATA, REAL_IMAGES

BENCH = DATA
H, W = 24, 32


def rgb(seed: int, h: int = H, w: int = W) -> np.ndarray:
    """Return a random uint8 (h, w, 3) RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def write_png(path: Path, img: np.ndarray) -> Path:
    """Write uint8 RGB/gray or uint16 gray as PNG (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = img[..., ::-1] if img.ndim == 3 else img
    if not cv2.imwrite(str(path), np.ascontiguousarray(arr)):
        raise OSError(f"cannot write {path}")
    return path


def touch_all(folder: Path, names: Iterable[str]) -> None:
    """Create empty files (listing checks names, not pixels)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def div2k_valid(root: Path, folder: str = "DIV2K_valid_HR", real: int = 2) -> Path:
    """DIV2K valid split 0801-0900: the first ``real`` files are decodable PNGs."""
    out = root / folder
    names = [f"{i:04d}.png" for i in range(801, 901)]
    touch_all(out, names[real:])
    for k, name in enumerate(names[:real]):
        write_png(out / name, rgb(k))
    return root


def flickr2k(root: Path, folder: str = "Flickr2K/Flickr2K_HR", real: int = 2) -> Path:
    """Flickr2K 000001-002650: the first ``real`` files are decodable PNGs."""
    out = root / folder
    names = [f"{i:06d}.png" for i in range(1, 2651)]
    touch_all(out, names[real:])
    for k, name in enumerate(names[:real]):
        write_png(out / name, rgb(k))
    return root


def bench_set(root: Path, set_name: str, folder: str, count: int, sub: str = "",
              suffix: str = "") -> Path:
    """Lay out ``img_001.png`` .. ``img_<count>.png`` of a benchmark set in ``root/folder/sub``.

    The images held in ``tests/data/<set_name>`` (``REAL_IMAGES``) are linked (renamed with
    ``suffix``); the others are tiny random 8x8 PNGs, enough for listings and decoding checks.
    """
    out = root / folder / sub if sub else root / folder
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        dest = out / f"img_{i:03d}{suffix}.png"
        if i in REAL_IMAGES[set_name]:
            dest.symlink_to(BENCH / set_name / f"img_{i:03d}.png")
        else:
            write_png(dest, rgb(i, 8, 8))
    return root


def urban100(root: Path, sub: str = "HR") -> Path:
    """Urban100 as ``img001.png`` .. ``img100.png`` (tiny synthetic images)."""
    out = root / "Urban100" / sub
    for i in range(1, 101):
        write_png(out / f"img{i:03d}.png", rgb(i, 8, 8))
    return root


def drealsr(root: Path, stems: Iterable[str] = ("DSC_1454", "DSC_1460"), scale: int = 4) -> Path:
    """DRealSR ``Test_x<s>`` with HR (``_x1``) and LR (``_x<s>``) pairs."""
    base = root / "DRealSR" / f"Test_x{scale}"
    for k, stem in enumerate(stems):
        write_png(base / "test_HR" / f"{stem}_x1.png", rgb(k, H, W))
        write_png(base / "test_LR" / f"{stem}_x{scale}.png", rgb(100 + k, H // scale, W // scale))
    return root


def div2krk_kernel(size: int, seed: int) -> np.ndarray:
    """Return a random float64 (size, size) kernel summing to 1."""
    k = np.random.default_rng(seed).uniform(0.0, 1.0, (size, size))
    return k / k.sum()


def div2krk(root: Path, scales: Iterable[int] = (4,), real: Iterable[int] = (1, 2),
            folder: str = "DIV2KRK") -> Path:
    """KernelGAN's DIV2KRK release: ``gt/img_<n>_gt.png``, ``lr_x<s>/im_<n>.png`` and
    ``gt_k_x<s>/kernel_<n>.mat`` (variable ``Kernel``, 11x11 at x2, 31x31 at x4), n = 1..100.

    Images and kernels numbered in ``real`` are decodable (HR ``rgb(n)``, LR ``rgb(100 + n)``,
    kernel ``div2krk_kernel(K, n)``); the others are empty files (listing checks names).
    """
    import scipy.io

    base = root / folder
    real = set(real)
    for n in range(1, 101):
        gt = base / "gt" / f"img_{n}_gt.png"
        if n in real:
            write_png(gt, rgb(n, H, W))
        else:
            touch_all(gt.parent, [gt.name])
        for s in scales:
            lr = base / f"lr_x{s}" / f"im_{n}.png"
            mat = base / f"gt_k_x{s}" / f"kernel_{n}.mat"
            mat.parent.mkdir(parents=True, exist_ok=True)
            if n in real:
                write_png(lr, rgb(100 + n, H // s, W // s))
                scipy.io.savemat(mat, {"Kernel": div2krk_kernel(11 if s == 2 else 31, n)})
            else:
                touch_all(lr.parent, [lr.name])
                mat.touch()
    return root


def cityscapes_camera(baseline: float = 0.209313, fx: float = 2262.52) -> dict:
    """A camera JSON with the real Cityscapes keys (values of a typical frame)."""
    return {"extrinsic": {"baseline": baseline, "pitch": 0.038, "roll": 0.0, "x": 1.7,
                          "y": 0.1, "yaw": -0.0195, "z": 1.18},
            "intrinsic": {"fx": fx, "fy": 2265.3, "u0": 1096.98, "v0": 513.137}}


def cityscapes(root: Path, split: str, count: int, real: int = 1) -> list[str]:
    """A Cityscapes split with ``count`` images over two cities; ``real`` of them decodable.

    Returns the ids (``<city>_<seq>_<frame>``) in sorted order.
    """
    ids = []
    for k in range(count):
        city = "aachen" if k % 2 == 0 else "bochum"
        ids.append(f"{city}_{k:06d}_000019")
    ids.sort()
    for k, image_id in enumerate(ids):
        city = image_id.split("_")[0]
        image = root / "leftImg8bit" / split / city / f"{image_id}_leftImg8bit.png"
        if k < real:
            write_png(image, rgb(k))
            disp = np.random.default_rng(k).integers(0, 20000, (H, W), dtype=np.uint16)
            disp[0, 0] = 0
            write_png(root / "disparity" / split / city / f"{image_id}_disparity.png", disp)
            camera = root / "camera" / split / city / f"{image_id}_camera.json"
            camera.parent.mkdir(parents=True, exist_ok=True)
            camera.write_text(json.dumps(cityscapes_camera()))
        else:
            image.parent.mkdir(parents=True, exist_ok=True)
            image.touch()
    return ids


def pfm_bytes(top_to_bottom: np.ndarray, little_endian: bool = True, scale: float = 1.0) -> bytes:
    """Encode float32 (H, W) or (H, W, 3) as PFM: header, then rows bottom-to-top."""
    arr = np.asarray(top_to_bottom, np.float32)
    kind = b"PF" if arr.ndim == 3 else b"Pf"
    h, w = arr.shape[:2]
    signed = -abs(scale) if little_endian else abs(scale)
    header = kind + b"\n" + f"{w} {h}\n{signed}\n".encode("ascii")
    data = arr[::-1].astype("<f4" if little_endian else ">f4").tobytes()
    return header + data


MIDDLEBURY_CALIB = ("cam0=[1000.5 0 15.5; 0 1000.5 11.5; 0 0 1]\n"
                    "cam1=[1000.5 0 25.5; 0 1000.5 11.5; 0 0 1]\n"
                    "doffs=10.25\nbaseline=176.252\nwidth=32\nheight=24\nndisp=64\n"
                    "isint=0\nvmin=5\nvmax=60\ndyavg=0\ndymax=0\n")


def middlebury(root: Path, scenes: Iterable[str], split: str = "perfect") -> Path:
    """Middlebury 2014 scene folders with im0.png, a disparity PFM and calib.txt."""
    for k, scene in enumerate(scenes):
        folder = root / f"{scene}-{split}"
        write_png(folder / "im0.png", rgb(k))
        disp = np.random.default_rng(k).uniform(5, 60, (H, W)).astype(np.float32)
        disp[0, :3] = np.inf
        (folder / "disp0.pfm").write_bytes(pfm_bytes(disp))
        (folder / "calib.txt").write_text(MIDDLEBURY_CALIB)
    return root


def nyu_mat(path: Path, n: int = 1449, w: int = 8, h: int = 6, seed: int = 0) -> tuple:
    """Write a labeled-NYU-like HDF5 file: images (n, 3, w, h) uint8, depths (n, w, h) float32.

    Returns ``(images, depths)`` as written (MATLAB's transposed order, as h5py reads it).
    """
    import h5py

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, w, h), dtype=np.uint8)
    depths = rng.uniform(0.5, 10.0, (n, w, h)).astype(np.float32)
    depths[0, 0, 0] = 0.0  # no Kinect return
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("depths", data=depths)
        f.create_dataset("labels", data=np.zeros((n, w, h), np.uint16))
    return images, depths
