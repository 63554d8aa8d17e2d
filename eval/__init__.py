"""eval: the paper's metrics, scoring and tables; console script `ssr-eval`.

``eval.metrics`` (registry, PSNR/SSIM/NIQE and the learned metrics, the cached scorer, pairing of
outputs with their ground truth) and ``eval.tables`` (Tables 1-3 as data, test sets, the methods
that fill rows, the runner and six output formats). Imported as ``eval`` (``python -m eval``
works; the shell's ``eval`` builtin is why the command is ``ssr-eval``). Nothing in the project
imports this package.
"""
