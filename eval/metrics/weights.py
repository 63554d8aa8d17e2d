"""The weight files of the learned metrics: where they must be, where they come from, are they right.

pyiqa downloads its weights on first use; ssr-bench never does. Every file must already be in the
torch hub folder, in the layout that pyiqa, torchvision and CLIP use themselves:

- lpips: ``pyiqa/LPIPS_v0.1_alex-df73285e.pth`` (the five linear layers, 6 kB; also inside the
  ``lpips`` 0.1.4 wheel on PyPI as ``lpips/weights/v0.1/alex.pth``, same sha256) and
  ``checkpoints/alexnet-owt-7be5be79.pth`` (torchvision's ImageNet AlexNet, the trunk, 233 MB).
- musiq: ``pyiqa/musiq_koniq_ckpt-e95806b9.pth`` (MUSIQ trained on KonIQ-10k).
- clipiqa: ``clip/RN50.pt`` (OpenAI CLIP ResNet-50, a TorchScript archive, 244 MB). pyiqa's
  default ``clipiqa`` uses hand-written prompts: no prompt file is needed (``clipiqa+`` would).

The folders are under the *hub dir*: ``<weights_dir>/hub`` when a ``weights_dir`` is given (a
folder laid out like ``$TORCH_HOME``), else ``torch.hub.get_dir()`` (``$TORCH_HOME/hub``,
default ``~/.cache/torch/hub``), read when the check runs. Their URLs are in :data:`FILES`; the
error for a missing file prints a ``curl`` line and the pyiqa command that fetches it on a
connected machine. CLIP-IQA (``clipiqa``) uses hand-written prompts: no prompt file is needed.

A file is accepted when its sha256 is the published one (the hex digits in the file name, which
is torch.hub's convention, or the full digest in CLIP's URL). Any other file is loaded (tensors
only, ``weights_only=True``) and its keys and tensor shapes are compared with the architecture's
own ``state_dict()``, built on the ``meta`` device (no memory, no download): a missing key, an
unexpected key or a different shape is an error. This matters because pyiqa loads the LPIPS
layers with ``strict=False``: an empty or foreign file would silently give random scores. A file
that passes this way is used and recorded as not the published one. RN50.pt must moreover be a
TorchScript archive, the only format pyiqa's CLIP loader can read.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ssr_core.errors import ConfigError, MissingAssetError
from ssr_core.io import sha256_file
from ssr_core.tensors import compare_shapes

WeightKind = Literal["alexnet", "lpips_lin", "musiq", "clip_rn50"]
_KINDS: tuple[WeightKind, ...] = ("alexnet", "lpips_lin", "musiq", "clip_rn50")
_HF = "https://huggingface.co/chaofengc/IQA-PyTorch-Weights/resolve/main"


@dataclass(frozen=True)
class WeightFile:
    """One weight file a learned metric needs.

    Attributes:
        name: the file name, as the library that loads it caches it.
        subdir: its folder under the torch hub dir ("pyiqa", "checkpoints" or "clip").
        url: where it is published.
        sha256: its published sha256 in hex, or the leading digits of it that the name carries.
        kind: the architecture its keys and shapes are checked against.
        note: another way to get it, or "" (appended to the error message).
    """

    name: str
    subdir: str
    url: str
    sha256: str
    kind: WeightKind
    note: str = ""


LPIPS_ALEX = WeightFile(
    "LPIPS_v0.1_alex-df73285e.pth", "pyiqa", f"{_HF}/LPIPS_v0.1_alex-df73285e.pth",
    "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0", "lpips_lin",
    note="the same file is lpips/weights/v0.1/alex.pth in the lpips 0.1.4 wheel on PyPI "
         "(pip download lpips==0.1.4 --no-deps, then unzip lpips/weights/v0.1/alex.pth from the wheel "
         "and save it under this name)")
ALEXNET = WeightFile(
    "alexnet-owt-7be5be79.pth", "checkpoints", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "7be5be79", "alexnet")
MUSIQ_KONIQ = WeightFile(
    "musiq_koniq_ckpt-e95806b9.pth", "pyiqa", f"{_HF}/musiq_koniq_ckpt-e95806b9.pth", "e95806b9", "musiq")
CLIP_RN50 = WeightFile(
    "RN50.pt", "clip", "https://openaipublic.azureedge.net/clip/models/"
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762/RN50.pt",
    "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "clip_rn50")

#: The files of each learned metric, by the metric's registered name.
FILES: dict[str, tuple[WeightFile, ...]] = {
    "lpips": (LPIPS_ALEX, ALEXNET),
    "musiq": (MUSIQ_KONIQ,),
    "clipiqa": (CLIP_RN50,),
}

# AlexNet's five ReLU outputs that LPIPS compares (pyiqa's LPIPS.chns for net="alex").
LPIPS_ALEX_CHANNELS = (64, 192, 384, 256, 256)
# CLIP(embed_dim, image_resolution, vision_layers, vision_width, vision_patch_size,
#      context_length, vocab_size, transformer_width, transformer_heads, transformer_layers) of RN50.
CLIP_RN50_CONFIG: tuple[Any, ...] = (1024, 224, (3, 4, 6, 3), 64, None, 77, 49408, 512, 8, 12)
# Entries of the TorchScript RN50 state that CLIP's build_model deletes before loading.
_CLIP_EXTRA_KEYS = frozenset({"input_resolution", "context_length", "vocab_size"})


@dataclass(frozen=True)
class VerifiedFile:
    """A weight file that passed the check: its location, sha256 and whether it is the published one."""

    file: WeightFile
    path: Path
    sha256: str
    published: bool


def hub_dir(weights_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the torch hub folder the weights are looked for in (nothing is created).

    Args:
        weights_dir: a folder laid out like ``$TORCH_HOME``; None: torch's own hub dir.

    Returns:
        ``<weights_dir>/hub``; else ``torch.hub.get_dir()`` when torch is imported (it honours
        ``torch.hub.set_dir``), else ``$TORCH_HOME/hub`` as torch would resolve it now.
    """
    if weights_dir is not None:
        return Path(weights_dir).expanduser() / "hub"
    if "torch" in sys.modules:
        return Path(importlib.import_module("torch.hub").get_dir())
    xdg = os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.environ.get("TORCH_HOME", os.path.join(xdg, "torch"))).expanduser() / "hub"


