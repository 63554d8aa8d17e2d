"""The `degrade datasets` commands: list, download and verify the public data sets.

Thin commands over ``ssr_datasets.catalog``, ``.download`` and ``.dataset_verify``; progress bars
live here, library errors become click errors here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ssr_core.cli import library_errors

_ROOT_HELP = ("The data set's own folder (e.g. data/div2k): archives are saved and extracted "
              "there; checksums recorded on first download go to DIR/.ssr-bench/checksums.json.")




def _size(n: int | None) -> str:
    """Format a byte count in decimal units; ``?`` when unknown.

    >>> _size(448993893), _size(None)
    ('449.0 MB', '?')
    """
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"  # unreachable


@click.group("datasets", context_settings={"help_option_names": ["-h", "--help"],
                                           "max_content_width": 100})
def datasets_group() -> None:
    """List, download and verify the public data sets (checksummed, resumable, safe extraction).

    \b
    Examples:
      degrade datasets list
      degrade datasets download div2k --root data/div2k --split valid
      degrade datasets verify div2k --root data/div2k
      degrade datasets verify set14 --root data/benchmarks --strict

    Each data set is described by manifests/datasets/<name>.yaml (URLs, sizes, sha256 and where
    each checksum comes from). Data sets behind a login (cityscapes, drealsr) or without an
    official archive (set5, set14, bsds100, urban100) are placed by hand; `download` then says
    where to get them and `verify` checks them.
    """


@datasets_group.command("list")
def list_cmd() -> None:
    """Show every data set: splits, download size, how to get it, license.

    \b
    "download": every file has a public URL; "manual": place the files yourself (the download
    command prints instructions); "partial": some files need manual steps. A size of "?" means
    the server publishes none (the first download records the size and sha256).
    """
    from ssr_datasets.catalog import DATASET_NAMES, load_dataset

    click.echo(f"{'name':11s} {'splits':22s} {'size':>9s}  {'get':8s}  license")
    for name in DATASET_NAMES:
        spec = load_dataset(name)
        size = _size(spec.total_bytes) if spec.files else "-"
        click.echo(f"{name:11s} {','.join(spec.splits):22s} {size:>9s}  {spec.availability:8s}  "
                   f"{spec.license}")


@datasets_group.command("download")
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), required=True,
              metavar="DIR", help=_ROOT_HELP)
@click.option("--split", default=None, help="Fetch only the files this split needs "
                                            "(default: all); see `degrade datasets list`.")
@click.option("--mirror", default=None, metavar="URL",
              help="Base URL tried first for every file, as URL/<file name>; the manifest's "
                   "URLs follow as fallbacks. Checksums are enforced whatever the source.")
@click.option("--timeout", type=click.FloatRange(1, 600), default=60, show_default=True,
              help="Seconds a connection may stall before the next mirror is tried.")
@library_errors
def download_cmd(name: str, root: Path, split: str | None, mirror: str | None,
                 timeout: float) -> None:
    """Download, verify (size + sha256) and extract NAME into --root.

    NAME is a data set from `degrade datasets list` or the path of your own manifest .yaml.

    \b
    Examples:
      degrade datasets download div2k --root data/div2k --split valid
      degrade datasets download nyuv2 --root data/nyuv2
      degrade datasets download div2k --root data/div2k --mirror https://my.mirror/div2k

    Safe to rerun: files already extracted or already downloaded with the right checksum are
    skipped, and an interrupted download resumes where it stopped (from DIR/<file>.part).
    """
    from tqdm import tqdm

    from ssr_datasets.download import download_dataset
    from ssr_datasets.storage import remove_stale_temps

    for temp in remove_stale_temps(root):  # e.g. the extraction folder of a killed run
        click.echo(temp)
    bars: dict[str, tqdm] = {}

    def progress(file: str, done: int, total: int | None) -> None:
        bar = bars.get(file)
        if bar is None:
            bar = bars[file] = tqdm(total=total, initial=0, unit="B", unit_scale=True,
                                    unit_divisor=1024, desc=file, dynamic_ncols=True,
                                    file=sys.stderr, leave=True)
        bar.update(done - bar.n)

    try:
        outcomes = download_dataset(name, root, split=split, mirror=mirror, progress=progress,
                                    timeout=timeout)
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted; partial downloads are kept in {root} as "
                                   "*.part: rerun the same command to resume") from None
    finally:
        for bar in bars.values():
            bar.close()
    for o in outcomes:
        what = {"already-extracted": "skipped (already extracted)",
                "archive-present": "present", "manual-present": "present",
                "downloaded": "downloaded"}[o.action]
        extra = [f"sha256 {o.checksum}"] if o.checksum != "skipped" else []
        if o.extracted:
            extra.append("extracted")
        click.echo(f"{o.name}: {what}" + (f", {', '.join(extra)}" if extra else "")
                   + (f" - {o.detail}" if o.detail else ""))
    click.echo(f"done: {name} in {root}; check it with `degrade datasets verify {name} "
               f"--root {root}`")


@datasets_group.command("verify")
@click.argument("name")
@click.option("--root", type=click.Path(path_type=Path, file_okay=False), required=True,
              metavar="DIR", help=_ROOT_HELP)
@click.option("--strict", is_flag=True,
              help="Also fail when a benchmark image's decoded pixels differ from the recorded "
                   "copy or are not found (reported as warnings otherwise).")
@library_errors
def verify_cmd(name: str, root: Path, strict: bool) -> None:
    """Check a data set in --root: archive checksums, folder layout, benchmark pixels.

    Exit status 1 when anything is wrong (or, with --strict, when a benchmark copy differs).

    \b
    Examples:
      degrade datasets verify div2k --root data/div2k
      degrade datasets verify set5 --root data/benchmarks --strict
    """
    from ssr_datasets.dataset_verify import verify_dataset

    report = verify_dataset(name, root, strict=strict)
    for file, status in report.files:
        click.echo(f"file   {file}: {status}")
    for split, status in report.splits:
        click.echo(f"layout {split}: {status}")
    if report.images:
        counts = {s: sum(c.status == s for c in report.images) for s in ("match", "differs",
                                                                         "missing")}
        click.echo("pixels " + ", ".join(f"{v} {k}" for k, v in counts.items())
                   + f" of {len(report.images)} recorded image(s)")
    for line in report.warnings:
        click.secho(f"warning: {line}", fg="yellow", err=True)
    if report.ok:
        click.echo(f"OK: {report.name} in {root}")
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    n = len(report.problems) + (len(report.warnings) if strict else 0)
    click.echo(f"FAILED: {n} problem(s) with {report.name} in {root}", err=True)
    sys.exit(1)
