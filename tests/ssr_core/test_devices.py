"""Device names: one parser and one CUDA check (ssr_core.devices) for every entry point."""

from __future__ import annotations

import pytest
import torch

from ssr_core.devices import parse_device, resolve_device
from ssr_core.errors import ConfigError


def fake_cuda(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    """Make torch report ``count`` CUDA devices (0 = CUDA unavailable)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


@pytest.mark.parametrize("text, want", [("cpu", "cpu"), (" CPU ", "cpu"), ("cuda", "cuda"),
                                        ("cuda:0", "cuda:0"), ("Cuda:12", "cuda:12"),
                                        ("auto", "auto")])
def test_parse_accepts_and_normalises(text: str, want: str) -> None:
    assert parse_device(text) == want


@pytest.mark.parametrize("text", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cpu:0", "mps",
                                  "", "cuda:1,2"])
def test_parse_refuses_with_the_choices(text: str) -> None:
    with pytest.raises(ConfigError, match=r"unknown device .*expected cpu, cuda, cuda:N or auto"):
        parse_device(text)


def test_resolve_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 0)
    assert resolve_device("cpu") == "cpu" and resolve_device("auto") == "cpu"
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(ConfigError, match=rf"'{name}' needs CUDA, but "
                                              r"torch.cuda.is_available\(\) is False.*use cpu"):
            resolve_device(name)


def test_resolve_with_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_cuda(monkeypatch, 2)
    assert [resolve_device(n) for n in ("auto", "cuda", "cuda:0", "CUDA:1")] == \
        ["cuda", "cuda", "cuda:0", "cuda:1"]
    with pytest.raises(ConfigError, match=r"'cuda:2' does not exist: this machine has 2 CUDA "
                                          r"devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")
    for name in ("cpu", "cuda", "cuda:1"):  # what resolve returns, torch takes
        torch.device(resolve_device(name))
