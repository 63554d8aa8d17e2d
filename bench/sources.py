"""Throughput of the input side of a build: one section per concern, run by name.

Sections (each a function ``bench_<name>(args)``; add new ones to ``SECTIONS``):

- ``depth``: images/s of the depth providers on CPU: ``prior`` on DIV2K-sized photographs, and a
  randomly initialized model with the architecture of ``Intel/dpt-hybrid-midas`` (ViT-hybrid
  base, BiT-R50 stem, 384x384 input; built from its config, no weights are downloaded): the
  model forward alone at its input resolution, and the provider's full path (image processor,
  forward, bicubic resize back to HR, percentile normalization) on DIV2K-sized photographs.
  Batch 1 and 4, one thread and all threads.

    python bench/sources.py depth [--images 8] [--threads 1 0]    (0 = all cores)
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

DIV2K = (1356, 2040)  # (H, W) of a DIV2K validation photograph


# --- depth ------------------------------------------------------------------------------------


def dpt_hybrid_midas_config():  # -> transformers.DPTConfig
    """Return the DPTConfig of Intel/dpt-hybrid-midas (MiDaS v3.0 DPT-Hybrid), from its config.json."""
    from transformers import DPTConfig

    return DPTConfig(
        is_hybrid=True, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, image_size=384, patch_size=16, readout_type="project",
        backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[256, 512, 768, 768],
        reassemble_factors=[1, 1, 1, 0.5], fusion_hidden_size=256, head_in_index=-1,
        backbone_featmap_shape=[1, 1024, 24, 24], neck_ignore_stages=[0, 1],
        use_auxiliary_head=False,
        backbone_config={"global_padding": "same", "layer_type": "bottleneck", "depths": [3, 4, 9],
                         "out_features": ["stage1", "stage2", "stage3"],
                         "embedding_dynamic_padding": True})


def _photos(n: int) -> list[np.ndarray]:
    """Return n DIV2K-sized RGB photographs made from the scikit-image sample photos."""
    from ssr_datasets.sources import list_items, load_item

    items = list_items("sample")
    out = []
    for i in range(n):
        rgb = load_item(items[i % len(items)]).rgb
        out.append(cv2.resize(rgb[:, ::-1] if (i // len(items)) % 2 else rgb, DIV2K[::-1],
                              interpolation=cv2.INTER_CUBIC))
    return out


def _rate(fn: Callable[[], object], n_images: int, repeats: int) -> float:
    """Return images/s of fn (which handles n_images), best of `repeats` after one warm-up."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n_images / best


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_depth(args: argparse.Namespace) -> None:
    """Print images/s for the prior and a DPT-Hybrid-sized model, batch 1/4, 1/all threads."""
    from transformers import DPTForDepthEstimation, DPTImageProcessorPil

    from degrade.depth.learned import LearnedDepth, relative_to_nearness
    from degrade.depth.prior import prior_nearness

    photos = _photos(args.images)
    threads = [t or os.cpu_count() or 1 for t in args.threads]
    torch.manual_seed(0)
    t = time.perf_counter()
    model = DPTForDepthEstimation(dpt_hybrid_midas_config()).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"DPT-Hybrid (random init): {n_params / 1e6:.1f} M parameters, built in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Intel--dpt-hybrid-midas"
        model.save_pretrained(folder)
        # Intel/dpt-hybrid-midas's preprocessor: 384x384, mean = std = 0.5
        DPTImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
                             image_std=[0.5] * 3).save_pretrained(folder)
        t = time.perf_counter()
        learned = LearnedDepth("Intel/dpt-hybrid-midas", str(folder), batch_size=1)
        learned.predict(photos[:1])
        print(f"load + first image: {time.perf_counter() - t:.1f} s")
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            cv2.setNumThreads(n_threads)
            rate = _rate(lambda: [prior_nearness(p) for p in photos], len(photos), args.repeats)
            print(f"prior, {DIV2K[1]}x{DIV2K[0]}, {n_threads} thread(s): {rate:.2f} images/s")
            for batch in (1, 4):
                x = torch.rand(batch, 3, 384, 384)

                def forward(x: torch.Tensor = x) -> None:
                    with torch.inference_mode():
                        learned._model(pixel_values=x)

                rate = _rate(forward, batch, args.repeats)
                print(f"dpt-hybrid forward 384x384, batch {batch}, {n_threads} thread(s): "
                      f"{rate:.2f} images/s")
                learned.batch_size = batch
                n = max(batch, len(photos) // batch * batch)

                def full(n: int = n) -> None:
                    for pred in learned.predict(photos[:n]):
                        relative_to_nearness(pred)

                rate = _rate(full, n, max(1, args.repeats - 1))
                print(f"midas provider (processor + forward + resize + normalize) "
                      f"{DIV2K[1]}x{DIV2K[0]}, batch {batch}, {n_threads} thread(s): "
                      f"{rate:.2f} images/s")


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"depth": bench_depth}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {list(SECTIONS)} (default: all)")
    parser.add_argument("--images", type=int, default=8, help="photographs per measurement")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="torch/OpenCV thread counts to try; 0 = all cores")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    args = parser.parse_args()
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    print("command:", shlex.join(["python", *sys.argv]), f"(cores: {os.cpu_count()}, "
          f"torch {torch.__version__})")
    for name in args.sections or SECTIONS:
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
