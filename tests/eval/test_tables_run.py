"""Tables end to end on miniatures: spec loading, test sets, rows, caching, the CLI."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from eval.cli import main
from eval.metrics.cache import ScoreCache
from eval.tables.runner import RunOptions, run_table
from eval.tables.spec import load_table, table_from_dict
from eval.tables.testsets import Roots
from ssr_core.errors import ConfigError
from ssr_datasets.imageio import read_image
from ssr_datasets.shards import iter_shard
from tests.datafiles import PAPER_TABLES, data_file
from tests.reference import bicubic_up_matlab_u8, psnr_y_direct, ssim_skimage_valid, y_reference

CROP = 4


def mini_spec(**changes: object) -> dict:
    """A two-group table: a synthetic set (folder source) and real pairs (drealsr layout)."""
    spec = {
        "name": "mini", "title": "Mini table", "paper": "test", "scale": 4,
        "metrics": ["psnr", "ssim", "niqe"], "group_title": "Datasets",
        "attributes": [{"key": "backbone", "title": "Backbone"}],
        "groups": [
            {"id": "synth", "label": "Synth", "source": "folder", "recipe": "ssr", "seed": 0,
             "depth": "prior"},
            {"id": "real", "label": "Real", "source": "drealsr", "split": "x4"},
        ],
        "rows": [
            {"id": "DAN", "label": "DAN", "attributes": {"backbone": "CNN"},
             "paper": {"synth": [20.0, 0.5, 7.0], "real": [30.0, 0.9, 8.0]}},
            {"id": "bicubic", "label": "Bicubic", "builtin": "bicubic"},
        ],
    }
    spec.update(changes)
    return spec


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    """Two tiny HR crops (Set5 bird, a BSD100 photo) as a folder source, and two DRealSR-style pairs."""
    synth = tmp_path / "synth"
    synth.mkdir()
    real = tmp_path / "real" / "DRealSR" / "Test_x4"
    (real / "test_HR").mkdir(parents=True)
    (real / "test_LR").mkdir()
    for i, name in enumerate(("bsd100/img_002.png", "set5/img_002.png")):
        rgb = read_image(data_file(name)).rgb
        crop = rgb[40:104, 60:132]  # 64 x 72
        cv2.imwrite(str(synth / f"im{i}.png"), crop[..., ::-1])
        hr = rgb[100:164, 20:84]
        lr = cv2.resize(hr, (16, 16), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(real / "test_HR" / f"P{i}_x1.png"), hr[..., ::-1])
        cv2.imwrite(str(real / "test_LR" / f"P{i}_x4.png"), lr[..., ::-1])
    return {"synth": synth, "real": tmp_path / "real", "work": tmp_path / "work",
            "cache": tmp_path / "cache"}


def run(spec: dict, data: dict[str, Path], **options: object):
    roots = Roots(None, {"synth": data["synth"], "real": data["real"]})
    with ScoreCache(data["cache"]) as cache:
        opts = RunOptions(roots=roots, work_dir=data["work"], cache=cache, **options)
        return run_table(table_from_dict(spec), opts)


def test_mini_table_bicubic_cells_equal_direct_computation(data: dict[str, Path]) -> None:
    result = run(mini_spec(), data)
    synth, real = result.groups
    assert (synth.status, real.status) == ("ok", "ok")
    images = {"synth": [(s.hr, s.lr) for shard in sorted(Path(synth.testset["path"]).glob("*.tar"))
                        for s in iter_shard(shard)]}
    images["real"] = []
    for i in range(2):
        base = data["real"] / "DRealSR" / "Test_x4"
        images["real"].append((read_image(base / "test_HR" / f"P{i}_x1.png").rgb,
                               read_image(base / "test_LR" / f"P{i}_x4.png").rgb))
    for group in (synth, real):
        bicubic = next(r for r in group.rows if r.spec.id == "bicubic")
        pairs = images[group.spec.id]
        assert bicubic.n_images == len(pairs) == 2
        srs = [bicubic_up_matlab_u8(lr) for _, lr in pairs]
        want_psnr = np.mean([psnr_y_direct(hr, sr, CROP) for (hr, _), sr in zip(pairs, srs, strict=True)])
        want_ssim = np.mean([ssim_skimage_valid(y_reference(hr)[CROP:-CROP, CROP:-CROP],
                                                y_reference(sr)[CROP:-CROP, CROP:-CROP])
                             for (hr, _), sr in zip(pairs, srs, strict=True)])
        assert bicubic.cells["psnr"].status == "ok"
        assert bicubic.cells["psnr"].ours == pytest.approx(want_psnr, abs=1e-9)
        assert bicubic.cells["ssim"].ours == pytest.approx(want_ssim, abs=1e-6)
        assert bicubic.cells["psnr"].paper is None
        # 64 px images are too small for NIQE's 96x96 blocks: n/a with the reason, never empty
        niqe = bicubic.cells["niqe"]
        assert niqe.status == "na" and niqe.ours is None
        assert "96" in result.footnotes[niqe.note - 1]
        dan = next(r for r in group.rows if r.spec.id == "DAN")
        assert dan.cells["psnr"].status == "paper-only"
        assert dan.cells["psnr"].paper == (20.0 if group.spec.id == "synth" else 30.0)
        assert "--method NAME=PATH" in result.footnotes[dan.note - 1]
    assert synth.testset["recipe"]["name"] == "ssr" and len(synth.testset["fingerprint"]) == 64
    assert real.testset["kind"] == "real-pairs"
    assert result.provenance["metrics"]["psnr"]["options"]["crop_border"] == CROP
    assert "bicubic" in result.provenance["methods"]


def test_rerun_reads_caches_and_a_new_method_computes_only_its_rows(data: dict[str, Path]) -> None:
    first = run(mini_spec(), data)
    assert first.computed == 8 and first.timings["build"] > 0  # 2 groups x 2 images x psnr, ssim
    again = run(mini_spec(), data)
    assert (again.computed, again.cached) == (0, 8)
    assert again.groups[0].testset["fingerprint"] == first.groups[0].testset["fingerprint"]
    # a "method" run elsewhere: the HR images themselves, as a folder of outputs by key
    outputs = data["work"].parent / "perfect"
    for group in first.groups:
        (outputs / group.spec.id).mkdir(parents=True)
        for shard in sorted(Path(group.testset.get("path", "")).glob("*.tar")):
            for s in iter_shard(shard):
                cv2.imwrite(str(outputs / "synth" / f"{s.key}.png"), s.hr[..., ::-1])
    for i in range(2):
        hr = data["real"] / "DRealSR" / "Test_x4" / "test_HR" / f"P{i}_x1.png"
        (outputs / "real" / f"P{i}.png").write_bytes(hr.read_bytes())
    from eval.tables.methods import parse_method

    third = run(mini_spec(), data, methods=[parse_method(f"perfect={outputs}")])
    assert (third.computed, third.cached) == (8, 8)
    perfect = next(r for r in third.groups[0].rows if r.spec.id == "perfect")
    assert perfect.added and math.isinf(perfect.cells["psnr"].ours)
    assert perfect.cells["ssim"].ours == pytest.approx(1.0)


def test_absent_dataset_keeps_paper_numbers_and_says_where(data: dict[str, Path]) -> None:
    data["real"] = data["real"] / "nowhere"
    result = run(mini_spec(), data)
    real = result.groups[1]
    assert real.status == "not-found"
    assert "not found under" in real.reason and "nowhere" in real.reason
    dan = next(r for r in real.rows if r.spec.id == "DAN")
    assert [dan.cells[m].paper for m in ("psnr", "ssim", "niqe")] == [30.0, 0.9, 8.0]
    assert all(c.status == "no-data" and c.ours is None for c in dan.cells.values())


def test_two_methods_for_one_row_are_refused(data: dict[str, Path]) -> None:
    from eval.tables.methods import parse_method

    with pytest.raises(ConfigError, match="two --method options fill the row 'DAN'"):
        run(mini_spec(), data, methods=[parse_method(f"DAN={data['synth']}"),
                                        parse_method(f"dan={data['synth']}")])


def test_metric_subset_must_be_table_columns(data: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="has no column lpips"):
        run(mini_spec(), data, metrics=("psnr", "lpips"))


# --- the built-in specifications ---------------------------------------------------------------
def test_builtin_tables_hold_the_papers_values() -> None:
    """Every printed value equals the independent transcription in tests/data/ssr-tables.json."""
    paper = json.loads(PAPER_TABLES.read_text())
    t1 = load_table("1")
    ids = {"DIV2K": "div2k", "BSDS100": "bsds100", "Urban100": "urban100", "DRealSR": "drealsr"}
    assert len(paper["table1"]) == 40
    for entry in paper["table1"]:
        row = t1.row(entry["method"])
        assert row.attributes["backbone"] == entry["backbone"]
        assert row.paper[ids[entry["dataset"]]] == tuple(entry[m] for m in t1.metrics)
    t2 = load_table("table2")
    tick = {True: "\u2713", False: "\u2717"}
    for entry, row in zip(paper["table2"]["rows"], t2.rows, strict=False):
        assert [row.attributes[k] for k in ("di_kernel", "depth_map", "svkr")] == \
            [tick[entry[k]] for k in ("di_kernel", "depth_map", "svkr")]
        assert row.paper["div2k"] == tuple(entry[m] for m in t2.metrics)
    t3 = load_table("3")
    for entry, group in zip(paper["table3"]["rows"], t3.groups, strict=True):
        assert group.label == entry["degradation"]
        assert t3.row("SSR").paper[group.id] == tuple(entry[m] for m in t3.metrics)
    assert any("DAN and DCLS rows of Table 1" in n for n in t3.notes)
    assert [g.recipe for g in t3.groups] == ["ssr-nonoise", "ssr-nojpeg", "ssr"]


@pytest.mark.parametrize(("change", "match"), [
    ({"colour": 1}, "unknown table key 'colour'"),
    ({"metrics": ["psnr", "ssimm"]}, "did you mean 'ssim'"),
    ({"rows": [{"id": "X", "label": "X", "paper": {"synth": [1.0]}}]}, "must list 3 numbers"),
    ({"rows": [{"id": "X", "label": "X", "paper": {"elsewhere": [1, 2, 3]}}]}, "unknown group"),
    ({"groups": [{"id": "g", "label": "G", "source": "folder"}]}, "needs a 'recipe'"),
    ({"groups": [{"id": "g", "label": "G", "source": "drealsr", "recipe": "ssr"}]}, "real pairs"),
    ({"rows": [{"id": "X", "label": "X", "attributes": {"gpu": "yes"}}]}, "not in 'attributes'"),
])
def test_invalid_specs_fail_naming_the_problem(change: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        table_from_dict(mini_spec(**change))


def test_table_file_path_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(mini_spec()))
    assert load_table(str(path)).name == "mini"
    with pytest.raises(ConfigError, match="unknown table 'table9'"):
        load_table("9")


# --- the CLI -----------------------------------------------------------------------------------
@pytest.mark.parametrize("table", ["1", "2", "3"])
def test_cli_stand_in_runs_each_table(tmp_path: Path, table: str) -> None:
    out = tmp_path / "t.json"
    args = ["run", "--table", table, "--stand-in", "sample", "--max-images", "1",
            "--metrics", "psnr,ssim", "--out", str(out), "--work-dir", str(tmp_path / "w"),
            "--cache", str(tmp_path / "c")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    text = json.dumps(doc)
    assert "stand-in" in text or "stand_in" in text
    assert doc["stand_in"] == "sample"
    spec = load_table(table)
    assert len(doc["groups"]) == len(spec.groups)
    md = CliRunner().invoke(main, [*args[:-6], "--format", "markdown", "--work-dir",
                                   str(tmp_path / "w"), "--cache", str(tmp_path / "c")])
    assert md.exit_code == 0, md.output
    assert "stand-in" in md.output and "| " in md.output
    assert "0 score(s) computed" in md.output  # the second run reads the cache


def test_cli_without_data_says_where_it_looked_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A run that can compute nothing used to exit 0 with the paper's numbers and a relative path.
    monkeypatch.delenv("SSR_BENCH_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["run", "--table", "1", "--work-dir", "w", "--cache", "c"])
    assert res.exit_code == 1
    first = res.stderr.splitlines()[0]
    assert first == (f"Error: no data for 4 of 4 group(s) of table1 (div2k, bsds100, urban100, "
                     f"drealsr); looked in {tmp_path / 'data'} (the default: $SSR_BENCH_DATA, else "
                     "./data), which does not exist")
    assert "--data-root DIR" in res.stderr and "--stand-in sample" in res.stderr
    assert "--paper-only prints the paper's numbers alone" in res.stderr and res.stdout == ""
    assert not (tmp_path / "w").exists()  # said up front: nothing was built
    paper = CliRunner().invoke(main, ["run", "--table", "1", "--paper-only", "--format", "csv"])
    assert paper.exit_code == 0, paper.output
    rows = list(csv.DictReader(io.StringIO(paper.stdout.split("\n# ", 1)[0])))
    ssr = next(r for r in rows if r["group"] == "div2k" and r["row"] == "SSR" and r["metric"] == "psnr")
    printed = next(e["psnr"] for e in json.loads(PAPER_TABLES.read_text())["table1"]
                   if e["dataset"] == "DIV2K" and e["method"] == "SSR")  # the transcription
    assert (ssr["status"], ssr["ours"], float(ssr["paper"])) == ("no-data", "", printed)


def test_cli_names_the_groups_without_data_before_the_run(tmp_path: Path, data: dict[str, Path]) -> None:
    # Only DRealSR is there: the three synthetic groups are named (with the absolute root) up
    # front on stderr, and the run goes on for DRealSR (exit 0).
    out = tmp_path / "t.json"
    res = CliRunner().invoke(main, ["run", "--table", "1", "--data-root", str(data["real"]),
                                    "--metrics", "psnr", "--max-images", "1", "--out", str(out),
                                    "--work-dir", str(data["work"]), "--cache", str(data["cache"])])
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert lines[0] == (f"no data for 3 of 4 group(s) of table1 (div2k, bsds100, urban100); "
                        f"looked in {data['real']}")
    assert lines[1].startswith(f"  div2k: DIV2K not found under {data['real']}")
    assert "those groups show the paper's numbers only" in res.stderr
    doc = json.loads(out.read_text())
    assert [g["status"] for g in doc["groups"]] == ["not-found"] * 3 + ["ok"]


def test_cli_formats_are_the_renderers() -> None:
    from eval.cli_run import FORMATS
    from eval.tables.render import FORMATS as RENDERED

    assert FORMATS == RENDERED


# --- the built-in tables end to end on a miniature data root -----------------------------------
@pytest.fixture(scope="module")
def mini_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny stand-ins for every data set of Tables 1-3, in the layouts their sources expect.

    The sources check that whole sets are present (DIV2K valid 0801-0900, 100 BSDS100/Urban100
    images), so the folders hold that many 32x32 crops; ``--max-images 2`` then uses two of each.
    DRealSR gets two real-style pairs (LR by area downsampling).
    """
    root = tmp_path_factory.mktemp("data")
    photo = read_image(data_file("bsd100/img_002.png")).rgb
    folders = {"DIV2K_valid_HR": [f"{i:04d}.png" for i in range(801, 901)],
               "BSDS100": [f"img_{i:03d}.png" for i in range(1, 101)],
               "Urban100": [f"img{i:03d}.png" for i in range(1, 101)]}
    for folder, names in folders.items():
        (root / folder).mkdir()
        for i, name in enumerate(names):
            y, x = (7 * i) % (photo.shape[0] - 32), (13 * i) % (photo.shape[1] - 32)
            cv2.imwrite(str(root / folder / name), photo[y:y + 32, x:x + 32, ::-1])
    base = root / "DRealSR" / "Test_x4"
    for side in ("test_HR", "test_LR"):
        (base / side).mkdir(parents=True)
    for i in range(2):
        hr = photo[40 * i:40 * i + 48, 60:108]
        cv2.imwrite(str(base / "test_HR" / f"D{i}_x1.png"), hr[..., ::-1])
        lr = cv2.resize(hr, (12, 12), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(base / "test_LR" / f"D{i}_x4.png"), lr[..., ::-1])
    return root


