"""``ssr-eval kernels``: score kernel estimators against the true per-pixel kernel fields.

Thin command: parse, resolve sets and methods, call ``eval.kernels.table.run_kernel_table``,
render with the tables' renderers, write the heat-map page. Library errors become click errors.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from degrade.depth import DEPTH_REQUESTS
from eval.tables.spec import STAND_INS
from ssr_core.cli import allow_download_option, device_option, library_errors

from .cli_options import emit_table
from .cli_run import _EXT_FORMATS, FORMATS, _root_pairs, _tqdm_progress, default_data_root


@click.command("kernels")
@click.option("--set", "sets", multiple=True, metavar="DIR|GROUP|TABLE:GROUP|div2krk:SPLIT",
              help="Test set: a shard set (`degrade build` folder), a group of the kernel table "
                   "(div2k: recipe ssr; div2k-clean: ssr-clean, noise-free) or TABLE:GROUP "
                   "(table1:bsds100), built or reused like `ssr-eval run` builds it; or "
                   "div2krk:x2 / div2krk:x4, KernelGAN's released DIV2KRK scored against its "
                   "released kernels (found like a group; --dataset-root div2krk=DIR). "
                   "Repeatable. Default: every group of --table.")
@click.option("--method", "methods", multiple=True, metavar="NAME=SOURCE",
              help="An estimator to score (repeatable): SOURCE a DKENet run (ssr-train --out "
                   "folder or its kernel/ stage; best.pt if present), a folder of {key}.npy "
                   "estimates ((3,h,w) s1,s2,theta; (K*K,h,w) or (h,w,K,K) taps; (K,K) one "
                   "kernel per image; optional conventions.json {\"sigma\": \"std\"|\"variance\", "
                   "\"delta\": ...}), or a baseline: true, oracle, mean, mean:TRAIN_SHARDS. "
                   "The table's rows true, oracle and mean (of the test set) always run; "
                   "--method mean=mean:TRAIN_SHARDS replaces the last.")
@click.option("--table", "table", default="kernels", show_default=True, metavar="kernels|FILE.yaml",
              help="The kernel table spec (manifests/tables/kernels.yaml) or your own.")
@click.option("--data-root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder holding the data sets of GROUP sets. Default: $SSR_BENCH_DATA, else "
                   "./data.")
@click.option("--dataset-root", "dataset_roots", multiple=True, metavar="GROUP=DIR",
              help="Folder of one data set (div2k=/data/DIV2K). Repeatable.")
@click.option("--stand-in", type=click.Choice(STAND_INS), default=None,
              help="Build GROUP sets from this source instead (scikit-image's photos, offline), "
                   "labelled as a stand-in.")
@click.option("--max-images", type=click.IntRange(1), default=None, metavar="N",
              help="Only the first N images of GROUP sets (a different, recorded test set).")
@click.option("--depth", type=click.Choice(DEPTH_REQUESTS),
              default=None, help="Depth provider of GROUP sets instead of the table's (prior).")
@allow_download_option()
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Table format. Default: from the --out suffix, else terminal.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the table to this file (atomically) instead of stdout.")
@click.option("--maps", "maps_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Write heat maps (PNG) of the first --map-images images of each set and an "
                   "index.html beside them (true and estimated blur size, kernel L1, size/angle "
                   "and re-degradation errors) into this folder.")
@click.option("--map-images", type=click.IntRange(1), default=2, show_default=True, metavar="N",
              help="Images per set drawn with --maps.")
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where GROUP test sets are kept. Default: $SSR_BENCH_CACHE/tables.")
@device_option(what="Torch device of DKENet runs")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Score cache folder. Default: $SSR_BENCH_CACHE/scores.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@library_errors
def kernels_cmd(sets: tuple[str, ...], methods: tuple[str, ...], table: str, data_root: Path | None,
                dataset_roots: tuple[str, ...], stand_in: str | None, max_images: int | None,
                depth: str | None, allow_download: bool, fmt: str | None, out: Path | None,
                maps_dir: Path | None, map_images: int, work_dir: Path | None, device: str,
                cache_dir: Path | None, no_cache: bool) -> None:
    """Score kernel estimators against the ground-truth kernel field of every LR pixel.

    \b
    Metrics (conventions in every output; eval/kernels/metrics.py):
      kernel PSNR  10 log10(1/MSE) over the K x K taps of every pixel (DIV2KRK's, per image)
      kernel L1    mean per-pixel sum |k - k*| over the taps, in [0, 2]
      sigma, size  |s1-s1*|, |s2-s2*| (mean) and |sqrt(s1 s2) - sqrt(s1* s2*)|, HR px
      theta err    axis angle modulo pi, weighted by the true anisotropy (s1-s2)/(s1+s2), deg
      re-deg PSNR  HR degraded with the estimate (Eq. 1, uint8) vs the LR; noise-free sets

    \b
    Examples:
      degrade build --out out/sample
      ssr-eval kernels --set out/sample --method DKENet=runs/tiny --method mean=mean:out/train
      ssr-eval kernels --set div2k-clean --data-root /data --method KernelGAN=results/kgan/
      ssr-eval kernels --set div2krk:x2 --dataset-root div2krk=~/data/div2krk --method KernelGAN=kgan/
      ssr-eval kernels --stand-in sample --maps maps/ --out kernels.html

    Invariant (K, K) kernels are centred by their centre of mass (the DIV2KRK convention) and
    compared with every pixel's kernel; taps at another K or delta are padded/cropped/moved by
    whole taps, and refused with the reason when that cannot be done exactly.
    """
    from eval.metrics.cache import ScoreCache
    from ssr_core.paths import user_cache_dir

    from .kernels.maps import write_maps
    from .kernels.methods import parse_kernel_method
    from .kernels.table import load_kernel_table, run_kernel_table
    from .tables.runner import RunOptions
    from .tables.testsets import Roots

    if cache_dir is not None and no_cache:
        raise click.UsageError("--cache and --no-cache exclude each other")
    if fmt is None:
        fmt = _EXT_FORMATS.get(out.suffix.lower(), "terminal") if out is not None else "terminal"
    spec = load_kernel_table(table)
    parsed = [parse_kernel_method(m, device=device) for m in methods]
    roots = Roots((data_root if data_root is not None else default_data_root()).absolute(),
                  {k: v.absolute() for k, v in _root_pairs(dataset_roots).items()})
    cache = None if no_cache else ScoreCache(cache_dir)
    options = RunOptions(roots=roots, work_dir=work_dir or user_cache_dir("tables"),
                         stand_in=stand_in, max_images=max_images, depth=depth,  # type: ignore[arg-type]
                         device=device, cache=cache, previews=False, progress=_tqdm_progress(),
                         command=" ".join(shlex.quote(a) for a in ["ssr-eval", *sys.argv[1:]]),
                         allow_download=allow_download)
    try:
        result, scored = run_kernel_table(spec, list(sets), parsed, options,
                                          map_images=map_images if maps_dir else 0)
    finally:
        if cache is not None:
            cache.close()
    emit_table(result, fmt, out)
    if maps_dir is not None:
        page = write_maps(maps_dir, scored)
        click.echo(f"wrote heat maps: {page}", err=True)
    click.echo(f"{result.computed} value(s) computed, {result.cached} from the cache; build "
               f"{result.timings['build']:.1f} s, score {result.timings['score']:.1f} s", err=True)
