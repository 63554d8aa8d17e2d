"""Tests of the table renderers: cells in the right place, best in bold, footnotes, every format.

A hand-built result (two groups, one not found; a paper-only row, an n/a cell, an added row, a
stand-in, a +inf PSNR) checks what each format prints; the three built-in tables, rendered with
paper numbers only, are checked against the independent transcription in
``tests/data/ssr-tables.json``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from eval.tables.render import CSV_COLUMNS, FORMATS, render
from eval.tables.render.figures import choose_crops, crop_size, enlarge, lr_on_hr_grid
from eval.tables.render.latex import latex_escape
from eval.tables.render.layout import NO_DELTA
from eval.tables.result import Cell, GroupResult, Preview, RowResult, TableResult
from eval.tables.spec import RowSpec, TableSpec, load_table, table_from_dict
from ssr_core.errors import ConfigError, InputError
from tests.datafiles import PAPER_TABLES

METRICS = ("psnr", "ssim", "niqe")
REASON = "Set B not found under /data/drealsr_x4 (give --data-root)"
NA_NOTE = "niqe: pristine model missing (50% & more)"
PAPER_ONLY_NOTE = "paper numbers only: no local weights or outputs for gamma"
STAND_IN = "sample (recipe ssr, seed 0, depth prior)"
SHA = "ab" * 32


def _spec() -> TableSpec:
    return table_from_dict({
        "name": "fake", "title": "Fake table: x4 on two sets", "paper": "Fake paper, Table 9",
        "scale": 4, "metrics": list(METRICS), "group_title": "Datasets",
        "attributes": [{"key": "backbone", "title": "Backbone"}],
        "groups": [{"id": "g1", "label": "Set_A", "ref": "[1]", "source": "div2k", "split": "valid",
                    "recipe": "ssr"},
                   {"id": "g2", "label": "Set B", "source": "drealsr", "split": "x4"}],
        "rows": [
            {"id": "alpha", "label": "Alpha", "ref": "[31]", "attributes": {"backbone": "CNN"},
             "paper": {"g1": [22.17, 0.72, 6.13], "g2": [31.0, 0.92, 9.06]}},
            {"id": "beta", "label": "Beta 50% & more", "attributes": {"backbone": "GAN"},
             "paper": {"g1": [21.5, 0.75, 5.5], "g2": [30.0, 0.9, 8.0]}},
            {"id": "gamma", "label": "Gamma", "attributes": {"backbone": "Diffusion"},
             "paper": {"g1": [20.0, 0.7, 7.0]}},
        ],
        "notes": ["Two rows repeat Table 1 as printed."],
    })


def _cells(spec: TableSpec, row: RowSpec, group: str, ours: list[float | None],
           status: str = "ok", notes: dict[str, int] | None = None) -> dict[str, Cell]:
    return {m: Cell(ours[i], row.paper_value(group, i) if group in row.paper else None,
                    "na" if notes and m in notes else status, (notes or {}).get(m))
            for i, m in enumerate(spec.metrics)}


def _preview() -> Preview:
    """A flat 64x96 HR with one textured 16x16 patch at (y 32, x 56); outputs: HR itself, noise."""
    hr = np.full((64, 96, 3), 128, np.uint8)
    hr[32:48, 56:72] = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    lr = hr[::4, ::4].copy()
    return Preview("img-0801", hr, lr, {"alpha": hr.copy(), "mine": np.flipud(hr).copy()})


def fake_result(with_preview: bool = False, stand_in: bool = False) -> TableResult:
    """Build the result every test renders (values chosen so each column has a clear best).

    ``stand_in``: Set A was computed on a stand-in (its label says so; it has no Δ).
    """
    spec = _spec()
    alpha, beta, gamma = spec.rows
    mine = RowSpec("mine", "Mine")
    g1 = GroupResult(spec.groups[0], "stand-in" if stand_in else "ok", [],
                     {"source": "sample", "recipe": {"name": "ssr"}, "seed": 0, "count": 2,
                      "fingerprint": "f" * 64}, stand_in=STAND_IN if stand_in else None)
    g1.rows = [
        RowResult(alpha, {"kind": "spandrel", "sha256": SHA}, _cells(spec, alpha, "g1", [22.58, 0.70, 5.0]),
                  {"img-0801": {"psnr": 22.0, "ssim": 0.69, "niqe": 5.1}}, n_images=2),
        RowResult(beta, {"kind": "folder"}, _cells(spec, beta, "g1", [math.inf, 0.80, None],
                                                   notes={"niqe": 1}), n_images=2),
        RowResult(gamma, None, _cells(spec, gamma, "g1", [None] * 3, "paper-only"), note=2),
        RowResult(mine, {"kind": "bicubic"}, _cells(spec, mine, "g1", [23.0, 0.65, 4.0]), n_images=2,
                  added=True),
    ]
    g2 = GroupResult(spec.groups[1], "not-found", [
        RowResult(r, None, _cells(spec, r, "g2", [None] * 3, "no-data"), added=r is mine)
        for r in (alpha, beta, gamma, mine)], reason=REASON)
    if with_preview:
        g1.preview = _preview()
    return TableResult(spec, [g1, g2], [NA_NOTE, PAPER_ONLY_NOTE], {"niqe": "pristine model missing"},
                       {"testsets": {"g1": g1.testset}, "versions": {"numpy": "2.0"},
                        "command": "ssr-eval run --table fake"},
                       {"build": 1.0, "infer": 2.0, "score": 3.0}, computed=6, cached=2)


# --- Markdown ----------------------------------------------------------------------------------

def parse_markdown(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """Return the header and one dict per table row (group label carried down, like the paper)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    split = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    header, rows, group = split[0], [], ""
    for cells in split[2:]:
        group = cells[0] or group
        rows.append({**dict(zip(header, cells, strict=True)), "_group": group})
    return header, rows


