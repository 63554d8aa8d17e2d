"""Table methods backed by an ``ssr-train`` run folder: the SSR pipeline and the NBSR oracle.

* ``ssr``: the run through :class:`ssr_models.infer.SRPipeline` with the paper's method
  (``ssr_models.method_choice.paper_method``: diffusion when the run has a diffusion stage, else
  SVKR, whatever the validation says, unlike ``ssr-infer``'s ``auto``), seed 0, the ``depth`` provider and the
  pipeline's own tiling. ``check_row`` compares a row's ``expects`` flags (``use_kernel``,
  ``use_depth``, ``use_svkr``) with the diffusion stage's ``model_config`` in run.json, so a run
  cannot fill the wrong ablation row.
* ``nbsr-oracle``: the run's NBSR stage (EMA weights) fed the test set's ground-truth kernel
  field instead of an estimate: an upper bound for the kernel estimation. It needs a synthetic
  set of the NBSR's scale and LR grid offset delta (the same (s1, s2, theta) means other kernels
  at another delta). A set built with another kernel window K than the NBSR's is accepted: the
  NBSR renders the field at its own K, recorded in ``describe()``. LR and field are stacked as 6
  channels and tiled together through ``blend_tiles``.

Models are loaded on first ``super_resolve``; the stages' run.json records (scale, delta, flags)
answer ``unsupported``/``check_row`` without loading anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ssr_datasets.devices import resolve_device
from ssr_datasets.errors import ConfigError, InputError
from ssr_datasets.shards import sha256_file

from .methods import (
    CODE_VERSIONS,
    MethodKind,
    digest,
    flags_text,
    lr_tensor,
    refuse_expects,
    run_tiled,
)
from .spec import RowSpec
from .testsets import TestImage, TestSet

if TYPE_CHECKING:
    from torch import nn

    from ssr_models.infer import SRPipeline



@dataclass
class RunStages:
    """The stage folders of a training run and their run.json records (no model loaded)."""

    path: Path
    folders: dict[str, Path]
    runs: dict[str, dict[str, Any]]
    _sha: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, path: Path) -> RunStages:
        """Find the stages of a run folder or stage folder (``ssr_models.infer.find_stages``)."""
        from ssr_models.infer import find_stages
        from ssr_models.run import read_run

        folders = find_stages(path)
        return cls(path, folders, {s: read_run(f) for s, f in folders.items()})

    def weights_sha256(self, stage: str) -> str:
        """Return the sha256 of ``stage/last.pt`` (hashed once)."""
        if stage not in self._sha:
            self._sha[stage] = sha256_file(self.folders[stage] / "last.pt")
        return self._sha[stage]

    def record(self, stages: tuple[str, ...], paths: bool = True) -> dict[str, Any]:
        """Return {stage: {model, model_config, last_pt_sha256[, path]}}.

        Fingerprints take ``paths=False``: a run folder moved elsewhere gives the same outputs.
        """
        out = {s: {"model": self.runs[s]["model"], "model_config": self.runs[s]["model_config"],
                   "last_pt_sha256": self.weights_sha256(s)} for s in stages}
        if paths:
            for s in stages:
                out[s]["path"] = str(self.folders[s])
        return out


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
        config = self.stages.runs["diffusion"]["model_config"]
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
