"""Terminal text and GitHub Markdown renderings of a table (conventions: :mod:`eval.tables.render`)."""

from __future__ import annotations

import textwrap

from eval.metrics.registry import get_metric

from ..result import TableResult
from .layout import (
    Layout,
    Piece,
    Style,
    compact_provenance,
    legend,
    stand_in_text,
    styled,
)

_SUPERSCRIPT = str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


# --- terminal ----------------------------------------------------------------------------------

def _sup(n: int) -> str:
    # superscript digits: "[n]" would read as one of the paper's citations ("DAN [31]")
    return str(n).translate(_SUPERSCRIPT)


_PLAIN = Style(marker=_sup)
_ANSI = Style(marker=_sup, bold=lambda s: f"\x1b[1m{s}\x1b[22m", better=lambda s: f"\x1b[32m{s}\x1b[39m",
              worse=lambda s: f"\x1b[31m{s}\x1b[39m", muted=lambda s: f"\x1b[2m{s}\x1b[22m")
_LABEL_WIDTH = 24  # a stand-in label wraps down its group's rows instead of widening the table


def terminal_text(result: TableResult, lay: Layout, color: bool) -> str:
    """Return aligned text: a two-line header (metric over ours/paper/Δ), rules between groups."""
    style = _ANSI if color else _PLAIN
    nfix, nmet, n = len(lay.fixed), len(lay.metrics), len(lay.sub)
    body: list[list[tuple[str, str]] | None] = []  # (plain, styled) per column; None: a rule
    blank = [Piece("")] * (nfix - 1 + n * nmet)
    for block in lay.blocks:
        labels = _wrap(block.label)
        for i in range(max(len(block.rows), len(labels))):
            pieces = [labels[i] if i < len(labels) else Piece(""),
                      *(block.rows[i] if i < len(block.rows) else blank)]
            body.append([(styled(p, _PLAIN), styled(p, style)) for p in pieces])
        body.append(None)
    widths = [len(t) for t in lay.fixed] + [len(s) for _ in lay.metrics for s in lay.sub]
    for cells in body:
        if cells is not None:
            widths = [max(w, len(plain)) for w, (plain, _) in zip(widths, cells, strict=True)]
    for k, title in enumerate(lay.headers):  # a title wider than its columns widens the last
        j = nfix + n * k
        widths[j + n - 1] += max(0, len(title) - (sum(widths[j:j + n]) + n - 1))

    def line(cells: list[tuple[str, str]]) -> str:
        text = "  ".join(s + " " * (widths[j] - len(p)) for j, (p, s) in enumerate(cells[:nfix]))
        for k in range(nmet):
            j = nfix + n * k
            text += " | " + " ".join(" " * (widths[j + i] - len(p)) + s
                                     for i, (p, s) in enumerate(cells[j:j + n]))
        return text.rstrip()

    titles = "  ".join(" " * w for w in widths[:nfix]) + "".join(
        " | " + t.center(sum(widths[nfix + n * k:nfix + n * k + n]) + n - 1)
        for k, t in enumerate(lay.headers))
    head = line([(t, t) for t in lay.fixed] + [(t, t) for t in lay.sub] * nmet)
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


def markdown_text(result: TableResult, lay: Layout) -> str:
    """Return a GitHub table with the title, notes, footnotes and provenance around it."""
    spec = result.spec
    nfix = len(lay.fixed)
    out = [f"## {md_escape(spec.title)}", "", f"Paper: {md_escape(spec.paper)}"]
    stand_in = stand_in_text(result)
    if stand_in:
        out += ["", f"> **{md_escape(stand_in)}**"]
    header = [*lay.fixed, *(f"{h} {s}" if len(lay.sub) > 1 else h
                            for h in lay.headers for s in lay.sub)]
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