def _row(rows: list[dict[str, str]], group: str, label: str) -> dict[str, str]:
    found = [r for r in rows if r["_group"].startswith(group) and r["Method"].startswith(label)]
    assert len(found) == 1, (group, label, found)
    return found[0]


def _footnotes(md: str) -> dict[int, str]:
    part = md.split("**Footnotes**", 1)[1].split("**", 1)[0]
    return {int(m[1]): m[2] for m in re.finditer(r"^(\d+)\. (.*)$", part, re.M)}


def test_markdown_puts_ours_paper_and_diff_in_their_columns() -> None:
    header, rows = parse_markdown(render(fake_result(), "markdown"))
    assert header[:3] == ["Datasets", "Method", "Backbone"]
    assert header[3:6] == ["PSNR\u2191 ours", "PSNR\u2191 paper", "PSNR\u2191 \u0394"]
    assert header[-3:] == ["NIQE\u2193 ours", "NIQE\u2193 paper", "NIQE\u2193 \u0394"]
    alpha = _row(rows, "Set\\_A", "Alpha")
    assert (alpha["PSNR\u2191 ours"], alpha["PSNR\u2191 paper"], alpha["PSNR\u2191 \u0394"]) == (
        "22.58", "**22.17**", "+0.41")
    assert (alpha["SSIM\u2191 ours"], alpha["SSIM\u2191 \u0394"]) == ("0.70", "-0.02")
    assert alpha["NIQE\u2193 \u0394"] == "-1.13" and alpha["Backbone"] == "CNN"
    beta = _row(rows, "Set\\_A", "Beta")
    assert beta["PSNR\u2191 ours"] == "**inf**" and beta["PSNR\u2191 \u0394"] == "\u2014"
    assert beta["Method"] == "Beta 50% & more"


def test_markdown_bolds_the_best_per_column_and_direction() -> None:
    _, rows = parse_markdown(render(fake_result(), "markdown"))

    def bold(group: str, column: str) -> list[str]:
        return [r["Method"].split()[0] for r in rows if r["_group"].startswith(group) and "**" in r[column]]

    assert bold("Set\\_A", "SSIM\u2191 ours") == ["Beta"]  # 0.80 > 0.70 > 0.65
    assert bold("Set\\_A", "NIQE\u2193 ours") == ["Mine"]  # lower is better: 4.0 < 5.0
    assert bold("Set\\_A", "NIQE\u2193 paper") == ["Beta"]  # 5.5 < 6.13 < 7.0
    assert bold("Set\\_A", "PSNR\u2191 paper") == ["Alpha"]
    assert bold("Set B", "NIQE\u2193 paper") == ["Beta"]  # 8.0 < 9.06, no local values there
    assert bold("Set B", "PSNR\u2191 ours") == []


