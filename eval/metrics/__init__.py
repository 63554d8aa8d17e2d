"""The paper's metrics: registry, pure functions and the scorer.

Public API::

    from eval.metrics import psnr, ssim, niqe        # pure functions on one image (pair)
    from eval.metrics import score, ImagePair          # many images x many metrics, cached
    from eval.metrics import METRICS, get_metric, create_metric, MetricSpec

Importing this package loads only the registry (no numpy/OpenCV/torch); ``psnr``, ``ssim``,
``niqe`` and the scorer are imported on first access (module ``__getattr__``, PEP 562), so that
``ssr-eval --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import METRICS, MetricSpec, create_metric, get_metric

if TYPE_CHECKING:  # for type checkers and IDEs only; at run time these load lazily
    from .cache import ScoreCache
    from .native import psnr, ssim
    from .niqe_model import niqe
    from .scoring import ImagePair, ScoreResult, score

#: public name -> the module (relative to this package) that defines it
_LAZY = {
    "psnr": ".native",
    "ssim": ".native",
    "niqe": ".niqe_model",
    "score": ".scoring",
    "ImagePair": ".scoring",
    "ScoreResult": ".scoring",
    "ScoreCache": ".cache",
}

__all__ = ["METRICS", "ImagePair", "MetricSpec", "ScoreCache", "ScoreResult", "create_metric",
           "get_metric", "niqe", "psnr", "score", "ssim"]


def __getattr__(name: str) -> Any:
    """Import the lazily exported names on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
