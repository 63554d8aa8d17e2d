"""Render a :class:`~eval.tables.result.TableResult` as terminal text, Markdown, CSV, JSON, LaTeX or HTML.

Layout, as the paper prints its tables: one row group per test set (its label once, in the
first column), one row per method, the descriptive columns (Backbone; Table 2's ticks), then per
metric three columns: ours (this run), paper (as printed) and Δ = ours − paper.

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

import csv
import io
import json
import textwrap
from typing import Any, Literal, get_args

from eval.metrics.registry import get_metric
from eval.metrics.scoring import jsonable
from ssr_datasets.errors import ConfigError

from .layout import (
    DELTA,
    NO_DELTA,
    Layout,
    Piece,
    Style,
    build_layout,
    compact_provenance,
    display_footnotes,
    legend,
    stand_in_text,
    styled,
    table_metrics,
)
from .result import Cell, GroupResult, RowResult, TableResult

Format = Literal["terminal", "markdown", "csv", "json", "latex", "html"]
FORMATS: tuple[str, ...] = get_args(Format)
CSV_COLUMNS: tuple[str, ...] = (
    "table", "group", "group_label", "group_status", "stand_in", "row", "row_label", "added",
    "metric", "ours", "paper", "diff", "status", "n_images", "note", "note_text")
_SUPERSCRIPT = str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


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
        return _csv(result)
    if fmt == "html":
        from .html import render_html

        return render_html(result)
    if fmt == "latex":
        from .latex import render_latex

        return render_latex(result)
    lay = build_layout(result)
    return _terminal(result, lay, color) if fmt == "terminal" else _markdown(result, lay)




# --- terminal ----------------------------------------------------------------------------------

def _sup(n: int) -> str:
    # superscript digits: "[n]" would read as one of the paper's citations ("DAN [31]")
    return str(n).translate(_SUPERSCRIPT)


_PLAIN = Style(marker=_sup)
_ANSI = Style(marker=_sup, bold=lambda s: f"\x1b[1m{s}\x1b[22m", better=lambda s: f"\x1b[32m{s}\x1b[39m",
              worse=lambda s: f"\x1b[31m{s}\x1b[39m", muted=lambda s: f"\x1b[2m{s}\x1b[22m")
_SUB = ("ours", "paper", DELTA)
_LABEL_WIDTH = 24  # a stand-in label wraps down its group's rows instead of widening the table


def _terminal(result: TableResult, lay: Layout, color: bool) -> str:
    """Return aligned text: a two-line header (metric over ours/paper/Δ), rules between groups."""
    style = _ANSI if color else _PLAIN
    nfix, nmet = len(lay.fixed), len(lay.metrics)
    body: list[list[tuple[str, str]] | None] = []  # (plain, styled) per column; None: a rule
    blank = [Piece("")] * (nfix - 1 + 3 * nmet)
    for block in lay.blocks:
        labels = _wrap(block.label)
        for i in range(max(len(block.rows), len(labels))):
            pieces = [labels[i] if i < len(labels) else Piece(""),
                      *(block.rows[i] if i < len(block.rows) else blank)]
            body.append([(styled(p, _PLAIN), styled(p, style)) for p in pieces])
        body.append(None)
    widths = [len(t) for t in lay.fixed] + [len(s) for _ in lay.metrics for s in _SUB]
    for cells in body:
        if cells is not None:
            widths = [max(w, len(plain)) for w, (plain, _) in zip(widths, cells, strict=True)]
    for k, title in enumerate(lay.headers):  # a title wider than its three columns widens them
        j = nfix + 3 * k
        widths[j + 1] += max(0, len(title) - (widths[j] + widths[j + 1] + widths[j + 2] + 2))

    def line(cells: list[tuple[str, str]]) -> str:
        text = "  ".join(s + " " * (widths[j] - len(p)) for j, (p, s) in enumerate(cells[:nfix]))
        for k in range(nmet):
            j = nfix + 3 * k
            text += " | " + " ".join(" " * (widths[j + i] - len(p)) + s
                                     for i, (p, s) in enumerate(cells[j:j + 3]))
        return text.rstrip()

    titles = "  ".join(" " * w for w in widths[:nfix]) + "".join(
        " | " + t.center(sum(widths[nfix + 3 * k:nfix + 3 * k + 3]) + 2) for k, t in enumerate(lay.headers))
    head = line([(t, t) for t in lay.fixed] + [(t, t) for t in _SUB] * nmet)
    rule = "-" * max(len(head), len(titles.rstrip()))
    out = _title_lines(result, color) + ["", titles.rstrip(), head, rule]
    out += [rule if cells is None else line(cells) for cells in body]
    out += ["", legend(result) + "; bold (with color): best in its group and column"]
    out += _section("Notes", [f"- {n}" for n in result.spec.notes])
    out += _section("Footnotes", [f"{_sup(i):>3} {t}" for i, t in enumerate(lay.footnotes, 1)])
    out += _section("Unavailable metrics", [f"- {_metric_title(m)}: {why}"
                                            for m, why in result.unavailable.items()])
    out += _section("Provenance", [f"- {p}" for p in compact_provenance(result)])
    return "\n".join(out) + "\n"


def _wrap(label: Piece, width: int = _LABEL_WIDTH) -> list[Piece]:
    """Return a long group label (a stand-in) as lines down the group's rows; marker on the first."""
    head, sep, rest = label.text.partition(" (stand-in: ")
    lines = [line for part in (head, f"(stand-in: {rest}" if sep else "")
             for line in textwrap.wrap(part, width, break_long_words=False, break_on_hyphens=False)] or [""]
    return [Piece(lines[0], label.note), *(Piece(t) for t in lines[1:])]