def fetch_hint(file: WeightFile, metric: str, hub: Path) -> str:
    """Return the commands that put ``file`` in place on a connected machine."""
    dest = hub / file.subdir / file.name
    lines = [f"fetch it with: curl -L --create-dirs -o {dest} {file.url}"]
    if hub.name == "hub":  # pyiqa resolves $TORCH_HOME/hub/... itself: it fetches every file at once
        lines.append(f"or: TORCH_HOME={hub.parent} python -c \"import pyiqa; "
                     f"pyiqa.create_metric('{metric}', device='cpu')\"")
    if file.note:
        lines.append(f"or: {file.note}")
    return "; ".join(lines)


def verify_files(metric: str, weights_dir: str | os.PathLike[str] | None = None) -> list[VerifiedFile]:
    """Check that every file ``metric`` needs is in place and is the expected one.

    Missing files are found before anything is read, so a metric without weights fails in
    microseconds. Published files cost one sha256 pass (about 0.5 s for 244 MB); other files
    are also loaded, memory-mapped where the format allows, to compare keys and shapes.

    Args:
        metric: "lpips", "musiq" or "clipiqa".
        weights_dir: see :func:`hub_dir`.

    Returns:
        One :class:`VerifiedFile` per needed file, in the order of :data:`FILES`.

    Raises:
        MissingAssetError: the first file that is missing, unreadable or of another architecture,
            naming its folder, URL, sha256 and the fetch command (the other missing files too).
    """
    hub = hub_dir(weights_dir)
    files = FILES[metric]
    absent = [f for f in files if not (hub / f.subdir / f.name).is_file()]
    if absent:
        first = absent[0]
        hint = fetch_hint(first, metric, hub)
        if len(absent) > 1:
            hint += "; also missing: " + ", ".join(
                f"{f.name} (in {hub / f.subdir}, from {f.url})" for f in absent[1:])
        raise MissingAssetError(first.name, hub / first.subdir, first.url, _full_sha(first), hint)
    out = []
    for f in files:
        path = hub / f.subdir / f.name
        digest = sha256_file(path)
        published = digest.startswith(f.sha256)
        if not published:
            problem = _state_dict_problem(f, path)
            if problem is not None:
                raise MissingAssetError(
                    f.name, hub / f.subdir, f.url, _full_sha(f),
                    f"the file at {path} is not the expected one ({problem}); delete it (pyiqa and "
                    "torchvision keep a file that exists) and fetch it again: " + fetch_hint(f, metric, hub))
        out.append(VerifiedFile(f, path, digest, published))
    return out


