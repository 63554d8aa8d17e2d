"""The format-independent layout of a table result: pieces of text with their decorations.

Every renderer (``text``, ``data``, ``latex``, ``html`` of :mod:`eval.tables.render`)
writes the same :class:`Layout`, so that the conventions listed in :mod:`eval.tables.render`
(2 decimals, signed Δ, "—", footnote numbers, best per group and column, stand-in labels) hold
in every format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from eval.metrics.registry import get_metric

from ..result import GroupResult, RowResult, TableResult

DASH = "\u2014"
DELTA = "\u0394"
_COLUMNS: tuple[Literal["ours", "paper"], ...] = ("ours", "paper")
LEGEND = (f"ours: this run; paper: as printed; {DELTA} = ours \u2212 paper; {DASH}: no value")
#: The legend of a table that prints no paper values (the kernel track): one column per metric.
LEGEND_OURS = f"values of this run; {DASH}: no value"
#: Sub-columns per metric: ours, paper, Δ; a table without paper values shows ours alone.
SUB_COLUMNS: tuple[str, ...] = ("ours", "paper", DELTA)
#: Why a stand-in group shows no Δ (printed with the legend of every format).
NO_DELTA = (f"no {DELTA} on a stand-in: ours is scored on stand-in images, the paper's values on "
            "its own test set, so their difference means nothing")


@dataclass(frozen=True)
class Piece:
    """One displayed cell: plain text plus what each format decorates it with."""

    text: str
    note: int | None = None  # display-footnote number (1-based), see display_footnotes
    bold: bool = False
    tone: Literal["better", "worse"] | None = None  # Δ against the paper, by metric direction
    muted: bool = False  # a placeholder (—, n/a)


@dataclass
class GroupBlock:
    """One row group: its label and, per row, the pieces after the group column."""

    group: GroupResult
    label: Piece
    rows: list[list[Piece]] = field(default_factory=list)


@dataclass
class Layout:
    """The table as pieces: fixed column titles, metric column titles, blocks, footnotes."""

    fixed: list[str]  # group title, "Method", attribute titles
    metrics: list[str]  # metric names, in column order
    headers: list[str]  # "PSNR↑", ... (one per metric)
    blocks: list[GroupBlock]
    footnotes: list[str]
    sub: tuple[str, ...] = SUB_COLUMNS  # sub-columns per metric (("ours",) without paper values)


def fmt_value(value: float | None) -> str:
    """Return a value with 2 decimals like the paper; ``inf``/``nan`` spelled out, None as "—".

    >>> fmt_value(22.774), fmt_value(float("inf")), fmt_value(None)
    ('22.77', 'inf', '—')
    """
    if value is None:
        return DASH
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return f"{value:.2f}"


def fmt_diff(diff: float | None) -> str:
    """Return a signed difference with 2 decimals ("+0.41"), None as "—".

    >>> fmt_diff(0.414), fmt_diff(-1.0)
    ('+0.41', '-1.00')
    """
    return DASH if diff is None else f"{diff:+.2f}"


def has_paper(result: TableResult) -> bool:
    """Return whether the table prints paper values at all (the kernel track prints none)."""
    return any(r.paper for r in result.spec.rows)


def legend(result: TableResult) -> str:
    """Return the legend line: :data:`LEGEND`, plus :data:`NO_DELTA` when a group is a stand-in."""
    if not has_paper(result):
        return LEGEND_OURS
    if all(g.comparable for g in result.groups):
        return LEGEND
    return f"{LEGEND}; {NO_DELTA}"


def display_footnotes(result: TableResult) -> tuple[list[str], dict[str, int]]:
    """Return the footnotes to print and group id -> the footnote number of its reason.

    The result's footnotes keep their numbers (cells and rows index them); the reason of each
    not-found group follows, unless the same text is already a footnote.
    """
    notes = list(result.footnotes)
    where: dict[str, int] = {}
    for g in result.groups:
        if g.reason:
            if g.reason not in notes:
                notes.append(g.reason)
            where[g.spec.id] = notes.index(g.reason) + 1
    return notes, where


def table_metrics(result: TableResult) -> list[str]:
    """Return the metric columns present (the table's order; a run may score a subset)."""
    present = {m for g in result.groups for r in g.rows for m in r.cells}
    metrics = [m for m in result.spec.metrics if m in present]
    return metrics or list(result.spec.metrics)


def build_layout(result: TableResult) -> Layout:
    """Lay the result out as pieces (format-independent; see the module docstring)."""
    spec = result.spec
    metrics = table_metrics(result)
    notes, group_note = display_footnotes(result)
    sub = SUB_COLUMNS if has_paper(result) else SUB_COLUMNS[:1]
    blocks = []
    for g in result.groups:
        label = g.spec.title + (f" (stand-in: {g.stand_in})" if g.stand_in else "")
        block = GroupBlock(g, Piece(label, group_note.get(g.spec.id)))
        best = {(m, w): _best(result, g, m, w) for m in metrics for w in _COLUMNS}
        for r in g.rows:
            attrs = [Piece(r.spec.attributes.get(a.key, "")) for a in spec.attributes]
            block.rows.append([_row_label(r), *attrs,
                               *(p for m in metrics for p in _cell_pieces(g, r, m, best)[:len(sub)])])
        blocks.append(block)
    fixed = [spec.group_title, "Method", *(a.title for a in spec.attributes)]
    headers = [get_metric(m).title + get_metric(m).arrow for m in metrics]
    return Layout(fixed, metrics, headers, blocks, notes, sub)


def _best(result: TableResult, group: GroupResult, metric: str,
          which: Literal["ours", "paper"]) -> float | None:
    """Return the column's best value, or None when fewer than two values compete."""
    values = [getattr(r.cells[metric], which) for r in group.rows if metric in r.cells]
    if sum(v is not None and v == v for v in values) < 2:
        return None
    return result.best(group, metric, which)


def _row_label(row: RowResult) -> Piece:
    text = row.spec.title
    if row.added:
        text += " (added)"
    if row.cells and all(c.status == "paper-only" for c in row.cells.values()):
        text += " (paper only)"
    return Piece(text, row.note)


def _cell_pieces(group: GroupResult, row: RowResult, metric: str,
                 best: dict[tuple[str, str], float | None]) -> list[Piece]:
    cell = row.cells.get(metric)
    if cell is None:
        return [Piece(DASH, muted=True)] * 3
    if cell.status == "ok":
        ours = Piece(fmt_value(cell.ours), cell.note, bold=cell.ours == best[(metric, "ours")])
    elif cell.status == "na":
        ours = Piece("n/a", cell.note, muted=True)
    else:
        ours = Piece(DASH, cell.note, muted=True)
    best_paper = best[(metric, "paper")]
    paper = Piece(fmt_value(cell.paper), bold=cell.paper is not None and cell.paper == best_paper)
    diff = group.diff(cell)
    tone = None
    if diff:
        tone = "better" if (diff > 0) == get_metric(metric).higher_is_better else "worse"
    return [ours, paper, Piece(fmt_diff(diff), tone=tone, muted=diff is None)]


@dataclass(frozen=True)
class Style:
    """How one format writes a piece: escaping, bold, footnote marker, tones."""

    escape: Callable[[str], str] = str
    bold: Callable[[str], str] = str
    marker: Callable[[int], str] = lambda n: f"[{n}]"
    better: Callable[[str], str] = str
    worse: Callable[[str], str] = str
    muted: Callable[[str], str] = str


def styled(piece: Piece, style: Style) -> str:
    """Return a piece written in a style (escaped text, bold, tone, then the marker)."""
    text = style.escape(piece.text)
    if piece.bold:
        text = style.bold(text)
    if piece.tone is not None:
        text = (style.better if piece.tone == "better" else style.worse)(text)
    elif piece.muted:
        text = style.muted(text)
    return text + (style.marker(piece.note) if piece.note else "")


def compact_provenance(result: TableResult) -> list[str]:
    """Return short provenance lines: test sets, methods (sha256[:12]), versions, command, run."""
    lines = []
    for g in result.groups:
        lines.append(f"test set {g.spec.title}: " + (_testset_text(g.testset) if g.testset else
                                                     f"{g.status} (paper values only)"))
    seen: set[str] = set()
    for g in result.groups:
        for r in g.rows:
            if r.method and r.spec.id not in seen:
                seen.add(r.spec.id)
                lines.append(f"method {r.spec.title}: {_method_text(r.method)}")
    prov = result.provenance
    if isinstance(prov.get("versions"), dict):
        lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(prov["versions"].items())))
    if prov.get("command"):
        lines.append(f"command: {prov['command']}")
    run = f"run: {result.computed} per-image scores computed, {result.cached} cached"
    if result.timings:
        run += "; " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items())
    return [*lines, run]


