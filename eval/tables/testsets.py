"""Test sets of a table's row groups: built by ``degrade build`` when missing, then cached.

A synthetic group (source + split + recipe + seed + depth) becomes a shard set in
``WORK/testsets/<name>-<config hash>``; later runs reuse it after checking every shard's size and
sha256 against its manifest and the manifest's config hash against the one the group asks for (a
mismatch rebuilds the set; nothing is ever read from a half-written set). The set's
``fingerprint`` (sha256 over the config hash and every shard's name, sha256 and sample count) is
what tables record: two tables whose fingerprints agree were scored on the same bytes.

A real-pair group (DRealSR) reads its pairs in place (the source's ``lr_partner`` and
``load_pair``, found through the source registry: ``ssr_datasets.sources.pair_source``); its
fingerprint covers every file's relative path and sha256.

The LR images of every set are also written as PNGs named by key in ``<set>/lr/`` so that a
method run elsewhere can read them and hand its outputs back with ``--method NAME=DIR/``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_core.io import sha256_file, write_bytes_atomic
from ssr_datasets.imageio import encode_png
from ssr_datasets.manifest import MANIFEST_NAME, manifest_shards, read_manifest, verify_shard_set
from ssr_datasets.shards import iter_shard
from ssr_datasets.sources import SourceItem, list_items, pair_source

from .spec import GroupSpec

if TYPE_CHECKING:
    from degrade.build import BuildConfig


@dataclass(frozen=True, eq=False)
class TestImage:
    """One test image as methods see it.

    Attributes:
        key: Unique within the set: the sample key (``div2k-0801-000``) or the pair stem.
        image_id: The source's image id (``0801``), the other name folder outputs may use.
        lr: uint8 (h, w, 3) RGB input.
        hr: uint8 (H, W, 3) RGB ground truth, H = s*h and W = s*w.
        kernel_field: float32 (3, h, w): s1, s2 (HR px) and theta (rad) per LR pixel, or None
            (real pairs have no ground-truth kernels).
        nearness: float32 (H, W) in [0, 1] (1 = near), or None.
    """

    __test__ = False  # not a pytest class, despite the name

    key: str
    image_id: str
    lr: np.ndarray
    hr: np.ndarray
    kernel_field: np.ndarray | None = None
    nearness: np.ndarray | None = None


@dataclass
class TestSet:
    """A ready test set: how to read it and what it is.

    Attributes:
        name: Short name for messages ("div2k valid, recipe ssr, seed 0").
        group: The table group id it serves (``div2k``); folder outputs may sit in ``DIR/<group>/``.
        path: Where it lives (shard folder, or the data set folder of real pairs).
        scale: s; ``kernel_size``/``delta``: of the recipe (None for real pairs).
        keys: Image keys in order; ``image_ids``: key -> source image id.
        fingerprint: See the module docstring (64 hex).
        info: Provenance for outputs (source, split, recipe name/hash, seed, depth, count, ...).
        lr_dir: Folder of the LR PNGs named ``{key}.png``.
        images: Reads the images in ``keys`` order (one in memory at a time).
    """

    __test__ = False

    name: str
    group: str
    path: str
    scale: int
    keys: list[str]
    image_ids: dict[str, str]
    fingerprint: str
    info: dict[str, Any]
    lr_dir: str
    images: Callable[[], Iterator[TestImage]]
    kernel_size: int | None = None
    delta: float | None = None
    real_pairs: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class DatasetNotFound(Exception):
    """A group's data set is not under any candidate root; the message says where we looked."""


