"""Render a :class:`~eval.tables.result.TableResult` as terminal text, Markdown, CSV, JSON, LaTeX or HTML.

Modules: ``layout`` (the one layout every format writes), ``text`` (terminal, Markdown),
``data`` (CSV, JSON), ``latex``, ``html`` with ``figures`` (the zoomed-crop previews).

Layout, as the paper prints its tables: one row group per test set (its label once, in the
first column), one row per method, the descriptive columns (Backbone; Table 2's ticks), then per
metric three columns: ours (this run), paper (as printed) and Δ = ours − paper; a table whose
spec prints no paper values at all (the kernel track, ``eval.kernels``) shows ours alone.

Display conventions (terminal, Markdown, LaTeX, HTML):

- Values with 2 decimals like the paper; +inf (PSNR of identical images) as ``inf``; Δ signed
  ("+0.41"), only where both values exist and ours is finite; "—" where there is no value.
- ``n/a`` carries a footnote marker to its reason. A row that nothing local fills is labelled
  "(paper only)" and marked with its footnote; a row given by ``--method`` that the paper does not
  print is labelled "(added)". A group whose test set is absent has its label marked with a
  footnote holding its reason (appended after the result's own footnotes; see
  :func:`display_footnotes`).
- The best value of each column within a group is bold (Markdown ``**``, LaTeX ``\\textbf``, HTML
  ``<b>``, terminal ANSI bold with ``color``; plain terminal text has no bold), ours and paper
  columns separately, by the metric's direction; a column with fewer than two values has none.
- A stand-in is named under the title (whole table) and in the group's label. A stand-in group
  shows no Δ (nor CSV ``diff``, nor JSON ``diff``): ours is scored on other images than the
  paper's, so the difference means nothing; the legend says so (``layout.NO_DELTA``; JSON: the
  group's ``diff_note``; CSV: a ``# diff:`` comment).

CSV is tidy and carries full precision: one line per (group, row, metric) with the columns of
:data:`CSV_COLUMNS` (text quoted, numbers bare: ``inf``/``nan`` as such, empty for none;
``note`` is the footnote number, ``note_text`` the reason: the cell's, else the row's, else the
group's). After the data, comment lines starting with ``#`` carry the title, paper, notes,
``# footnote N: text`` (N as in ``note``), unavailable metrics and ``# provenance: {JSON}``.
``pandas.read_csv(path, comment="#")`` reads it; so does :mod:`csv` up to the first ``#`` line.

JSON (:func:`table_to_dict`) is the whole result: cells, per-image values, footnotes (cell and row
``note`` index them, 1-based), notes, group reasons, provenance, timings; strict JSON (non-finite
floats as "inf"/"-inf"/"nan"), keys sorted, indent 2.
"""

from __future__ import annotations

import json
from typing import Literal, get_args

from ssr_core.errors import ConfigError

from ..result import TableResult
from .data import CSV_COLUMNS, csv_text, table_to_dict
from .layout import build_layout
from .text import markdown_text, terminal_text

__all__ = ["CSV_COLUMNS", "FORMATS", "Format", "render", "table_to_dict"]

Format = Literal["terminal", "markdown", "csv", "json", "latex", "html"]
FORMATS: tuple[str, ...] = get_args(Format)


def render(result: TableResult, fmt: str, *, color: bool = False) -> str:
    """Return the table as text in one of :data:`FORMATS` (``color``: ANSI, terminal only).

    Raises:
        ConfigError: an unknown format (the message lists the choices).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "json":
        return json.dumps(table_to_dict(result), indent=2, sort_keys=True, ensure_ascii=False,
                          allow_nan=False, default=str) + "\n"  # default: a Path in provenance
    if fmt == "csv":
        return csv_text(result)
    if fmt == "html":  # html and latex import OpenCV (figures): loaded only when asked for
        from .html import render_html

        return render_html(result)
    if fmt == "latex":
        from .latex import render_latex

        return render_latex(result)
    lay = build_layout(result)
    return terminal_text(result, lay, color) if fmt == "terminal" else markdown_text(result, lay)
