"""Score kernel estimators on one test set: per image, per method, cached; maps on request.

The set is any shard set with ground-truth kernel fields (a ``degrade build`` folder, or a
table group's synthetic test set), or a released set with one true kernel per image (DIV2KRK,
:mod:`eval.kernels.released`). Per (method, image) the estimate is made, brought to the set's
grid and scored by :func:`eval.kernels.metrics.score_image`; the set value of a metric is the
mean of the per-image values that exist (``theta_err`` skips exactly isotropic images).

Caching: every per-image value goes into the score cache (:class:`eval.metrics.cache.ScoreCache`)
under ``pred_sha = sha256(method fingerprint, key)``, ``gt_sha = sha256(set fingerprint, key)``,
the metric's registry version and the hash of the set's geometry, so a rerun estimates nothing
it has scored (images drawn as maps are always recomputed). Which metrics had no value is
cached too (a bit mask under the pseudo-metric ``kernel_na``), so an n/a is not recomputed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.errors import ConfigError

from .estimates import Geometry
from .methods import KernelImage, KernelMethod
from .metrics import KERNEL_METRICS, PARAM_METRICS, ImageKernelScores, score_estimates

if TYPE_CHECKING:
    from degrade.recipes import Recipe
    from eval.metrics.cache import ScoreCache

_NA_METRIC = "kernel_na"
_NA_VERSION = "1"


@dataclass(frozen=True)
class KernelSet:
    """A test set as the kernel track reads it.

    Attributes:
        name: For messages and tables.
        path: The shard folder.
        geometry: K, delta, scale of its recipe.
        keys: Image keys in order.
        fingerprint: sha256 hex of the bytes scored (manifest config hash, shard checksums).
        redeg_reason: Why re-degradation PSNR is n/a on this set (noise, JPEG, downsampler),
            or None.
        recipe: The set's recipe (its manifest's), whose rounding re-degradation follows; None
            for sets made in memory (tests).
        info: Provenance (recipe, seed, depth, count, ...).
        images: Reads the images in order, one at a time.
    """

    name: str
    path: str
    geometry: Geometry
    keys: list[str]
    fingerprint: str
    redeg_reason: str | None
    info: dict[str, Any]
    images: Callable[[], Iterator[KernelImage]]
    recipe: Recipe | None = None


def redeg_reason(recipe: Recipe) -> str | None:
    """Return why a set built by ``recipe`` cannot be re-degraded, or None."""
    why = []
    if recipe.downsampler != "direct":
        why.append(f"downsampler {recipe.downsampler} (not Eq. 1's direct one)")
    if recipe.noise is not None:
        why.append("noise")
    if recipe.jpeg is not None:
        why.append("JPEG")
    if not why:
        return None
    return (f"the set's LR holds {' and '.join(why)}: re-degradation PSNR needs a noise-free set "
            "(degrade build --no-noise --no-jpeg)")


def shard_kernel_set(path: str | Path, name: str | None = None) -> KernelSet:
    """Open a shard set (``degrade build`` folder) for the kernel track.

    Raises:
        InputError: no readable manifest; ConfigError: a manifest without a recipe (the kernel
            grid is unknown), or a recipe whose true kernels are not its Gaussian field (taps
            models such as div2krk, the bicubic downsampler).
    """
    from degrade.recipes import recipe_from_dict
    from ssr_datasets.manifest import manifest_shards, read_manifest
    from ssr_datasets.shards import iter_shard

    folder = Path(path)
    manifest = read_manifest(folder)
    if not isinstance(manifest.get("recipe"), dict):
        raise ConfigError(f"{folder}: the manifest names no recipe, so its kernel grid is unknown")
    recipe = recipe_from_dict(manifest["recipe"])
    if recipe.uses_taps or recipe.downsampler != "direct":
        raise ConfigError(
            f"{folder}: recipe {recipe.name} degrades with "
            f"{'one K x K array of taps per sample' if recipe.uses_taps else 'the bicubic downsampler'}"
            ", so the shards' Gaussian field is not the kernel of each LR pixel; the kernel track "
            "scores direct, Gaussian-field sets (ssr, ssr-clean, cmos-defocus, ...)")
    shards = manifest_shards(folder, manifest)
    scale, k, delta_px = recipe.scale, recipe.kernel_size, recipe.delta_px
    keys = [key for info in shards for key in info.keys]
    fingerprint = hashlib.sha256(json.dumps(
        {"config_hash": manifest.get("config_hash"),
         "shards": [[i.name, i.sha256, i.count] for i in shards]}, sort_keys=True).encode()).hexdigest()

    def images() -> Iterator[KernelImage]:
        for info in shards:
            for s in iter_shard(folder / info.name):
                yield KernelImage(s.key, s.lr, s.hr, s.nearness.astype(np.float32) / 65535.0,
                                  s.kernel_field)

    info = {"kind": "shards", "path": str(folder), "recipe": recipe.name,
            "recipe_hash": manifest.get("recipe_hash"), "seed": (manifest.get("config") or {}).get("seed"),
            "count": len(keys), "config_hash": manifest.get("config_hash"), "fingerprint": fingerprint,
            "kernel_size": k, "delta": delta_px, "scale": scale}
    return KernelSet(name or folder.name, str(folder), Geometry(k, delta_px, scale), keys,
                     fingerprint, redeg_reason(recipe), info, images, recipe)


@dataclass
class MethodScores:
    """One method on one set.

    Attributes:
        per_image: key -> metric -> value (metrics with a value only).
        why_na: metric -> why it has no value on some or all images (first reason met).
        unsupported: Why the method could not run on the set at all, or None.
        maps: key -> the scored image's maps (only for images drawn as maps).
        conversions: What was done to bring the estimates to the set's grid (first image).
    """

    name: str
    describe: dict[str, Any]
    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    why_na: dict[str, str] = field(default_factory=dict)
    unsupported: str | None = None
    maps: dict[str, ImageKernelScores] = field(default_factory=dict)
    conversions: tuple[str, ...] = ()
    computed: int = 0
    cached: int = 0

    def mean(self, metric: str) -> float | None:
        """Return the mean over images with a value (+inf if any is +inf), or None if none has one."""
        values = [v[metric] for v in self.per_image.values() if metric in v]
        return float(np.mean(values)) if values else None


def _sha(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def score_kernel_set(kset: KernelSet, methods: list[KernelMethod], *,
                     cache: ScoreCache | None = None, map_keys: set[str] | None = None,
                     progress: Callable[[str, int], Callable[[int], None]] | None = None
                     ) -> list[MethodScores]:
    """Score every method on every image of ``kset`` (see the module docstring).

    Args:
        cache: Per-image value cache, or None to compute everything.
        map_keys: Keys whose maps are kept (``MethodScores.maps``) for the heat-map pages.
        progress: (description, total) -> update(n done since last call); the CLI's tqdm.
    """
    from eval.metrics.cache import CacheKey, options_hash
    from eval.metrics.registry import get_metric

    map_keys = map_keys or set()
    geometry = kset.geometry
    opts = options_hash({"kernel_size": geometry.kernel_size, "delta": geometry.delta,
                         "scale": geometry.scale, "redeg": kset.redeg_reason is None})
    results: list[MethodScores] = []
    active: list[tuple[KernelMethod, MethodScores, str]] = []
    for method in methods:
        out = MethodScores(method.name, {**method.describe(), "fingerprint": method.fingerprint()})
        results.append(out)
        missing = method.missing(kset.keys)
        if missing:
            more = f" ... and {len(missing) - 5} more" if len(missing) > 5 else ""
            out.unsupported = (f"no estimate for {len(missing)} of {len(kset.keys)} image(s) "
                               f"({', '.join(missing[:5])}{more})")
            continue
        active.append((method, out, out.describe["fingerprint"]))
    if any(m.kind == "mean" for m, _, _ in active):
        fields = [im.kernel_field if im.kernel_field is not None else im.true_kernel
                  for im in kset.images()]
        for m, _, _ in active:
            if m.kind == "mean":
                m.prepare(fields, geometry)
    bar = progress(kset.name, len(kset.keys)) if progress and active else None
    for image in kset.images():
        gt = _sha(kset.fingerprint, image.key)
        todo = []
        for method, out, fp in active:
            pred = _sha(fp, image.key)
            keys = {m: CacheKey(pred, gt, m, get_metric(m).version, opts) for m in KERNEL_METRICS}
            na_key = CacheKey(pred, gt, _NA_METRIC, _NA_VERSION, opts)
            hit = _from_cache(cache, keys, na_key) if image.key not in map_keys else None
            if hit is None:
                todo.append((method, out, keys, na_key))
                continue
            values, na = hit
            out.cached += len(values)
            _record(out, image.key, values, na, kset)
        if todo:
            estimates = [method.estimate(image, geometry) for method, _, _, _ in todo]
            scored = score_estimates(estimates, image.kernel_field, geometry, hr=image.hr,
                                     lr=image.lr, redeg_reason=kset.redeg_reason,
                                     recipe=kset.recipe, true_kernel=image.true_kernel)
            for (_, out, keys, na_key), est, scores in zip(todo, estimates, scored, strict=True):
                out.conversions = out.conversions or est.conversions
                out.computed += len(scores.values)
                for m, why in scores.why_na.items():
                    out.why_na.setdefault(m, why)
                if image.key in map_keys:
                    out.maps[image.key] = scores
                if cache is not None:
                    cache.put_many([(keys[m], v) for m, v in scores.values.items()]
                                   + [(na_key, float(_mask(set(scores.why_na))))])
                _record(out, image.key, scores.values, set(scores.why_na), kset)
        if bar is not None:
            bar(1)
    return results


def _record(out: MethodScores, key: str, values: dict[str, float], na: set[str],
            kset: KernelSet) -> None:
    for m in na:
        out.why_na.setdefault(m, _generic_reason(m, kset))
    out.per_image[key] = dict(values)


def _mask(na: set[str]) -> int:
    return sum(1 << i for i, m in enumerate(KERNEL_METRICS) if m in na)


def _from_cache(cache: ScoreCache | None, keys: dict[str, Any], na_key: Any
                ) -> tuple[dict[str, float], set[str]] | None:
    """Return (values, n/a metrics) when every metric of the image is cached, else None."""
    if cache is None:
        return None
    mask = cache.get(na_key)
    if mask is None:
        return None
    na = {m for i, m in enumerate(KERNEL_METRICS) if int(mask) >> i & 1}
    values = {}
    for m, key in keys.items():
        if m in na:
            continue
        v = cache.get(key)
        if v is None:
            return None
        values[m] = v
    return values, na


def _generic_reason(metric: str, kset: KernelSet) -> str:
    """Return the reason of a cached n/a (the reasons follow from the metric and the set)."""
    if metric == "redeg_psnr":
        return kset.redeg_reason or "not re-degraded"
    if metric == "theta_err":
        return "no Gaussian parameters, or an isotropic true field: no angle to compare"
    if metric in PARAM_METRICS:
        if kset.info.get("kind") == "released":
            return "the true kernels are released taps, not Gaussian parameters"
        return "the estimates give taps, not Gaussian parameters"
    return "not computed"


def finite_or_none(value: float | None) -> float | None:
    """Return value unless it is NaN (tables show inf, never NaN)."""
    return None if value is None or math.isnan(value) else value