@pytest.mark.parametrize("table", ["1", "2", "3"])
def test_builtin_table_end_to_end_on_miniature_data(mini_root: Path, tmp_path: Path, table: str) -> None:
    out = tmp_path / "t.json"
    args = ["run", "--table", table, "--data-root", str(mini_root), "--max-images", "2",
            "--out", str(out), "--work-dir", str(tmp_path / "w"), "--cache", str(tmp_path / "c")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    spec = load_table(table)
    assert doc["stand_in"] is None
    assert [g["id"] for g in doc["groups"]] == [g.id for g in spec.groups]
    for group, gspec in zip(doc["groups"], spec.groups, strict=True):
        assert group["status"] == "ok", group["reason"]
        rows = {r["id"]: r for r in group["rows"]}
        assert list(rows)[:len(spec.rows)] == [r.id for r in spec.rows]
        for rspec in spec.rows:  # the paper's value beside ours in every cell
            for i, m in enumerate(spec.metrics):
                assert rows[rspec.id]["cells"][m]["paper"] == rspec.paper_value(gspec.id, i)
        bicubic = rows["bicubic"]
        assert bicubic["n_images"] == 2
        if gspec.recipe is not None:
            samples = [s for shard in sorted(Path(group["testset"]["path"]).glob("*.tar"))
                       for s in iter_shard(shard)]
            assert group["testset"]["recipe"]["name"] == gspec.recipe
            pairs = [(s.hr, s.lr) for s in samples]
        else:
            base = mini_root / "DRealSR" / "Test_x4"
            pairs = [(read_image(base / "test_HR" / f"D{i}_x1.png").rgb,
                      read_image(base / "test_LR" / f"D{i}_x4.png").rgb) for i in range(2)]
        want = np.mean([psnr_y_direct(hr, bicubic_up_matlab_u8(lr), CROP) for hr, lr in pairs])
        assert bicubic["cells"]["psnr"]["ours"] == pytest.approx(want, abs=1e-9)
        if "niqe" in spec.metrics:  # 32 px images: NIQE refuses them, with the reason
            assert bicubic["cells"]["niqe"]["status"] == "na"
    if table == "3":
        assert any("DAN and DCLS rows of Table 1" in n for n in doc["notes"])


def test_metric_missing_everywhere_is_stated_once(data: dict[str, Path], fake_metrics: object) -> None:
    result = run(mini_spec(metrics=["psnr", "ssim", "fake_missing"]), data)
    reason = result.unavailable["fake_missing"]
    assert "missing" in reason
    for group in result.groups:
        cell = next(r for r in group.rows if r.spec.id == "bicubic").cells["fake_missing"]
        assert cell.status == "na"
        assert result.footnotes[cell.note - 1] == \
            "fake_missing: unavailable on this machine (the reason is given once, below)"
    assert not any(reason in text for text in result.footnotes)


def test_test_set_is_what_degrade_build_makes(data: dict[str, Path], tmp_path: Path) -> None:
    """The recorded degrade command, run by the CLI elsewhere, gives the same shard bytes."""
    from degrade.cli import main as degrade_main

    result = run(mini_spec(), data, previews=False)
    info = result.groups[0].testset
    args = info["degrade_command"].split()[2:]
    again = tmp_path / "again"
    args[args.index("--out") + 1] = str(again)
    res = CliRunner().invoke(degrade_main, ["build", *args, "--no-preview"])
    assert res.exit_code == 0, res.output
    ours = sorted(Path(info["path"]).glob("*.tar"))
    assert [p.name for p in ours] == [p.name for p in sorted(again.glob("*.tar"))]
    for p in ours:
        assert p.read_bytes() == (again / p.name).read_bytes()


def test_package_exports_resolve() -> None:
    import eval.tables as tables

    for name in tables.__all__:
        assert getattr(tables, name) is not None
    with pytest.raises(AttributeError):
        tables.nothing  # noqa: B018
