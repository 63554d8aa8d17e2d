"""End-to-end throughput of `degrade build` on DIV2K-sized images with the prior depth.

Writes N 2040x1356 PNGs (the sample photos, resized) to a temp folder, builds them with the
`ssr` recipe and `--depth prior`, and prints images/s and the share of time in each stage
(summed over workers, from the manifest's stage timings).

    python bench/build.py [--images 8] [--workers 1 2] [--device cpu|cuda|cuda:N]

With ``--device cuda`` blur and noise run on the GPU in batches (``--depth-batch`` images per
batch) and JPEG/PNG encoding on CPU threads (stage seconds then add up over threads).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2

from degrade.build import BuildConfig, DepthOptions, build
from degrade.recipes import load_recipe
from ssr_datasets.sources import list_items, load_item

W, H = 2040, 1356


def make_inputs(folder: Path, n: int) -> None:
    """Write n DIV2K-sized PNGs made from the sample photos (cycled, flipped for variety)."""
    items = list_items("sample")
    for i in range(n):
        rgb = load_item(items[i % len(items)]).rgb
        if (i // len(items)) % 2:
            rgb = rgb[:, ::-1]
        big = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"{i:04d}.png"), big[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--depth-batch", type=int, default=4, help="images per device batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        make_inputs(src, args.images)
        config = BuildConfig(recipe=load_recipe("ssr"), source="folder", root=str(src),
                             depth="prior", shard_size=4, device=args.device)
        for workers in args.workers:
            out = Path(tmp) / f"out{workers}"
            t = time.perf_counter()
            result = build(config, out, workers=workers, preview=False, command="bench/build.py",
                           depth_options=DepthOptions(batch_size=args.depth_batch))
            wall = time.perf_counter() - t
            stages = result.manifest["timings"]["stage_seconds"]
            total = sum(stages.values())
            share = ", ".join(f"{k} {v / total:.0%}" for k, v in
                              sorted(stages.items(), key=lambda kv: -kv[1]))
            print(f"{args.images} images {W}x{H}, ssr, prior depth, {args.device}, {workers} worker(s): "
                  f"{wall:.1f} s, {args.images / wall:.2f} images/s")
            print(f"  stage share (CPU time, all workers): {share}")
            print(f"  per image: {total / args.images * 1e3:.0f} ms CPU")


if __name__ == "__main__":
    main()
