"""The SSR paper's tables, rebuilt: specifications, test sets, methods, runner and renderers.

Public API (``ssr-eval run`` is a thin layer over it)::

    from eval.tables import load_table, run_table, RunOptions, Roots, parse_method, render
    spec = load_table("1")                                  # manifests/tables/table1.yaml
    options = RunOptions(roots=Roots(Path("/data")), work_dir=Path("work"),
                         methods=[parse_method("SwinIR=SwinIR-M_x4.pth")])
    print(render(run_table(spec, options), "markdown"))

Modules: ``spec`` (tables as data), ``testsets`` (build or reuse, fingerprints), ``methods/``
(what fills a row: ``base`` shared by every kind, one module per kind, ``parse`` for ``--method``),
``runner`` (one table, cached outputs and scores), ``result`` (the data model), ``render/`` (the
six output formats over one ``layout``; ``figures`` for the HTML previews). Names load lazily
(PEP 562), so importing this package costs nothing until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module (relative to this package) that defines it
_LAZY = {
    "load_table": ".spec",
    "TableSpec": ".spec",
    "run_table": ".runner",
    "RunOptions": ".runner",
    "Roots": ".testsets",
    "parse_method": ".methods",
    "render": ".render",
    "TableResult": ".result",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    """Import the lazily exported names on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