def test_markdown_states_and_footnote_markers_resolve() -> None:
    md = render(fake_result(stand_in=True), "markdown")
    _, rows = parse_markdown(md)
    notes = _footnotes(md)

    def marker(cell: str) -> str:
        return notes[int(re.search(r"<sup>(\d+)</sup>", cell)[1])]

    beta = _row(rows, "Set\\_A", "Beta")
    assert beta["NIQE\u2193 ours"].startswith("n/a<sup>") and marker(beta["NIQE\u2193 ours"]) == (
        "niqe: pristine model missing (50% & more)")
    gamma = _row(rows, "Set\\_A", "Gamma")
    assert "(paper only)" in gamma["Method"] and marker(gamma["Method"]) == PAPER_ONLY_NOTE
    assert gamma["PSNR\u2191 ours"] == "\u2014" and gamma["PSNR\u2191 paper"] == "20.00"
    mine = _row(rows, "Set\\_A", "Mine (added)")
    assert (mine["PSNR\u2191 ours"], mine["PSNR\u2191 paper"], mine["PSNR\u2191 \u0394"]) == (
        "23.00", "\u2014", "\u2014")  # Beta's +inf is the best PSNR
    set_b = [r for r in rows if r["_group"].startswith("Set B")]
    assert marker(set_b[0]["_group"]).replace("\\_", "_") == REASON
    assert all(r["PSNR\u2191 ours"] == "\u2014" for r in set_b)
    assert set_b[0]["PSNR\u2191 paper"] == "**31.00**"
    assert _row(rows, "Set\\_A", "Alpha")["_group"] == f"Set\\_A [1] (stand-in: {STAND_IN})"
    assert "Two rows repeat Table 1 as printed." in md and "Fake paper, Table 9" in md
    assert "NIQE\u2193: pristine model missing" in md  # unavailable metrics
    assert "fingerprint ffffffffffff" in md and f"sha256 {SHA[:12]}" in md and "numpy 2.0" in md


# --- terminal ----------------------------------------------------------------------------------

def test_terminal_is_aligned_and_colored_only_on_request() -> None:
    result = fake_result()
    plain, colored = render(result, "terminal"), render(result, "terminal", color=True)
    assert "\x1b[" not in plain and "\x1b[1m" in colored
    table = [ln for ln in plain.splitlines() if " | " in ln]
    bars = {tuple(m.start() for m in re.finditer(r" \| ", ln)) for ln in table}
    assert len(table) == 2 + 8 and len(bars) == 1  # two header lines, 8 rows, one set of columns
    alpha = next(ln for ln in table if "Alpha" in ln)
    assert alpha.split(" | ")[1].split() == ["22.58", "22.17", "+0.41"]
    beta = next(ln for ln in table if "Beta" in ln)
    assert beta.split(" | ")[3].split()[0] == "n/a\u00b9" and "\u00b9 niqe: pristine model" in plain
    assert table[2].startswith("Set_A [1] ") and "Fake paper, Table 9" in plain
    table = [ln for ln in render(fake_result(stand_in=True), "terminal").splitlines() if " | " in ln]
    width = next(ln for ln in table if ln.startswith("Datasets")).index("Method")
    label = " ".join(ln[:width].strip() for ln in table[2:6])  # a long label wraps down its group
    assert label == f"Set_A [1] (stand-in: {STAND_IN})"


# --- CSV and JSON ------------------------------------------------------------------------------

def test_csv_is_tidy_with_full_precision_and_commented_provenance() -> None:
    result = fake_result()
    result.groups[0].rows[0].cells["psnr"].ours = 22.581234567
    text = render(result, "csv")
    data = [ln for ln in text.splitlines() if not ln.startswith("#")]
    comments = [ln for ln in text.splitlines() if ln.startswith("# ")]
    rows = list(csv.DictReader(io.StringIO("\n".join(data))))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 2 * 4 * 3
    by = {(r["group"], r["row"], r["metric"]): r for r in rows}
    alpha = by[("g1", "alpha", "psnr")]
    assert (alpha["ours"], alpha["paper"], alpha["status"], alpha["n_images"]) == (
        "22.581234567", "22.17", "ok", "2")
    assert float(alpha["diff"]) == pytest.approx(22.581234567 - 22.17, abs=1e-12)
    assert alpha["stand_in"] == "" and alpha["group_label"] == "Set_A [1]"
    assert by[("g1", "beta", "psnr")]["ours"] == "inf" and by[("g1", "beta", "psnr")]["diff"] == ""
    na = by[("g1", "beta", "niqe")]
    assert (na["status"], na["note"], na["note_text"]) == ("na", "1", NA_NOTE)
    assert by[("g1", "gamma", "ssim")]["note_text"] == PAPER_ONLY_NOTE
    assert by[("g1", "mine", "ssim")]["added"] == "True" and by[("g1", "mine", "ssim")]["paper"] == ""
    missing = by[("g2", "alpha", "niqe")]
    assert (missing["status"], missing["note_text"], missing["paper"]) == ("no-data", REASON, "9.06")
    assert f"# footnote 3: {REASON}" in comments
    prov = json.loads(next(c for c in comments if c.startswith("# provenance: "))[len("# provenance: "):])
    assert prov["testsets"]["g1"]["fingerprint"] == "f" * 64


