"""The SSR model family (SSR paper Sec. 3): DKENet, NBSR, SVKR, ssr-pixel, ssr-latent; the Trainer.

Models are registered here, explicitly and lazily (importing ``ssr_models`` imports no torch
model code): ``MODELS`` is an ssr_core Registry whose entries carry a :class:`ModelInfo`;
``create_model(name, **overrides)`` builds one (a ConfigError with the choices and "did you
mean" for an unknown name). Every model exposes
``training_step(batch) -> (loss, logs)`` and ``validation_step(batch) -> logs`` and carries its
frozen config as ``model.config`` (``to_dict()`` / ``from_dict()``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from ssr_core.errors import ConfigError
from ssr_core.registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is, readable without importing it.

    Attributes:
        stage: the training stage that trains it (``ssr_models.configs.STAGES``).
        backbone: built on a pretrained backbone (``--backbone DIR``).
    """

    stage: Literal["kernel", "nbsr", "diffusion"]
    backbone: bool = False


#: The one place models are registered: name -> ``.module:factory`` (``factory(**overrides)``
#: builds it), imported on first use so listing the names imports no torch model code.
MODELS: Registry[Callable[..., Any], ModelInfo] = Registry("model", package=__name__)
MODELS.register_lazy("dkenet-tiny", ".dkenet:dkenet_tiny", meta=ModelInfo("kernel"))
MODELS.register_lazy("dkenet", ".dkenet:dkenet", meta=ModelInfo("kernel"))
MODELS.register_lazy("nbsr-tiny", ".nbsr:nbsr_tiny", meta=ModelInfo("nbsr"))
MODELS.register_lazy("nbsr", ".nbsr:nbsr", meta=ModelInfo("nbsr"))
# the from-scratch pixel-space ResShift model (starts at bicubic: y_0 + a zero-init residual)
MODELS.register_lazy("ssr-pixel-tiny", ".diffusion:ssr_pixel_tiny", meta=ModelInfo("diffusion"))
MODELS.register_lazy("ssr-pixel", ".diffusion:ssr_pixel", meta=ModelInfo("diffusion"))
# Table 2 ablations (the "both + SVKR" row is `ssr-pixel` run through ssr_models.svkr)
MODELS.register_lazy("ssr-pixel-di-kernel-only", ".diffusion:ssr_pixel_di_kernel_only",
                     meta=ModelInfo("diffusion"))
MODELS.register_lazy("ssr-pixel-depth-only", ".diffusion:ssr_pixel_depth_only",
                     meta=ModelInfo("diffusion"))
MODELS.register_lazy("ssr-pixel-no-svkr", ".diffusion:ssr_pixel_no_svkr",
                     meta=ModelInfo("diffusion"))
# the paper's model: AMF on a pretrained latent SR backbone (needs its weights: --backbone)
MODELS.register_lazy("ssr-latent-tiny", ".latent:ssr_latent_tiny",
                     meta=ModelInfo("diffusion", backbone=True))
MODELS.register_lazy("ssr-latent", ".latent:ssr_latent", meta=ModelInfo("diffusion", backbone=True))

#: Former names still accepted (configs, scripts and run.json files that use them); not listed
#: as choices. The pixel diffusion family was ``diffusion*`` before the latent model arrived.
ALIASES: dict[str, str] = {
    "diffusion-tiny": "ssr-pixel-tiny",
    "diffusion": "ssr-pixel",
    "diffusion-di-kernel-only": "ssr-pixel-di-kernel-only",
    "diffusion-depth-only": "ssr-pixel-depth-only",
    "diffusion-no-svkr": "ssr-pixel-no-svkr",
}
if set(ALIASES) & set(MODELS) or not set(ALIASES.values()) <= set(MODELS):  # a bug, at import
    raise ConfigError("ssr_models.ALIASES must map unused names to registered models")


def model_name(name: str) -> str:
    """Return the registered name of ``name`` (itself, or what a former name now means)."""
    return ALIASES.get(name, name)


def create_model(name: str, **overrides: Any) -> Any:
    """Build the registered model ``name`` (or a former name, ``ALIASES``) with config ``overrides``.

    Raises:
        ConfigError: an unknown name (the choices listed, with "did you mean"), or an unknown
            or ill-typed override (the family's config loader).
    """
    return MODELS.get(model_name(name))(**overrides)


__all__ = ["ALIASES", "MODELS", "ModelInfo", "create_model", "model_name"]
