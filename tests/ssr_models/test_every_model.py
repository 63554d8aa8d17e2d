"""Registry-wide model test (timm's test_models): every registered model, forward and backward.

Each name in ``ssr_models.MODELS`` is built at a tiny size (its family's tiny overrides on the
paper-sized variants, so the ablations keep their own conditioning flags) and one
``training_step`` runs on a random batch; the loss must be finite and backward must reach the
trainable parameters with finite gradients, and no frozen parameter. A model added to the
registry without an entry in ``TINY`` fails here, so every variant stays covered.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

import ssr_models
from ssr_models.batch import Batch

_PIXEL = {"base_channels": 8, "channel_mult": (1, 2), "num_res_blocks": 1, "amf_levels": (0, 1),
          "amf": {"small_channels": 4, "lr_channels": 8, "hidden": 8}}
_LATENT = {"lr_base_channels": 8, "amf": {"lr_channels": 8, "small_channels": 4, "hidden": 8}}

#: registered name -> config overrides that make it tiny ("backbone" is added for latent ones).
TINY: dict[str, dict[str, Any]] = {
    "dkenet-tiny": {},
    "dkenet": {"channels": 8, "depth_channels": 4, "blocks": 1},
    "nbsr-tiny": {},
    "nbsr": {"channels": 8, "growth": 4, "blocks": 1, "cond_channels": 4, "pca_samples": 1000},
    "ssr-pixel-tiny": _PIXEL,
    "ssr-pixel": _PIXEL,
    "ssr-pixel-di-kernel-only": _PIXEL,
    "ssr-pixel-depth-only": _PIXEL,
    "ssr-pixel-no-svkr": _PIXEL,
    "ssr-latent-tiny": {},
    "ssr-latent": _LATENT,
}


def _batch(n: int = 2, side: int = 8, seed: int = 0) -> Batch:
    """A random x4 batch: HR (n, 3, 4 side, 4 side), its kernel field (s1, s2 HR px, theta rad)."""
    g = torch.Generator().manual_seed(seed)
    kernel_field = torch.stack([0.6 + 2.9 * torch.rand(n, side, side, generator=g),
                                0.6 + 2.9 * torch.rand(n, side, side, generator=g),
                                math.pi * torch.rand(n, side, side, generator=g)], 1)
    return Batch(hr=torch.rand(n, 3, 4 * side, 4 * side, generator=g),
                 lr=torch.rand(n, 3, side, side, generator=g),
                 nearness=torch.rand(n, 1, 4 * side, 4 * side, generator=g), kernel_field=kernel_field,
                 scale=4, kernel_size=21, delta=1.5)


def test_every_registered_model_has_a_tiny_setting() -> None:
    assert tuple(TINY) == ssr_models.MODELS.names()


@pytest.mark.parametrize("name", ssr_models.MODELS.names())
def test_every_model_forward_backward(name: str, request: pytest.FixtureRequest,
                                      one_torch_thread: None) -> None:
    overrides = dict(TINY[name])
    if ssr_models.MODELS.meta(name).backbone:
        overrides["backbone"] = str(request.getfixturevalue("tiny_backbone"))
    torch.manual_seed(0)
    model = ssr_models.create_model(name, **overrides).train()
    trainable = {k: p for k, p in model.named_parameters() if p.requires_grad}
    frozen = {k: p for k, p in model.named_parameters() if not p.requires_grad}
    assert trainable, f"{name} has no trainable parameter"

    loss, logs = model.training_step(_batch())
    assert loss.ndim == 0 and torch.isfinite(loss), (name, float(loss))
    assert math.isfinite(logs["loss"]) and logs["loss"] == pytest.approx(float(loss.detach()))
    loss.backward()

    reached = {k: p.grad for k, p in trainable.items() if p.grad is not None}
    assert reached, f"backward reached no trainable parameter of {name}"
    assert all(torch.isfinite(g).all() for g in reached.values()), name
    assert any(g.abs().sum() > 0 for g in reached.values()), f"all gradients of {name} are zero"
    assert all(p.grad is None for p in frozen.values()), f"a frozen parameter of {name} got a grad"
