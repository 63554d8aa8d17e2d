"""The training batch: shard samples as float tensors, stacked along a batch axis.

Conventions (DESIGN.md sections 4 and 6): images are float32 (B, 3, H, W) RGB in [0, 1];
``nearness`` is float32 (B, 1, H, W) in [0, 1] (1 = nearest); ``kernel_field`` is float32
(B, 3, H/s, W/s) holding ``s1, s2`` (standard deviations in HR pixels) and ``theta``
(radians in [0, pi)) of the Gaussian used for each LR pixel. ``scale``, ``kernel_size``
and ``delta`` (LR grid offset in HR pixels) are shared by the whole batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ssr_core.errors import InputError
from ssr_datasets.schema import NEARNESS_MAX, Sample

__all__ = ["Batch", "collate"]


@dataclass
class Batch:
    """A stack of aligned (HR, LR, nearness, kernel field) crops.

    Attributes:
        hr: float32 (B, 3, H, W) in [0, 1].
        lr: float32 (B, 3, H/s, W/s) in [0, 1], the degraded input.
        nearness: float32 (B, 1, H, W) in [0, 1], 1 = nearest.
        kernel_field: float32 (B, 3, H/s, W/s): s1, s2 (HR px) and theta (rad) per LR pixel.
        scale: The SR factor s.
        kernel_size: K, the side of the kernel window the shards were made with.
        delta: LR grid offset in HR pixels (``meta["delta"]``).
        keys: Sample keys, in batch order (for logs and debugging).
    """

    hr: torch.Tensor
    lr: torch.Tensor
    nearness: torch.Tensor
    kernel_field: torch.Tensor
    scale: int
    kernel_size: int
    delta: float
    keys: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return int(self.hr.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return a copy with every tensor moved to ``device`` (metadata unchanged)."""
        return replace(self, **{name: getattr(self, name).to(device, non_blocking=non_blocking)
                                for name in ("hr", "lr", "nearness", "kernel_field")})

    def pin_memory(self) -> Batch:
        """Return a copy with pinned tensors (DataLoader ``pin_memory=True`` calls this)."""
        return replace(self, **{name: getattr(self, name).pin_memory()
                                for name in ("hr", "lr", "nearness", "kernel_field")})


def _meta_value(sample: Sample, name: str) -> object:
    if name not in sample.meta:
        raise InputError(f"sample {sample.key!r}", f"meta has no {name!r}; the shards predate "
                                                   "the training format, rebuild them")
    return sample.meta[name]


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples (HWC uint8 / uint16 arrays) into a float ``Batch``.

    Args:
        samples: One or more samples of equal sizes sharing ``scale``, ``kernel_size`` and
            ``delta`` in their meta (crop them first: see ``ssr_models.data``).

    Raises:
        InputError: No samples, a missing meta key, samples that disagree on scale,
            kernel_size or delta (mixing shard sets of different recipes), or on sizes.
    """
    if len(samples) == 0:
        raise InputError("<batch>", "cannot collate an empty list of samples")
    first = samples[0]
    shared = {name: _meta_value(first, name) for name in ("scale", "kernel_size", "delta")}
    for sample in samples[1:]:
        for name, want in shared.items():
            got = _meta_value(sample, name)
            if got != want:
                raise InputError(f"sample {sample.key!r}",
                                 f"{name} {got!r} differs from {want!r} of {first.key!r}: one "
                                 "batch needs one scale, kernel_size and delta (do not mix "
                                 "shard sets built with different recipes)")
        if sample.hr.shape != first.hr.shape:
            raise InputError(f"sample {sample.key!r}",
                             f"HR size {sample.hr.shape[:2]} differs from {first.hr.shape[:2]} "
                             f"of {first.key!r}: crop to one size or use batch_size 1")
    hr = np.stack([s.hr for s in samples])
    lr = np.stack([s.lr for s in samples])
    near = np.stack([s.nearness for s in samples])
    kernel_field = np.stack([s.kernel_field for s in samples])
    return Batch(
        hr=torch.from_numpy(hr).permute(0, 3, 1, 2).float().div_(255.0).contiguous(),
        lr=torch.from_numpy(lr).permute(0, 3, 1, 2).float().div_(255.0).contiguous(),
        nearness=torch.from_numpy(near.astype(np.float32))[:, None].div_(float(NEARNESS_MAX)),
        kernel_field=torch.from_numpy(np.ascontiguousarray(kernel_field, dtype=np.float32)),
        scale=int(shared["scale"]),  # type: ignore[call-overload]
        kernel_size=int(shared["kernel_size"]),  # type: ignore[call-overload]
        delta=float(shared["delta"]),  # type: ignore[arg-type]
        keys=tuple(s.key for s in samples),
    )
