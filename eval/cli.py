"""The `ssr-eval` command: score SR outputs with the paper's metrics.

Thin commands: parse, match the inputs, call ``eval.metrics.scoring``, summarize. Library errors
(SsrError) become click errors through ``degrade.cli_support.library_errors``.

Inputs (``--gt`` / ``--pred``), each a folder of images or a shard set (a folder holding the
``manifest.json`` of ``degrade build``):

- folder of images: the png/jpg/jpeg/bmp/tif/tiff/webp files directly in it (not in
  subfolders: an SR method's output folder is flat, and other runs kept beside it must not
  leak in), matched by file stem (``baby.png`` <-> ``baby.jpg``); two files with one stem on a
  side (``a.png`` and ``a.jpg``) are refused as ambiguous.
- ``--gt SHARDS``: the ground truth is the HR of each sample; ``--pred`` is a folder of SR
  outputs named after the sample keys (``{key}.png``).
- ``--pred SHARDS`` without ``--gt``: the LR images of the shard set, rated by no-reference
  metrics (NIQE, MUSIQ, CLIP-IQA) -- how degraded is this test set.
- ``--pred DIR`` without ``--gt``: the images of DIR, rated by no-reference metrics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from degrade.cli_support import device_option, library_errors
from eval.metrics.registry import METRICS
from ssr_datasets.errors import ConfigError

from .cli_options import MetricList

if TYPE_CHECKING:  # imported lazily at run time, so that --help stays fast
    from eval.metrics.scoring import ImagePair, ScoreResult

from ssr_datasets.formats import IMAGE_SUFFIXES

_MANIFEST = "manifest.json"
_SHOWN = 8  # names listed in a message before "... and N more"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ssr-bench")
def main() -> None:
    """Score super-resolution outputs with the SSR paper's metrics.

    \b
    Conventions (recorded in every JSON output):
      PSNR, SSIM  BasicSR/MATLAB: Y of BT.601 YCbCr from RGB in [0,255], unrounded
                  (--rgb: RGB), border crop of --crop-border px (the scale, by convention);
                  SSIM 11x11 Gaussian window, sigma 1.5. Identical images: PSNR = inf.
      NIQE        MATLAB niqe as pyiqa reproduces it, published pristine model, no crop.
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
                   f"{', '.join(n for n, s in METRICS.items() if s.full_reference)}.")
@click.option("--pred", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True,
              help="Images to score: a folder of SR outputs (png/jpg/bmp/tif/webp directly in "
                   "it, matched to --gt by file stem), or, "
                   "without --gt, a folder or a shard set (its LR images) for no-reference "
                   "metrics.")
@click.option("--metrics", "metric_names", type=MetricList(), default=None,
              metavar=",".join(METRICS),
              help=f"Comma-separated metrics from: {', '.join(METRICS)}. Default: all of them "
                   "with --gt, else the no-reference ones.")
@click.option("--crop-border", type=click.IntRange(0), default=None, metavar="PX",
              help="Pixels cut from each border before full-reference metrics (the SR convention "
                   "is the scale, e.g. 4). Default: the scale of a --gt shard set, else 0.")
@click.option("--rgb", is_flag=True,
              help="PSNR/SSIM on RGB instead of the Y channel of BT.601 YCbCr.")
@device_option(what="Torch device of the learned metrics")
@click.option("--weights-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="A $TORCH_HOME-like folder with the learned metrics' weights (hub/pyiqa, "
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
    from eval.metrics.scoring import score
    from ssr_datasets.shards import write_bytes_atomic, write_json_atomic

    if cache_dir is not None and no_cache:
        raise click.UsageError("--cache and --no-cache exclude each other")
    if metric_names is None:
        metric_names = [n for n, s in METRICS.items() if gt is not None or not s.full_reference]
    full_ref = [n for n in metric_names if METRICS[n].full_reference]
    if gt is None and full_ref:
        raise click.UsageError(f"{', '.join(full_ref)} compare with a ground truth: give --gt, "
                               "or choose no-reference metrics "
                               f"({', '.join(n for n, s in METRICS.items() if not s.full_reference)})")
    inputs = _match(gt, pred, allow_missing)
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


@dataclass
class _Inputs:
    """Matched inputs: how to read them, how many, and the shard set's scale if any."""

    describe: str
    count: int
    scale: int | None
    pairs: Callable[[], Iterator[ImagePair]]


def _is_shard_set(path: Path) -> bool:
    return (path / _MANIFEST).is_file()


def _list_images(folder: Path) -> dict[str, Path]:
    """Return stem -> file for the images directly in ``folder``; duplicate stems are refused."""
    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.stem, []).append(p)
    dupes = {s: ps for s, ps in found.items() if len(ps) > 1}
    if dupes:
        shown = "; ".join(" and ".join(p.name for p in ps) for ps in list(dupes.values())[:_SHOWN])
        raise ConfigError(f"ambiguous file names in {folder}: {len(dupes)} stem(s) with several "
                          f"images ({shown}); keep one file per stem")
    if not found:
        raise ConfigError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)} files "
                          "directly in it, not in subfolders)")
    return {s: ps[0] for s, ps in found.items()}


