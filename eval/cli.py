"""The `ssr-eval` command: score SR outputs with the paper's metrics.

Thin commands: parse, match the inputs, call ``eval.metrics.scoring``, summarize. Library errors
(SsrError) become click errors through ``ssr_core.cli.library_errors``.

Inputs (``--gt`` / ``--pred``): a folder of images or a shard set (a folder holding the
``manifest.json`` of ``degrade build``), paired by ``eval.metrics.pairing.match_inputs`` (its
docstring gives the combinations).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from eval.metrics.registry import METRICS, MetricSpec
from ssr_core.cli import device_option, library_errors, weights_dir_option

from .cli_options import MetricList

if TYPE_CHECKING:  # imported lazily at run time, so that --help stays fast
    from eval.metrics.scoring import ScoreResult


def _image_metrics() -> dict[str, MetricSpec]:
    """Return the registered metrics that score images (the kernel track's are for `kernels`)."""
    return {n: s for n, s in METRICS.items() if s.target == "image"}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ssr-bench")
def main() -> None:
    """Score super-resolution outputs with the SSR paper's metrics.

    \b
    Conventions (recorded in every JSON output):
      PSNR, SSIM  BasicSR/MATLAB: Y of BT.601 YCbCr from RGB in [0,255], unrounded
                  (--rgb: RGB), border crop of --crop-border px (the scale, by convention);
                  SSIM 11x11 Gaussian window, sigma 1.5. Identical images: PSNR = inf.
      NIQE        pyiqa's default niqe (its float32 numerics), published pristine model, no crop.
      LPIPS, MUSIQ, CLIP-IQA  pyiqa's defaults (pip install "ssr-bench[metrics]").
      mean        arithmetic mean of the per-image values (an inf makes it inf).

    \b
    Quick start:
      ssr-eval score --gt data/Set5/HR --pred results/Set5 --crop-border 4
      ssr-eval score --gt out/sample --pred results/sample       # HR of a shard set
      ssr-eval score --pred out/sample --metrics niqe            # its LR, no reference
    """


@main.command("score")
@click.option("--gt", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None,
              help="Ground truth: a folder of images, or a shard set from `degrade build` (its HR "
                   "images, matched to --pred files by sample key). Needed by "
                   f"{', '.join(n for n, s in _image_metrics().items() if s.full_reference)}.")
@click.option("--pred", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True,
              help="Images to score: a folder of SR outputs (png/jpg/bmp/tif/webp directly in "
                   "it, matched to --gt by file stem), or, "
                   "without --gt, a folder or a shard set (its LR images) for no-reference "
                   "metrics.")
@click.option("--metrics", "metric_names", type=MetricList(), default=None,
              metavar=",".join(_image_metrics()),
              help=f"Comma-separated metrics from: {', '.join(_image_metrics())}. Default: all of them "
                   "with --gt, else the no-reference ones.")
@click.option("--crop-border", type=click.IntRange(0), default=None, metavar="PX",
              help="Pixels cut from each border before full-reference metrics (the SR convention "
                   "is the scale, e.g. 4). Default: the scale of a --gt shard set, else 0.")
@click.option("--rgb", is_flag=True,
              help="PSNR/SSIM on RGB instead of the Y channel of BT.601 YCbCr.")
@device_option(what="Torch device of the learned metrics")
@weights_dir_option("A $TORCH_HOME-like folder with the learned metrics' weights (hub/pyiqa, "
                    "hub/checkpoints, hub/clip; see the README); default: $TORCH_HOME.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False),
              default=None, help="Write per-image values, means and conventions as JSON "
                                 "(inf written as the string \"inf\").")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write one row per image and a final 'mean' row as CSV.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False),
              default=None,
              help="Per-image score cache folder, keyed by pixels, metric version and options. "
                   "Default: $SSR_BENCH_CACHE/scores or ~/.cache/ssr-bench/scores.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option("--allow-missing", is_flag=True,
              help="Score the images present on both sides instead of failing when a stem is "
                   "on one side only.")
