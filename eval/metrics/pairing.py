"""Pair the images to score: SR outputs with their ground truth, by file stem or sample key.

The two sides of ``ssr-eval score`` (``gt``, ``pred``) are each a folder of images or a shard
set (a folder holding the ``manifest.json`` of ``degrade build``):

- folder of images: the files with an image suffix (``IMAGE_SUFFIXES``, any case) directly in
  it (not in subfolders: an SR method's output folder is flat, and other runs kept beside it must
  not leak in; names starting with ``.`` are left out), matched by file stem (``baby.png`` <->
  ``baby.jpg``); two files with one stem on a side (``a.png`` and ``a.jpg``) are refused as
  ambiguous.
- ``gt`` a shard set: the ground truth is the HR of each sample; ``pred`` is a folder of SR
  outputs named after the sample keys (``{key}.png``); the set's scale is returned (the default
  border crop).
- ``pred`` a shard set without ``gt``: the LR images of the set, for no-reference metrics (how
  degraded is this test set). With ``gt`` it is refused (an LR is not an SR output).
- ``pred`` a folder without ``gt``: its images, for no-reference metrics.

Only names, manifests and image headers are read here; the returned ``pairs`` decodes lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ssr_core.errors import ConfigError
from ssr_datasets.formats import IMAGE_SUFFIXES

from .scoring import ImagePair

MANIFEST = "manifest.json"
_SHOWN = 8  # names listed in a message before "... and N more"


@dataclass(frozen=True)
class ScoreInputs:
    """Matched inputs: how to read them, how many, the shard set's scale, a warning to show.

    Attributes:
        describe: One line saying what is scored against what.
        count: Number of pairs ``pairs()`` yields.
        scale: The ``gt`` (or LR ``pred``) shard set's recipe scale, else None.
        pairs: Yields the pairs in a deterministic order, decoding as it goes.
        warning: Set when ``allow_missing`` left images out (their counts), else None.
    """

    describe: str
    count: int
    scale: int | None
    pairs: Callable[[], Iterator[ImagePair]]
    warning: str | None = None


def is_shard_set(path: Path) -> bool:
    """Return True when ``path`` holds a shard set's manifest."""
    return (path / MANIFEST).is_file()


def list_images(folder: Path) -> dict[str, Path]:
    """Return stem -> file for the images directly in ``folder``, sorted by file name.

    Raises:
        ConfigError: two images share a stem (named), or the folder holds no image.
    """
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


def match_inputs(gt: Path | None, pred: Path, allow_missing: bool = False) -> ScoreInputs:
    """Pair ``pred`` with ``gt`` by stem / sample key (see the module docstring for the cases).

    Args:
        gt: Ground truth (folder or shard set), or None for no-reference scoring.
        pred: Images to score (folder; or, without ``gt``, a shard set whose LR is rated).
        allow_missing: Score the names on both sides instead of refusing names on one side
            only; ``warning`` then counts what was left out.

    Raises:
        ConfigError: ``pred`` a shard set with ``gt``; names on one side only (both lists, unless
            ``allow_missing``); no common name; ambiguous stems; an empty folder; images of
            different sizes (both files named, from their headers).
        InputError: an unreadable manifest (from ``ssr_datasets.manifest``).
    """
    if gt is None:
        return _shard_lr(pred) if is_shard_set(pred) else _folder_alone(pred)
    if is_shard_set(pred):
        raise ConfigError(f"--pred {pred} is a shard set: that means its LR images, rated by "
                          "no-reference metrics without --gt; to score SR outputs, give --pred "
                          "the folder of outputs and --gt the shard set")
    pred_files = list_images(pred)
    gt_items, scale = _shard_keys(gt) if is_shard_set(gt) else (list_images(gt), None)
    common, warning = _common(gt, gt_items, pred, pred_files, allow_missing)
    if scale is None:
        return _folder_pairs(gt, {s: gt_items[s] for s in common}, pred, pred_files, warning)
    return _shard_hr(gt, gt_items, scale, pred, pred_files, common, warning)


