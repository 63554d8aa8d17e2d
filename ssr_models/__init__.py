"""The SSR model family (SSR paper Sec. 3): DKENet, NBSR, SVKR, ssr-pixel, ssr-latent; the Trainer.

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
    # the from-scratch pixel-space ResShift model (starts at bicubic: y_0 + a zero-init residual)
    ("ssr-pixel-tiny", "diffusion", "ssr_pixel_tiny"),
    ("ssr-pixel", "diffusion", "ssr_pixel"),
    # Table 2 ablations (the "both + SVKR" row is `ssr-pixel` run through ssr_models.svkr)
    ("ssr-pixel-di-kernel-only", "diffusion", "ssr_pixel_di_kernel_only"),
    ("ssr-pixel-depth-only", "diffusion", "ssr_pixel_depth_only"),
    ("ssr-pixel-no-svkr", "diffusion", "ssr_pixel_no_svkr"),
    # the paper's model: AMF on a pretrained latent SR backbone (needs its weights: --backbone)
    ("ssr-latent-tiny", "latent", "ssr_latent_tiny"),
    ("ssr-latent", "latent", "ssr_latent"),
)

MODELS: dict[str, Callable[..., Any]] = {}
for _name, _module, _factory in _ENTRIES:
    if _name in MODELS:
        raise ConfigError(f"model {_name!r} registered twice")
    MODELS[_name] = _lazy(_module, _factory)

#: Former names still accepted (configs, scripts and run.json files that use them); not listed
#: as choices. The pixel diffusion family was ``diffusion*`` before the latent model arrived.
ALIASES: dict[str, str] = {
    "diffusion-tiny": "ssr-pixel-tiny",
    "diffusion": "ssr-pixel",
    "diffusion-di-kernel-only": "ssr-pixel-di-kernel-only",
    "diffusion-depth-only": "ssr-pixel-depth-only",
    "diffusion-no-svkr": "ssr-pixel-no-svkr",
}
if set(ALIASES) & set(MODELS) or not set(ALIASES.values()) <= set(MODELS):
    raise ConfigError("ssr_models.ALIASES must map unused names to registered models")


def model_name(name: str) -> str:
    """Return the registered name of ``name`` (itself, or what a former name now means)."""
    return ALIASES.get(name, name)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the registered model ``name`` with config ``overrides``; unknown names list the choices."""
    name = model_name(name)
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**overrides)


__all__ = ["ALIASES", "MODELS", "create_model", "model_name"]