@dataclass(frozen=True)
class Roots:
    """Where data sets are looked for.

    Attributes:
        data_root: One folder holding a folder per data set (``DATA/div2k``, ``DATA/DRealSR``)
            or the data sets' own layouts directly (``DATA/DIV2K_valid_HR``, ``DATA/BSDS100``).
        per_dataset: group id or source name -> its folder (wins over ``data_root``).
    """

    data_root: Path | None = None
    per_dataset: dict[str, Path] = field(default_factory=dict)

    def candidates(self, group: GroupSpec) -> list[Path]:
        """Return the folders to try for a group, most specific first."""
        for name in (group.id, group.source):
            if name in self.per_dataset:
                return [self.per_dataset[name]]
        if self.data_root is None:
            return []
        names = dict.fromkeys([group.id, group.source, group.label, group.label.split()[0]])
        found = [self.data_root / n for n in names if (self.data_root / n).is_dir()]
        return [*found, self.data_root]


def find_items(group: GroupSpec, roots: Roots) -> tuple[Path, list[SourceItem]]:
    """Return the root under which the group's source lists its items, and the items.

    Raises:
        DatasetNotFound: no candidate folder holds the data set (message: where, and what the
            source expects there).
    """
    tried: list[str] = []
    for root in roots.candidates(group):
        try:
            return root, list_items(group.source, root, group.split)
        except (ConfigError, MissingAssetError) as exc:
            tried.append(f"{root}: {exc}")
    where = roots.data_root if roots.data_root is not None else "(no --data-root given)"
    detail = f" ({tried[-1]})" if tried else ""
    raise DatasetNotFound(f"{group.label} not found under {where}{detail}")


def testset_dir_name(config: BuildConfig) -> str:
    """Name the cached shard folder of a build: readable prefix + hash of what decides the bytes."""
    d = config.to_dict()
    d.pop("root")  # the data's location does not change a byte (samples record relative paths)
    digest = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    parts = [config.source, config.split or "", config.recipe.name, f"seed{config.seed}", config.depth]
    if config.max_images is not None:
        parts.append(f"first{config.max_images}")
    return "-".join(p for p in parts if p) + f"-{digest}"


def degrade_command(config: BuildConfig, out: Path) -> str:
    """Return the ``degrade build`` command that builds the same shards as ``config``."""
    parts = ["degrade", "build", "--source", config.source]
    if config.root is not None:
        parts += ["--root", config.root]
    if config.split is not None:
        parts += ["--split", config.split]
    parts += ["--recipe", config.recipe.name, "--seed", str(config.seed), "--depth", config.depth]
    if config.max_images is not None:
        parts += ["--max-images", str(config.max_images)]
    parts += ["--out", str(out)]
    return " ".join(shlex.quote(p) for p in parts)


def synthetic_testset(group: GroupSpec, config: BuildConfig, work_dir: Path,
                      on_progress: Callable[[int, int], None] | None = None,
                      allow_download: bool = False) -> TestSet:
    """Build the group's shard set if missing or not matching its manifest; return it.

    ``allow_download``: a learned depth provider may fetch absent weights (``--allow-download``).

    Raises:
        ConfigError, InputError: from the build (a bad input under ``strict`` is not used here:
            skipped inputs are recorded in the manifest and in ``info["skipped"]``).
    """
    from degrade.build import DepthOptions, build

    out = work_dir / "testsets" / testset_dir_name(config)
    if not _complete(out, config):
        build(config, out, overwrite=True, on_progress=on_progress, preview=False,
              command=degrade_command(config, out),
              depth_options=DepthOptions(allow_download=allow_download))
    manifest = read_manifest(out)
    shards = manifest_shards(out, manifest)
    keys = [k for info in shards for k in info.keys]
    fingerprint = _digest({"config_hash": manifest["config_hash"],
                           "shards": [[i.name, i.sha256, i.count] for i in shards]})
    recipe = config.recipe
    info = {"kind": "synthetic", "source": config.source, "split": config.split,
            "recipe": {"name": recipe.name, "hash": recipe.hash}, "seed": config.seed,
            "downsampler": recipe.downsampler,
            "depth": config.depth, "max_images": config.max_images, "count": len(keys),
            "config_hash": manifest["config_hash"], "fingerprint": fingerprint, "path": str(out),
            "degrade_command": degrade_command(config, out),
            "skipped": manifest.get("skipped", []),
            "depth_providers": manifest.get("depth_providers", {})}
    lr_dir = work_dir / "lr" / out.name

    def images() -> Iterator[TestImage]:
        for shard in shards:
            for s in iter_shard(out / shard.name):
                image_id = s.key.split("-", 1)[1].rsplit("-", 1)[0]
                yield TestImage(s.key, image_id, s.lr, s.hr, s.kernel_field,
                                s.nearness.astype(np.float32) / 65535.0)

    testset = TestSet(f"{group.label}: {config.source} {config.split or ''} recipe {recipe.name}, "
                      f"seed {config.seed}".replace("  ", " "), group.id, str(out), recipe.scale, keys,
                      {k: k.split("-", 1)[1].rsplit("-", 1)[0] for k in keys}, fingerprint, info,
                      str(lr_dir), images, kernel_size=recipe.kernel_size,
                      delta=recipe.delta_px)
    _export_lr(testset)
    return testset


