"""The ``spandrel`` method: pretrained SR checkpoints (SwinIR, HAT, Real-ESRGAN, DAT, ...).

spandrel (MIT, the optional extra ``pip install "ssr-bench[methods]"``) recognises an
architecture from a state dict's keys and shapes and rebuilds it with its hyper-parameters and
scale. ``.pth``/``.pt``/``.ckpt``/``.safetensors`` go through ``ModelLoader.load_from_file``
(pickles are read with spandrel's restricted unpickler); ``.bin`` (Hugging Face style state
dicts) is read with ``torch.load(weights_only=True)`` and handed to ``load_from_state_dict``.

Only single-image models with RGB in and RGB out are accepted (no inpainting, no grayscale).
Inference: float32, eval mode, no autograd; tiles through ``ssr_models.infer.blend_tiles``
unless the architecture declares tiling discouraged or done internally, when the whole image
runs at once (recorded in ``describe()``); spandrel pads tiles to the model's size
requirements and crops back, and clamps outputs to [0, 1]; uint8 by rounding half to even.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssr_core.devices import resolve_device
from ssr_core.errors import ConfigError, InputError
from ssr_core.io import sha256_file

from ..spec import RowSpec
from ..testsets import TestImage, TestSet
from .base import CODE_VERSIONS, MethodKind, digest, lr_tensor, refuse_expects, run_tiled

EXTRA_HINT = 'pip install "ssr-bench[methods]" (spandrel>=0.4)'


def _spandrel(what: str) -> Any:
    try:
        import spandrel
    except ImportError:
        raise ConfigError(f"{what}: loading pretrained SR checkpoints needs spandrel, which is not "
                          f"installed: {EXTRA_HINT}") from None
    return spandrel


@dataclass
class SpandrelMethod:
    """A loaded spandrel ``ImageModelDescriptor``; build it with :meth:`load`."""

    name: str
    path: Path
    model: Any  # spandrel.ImageModelDescriptor
    sha256: str
    spandrel_version: str
    device: str = "cpu"
    tile: int = 256
    overlap: int = 16
    kind: MethodKind = "spandrel"
    caches_outputs: bool = True

    @classmethod
    def load(cls, name: str, path: str | Path, *, device: str = "cpu", tile: int = 256,
             overlap: int = 16) -> SpandrelMethod:
        """Load ``path`` with spandrel onto ``device`` (float32, eval mode).

        Raises:
            ConfigError: spandrel missing (names the extra), an architecture spandrel does not
                know, a model that is not single-image RGB -> RGB.
            InputError: the file cannot be read as a checkpoint.
        """
        import torch

        path = Path(path)
        what = f"--method {name}={path}"
        spandrel = _spandrel(what)
        device = resolve_device(device)
        try:
            loader = spandrel.ModelLoader(device="cpu")
            if path.suffix.lower() == ".bin":
                state = torch.load(path, map_location="cpu", weights_only=True)
                model = loader.load_from_state_dict(spandrel.canonicalize_state_dict(state))
            else:
                model = loader.load_from_file(path)
        except spandrel.UnsupportedModelError:
            raise ConfigError(f"{what}: spandrel {spandrel.__version__} does not recognise the "
                              "architecture of this checkpoint (see spandrel's list of supported "
                              "architectures)") from None
        except Exception as exc:  # pickle, zip, safetensors and torch errors have no common base
            raise InputError(path, f"cannot load the checkpoint: {type(exc).__name__}: {exc}") from exc
        arch = model.architecture.name
        if not isinstance(model, spandrel.ImageModelDescriptor):
            raise ConfigError(f"{what}: a {arch} model for {model.purpose} is not a single-image "
                              "SR model (it takes more than an image)")
        if (model.input_channels, model.output_channels) != (3, 3):
            raise ConfigError(f"{what}: the {arch} model maps {model.input_channels} to "
                              f"{model.output_channels} channels; table methods need RGB -> RGB (3 -> 3)")
        model = model.to(torch.device(device), torch.float32).eval()
        return cls(name, path, model, sha256_file(path), spandrel.__version__, device, tile, overlap)

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    @property
    def tiled(self) -> bool:
        """False when the architecture asks not to be tiled from outside (whole images then)."""
        return self.model.tiling.name == "SUPPORTED"

    def _options(self) -> dict[str, Any]:
        return {"tile": self.tile, "overlap": self.overlap, "tiled": self.tiled}

    def fingerprint_for(self, testset: TestSet) -> str:
        return digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind], "sha256": self.sha256,
                       "spandrel": self.spandrel_version, "options": self._options()})

    def describe(self) -> dict[str, Any]:
        import torch

        arch = self.model.architecture
        return {"kind": self.kind, "path": str(self.path), "sha256": self.sha256,
                "architecture": arch.name, "architecture_id": str(arch.id), "tags": list(self.model.tags),
                "purpose": self.model.purpose, "scale": self.scale,
                "options": {**self._options(), "device": self.device},
                "versions": {"spandrel": self.spandrel_version, "torch": torch.__version__},
                "version": CODE_VERSIONS[self.kind]}

    def unsupported(self, testset: TestSet) -> str | None:
        if self.scale != testset.scale:
            return f"x{self.scale} model on a x{testset.scale} test set"
        return None

    def check_row(self, row: RowSpec) -> None:
        refuse_expects(self, row)

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        x = lr_tensor(image).to(self.device)
        tile = self.tile if self.tiled else max(x.shape[-2:])
        overlap = self.overlap if self.tiled else 0
        return run_tiled(x, self.model, self.scale, tile, min(overlap, tile - 1))
