"""Build hook for the optional C kernel; all metadata lives in pyproject.toml."""

import sys

from setuptools import Extension, setup

# -ffp-contract=off: no fused multiply-adds, so every CPU computes the same bits.
flags = [] if sys.platform == "win32" else ["-O3", "-ffp-contract=off", "-Wno-psabi"]

setup(
    ext_modules=[
        Extension(
            "degrade.ops._svblur",
            ["degrade/ops/_svblur.c"],
            extra_compile_args=flags,
            libraries=[] if sys.platform == "win32" else ["m"],
            optional=True,  # without a compiler the pure-torch backend is used
        )
    ]
)