def _title_lines(result: TableResult, color: bool) -> list[str]:
    spec = result.spec
    lines = [f"\x1b[1m{spec.title}\x1b[22m" if color else spec.title, f"Paper: {spec.paper}"]
    stand_in = stand_in_text(result)
    if stand_in:
        lines.append(f"\x1b[33m{stand_in}\x1b[39m" if color else stand_in)
    return lines


def _section(title: str, lines: list[str]) -> list[str]:
    return ["", f"{title}:", *lines] if lines else []


def _metric_title(name: str) -> str:
    spec = get_metric(name)
    return spec.title + spec.arrow


# --- Markdown ----------------------------------------------------------------------------------

def md_escape(text: str) -> str:
    """Escape what GitHub Markdown would read as table syntax, emphasis or HTML."""
    for ch in ("\\", "|", "*", "_", "`"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;")  # a lone ">" mid-line is plain text; "<" could open a tag


_MD = Style(escape=md_escape, bold=lambda s: f"**{s}**", marker=lambda n: f"<sup>{n}</sup>")


def _markdown(result: TableResult, lay: Layout) -> str:
    """Return a GitHub table with the title, notes, footnotes and provenance around it."""
    spec = result.spec
    nfix = len(lay.fixed)
    out = [f"## {md_escape(spec.title)}", "", f"Paper: {md_escape(spec.paper)}"]
    stand_in = stand_in_text(result)
    if stand_in:
        out += ["", f"> **{md_escape(stand_in)}**"]
    header = [*lay.fixed, *(f"{h} {s}" for h in lay.headers for s in _SUB)]
    out += ["", _md_row([md_escape(h) for h in header]),
            _md_row([":--"] * nfix + ["--:"] * (len(header) - nfix))]
    for block in lay.blocks:
        for i, row in enumerate(block.rows or [[Piece("")] * (len(header) - 1)]):
            label = styled(block.label, _MD) if i == 0 else ""
            out.append(_md_row([label, *(styled(p, _MD) for p in row)]))
    out += ["", md_escape(legend(result)) + "; **bold**: best in its group and column"]
    out += _md_section("Notes", [f"- {md_escape(n)}" for n in spec.notes])
    out += _md_section("Footnotes", [f"{i}. {md_escape(t)}" for i, t in enumerate(lay.footnotes, 1)])
    out += _md_section("Unavailable metrics", [f"- {md_escape(_metric_title(m))}: {md_escape(why)}"
                                               for m, why in result.unavailable.items()])
    out += _md_section("Provenance", [f"- {md_escape(p)}" for p in compact_provenance(result)])
    return "\n".join(out) + "\n"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_section(title: str, lines: list[str]) -> list[str]:
    return ["", f"**{title}**", "", *lines] if lines else []


# --- CSV and JSON ------------------------------------------------------------------------------

def _csv(result: TableResult) -> str:
    """Return the tidy CSV described in the module docstring."""
    buf = io.StringIO()
    # text quoted, numbers bare: pandas' comment="#" then never cuts a note containing '#'
    writer = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(CSV_COLUMNS)
    notes, group_note = display_footnotes(result)
    for g in result.groups:
        for r in g.rows:
            for m in table_metrics(result):
                if m in r.cells:
                    writer.writerow(_csv_line(result, g, r, m, r.cells[m], notes,
                                              group_note.get(g.spec.id)))
    comments = [f"table: {result.spec.name}", f"title: {result.spec.title}",
                f"paper: {result.spec.paper}"]
    if result.stand_in:
        comments.append(f"stand_in: {result.stand_in}")
    if not all(g.comparable for g in result.groups):
        comments.append(f"diff: {NO_DELTA}")
    comments += [f"note: {n}" for n in result.spec.notes]
    comments += [f"footnote {i}: {t}" for i, t in enumerate(notes, 1)]
    comments += [f"unavailable {m}: {why}" for m, why in result.unavailable.items()]
    run = {"timings": result.timings, "computed": result.computed, "cached": result.cached}
    comments += [f"run: {_one_line_json(run)}", f"provenance: {_one_line_json(result.provenance)}"]
    return buf.getvalue() + "".join("# " + " ".join(c.splitlines()) + "\n" for c in comments)


def _csv_line(result: TableResult, g: GroupResult, r: RowResult, metric: str, cell: Cell,
              notes: list[str], group_note: int | None) -> list[Any]:
    note = cell.note or r.note or (group_note if cell.status == "no-data" else None)
    return [result.spec.name, g.spec.id, g.spec.title, g.status, g.stand_in or result.stand_in or "",
            r.spec.id, r.spec.title, r.added, metric, _num(cell.ours), _num(cell.paper),
            _num(g.diff(cell)), cell.status, r.n_images, "" if note is None else note,
            "" if note is None else notes[note - 1]]


def _num(value: float | None) -> float | str:
    return "" if value is None else float(value)  # float(): np.float32 is not "numeric" to csv


def _one_line_json(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, ensure_ascii=False, allow_nan=False, default=str)


def table_to_dict(result: TableResult) -> dict[str, Any]:
    """Return the whole result as strict-JSON-ready data (see the module docstring)."""
    spec = result.spec
    metrics = table_metrics(result)
    return jsonable({
        "table": spec.name, "title": spec.title, "paper": spec.paper, "scale": spec.scale,
        "group_title": spec.group_title, "notes": list(spec.notes), "stand_in": result.stand_in,
        "metrics": [{"name": m, "title": get_metric(m).title, "arrow": get_metric(m).arrow,
                     "higher_is_better": get_metric(m).higher_is_better, "unit": get_metric(m).unit,
                     "convention": get_metric(m).convention} for m in metrics],
        "attributes": [{"key": a.key, "title": a.title} for a in spec.attributes],
        "groups": [_group_dict(g, metrics) for g in result.groups],
        "footnotes": list(result.footnotes), "unavailable": dict(result.unavailable),
        "provenance": result.provenance, "timings": result.timings,
        "computed": result.computed, "cached": result.cached,
    })


def _group_dict(g: GroupResult, metrics: list[str]) -> dict[str, Any]:
    s = g.spec
    return {"id": s.id, "label": s.label, "title": s.title, "source": s.source, "split": s.split,
            "recipe": s.recipe, "seed": s.seed, "depth": s.depth, "status": g.status,
            "reason": g.reason, "stand_in": g.stand_in, "testset": g.testset,
            "preview": g.preview.key if g.preview is not None else None,
            "diff_note": None if g.comparable else NO_DELTA,
            "rows": [_row_dict(g, r, metrics) for r in g.rows]}


def _row_dict(g: GroupResult, r: RowResult, metrics: list[str]) -> dict[str, Any]:
    s = r.spec
    cells = {m: {"ours": c.ours, "paper": c.paper, "diff": g.diff(c), "status": c.status,
                 "note": c.note}
             for m, c in r.cells.items() if m in metrics}
    return {"id": s.id, "label": s.label, "title": s.title, "attributes": s.attributes,
            "builtin": s.builtin, "added": r.added, "method": r.method, "n_images": r.n_images,
            "note": r.note, "cells": cells, "per_image": r.per_image}