def _shard_keys(folder: Path) -> tuple[dict[str, Path], int | None]:
    """Return sample key -> shard path from a shard set's manifest (no shard read), and scale."""
    from ssr_datasets.manifest import manifest_shards, read_manifest

    manifest = read_manifest(folder)
    keys = {k: folder / info.name for info in manifest_shards(folder, manifest) for k in info.keys}
    scale = (manifest.get("recipe") or {}).get("scale")
    return keys, scale if isinstance(scale, int) else None


def _names(stems: list[str]) -> str:
    more = f" ... and {len(stems) - _SHOWN} more" if len(stems) > _SHOWN else ""
    return ", ".join(stems[:_SHOWN]) + more


def _match(gt: Path | None, pred: Path, allow_missing: bool) -> _Inputs:
    """Pair the two sides by stem / sample key (see the module docstring for the combinations)."""
    from eval.metrics.scoring import ImagePair
    from ssr_datasets.imageio import read_image
    from ssr_datasets.shards import iter_shard

    if gt is None:
        if _is_shard_set(pred):
            keys, scale = _shard_keys(pred)

            def lr_pairs() -> Iterator[ImagePair]:
                for shard in dict.fromkeys(keys.values()):
                    for s in iter_shard(shard):
                        yield ImagePair.of(s.key, s.lr, pred_name=f"{shard.name}:{s.key}.lr.png")

            return _Inputs(f"LR of shard set {pred}", len(keys), scale, lr_pairs)
        files = _list_images(pred)

        def nr_pairs() -> Iterator[ImagePair]:
            for stem, path in files.items():
                yield ImagePair.of(stem, read_image(path).rgb, pred_name=str(path))

        return _Inputs(f"{pred}", len(files), None, nr_pairs)

    if _is_shard_set(pred):
        raise ConfigError(f"--pred {pred} is a shard set: that means its LR images, rated by "
                          "no-reference metrics without --gt; to score SR outputs, give --pred "
                          "the folder of outputs and --gt the shard set")
    pred_files = _list_images(pred)
    if _is_shard_set(gt):
        gt_items, scale = _shard_keys(gt)
    else:
        gt_items, scale = _list_images(gt), None
    only_gt = sorted(set(gt_items) - set(pred_files))
    only_pred = sorted(set(pred_files) - set(gt_items))
    if (only_gt or only_pred) and not allow_missing:
        lines = [f"{len(only_gt)} in --gt {gt} only: {_names(only_gt)}" if only_gt else "",
                 f"{len(only_pred)} in --pred {pred} only: {_names(only_pred)}" if only_pred else ""]
        raise ConfigError("images do not match by name: " + "; ".join(x for x in lines if x)
                          + " (pass --allow-missing to score the common ones)")
    common = [s for s in gt_items if s in pred_files]
    if not common:
        raise ConfigError(f"no image name is common to --gt {gt} and --pred {pred}")
    if only_gt or only_pred:
        click.secho(f"warning: scoring {len(common)} common image(s); {len(only_gt)} only in "
                    f"--gt, {len(only_pred)} only in --pred", fg="yellow", err=True)
    if scale is None:
        _check_sizes({s: gt_items[s] for s in common}, pred_files)

        def folder_pairs() -> Iterator[ImagePair]:
            for stem in common:
                yield ImagePair.of(stem, read_image(pred_files[stem]).rgb,
                                   read_image(gt_items[stem]).rgb,
                                   pred_name=str(pred_files[stem]), gt_name=str(gt_items[stem]))

        return _Inputs(f"{pred} vs {gt}", len(common), None, folder_pairs)

    wanted = set(common)

    def hr_pairs() -> Iterator[ImagePair]:
        for shard in dict.fromkeys(gt_items[s] for s in common):
            for s in iter_shard(shard):
                if s.key in wanted:
                    path = pred_files[s.key]
                    yield ImagePair.of(s.key, read_image(path).rgb, s.hr, pred_name=str(path),
                                       gt_name=f"{shard}:{s.key}.hr.png")

    return _Inputs(f"{pred} vs HR of shard set {gt}", len(common), scale, hr_pairs)


def _check_sizes(gt_files: dict[str, Path], pred_files: dict[str, Path]) -> None:
    """Refuse size mismatches before any decoding (image headers only)."""
    from PIL import Image

    def size(path: Path) -> tuple[int, int] | None:
        try:
            with Image.open(path) as im:
                return im.size
        except Exception:  # noqa: BLE001 - an unreadable file is reported by read_image later
            return None

    bad = []
    for stem, g in gt_files.items():
        gs, ps = size(g), size(pred_files[stem])
        if gs and ps and gs != ps:
            bad.append(f"{g} is {gs[0]}x{gs[1]} but {pred_files[stem]} is {ps[0]}x{ps[1]}")
    if bad:
        more = f" ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise ConfigError(f"size mismatch (WxH) in {len(bad)} pair(s): "
                          + "; ".join(bad[:_SHOWN]) + more)


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
    """Add ``run`` and ``tables`` (their module imports nothing heavy at load time)."""
    from .cli_run import run_cmd, tables_cmd

    main.add_command(run_cmd)
    main.add_command(tables_cmd)


_register_table_commands()
