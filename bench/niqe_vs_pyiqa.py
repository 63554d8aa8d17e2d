"""NIQE of ssr-bench against pyiqa's, image by image, on a folder of images (BSD100: 100 PNGs).

For every image directly in DATA_DIR (png/jpg/bmp/tif/webp), prints the relative difference
``|ours - pyiqa| / pyiqa`` of the default ("pyiqa") convention and, for context, of the "matlab"
convention, then the max and mean of each and how many images are over 0.1%. pyiqa runs its own
``calculate_niqe`` (the code behind ``pyiqa.create_metric("niqe")``, float32 input in [0, 1],
``test_y_channel=True``, ``color_space="yiq"``) with the pristine model vendored in
``eval/metrics/data`` (the published one; passing it keeps this offline: pyiqa would download its
.mat copy). Needs the ``metrics`` extra (pyiqa).

    python bench/niqe_vs_pyiqa.py /path/to/bsd100 [--show 0.001]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from eval.metrics.niqe_model import niqe, pristine_model
from ssr_datasets.formats import IMAGE_SUFFIXES
from ssr_datasets.imageio import read_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("data_dir", type=Path, help="folder of images (not searched recursively)")
    parser.add_argument("--show", type=float, default=1e-3,
                        help="print images whose pyiqa-convention difference exceeds this (relative)")
    args = parser.parse_args(argv)
    try:
        from pyiqa.archs.niqe_arch import calculate_niqe
        from pyiqa.version import __version__ as pyiqa_version
    except ImportError:
        print('error: pyiqa is not installed: pip install "ssr-bench[metrics]"', file=sys.stderr)
        return 2
    if not args.data_dir.is_dir():
        print(f"error: {args.data_dir} is not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in args.data_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        print(f"error: no images in {args.data_dir}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    mu, cov, _, _ = pristine_model()
    mu_t, cov_t = torch.from_numpy(mu), torch.from_numpy(cov)
    rel: dict[str, list[float]] = {"pyiqa": [], "matlab": []}
    t_ours = t_theirs = 0.0
    for path in files:
        rgb = read_image(path).rgb
        t = time.perf_counter()
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].float() / 255
        theirs = float(calculate_niqe(x, 0, True, "yiq", mu_t, cov_t))
        t_theirs += time.perf_counter() - t
        t = time.perf_counter()
        ours = niqe(rgb)
        t_ours += time.perf_counter() - t
        rel["pyiqa"].append(abs(ours - theirs) / theirs)
        rel["matlab"].append(abs(niqe(rgb, convention="matlab") - theirs) / theirs)
        if rel["pyiqa"][-1] > args.show:
            print(f"{path.name}: ours {ours:.6f}, pyiqa {theirs:.6f}, relative {rel['pyiqa'][-1]:.2e}")
    print(f"{len(files)} images in {args.data_dir}; pyiqa {pyiqa_version}, torch {torch.__version__}")
    for convention, values in rel.items():
        v = np.array(values)
        print(f"convention {convention:6}: relative difference to pyiqa max {v.max():.2e} "
              f"({files[int(v.argmax())].name}), mean {v.mean():.2e}, over 0.1%: {(v > 1e-3).sum()}")
    print(f"time per image (1 thread): ours {t_ours / len(files) * 1000:.0f} ms, "
          f"pyiqa {t_theirs / len(files) * 1000:.0f} ms (ratio {t_ours / t_theirs:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
