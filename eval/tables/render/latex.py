"""Render a table result as a LaTeX ``table``: booktabs rules, ``\\multirow`` group labels.

The preamble needs ``\\usepackage{booktabs,multirow,graphicx,amssymb}`` (``graphicx`` for the
``\\resizebox`` that fits 6 metrics x 3 columns to the text width, ``amssymb`` for
``\\checkmark``). Conventions are those of :mod:`eval.tables.render`: best per group and column in
``\\textbf``, footnote markers as ``\\textsuperscript``, the footnotes, notes and unavailable
metrics below the tabular, and the full provenance as JSON in ``%`` comment lines at the end.
"""

from __future__ import annotations

import json

from eval.metrics.scoring import jsonable

from ..result import TableResult
from .layout import DELTA, Layout, Piece, Style, build_layout, legend, stand_in_text, styled

_CHARS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
    "\u2713": r"\checkmark{}", "\u2717": r"\texttimes{}", "\u2191": r"$\uparrow$",
    "\u2193": r"$\downarrow$", "\u2014": "---", "\u2013": "--", DELTA: r"$\Delta$",
    "\u2212": "$-$", "\u00d7": r"$\times$", "\u2192": r"$\rightarrow$",
}
_LABEL_CHARS, _LABEL_WIDTH = 24, "3.5cm"


def latex_escape(text: str) -> str:
    r"""Escape LaTeX's special characters and spell the table's symbols as commands.

    A hyphen before another hyphen becomes ``-{}`` so that ``--method`` is not set as an en dash.

    >>> latex_escape("50% of R&D_x ✓")
    '50\\% of R\\&D\\_x \\checkmark{}'
    >>> latex_escape("--method")
    '-{}-method'
    """
    # TeX ligatures: -- is an en dash, --- an em dash. NUL marks the breaks until the mapping
    # below has turned our own em dashes into ---.
    while "--" in text:
        text = text.replace("--", "-\x00-")
    return "".join(_CHARS.get(ch, ch) for ch in text).replace("\x00", "{}")


def _number(text: str) -> str:
    # a text-mode hyphen is too short for a minus sign in a column of numbers
    return "$-$" + latex_escape(text[1:]) if text.startswith("-") else latex_escape(text)


_TEXT = Style(escape=latex_escape, bold=lambda s: rf"\textbf{{{s}}}",
              marker=lambda n: rf"\textsuperscript{{{n}}}")
_NUMBER = Style(escape=_number, bold=_TEXT.bold, marker=_TEXT.marker)


def render_latex(result: TableResult) -> str:
    """Return a LaTeX ``table`` environment with the title as caption and notes below it."""
    spec = result.spec
    lay = build_layout(result)
    nfix, nmet, n = len(lay.fixed), len(lay.metrics), len(lay.sub)
    caption = f"{spec.title} (ours beside {spec.paper})" if n > 1 else spec.title
    stand_in = stand_in_text(result)
    if stand_in:
        caption += f". {stand_in}"
    out = [f"% {latex_escape(spec.title)}", r"% needs \usepackage{booktabs,multirow,graphicx,amssymb}",
           r"\begin{table}[htbp]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
           rf"\label{{tab:{spec.name}}}", r"\resizebox{\textwidth}{!}{%",
           rf"\begin{{tabular}}{{{'l' * nfix}{'r' * n * nmet}}}", r"\toprule"]
    spans = [rf"\multicolumn{{{n}}}{{c}}{{{latex_escape(h)}}}" for h in lay.headers]
    out.append(" & ".join([""] * nfix + spans) + r" \\")
    out.append("".join(rf"\cmidrule(lr){{{nfix + n * k + 1}-{nfix + n * k + n}}}" for k in range(nmet)))
    sub = list(lay.sub) * nmet
    out.append(" & ".join(latex_escape(t) for t in [*lay.fixed, *sub]) + r" \\")
    out.append(r"\midrule")
    out += _body(lay)
    out += [r"\bottomrule", r"\end{tabular}}", r"\par\smallskip\footnotesize"]
    out += [rf"\noindent {line}\par" for line in _below(result, lay)]
    out.append(r"\end{table}")
    prov = json.dumps(jsonable(result.provenance), indent=2, sort_keys=True, ensure_ascii=False,
                      default=str)
    out += ["% provenance (JSON):", *(f"% {line}" for line in prov.splitlines())]
    return "\n".join(out) + "\n"


def _body(lay: Layout) -> list[str]:
    nfix = len(lay.fixed)
    lines: list[str] = []
    for b, block in enumerate(lay.blocks):
        if b:
            lines.append(r"\midrule")
        rows = block.rows or [[Piece("")] * (nfix - 1 + len(lay.sub) * len(lay.metrics))]
        for i, row in enumerate(rows):
            label = ""
            if i == 0:
                label = styled(block.label, _TEXT)
                # a long (stand-in) label wraps in a fixed width instead of widening the column
                width = "*" if len(block.label.text) <= _LABEL_CHARS else _LABEL_WIDTH
                label = rf"\multirow{{{len(rows)}}}{{{width}}}{{{label}}}" if len(rows) > 1 else label
            cells = [styled(p, _TEXT) for p in row[:nfix - 1]] + [styled(p, _NUMBER) for p in row[nfix - 1:]]
            lines.append(" & ".join([label, *cells]) + r" \\")
    return lines


def _below(result: TableResult, lay: Layout) -> list[str]:
    """Return the lines under the tabular: legend, notes, footnotes, unavailable metrics."""
    from eval.metrics.registry import get_metric

    lines = [latex_escape(legend(result)) + r"; \textbf{bold}: best in its group and column."]
    lines += [rf"\textit{{Note:}} {latex_escape(n)}" for n in result.spec.notes]
    lines += [rf"\textsuperscript{{{i}}}~{latex_escape(t)}" for i, t in enumerate(lay.footnotes, 1)]
    lines += [rf"\textit{{Unavailable:}} {latex_escape(get_metric(m).title)}: {latex_escape(why)}"
              for m, why in result.unavailable.items()]
    return lines
