"""Depth providers: turn one photograph (and its metric depth, if any) into nearness in [0, 1].

Nearness is normalized inverse depth, 1 = nearest (DESIGN.md section 3). The providers are
registered explicitly below (``PROVIDERS``, an ssr_core Registry); each is imported only when
used, so that importing this package (and ``degrade --help``) stays fast.

- ``gt``: the data set's metric depth, exactly invertible with the recorded ``z_min_m``/``z_max_m``.
- ``prior``: a weight-free heuristic (edge-aware ground-plane ramp) for photographs without depth.

- ``midas``: MiDaS v3 DPT (default ``Intel/dpt-hybrid-midas``; any DPT checkpoint via ``model``).
- ``depth-anything``: Depth Anything V2 (default small; ``model`` "base", "large" or a hub id).

The learned providers need the extra ``pip install "ssr-bench[depth]"`` and weights on disk
(:mod:`degrade.depth.weights` says where they are looked for); ``auto`` picks one when its
weights are present locally (see :func:`_learned_available`). Learned maps are cached on disk by
(pixel sha256, model, normalization): :mod:`degrade.depth.cache`.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np

from ssr_core.config import did_you_mean
from ssr_core.errors import ConfigError
from ssr_core.registry import Registry

if TYPE_CHECKING:
    from .cache import DepthCache

__all__ = [
    "DEPTH_PROVIDERS",
    "DEPTH_REQUESTS",
    "LEARNED_PROVIDERS",
    "PROVIDERS",
    "ProviderInfo",
    "DepthRequest",
    "DepthResult",
    "check_depth_provider",
    "estimate_nearness",
    "estimate_nearness_batch",
    "resolve_depth",
]

@dataclass(frozen=True)
class ProviderInfo:
    """What a depth provider reads and which function of its module runs it (no import needed).

    The registered object is the provider's module; ``func`` names its entry point, looked up
    at each call (so a test can replace it on the module). It is called as ``func(depth_m)`` if
    needs_depth else ``func(rgb)``; both forms return (nearness (H, W) float32, info dict).
    Learned providers (``learned``) name :class:`degrade.depth.learned.LearnedDepth`: they hold
    weights and run in batches.
    """

    func: str
    needs_depth: bool
    learned: bool = False


def _module(name: str) -> Callable[[], ModuleType]:
    return lambda: importlib.import_module(name)


#: The one place depth providers are registered; a module is imported on first use only.
PROVIDERS: Registry[ModuleType, ProviderInfo] = Registry("depth provider")
PROVIDERS.register_lazy("gt", _module("degrade.depth.gt"), meta=ProviderInfo("gt_nearness", True))
PROVIDERS.register_lazy("prior", _module("degrade.depth.prior"),
                        meta=ProviderInfo("prior_nearness", False))
PROVIDERS.register_lazy("midas", _module("degrade.depth.learned"),
                        meta=ProviderInfo("LearnedDepth", False, learned=True))
PROVIDERS.register_lazy("depth-anything", _module("degrade.depth.learned"),
                        meta=ProviderInfo("LearnedDepth", False, learned=True))

#: Derived from PROVIDERS (tests/test_registries.py checks the Literal against it).
DEPTH_PROVIDERS: tuple[str, ...] = PROVIDERS.names()
LEARNED_PROVIDERS: tuple[str, ...] = tuple(n for n in DEPTH_PROVIDERS if PROVIDERS.meta(n).learned)
#: What ``--depth`` accepts: "auto" (see :func:`resolve_depth`) or a provider name. A Literal for
#: the type checker; ``typing.get_args(DepthRequest) == DEPTH_REQUESTS`` is tested.
DepthRequest = Literal["auto", "gt", "prior", "midas", "depth-anything"]
DEPTH_REQUESTS: tuple[str, ...] = ("auto", *DEPTH_PROVIDERS)
_REQUESTS = DEPTH_REQUESTS


@dataclass(frozen=True)
class DepthResult:
    """Nearness of one image and how it was obtained.

    Attributes:
        nearness: (H, W) float32 in [0, 1], 1 = nearest.
        info: json-serializable provenance: ``provider``, ``model`` (None or a model name),
            ``z_min_m``/``z_max_m`` (metres, None for relative depth), ``normalization``, and
            provider-specific keys.
    """

    nearness: np.ndarray
    info: dict


def _learned_available(weights_dir: str | None = None) -> str | None:
    """Return the learned provider whose default weights are present locally, else None.

    Looks (never downloads) for ``Intel/dpt-hybrid-midas`` and then for Depth Anything V2 small in
    ``weights_dir`` (None: ``$SSR_BENCH_DEPTH_WEIGHTS``) and the Hugging Face cache; a
    ``weights_dir`` that is itself a checkpoint counts for the provider its model type fits.
    Only stats files and reads small json: imports neither torch nor transformers. Returns None
    when transformers is not installed, so ``auto`` falls back to the prior.
    """
    import importlib.util

    from .weights import DEFAULT_MODELS, MODEL_TYPES, find_weights, read_config

    if importlib.util.find_spec("transformers") is None:
        return None
    for provider in LEARNED_PROVIDERS:
        location, _ = find_weights(DEFAULT_MODELS[provider], weights_dir)
        if location is not None and read_config(location.folder).get("model_type") in MODEL_TYPES[provider]:
            return provider
    return None


def resolve_depth(request: DepthRequest, has_gt: bool, *, weights_dir: str | None = None
                  ) -> tuple[str, str]:
    """Pick the depth provider for one image: (provider name, human-readable reason).

    ``auto`` takes ground truth when the image has it, else a learned model with local weights
    ("midas" first, then "depth-anything"), else the prior. An explicit provider is honoured as is.

    Args:
        request: "auto" or a provider name from ``DEPTH_PROVIDERS``.
        has_gt: whether the source delivered metric depth for this image.
        weights_dir: where learned weights are looked for besides the Hugging Face cache (the
            ``--depth-weights`` folder); None means ``$SSR_BENCH_DEPTH_WEIGHTS``.

    Returns:
        (name, reason), name in ``DEPTH_PROVIDERS``.

    Raises:
        ConfigError: on an unknown request, or "gt" for an image without ground-truth depth.

    Example:
        >>> resolve_depth("auto", has_gt=True)
        ('gt', 'auto: the source provides metric depth')
    """
    if request not in _REQUESTS:
        raise ConfigError(f"unknown depth request {request!r}{did_you_mean(str(request), _REQUESTS)}; "
                          f"choose one of {list(_REQUESTS)}")
    if request == "gt" and not has_gt:
        raise ConfigError(
            "depth 'gt' requested but this image has no ground-truth depth; use a source with "
            "depth (e.g. nyuv2, middlebury) or choose 'auto' or 'prior' "
            f"(choices: {list(_REQUESTS)})"
        )
    if request != "auto":
        return request, f"requested: {request}"
    if has_gt:
        return "gt", "auto: the source provides metric depth"
    # No argument when none is given: the hook stays replaceable by a zero-argument stub in tests.
    learned = _learned_available() if weights_dir is None else _learned_available(weights_dir)
    if learned is not None:
        return learned, f"auto: no ground-truth depth; learned model {learned} found locally"
    return "prior", "auto: no ground-truth depth and no learned depth weights found locally"


def _spec(name: str) -> ProviderInfo:
    return PROVIDERS.meta(name)  # ConfigError with the choices and "did you mean"


def _check_rgb(rgb: np.ndarray, what: str = "rgb") -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = getattr(rgb, "shape", type(rgb).__name__)
        raise ConfigError(f"{what} must be a (H, W, 3) uint8 array, got {got}")


def check_depth_provider(provider: str, *, model: str | None = None, weights_dir: str | None = None,
                         device: str = "cpu", allow_download: bool = False) -> None:
    """Fail before any work if a provider cannot run: call once when a build starts.

    For "midas" and "depth-anything" this checks that transformers is installed and the weights
    are on disk (of the right model type); "gt", "prior" and "auto" need nothing.

    Raises:
        ConfigError: unknown provider or model name, transformers missing (the message names
            ``pip install "ssr-bench[depth]"``), a checkpoint of the wrong type.
        MissingAssetError: no weights locally; names the model id, every place looked in and
            the ``hf download ... --local-dir DIR`` command plus ``--depth-weights DIR``.
    """
    if provider == "auto":
        return
    if not _spec(provider).learned:
        return
    from .learned import shared_model
    from .weights import resolve_model_id

    shared_model(resolve_model_id(provider, model), weights_dir, device, 4, provider,
                 allow_download).check()


def estimate_nearness(provider: str, rgb: np.ndarray, depth_m: np.ndarray | None, *,
                      model: str | None = None, weights_dir: str | None = None,
                      device: str = "cpu") -> DepthResult:
    """Estimate nearness (H, W) float32 in [0, 1] for one image with the named provider.

    Args:
        provider: a name from ``DEPTH_PROVIDERS`` (resolve "auto" first with resolve_depth).
        rgb: (H, W, 3) uint8 RGB image.
        depth_m: (H, W) float32 metric depth in metres, or None; required by "gt".
        model, weights_dir, device: for the learned providers, as in
            :func:`estimate_nearness_batch` (no cache here).

    Returns:
        DepthResult with nearness at the resolution of rgb and its provenance.

    Raises:
        ConfigError: unknown provider, missing depth for "gt", or shapes that disagree.
        InputError: ground-truth depth without a single valid value.
        MissingAssetError: learned provider without local weights.
    """
    spec = _spec(provider)
    _check_rgb(rgb)
    if spec.learned:
        return _learned_batch(provider, [rgb], None, model=model, weights_dir=weights_dir,
                              device=device, cache=None, batch_size=1, allow_download=False)[0]
    func: Callable[[np.ndarray], tuple[np.ndarray, dict]] = getattr(PROVIDERS.get(provider), spec.func)
    if spec.needs_depth:
        if depth_m is None:
            raise ConfigError(f"depth provider {provider!r} needs depth_m (metres), got None")
        if getattr(depth_m, "shape", None) != rgb.shape[:2]:
            got = getattr(depth_m, "shape", type(depth_m).__name__)
            raise ConfigError(f"depth_m shape {got} does not match rgb (H, W) {rgb.shape[:2]}")
        nearness, extra = func(depth_m)
    else:
        nearness, extra = func(rgb)
    info = {"provider": provider, "model": None, "z_min_m": None, "z_max_m": None, **extra}
    return DepthResult(nearness=nearness, info=info)


def estimate_nearness_batch(
    provider: str,
    rgbs: list[np.ndarray],
    depth_ms: list[np.ndarray | None],
    pixel_shas: list[str],
    *,
    model: str | None = None,
    weights_dir: str | None = None,
    device: str = "cpu",
    cache: DepthCache | None = None,
    batch_size: int = 4,
    allow_download: bool = False,
) -> list[DepthResult]:
    """Estimate nearness for several images with one provider; learned models run batched.

    Learned providers first check their weights (failing before any image is touched), then read
    every map they can from ``cache``, run the model on the misses ``batch_size`` images at a
    time and store the new maps. Learned nearness is always rounded to the uint16 grid of the
    shards, so hits and misses give identical bytes. "gt" and "prior" run per image, uncached.

    Args:
        provider: a name from ``DEPTH_PROVIDERS`` (resolve "auto" first).
        rgbs: (H, W, 3) uint8 RGB images; sizes may differ.
        depth_ms: per image (H, W) metric depth in metres or None (read by "gt" only).
        pixel_shas: per image sha256 of the decoded pixels (``LoadedImage.pixel_sha256``).
        model: learned model: hub id or alias ("dpt-large"; "small"/"base"/"large"); None = default.
        weights_dir: checkpoint folder (see :mod:`degrade.depth.weights`).
        device: torch device for the learned model ("cpu", "cuda", ...).
        cache: where learned maps are kept; None = no cache.
        batch_size: images per forward pass.
        allow_download: let a learned provider fetch missing weights (not when HF_HUB_OFFLINE).

    Returns:
        One DepthResult per image, in input order; nearness (H, W) float32 in [0, 1].

    Raises:
        ConfigError: unknown provider, lists of different lengths, a malformed image.
        MissingAssetError: learned provider without local weights (before any work).
    """
    spec = _spec(provider)
    if not len(rgbs) == len(depth_ms) == len(pixel_shas):
        raise ConfigError(f"rgbs, depth_ms and pixel_shas must have one entry per image, got "
                          f"{len(rgbs)}, {len(depth_ms)}, {len(pixel_shas)}")
    for i, rgb in enumerate(rgbs):
        _check_rgb(rgb, f"rgbs[{i}]")
    if not spec.learned:
        return [estimate_nearness(provider, rgb, d) for rgb, d in zip(rgbs, depth_ms, strict=True)]
    return _learned_batch(provider, rgbs, pixel_shas, model=model, weights_dir=weights_dir,
                          device=device, cache=cache, batch_size=batch_size,
                          allow_download=allow_download)


def _learned_batch(provider: str, rgbs: list[np.ndarray], pixel_shas: list[str] | None, *,
                   model: str | None, weights_dir: str | None, device: str,
                   cache: DepthCache | None, batch_size: int, allow_download: bool
                   ) -> list[DepthResult]:
    from .cache import DepthKey, quantize
    from .learned import relative_to_nearness, shared_model
    from .weights import resolve_model_id

    learned = shared_model(resolve_model_id(provider, model), weights_dir, device, batch_size,
                           provider, allow_download)
    learned.check()
    info = {"provider": provider, **learned.info()}
    nearness: list[np.ndarray | None] = [None] * len(rgbs)
    keys: list[DepthKey] = []
    if cache is not None and pixel_shas is not None:
        tag = f"{learned.model_tag}|{info['normalization']}"
        keys = [DepthKey(sha, tag) for sha in pixel_shas]
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is not None and hit.shape == rgbs[i].shape[:2]:
                nearness[i] = hit
    misses = [i for i, n in enumerate(nearness) if n is None]
    for i, pred in zip(misses, learned.predict([rgbs[i] for i in misses]), strict=True):
        nearness[i] = quantize(relative_to_nearness(pred))
        if keys:
            try:
                cache.put(keys[i], nearness[i])  # type: ignore[union-attr]
            except OSError as exc:  # a full or read-only cache must not stop a build
                warnings.warn(f"depth cache {cache.folder} not written: {exc}", stacklevel=2)  # type: ignore[union-attr]
    return [DepthResult(nearness=n, info=dict(info)) for n in nearness]  # type: ignore[arg-type]
