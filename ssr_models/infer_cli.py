"""The ``ssr-infer`` command: super-resolve a folder of images or a shard set with a trained run.

Thin: parse, load ``ssr_models.infer.SRPipeline``, list the inputs, write one PNG per input,
summarize. Library errors (SsrError) become click errors through
``ssr_core.cli.library_errors``.

Inputs (``--input``):

- a folder of images: the png/jpg/jpeg/bmp/tif/tiff/webp files directly in it (grayscale, palette,
  RGBA, 16-bit converted to 8-bit RGB by ``read_image``); output ``OUT/<stem>.png``; two files
  with one stem (``a.png``, ``a.jpg``) are refused as ambiguous.
- a shard set (a folder holding ``manifest.json`` of ``degrade build``): the LR image of every
  sample; output ``OUT/<key>.png``.

Each output is written to a temp file and renamed. Existing outputs are refused unless
``--overwrite``. ``--save-maps`` adds ``<stem>_nearness.png`` (viridis, 0 = far, 1 = near) and
``<stem>_blur.png`` (inferno, sqrt(s1 s2) from 0 to ``degrade.preview.BLUR_MAX_PX`` HR px,
nearest-upsampled from the LR grid): the map at the SR size in the top-left corner, a colour bar
with its value range and units below it (``degrade.preview.with_colour_bar``).

The command prints which method ``auto`` chose and why (``ssr_models.method_choice``) and a
warning when the chosen method's stage validated below bicubic; a progress bar per image counts
tiles, or diffusion steps, with an ETA (the library reports them through a callback).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
import numpy as np

from ssr_core.cli import (
    allow_download_option,
    check_overlap,
    device_option,
    library_errors,
    tile_options,
)
from ssr_core.errors import ConfigError, InputError

if TYPE_CHECKING:  # imported lazily at run time, so that --help stays fast
    from tqdm import tqdm

    from ssr_models.infer import Progress, SRResult

from ssr_datasets.formats import IMAGE_SUFFIXES
from ssr_models.method_choice import DEPTH_CHOICES as _DEPTHS  # torch-free: --help stays fast
from ssr_models.method_choice import METHODS as _METHODS

_SHOWN = 8  # names listed in a message before "... and N more"

Loader = Callable[[], np.ndarray]


def _folder_inputs(folder: Path) -> dict[str, Loader]:
    """Return stem -> loader of the images directly in ``folder``."""
    from ssr_datasets.imageio import read_image

    found: dict[str, list[Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES:
            found.setdefault(p.stem, []).append(p)
    dupes = sorted(s for s, ps in found.items() if len(ps) > 1)
    if dupes:
        raise ConfigError(f"ambiguous file names in {folder}: several images per stem for "
                          f"{', '.join(dupes[:_SHOWN])}; keep one file per stem")
    if not found:
        raise InputError(folder, f"no images (looked for {', '.join(IMAGE_SUFFIXES)} files directly "
                                 "in it, or a manifest.json of a shard set)")
    return {s: (lambda p=ps[0]: read_image(p).rgb) for s, ps in found.items()}


def _shard_inputs(folder: Path) -> tuple[int, Iterator[tuple[str, np.ndarray]]]:
    """Return (count, iterator of (key, LR uint8)) over a shard set, in manifest order."""
    from ssr_datasets.manifest import read_manifest
    from ssr_datasets.reader import shard_urls
    from ssr_datasets.shards import iter_shard

    manifest = read_manifest(folder)
    count = sum(int(e.get("count", 0)) for e in manifest.get("shards", []))

    def samples() -> Iterator[tuple[str, np.ndarray]]:
        for url in shard_urls(folder):
            for sample in iter_shard(url):
                yield sample.key, sample.lr

    return count, samples()


def _range_text(values: np.ndarray, vmax: float) -> str:
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    clipped = f", above {vmax:g} shown as {vmax:g}" if hi > vmax else ""
    return f"this image {lo:.2f}-{hi:.2f}{clipped}"


def _write_outputs(out: Path, name: str, result: SRResult, save_maps: bool) -> None:
    """Write the SR PNG (and the heat maps with their colour bars) of one input atomically."""
    import cv2

    from degrade.preview import BLUR_MAX_PX, colorize, with_colour_bar
    from ssr_core.io import write_bytes_atomic
    from ssr_datasets.imageio import encode_png

    write_bytes_atomic(out / f"{name}.png", encode_png(result.sr))
    if not save_maps:
        return
    if result.nearness is not None:
        near = result.nearness
        sheet = with_colour_bar(colorize(near, 1.0, cv2.COLORMAP_VIRIDIS), cv2.COLORMAP_VIRIDIS,
                                ("0 far", "1 near"), f"nearness (normalized inverse depth); "
                                                     f"{_range_text(near, 1.0)}")
        write_bytes_atomic(out / f"{name}_nearness.png", encode_png(sheet))
    if result.kernel_field is not None:
        size = np.sqrt(result.kernel_field[0] * result.kernel_field[1])
        s = result.sr.shape[0] // size.shape[0]
        size = np.repeat(np.repeat(size, s, axis=0), s, axis=1)
        sheet = with_colour_bar(colorize(size, BLUR_MAX_PX, cv2.COLORMAP_INFERNO), cv2.COLORMAP_INFERNO,
                                ("0", f"{BLUR_MAX_PX:g} HR px"), f"blur sqrt(s1*s2), HR px; "
                                                                 f"{_range_text(size, BLUR_MAX_PX)}")
        write_bytes_atomic(out / f"{name}_blur.png", encode_png(sheet))


def _reporter(bar: tqdm, name: str) -> Callable[[Progress], None]:
    """Return a progress callback that shows ``name``, the tile and the step on ``bar``."""

    def report(p: Progress) -> None:
        if bar.total != p.total:
            bar.reset(total=p.total)
        steps = f" step {p.step}/{p.steps}" if p.steps > 1 else ""
        bar.set_description_str(f"{name} tile {p.tile}/{p.tiles}{steps}", refresh=False)
        bar.update(p.done - bar.n)

    return report


def _outputs(name: str, save_maps: bool) -> list[str]:
    return [f"{name}.png"] + ([f"{name}_nearness.png", f"{name}_blur.png"] if save_maps else [])


_EXAMPLES = """\b
Examples (after the README's `degrade build --out out/sample` and the tiny training run):
  ssr-infer --checkpoint runs/tiny --input out/sample --out sr --save-maps
  ssr-infer --checkpoint runs/tiny --input out/sample --out sr-diffusion --method diffusion --steps 4
  ssr-infer --checkpoint runs/tiny/nbsr --input out/sample --out sr-fast --method nbsr-dkenet
"""


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
               epilog=_EXAMPLES)
@click.option("--checkpoint", type=click.Path(path_type=Path), required=True, metavar="RUN_DIR",
              help="Training run folder (kernel/, nbsr/, diffusion/ stages) or one stage folder "
                   "(its siblings are used). Each stage loads best.pt (best validation) when it "
                   "has one, else last.pt; the line 'weights' says which.")
@click.option("--input", "input_path", type=click.Path(path_type=Path, exists=True, file_okay=False),
              required=True, metavar="DIR_OR_SHARDS", help="Folder of images, or a shard set folder.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Output folder: <stem>.png per input at scale x its size.")
@click.option("--method", type=click.Choice(_METHODS), default="auto", show_default=True,
              help="auto = diffusion when its stage validated above bicubic, else svkr (the "
                   "choice and its reason are printed; a method whose stage validated below "
                   "bicubic gets a warning).")
@tile_options(what="Tile side in LR px; larger inputs are tiled, and depth and kernels are "
                   "estimated per tile, so keep tiles large when the depth cue is global, as the "
                   "prior's is")
@device_option(what="Torch device of the models")
@click.option("--depth", type=click.Choice(_DEPTHS), default=None,
              help="Depth provider used as DE [default: auto: MiDaS, then Depth Anything, when its "
                   "weights are on disk (the paper's DE), else prior, with a note that SVKR then "
                   "barely moves].")
@allow_download_option()
@click.option("--svkr-iterations", type=click.IntRange(min=0), default=None,
              help="SVKR iterations T [default: 3].")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Diffusion reverse steps [default: all of the pixel model's T; the latent "
                   "model's sample_steps, 50].")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the diffusion noise (same seed, same output).")
@click.option("--backbone", default=None, metavar="DIR|ORG/NAME",
              help="Where an ssr-latent run's backbone is on this machine [default: the folder or "
                   "hub id the run recorded]; its weights' sha256 must match the run's.")
@click.option("--save-maps", is_flag=True,
              help="Also write <stem>_nearness.png (0 far .. 1 near) and <stem>_blur.png (blur "
                   "sqrt(s1*s2) in HR px), each with a colour bar.")
@click.option("--overwrite", is_flag=True, help="Replace outputs that already exist in --out.")
@library_errors
def main(checkpoint: Path, input_path: Path, out: Path, method: str, tile: int, overlap: int,
         device: str, depth: str | None, allow_download: bool, svkr_iterations: int | None,
         steps: int | None, seed: int, backbone: str | None, save_maps: bool,
         overwrite: bool) -> None:
    """Super-resolve images with a trained SSR run (SVKR, DKENet+NBSR or diffusion).

    Writes OUT/<name>.png per input (x scale). Large inputs are cut into --tile LR px tiles
    spread evenly with at least --overlap px between neighbours; the bar shows tiles (or
    diffusion steps) of the current image with an ETA.
    """
    from tqdm import tqdm

    from ssr_models.infer import SRPipeline

    check_overlap(tile, overlap)
    options: dict[str, object] = {"tile": tile, "overlap": overlap, "seed": seed}
    if depth is not None:
        options["depth"] = depth
    if allow_download:
        options["allow_download"] = True
    if svkr_iterations is not None:
        options["svkr_iterations"] = svkr_iterations
    if steps is not None:
        options["steps"] = steps
    if backbone is not None:
        options["backbone"] = backbone
    pipeline = SRPipeline.from_checkpoint(checkpoint, method=method, device=device, **options)
    choice = pipeline.choice
    click.echo(f"ssr-infer: method {choice.method}: {choice.reason}", err=True)
    if choice.warning:
        click.echo(f"warning: {choice.warning}", err=True)
    click.echo(f"ssr-infer: weights {', '.join(pipeline.checkpoints.values())}", err=True)
    click.echo(f"ssr-infer: depth {pipeline.depth}", err=True)
    if pipeline.depth_note:
        click.echo(f"note: {pipeline.depth_note}", err=True)
    if (input_path / "manifest.json").is_file():
        count, items = _shard_inputs(input_path)
        kind = "shard set"
    else:
        loaders = _folder_inputs(input_path)
        count, items = len(loaders), ((k, load()) for k, load in loaders.items())
        kind = "folder"
    out.mkdir(parents=True, exist_ok=True)
    done = 0
    unit = "tile" if pipeline.method == "nbsr-dkenet" else "step"  # SVKR iteration, diffusion step
    with tqdm(total=count, unit="img", desc="ssr-infer", dynamic_ncols=True, position=0) as bar, \
            tqdm(total=0, unit=unit, dynamic_ncols=True, leave=False, position=1) as inner:
        for name, lr in items:
            existing = [n for n in _outputs(name, save_maps) if (out / n).exists()]
            if existing and not overwrite:
                raise ConfigError(f"{out / existing[0]} already exists; pass --overwrite to replace "
                                  f"it or choose another --out ({done} image(s) written so far)")
            inner.reset(total=None)
            _write_outputs(out, name, pipeline(lr, progress=_reporter(inner, name)), save_maps)
            done += 1
            bar.update(1)
    click.echo(f"ssr-infer: {done} image(s) from {kind} {input_path} -> {out} "
               f"(method {pipeline.method}, x{pipeline.scale}, tile {pipeline.tile}, "
               f"overlap {pipeline.overlap}, seed {seed})")


if __name__ == "__main__":
    main()
