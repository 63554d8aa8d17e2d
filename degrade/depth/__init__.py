"""Depth providers: turn one photograph (and its metric depth, if any) into nearness in [0, 1].

Nearness is normalized inverse depth, 1 = nearest (DESIGN.md section 3). The providers are
registered explicitly below; each is imported only when used, so that importing this package
(and ``degrade --help``) stays fast.

- ``gt``: the data set's metric depth, exactly invertible with the recorded ``z_min_m``/``z_max_m``.
- ``prior``: a weight-free heuristic (edge-aware ground-plane ramp) for photographs without depth.

Learned monocular models ("midas", "depth-anything") come later; ``auto`` will pick one when its
weights are present locally (see :func:`_learned_available`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ssr_datasets.errors import ConfigError

__all__ = [
    "DEPTH_PROVIDERS",
    "DepthRequest",
    "DepthResult",
    "estimate_nearness",
    "resolve_depth",
]

DepthRequest = Literal["auto", "gt", "prior"]
DEPTH_PROVIDERS: tuple[str, ...] = ("gt", "prior")


@dataclass(frozen=True)
class _ProviderSpec:
    """Where a provider lives and what it reads.

    The function is called as ``func(depth_m)`` if needs_depth else ``func(rgb)``; both forms
    return (nearness (H, W) float32, info dict).
    """

    module: str
    func: str
    needs_depth: bool


_REGISTRY: dict[str, _ProviderSpec] = {
    "gt": _ProviderSpec("degrade.depth.gt", "gt_nearness", needs_depth=True),
    "prior": _ProviderSpec("degrade.depth.prior", "prior_nearness", needs_depth=False),
}
_REQUESTS: tuple[str, ...] = ("auto", *DEPTH_PROVIDERS)


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


def _learned_available() -> str | None:
    """Return the name of a learned depth model whose weights are present locally, else None.

    Hook for the learned providers ("midas", "depth-anything"): they will check their weight
    files here (never downloading anything), so that ``auto`` prefers a real depth estimate over
    the prior on photographs without ground truth. No learned provider exists yet: always None.
    """
    return None


def resolve_depth(request: DepthRequest, has_gt: bool) -> tuple[str, str]:
    """Pick the depth provider for one image: (provider name, human-readable reason).

    ``auto`` takes ground truth when the image has it, else a learned model with local weights
    (none yet), else the prior. An explicit provider is honoured as is.

    Args:
        request: "auto" or a provider name from ``DEPTH_PROVIDERS``.
        has_gt: whether the source delivered metric depth for this image.

    Returns:
        (name, reason), name in ``DEPTH_PROVIDERS``.

    Raises:
        ConfigError: on an unknown request, or "gt" for an image without ground-truth depth.

    Example:
        >>> resolve_depth("auto", has_gt=True)
        ('gt', 'auto: the source provides metric depth')
    """
    if request not in _REQUESTS:
        raise ConfigError(f"unknown depth request {request!r}; choose one of {list(_REQUESTS)}")
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
    learned = _learned_available()
    if learned is not None:
        return learned, f"auto: no ground-truth depth; learned model {learned} found locally"
    return "prior", "auto: no ground-truth depth and no learned depth weights found locally"


def _provider(name: str) -> tuple[_ProviderSpec, Callable[[np.ndarray], tuple[np.ndarray, dict]]]:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown depth provider {name!r}; choose one of {list(_REGISTRY)}")
    spec = _REGISTRY[name]
    return spec, getattr(importlib.import_module(spec.module), spec.func)


def estimate_nearness(provider: str, rgb: np.ndarray, depth_m: np.ndarray | None) -> DepthResult:
    """Estimate nearness (H, W) float32 in [0, 1] for one image with the named provider.

    Args:
        provider: a name from ``DEPTH_PROVIDERS`` (resolve "auto" first with resolve_depth).
        rgb: (H, W, 3) uint8 RGB image.
        depth_m: (H, W) float32 metric depth in metres, or None; required by "gt".

    Returns:
        DepthResult with nearness at the resolution of rgb and its provenance.

    Raises:
        ConfigError: unknown provider, missing depth for "gt", or shapes that disagree.
        InputError: ground-truth depth without a single valid value.
    """
    spec, func = _provider(provider)
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        got = getattr(rgb, "shape", type(rgb).__name__)
        raise ConfigError(f"rgb must be a (H, W, 3) uint8 array, got {got}")
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
