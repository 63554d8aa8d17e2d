"""End-to-end throughput of `degrade build` against a BasicSR-style script, in one process.

On N DIV2K-sized PNGs (default: 8 of 2040x1356 made from the sample photos, resized; or every
PNG of ``--data DIR``), for each repeat: the peer script (``bench/peer_build.py``: decode, one
invariant 21x21 blur, bicubic resize, write HR and LR PNGs; one thread), then ``degrade build``
(``ssr`` recipe, ``--depth prior``, one shard) with 1 worker and with each ``--workers`` count.
Prints medians over the repeats: images/s, the ratio of our time per image to the peer's with
1 worker (wall and CPU), the CPU ms per image of each stage (from the manifest's
``stage_cpu_seconds``) and the load average, since on a shared machine wall time includes
waiting for a core. The first multi-worker build also starts the forkserver (imports torch
once); it is reported apart as "cold".

    python bench/build.py [--data DIR] [--images 8] [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/peer_build.py beside this

from peer_build import peer_build  # noqa: E402

from degrade.build import BuildConfig, DepthOptions, build  # noqa: E402
from degrade.recipes import load_recipe  # noqa: E402
from ssr_datasets.sources import list_items, load_item  # noqa: E402

W, H = 2040, 1356


def make_inputs(folder: Path, n: int) -> None:
    """Write n DIV2K-sized PNGs made from the sample photos (cycled, flipped for variety)."""
    items = list_items("sample")
    for i in range(n):
        rgb = load_item(items[i % len(items)]).rgb
        if (i // len(items)) % 2:
            rgb = rgb[:, ::-1]
        big = cv2.resize(rgb, (W, H), interpolation=cv2.INTER_CUBIC)
        # OpenCV's default PNG settings, as a BasicSR script writes its data
        cv2.imwrite(str(folder / f"{i:04d}.png"), big[:, :, ::-1])


def timed_build(config: BuildConfig, out: Path, workers: int, batch: int) -> tuple[float, float, dict]:
    """Return (wall s, this process's CPU s, manifest) of one build.

    Dirty pages of earlier builds are flushed first (``os.sync``, untimed): otherwise a build
    pays for the previous one's writeback, and the order of the runs decides the figures.
    """
    os.sync()
    t, c = time.perf_counter(), time.process_time()
    result = build(config, out, workers=workers, preview=False, command="bench/build.py",
                   depth_options=DepthOptions(batch_size=batch, use_cache=False))
    return time.perf_counter() - t, time.process_time() - c, result.manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="folder of PNG inputs")
    parser.add_argument("--images", type=int, default=8, help="generated inputs (no --data)")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--depth-batch", type=int, default=4, help="images per device batch")
    args = parser.parse_args()
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        src = args.data
        if src is None:
            src = Path(tmp) / "in"
            src.mkdir()
            make_inputs(src, args.images)
        paths = sorted(src.glob("*.png"))
        n = len(paths)
        config = BuildConfig(recipe=load_recipe("ssr"), source="folder", root=str(src),
                             depth="prior", shard_size=max(64, n), device=args.device)
        peer_wall: list[float] = []
        peer_cpu: list[float] = []
        rows: dict[str, list[float]] = {"1 worker": [], "1 worker cpu": []}
        stage_ms: dict[str, list[float]] = {}
        for r in range(args.repeats):
            os.sync()  # as timed_build does
            c = time.process_time()
            peer_wall.append(peer_build(paths, Path(tmp) / f"peer{r}"))
            peer_cpu.append(time.process_time() - c)
            wall, cpu, manifest = timed_build(config, Path(tmp) / f"w1-{r}", 1, args.depth_batch)
            rows["1 worker"].append(wall)
            rows["1 worker cpu"].append(cpu)
            for k, v in manifest["timings"]["stage_cpu_seconds"].items():
                stage_ms.setdefault(k, []).append(v / n * 1e3)
            for w in args.workers:
                wall, _, _ = timed_build(config, Path(tmp) / f"w{w}-{r}", w, args.depth_batch)
                key = f"{w} workers" + (" (cold: starts the forkserver)" if r == 0 else "")
                rows.setdefault(key, []).append(wall)
            load.append(os.getloadavg()[0])
    med = statistics.median
    print(f"{n} images, {src if args.data else f'generated {W}x{H}'}, ssr, prior depth, "
          f"{args.device}; median of {args.repeats}; load average {min(load):.1f}-{max(load):.1f} "
          f"on {os.cpu_count()} cores")
    print(f"  peer script (1 thread): {med(peer_wall) / n * 1e3:.0f} ms/image wall, "
          f"{med(peer_cpu) / n * 1e3:.0f} ms CPU, {n / med(peer_wall):.2f} img/s")
    for key, walls in rows.items():
        if key.endswith("cpu"):
            continue
        print(f"  degrade build, {key}: {med(walls) / n * 1e3:.0f} ms/image wall, "
              f"{n / med(walls):.2f} img/s")
    ratio_wall = med([o / p for o, p in zip(rows["1 worker"], peer_wall, strict=True)])
    ratio_cpu = med([o / p for o, p in zip(rows["1 worker cpu"], peer_cpu, strict=True)])
    print(f"  ratio to the peer script, 1 worker: {ratio_wall:.2f} (wall), {ratio_cpu:.2f} (CPU)")
    total = sum(med(v) for v in stage_ms.values())
    shares = ", ".join(f"{k} {med(v):.0f} ({med(v) / total:.0%})" for k, v in
                       sorted(stage_ms.items(), key=lambda kv: -med(kv[1])))
    print(f"  CPU ms per image by stage (1 worker, {total:.0f} in all): {shares}")


if __name__ == "__main__":
    main()
