"""The ``nbsr-oracle`` method: a run's NBSR stage fed the ground-truth kernel field, an upper bound.

The run's NBSR stage (EMA weights) is fed the test set's ground-truth kernel field instead of an
estimate: an upper bound for the kernel estimation. It needs a synthetic set of the NBSR's scale
and LR grid offset delta (the same (s1, s2, theta) means other kernels at another delta). A set
built with another kernel window K than the NBSR's is accepted: the NBSR renders the field at its
own K, recorded in ``describe()``. LR and field are stacked as 6 channels and tiled together
through ``blend_tiles``. The model is loaded on first ``super_resolve``; the stage's run.json
(scale, delta) answers ``unsupported`` without loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.devices import resolve_device
from ssr_core.errors import ConfigError

from ..spec import RowSpec
from ..testsets import TestImage, TestSet
from .base import CODE_VERSIONS, MethodKind, digest, lr_tensor, refuse_expects, run_tiled
from .run_stages import RunStages

if TYPE_CHECKING:
    from torch import nn


@dataclass
class NBSROracleMethod:
    """NBSR fed the ground-truth kernel field (LR and field stacked as 6 channels for tiling)."""

    name: str
    stages: RunStages
    device: str = "cpu"
    tile: int = 256
    overlap: int = 16
    kind: MethodKind = "nbsr-oracle"
    caches_outputs: bool = True
    _model: nn.Module | None = field(default=None, repr=False)

    @property
    def run(self) -> dict[str, Any]:
        """The nbsr stage's run.json (scale, kernel_size, delta of its training shards)."""
        return self.stages.runs["nbsr"]

    def _options(self) -> dict[str, Any]:
        return {"tile": self.tile, "overlap": self.overlap, "device": self.device}

    def fingerprint_for(self, testset: TestSet) -> str:
        return digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind], "tile": self.tile,
                       "overlap": self.overlap, "stages": self.stages.record(("nbsr",), paths=False)})

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.stages.path), "stages": self.stages.record(("nbsr",)),
                "scale": int(self.run["scale"]), "kernel_size": int(self.run["kernel_size"]),
                "delta": float(self.run["delta"]), "kernel_field": "ground truth of the test set",
                "options": self._options(), "version": CODE_VERSIONS[self.kind]}

    def unsupported(self, testset: TestSet) -> str | None:
        scale, delta = int(self.run["scale"]), float(self.run["delta"])
        if testset.real_pairs:
            return "real LR/HR pairs have no ground-truth kernel field for the NBSR oracle"
        if testset.delta is None:
            return "the test set records no LR grid offset delta for its kernel field"
        downsampler = testset.info.get("downsampler", "direct")
        if downsampler != "direct":
            return (f"the test set's {downsampler!r} downsampler is not the exact per-pixel kernel "
                    "degradation, so its kernel field is not the ground truth NBSR expects")
        if testset.scale != scale:
            return f"x{scale} NBSR on a x{testset.scale} test set"
        if abs(testset.delta - delta) > 1e-6:
            return (f"the NBSR was trained with delta {delta:g} HR px, the test set uses delta "
                    f"{testset.delta:g}: its kernel field means other kernels")
        return None

    def check_row(self, row: RowSpec) -> None:
        refuse_expects(self, row)

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        import torch

        from ssr_models.run import load_model_from_run

        if image.kernel_field is None:
            raise ConfigError(f"{testset.name}: image {image.key} has no ground-truth kernel field")
        h, w = image.lr.shape[:2]
        if image.kernel_field.shape != (3, h, w):
            raise ConfigError(f"{testset.name}: image {image.key}: kernel field "
                              f"{image.kernel_field.shape} does not match the LR (3, {h}, {w})")
        if self._model is None:
            self._model = load_model_from_run(self.stages.folders["nbsr"], use_ema=True,
                                              map_location=resolve_device(self.device))
        model = self._model
        field_t = torch.from_numpy(np.array(image.kernel_field, dtype=np.float32))[None]
        x = torch.cat([lr_tensor(image), field_t], 1).to(self.device)
        return run_tiled(x, lambda t: model.super_resolve(t[:, :3], t[:, 3:]), testset.scale,
                         self.tile, self.overlap)
