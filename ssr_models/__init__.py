"""The SSR model family (SSR paper Sec. 3): DKENet, NBSR, AMF diffusion, SVKR; the Trainer.

Models are registered here, explicitly and lazily (importing ``ssr_models`` imports no torch
model code): ``MODELS[name](**overrides)`` builds one, ``create_model`` does the same with a
ConfigError that lists the choices for an unknown name. Every model exposes
``training_step(batch) -> (loss, logs)`` and ``validation_step(batch) -> logs`` and carries its
frozen config as ``model.config`` (``to_dict()`` / ``from_dict()``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from ssr_core.errors import ConfigError


def _lazy(module: str, factory: str) -> Callable[..., Any]:
    def build(**overrides: Any) -> Any:
        return getattr(importlib.import_module(f"{__name__}.{module}"), factory)(**overrides)

    build.__name__ = factory
    build.__qualname__ = factory
    build.__doc__ = f"Build {module}.{factory}(**overrides) (imported on first use)."
    return build


_ENTRIES: tuple[tuple[str, str, str], ...] = (
    ("dkenet-tiny", "dkenet", "dkenet_tiny"),
    ("dkenet", "dkenet", "dkenet"),
    ("nbsr-tiny", "nbsr", "nbsr_tiny"),
    ("nbsr", "nbsr", "nbsr"),
    ("diffusion-tiny", "diffusion", "diffusion_tiny"),
    ("diffusion", "diffusion", "diffusion"),
    # Table 2 ablations (the "both + SVKR" row is `diffusion` run through ssr_models.svkr)
    ("diffusion-di-kernel-only", "diffusion", "diffusion_di_kernel_only"),
    ("diffusion-depth-only", "diffusion", "diffusion_depth_only"),
    ("diffusion-no-svkr", "diffusion", "diffusion_no_svkr"),
    # the paper's model: AMF on a pretrained latent SR backbone (needs its weights: --backbone)
    ("ssr-latent-tiny", "latent", "ssr_latent_tiny"),
    ("ssr-latent", "latent", "ssr_latent"),
)

MODELS: dict[str, Callable[..., Any]] = {}
for _name, _module, _factory in _ENTRIES:
    if _name in MODELS:
        raise ConfigError(f"model {_name!r} registered twice")
    MODELS[_name] = _lazy(_module, _factory)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the registered model ``name`` with config ``overrides``; unknown names list the choices."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**overrides)


__all__ = ["MODELS", "create_model"]