def real_pair_testset(group: GroupSpec, root: Path, items: list[SourceItem], scale: int,
                      max_images: int | None = None) -> TestSet:
    """Read a real-pair data set (DRealSR) in place; HR is cropped to s x the LR (see docstring).

    Raises:
        ConfigError: ``group.source`` holds no real pairs.
        InputError: an HR without LR partner; an unreadable pair (from ``load_pair``, when read).
    """
    source = pair_source(group.source)
    items = items[:max_images] if max_images is not None else items
    files = []
    for item in items:
        hr_path, lr_path = Path(item.path), source.lr_partner(item)
        files.append([str(hr_path.relative_to(root)), sha256_file(hr_path),
                      str(lr_path.relative_to(root)), sha256_file(lr_path)])
    fingerprint = _digest({"source": group.source, "split": group.split, "files": files})
    by_key = {item.image_id: item for item in items}

    def images() -> Iterator[TestImage]:
        for key, item in by_key.items():
            yield TestImage(key, key, *crop_pair(*source.load_pair(item), scale))

    info = {"kind": "real-pairs", "source": group.source, "split": group.split, "root": str(root),
            "count": len(items), "fingerprint": fingerprint, "max_images": max_images,
            "alignment": f"HR and LR cropped at the bottom/right to HR = {scale} x LR"}
    lr_dir = str(source.lr_partner(items[0]).parent) if items else str(root)
    return TestSet(f"{group.label}: {group.source} {group.split or ''} real pairs", group.id, str(root),
                   scale, list(by_key), {k: k for k in by_key}, fingerprint, info, lr_dir, images,
                   real_pairs=True)


def _complete(out: Path, config: BuildConfig) -> bool:
    """Return True when ``out`` holds this build, every shard matching its manifest."""
    if not (out / MANIFEST_NAME).is_file():
        return False
    try:
        manifest = read_manifest(out)
    except InputError:
        return False
    if manifest.get("config_hash") != config.hash:
        return False
    return verify_shard_set(out, checksums=True, decode=False).ok


def _export_lr(testset: TestSet) -> None:
    """Write every LR image as ``lr_dir/{key}.png`` (atomically; existing files are kept)."""
    folder = Path(testset.lr_dir)
    if all((folder / f"{k}.png").is_file() for k in testset.keys):
        return
    folder.mkdir(parents=True, exist_ok=True)
    for image in testset.images():
        path = folder / f"{image.key}.png"
        if not path.is_file():
            write_bytes_atomic(path, encode_png(image.lr))


def crop_pair(hr: np.ndarray, lr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (lr, hr) of a real pair cropped at the bottom/right so that HR = scale x LR."""
    h, w = min(lr.shape[0], hr.shape[0] // scale), min(lr.shape[1], hr.shape[1] // scale)
    return np.ascontiguousarray(lr[:h, :w]), np.ascontiguousarray(hr[:scale * h, :scale * w])


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
