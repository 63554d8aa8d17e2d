"""score(): real PSNR/SSIM/NIQE, unavailable metrics, the cache, JSON/CSV output, checks."""

from __future__ import annotations

import csv
import dataclasses
import importlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.metrics import METRICS, ImagePair, ScoreCache, score
from ssr_core.errors import ConfigError, InputError
from tests.eval.conftest import noisy, random_rgb, smooth_rgb
from tests.reference import psnr_y_direct

score_module = importlib.import_module("eval.metrics.scoring")


def pairs_of(images: dict[str, tuple[np.ndarray, np.ndarray | None]]) -> list[ImagePair]:
    return [ImagePair.of(stem, pred, gt) for stem, (pred, gt) in images.items()]


# --- real metrics ---------------------------------------------------------------------------
def test_real_psnr_ssim_niqe_values_and_structure() -> None:
    gt = {f"img{i}": smooth_rgb(i, 192, 192) for i in range(2)}
    light = {s: noisy(g, 3.0, seed=10 + i) for i, (s, g) in enumerate(gt.items())}
    heavy = {s: noisy(g, 20.0, seed=20 + i) for i, (s, g) in enumerate(gt.items())}
    metrics = ["psnr", "ssim", "niqe"]
    res_l = score(metrics, pairs_of({s: (light[s], gt[s]) for s in gt}), crop_border=4)
    res_h = score(metrics, pairs_of({s: (heavy[s], gt[s]) for s in gt}), crop_border=4)
    assert res_l.metrics == metrics and res_l.unavailable == {}
    for stem in gt:
        # PSNR: independent computation (BT.601 Y from the formula, crop 4, MSE in float64).
        assert res_l.per_image[stem]["psnr"] == pytest.approx(
            psnr_y_direct(gt[stem], light[stem], 4), abs=1e-9)
        # SSIM: structure only (independent values live in the native metric's own tests).
        assert 0.0 < res_h.per_image[stem]["ssim"] < res_l.per_image[stem]["ssim"] < 1.0
        # NIQE: a finite, positive quality score that noise makes worse (higher).
        assert 0.0 < res_l.per_image[stem]["niqe"] < res_h.per_image[stem]["niqe"]
    for res in (res_l, res_h):
        for m in metrics:
            assert res.mean[m] == pytest.approx(np.mean([r[m] for r in res.per_image.values()]))
    conv = res_l.conventions
    assert conv["crop_border"] == 4 and conv["y_channel"] is True
    assert conv["metrics"]["psnr"]["options"] == {"crop_border": 4, "y_channel": True}
    assert conv["metrics"]["psnr"]["convention"] == METRICS["psnr"].convention
    assert "crop_border" not in conv["metrics"]["niqe"]["options"]  # no-reference: whole image
    assert "numpy" in conv["packages"]


def test_rgb_option_changes_psnr_to_rgb_mse() -> None:
    gt = random_rgb(0)
    pred = noisy(gt, 5.0)
    res = score(["psnr"], [ImagePair.of("a", pred, gt)], y_channel=False)
    mse = np.mean((gt.astype(np.float64) - pred) ** 2)
    assert res.per_image["a"]["psnr"] == pytest.approx(10 * math.log10(255.0**2 / mse), abs=1e-9)
    assert res.conventions["y_channel"] is False


def test_identical_images_give_inf_psnr_reported_and_counted() -> None:
    gt = random_rgb(0)
    res = score(["psnr"], [ImagePair.of("same", gt.copy(), gt),
                           ImagePair.of("noisy", noisy(gt, 5.0), gt)])
    assert res.per_image["same"]["psnr"] == math.inf
    assert res.mean["psnr"] == math.inf
    assert res.infinite == {"psnr": 1}
    out = res.to_json()
    assert out["per_image"]["same"]["psnr"] == "inf" and out["mean"]["psnr"] == "inf"
    text = json.dumps(out, allow_nan=False)  # strict JSON
    assert float(json.loads(text)["mean"]["psnr"]) == math.inf


