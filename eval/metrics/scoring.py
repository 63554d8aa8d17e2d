"""Score image pairs with several registered metrics: per-image values, means, conventions.

Conventions (written into every result's ``conventions``):

- Options reach a metric only if its factory names them as parameters (``crop_border``, ``y_channel``,
  ``device``, ``weights_dir``), and ``crop_border`` only reaches full-reference metrics: the SR
  convention crops PSNR/SSIM by the scale, while no-reference metrics (NIQE, MUSIQ, CLIP-IQA)
  follow pyiqa's defaults on the whole image (DESIGN.md section 7). What each metric got is
  recorded under ``conventions["metrics"][name]["options"]``.
- A metric that cannot run here (its optional extra is not installed, its weights are not on
  disk: ``MissingAssetError``) is recorded in ``unavailable`` with the reason and the others run;
  it never appears as an empty cell. So is a metric that refuses one of the images (an
  ``SsrError`` such as NIQE on an image smaller than two 96x96 blocks): its values are dropped
  from every image, the reason names the image, and the others go on; a result never mixes
  images scored and not scored by one metric.
- ``mean`` is the arithmetic mean of the per-image values (float64), the convention of the
  field's tables (PSNR is averaged in dB, not computed from the mean MSE). Identical images give
  PSNR = +inf, and then the mean is +inf: reported as is, never dropped, and counted by
  ``ScoreResult.infinite``.
- JSON has no infinity: ``to_json`` writes non-finite values as the strings ``"inf"``,
  ``"-inf"`` and ``"nan"`` (Python's ``float()`` reads them back); CSV writes ``inf`` likewise.
"""

from __future__ import annotations

import csv
import importlib
import importlib.metadata
import importlib.util
import inspect
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ssr_core.errors import ConfigError, InputError, MissingAssetError, SsrError
from ssr_datasets.imageio import pixel_sha256

from .cache import NO_GT, CacheKey, ScoreCache, options_hash
from .registry import MetricSpec, create_metric, get_metric

#: The module that tells whether an optional extra is installed (probed without importing it).
_EXTRA_PROBES = {"metrics": "pyiqa"}
#: Packages whose versions are recorded in the conventions when installed.
_PACKAGES = ("ssr-bench", "numpy", "torch", "pyiqa", "torchvision", "spandrel", "opencv-python",
             "scikit-image")
MEAN_CONVENTION = ("arithmetic mean of per-image values (float64); +inf if any image is +inf "
                   "(identical images under PSNR); JSON writes non-finite values as \"inf\", "
                   "\"-inf\", \"nan\"")


@dataclass(frozen=True, eq=False)  # arrays make field-wise == ambiguous
class ImagePair:
    """One image to score: a prediction and, for full-reference metrics, its ground truth.

    Attributes:
        stem: Name of the pair in results (file stem or sample key); unique within a run.
        pred: uint8 (H, W, 3) RGB prediction (SR output, or the image a no-reference metric rates).
        gt: uint8 (H, W, 3) RGB ground truth of the same size, or None.
        pred_sha: ``pixel_sha256(pred)`` (cache key).
        gt_sha: ``pixel_sha256(gt)``, None when ``gt`` is None.
        pred_name: Where ``pred`` came from (file path, shard/key) for messages.
        gt_name: Where ``gt`` came from, for messages.
    """

    stem: str
    pred: np.ndarray
    gt: np.ndarray | None
    pred_sha: str
    gt_sha: str | None
    pred_name: str = ""
    gt_name: str = ""

    @classmethod
    def of(cls, stem: str, pred: np.ndarray, gt: np.ndarray | None = None, *,
           pred_name: str = "", gt_name: str = "") -> ImagePair:
        """Build a pair from arrays, hashing their pixels."""
        return cls(stem, pred, gt, pixel_sha256(pred), None if gt is None else pixel_sha256(gt),
                   pred_name or f"{stem} (pred)", gt_name or f"{stem} (gt)")


