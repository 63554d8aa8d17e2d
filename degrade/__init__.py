"""degrade: depth-driven, spatially variant degradations (the engine) and the `degrade` CLI.

The public pure ops are importable from here; everything else lives in its own module.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "apply_kernel_field", "gaussian_kernels", "truncated_mass"]


def __getattr__(name: str) -> Any:
    # Lazy so that `degrade --help` does not pay for importing torch.
    if name == "apply_kernel_field":
        from .ops.blur import apply_kernel_field

        return apply_kernel_field
    if name in ("gaussian_kernels", "truncated_mass"):
        from .ops import kernels

        return getattr(kernels, name)
    raise AttributeError(f"module 'degrade' has no attribute {name!r}")
