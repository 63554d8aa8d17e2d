"""Throughput of the input side of a build: one section per concern, run by name.

Sections (each a function ``bench_<name>(args)``; add new ones to ``SECTIONS``):

- ``depth``: images/s of the depth providers on CPU: ``prior`` on DIV2K-sized photographs, and a
  randomly initialized model with the architecture of ``Intel/dpt-hybrid-midas`` (ViT-hybrid
  base, BiT-R50 stem, 384x384 input; built from its config, no weights are downloaded): the
  model forward alone at its input resolution, and the provider's full path (image processor,
  forward, bicubic resize back to HR, percentile normalization) on DIV2K-sized photographs.
  Batch 1 and 4, one thread and all threads.

    python bench/sources.py depth [--images 8] [--threads 1 0]    (0 = all cores)

- ``readers``: the readers of every source in ``ssr_datasets.sources`` on CPU, one thread:
  ``list_items`` (ms, default split, full file counts) and ``load_item`` (images/s and MB/s of
  decoded RGB; ``load_pair`` HR + LR for drealsr) on ``--images`` real files per source at the
  data sets' sizes, written into a temporary layout (photo-like PNGs: the scikit-image photos
  resized, with sigma 3 grain so that they compress like photographs), the other files of
  each listing as empty placeholders. The depth share is 1 - (RGB decode + hash) / load.
  Set5, Set14 and BSDS100 are read from real copies only when ``--bench-data DIR`` names a
  folder holding ``set5/``, ``set14/`` and ``bsd100/`` (``img_001.png`` ...); without it (the
  default) their rows are skipped and say so. Nothing outside the repository is read implicitly.

    python bench/sources.py readers [--images 3] [--repeats 2] [--bench-data DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

if TYPE_CHECKING:
    from ssr_datasets.sources import SourceItem

DIV2K = (1356, 2040)  # (H, W) of a DIV2K validation photograph


# --- depth ------------------------------------------------------------------------------------


def dpt_hybrid_midas_config():  # -> transformers.DPTConfig
    """Return the DPTConfig of Intel/dpt-hybrid-midas (MiDaS v3.0 DPT-Hybrid), from its config.json."""
    from transformers import DPTConfig

    return DPTConfig(
        is_hybrid=True, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, image_size=384, patch_size=16, readout_type="project",
        backbone_out_indices=[2, 5, 8, 11], neck_hidden_sizes=[256, 512, 768, 768],
        reassemble_factors=[1, 1, 1, 0.5], fusion_hidden_size=256, head_in_index=-1,
        backbone_featmap_shape=[1, 1024, 24, 24], neck_ignore_stages=[0, 1],
        use_auxiliary_head=False,
        backbone_config={"global_padding": "same", "layer_type": "bottleneck", "depths": [3, 4, 9],
                         "out_features": ["stage1", "stage2", "stage3"],
                         "embedding_dynamic_padding": True})


def _photos(n: int) -> list[np.ndarray]:
    """Return n DIV2K-sized RGB photographs made from the scikit-image sample photos."""
    from ssr_datasets.sources import list_items, load_item

    items = list_items("sample")
    out = []
    for i in range(n):
        rgb = load_item(items[i % len(items)]).rgb
        out.append(cv2.resize(rgb[:, ::-1] if (i // len(items)) % 2 else rgb, DIV2K[::-1],
                              interpolation=cv2.INTER_CUBIC))
    return out


def _rate(fn: Callable[[], object], n_images: int, repeats: int) -> float:
    """Return images/s of fn (which handles n_images), best of `repeats` after one warm-up."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n_images / best


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_depth(args: argparse.Namespace) -> None:
    """Print images/s for the prior and a DPT-Hybrid-sized model, batch 1/4, 1/all threads."""
    from transformers import DPTForDepthEstimation, DPTImageProcessorPil

    from degrade.depth.learned import LearnedDepth, relative_to_nearness
    from degrade.depth.prior import prior_nearness

    photos = _photos(args.images)
    threads = [t or os.cpu_count() or 1 for t in args.threads]
    torch.manual_seed(0)
    t = time.perf_counter()
    model = DPTForDepthEstimation(dpt_hybrid_midas_config()).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"DPT-Hybrid (random init): {n_params / 1e6:.1f} M parameters, built in "
          f"{time.perf_counter() - t:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "Intel--dpt-hybrid-midas"
        model.save_pretrained(folder)
        # Intel/dpt-hybrid-midas's preprocessor: 384x384, mean = std = 0.5
        DPTImageProcessorPil(size={"height": 384, "width": 384}, image_mean=[0.5] * 3,
                             image_std=[0.5] * 3).save_pretrained(folder)
        t = time.perf_counter()
        learned = LearnedDepth("Intel/dpt-hybrid-midas", str(folder), batch_size=1)
        learned.predict(photos[:1])
        print(f"load + first image: {time.perf_counter() - t:.1f} s")
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            cv2.setNumThreads(n_threads)
            rate = _rate(lambda: [prior_nearness(p) for p in photos], len(photos), args.repeats)
            print(f"prior, {DIV2K[1]}x{DIV2K[0]}, {n_threads} thread(s): {rate:.2f} images/s")
            for batch in (1, 4):
                x = torch.rand(batch, 3, 384, 384)

                def forward(x: torch.Tensor = x) -> None:
                    with torch.inference_mode():
                        learned._model(pixel_values=x)

                rate = _rate(forward, batch, args.repeats)
                print(f"dpt-hybrid forward 384x384, batch {batch}, {n_threads} thread(s): "
                      f"{rate:.2f} images/s")
                learned.batch_size = batch
                n = max(batch, len(photos) // batch * batch)

                def full(n: int = n) -> None:
                    for pred in learned.predict(photos[:n]):
                        relative_to_nearness(pred)

                rate = _rate(full, n, max(1, args.repeats - 1))
                print(f"midas provider (processor + forward + resize + normalize) "
                      f"{DIV2K[1]}x{DIV2K[0]}, batch {batch}, {n_threads} thread(s): "
                      f"{rate:.2f} images/s")


# --- readers ----------------------------------------------------------------------------------

# Sizes (H, W) of the data sets' images; DRealSR's HR size is assumed DIV2K-like (it varies).
URBAN100 = (768, 1024)
#: --bench-data's sub-folder per benchmark source (the real images are linked from there)
BENCH_FOLDERS = {"set5": "set5", "set14": "set14", "bsds100": "bsd100"}
CITYSCAPES = (1024, 2048)
MIDDLEBURY = (1988, 2880)  # a typical 2014 "perfect" im0.png
NYU = (480, 640)
CITIES = ("aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt",
          "hamburg", "hanover", "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart",
          "tubingen", "ulm", "weimar", "zurich")  # the 18 Cityscapes train cities
# Middlebury's Adirondack-perfect calib.txt (numbers only matter for the arithmetic's cost).
MIDDLEBURY_CALIB = ("cam0=[4161.221 0 1445.577; 0 4161.221 984.686; 0 0 1]\n"
                    "cam1=[4161.221 0 1654.636; 0 4161.221 984.686; 0 0 1]\n"
                    "doffs=209.059\nbaseline=176.252\nwidth=2880\nheight=1988\nndisp=290\n")
CITYSCAPES_CAMERA = {"extrinsic": {"baseline": 0.209313, "pitch": 0.038, "roll": 0.0, "x": 1.7,
                                   "y": 0.1, "yaw": -0.0195, "z": 1.18},
                     "intrinsic": {"fx": 2262.52, "fy": 2265.3, "u0": 1096.98, "v0": 513.137}}


def _photo(k: int, hw: tuple[int, int]) -> np.ndarray:
    """Return the k-th photo-like uint8 (H, W, 3) RGB: a sample photo resized, plus grain."""
    from ssr_datasets.sources import list_items, load_item

    items = list_items("sample")
    rgb = load_item(items[k % len(items)]).rgb
    rgb = cv2.resize(rgb, hw[::-1], interpolation=cv2.INTER_CUBIC).astype(np.float32)
    # Resized photos are too smooth to compress like photographs: add sensor-like grain.
    rgb += np.random.default_rng(k).normal(0.0, 3.0, rgb.shape).astype(np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def _smooth(k: int, hw: tuple[int, int], lo: float, hi: float) -> np.ndarray:
    """Return a smooth float32 (H, W) field in [lo, hi] (a stand-in for disparity or depth)."""
    coarse = np.random.default_rng(100 + k).uniform(lo, hi, (6, 8)).astype(np.float32)
    return cv2.resize(coarse, hw[::-1], interpolation=cv2.INTER_CUBIC).clip(lo, hi)


def _png(path: Path, img: np.ndarray) -> None:
    """Write uint8 RGB or uint16 gray as PNG at zlib level 6 (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(img[..., ::-1] if img.ndim == 3 else img)
    if not cv2.imwrite(str(path), arr, [cv2.IMWRITE_PNG_COMPRESSION, 6]):
        raise OSError(f"cannot write {path}")


def _touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def _numbered(root: Path, folder: str, first: int, last: int, digits: int, n: int) -> Path:
    """DIV2K/Flickr2K layout: the first n numbered PNGs real (DIV2K-sized), the rest empty."""
    names = [f"{i:0{digits}d}.png" for i in range(first, last + 1)]
    _touch(root / folder, names[n:])
    for k, name in enumerate(names[:n]):
        _png(root / folder / name, _photo(k, DIV2K))
    return root


def _bench_set(root: Path, n: int, *, folder: str, images: Path, count: int) -> Path:
    """Set5/Set14/BSDS100: link all ``count`` real images ``images/img_NNN.png`` (n unused)."""
    (root / folder).mkdir(parents=True)
    for i in range(1, count + 1):
        (root / folder / f"img_{i:03d}.png").symlink_to(images / f"img_{i:03d}.png")
    return root


def _urban100(root: Path, n: int) -> Path:
    names = [f"img{i:03d}.png" for i in range(1, 101)]
    _touch(root / "Urban100", names[n:])
    for k, name in enumerate(names[:n]):
        _png(root / "Urban100" / name, _photo(k, URBAN100))
    return root


def _nyuv2(root: Path, n: int) -> Path:
    """The labeled .mat's HDF5 layout, chunked per image so unwritten frames take no disk."""
    import h5py

    from ssr_datasets.sources.nyuv2 import MAT_NAME, N_IMAGES

    (h, w) = NYU
    root.mkdir(parents=True)
    # Uncompressed, unlike MATLAB's v7.3 writer (deflate): reads here are a lower bound on cost.
    with h5py.File(root / MAT_NAME, "w") as f:
        images = f.create_dataset("images", (N_IMAGES, 3, w, h), np.uint8, chunks=(1, 3, w, h))
        depths = f.create_dataset("depths", (N_IMAGES, w, h), np.float32, chunks=(1, w, h))
        for k in range(n):
            images[k] = _photo(k, NYU).transpose(2, 1, 0)
            depths[k] = _smooth(k, NYU, 0.7, 10.0).T  # the labeled set's depth is in-painted
    return root


def _cityscapes(root: Path, n: int) -> Path:
    """The train split's 2975 names over 18 cities; the first n with disparity and camera."""
    from ssr_datasets.sources.cityscapes import COUNTS

    for k in range(COUNTS["train"]):
        city = CITIES[k * len(CITIES) // COUNTS["train"]]
        stem = f"{city}_{k:06d}_000019"
        image = root / "leftImg8bit" / "train" / city / f"{stem}_leftImg8bit.png"
        if k >= n:
            image.parent.mkdir(parents=True, exist_ok=True)
            image.touch()
            continue
        _png(image, _photo(k, CITYSCAPES))
        disp = (_smooth(k, CITYSCAPES, 2.0, 120.0) * 256 + 1).astype(np.uint16)
        disp[:, :200] = 0  # no stereo match at the left border, nor on the ego car
        disp[-180:] = 0
        _png(root / "disparity" / "train" / city / f"{stem}_disparity.png", disp)
        camera = root / "camera" / "train" / city / f"{stem}_camera.json"
        camera.parent.mkdir(parents=True, exist_ok=True)
        camera.write_text(json.dumps(CITYSCAPES_CAMERA))
    return root


def _middlebury(root: Path, n: int) -> Path:
    """All 23 scene folders; the first n with real files, the others empty placeholders."""
    from ssr_datasets.sources.middlebury import FILES, SCENES

    for k, scene in enumerate(sorted(SCENES)):
        folder = root / f"{scene}-perfect"
        if k >= n:
            _touch(folder, list(FILES))
            continue
        _png(folder / "im0.png", _photo(k, MIDDLEBURY))
        disp = _smooth(k, MIDDLEBURY, 30.0, 280.0)
        disp[:, :250] = np.inf  # occluded: no match in the right view
        h, w = MIDDLEBURY
        # PFM: header, then little-endian float32 rows bottom to top.
        (folder / "disp0.pfm").write_bytes(f"Pf\n{w} {h}\n-1.0\n".encode("ascii")
                                           + disp[::-1].astype("<f4").tobytes())
        (folder / "calib.txt").write_text(MIDDLEBURY_CALIB)
    return root


def _drealsr(root: Path, n: int) -> Path:
    base = root / "DRealSR" / "Test_x4"
    for k in range(n):
        hr = _photo(k, DIV2K)
        _png(base / "test_HR" / f"DSC_{1000 + k}_x1.png", hr)
        lr = cv2.resize(hr, (DIV2K[1] // 4, DIV2K[0] // 4), interpolation=cv2.INTER_AREA)
        _png(base / "test_LR" / f"DSC_{1000 + k}_x4.png", lr)
    return root


def _folder(root: Path, n: int) -> Path:
    """DIV2K-sized photos, each with a 16-bit millimetre ``_depth.png`` (some pixels unknown)."""
    for k in range(n):
        _png(root / "photos" / f"photo_{k:02d}.png", _photo(k, DIV2K))
        depth_mm = (_smooth(k, DIV2K, 0.5, 20.0) * 1000).astype(np.uint16)
        depth_mm[:100, :] = 0  # sky: no depth
        _png(root / "photos" / f"photo_{k:02d}_depth.png", depth_mm)
    return root


#: Source -> builder of its temporary layout (root, n_real) -> root; None: no root (sample).
#: set5, set14 and bsds100 are added by ``bench_readers`` when --bench-data is given.
_LAYOUTS: dict[str, Callable[[Path, int], Path] | None] = {
    "sample": None,
    "folder": _folder,
    "div2k": lambda r, n: _numbered(r, "DIV2K_train_HR", 1, 800, 4, n),
    "flickr2k": lambda r, n: _numbered(r, "Flickr2K/Flickr2K_HR", 1, 2650, 6, n),
    "urban100": _urban100,
    "drealsr": _drealsr,
    "nyuv2": _nyuv2,
    "cityscapes": _cityscapes,
    "middlebury": _middlebury,
}


def _rgb_only(item: SourceItem) -> None:
    """Decode and hash an item's RGB the way its source does, without its depth."""
    from ssr_datasets.imageio import pixel_sha256, read_image
    from ssr_datasets.sources.nyuv2 import index_of

    if item.source == "nyuv2":  # RGB and depth come out of one HDF5 file
        import h5py

        with h5py.File(item.path, "r") as f:
            rgb = np.ascontiguousarray(np.asarray(f["images"][index_of(item.image_id)])
                                       .transpose(2, 1, 0))
    else:
        rgb = read_image(item.path).rgb
    pixel_sha256(rgb)


def _size(shapes: list[tuple[int, ...]]) -> str:
    """Return 'WxH' when all images share a size, else the range of megapixels."""
    if len(set(shapes)) == 1:
        return f"{shapes[0][1]}x{shapes[0][0]}"
    mp = [s[0] * s[1] / 1e6 for s in shapes]
    return f"mixed {min(mp):.2f}-{max(mp):.2f} MP"


def _load(name: str, items: list[SourceItem]) -> list[tuple[np.ndarray, ...]]:
    """Decode items as their source does: (rgb, depth_m or None); drealsr: (hr, lr) pairs."""
    from ssr_datasets.sources import load_item
    from ssr_datasets.sources.drealsr import load_pair

    if name == "drealsr":  # real pairs: the evaluation reads both sides
        return [load_pair(it) for it in items]
    return [(im.rgb, im.depth_m) for im in map(load_item, items)]


def _reader_row(name: str, root: Path | None, n: int, repeats: int) -> tuple[str, ...]:
    """Time one source's listing and loading; return its table row (without setup time)."""
    from ssr_datasets.sources import list_items

    list_items(name, root)  # warm-up: imports the source module lazily
    list_ms = 1e3 * min(_timed(partial(list_items, name, root)) for _ in range(repeats))
    items = list_items(name, root)
    # sample: all five photos, so that motorcycle (with depth) is among them
    chosen = items if name == "sample" else items[:n]
    loaded = _load(name, chosen)
    load_s = min(_timed(partial(_load, name, chosen)) for _ in range(repeats))
    has_depth = name != "drealsr" and any(d is not None for _, d in loaded)
    arrays = [a for pair in loaded for a in pair] if name == "drealsr" else [r for r, _ in loaded]
    mb = sum(a.nbytes for a in arrays) / 1e6
    share = "-"
    if has_depth:
        rgb_s = min(_timed(lambda: [_rgb_only(it) for it in chosen]) for _ in range(repeats))
        share = f"{max(0.0, 1 - rgb_s / load_s):.0%}"
    # nyuv2's items share one .mat file: no per-image file size
    file_mb = "-" if name == "nyuv2" else \
        f"{sum(Path(it.path).stat().st_size for it in chosen) / len(chosen) / 1e6:.2f}"
    size = _size([pair[0].shape for pair in loaded]) + (" (+LR x4)" if name == "drealsr" else "")
    return (name, size, f"{len(chosen)}", file_mb, f"{len(items)}", f"{list_ms:.1f}",
            f"{len(chosen) / load_s:.2f}", f"{mb / load_s:.1f}", "yes" if has_depth else "no",
            share)


def bench_readers(args: argparse.Namespace) -> None:
    """Print, per source, list_items ms and load_item images/s and MB/s of decoded RGB."""
    from ssr_datasets.sources import SOURCE_NAMES

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    layouts = dict(_LAYOUTS)
    if args.bench_data is not None:
        for name, (folder, count) in {"set5": ("Set5", 5), "set14": ("Set14", 14),
                                      "bsds100": ("BSDS100", 100)}.items():
            images = args.bench_data / BENCH_FOLDERS[name]
            layouts[name] = partial(_bench_set, folder=folder, images=images, count=count)
    rows, skipped = [], [name for name in SOURCE_NAMES if name not in layouts]
    with tempfile.TemporaryDirectory() as tmp:
        for name in SOURCE_NAMES:
            if name in skipped:
                continue
            t = time.perf_counter()
            build = layouts[name]
            root = None if build is None else build(Path(tmp) / name, args.images)
            setup_s = time.perf_counter() - t
            rows.append((*_reader_row(name, root, args.images, args.repeats), f"{setup_s:.1f}"))
    head = ("source", "image size (WxH)", "n", "file MB", "listed", "list ms", "images/s",
            "RGB MB/s", "depth", "depth share", "setup s")
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
    print(f"readers, 1 thread, best of {args.repeats} (load: the n images in turn; nyuv2 "
          "uncompressed HDF5; drealsr = load_pair, HR + LR bytes)")
    for row in (head, *rows):
        print("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    if skipped:
        print(f"skipped {', '.join(skipped)}: give --bench-data DIR (a folder holding set5/, "
              "set14/ and bsd100/ with img_001.png ...) to read real copies")


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {
    "depth": bench_depth, "readers": bench_readers}
#: --images when not given, per section.
DEFAULT_IMAGES = {"depth": 8, "readers": 3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {list(SECTIONS)} (default: all)")
    parser.add_argument("--images", type=int, default=None,
                        help=f"photographs per measurement (default per section: {DEFAULT_IMAGES})")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 0],
                        help="torch/OpenCV thread counts to try; 0 = all cores")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    parser.add_argument("--bench-data", type=Path, default=None, metavar="DIR",
                        help="readers: folder with set5/, set14/, bsd100/ (img_001.png ...) of real "
                             "benchmark images; default: none (those sources are skipped)")
    args = parser.parse_args()
    if args.bench_data is not None:
        args.bench_data = args.bench_data.resolve()
        absent = [f for f in BENCH_FOLDERS.values() if not (args.bench_data / f).is_dir()]
        if absent:
            parser.error(f"--bench-data {args.bench_data}: no {', '.join(absent)} folder there "
                         "(expected set5/, set14/ and bsd100/ holding img_001.png ...)")
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    print("command:", shlex.join(["python", *sys.argv]), f"(cores: {os.cpu_count()}, "
          f"torch {torch.__version__})")
    for name in args.sections or SECTIONS:
        SECTIONS[name](argparse.Namespace(**{**vars(args),
                                             "images": args.images or DEFAULT_IMAGES[name]}))


if __name__ == "__main__":
    main()
