"""The stage folders of an ``ssr-train`` run and their run.json records, read without loading a model.

Shared by the two kinds a run folder fills: ``ssr`` (:mod:`.ssr`) and ``nbsr-oracle``
(:mod:`.nbsr_oracle`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssr_core.io import sha256_file


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

    def checkpoint(self, stage: str) -> Path:
        """Return the checkpoint the stage is run with: ``best.pt`` when present, else ``last.pt``."""
        from ssr_models.retention import stage_checkpoint

        return stage_checkpoint(self.folders[stage])

    def weights_sha256(self, stage: str) -> str:
        """Return the sha256 of the stage's checkpoint (:meth:`checkpoint`; hashed once)."""
        if stage not in self._sha:
            self._sha[stage] = sha256_file(self.checkpoint(stage))
        return self._sha[stage]

    def record(self, stages: tuple[str, ...], paths: bool = True) -> dict[str, Any]:
        """Return {stage: {model, model_config, checkpoint, weights_sha256[, path]}}.

        ``checkpoint`` is the file name used (best.pt or last.pt). Fingerprints take
        ``paths=False``: a run folder moved elsewhere gives the same outputs.
        """
        out = {s: {"model": self.runs[s]["model"], "model_config": self.runs[s]["model_config"],
                   "checkpoint": self.checkpoint(s).name,
                   "weights_sha256": self.weights_sha256(s)} for s in stages}
        if paths:
            for s in stages:
                out[s]["path"] = str(self.folders[s])
        return out
