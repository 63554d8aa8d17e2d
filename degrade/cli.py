"""The `degrade` command: build, inspect and verify shard sets.

Thin commands: parse, validate, call the library, summarize. Library errors (SsrError) become
click errors here and nowhere else.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, get_args

import click

from ssr_core.cli import (
    allow_download_option,
    depth_cache_option,
    device_option,
    library_errors,
    sigterm_as_interrupt,
)
from ssr_datasets.formats import DEFAULT_MAX_PIXELS
from ssr_datasets.sources import SOURCE_NAMES

from .depth import DepthRequest
from .recipes import BUILTIN_RECIPES

# The registries themselves (they import lazily what their entries need, so --help stays fast).
_SOURCES = SOURCE_NAMES
_DEPTH = get_args(DepthRequest)
_RECIPES = BUILTIN_RECIPES




class _Location(click.ParamType):
    """A folder path (-> Path, checked like click.Path) or an fsspec URL (-> str, as typed)."""

    name = "path|url"

    def __init__(self, exists: bool = False) -> None:
        self._path = click.Path(path_type=Path, exists=exists, file_okay=False)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Path | str:
        from ssr_datasets.storage import is_remote

        if isinstance(value, str) and is_remote(value):
            return value  # pathlib would fold "s3://b" into "s3:/b"; checked when opened
        return self._path.convert(value, param, ctx)


_LOCATION = _Location()
_EXISTING_LOCATION = _Location(exists=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="ssr-bench")
def main() -> None:
    """Depth-driven, spatially variant degradations for blind super-resolution.

    \b
    Quick start (offline, the sample photos that scikit-image ships):
      degrade build --out out/sample
      degrade verify out/sample
      degrade info out/sample
    """


@main.command()
@click.option("--source", type=click.Choice(_SOURCES), default="sample", show_default=True,
              help="Where images come from: 'sample' = scikit-image's photos (offline; motorcycle "
                   "has real depth), 'folder' = every png/jpg/bmp/tif/webp under --root.")
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="The data set's folder, for every source but 'sample': 'folder' reads every "
                   "image under it (depth beside an image: <stem>.depth.npy, float32 metres, or "
                   "<stem>_depth.png, uint16 millimetres, 0 = unknown); the others read their "
                   "own layout there (e.g. div2k: ROOT/DIV2K_valid_HR; see `degrade datasets "
                   "list`).")
@click.option("--recipe", default="ssr", show_default=True,
              help=f"Built-in recipe ({', '.join(_RECIPES)}; `degrade recipes` describes them) "
                   "or the path of your own recipe .yaml; see manifests/recipes/.")
@click.option("--depth", type=click.Choice(_DEPTH), default="auto", show_default=True,
              help="Nearness source: 'gt' = the source's own depth; 'midas' (DPT-Hybrid) or "
                   "'depth-anything' (V2) = a learned model (pip install 'ssr-bench[depth]', "
                   "weights from the Hugging Face cache or --depth-weights); 'prior' = "
                   "weight-free estimate; 'auto' = gt when present, else a learned model whose "
                   "weights are on disk, else prior (counted per provider in the summary).")
@click.option("--depth-model", default=None, metavar="NAME",
              help="Learned checkpoint: midas: dpt-hybrid (default), dpt-large or any DPT hub id; "
                   "depth-anything: small (default), base, large or a hub id.")
@click.option("--depth-weights", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder with the checkpoint (the model folder, or one holding <org>--<name>/); "
                   "default: $SSR_BENCH_DEPTH_WEIGHTS, then the Hugging Face cache.")
@allow_download_option()
@device_option(what="Torch device of the degradation (blur and noise in batches; JPEG and PNG "
                   "encoding then run on CPU threads; a GPU build agrees with a CPU build to "
                   "float32 precision) and of the learned depth model")
@depth_cache_option()
@click.option("--no-depth-cache", is_flag=True, help="Neither read nor write the depth cache.")
@click.option("--depth-batch", type=click.IntRange(1), default=4, show_default=True,
              help="Images per learned-depth forward pass and per blur batch on the device.")
@click.option("--scale", type=click.IntRange(1, 16), default=None,
              help="Downsampling factor s (default: the recipe's, 4).")
@click.option("--kernel-size", type=click.IntRange(1, 99), default=None,
              help="Odd kernel window K in HR px (default: the recipe's, 21).")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Global seed; each sample's randomness comes from (seed, recipe, key).")
@click.option("--samples-per-image", type=click.IntRange(1), default=1, show_default=True,
              help="Degraded variants per input image (different crops and draws).")
@click.option("--crop", type=click.IntRange(1), nargs=2, default=None, metavar="H W",
              help="Random HR crop of H x W px (multiples of the scale); default: full image "
                   "(mod-cropped to the scale).")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Worker processes (one thread each). Output is identical for any number.")
@click.option("--cluster", default=None, metavar="ADDRESS",
              help="Run one task per shard on a Dask cluster: a scheduler address "
                   "(tcp://scheduler:8786) or local:N for N worker processes here. Needs "
                   "pip install 'ssr-bench[cluster]'; --out and the inputs must be reachable "
                   "from every worker (shared filesystem, or an s3:// / gs:// URL).")
@click.option("--shard-size", type=click.IntRange(1), default=64, show_default=True,
              help="Samples per shard (tar file).")
@click.option("--max-images", type=click.IntRange(1), default=None,
              help="Use only the first N input images (sorted).")
@click.option("--max-pixels", type=click.IntRange(1), default=None, metavar="N",
              help=f"Skip (recorded in the manifest) inputs whose header declares more than N "
                   f"pixels (width x height), before decoding them [default: "
                   f"{DEFAULT_MAX_PIXELS}, about 4000x4000: DIV2K, Flickr2K, Middlebury full "
                   "size and Cityscapes pass].")
@click.option("--split", default=None,
              help="The source's split (div2k: train|valid, nyuv2: all|train|test, cityscapes: "
                   "train|val|test, ...; default: the source's first) and the shard name prefix "
                   "{split}-000000.tar ('train' for sources without splits).")
@click.option("--no-noise", is_flag=True, help="Switch the recipe's noise stage off.")
@click.option("--no-jpeg", is_flag=True, help="Switch the recipe's JPEG stage off.")
@click.option("--strict", is_flag=True, help="Fail on the first unusable input instead of skipping it.")
@click.option("--overwrite", is_flag=True,
              help="Replace a different build in --out (a matching one is resumed without it).")
@click.option("--no-preview", is_flag=True, help="Do not write preview.png.")
@click.option("--out", type=_LOCATION, required=True,
              help="Output folder or fsspec URL (s3://bucket/set needs s3fs): shards, "
                   "manifest.json, preview.png.")
@library_errors
def build(source: str, root: Path | None, recipe: str, depth: str, depth_model: str | None,
          depth_weights: Path | None, allow_download: bool, device: str, depth_cache: Path | None,
          no_depth_cache: bool,
          depth_batch: int, scale: int | None,
          kernel_size: int | None, seed: int, samples_per_image: int,
          crop: tuple[int, int] | None, workers: int, cluster: str | None, shard_size: int,
          max_images: int | None, max_pixels: int | None, split: str | None, no_noise: bool,
          no_jpeg: bool, strict: bool,
          overwrite: bool, no_preview: bool, out: Path | str) -> None:
    """Degrade images into WebDataset shards (HR, LR, nearness, kernel field, json).

    \b
    Examples:
      degrade build --out out/sample
      degrade build --source folder --root ~/photos --recipe ssr --crop 256 256 \\
          --samples-per-image 4 --workers 2 --out out/photos
      degrade build --recipe cmos-defocus --depth gt --out out/cmos   # images with depth only
      degrade build --source div2k --root ~/data --split valid --depth midas \\
          --depth-weights ~/weights --out out/div2k-valid

    Rerunning the same command resumes: complete shards whose checksum matches are kept.
    """
    from tqdm import tqdm

    from .build import BuildConfig, DepthOptions
    from .build import build as run_build
    from .recipes import load_recipe

    rec = load_recipe(recipe).with_overrides(scale=scale, kernel_size=kernel_size,
                                             no_noise=no_noise, no_jpeg=no_jpeg)
    config = BuildConfig(recipe=rec, source=source, root=str(root) if root else None,
                         depth=depth, seed=seed, samples_per_image=samples_per_image,
                         crop=tuple(crop) if crop else None, shard_size=shard_size,
                         max_images=max_images, split=split, depth_model=depth_model,
                         depth_device=device, device=device,
                         **({"max_pixels": max_pixels} if max_pixels is not None else {}))
    depth_options = DepthOptions(weights_dir=str(depth_weights) if depth_weights else None,
                                 cache_dir=str(depth_cache) if depth_cache else None,
                                 use_cache=not no_depth_cache, batch_size=depth_batch,
                                 allow_download=allow_download)
    bars: list[tqdm] = []  # made on the first report, so that fail-fast errors print alone

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="img", desc="degrade", dynamic_ncols=True,
                             file=sys.stderr))
        bar = bars[0]
        if bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    def close() -> None:
        for bar in bars:
            bar.close()

    try:
        with sigterm_as_interrupt():
            result = run_build(config, out, workers=workers, cluster=cluster, overwrite=overwrite,
                               strict=strict, on_progress=progress, preview=not no_preview,
                               depth_options=depth_options)
    except KeyboardInterrupt as exc:
        close()
        how = f" by {exc.args[0]}" if exc.args else ""
        raise click.ClickException(
            f"interrupted{how}; the finished shards in {out} are kept: rerun the same command "
            "to resume"
        ) from None
    finally:
        close()
    for line in result.removed_temps:
        click.echo(line)
    m = result.manifest
    tot = m["totals"]
    click.echo(f"recipe {rec.name} (x{rec.scale}, K={rec.kernel_size}), seed {seed}: "
               f"{tot['samples']} samples from {tot['images']} images in {tot['shards']} shard(s), "
               f"{result.seconds:.1f} s ({result.reused_shards} shard(s) reused)")
    providers = ", ".join(f"{k}: {v} image(s)" for k, v in sorted(m["depth_providers"].items()))
    if providers:
        click.echo(f"depth: {providers}")
    for line in result.warnings:
        click.secho(f"warning: {line}", fg="yellow", err=True)
    names = [sh["name"] for sh in m["shards"]]
    shown = names[0] if len(names) == 1 else f"{names[0]} ... {names[-1]}" if names else "none"
    click.echo(f"shards:   {out}/{shown}")
    click.echo(f"manifest: {out}/manifest.json")
    if result.preview:
        click.echo(f"preview:  {result.preview}")


@main.command()
@click.argument("out_dir", type=_EXISTING_LOCATION)
@library_errors
def info(out_dir: Path | str) -> None:
    """Summarize a shard set from its manifest (no shard is read)."""
    from ssr_datasets.manifest import describe

    click.echo(describe(out_dir))


@main.command()
@click.argument("out_dir", type=_EXISTING_LOCATION)
@click.option("--no-checksums", is_flag=True, help="Skip sha256 checks (sizes are still checked).")
@click.option("--no-decode", is_flag=True, help="Skip decoding and validating every sample.")
@library_errors
def verify(out_dir: Path | str, no_checksums: bool, no_decode: bool) -> None:
    """Check checksums, sizes, schema and decodability; exit 1 on any mismatch."""
    from ssr_datasets.manifest import verify_shard_set

    report = verify_shard_set(out_dir, checksums=not no_checksums, decode=not no_decode)
    if report.ok:
        click.echo(f"OK: {report.shards} shard(s), {report.samples} sample(s) in {out_dir}")
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"FAILED: {len(report.problems)} problem(s) in {out_dir}", err=True)
    sys.exit(1)


@main.command("recipes")
def recipes_cmd() -> None:
    """List the built-in recipes: kernel model, ranges, stages, worst-case truncated mass.

    The last figure is the share of the widest kernel's mass (isotropic, at the top of the
    sigma range) that falls outside the K x K window on the recipe's LR grid.
    """
    from .recipes import BUILTIN_RECIPES, load_recipe, recipe_path, sigma_span_px, worst_truncated_mass

    for name in BUILTIN_RECIPES:
        r = load_recipe(name)
        stages = [s for s, on in (("noise", r.noise), ("jpeg", r.jpeg)) if on is not None]
        if r.downsampler == "chain":
            stages = ["chain"]
        low, top = sigma_span_px(r)
        lost = worst_truncated_mass(r)
        click.echo(f"{name:14s} {r.blur.model:15s} x{r.scale} K={r.kernel_size:<3d} "
                   f"{f'sigma {low}-{top} px':16s} "
                   f"{'+'.join(stages) or 'blur only':12s} lost <= {lost:6.2%}  {recipe_path(name)}")


@main.command("protocols")
@click.option("--json", "as_json", is_flag=True, help="Print the protocols as a JSON list.")
@library_errors
def protocols_cmd(as_json: bool) -> None:
    """List the test protocols the built-in recipes reproduce, and what is exact in each.

    \b
    One row per recipe: its name (what --recipe takes), the protocol and the test sets it is
    used on; below it the paper, the kernel convention, the downsampler, what is exact and what
    only matches in distribution. The text comes from each recipe file's `protocol:` block.
    """
    import json
    import textwrap

    from .protocols import list_protocols

    infos = list_protocols()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in infos], indent=2))
        return
    click.echo(f"{'recipe':13s} {'protocol':48s} test sets")
    for p in infos:
        click.echo(f"{p.name:13s} {p.title:48s} {', '.join(p.test_sets)}")
        for label, text in (("paper", p.paper), ("kernel", p.kernel), ("down", p.downsampler),
                            ("exact", p.exact), ("not exact", p.not_exact)):
            click.echo(textwrap.fill(text, width=100, initial_indent=f"    {label + ':':11s}",
                                     subsequent_indent=" " * 15))


from .cli_datasets import datasets_group  # noqa: E402 - registered after main is defined

main.add_command(datasets_group)


if __name__ == "__main__":
    main()
