"""The ``bicubic`` method: MATLAB ``imresize`` bicubic upscaling of the LR, the one built-in.

:func:`degrade.ops.resize.imresize_bicubic` in float64, then uint8 as MATLAB's uint8 conversion
does it (half away from zero: ``floor(x + 0.5)`` on x >= 0) and clipping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ssr_core.errors import ConfigError

from ..spec import RowSpec
from ..testsets import TestImage, TestSet
from .base import CODE_VERSIONS, Method, MethodKind, digest, refuse_expects

BUILTINS: tuple[str, ...] = ("bicubic",)  # kinds that need no path: ``--method bicubic``


@dataclass
class BicubicMethod:
    """MATLAB bicubic upscaling of the LR; see the module docstring for the rounding."""

    name: str = "bicubic"
    kind: MethodKind = "bicubic"
    caches_outputs: bool = True

    def fingerprint_for(self, testset: TestSet) -> str:
        return digest({"kind": self.kind, "version": CODE_VERSIONS[self.kind]})

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "implementation": "degrade.ops.resize.imresize_bicubic",
                "convention": "MATLAB imresize bicubic (a = -0.5, half-pixel centres, symmetric "
                              "borders), float64, uint8 by floor(x + 0.5) and clipping",
                "version": CODE_VERSIONS[self.kind]}

    def unsupported(self, testset: TestSet) -> str | None:
        return None

    def check_row(self, row: RowSpec) -> None:
        refuse_expects(self, row)

    def super_resolve(self, image: TestImage, testset: TestSet) -> np.ndarray:
        import torch

        from degrade.ops.resize import imresize_bicubic

        lr = torch.from_numpy(np.array(image.lr)).permute(2, 0, 1).double()
        up = imresize_bicubic(lr, testset.scale).permute(1, 2, 0).numpy()
        return np.clip(np.floor(up + 0.5), 0, 255).astype(np.uint8)


def builtin_method(builtin: str, name: str | None = None) -> Method:
    """Return the built-in method ``builtin`` (a row's ``builtin:``) filling row ``name``.

    Raises:
        ConfigError: not a built-in (lists them).
    """
    if builtin not in BUILTINS:
        raise ConfigError(f"unknown built-in method {builtin!r}; built-ins: {', '.join(BUILTINS)}")
    return BicubicMethod(name or builtin)
