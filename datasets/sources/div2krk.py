"""The ``div2krk`` source: KernelGAN's released DIV2KRK test set and its true kernels (eval only).

DIV2KRK (Bell-Kligler, Shocher and Irani, NeurIPS 2019) is the 100 DIV2K validation images,
each degraded by its own random anisotropic kernel, with that kernel released beside it. The
``div2krk`` recipe draws kernels from the same law but cannot regenerate these bytes (another
RNG; KernelGAN issue 33); this source reads the released files, so scores are on the exact
published set. Its LR images are already degraded: they are scored with ``ssr-eval`` and
refused by ``degrade build`` (``real_pairs = True``).

Layout of the release ``DIV2KRK_public.zip``, what was verified and where:

- Folders ``gt/`` (100 HR images), ``lr_x2/``, ``gt_k_x2/`` (11x11 kernels), ``lr_x4/``,
  ``gt_k_x4/`` (31x31 kernels): the README.txt shipped in the archive ("Zip file contains: gt:
  100 ground truth validation images from DIV2K, gt_k_x2: 100 11x11 random kernels, ...,
  gt_k_x4: 100 31x31 random kernels for scale factor 4"), as quoted in public repositories.
- File names ``gt/img_<n>_gt.png``, ``lr_x<s>/im_<n>.png``, ``gt_k_x<s>/kernel_<n>.mat``,
  n = 1..100: the authors' experiment loop in sefibk/KernelGAN history (``gt/img_%d_gt.png``,
  ``gt_k_x%d/kernel_%d.mat``), public DIV2KRK baseline scripts that read
  ``lr_x2/im_${n}.png`` with ``gt_k_x2/kernel_${n}.mat`` for n in 1..100, and a public
  renaming script over ``DIV2KRK_public/DIV2KRK/{gt,lr_x4}`` that splits these names at ``_``.
- The kernel is the .mat variable ``Kernel`` (float, K x K, summing to 1): those baseline
  scripts and a DAN evaluation script read ``scipy.io.loadmat(path)["Kernel"]`` from
  ``DIV2KRK/gt_k_x2`` and ``gt_k_x4``; KernelGAN's own ``save_final_kernel`` writes its
  estimates under the same name.
- Download: ``http://www.wisdom.weizmann.ac.il/~vision/kernelgan/DIV2KRK_public.zip``, the
  link in sefibk/KernelGAN's README. No checksum is published; the first download records one
  (manifests/datasets/div2krk.yaml).

Not verified (no copy of the files was at hand): whether the archive's top folder is
``DIV2KRK/`` (the catalog's ``provides``: a DAN evaluation script reads ``DIV2KRK/gt_k_x4``,
and the renaming script's ``DIV2KRK_public/DIV2KRK/`` looks like the archive extracted into a
folder of its own name) or ``DIV2KRK_public/DIV2KRK/``, so both are accepted, as is ROOT being
the folder that holds ``gt/`` itself; the HR sizes (``load_pair`` accepts an HR within s pixels of s x LR,
and the tables crop HR at the bottom/right to s x LR, as for DRealSR).

Splits ``x4`` (default) and ``x2``; the image id is the LR stem (``im_1`` .. ``im_100``), so
SR outputs named like the LR inputs match ``ssr-eval run --method NAME=DIR``. All 100 triples
(HR, LR, kernel) must be present. ``gt/`` is shared by both scales, so an item carries its
split's scale (:class:`Div2krkItem`). :func:`load_kernel` reads one kernel: only its header is
read before the shape is checked (a compressed .mat cannot expand into a huge array), and
scipy's MATLAB reader never runs code or unpickles.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssr_core.errors import ConfigError, InputError, MissingAssetError

from .base import LoadedImage, SourceItem, load_image_only, resolve_split
from .layout import check_expected, download_hint, files_in, rel_to, require_root

NAME = "div2krk"
URL = "http://www.wisdom.weizmann.ac.il/~vision/kernelgan/DIV2KRK_public.zip"
#: Images in the release, numbered 1..COUNT in every folder.
COUNT = 100
#: The .mat variable holding a kernel (see the module docstring).
KERNEL_VAR = "Kernel"
#: Side of the released kernels per split (the release README: 11x11 at x2, 31x31 at x4).
KERNEL_SIZE = {"x2": 11, "x4": 31}
#: How far a kernel's sum may be from 1: the generator normalizes in float64; a float32 copy
#: is within ~1e-6; an unnormalized or cropped kernel is off by far more.
SUM_TOLERANCE = 1e-3
#: Folders under --root that may hold ``gt/`` (the archive's top folder is not verified).
CANDIDATES = ("DIV2KRK", "DIV2KRK_public/DIV2KRK", "DIV2KRK_public", ".")
_MAX_MAT_BYTES = 1 << 20  # a 31x31 float64 kernel is under 10 KB
_GT_NAME = re.compile(r"^img_(\d+)_gt\.png$")


@dataclass(frozen=True)
class Div2krkItem(SourceItem):
    """A listed DIV2KRK image: the HR side, and the scale of the split it was listed for.

    Attributes:
        scale: 2 or 4; picks ``lr_x<s>/`` and ``gt_k_x<s>/`` (``gt/`` serves both splits).
    """

    scale: int = 4

    @property
    def number(self) -> int:
        """Return n of ``img_<n>_gt.png``."""
        match = _GT_NAME.match(Path(self.path).name)
        if match is None:
            raise InputError(self.path, "not a DIV2KRK HR name img_<n>_gt.png")
        return int(match.group(1))

    @property
    def base(self) -> Path:
        """Return the folder holding ``gt/``, ``lr_x<s>/`` and ``gt_k_x<s>/``."""
        return Path(self.path).parent.parent


def lr_path(item: Div2krkItem) -> Path:
    """Return the LR file of an item: ``lr_x<s>/im_<n>.png``."""
    return item.base / f"lr_x{item.scale}" / f"im_{item.number}.png"


def kernel_path(item: Div2krkItem) -> Path:
    """Return the true-kernel file of an item: ``gt_k_x<s>/kernel_<n>.mat``."""
    return item.base / f"gt_k_x{item.scale}" / f"kernel_{item.number}.mat"


def _as_div2krk(item: SourceItem) -> Div2krkItem:
    if not isinstance(item, Div2krkItem):
        raise ConfigError(f"{item.path}: not an item listed by the {NAME} source "
                          f"(got {type(item).__name__} of source {item.source!r})")
    return item


def find_base(root: Path, split: str) -> Path:
    """Return the folder under ``root`` that holds ``gt/``, ``lr_x<s>/`` and ``gt_k_x<s>/``.

    Raises:
        MissingAssetError: None of :data:`CANDIDATES` holds the three folders.
    """
    scale = split[1:]
    needed = ("gt", f"lr_x{scale}", f"gt_k_x{scale}")
    for rel in CANDIDATES:
        base = root / rel
        if all((base / f).is_dir() for f in needed):
            return base
    partial = next((root / c for c in CANDIDATES if (root / c / "gt").is_dir()), None)
    if partial is not None:  # e.g. a copy holding one scale only: name the absent folders
        absent = [f"{f}/" for f in needed if not (partial / f).is_dir()]
        raise MissingAssetError(f"folder(s) {', '.join(absent)} of DIV2KRK (beside gt/)",
                                partial, url=URL, hint=download_hint(NAME, root))
    looked = ", ".join(str(root / c / "gt") for c in CANDIDATES)
    raise MissingAssetError(f"folders gt/, lr_x{scale}/ and gt_k_x{scale}/ of DIV2KRK",
                            root / CANDIDATES[0], url=URL,
                            hint=f"looked for {looked}; {download_hint(NAME, root)}, or extract "
                                 "the archive there yourself")


class Div2krkSource:
    """DIV2KRK test pairs and their released kernels; listing and ``load_item`` give the HR side."""

    name = NAME
    description = ("KernelGAN's released DIV2KRK: DIV2K valid HR, LR and true kernels "
                   "(evaluation only, not a build source)")
    splits = ("x4", "x2")
    real_pairs = True

    def list_items(self, root: Path | None, split: str | None = None) -> list[SourceItem]:
        """List the 100 HR images, checking that every LR image and kernel of the split is there.

        Raises:
            ConfigError: No root, an unknown split, or files that are not part of DIV2KRK.
            MissingAssetError: The folders are absent, or some of the 100 files of a folder.
        """
        root = require_root(NAME, root)
        split = resolve_split(self, split)
        base = find_base(root, split)
        s = split[1:]
        numbers = range(1, COUNT + 1)
        for folder, names, suffix, what in (
                ("gt", [f"img_{n}_gt.png" for n in numbers], ".png", "DIV2KRK HR images"),
                (f"lr_x{s}", [f"im_{n}.png" for n in numbers], ".png", f"DIV2KRK x{s} LR images"),
                (f"gt_k_x{s}", [f"kernel_{n}.mat" for n in numbers], ".mat",
                 f"DIV2KRK x{s} kernels")):
            check_expected(NAME, root, base / folder, files_in(base / folder, (suffix,)), names,
                           what)
        return [Div2krkItem(NAME, f"im_{n}", str(base / "gt" / f"img_{n}_gt.png"), None,
                            rel_to(root, base / "gt" / f"img_{n}_gt.png"), scale=int(s))
                for n in numbers]

    def load_item(self, item: SourceItem) -> LoadedImage:
        """Decode the HR side (uint8 RGB, no depth).

        Raises:
            InputError: The file is unreadable or not an image.
        """
        return load_image_only(item)

    def lr_partner(self, item: SourceItem) -> Path:
        """Return the LR file of a listed item (``lr_x<s>/im_<n>.png``).

        Raises:
            InputError: It is absent.
        """
        path = lr_path(_as_div2krk(item))
        if not path.is_file():
            raise InputError(path, f"the LR partner of {Path(item.path).name} is absent")
        return path

    def load_pair(self, item: SourceItem) -> tuple[np.ndarray, np.ndarray]:
        """Decode HR and LR, uint8 RGB (H, W, 3) and (h, w, 3).

        Raises:
            InputError: Unreadable files, or an LR size that is not HR / s within s pixels.
        """
        from ..imageio import read_image

        item = _as_div2krk(item)
        lr_file = self.lr_partner(item)
        hr, lr = read_image(item.path).rgb, read_image(lr_file).rgb
        s = item.scale
        if any(abs(h - s * w) >= s for h, w in zip(hr.shape[:2], lr.shape[:2], strict=True)):
            raise InputError(lr_file, f"LR {lr.shape[1]}x{lr.shape[0]} is not HR "
                                      f"{hr.shape[1]}x{hr.shape[0]} / {s}")
        return hr, lr

    def kernel_path(self, item: SourceItem) -> Path:
        """Return the true-kernel file of a listed item (:func:`kernel_path`)."""
        return kernel_path(_as_div2krk(item))

    def kernel_geometry(self, split: str) -> tuple[int, float, int]:
        """Return (K, delta, s) of a split's released kernels: delta = (s - 1) / 2 HR px.

        The generator puts the kernel's mean at tap ``K//2 + 0.5 (s - K%2)`` (gen_kernel's MU,
        and kernel_shift moves the centre of mass there), i.e. R + (s - 1)/2 for odd K: the
        centre of the s x s block under an LR pixel sampled at ``s*i``, our "centered" delta.
        The x4 kernel of two x2 passes lands there too: 2 (5 + 1/2) + 5 + 1/2 = 15 + 3/2.
        """
        split = resolve_split(self, split)
        s = int(split[1:])
        return KERNEL_SIZE[split], (s - 1) / 2, s

    def true_kernel(self, item: SourceItem) -> np.ndarray:
        """Return the released kernel of a listed item, float64 (K, K) summing to 1 (:func:`load_kernel`)."""
        item = _as_div2krk(item)
        return load_kernel(kernel_path(item), KERNEL_SIZE[f"x{item.scale}"])


def _mat_errors() -> tuple[type[BaseException], ...]:
    """What scipy's MATLAB reader raises on a file that is not a readable v4-v7 .mat.

    NotImplementedError is scipy's answer to a v7.3 file (HDF5 inside: "use HDF reader"), which
    the release does not use; MatReadError, ValueError and TypeError come from a corrupt header
    or body. All become an InputError naming the file.
    """
    import scipy.io

    return (ValueError, TypeError, NotImplementedError, scipy.io.matlab.MatReadError)


def load_kernel(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read a DIV2KRK kernel file: variable ``Kernel`` of a MATLAB v5 .mat, as float64 (K, K).

    Tap ``[a, b]`` weighs HR row offset ``a - K//2`` and column offset ``b - K//2`` of the
    release's correlation (``scipy.ndimage.correlate``, then every s-th pixel), so the taps are
    used as they are, never flipped. Taps are not required to be >= 0: the generator's
    sub-pixel spline shift may leave tiny negative ones.

    Args:
        path: ``gt_k_x<s>/kernel_<n>.mat``.
        size: The side K the file must hold (:data:`KERNEL_SIZE`), or None for any odd side.

    Raises:
        InputError: Unreadable or not a MATLAB v5 file, no ``Kernel`` variable, a shape that is
            not (K, K) with K odd (or not ``size``), non-numeric or non-finite taps, or a sum
            further than :data:`SUM_TOLERANCE` from 1; the message names the file.
    """
    import scipy.io

    path = Path(path)
    try:
        nbytes = path.stat().st_size
        if nbytes > _MAX_MAT_BYTES:
            raise InputError(path, f"{nbytes} bytes: a DIV2KRK kernel file is under 10 KB")
        header = scipy.io.whosmat(path)
    except InputError:
        raise
    except OSError as exc:
        raise InputError(path, f"cannot read the kernel file: {exc.strerror or exc}") from exc
    except _mat_errors() as exc:
        raise InputError(path, f"not a MATLAB v5 .mat kernel file ({exc})") from exc
    shapes = {name: (shape, cls) for name, shape, cls in header}
    if KERNEL_VAR not in shapes:
        raise InputError(path, f"no variable {KERNEL_VAR!r} (the file holds "
                               f"{sorted(shapes) or 'no variables'})")
    shape, cls = shapes[KERNEL_VAR]
    if cls not in ("double", "single"):
        raise InputError(path, f"{KERNEL_VAR} is of MATLAB class {cls!r}; expected double or single")
    want = f"({size}, {size})" if size is not None else "(K, K) with K odd"
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] % 2 == 0 or (
            size is not None and tuple(shape) != (size, size)):
        raise InputError(path, f"{KERNEL_VAR} has shape {tuple(shape)}; expected {want}")
    try:
        k = scipy.io.loadmat(path, variable_names=[KERNEL_VAR])[KERNEL_VAR]
    except _mat_errors() as exc:
        raise InputError(path, f"cannot decode {KERNEL_VAR} ({exc})") from exc
    k = np.asarray(k)
    if k.shape != tuple(shape) or not np.issubdtype(k.dtype, np.floating):
        raise InputError(path, f"{KERNEL_VAR} decoded as {k.dtype} {k.shape}; expected {want} floats")
    k = k.astype(np.float64)
    if not np.isfinite(k).all():
        raise InputError(path, f"{KERNEL_VAR} holds {int((~np.isfinite(k)).sum())} non-finite taps")
    total = float(k.sum())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise InputError(path, f"{KERNEL_VAR} sums to {total:.6g}, not 1 (tolerance "
                               f"{SUM_TOLERANCE:g}): not a normalized kernel")
    return k


SOURCE = Div2krkSource()
