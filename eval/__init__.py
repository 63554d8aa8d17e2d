"""eval: the paper's metrics, scoring, and (later) its tables; console script `ssr-eval`.

Imported as ``eval`` (``python -m eval`` works; the shell's ``eval`` builtin is why the command
is ``ssr-eval``). Nothing in the project imports this package.
"""
