"""Wall time of Table 1 for bicubic on the sample set, split into build, infer and score.

Runs ``ssr-eval run --table 1 --stand-in sample`` in this process twice in a fresh work folder
and score cache: cold (build the test set, upscale, score) and warm (everything reused: the run
only checks the test set's checksums, reads the outputs back and hits the score cache). Only the
``bicubic`` row runs; the other rows show the paper's numbers. Metrics: those that run here
(LPIPS, MUSIQ and CLIP-IQA need weights; without them they are n/a and cost nothing).

References, timed in the same process on the same images:
- build: ``apply_kernel_field`` alone on every HR image (the degradation's arithmetic; the build
  adds depth, PNG encoding and shard writing);
- infer: ``cv2.resize`` INTER_CUBIC x4 of every LR image (OpenCV's a = -0.75 bicubic, the
  fastest bicubic at hand; ours is MATLAB's a = -0.5 with symmetric borders).

    python bench/tables.py [--max-images N] [--metrics psnr,ssim,niqe]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import torch

from eval.metrics.cache import ScoreCache
from eval.tables.runner import RunOptions, run_table
from eval.tables.spec import load_table
from eval.tables.testsets import Roots


def run_once(work: Path, metrics: tuple[str, ...] | None, max_images: int | None) -> dict[str, float]:
    """Run Table 1 on the sample stand-in; return its stage timings and the total."""
    with ScoreCache(work / "scores") as cache:
        options = RunOptions(roots=Roots(), work_dir=work, metrics=metrics, stand_in="sample",
                             max_images=max_images, cache=cache, previews=False)
        t = time.perf_counter()
        result = run_table(load_table("1"), options)
        total = time.perf_counter() - t
    return {**result.timings, "total": total, "computed": result.computed, "cached": result.cached,
            "groups": len(result.groups)}


def references(work: Path) -> dict[str, float]:
    """Time the degradation arithmetic and cv2 bicubic on the test set's images."""
    from degrade.ops.blur import apply_kernel_field
    from ssr_datasets.shards import iter_shard

    samples = [s for shard in sorted((work / "testsets").glob("*/*.tar")) for s in iter_shard(shard)]
    seen, unique = set(), []
    for s in samples:  # the stand-in groups share one test set
        if s.key not in seen:
            seen.add(s.key)
            unique.append(s)
    t = time.perf_counter()
    for s in unique:
        hr = torch.from_numpy(s.hr).permute(2, 0, 1)[None].float() / 255
        apply_kernel_field(hr, torch.from_numpy(s.kernel_field)[None], scale=4, kernel_size=21)
    blur = time.perf_counter() - t
    t = time.perf_counter()
    for s in unique:
        cv2.resize(s.lr, (s.lr.shape[1] * 4, s.lr.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    resize = time.perf_counter() - t
    return {"blur": blur, "resize": resize, "images": len(unique)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--metrics", default=None, help="comma-separated subset of Table 1's metrics")
    args = parser.parse_args()
    metrics = tuple(args.metrics.split(",")) if args.metrics else None
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cold = run_once(work, metrics, args.max_images)
        warm = run_once(work, metrics, args.max_images)
        ref = references(work)
    print(f"Table 1, bicubic row, sample stand-in ({ref['images']} unique images, "
          f"{cold['groups']} groups), 1 thread")
    print(f"{'stage':8s} {'cold s':>8s} {'warm s':>8s}  reference")
    notes = {"build": f"apply_kernel_field alone {ref['blur']:.3f} s "
                      f"(cold build / it = {cold['build'] / ref['blur']:.1f})",
             "infer": f"cv2 INTER_CUBIC {ref['resize']:.3f} s "
                      f"(cold infer / it = {cold['infer'] / max(ref['resize'], 1e-9):.1f})",
             "score": f"{cold['computed']} values computed cold; warm: {warm['computed']} computed, "
                      f"{warm['cached']} cached",
             "total": ""}
    for stage in ("build", "infer", "score", "total"):
        print(f"{stage:8s} {cold[stage]:8.2f} {warm[stage]:8.2f}  {notes[stage]}")


if __name__ == "__main__":
    main()
