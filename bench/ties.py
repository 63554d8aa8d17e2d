"""How many LR values the float64 tie settling changes, per recipe, on the sample photos.

For each recipe, degrades the five scikit-image sample photos (``--depth prior``, seed 0) as
``degrade build`` does, rounds the float32 LR to uint8, then runs
:func:`degrade.protocols.settle_ties` and prints the share of LR values it changed (those the
float32 sum rounded one level off the float64 direct formula) and the seconds it took.

    python bench/ties.py [--recipes cmos-defocus iso aniso ssr-nonoise]
"""

from __future__ import annotations

import argparse
import time

from degrade.build import sample as build_sample
from degrade.depth import estimate_nearness_batch
from degrade.ops.quantize import to_uint8
from degrade.protocols import settle_ties
from degrade.recipes import load_recipe
from ssr_datasets.sources import list_items, load_item


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["cmos-defocus", "iso", "aniso", "ssr-nonoise"])
    args = parser.parse_args()
    loaded = [(it, load_item(it)) for it in list_items("sample", None, None)]
    depth = [estimate_nearness_batch("prior", [ld.rgb], [ld.depth_m], [ld.pixel_sha256])[0]
             for _, ld in loaded]
    for name in args.recipes:
        recipe = load_recipe(name)
        changed = total = 0
        seconds = 0.0
        for (item, ld), dep in zip(loaded, depth, strict=True):
            times = build_sample.StageTimes()
            prepared = build_sample.prepare_samples(item, ld, recipe, dep, variants=1, seed=0,
                                                    crop=None, times=times)
            for p, (lr_t, _) in zip(prepared, build_sample.degrade_batch(prepared, recipe, "cpu", times),
                                    strict=True):
                lr = to_uint8(lr_t)
                before = lr.copy()
                t = time.perf_counter()
                settle_ties(lr, lr_t, p.hr, p.draw, recipe)
                seconds += time.perf_counter() - t
                changed += int((lr != before).sum())
                total += lr.size
        print(f"{name:14s} {changed:6d} / {total} LR values changed ({changed / total:.3%}), "
              f"settling {seconds:.2f} s for {len(loaded)} images")


if __name__ == "__main__":
    main()