def _strict(text: str) -> Any:
    def refuse(name: str) -> None:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_complete_and_stable() -> None:
    result = fake_result(with_preview=True, stand_in=True)
    text = render(result, "json")
    data = _strict(text)
    assert text == render(result, "json")
    g1, g2 = data["groups"]
    beta = g1["rows"][1]
    assert beta["cells"]["psnr"] == {"ours": "inf", "paper": 21.5, "diff": None, "status": "ok",
                                     "note": None}
    assert data["footnotes"][beta["cells"]["niqe"]["note"] - 1] == NA_NOTE
    assert g1["rows"][0]["per_image"]["img-0801"]["psnr"] == 22.0 and g1["preview"] == "img-0801"
    assert g1["stand_in"] == STAND_IN and g2["reason"] == REASON and g2["status"] == "not-found"
    assert g1["rows"][3]["added"] is True and g1["rows"][0]["method"]["sha256"] == SHA
    assert data["notes"] == ["Two rows repeat Table 1 as printed."]
    assert [m["arrow"] for m in data["metrics"]] == ["\u2191", "\u2191", "\u2193"]
    assert (data["computed"], data["cached"], data["timings"]["score"]) == (6, 2, 3.0)
    assert data["provenance"]["versions"] == {"numpy": "2.0"}


# --- LaTeX -------------------------------------------------------------------------------------

def test_latex_escapes_and_uses_booktabs() -> None:
    tex = render(fake_result(), "latex")
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\multirow{4}{*}"):
        assert rule in tex
    assert r"Beta 50\% \& more" in tex and r"Set\_A" in tex
    assert r"\textbf{8.00}" in tex and r"\textbf{inf}" in tex and r"$-$1.13" in tex
    assert r"n/a\textsuperscript{1}" in tex
    assert r"\textsuperscript{1}~niqe: pristine model missing (50\% \& more)" in tex
    assert r"\multicolumn{3}{c}{NIQE$\downarrow$}" in tex and "Two rows repeat Table 1" in tex
    comments = [ln for ln in tex.splitlines() if ln.startswith("% ")]
    assert any(f'"fingerprint": "{"f" * 64}"' in ln for ln in comments)
    body = tex.split(r"\toprule", 1)[1].split(r"\bottomrule", 1)[0]
    assert all(line.endswith(r"\\") for line in body.strip().splitlines() if "rule" not in line)
    assert latex_escape("\u2713 \u2717 #1 ~") == r"\checkmark{} \texttimes{} \#1 \textasciitilde{}"


# --- HTML and the crop figures -----------------------------------------------------------------

def test_choose_crops_finds_the_textured_patch_first() -> None:
    img = np.full((128, 160), 100, np.uint8)
    rng = np.random.default_rng(1)
    img[40:72, 88:120] = rng.integers(0, 256, (32, 32), dtype=np.uint8)  # strong texture
    img[8:40, 8:40] = rng.integers(60, 140, (32, 32), dtype=np.uint8)  # weaker texture
    boxes = choose_crops(img, 32, count=3, step=8)
    assert boxes[:2] == [(40, 88, 32, 32), (8, 8, 32, 32)]
    assert boxes == choose_crops(img.copy(), 32, count=3, step=8)
    for i, (y1, x1, _, _) in enumerate(boxes):
        for y2, x2, _, _ in boxes[i + 1:]:
            assert abs(y1 - y2) >= 64 or abs(x1 - x2) >= 64  # one crop apart by default
    with pytest.raises(InputError, match="crop size must be in"):
        choose_crops(img, 200)