def _common(gt: Path, gt_items: dict[str, Path], pred: Path, pred_files: dict[str, Path],
            allow_missing: bool) -> tuple[list[str], str | None]:
    """Return the names on both sides (in ``gt`` order) and the allow-missing warning."""
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
    warning = None
    if only_gt or only_pred:
        warning = (f"scoring {len(common)} common image(s); {len(only_gt)} only in --gt, "
                   f"{len(only_pred)} only in --pred")
    return common, warning


def _shard_keys(folder: Path) -> tuple[dict[str, Path], int | None]:
    """Return sample key -> shard path from a shard set's manifest (no shard read), and scale."""
    from ssr_datasets.manifest import manifest_shards, read_manifest

    manifest = read_manifest(folder)
    keys = {k: folder / info.name for info in manifest_shards(folder, manifest) for k in info.keys}
    scale = (manifest.get("recipe") or {}).get("scale")
    return keys, scale if isinstance(scale, int) else None


def _shard_lr(pred: Path) -> ScoreInputs:
    """The LR images of a shard set, alone (no-reference)."""
    from ssr_datasets.shards import iter_shard

    keys, scale = _shard_keys(pred)

    def pairs() -> Iterator[ImagePair]:
        for shard in dict.fromkeys(keys.values()):
            for s in iter_shard(shard):
                yield ImagePair.of(s.key, s.lr, pred_name=f"{shard.name}:{s.key}.lr.png")

    return ScoreInputs(f"LR of shard set {pred}", len(keys), scale, pairs)


def _folder_alone(pred: Path) -> ScoreInputs:
    """The images of a folder, alone (no-reference)."""
    from ssr_datasets.imageio import read_image

    files = list_images(pred)

    def pairs() -> Iterator[ImagePair]:
        for stem, path in files.items():
            yield ImagePair.of(stem, read_image(path).rgb, pred_name=str(path))

    return ScoreInputs(f"{pred}", len(files), None, pairs)


def _folder_pairs(gt: Path, gt_files: dict[str, Path], pred: Path, pred_files: dict[str, Path],
                  warning: str | None) -> ScoreInputs:
    """Outputs against a folder of ground truths (``gt_files``: the common stems only)."""
    from ssr_datasets.imageio import read_image

    check_sizes(gt_files, pred_files)

    def pairs() -> Iterator[ImagePair]:
        for stem, gt_path in gt_files.items():
            yield ImagePair.of(stem, read_image(pred_files[stem]).rgb, read_image(gt_path).rgb,
                               pred_name=str(pred_files[stem]), gt_name=str(gt_path))

    return ScoreInputs(f"{pred} vs {gt}", len(gt_files), None, pairs, warning)


def _shard_hr(gt: Path, gt_items: dict[str, Path], scale: int, pred: Path,
              pred_files: dict[str, Path], common: list[str], warning: str | None) -> ScoreInputs:
    """Outputs against the HR of a shard set (the sizes are checked by the scorer)."""
    from ssr_datasets.imageio import read_image
    from ssr_datasets.shards import iter_shard

    wanted = set(common)

    def pairs() -> Iterator[ImagePair]:
        for shard in dict.fromkeys(gt_items[s] for s in common):
            for s in iter_shard(shard):
                if s.key in wanted:
                    path = pred_files[s.key]
                    yield ImagePair.of(s.key, read_image(path).rgb, s.hr, pred_name=str(path),
                                       gt_name=f"{shard}:{s.key}.hr.png")

    return ScoreInputs(f"{pred} vs HR of shard set {gt}", len(common), scale, pairs, warning)


def check_sizes(gt_files: dict[str, Path], pred_files: dict[str, Path]) -> None:
    """Refuse size mismatches before any decoding (image headers only).

    A file whose header cannot be read is let through: ``read_image`` reports it when decoding.

    Raises:
        ConfigError: the pairs whose (W, H) differ, both files named.
    """
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


def _names(stems: list[str]) -> str:
    more = f" ... and {len(stems) - _SHOWN} more" if len(stems) > _SHOWN else ""
    return ", ".join(stems[:_SHOWN]) + more
