"""The ``ssr`` method: an ``ssr-train`` run folder through :class:`ssr_models.infer.SRPipeline`.

The run goes through the pipeline with the paper's method
(``ssr_models.method_choice.paper_method``: diffusion when the run has a diffusion stage, else
SVKR, whatever the validation says, unlike ``ssr-infer``'s ``auto``), seed 0, the ``depth``
provider and the pipeline's own tiling. ``check_row`` compares a row's ``expects`` flags
(``use_kernel``, ``use_depth``, ``use_svkr``) with the diffusion stage's ``model_config`` in
run.json, so a run cannot fill the wrong ablation row. The pipeline is loaded on first
``super_resolve``; the stages' run.json records answer ``unsupported``/``check_row`` without
loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_core.devices import resolve_device
from ssr_core.errors import ConfigError, InputError

from ..spec import RowSpec
from ..testsets import TestImage, TestSet
from .base import CODE_VERSIONS, MethodKind, digest, flags_text
from .run_stages import RunStages

if TYPE_CHECKING:
    from ssr_models.infer import SRPipeline


@dataclass
class SSRMethod:
    """A training run through ``SRPipeline`` (the paper's method, seed 0); see the module docstring."""

    name: str
    stages: RunStages
    device: str = "cpu"
    tile: int = 256
    overlap: int = 16
    depth: str = "prior"
    kind: MethodKind = "ssr"
    caches_outputs: bool = True
    _pipeline: SRPipeline | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        have = set(self.stages.folders)
        if "kernel" not in have or not have & {"nbsr", "diffusion"}:
            found = ", ".join(f"{s}/" for s in sorted(have)) or "none"
            raise InputError(self.stages.path, f"--method {self.name}: an SSR run needs kernel/ plus "
                                               f"diffusion/ or nbsr/ (each with run.json and last.pt); "
                                               f"found: {found}")
        scales = {s: int(r["scale"]) for s, r in self.stages.runs.items()}
        if len(set(scales.values())) != 1:
            raise ConfigError(f"{self.stages.path}: stages disagree on the scale: {scales}")

    @property
    def method(self) -> str:
        """The paper's method the run can run (diffusion, else svkr; stages checked)."""
        from ssr_models.infer import paper_method, resolve_method

        return resolve_method(paper_method(self.stages.folders), self.stages.folders, self.stages.path)

    @property
    def used(self) -> tuple[str, ...]:
        """The stages SRPipeline.from_checkpoint loads for ``method``."""
        from ssr_models.infer import stages_used

        return tuple(stages_used(self.method, self.stages.folders))

    @property
    def scale(self) -> int:
        return int(self.stages.runs["kernel"]["scale"])

    def _options(self) -> dict[str, Any]:
        # the device type is part of the output: diffusion noise comes from a torch.Generator on
        # that device, and CPU and CUDA generators give different streams for one seed
        return {"method": "paper", "seed": 0, "depth": self.depth, "tile": self.tile,
                "overlap": self.overlap, "device_type": self.device.split(":")[0]}

    def fingerprint_for(self, testset: TestSet) -> str:
        return digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind], "options": self._options(),
                       "stages": self.stages.record(self.used, paths=False)})

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": str(self.stages.path), "method": self.method,
                "scale": self.scale, "stages": self.stages.record(self.used),
                "options": {**self._options(), "device": self.device}, "version": CODE_VERSIONS[self.kind]}

    def unsupported(self, testset: TestSet) -> str | None:
        if testset.scale != self.scale:
            return f"x{self.scale} SSR run on a x{testset.scale} test set"
        return None

    def check_row(self, row: RowSpec) -> None:
        if not row.expects:
            return
        where = f"--method {self.name}={self.stages.path}: row {row.id} expects a diffusion stage with " \
                f"{flags_text(row.expects)}"
        if "diffusion" not in self.stages.folders:
            found = ", ".join(sorted(self.stages.folders))
            raise ConfigError(f"{where}; the run has no diffusion stage (found: {found})")
        from ssr_models.diffusion import conditioning_flags

        config = conditioning_flags(self.stages.runs["diffusion"]["model_config"])
        wrong = {k: v for k, v in row.expects.items() if config.get(k) is not v}
        if wrong:
            has = ", ".join(f"{k}={str(config.get(k, 'absent')).lower()}" for k in sorted(wrong))
            raise ConfigError(f"{where}; its diffusion stage ({self.stages.folders['diffusion']}) "
                              f"has {has}")

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        if self._pipeline is None:
            from ssr_models.infer import SRPipeline

            self._pipeline = SRPipeline.from_checkpoint(
                self.stages.path, method=self.method, device=resolve_device(self.device),  # type: ignore[arg-type]
                depth=self.depth, tile=self.tile, overlap=self.overlap, seed=0)
        return self._pipeline(np.ascontiguousarray(image.lr)).sr
