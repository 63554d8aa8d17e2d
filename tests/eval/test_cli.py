"""`ssr-eval score`: matching by stem, refusals, shard-set inputs, outputs, cache, entry points."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from degrade.build import build
from eval.cli import main
from eval.metrics.registry import METRICS
from tests.eval.conftest import noisy, random_rgb
from tests.helpers import make_config, samples_by_key, write_folder, write_rgb
from tests.reference import psnr_y_direct


def run(*args: str) -> object:
    return CliRunner().invoke(main, ["score", *args])


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """gt/ with a, b, c (png) and pred/ with a.png, b.bmp, c.png (lossless), noisy versions."""
    gts = {s: random_rgb(i) for i, s in enumerate("abc")}
    preds = {s: noisy(g, 3.0 + i, seed=i) for i, (s, g) in enumerate(gts.items())}
    for s in gts:
        write_rgb(tmp_path / "gt" / f"{s}.png", gts[s])
        write_rgb(tmp_path / "pred" / f"{s}{'.bmp' if s == 'b' else '.png'}", preds[s])
    return tmp_path / "gt", tmp_path / "pred", gts, preds


def test_folders_matched_by_stem_json_csv_and_table(folders, tmp_path: Path) -> None:
    gt, pred, gts, preds = folders
    out_json, out_csv = tmp_path / "s.json", tmp_path / "s.csv"
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr,ssim", "--crop-border", "2",
            "--json", str(out_json), "--csv", str(out_csv), "--no-cache")
    assert r.exit_code == 0, r.output
    data = json.loads(out_json.read_text())
    assert set(data) == {"per_image", "mean", "conventions"}
    assert list(data["per_image"]) == ["a", "b", "c"]
    for s in "abc":
        assert data["per_image"][s]["psnr"] == pytest.approx(
            psnr_y_direct(gts[s], preds[s], 2), abs=1e-9)
    assert data["conventions"]["crop_border"] == 2
    rows = list(csv.reader(out_csv.open()))
    assert rows[0] == ["image", "psnr", "ssim"] and [x[0] for x in rows[1:]] == ["a", "b", "c", "mean"]
    assert float(rows[-1][1]) == pytest.approx(data["mean"]["psnr"])
    assert "PSNR \u2191" in r.output and "SSIM \u2191" in r.output
    assert f"{data['mean']['psnr']:12.4f}" in r.output
    assert "crop_border 2 px" in r.output


def test_missing_stems_are_named_unless_allowed(folders) -> None:
    gt, pred, _, _ = folders
    (pred / "c.png").unlink()
    write_rgb(pred / "zeta.png", random_rgb(9))
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "--no-cache")
    assert r.exit_code == 1
    assert "1 in --gt" in r.output and ": c;" in r.output
    assert "1 in --pred" in r.output and "zeta" in r.output and "--allow-missing" in r.output
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "--no-cache",
            "--allow-missing")
    assert r.exit_code == 0, r.output
    assert "scoring 2 common image(s)" in r.output and "2 image(s)" in r.output


def test_size_mismatch_is_refused_with_both_files(folders) -> None:
    gt, pred, _, _ = folders
    write_rgb(pred / "a.png", random_rgb(0, 32, 44))
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "--no-cache")
    assert r.exit_code == 1
    assert "size mismatch" in r.output
    assert f"{gt / 'a.png'} is 40x32 but {pred / 'a.png'} is 44x32" in r.output


def test_duplicate_stems_are_ambiguous(folders) -> None:
    gt, pred, _, _ = folders
    write_rgb(pred / "a.bmp", random_rgb(0))
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "--no-cache")
    assert r.exit_code == 1
    assert "ambiguous" in r.output and "a.bmp and a.png" in r.output


def test_usage_errors(folders) -> None:
    gt, pred, _, _ = folders
    r = run("--pred", str(pred), "--metrics", "psnr")
    assert r.exit_code == 2 and "psnr compare with a ground truth: give --gt" in r.output
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr,sism")
    assert r.exit_code == 2 and "did you mean 'ssim'" in r.output
    r = run("--gt", str(gt), "--pred", str(pred), "--cache", "x", "--no-cache")
    assert r.exit_code == 2 and "exclude each other" in r.output


def test_unavailable_metric_printed_with_reason(folders, fake_metrics) -> None:
    gt, pred, _, _ = folders
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr,fake_missing", "--no-cache")
    assert r.exit_code == 0, r.output
    assert "unavailable: fake_missing: missing fake_weights.pth: put it in /nowhere/weights" in r.output
    assert "PSNR \u2191" in r.output


def test_identical_images_inf_in_table_and_json(folders, tmp_path: Path) -> None:
    gt, pred, gts, _ = folders
    write_rgb(pred / "a.png", gts["a"])
    out_json = tmp_path / "s.json"
    r = run("--gt", str(gt), "--pred", str(pred), "--metrics", "psnr", "--no-cache",
            "--json", str(out_json))
    assert r.exit_code == 0, r.output
    assert "inf  dB  (1 of 3 image(s) inf)" in r.output
    data = json.loads(out_json.read_text())
    assert data["per_image"]["a"]["psnr"] == "inf" and data["mean"]["psnr"] == "inf"


def test_cache_rerun_computes_nothing(folders, tmp_path: Path, fake_metrics) -> None:
    gt, pred, _, _ = folders
    args = ("--gt", str(gt), "--pred", str(pred), "--metrics", "fake_fr,fake_nr",
            "--cache", str(tmp_path / "cache"))
    r = run(*args)
    assert r.exit_code == 0 and "6 value(s) computed, 0 from the cache" in r.output
    fake_metrics.clear()
    r = run(*args)
    assert r.exit_code == 0 and "0 value(s) computed, 6 from the cache" in r.output
    assert sum(fake_metrics.values()) == 0


def test_no_reference_on_a_folder_uses_only_no_reference_defaults(folders, monkeypatch,
                                                                  fake_metrics) -> None:
    _, pred, _, preds = folders
    for name in [n for n in METRICS if n != "fake_nr" and not METRICS[n].full_reference]:
        METRICS.unregister(name)  # keep the default list to the fake one (fast); restored after
    r = run("--pred", str(pred), "--no-cache")
    assert r.exit_code == 0, r.output
    assert "FAKE_NR \u2191" in r.output and "PSNR" not in r.output


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny `degrade build` (3 images 48x64, x4, no noise/JPEG)."""
    root = tmp_path_factory.mktemp("shards")
    write_folder(root / "images", ("alpha", "bravo", "charlie"))
    build(make_config(root / "images", no_noise=True, no_jpeg=True), root / "set", preview=False)
    return root / "set"


