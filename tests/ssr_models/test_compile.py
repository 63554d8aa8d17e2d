"""ssr_models.precision.compile_networks on the real families: what is compiled, and that dynamo
traces each network in one graph (no graph break, no recompile) without changing a number.

Dynamo really traces; a counting backend that runs the captured graph eagerly stands in for
inductor (no C++ compiler runs here; inductor's kernels are the GPU check's business).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from ssr_core.errors import ConfigError
from ssr_models.diffusion import ssr_pixel_tiny
from ssr_models.dkenet import dkenet_tiny
from ssr_models.nbsr import nbsr_tiny
from ssr_models.precision import compile_networks
from tests.ssr_models import make_batch

FAMILIES: dict[str, tuple[Callable[[], nn.Module], dict[str, int], list[str]]] = {
    # param head and the re-degradation loss: the most code around the forward
    "dkenet": (lambda: dkenet_tiny(head="param", kernel_size=9, lambda_redeg=1.0),
               {"h": 8, "kernel_size": 9}, [""]),
    "nbsr": (lambda: nbsr_tiny(pca_samples=300), {"h": 8, "kernel_size": 21}, [""]),
    # no forward of its own: its AMF encoder and UNet are compiled
    "diffusion": (ssr_pixel_tiny, {"h": 4, "kernel_size": 21}, ["encoder", "unet"]),
}


def _steps(model: nn.Module, batch: Any, n: int) -> list[tuple[float, torch.Tensor]]:
    """Run n training steps' forward and backward; return (loss, first parameter's grad)."""
    out = []
    g = torch.Generator().manual_seed(0)  # the diffusion step draws t and the noise from it
    for _ in range(n):
        model.zero_grad(set_to_none=True)
        kw = {"generator": g} if "generator" in inspect.signature(model.training_step).parameters else {}
        loss, logs = model.training_step(batch, **kw)
        loss.backward()
        assert all(isinstance(v, float) for v in logs.values())  # the bookkeeping ran eagerly
        out.append((float(loss.detach()), next(model.parameters()).grad.clone()))
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
def test_networks_compile_in_one_graph_each_and_train_the_same(
        family: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._dynamo.testing import CompileCounter
    from torch._dynamo.utils import counters

    build, batch_kw, want_names = FAMILIES[family]
    backend = CompileCounter()
    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, *a, **kw: real_compile(
        fn, *a, **{**kw, "backend": backend}))
    batch = make_batch(**batch_kw)
    torch.manual_seed(0)
    eager = _steps(build(), batch, 2)
    torch.manual_seed(0)
    model = build()
    torch._dynamo.reset()
    counters.clear()
    assert compile_networks(model) == want_names
    compiled = _steps(model, batch, 2)
    # one graph per network for both steps: a graph break or a recompile would add frames
    assert backend.frame_count == len(want_names) and backend.op_count > 0
    assert not counters["graph_break"]
    for (la, ga), (lb, gb) in zip(eager, compiled, strict=True):
        assert lb == pytest.approx(la, rel=1e-5)
        torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-6)


def test_a_model_without_networks_is_a_config_error() -> None:
    class Stepper(nn.Module):  # a ModuleList has no forward of its own
        def __init__(self) -> None:
            super().__init__()
            self.blocks = nn.ModuleList([nn.Conv2d(3, 3, 1)])

    with pytest.raises(ConfigError, match="Stepper defines no forward .* nothing to compile"):
        compile_networks(Stepper())