def test_choose_crops_spreads_over_the_image() -> None:
    img = np.full((64, 256), 100, np.uint8)
    rng = np.random.default_rng(2)
    img[:, :64] = rng.integers(0, 256, (64, 64), dtype=np.uint8)  # a texture two crops wide, left
    img[16:48, 200:232] = rng.integers(70, 130, (32, 32), dtype=np.uint8)  # a weak patch far right
    spread = choose_crops(img, 32, count=2, step=8)
    assert spread[1] == (16, 200, 32, 32)  # the neighbour on the same texture is too close
    packed = choose_crops(img, 32, count=2, step=8, gap=0)
    assert packed[1][1] < 64  # without the gap, the second crop stays on the strong texture


def test_lr_crop_is_nearest_upsampled_on_the_hr_grid() -> None:
    lr = np.arange(16, dtype=np.uint8).reshape(4, 4)
    up = lr_on_hr_grid(lr, (4, 2, 4, 6), 2)
    assert up.shape == (4, 6) and up[0].tolist() == [9, 9, 10, 10, 11, 11] and up[2, 0] == 13
    assert enlarge(np.ones((40, 40, 3), np.uint8)).shape == (160, 160, 3)
    assert crop_size((64, 96, 3), 4) == 16 and crop_size((1356, 2040, 3), 4) == 128


def test_html_is_self_contained_with_figures_and_provenance() -> None:
    page = render(fake_result(with_preview=True, stand_in=True), "html")
    assert "<link" not in page and "<script" not in page and "http" not in page
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == 1 + 3 * 4  # thumbnail + 3 crops x (HR, LR, alpha, mine)
    tile = cv2.imdecode(np.frombuffer(base64.b64decode(uris[1]), np.uint8), cv2.IMREAD_UNCHANGED)
    assert tile.shape == (160, 160, 3)
    assert "1 at (y=32, x=56)" in page  # the textured patch of the preview comes first
    assert "LR (nearest \u00d74)" in page and "Alpha [31] (PSNR 22.00)" in page
    assert "<b>8.00</b>" in page and '<li id="fn-3">' in page and REASON in page
    assert f"stand-in: {STAND_IN}" in page and "<details><summary>Provenance" in page
    assert "Two rows repeat Table 1 as printed." in page


def test_stand_in_of_the_whole_table_shows_in_every_format() -> None:
    result = fake_result(stand_in=True)
    result.stand_in = "sample"
    for fmt in FORMATS:
        assert "sample" in render(result, fmt), fmt
    assert "Stand-in: every group computed on sample" in render(result, "markdown")
    assert _strict(render(result, "json"))["stand_in"] == "sample"


def test_unknown_format_lists_the_choices() -> None:
    with pytest.raises(ConfigError, match="choose from terminal, markdown"):
        render(fake_result(), "docx")


def test_stand_in_groups_show_no_delta_and_say_why() -> None:
    # Ours on stand-in photos minus the paper's value on its own test set means nothing: the same
    # cells that show +0.41 on a real test set show no difference, in every format, and say why.
    real, stand_in = fake_result(), fake_result(stand_in=True)
    _, rows = parse_markdown(render(real, "markdown"))
    assert _row(rows, "Set\\_A", "Alpha")["PSNR\u2191 \u0394"] == "+0.41"
    md = render(stand_in, "markdown")
    _, rows = parse_markdown(md)
    alpha = _row(rows, "Set\\_A", "Alpha")
    assert alpha["PSNR\u2191 ours"] == "22.58" and alpha["PSNR\u2191 paper"] == "**22.17**"
    assert all(r[f"{m} \u0394"] == "\u2014" for r in rows for m in ("PSNR\u2191", "SSIM\u2191", "NIQE\u2193"))
    assert NO_DELTA not in render(real, "markdown")
    for fmt in ("terminal", "markdown", "latex", "html"):
        text = render(stand_in, fmt)
        assert "on a stand-in: ours is scored on stand-in images" in text, fmt
    terminal = next(ln for ln in render(stand_in, "terminal").splitlines() if "Alpha" in ln)
    assert terminal.split(" | ")[1].split() == ["22.58", "22.17", "\u2014"]
    colored = render(stand_in, "terminal", color=True)
    assert "\x1b[32m" not in colored and "\x1b[31m" not in colored  # no green/red Δ
    assert "+0.41" not in render(stand_in, "html") and "+0.41" not in render(stand_in, "latex")
    csv_rows = list(csv.DictReader(io.StringIO(render(stand_in, "csv").split("\n# ", 1)[0])))
    assert {r["diff"] for r in csv_rows} == {""} and f"# diff: {NO_DELTA}" in render(stand_in, "csv")
    data = _strict(render(stand_in, "json"))
    assert data["groups"][0]["diff_note"] == NO_DELTA and data["groups"][1]["diff_note"] is None
    assert data["groups"][0]["rows"][0]["cells"]["psnr"]["diff"] is None
    assert _strict(render(real, "json"))["groups"][0]["rows"][0]["cells"]["psnr"]["diff"] == (
        pytest.approx(22.58 - 22.17))