def test_gt_shard_set_scores_bicubic_upscaled_lr_against_hr(shard_set: Path,
                                                            tmp_path: Path) -> None:
    samples = samples_by_key(shard_set)
    pred = tmp_path / "bicubic"
    preds = {}
    for key, s in samples.items():
        h, w = s.hr.shape[:2]
        preds[key] = cv2.resize(s.lr, (w, h), interpolation=cv2.INTER_CUBIC)
        write_rgb(pred / f"{key}.png", preds[key])
    out_json = tmp_path / "s.json"
    r = run("--gt", str(shard_set), "--pred", str(pred), "--metrics", "psnr,ssim", "--no-cache",
            "--json", str(out_json))
    assert r.exit_code == 0, r.output
    data = json.loads(out_json.read_text())
    assert data["conventions"]["crop_border"] == 4  # the shard set's scale
    assert set(data["per_image"]) == set(samples)
    for key, s in samples.items():
        assert data["per_image"][key]["psnr"] == pytest.approx(
            psnr_y_direct(s.hr, preds[key], 4), abs=1e-9)
        assert 0.0 < data["per_image"][key]["ssim"] < 1.0
    assert "HR of shard set" in r.output


def test_pred_shard_set_rates_lr_with_no_reference_metrics(shard_set: Path, fake_metrics,
                                                            tmp_path: Path) -> None:
    samples = samples_by_key(shard_set)
    out_json = tmp_path / "s.json"
    r = run("--pred", str(shard_set), "--metrics", "fake_nr", "--no-cache", "--json", str(out_json))
    assert r.exit_code == 0, r.output
    data = json.loads(out_json.read_text())
    assert data["per_image"] == {k: {"fake_nr": pytest.approx(float(s.lr.mean()))}
                                 for k, s in samples.items()}
    assert "LR of shard set" in r.output
    r = run("--gt", str(shard_set), "--pred", str(shard_set), "--metrics", "psnr")
    assert r.exit_code == 1 and "is a shard set: that means its LR images" in r.output


def test_python_dash_m_eval_help() -> None:
    out = subprocess.run([sys.executable, "-m", "eval", "--help"], capture_output=True, text=True,
                         check=True)
    assert "Usage: ssr-eval" in out.stdout and "score" in out.stdout
    assert "PSNR, SSIM" in out.stdout