def _full_sha(file: WeightFile) -> str | None:
    """Return the full published sha256, or None when only a prefix is known."""
    return file.sha256 if len(file.sha256) == 64 else None


def _state_dict_problem(file: WeightFile, path: Path) -> str | None:
    """Return why the file's keys/shapes do not fit ``file.kind``, or None when they do."""
    if file.kind == "clip_rn50" and not _is_torchscript(path):
        # pyiqa's CLIP load() tries torch.jit.load, then torch.load on the same, already read,
        # file object, which fails: only TorchScript archives (as OpenAI publishes) load.
        return "not a TorchScript archive, the only format pyiqa's CLIP loader reads"
    try:
        state = _load_state_dict(path)
    except Exception as exc:  # any failure to read means "not a usable file"
        return f"cannot be read as a state dict of tensors: {type(exc).__name__}: {str(exc)[:200]}"
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        return f"holds a {type(state).__name__}, not a state dict"
    torch = importlib.import_module("torch")
    # pyiqa's clean_state_dict: a "module." prefix (DataParallel) is dropped before loading.
    got = {(k[7:] if k.startswith("module.") else k): tuple(v.shape) for k, v in state.items()
           if isinstance(v, torch.Tensor)}
    if len(got) != len(state):
        return "holds values that are not tensors"
    if file.kind == "clip_rn50":
        got = {k: v for k, v in got.items() if k not in _CLIP_EXTRA_KEYS}
    return compare_shapes(got, reference_shapes(file.kind))


def _load_state_dict(path: Path) -> Any:
    """Load a checkpoint's tensors without running pickled code (TorchScript archives included)."""
    torch = importlib.import_module("torch")
    if _is_torchscript(path):  # OpenAI's RN50.pt is a TorchScript archive
        with quiet_jit_load():
            return torch.jit.load(str(path), map_location="cpu").state_dict()
    try:  # memory-mapped: only the shapes are read (zip format; older files cannot be mapped)
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:
        return torch.load(path, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def quiet_jit_load() -> Iterator[None]:
    """Silence torch's FutureWarning that ``torch.jit.load`` is deprecated (CLIP ships TorchScript)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.load` is deprecated", category=FutureWarning)
        yield


def _is_torchscript(path: Path) -> bool:
    """Return True if the file is a TorchScript zip archive (it holds code/ and constants.pkl)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") for n in zf.namelist())


def reference_shapes(kind: WeightKind) -> dict[str, tuple[int, ...]]:
    """Return the key -> shape map the architecture of ``kind`` expects (built on "meta").

    Imports torch, and torchvision or pyiqa's architecture module (not the rest of pyiqa's
    metrics); allocates no tensor memory and downloads nothing.
    """
    torch = importlib.import_module("torch")
    with torch.device("meta"):
        if kind == "alexnet":
            module = importlib.import_module("torchvision.models").alexnet(weights=None)
            return _shapes(module.state_dict())
        if kind == "lpips_lin":
            # Only the linear layers are in the file; the AlexNet trunk comes from torchvision.
            net_lin = importlib.import_module("pyiqa.archs.lpips_arch").NetLinLayer
            return {f"lin{i}.{k}": tuple(v.shape) for i, c in enumerate(LPIPS_ALEX_CHANNELS)
                    for k, v in net_lin(c, use_dropout=True).state_dict().items()}
        if kind == "musiq":
            musiq = importlib.import_module("pyiqa.archs.musiq_arch").MUSIQ
            return _shapes(musiq(pretrained=False).state_dict())  # KonIQ: num_class=1
        if kind == "clip_rn50":
            clip_cls = importlib.import_module("pyiqa.archs.clip_model").CLIP
            return _shapes(clip_cls(*CLIP_RN50_CONFIG).state_dict())
    raise ConfigError(f"unknown weight kind {kind!r}; choose from {list(_KINDS)}")


def _shapes(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in state.items()}