# --- unavailable metrics --------------------------------------------------------------------
def test_unavailable_metric_is_recorded_and_others_run(fake_metrics) -> None:
    gt = random_rgb(0)
    res = score(["fake_missing", "psnr", "fake_fr"], [ImagePair.of("a", noisy(gt, 4.0), gt)])
    assert res.metrics == ["psnr", "fake_fr"]
    assert set(res.per_image["a"]) == {"psnr", "fake_fr"}
    assert "fake_weights.pth" in res.unavailable["fake_missing"]
    assert "/nowhere/weights" in res.unavailable["fake_missing"]
    out = res.to_json()
    assert out["unavailable"] == {"fake_missing": res.unavailable["fake_missing"]}
    assert "fake_missing" not in res.to_csv().splitlines()[0]


def test_metric_refusing_an_image_is_dropped_with_the_reason() -> None:
    big, small = smooth_rgb(0, 192, 192), smooth_rgb(1, 64, 64)  # NIQE needs two 96x96 blocks
    res = score(["niqe", "psnr"], [ImagePair.of("big", noisy(big, 3.0), big, pred_name="sr/big.png"),
                                   ImagePair.of("small", noisy(small, 3.0), small,
                                                pred_name="sr/small.png")])
    assert res.metrics == ["psnr"]
    assert all(set(row) == {"psnr"} for row in res.per_image.values())  # no half-filled column
    assert res.unavailable["niqe"].startswith("failed on sr/small.png: NIQE needs")
    assert "niqe" not in res.conventions["metrics"] and "niqe" not in res.mean


def test_missing_extra_is_unavailable_without_importing(fake_metrics, monkeypatch) -> None:
    spec = dataclasses.replace(METRICS["fake_nr"], name="fake_extra", extra="fakeextra",
                               factory="no_such_module_ssr:Nothing")
    METRICS.register("fake_extra", spec)  # fake_metrics restores the registry
    monkeypatch.setitem(score_module._EXTRA_PROBES, "fakeextra", "no_such_module_ssr")
    res = score(["fake_extra", "fake_nr"], [ImagePair.of("a", random_rgb(0))])
    assert 'pip install "ssr-bench[fakeextra]"' in res.unavailable["fake_extra"]
    assert res.metrics == ["fake_nr"]


# --- cache ----------------------------------------------------------------------------------
def test_cache_hit_skips_work_and_changes_recompute(fake_metrics, tmp_path: Path,
                                                    monkeypatch) -> None:
    calls = fake_metrics
    gts = {s: random_rgb(i) for i, s in enumerate("abc")}
    preds = {s: noisy(g, 4.0) for s, g in gts.items()}
    metrics = ["fake_fr", "fake_nr"]

    def run(**kw) -> object:
        calls.clear()
        with ScoreCache(tmp_path / "cache") as cache:
            return score(metrics, pairs_of({s: (preds[s], gts[s]) for s in gts}), cache=cache, **kw)

    first = run()
    assert calls == {"fake_fr": 3, "fake_nr": 3} and (first.computed, first.cached) == (6, 0)
    again = run()
    assert sum(calls.values()) == 0 and (again.computed, again.cached) == (0, 6)
    assert again.per_image == first.per_image
    preds["b"] = noisy(gts["b"], 9.0, seed=7)  # one changed prediction: only its values
    changed = run()
    assert calls == {"fake_fr": 1, "fake_nr": 1} and changed.cached == 4
    bumped = dataclasses.replace(METRICS["fake_fr"], version="2")
    METRICS.unregister("fake_fr")
    METRICS.register("fake_fr", bumped)
    run()
    assert calls == {"fake_fr": 3}  # a new metric version recomputes that metric only
    cropped = run(crop_border=2)
    assert calls == {"fake_fr": 3}  # crop reaches full-reference metrics only
    assert cropped.per_image["a"]["fake_fr"] != first.per_image["a"]["fake_fr"]


def test_cache_is_keyed_by_pixels_and_stores_inf(tmp_path: Path) -> None:
    gt = random_rgb(0)
    with ScoreCache(tmp_path) as cache:
        first = score(["psnr"], [ImagePair.of("x", gt.copy(), gt)], cache=cache)
        renamed = score(["psnr"], [ImagePair.of("y", gt.copy(), gt)], cache=cache)
        assert len(cache) == 1
    assert (first.computed, renamed.cached) == (1, 1)
    assert renamed.per_image["y"]["psnr"] == math.inf


