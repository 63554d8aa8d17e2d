"""What a BasicSR-style data script does per image: the yardstick of `degrade build`'s speed.

For each input: decode (``cv2.imread``), mod-crop to the scale, one spatially invariant 21x21
Gaussian blur of the float image (``cv2.filter2D``, as BasicSR's degradations apply a kernel),
bicubic resize to 1/scale (``cv2.resize``), round to uint8, and write HR and LR PNGs with
``cv2.imwrite``'s defaults (BasicSR's ``imwrite``). One OpenCV thread. No depth, no kernel
field, no noise, no JPEG, no tar, no checksums: the floor that a data tool is compared with.

    python bench/peer_build.py DIR [--out OUT] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

SCALE = 4
KERNEL_SIZE = 21
SIGMA = 2.0  # HR px; any fixed width costs the same in filter2D


def gaussian_kernel(size: int = KERNEL_SIZE, sigma: float = SIGMA) -> np.ndarray:
    """Return a normalized isotropic (size, size) float32 Gaussian kernel."""
    g = cv2.getGaussianKernel(size, sigma, cv2.CV_32F)
    return (g @ g.T).astype(np.float32)


def peer_image(src: Path, out_dir: Path, kernel: np.ndarray, scale: int = SCALE) -> None:
    """Decode, blur, resize and write one image's HR and LR PNGs into ``out_dir``."""
    img = cv2.imread(str(src), cv2.IMREAD_COLOR)
    h, w = img.shape[:2]
    img = img[: h - h % scale, : w - w % scale]
    blurred = cv2.filter2D(img.astype(np.float32) / 255.0, -1, kernel,
                           borderType=cv2.BORDER_REFLECT_101)
    lr = cv2.resize(blurred, (img.shape[1] // scale, img.shape[0] // scale),
                    interpolation=cv2.INTER_CUBIC)
    lr = np.clip(np.rint(lr * 255.0), 0, 255).astype(np.uint8)
    cv2.imwrite(str(out_dir / f"{src.stem}_hr.png"), img)
    cv2.imwrite(str(out_dir / f"{src.stem}_lr.png"), lr)


def peer_build(paths: Sequence[Path], out_dir: Path) -> float:
    """Process every image in this thread; return the wall seconds."""
    cv2.setNumThreads(1)
    kernel = gaussian_kernel()
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    for p in paths:
        peer_image(p, out_dir, kernel)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of PNG images")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(args.folder.glob("*.png"))
    with tempfile.TemporaryDirectory() as tmp:
        times = sorted(peer_build(paths, Path(tmp) / str(i)) for i in range(args.repeats))
    median = times[len(times) // 2]
    print(f"{len(paths)} images: median {median:.2f} s, {median / len(paths) * 1e3:.0f} ms "
          f"per image, {len(paths) / median:.2f} img/s (1 thread)")


if __name__ == "__main__":
    main()