@library_errors
def score_cmd(gt: Path | None, pred: Path, metric_names: list[str] | None,
              crop_border: int | None, rgb: bool, device: str, weights_dir: Path | None,
              json_path: Path | None, csv_path: Path | None, cache_dir: Path | None,
              no_cache: bool, allow_missing: bool) -> None:
    """Score images with the chosen metrics and print the per-metric means.

    \b
    Examples:
      ssr-eval score --gt HR --pred SR --crop-border 4 --metrics psnr,ssim --json scores.json
      ssr-eval score --gt out/sample --pred sr/sample --csv scores.csv
      ssr-eval score --pred out/sample --metrics niqe,musiq

    Rerunning computes only what is new: values are cached per image, metric and options.
    """
    from tqdm import tqdm

    from eval.metrics.cache import ScoreCache
    from eval.metrics.pairing import match_inputs
    from eval.metrics.scoring import score
    from ssr_core.io import write_bytes_atomic, write_json_atomic

    if cache_dir is not None and no_cache:
        raise click.UsageError("--cache and --no-cache exclude each other")
    if metric_names is None:
        metric_names = [n for n, s in _image_metrics().items()
                        if gt is not None or not s.full_reference]
    full_ref = [n for n in metric_names if METRICS[n].full_reference]
    if gt is None and full_ref:
        no_ref = [n for n, s in _image_metrics().items() if not s.full_reference]
        raise click.UsageError(f"{', '.join(full_ref)} compare with a ground truth: give --gt, "
                               f"or choose no-reference metrics ({', '.join(no_ref)})")
    inputs = match_inputs(gt, pred, allow_missing)
    if inputs.warning:
        click.secho(f"warning: {inputs.warning}", fg="yellow", err=True)
    if crop_border is None:
        crop_border = inputs.scale if inputs.scale is not None else 0
    cache = None if no_cache else ScoreCache(cache_dir)
    bar = tqdm(total=inputs.count, unit="img", desc="score", dynamic_ncols=True,
               file=sys.stderr)
    try:
        result = score(metric_names, inputs.pairs(), crop_border=crop_border,
                       y_channel=not rgb, device=device,
                       weights_dir=str(weights_dir) if weights_dir else None,
                       cache=cache, progress=lambda done: bar.update(done - bar.n))
    finally:
        bar.close()
        if cache is not None:
            cache.close()
    if json_path is not None:
        write_json_atomic(json_path, result.to_json())
    if csv_path is not None:
        write_bytes_atomic(csv_path, result.to_csv().encode("utf-8"))
    _summarize(result, inputs.describe, crop_border, rgb)
    for path in (json_path, csv_path):
        if path is not None:
            click.echo(f"wrote {path}")


def _summarize(result: ScoreResult, describe: str, crop_border: int, rgb: bool) -> None:
    """Print the per-metric means with arrows, then the unavailable metrics and why."""
    n = len(result.per_image)
    channel = "RGB" if rgb else "Y (BT.601)"
    click.echo(f"{n} image(s): {describe}")
    click.echo(f"full-reference on {channel}, crop_border {crop_border} px; "
               f"{result.computed} value(s) computed, {result.cached} from the cache")
    if result.metrics:
        click.echo(f"{'metric':10s} {'mean':>12s}  unit")
    infinite = result.infinite
    for name in result.metrics:
        spec = METRICS[name]
        mean = result.mean[name]
        note = f"  ({infinite[name]} of {n} image(s) inf)" if infinite[name] else ""
        click.echo(f"{spec.title + ' ' + spec.arrow:10s} {mean:12.4f}  {spec.unit}{note}".rstrip())
    for name, reason in result.unavailable.items():
        click.secho(f"unavailable: {name}: {reason}", fg="yellow")


def _register_table_commands() -> None:
    """Add ``run``, ``tables`` and ``kernels`` (their modules import nothing heavy at load time)."""
    from .cli_kernels import kernels_cmd
    from .cli_run import run_cmd, tables_cmd

    main.add_command(run_cmd)
    main.add_command(tables_cmd)
    main.add_command(kernels_cmd)


_register_table_commands()