def test_default_cache_dir_follows_env(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSR_BENCH_CACHE", str(tmp_path / "c"))
    assert ScoreCache().folder == tmp_path / "c" / "scores"


def test_unusable_cache_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "scores.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="--no-cache"):
        score(["psnr"], [ImagePair.of("a", random_rgb(0), random_rgb(1))],
              cache=ScoreCache(tmp_path))


# --- output formats -------------------------------------------------------------------------
def test_json_has_exactly_the_documented_keys(fake_metrics) -> None:
    gt = random_rgb(0)
    res = score(["fake_fr", "fake_nr"], [ImagePair.of("a", noisy(gt, 4.0), gt),
                                         ImagePair.of("b", gt, gt)])
    out = res.to_json()
    assert set(out) == {"per_image", "mean", "conventions"}  # no "unavailable" when empty
    assert out["per_image"] == {"a": {"fake_fr": res.per_image["a"]["fake_fr"],
                                      "fake_nr": res.per_image["a"]["fake_nr"]},
                                "b": {"fake_fr": 0.0, "fake_nr": float(gt.mean())}}
    assert out["mean"]["fake_fr"] == pytest.approx(res.per_image["a"]["fake_fr"] / 2)
    assert set(out["conventions"]["metrics"]) == {"fake_fr", "fake_nr"}
    assert out["conventions"]["metrics"]["fake_fr"]["fake"] is True  # the instance's conventions
    json.dumps(out, allow_nan=False)


def test_csv_has_one_row_per_image_and_a_mean_row(fake_metrics) -> None:
    gt = random_rgb(0)
    res = score(["fake_fr", "fake_nr"], [ImagePair.of("a", noisy(gt, 4.0), gt),
                                         ImagePair.of("b", noisy(gt, 8.0), gt)])
    rows = list(csv.reader(io.StringIO(res.to_csv())))
    assert rows[0] == ["image", "fake_fr", "fake_nr"]
    assert [r[0] for r in rows[1:]] == ["a", "b", "mean"]
    assert float(rows[1][1]) == res.per_image["a"]["fake_fr"]  # full precision
    assert float(rows[3][2]) == res.mean["fake_nr"]


# --- checks ---------------------------------------------------------------------------------
def test_size_mismatch_names_both_images() -> None:
    pair = ImagePair.of("a", random_rgb(0, 32, 40), random_rgb(1, 32, 44),
                        pred_name="sr/a.png", gt_name="hr/a.png")
    with pytest.raises(ConfigError, match=r"hr/a.png is 44x32 .* sr/a.png is 40x32"):
        score(["psnr"], [pair])


def test_full_reference_metric_without_gt_is_refused(fake_metrics) -> None:
    with pytest.raises(ConfigError, match="psnr compare with a ground truth"):
        score(["psnr", "fake_nr"], [ImagePair.of("a", random_rgb(0))])
    res = score(["fake_nr"], [ImagePair.of("a", random_rgb(0))])  # no-reference alone is fine
    assert res.per_image["a"]["fake_nr"] == pytest.approx(random_rgb(0).mean())


def test_bad_requests_fail_before_work() -> None:
    with pytest.raises(ConfigError, match="did you mean 'psnr'"):
        score(["pnsr"], [])
    with pytest.raises(ConfigError, match="listed twice"):
        score(["psnr", "psnr"], [])
    with pytest.raises(ConfigError, match="no images"):
        score(["psnr"], [])
    with pytest.raises(ConfigError, match="appears twice"):
        score(["psnr"], [ImagePair.of("a", random_rgb(0), random_rgb(1))] * 2)
    with pytest.raises(InputError, match=r"uint8 RGB \(H, W, 3\), got float64"):
        score(["psnr"], [ImagePair.of("a", random_rgb(0).astype(np.float64), random_rgb(1))])


def test_progress_is_called_per_image(fake_metrics) -> None:
    seen: list[int] = []
    score(["fake_nr"], [ImagePair.of(s, random_rgb(i)) for i, s in enumerate("abc")],
          progress=seen.append)
    assert seen == [1, 2, 3]


# --- package API ----------------------------------------------------------------------------
def test_public_api_is_lazy_and_names_mean_functions() -> None:
    code = ("import sys, eval.metrics as m\n"
            "heavy = [k for k in ('numpy', 'cv2', 'torch') if k in sys.modules]\n"
            "import eval.metrics.scoring, eval.metrics.niqe_model\n"
            "from eval.metrics import score, niqe, psnr, ssim\n"
            "print(heavy, callable(score) and callable(niqe), type(m.score).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] True function"
