"""The tidy CSV and the strict JSON of a table (conventions: :mod:`eval.tables.render`)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from eval.metrics.registry import get_metric
from eval.metrics.scoring import jsonable

from ..result import Cell, GroupResult, RowResult, TableResult
from .layout import NO_DELTA, display_footnotes, table_metrics

CSV_COLUMNS: tuple[str, ...] = (
    "table", "group", "group_label", "group_status", "stand_in", "row", "row_label", "added",
    "metric", "ours", "paper", "diff", "status", "n_images", "note", "note_text")


def csv_text(result: TableResult) -> str:
    """Return the tidy CSV described in :mod:`eval.tables.render`."""
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
    """Return the whole result as strict-JSON-ready data (see :mod:`eval.tables.render`)."""
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
