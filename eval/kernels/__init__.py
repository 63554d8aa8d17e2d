"""The kernel-estimation track: score kernel estimators against the true per-pixel kernel fields.

Python API (the ``ssr-eval kernels`` command is a thin layer over it)::

    from eval.kernels import shard_kernel_set, parse_kernel_method, score_kernel_set
    kset = shard_kernel_set("out/sample")
    methods = [parse_kernel_method(m) for m in ("true", "oracle", "mean", "DKENet=runs/tiny")]
    for scores in score_kernel_set(kset, methods):
        print(scores.name, scores.mean("kernel_psnr"))

Modules: :mod:`.estimates` (estimates on a set's grid and the conversions to it),
:mod:`.metrics` (the metrics and their conventions), :mod:`.methods` (DKENet runs, folders of
estimates, baselines), :mod:`.run` (a set, scored and cached), :mod:`.maps` (heat-map pages).
"""

from __future__ import annotations

from .estimates import Estimate, Geometry
from .methods import BASELINES, KernelImage, KernelMethod, parse_kernel_method
from .metrics import KERNEL_METRICS, ImageKernelScores, score_image
from .run import KernelSet, MethodScores, score_kernel_set, shard_kernel_set

__all__ = ["BASELINES", "KERNEL_METRICS", "Estimate", "Geometry", "ImageKernelScores", "KernelImage",
           "KernelMethod", "KernelSet", "MethodScores", "parse_kernel_method", "score_image",
           "score_kernel_set", "shard_kernel_set"]
