"""``ssr-eval run`` and ``ssr-eval tables``: the paper's tables, rebuilt beside its numbers.

Thin commands: parse, resolve the table and the methods, call ``eval.tables.runner.run_table``,
render (``eval.tables.render``). Library errors become click errors at the edge.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from degrade.depth import DEPTH_REQUESTS
from eval.tables.spec import STAND_INS
from ssr_core.cli import (
    allow_download_option,
    check_overlap,
    device_option,
    library_errors,
    tile_options,
    weights_dir_option,
)

from .cli_options import MetricList, emit_table

if TYPE_CHECKING:
    from .tables.spec import TableSpec
    from .tables.testsets import Roots

#: The formats of ``eval.tables.render.FORMATS``, restated so that ``--help`` imports no numpy
#: (a test keeps the two equal).
FORMATS = ("terminal", "markdown", "csv", "json", "latex", "html")

_EXT_FORMATS = {".md": "markdown", ".csv": "csv", ".json": "json", ".tex": "latex",
                ".html": "html", ".htm": "html", ".txt": "terminal"}


def default_data_root() -> Path:
    """Return ``$SSR_BENCH_DATA``, else ``./data``."""
    return Path(os.environ.get("SSR_BENCH_DATA") or "data")


def _root_pairs(values: tuple[str, ...]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for text in values:
        name, sep, path = text.partition("=")
        if not sep or not name or not path:
            raise click.BadParameter(f"expected GROUP=DIR (e.g. div2k=/data/DIV2K), got {text!r}",
                                     param_hint="--dataset-root")
        out[name.strip()] = Path(path).expanduser()
    return out


def _tqdm_progress() -> Callable[[str, int], Callable[[int], None]]:
    """Return a progress factory drawing one tqdm bar per stage on stderr."""
    from tqdm import tqdm

    def factory(desc: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total or None, desc=desc, unit="img", file=sys.stderr, leave=False,
                   dynamic_ncols=True)

        def update(n: int) -> None:
            bar.update(n)
            if bar.total and bar.n >= bar.total:
                bar.close()

        return update

    return factory


@click.command("run")
@click.option("--table", "table", required=True, metavar="1|2|3|FILE.yaml",
              help="Which table: 1 (ten methods on DIV2K valid, BSDS100, Urban100, DRealSR), "
                   "2 (ablation of DI-Kernel, depth, SVKR), 3 (three degradations), or a table "
                   "specification file (see manifests/tables/).")
@click.option("--method", "methods", multiple=True, metavar="NAME[=PATH]",
              help="Fill the row NAME (case-insensitive; a new row if the table has none): "
                   "PATH a training run folder (ssr-train --out), a checkpoint file that spandrel "
                   "loads (SwinIR, HAT, RealESRGAN, DAT, ...), or a folder of SR outputs named by "
                   "key or image id (DIR/<group>/ first). nbsr-oracle=RUN feeds NBSR the ground-"
                   "truth kernels. Repeatable.")
@click.option("--data-root", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder holding the data sets (one folder per data set, e.g. DATA/div2k, "
                   "DATA/BSDS100, DATA/DRealSR). Default: $SSR_BENCH_DATA, else ./data.")
@click.option("--dataset-root", "dataset_roots", multiple=True, metavar="GROUP=DIR",
              help="Folder of one data set, by group id or source name (div2k=/data/DIV2K). "
                   "Repeatable; wins over --data-root.")
@click.option("--stand-in", type=click.Choice(STAND_INS), default=None,
              help="Run every row group on this source instead (scikit-image's photos, offline), "
                   "labelled as a stand-in in every output (no difference to the paper is shown).")
@click.option("--paper-only", is_flag=True,
              help="Print the paper's numbers alone: look for no data and run nothing. Without "
                   "it, a run that finds no data for any group stops with an error.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format. Default: from the --out suffix (.md .csv .json .tex .html), "
                   "else terminal.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the table to this file (atomically) instead of stdout.")
@click.option("--metrics", "metric_names", type=MetricList(), default=None,
              help="Only these of the table's metrics (comma-separated).")
@click.option("--max-images", type=click.IntRange(1), default=None, metavar="N",
              help="Only the first N images of each test set (a different, recorded test set).")
@click.option("--depth", type=click.Choice(DEPTH_REQUESTS),
              default=None, help="Depth provider of the synthetic test sets instead of the "
                                 "table's (prior); a learned one needs its weights.")
@allow_download_option()
@click.option("--work-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Where test sets, LR exports and SR outputs are kept. Default: "
                   "$SSR_BENCH_CACHE/tables or ~/.cache/ssr-bench/tables.")
@device_option(what="Torch device of the methods and learned metrics")
@tile_options(what="LR tile side of network methods (memory)")
@weights_dir_option("A $TORCH_HOME-like folder with the learned metrics' weights.")
@click.option("--cache", "cache_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Score cache folder. Default: $SSR_BENCH_CACHE/scores.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the score cache.")
@click.option("--no-previews", is_flag=True, help="Skip the zoomed crops of the HTML report.")
@library_errors
def run_cmd(table: str, methods: tuple[str, ...], data_root: Path | None,
            dataset_roots: tuple[str, ...], stand_in: str | None, paper_only: bool,
            fmt: str | None, out: Path | None,
            metric_names: list[str] | None, max_images: int | None, depth: str | None,
            allow_download: bool, work_dir: Path | None, device: str, tile: int, overlap: int,
            weights_dir: Path | None,
            cache_dir: Path | None, no_cache: bool, no_previews: bool) -> None:
    """Rebuild a table of the SSR paper and print it beside the paper's numbers.

    \b
    Examples:
      ssr-eval run --table 1 --stand-in sample              # offline, on the sample photos
      ssr-eval run --table 1 --data-root /data --method SSR=runs/ssr \\
          --method SwinIR=weights/SwinIR-M_x4.pth --method DAN=results/DAN/
      ssr-eval run --table 2 --method ssr-no-svkr=runs/no-svkr --format markdown
      ssr-eval run --table 3 --data-root /data --out table3.html
      ssr-eval run --table 1 --paper-only                   # the paper's numbers alone

    Synthetic test sets are built with the table's recipe and seed on first use and reused
    after checking their checksums; their LR images are exported under WORK/lr/ for methods
    run elsewhere. A data set that is absent keeps the paper's numbers, marked "not found"; the
    groups without data are named on stderr before the run, and a run that finds none exits 1.
    Scores are cached per image, method and metric: adding a method computes only its rows.
    """
    from eval.metrics.cache import ScoreCache
    from ssr_core.paths import user_cache_dir

    from .tables.methods import parse_method
    from .tables.methods.run_stages import RunStages
    from .tables.runner import RunOptions, groups_without_data, run_table
    from .tables.spec import load_table
    from .tables.testsets import Roots

    if cache_dir is not None and no_cache:
        raise click.UsageError("--cache and --no-cache exclude each other")
    if paper_only and (stand_in or methods):
        raise click.UsageError("--paper-only runs nothing: drop --stand-in and --method")
    if fmt is None:
        fmt = _EXT_FORMATS.get(out.suffix.lower(), "terminal") if out is not None else "terminal"
    spec = load_table(table)
    check_overlap(tile, overlap)
    parsed = [parse_method(m, device=device, tile=tile, overlap=overlap) for m in methods]
    for m in parsed:  # a training run: say which checkpoint each stage is scored with
        run_stages = getattr(m, "stages", None)
        if isinstance(run_stages, RunStages):
            used = ", ".join(f"{s}/{run_stages.checkpoint(s).name}" for s in run_stages.folders)
            click.echo(f"{m.name}: weights {used} (best.pt when present, else last.pt)", err=True)
    # absolute, so that messages and the provenance say where exactly data was looked for
    roots = Roots((data_root if data_root is not None else default_data_root()).absolute(),
                  {k: v.absolute() for k, v in _root_pairs(dataset_roots).items()})
    if stand_in is None and not paper_only:
        _report_missing(spec, groups_without_data(spec, roots), roots, data_root is None)
    cache = None if no_cache else ScoreCache(cache_dir)
    options = RunOptions(roots=roots, work_dir=work_dir or user_cache_dir("tables"),
                         methods=parsed, metrics=tuple(metric_names) if metric_names else None,
                         stand_in=stand_in, max_images=max_images, depth=depth,  # type: ignore[arg-type]
                         device=device, weights_dir=str(weights_dir) if weights_dir else None,
                         cache=cache, previews=not no_previews and fmt == "html",
                         progress=_tqdm_progress(),
                         command=" ".join(shlex.quote(a) for a in ["ssr-eval", *sys.argv[1:]]),
                         paper_only=paper_only, allow_download=allow_download)
    try:
        result = run_table(spec, options)
    finally:
        if cache is not None:
            cache.close()
    emit_table(result, fmt, out)
    if paper_only:
        return
    t = result.timings
    click.echo(f"{result.computed} score(s) computed, {result.cached} from the cache; "
               f"build {t['build']:.1f} s, infer {t['infer']:.1f} s, score {t['score']:.1f} s; "
               f"work dir {options.work_dir}", err=True)


def _report_missing(spec: TableSpec, missing: dict[str, str], roots: Roots, default: bool) -> None:
    """Say on stderr, before any work, which groups found no data and how to go on.

    Raises:
        click.ClickException: no group has data (exit 1; ``--paper-only`` prints the numbers).
    """
    if not missing:
        return
    where = str(roots.data_root) + (" (the default: $SSR_BENCH_DATA, else ./data)" if default else "")
    if not roots.data_root.is_dir():  # type: ignore[union-attr]  # the CLI always sets it
        where += ", which does not exist"
    lines = [f"no data for {len(missing)} of {len(spec.groups)} group(s) of {spec.name} "
             f"({', '.join(missing)}); looked in {where}"]
    if roots.data_root.is_dir() or roots.per_dataset:  # type: ignore[union-attr]
        lines += [f"  {group}: {why}" for group, why in missing.items()]
    lines += ["ways forward: --data-root DIR (a folder holding the data sets, e.g. "
              "DIR/DIV2K_valid_HR, DIR/BSDS100; `ssr-eval tables` lists each group's source), "
              "or --stand-in sample (offline, on scikit-image's photos)"]
    if len(missing) < len(spec.groups):
        click.echo("\n".join(lines) + "\nthose groups show the paper's numbers only", err=True)
        return
    raise click.ClickException("\n".join(lines) + "\nnothing to compute; --paper-only prints the "
                               "paper's numbers alone")


@click.command("tables")
def tables_cmd() -> None:
    """List the built-in tables: groups, rows and what fills each row."""
    from ssr_models.configs import ablation_for, train_command

    from .tables.spec import BUILTIN_TABLES, load_table

    for name in BUILTIN_TABLES:
        spec = load_table(name)
        click.echo(f"{name}: {spec.title}")
        click.echo(f"  metrics: {', '.join(spec.metrics)}")
        for g in spec.groups:
            what = (f"{g.source} {g.split or ''} recipe {g.recipe}, seed {g.seed}, depth {g.depth}"
                    if g.recipe else f"{g.source} {g.split or ''} real pairs")
            click.echo(f"  group {g.id:10s} {g.label}: {' '.join(what.split())}")
        for r in spec.rows:
            fill = f"built-in {r.builtin}" if r.builtin else (
                "paper numbers" + (f"; --method {r.id}=PATH" if not r.hint else f"; {r.hint}"))
            click.echo(f"  row   {r.id:20s} {fill}")
            ablation = ablation_for(r.expects) if r.expects else None
            if ablation is not None:  # a row that a training run fills: how to train it
                click.echo(f"        train: {train_command(ablation, shards='TRAIN_SHARDS')}")
