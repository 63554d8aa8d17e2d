"""Speed of the exact spatially variant degradation against one spatially invariant blur.

Prints, for a 2040x1356 RGB image on one thread, the time of ``draw_degradation`` (the kernel
field from nearness) + ``apply_kernel_field`` divided by the time of ``cv2.filter2D`` with one
21x21 kernel at full resolution followed by ``[::4, ::4]`` subsampling, measured in this process
(best of N). Also prints the naive per-pixel unfold at full resolution for scale.

    python bench/engine.py [--repeats 5] [--recipe ssr] [--naive]
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from degrade import apply_kernel_field
from degrade.depth import estimate_nearness
from degrade.fields import draw_degradation
from degrade.recipes import load_recipe
from degrade.sample import sample_rng
from ssr_datasets.sources import list_items, load_item

H, W = 1356, 2040


def best_of(fn, repeats: int) -> float:
    """Return the fastest of ``repeats`` calls of fn in seconds (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def test_image() -> tuple[np.ndarray, np.ndarray]:
    """Return the 'coffee' sample photo resized to 2040x1356 and its prior nearness."""
    item = next(i for i in list_items("sample") if i.image_id == "coffee")
    rgb = cv2.resize(load_item(item).rgb, (W, H), interpolation=cv2.INTER_CUBIC)
    return rgb, estimate_nearness("prior", rgb, None).nearness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--recipe", default="ssr")
    parser.add_argument("--naive", action="store_true", help="also time the naive unfold (slow)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)

    recipe = load_recipe(args.recipe)
    rgb, near = test_image()
    hr = torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div(255)
    img32 = rgb.astype(np.float32) / 255
    k = np.ones((21, 21), np.float32) / 441

    def baseline() -> np.ndarray:
        return np.ascontiguousarray(cv2.filter2D(img32, -1, k, borderType=cv2.BORDER_REFLECT_101)[::4, ::4])

    def exact(worst: bool = False) -> torch.Tensor:
        draw = draw_degradation(recipe, near, sample_rng(0, recipe.hash, "bench-coffee-000"))
        field = torch.from_numpy(draw.field)[None]
        if worst:
            field = torch.empty_like(field)
            field[:, :2] = recipe.blur.sigma_range_px[1]
            field[:, 2] = 0.0
        return apply_kernel_field(hr, field, recipe.scale, recipe.kernel_size, recipe.delta_px)

    t_base = best_of(baseline, args.repeats)
    t_exact = best_of(exact, args.repeats)
    t_worst = best_of(lambda: exact(worst=True), args.repeats)
    draw = draw_degradation(recipe, near, sample_rng(0, recipe.hash, "bench-coffee-000"))
    s = np.sqrt(draw.field[0] * draw.field[1])
    print(f"image {W}x{H} RGB, recipe {recipe.name} (x{recipe.scale}, K={recipe.kernel_size}), "
          f"1 thread, best of {args.repeats}")
    print(f"  field sqrt(s1*s2): median {np.median(s):.2f} px, max {s.max():.2f} px")
    print(f"  cv2.filter2D 21x21 full res + [::4]     {t_base * 1e3:8.1f} ms   (reference)")
    print(f"  exact SV degradation (field + blur)     {t_exact * 1e3:8.1f} ms   "
          f"ratio {t_exact / t_base:.2f}")
    print(f"  same, every kernel at the recipe's max  {t_worst * 1e3:8.1f} ms   "
          f"ratio {t_worst / t_base:.2f}")
    if args.naive:
        t_naive = best_of(lambda: naive_crop(hr, draw.field), 1) * (H * W) / NAIVE_CROP**2
        print(f"  naive per-pixel unfold at full res      {t_naive * 1e3:8.1f} ms   "
              f"ratio {t_naive / t_base:.1f}   (timed on a {NAIVE_CROP}x{NAIVE_CROP} crop, scaled)")


NAIVE_CROP = 128


def naive_crop(hr: torch.Tensor, field: np.ndarray) -> torch.Tensor:
    """The textbook way on a crop: unfold every HR pixel's 21x21 window, weight, sum, then [::4]."""
    c = NAIVE_CROP
    pad = torch.nn.functional.pad(hr[:, :, :c, :c], (10, 10, 10, 10), mode="reflect")
    cols = torch.nn.functional.unfold(pad, 21).view(3, 441, c * c)
    f = torch.from_numpy(field[:, : c // 4, : c // 4]).repeat_interleave(4, 1).repeat_interleave(4, 2)
    f = f.reshape(3, -1)
    cos, sin = torch.cos(f[2]), torch.sin(f[2])
    i1, i2 = f[0] ** -2, f[1] ** -2
    a, b, cc = cos * cos * i1 + sin * sin * i2, cos * sin * (i1 - i2), sin * sin * i1 + cos * cos * i2
    d = torch.arange(-10, 11.0) - 1.5
    dy, dx = (t.reshape(-1, 1) for t in torch.meshgrid(d, d, indexing="ij"))
    wgt = torch.exp(-0.5 * (a * dx * dx + 2 * b * dx * dy + cc * dy * dy))
    wgt = wgt / wgt.sum(0, keepdim=True)
    return (cols * wgt).sum(1).view(3, c, c)[:, ::4, ::4]


if __name__ == "__main__":
    main()
