"""SR methods that fill table rows: what ``--method`` names and how each one super-resolves.

Kinds (:data:`METHOD_KINDS`, the one registry; ``parse_method`` picks the kind):

* ``bicubic``: MATLAB ``imresize`` bicubic of the LR (:mod:`degrade.ops.resize`), rounded to
  uint8 as MATLAB's uint8 conversion does (half away from zero: ``floor(x + 0.5)`` on x >= 0).
* ``nbsr-oracle``: an NBSR stage fed the test set's ground-truth kernel field, an upper bound.
* ``ssr``: a training run folder through :class:`ssr_models.infer.SRPipeline` (the paper's
  method: diffusion when the run has it, else svkr; seed 0, the depth provider ``depth``).
* ``spandrel``: a pretrained checkpoint (SwinIR, HAT, Real-ESRGAN, DAT, ...); see
  :mod:`eval.tables.methods.spandrel`.
* ``folder``: outputs made elsewhere, matched by file stem (the only kind not cached: the
  outputs already are files).

Every method has the :class:`Method` shape. ``fingerprint_for(testset)`` changes whenever the
method's outputs on that set can change: for model kinds it covers the weights' bytes, the
options that reach the output and a per-kind code version (the ``version`` of its registry
entry, ``CODE_VERSIONS``: bump it when the code changes outputs); for ``folder`` it covers the
matched files' names and bytes, which depend on the test set, hence the argument for all kinds.
Learned models (``nbsr-oracle``, ``ssr``) are loaded on first use so a run whose outputs are all
cached never loads them; ``spandrel`` loads at parse time because its scale is only known from the
weights.

Tiling: ``nbsr-oracle`` and ``spandrel`` go through :func:`ssr_models.infer.blend_tiles`
(``tile``/``overlap`` LR px); ``ssr`` tiles inside its pipeline with the same options.
"""

from __future__ import annotations

from .base import CODE_VERSIONS, METHOD_KINDS, Method, MethodKind, MethodKindInfo, digest, kinds_help
from .bicubic import BUILTINS, BicubicMethod, builtin_method
from .folder import FolderMethod
from .nbsr_oracle import NBSROracleMethod
from .parse import CHECKPOINT_SUFFIXES, parse_method
from .run_stages import RunStages
from .spandrel import SpandrelMethod
from .ssr import SSRMethod

__all__ = [
    "BUILTINS", "CHECKPOINT_SUFFIXES", "CODE_VERSIONS", "METHOD_KINDS", "BicubicMethod", "FolderMethod",
    "Method", "MethodKind", "MethodKindInfo", "NBSROracleMethod", "RunStages", "SSRMethod",
    "SpandrelMethod", "builtin_method", "digest", "kinds_help", "parse_method",
]
