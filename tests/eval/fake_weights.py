"""Randomly initialized stand-ins for the learned metrics' weight files (no network).

Each file has exactly the keys and tensor shapes of the published one, made by instantiating the
same architecture (torchvision's AlexNet, pyiqa's MUSIQ and CLIP) with its own random init and
saving its ``state_dict()``. Large float tensors are stored as float16 to halve the disk and time
(the published RN50.pt is float16 as well; ``load_state_dict`` casts). The LPIPS linear weights
are drawn non-negative, as the published ones are, so that LPIPS is > 0 for different images.
Scores computed with these files are meaningless as quality numbers: tests check plumbing and
properties (finite, LPIPS(x, x) = 0, symmetry), never values.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from eval.metrics.weights import (
    ALEXNET,
    CLIP_RN50,
    CLIP_RN50_CONFIG,
    FILES,
    LPIPS_ALEX,
    LPIPS_ALEX_CHANNELS,
    MUSIQ_KONIQ,
    WeightFile,
)


def path_in(torch_home: Path, file: WeightFile) -> Path:
    """Return where ``file`` goes under a ``$TORCH_HOME``-like folder."""
    return torch_home / "hub" / file.subdir / file.name


def save(state: dict, torch_home: Path, file: WeightFile) -> Path:
    """Write a state dict (or any object) as ``file`` under ``torch_home``; return the path."""
    path = path_in(torch_home, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _half(state: dict) -> OrderedDict:
    return OrderedDict((k, v.half() if v.is_floating_point() and v.numel() > 4096 else v)
                       for k, v in state.items())


def lpips_lin_state(seed: int = 0) -> OrderedDict:
    """Return the five LPIPS 1x1-conv weights ``lin{i}.model.1.weight`` of shape (1, C, 1, 1), >= 0."""
    g = torch.Generator().manual_seed(seed)
    return OrderedDict((f"lin{i}.model.1.weight", torch.rand(1, c, 1, 1, generator=g) / c)
                       for i, c in enumerate(LPIPS_ALEX_CHANNELS))


def alexnet_state(seed: int = 0) -> OrderedDict:
    """Return a random torchvision AlexNet state dict (float16 for the big tensors)."""
    import torchvision

    torch.manual_seed(seed)
    return _half(torchvision.models.alexnet(weights=None).state_dict())


def musiq_state(seed: int = 0) -> OrderedDict:
    """Return a random pyiqa MUSIQ state dict with the KonIQ head (one output)."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(seed)
    return _half(MUSIQ(pretrained=False).state_dict())


def clip_state(seed: int = 0, config: tuple = CLIP_RN50_CONFIG) -> OrderedDict:
    """Return a random pyiqa CLIP state dict (RN50 by default) as a plain dict, not TorchScript.

    The three entries that the published TorchScript archive also holds (and that CLIP's
    ``build_model`` deletes) are added, so that the check's handling of them is exercised.
    """
    from pyiqa.archs.clip_model import CLIP

    torch.manual_seed(seed)
    state = _half(CLIP(*config).state_dict())
    state["input_resolution"] = torch.tensor(config[1])
    state["context_length"] = torch.tensor(config[5])
    state["vocab_size"] = torch.tensor(config[6])
    return state


def torchscript_archive(state: dict) -> torch.jit.ScriptModule:
    """Return a TorchScript module whose ``state_dict()`` is ``state`` (buffers in a module tree).

    OpenAI publishes RN50.pt as a TorchScript archive, and pyiqa's CLIP loader reads only that
    format (its fallback to ``torch.load`` starts mid-file after the failed ``torch.jit.load``).
    """
    root = torch.nn.Module()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if name not in module._modules:
                module.add_module(name, torch.nn.Module())
            module = module._modules[name]
        module.register_buffer(leaf, value)
    with warnings.catch_warnings():  # TorchScript is deprecated, but it is what CLIP ships
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(root)


def save_torchscript(state: dict, torch_home: Path, file: WeightFile) -> Path:
    """Write ``state`` as a TorchScript archive named ``file`` under ``torch_home``."""
    path = path_in(torch_home, file)
    path.parent.mkdir(parents=True, exist_ok=True)
    archive = torchscript_archive(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(archive, str(path))
    return path


def write_all(torch_home: Path, metrics: tuple[str, ...] = ("lpips", "musiq", "clipiqa")) -> dict[str, Path]:
    """Write every file the given metrics need under ``torch_home``; return name -> path."""
    makers = {LPIPS_ALEX.name: lpips_lin_state, ALEXNET.name: alexnet_state,
              MUSIQ_KONIQ.name: musiq_state, CLIP_RN50.name: clip_state}
    out = {}
    for metric in metrics:
        for file in FILES[metric]:
            writer = save_torchscript if file is CLIP_RN50 else save
            out[file.name] = writer(makers[file.name](), torch_home, file)
    return out