def test_html_shows_each_distinct_preview_image_once() -> None:
    # A stand-in run scores every group on the same test set: one figure, naming the groups.
    result = fake_result(with_preview=True, stand_in=True)
    g2 = result.groups[1]
    g2.status, g2.reason, g2.testset, g2.stand_in = "stand-in", None, result.groups[0].testset, STAND_IN
    g2.preview = _preview()
    page = render(result, "html")
    assert page.count('<figure class="preview">') == 1 and "Set_A [1], Set B: image img-0801" in page
    g2.testset = {**g2.testset, "fingerprint": "e" * 64}  # another test set: its own figure
    assert render(result, "html").count('<figure class="preview">') == 2


# --- the built-in tables, paper numbers only ---------------------------------------------------

def paper_only(spec: TableSpec, tmp_path: Path) -> TableResult:
    """Return the result of a run that found no test set: every group not found."""
    groups = []
    for g in spec.groups:
        rows = [RowResult(r, None, {m: Cell(None, r.paper_value(g.id, i) if g.id in r.paper else None,
                                            "no-data") for i, m in enumerate(spec.metrics)})
                for r in spec.rows]
        groups.append(GroupResult(g, "not-found", rows, reason=f"{g.label} not found under {tmp_path}"))
    return TableResult(spec, groups, [], {}, {})


def _expected(table: str) -> list[tuple[str, dict[str, str], dict[str, float]]]:
    """Return (group label, row match, metric values) per printed row of ssr-tables.json."""
    data = json.loads(PAPER_TABLES.read_text(encoding="utf-8"))
    metrics = list(data["metrics"])
    tick = {True: "\u2713", False: "\u2717"}
    if table == "1":
        return [(e["dataset"], {"Method": e["method"]}, {m: e[m] for m in metrics}) for e in data["table1"]]
    if table == "2":
        t2 = data["table2"]
        return [(t2["dataset"], {"DI-Kernel": tick[e["di_kernel"]], "Depth Map": tick[e["depth_map"]],
                                 "SVKR": tick[e["svkr"]]}, {m: e[m] for m in metrics if m in e})
                for e in t2["rows"]]
    return [(e["degradation"], {"Method": "SSR"}, {m: e[m] for m in metrics}) for e in data["table3"]["rows"]]


@pytest.mark.parametrize("table", ["1", "2", "3"])
def test_builtin_tables_print_every_paper_value(table: str, tmp_path: Path) -> None:
    result = paper_only(load_table(table), tmp_path)
    outputs = {fmt: render(result, fmt) for fmt in FORMATS}
    header, rows = parse_markdown(outputs["markdown"])
    assert len(rows) == sum(len(g.rows) for g in result.groups)
    for group, match, values in _expected(table):
        found = [r for r in rows if re.sub(r"( \[\d+\])?<sup>\d+</sup>$", "", r["_group"]) == group
                 and all(r[k].split()[0] == v for k, v in match.items())]
        assert len(found) == 1, (group, match)
        for metric, value in values.items():
            column = next(h for h in header if h.endswith(" paper")
                          and h.lower().replace("-", "").startswith(metric))
            assert found[0][column].strip("*") == f"{value:.2f}", (group, match, metric)
    if table == "3":
        for fmt in FORMATS:
            assert "digit for digit" in outputs[fmt], fmt
    data = _strict(outputs["json"])
    assert all(g["status"] == "not-found" and str(tmp_path) in g["reason"] for g in data["groups"])


def test_doctests_of_the_render_modules() -> None:
    import doctest

    from eval.tables.render import figures, latex, layout

    for module in (figures, latex, layout):
        assert doctest.testmod(module).failed == 0, module.__name__