def _testset_text(info: dict[str, Any]) -> str:
    recipe = info.get("recipe")
    parts = [" ".join(str(info[k]) for k in ("source", "split") if info.get(k)),
             f"recipe {recipe.get('name')}" if isinstance(recipe, dict) else "",
             f"seed {info['seed']}" if "seed" in info else "",
             f"depth {info['depth']}" if info.get("depth") else "",
             f"{info['count']} images" if "count" in info else "",
             f"fingerprint {str(info.get('fingerprint', '?'))[:12]}"]
    return ", ".join(p for p in parts if p)


def _method_text(method: dict[str, Any]) -> str:
    sha, fp = _find_key(method, "sha256"), method.get("fingerprint")
    parts = [str(method.get("kind", "")), f"sha256 {str(sha)[:12]}" if sha else "",
             f"fingerprint {str(fp)[:12]}" if fp and not sha else ""]
    return ", ".join(p for p in parts if p) or "?"


def _find_key(obj: Any, key: str) -> Any:
    """Return the first value under ``key`` at any depth (the weights' hash may be nested)."""
    if isinstance(obj, dict):
        if obj.get(key):
            return obj[key]
        for value in obj.values():
            found = _find_key(value, key)
            if found:
                return found
    return None


def stand_in_text(result: TableResult) -> str | None:
    """Return the table-level stand-in line, or None."""
    return f"Stand-in: every group computed on {result.stand_in}" if result.stand_in else None
