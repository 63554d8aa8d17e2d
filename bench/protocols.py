"""Seconds per DIV2K-size image (2040x1356, one thread) of each protocol recipe's degradation.

Draws the recipe's parameters for a random image and times the blur + downsample (or the whole
chain for realesrgan / bsrgan), the part of a build that differs between recipes.

    python bench/protocols.py [--recipes ssr gaussian8 dcls-aniso div2krk realesrgan bsrgan]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from degrade.fields import draw_degradation
from degrade.ops.bsrgan import apply_bsrgan
from degrade.ops.downsample import blur_downsample
from degrade.ops.second_order import apply_realesrgan
from degrade.recipes import load_recipe

H, W = 1356, 2040


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+",
                        default=["ssr", "gaussian8", "dcls-aniso", "div2krk", "realesrgan", "bsrgan"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    hr = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(0))
    for name in args.recipes:
        r = load_recipe(name)
        rng = np.random.default_rng(0)
        d = draw_degradation(r, np.full((H, W), 0.5), rng)
        t = time.perf_counter()
        if r.downsampler == "chain":
            apply = apply_realesrgan if r.blur.model == "realesrgan" else apply_bsrgan
            apply(hr, d.second_order, r.scale, rng)
        elif r.uses_taps:
            blur_downsample(hr, r.scale, r.kernel_size, r.delta_px, r.downsampler,
                            kernel_taps=torch.from_numpy(d.taps)[None], passes=d.passes, padding=r.padding)
        else:
            blur_downsample(hr, r.scale, r.kernel_size, r.delta_px, r.downsampler,
                            kernel_field=torch.from_numpy(d.kernel_field)[None])
        print(f"{name:12s} {time.perf_counter() - t:6.2f} s per {W}x{H} image (1 thread)")


if __name__ == "__main__":
    main()