@dataclass
class ScoreResult:
    """What ``score`` returns.

    Attributes:
        per_image: stem -> metric -> value, in input order (available metrics only).
        mean: metric -> arithmetic mean over images (see the module docstring for +inf).
        unavailable: metric -> why it could not run here.
        conventions: crop_border, y_channel, device, the mean convention, package versions and,
            per metric, its ``MetricSpec`` convention/version/unit, the options it was created
            with and its own ``conventions()``.
        computed: Per-image values computed in this run.
        cached: Per-image values read from the cache.
    """

    per_image: dict[str, dict[str, float]]
    mean: dict[str, float]
    unavailable: dict[str, str]
    conventions: dict[str, Any]
    computed: int = 0
    cached: int = 0
    metrics: list[str] = field(default_factory=list)  # the metrics that ran, in request order

    @property
    def infinite(self) -> dict[str, int]:
        """Return metric -> number of images whose value is +inf or -inf."""
        return {m: sum(math.isinf(row[m]) for row in self.per_image.values()) for m in self.metrics}

    def to_json(self) -> dict[str, Any]:
        """Return ``{"per_image", "mean", "conventions"}`` (+ ``"unavailable"`` when non-empty).

        Non-finite numbers become the strings "inf", "-inf", "nan" (strict JSON has none).
        """
        out: dict[str, Any] = {
            "per_image": jsonable(self.per_image),
            "mean": jsonable(self.mean),
            "conventions": jsonable(self.conventions),
        }
        if self.unavailable:
            out["unavailable"] = dict(self.unavailable)
        return out

    def to_csv(self) -> str:
        """Return CSV text: header ``image,<metric>...``, one row per image, then a ``mean`` row.

        Values are written with full precision (``repr``); +inf as ``inf``.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["image", *self.metrics])
        for stem, row in self.per_image.items():
            writer.writerow([stem, *(repr(row[m]) for m in self.metrics)])
        writer.writerow(["mean", *(repr(self.mean[m]) for m in self.metrics)])
        return buf.getvalue()


@dataclass(frozen=True, eq=False)
class _Active:
    """A metric that passed ``check()``: its spec, instance and cache-key options hash."""

    spec: MetricSpec
    metric: Any
    options_hash: str


def score(
    metrics: Sequence[str],
    pairs: Iterable[ImagePair],
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    device: str = "cpu",
    weights_dir: str | None = None,
    cache: ScoreCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScoreResult:
    """Score every pair with every metric that can run here; per-image values and means.

    Args:
        metrics: Registered metric names (``METRICS``), e.g. ``["psnr", "ssim", "niqe"]``.
        pairs: Images to score (read lazily: one pair in memory at a time).
        crop_border: Pixels cut from each border before full-reference metrics (the SR
            convention is the scale); >= 0.
        y_channel: Full-reference fidelity metrics on Y of BT.601 YCbCr (True) or on RGB.
        device: Torch device of learned metrics ("cpu", "cuda", "cuda:1").
        weights_dir: Folder with learned metrics' weights (None: their defaults).
        cache: Per-image value cache; None computes everything.
        progress: Called with the number of pairs done after each pair.

    Returns:
        The per-image values, means, unavailable metrics and conventions.

    Raises:
        ConfigError: Unknown or repeated metric, negative crop, a full-reference metric with a
            pair lacking ground truth, gt and pred of different sizes (naming both), a repeated
            stem, or no pairs at all.
        InputError: A pair whose images are not uint8 (H, W, 3).
    """
    names = list(metrics)
    if not names:
        raise ConfigError("no metrics to compute")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"metric(s) listed twice: {', '.join(repeated)}")
    if crop_border < 0:
        raise ConfigError(f"crop_border must be >= 0, got {crop_border}")
    specs = [get_metric(n) for n in names]  # unknown names fail before any work
    offered = {"crop_border": crop_border, "y_channel": y_channel, "device": device,
               "weights_dir": weights_dir}
    active: dict[str, _Active] = {}
    unavailable: dict[str, str] = {}
    per_metric: dict[str, Any] = {}
    for spec in specs:
        reason = _missing_extra(spec)
        if reason is not None:
            unavailable[spec.name] = reason
            continue
        try:
            options = _options_for(spec, offered)
            metric = create_metric(spec.name, **options)
            metric.check()
        except MissingAssetError as exc:
            unavailable[spec.name] = str(exc)
            continue
        except ImportError as exc:
            if spec.extra is None:
                raise  # a base metric that cannot import is a bug, not a missing extra
            unavailable[spec.name] = f"{exc}; install it with pip install \"ssr-bench[{spec.extra}]\""
            continue
        own = dict(metric.conventions())
        active[spec.name] = _Active(spec, metric, options_hash({"options": options, "own": own}))
        per_metric[spec.name] = {"title": spec.title, "convention": spec.convention,
                                 "version": spec.version, "unit": spec.unit,
                                 "higher_is_better": spec.higher_is_better,
                                 "full_reference": spec.full_reference, "options": options, **own}

    per_image: dict[str, dict[str, float]] = {}
    computed = cached = 0
    needs_gt = sorted(n for n, a in active.items() if a.spec.full_reference)
    for pair in pairs:
        _check_pair(pair, needs_gt)
        if pair.stem in per_image:
            raise ConfigError(f"image name {pair.stem!r} appears twice; stems must be unique")
        row: dict[str, float] = {}
        new: list[tuple[CacheKey, float]] = []
        for name, act in list(active.items()):
            fr = act.spec.full_reference
            key = CacheKey(pair.pred_sha, pair.gt_sha if fr else NO_GT, name,
                           act.spec.version, act.options_hash)
            value = cache.get(key) if cache is not None else None
            if value is None:
                try:
                    value = _compute(act, pair)
                except SsrError as exc:  # e.g. an image too small for NIQE's 96x96 blocks
                    unavailable[name] = f"failed on {pair.pred_name or pair.stem}: {exc}"
                    del active[name], per_metric[name]
                    for done in per_image.values():
                        done.pop(name, None)
                    continue
                new.append((key, value))
                computed += 1
            else:
                cached += 1
            row[name] = value
        if cache is not None:
            cache.put_many(new)
        per_image[pair.stem] = row
        if progress is not None:
            progress(len(per_image))
    if not per_image:
        raise ConfigError("no images to score")
    ran = list(active)
    mean = {m: float(np.mean(np.array([r[m] for r in per_image.values()], dtype=np.float64)))
            for m in ran}
    conventions = {"crop_border": crop_border, "y_channel": y_channel, "device": device,
                   "mean": MEAN_CONVENTION, "packages": package_versions(),
                   "metrics": per_metric}
    return ScoreResult(per_image=per_image, mean=mean, unavailable=unavailable,
                       conventions=conventions, computed=computed, cached=cached, metrics=ran)


def _missing_extra(spec: MetricSpec) -> str | None:
    """Return why the metric's optional extra is missing, or None (probes, imports nothing)."""
    probe = _EXTRA_PROBES.get(spec.extra or "")
    if probe is None or importlib.util.find_spec(probe) is not None:
        return None
    return (f"needs the optional extra '{spec.extra}' ({probe} is not installed): "
            f"pip install \"ssr-bench[{spec.extra}]\"")


