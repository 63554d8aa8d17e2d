"""Render a table result as one self-contained HTML page (inline CSS, images as base64 PNG).

The page holds the table in the paper's layout (conventions of :mod:`eval.tables.render`: best
per group and column in bold, footnote markers linking to the footnotes, Δ coloured by whether
ours beats the paper in the metric's direction), the notes, the unavailable metrics, one
zoomed-crop figure per distinct preview (:mod:`eval.tables.render.figures`; groups that share a test set
and image, as the groups of a stand-in run do, share one figure naming them all) and the
provenance in a ``<details>`` block: the short lines and the full JSON.
"""

from __future__ import annotations

import json
from html import escape

from eval.metrics.registry import get_metric
from eval.metrics.scoring import jsonable

from ..result import GroupResult, TableResult
from .figures import preview_figure
from .layout import (
    Layout,
    Piece,
    Style,
    build_layout,
    compact_provenance,
    legend,
    stand_in_text,
    styled,
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.3em; } .paper { color: #555; }
.standin { background: #fff3cd; border: 1px solid #e0b000; padding: .4em .8em; display: inline-block; }
table.results { border-collapse: collapse; font-size: .9em; }
table.results th, table.results td { padding: .2em .5em; border-bottom: 1px solid #ddd; }
table.results thead th { border-bottom: 2px solid #444; }
table.results tbody { border-top: 2px solid #444; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } td.paper { background: #f4f4f4; }
th.group { text-align: left; vertical-align: top; }
.better { color: #1a7f37; } .worse { color: #c62828; } .muted { color: #999; }
sup a { text-decoration: none; }
figure.preview { margin: 2em 0; } img.thumb { display: block; margin: .5em 0; }
table.crops td, table.crops th { padding: 2px; text-align: center; font-size: .8em; }
img.tile { width: 160px; image-rendering: pixelated; border: 2px solid; }
td.crop-id { font-weight: bold; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: .8em; }
"""
_HTML = Style(escape=escape, bold=lambda s: f"<b>{s}</b>",
              marker=lambda n: f'<sup><a href="#fn-{n}">{n}</a></sup>',
              better=lambda s: f'<span class="better">{s}</span>',
              worse=lambda s: f'<span class="worse">{s}</span>',
              muted=lambda s: f'<span class="muted">{s}</span>')


def render_html(result: TableResult) -> str:
    """Return the whole report as one HTML document (no external assets)."""
    spec = result.spec
    lay = build_layout(result)
    parts = [f"<h1>{escape(spec.title)}</h1>", f'<p class="paper">Paper: {escape(spec.paper)}</p>']
    stand_in = stand_in_text(result)
    if stand_in:
        parts.append(f'<p class="standin"><b>{escape(stand_in)}</b></p>')
    parts += [_table(lay), f"<p>{escape(legend(result))}; <b>bold</b>: best in its group and column</p>"]
    parts += _list("Notes", [escape(n) for n in spec.notes], "ul")
    parts += _list("Footnotes", [escape(t) for t in lay.footnotes], "ol", anchor="fn")
    parts += _list("Unavailable metrics", [f"{escape(get_metric(m).title)}: {escape(why)}"
                                           for m, why in result.unavailable.items()], "ul")
    figures = [preview_figure(same[0], spec.scale, titles=[g.spec.title for g in same])
               for same in _distinct_previews(result)]
    if figures:
        parts += ["<h2>Visual comparison</h2>", *figures]
    parts.append(_provenance(result))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(spec.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")


def _table(lay: Layout) -> str:
    """Return the results table: two header rows, one ``<tbody>`` per group."""
    nfix, n = len(lay.fixed), len(lay.sub)
    head1 = "".join(f'<th rowspan="2">{escape(t)}</th>' for t in lay.fixed)
    head1 += "".join(f'<th colspan="{n}">{escape(h)}</th>' for h in lay.headers)
    head2 = "".join(f"<th>{t}</th>" for t in lay.sub * len(lay.metrics))
    bodies = []
    for block in lay.blocks:
        rows = block.rows or [[Piece("")] * (nfix - 1 + n * len(lay.metrics))]
        trs = []
        for i, row in enumerate(rows):
            cells = [f"<td>{styled(p, _HTML)}</td>" for p in row[:nfix - 1]]
            cells += [f'<td class="num{" paper" if n > 1 and k % n == 1 else ""}">{styled(p, _HTML)}</td>'
                      for k, p in enumerate(row[nfix - 1:])]
            label = (f'<th class="group" rowspan="{len(rows)}">{styled(block.label, _HTML)}</th>'
                     if i == 0 else "")
            trs.append(f"<tr>{label}{''.join(cells)}</tr>")
        bodies.append("<tbody>\n" + "\n".join(trs) + "\n</tbody>")
    return (f'<table class="results">\n<thead><tr>{head1}</tr><tr>{head2}</tr></thead>\n'
            + "\n".join(bodies) + "\n</table>")


def _distinct_previews(result: TableResult) -> list[list[GroupResult]]:
    """Return the groups with a preview, those showing the same image of the same test set together.

    Two groups show the same picture when their test sets' fingerprints (the bytes scored) and
    preview keys agree; the rows' outputs are then the same too (a method is deterministic on
    the same input, and its cached outputs are keyed by the test set).
    """
    seen: dict[tuple[object, str], list[GroupResult]] = {}
    for g in result.groups:
        if g.preview is None:
            continue
        fingerprint = (g.testset or {}).get("fingerprint") or id(g)  # unknown: never merged
        seen.setdefault((fingerprint, g.preview.key), []).append(g)
    return list(seen.values())


def _list(title: str, items: list[str], tag: str, anchor: str | None = None) -> list[str]:
    if not items:
        return []
    lis = "".join(f'<li id="{anchor}-{i}">{t}</li>' if anchor else f"<li>{t}</li>"
                  for i, t in enumerate(items, 1))
    return [f"<h2>{escape(title)}</h2>", f"<{tag}>{lis}</{tag}>"]


def _provenance(result: TableResult) -> str:
    lines = "".join(f"<li>{escape(p)}</li>" for p in compact_provenance(result))
    full = json.dumps(jsonable(result.provenance), indent=2, sort_keys=True, ensure_ascii=False,
                      default=str)
    return (f"<details><summary>Provenance</summary><ul>{lines}</ul>"
            f"<pre>{escape(full)}</pre></details>")