def _options_for(spec: MetricSpec, offered: dict[str, Any]) -> dict[str, Any]:
    """Return the offered options that the metric's factory names as parameters.

    A catch-all ``**kwargs`` does not count: an option the metric ignores must not change its
    cache key or its recorded conventions.
    """
    module, _, attr = spec.factory.partition(":")
    params = inspect.signature(getattr(importlib.import_module(module), attr)).parameters
    named = {n for n, p in params.items()
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    options = {}
    for name, value in offered.items():
        if name == "crop_border" and not spec.full_reference:
            continue  # no-reference metrics see the whole image (pyiqa's default)
        if name == "weights_dir" and value is None:
            continue
        if name in named:
            options[name] = value
    return options


def _check_pair(pair: ImagePair, needs_gt: list[str]) -> None:
    """Raise unless the pair's arrays are uint8 (H, W, 3) and fit the full-reference metrics."""
    for img, where in ((pair.pred, pair.pred_name), (pair.gt, pair.gt_name)):
        if img is None:
            continue
        if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3
                and img.shape[2] == 3):
            got = f"{img.dtype} {tuple(img.shape)}" if isinstance(img, np.ndarray) else type(img)
            raise InputError(where or pair.stem, f"expected uint8 RGB (H, W, 3), got {got}")
    if not needs_gt:
        return
    if pair.gt is None:
        raise ConfigError(f"{', '.join(needs_gt)} compare with a ground truth, but image "
                          f"{pair.stem!r} has none; give the ground truth or choose only "
                          "no-reference metrics")
    if pair.gt.shape != pair.pred.shape:
        (gh, gw), (ph, pw) = pair.gt.shape[:2], pair.pred.shape[:2]
        raise ConfigError(f"size mismatch for {pair.stem!r}: ground truth {pair.gt_name} is "
                          f"{gw}x{gh} (WxH) but prediction {pair.pred_name} is {pw}x{ph}")


def _compute(act: _Active, pair: ImagePair) -> float:
    """Compute one metric on one pair (the gt only for full-reference metrics)."""
    return float(act.metric(pair.pred, pair.gt if act.spec.full_reference else None))


def package_versions() -> dict[str, str]:
    """Return the installed versions of the packages that can move a value."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def jsonable(obj: Any) -> Any:
    """Return ``obj`` with non-finite floats as strings and tuples as lists (strict JSON)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return jsonable(obj.item())
    return obj
