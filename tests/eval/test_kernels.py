"""The kernel-estimation track (eval.kernels, `ssr-eval kernels`): metrics against slow direct
references, baselines, conversions, folders of estimates, DKENet runs, caching, maps and the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from degrade.ops.blur import apply_kernel_field
from degrade.ops.kernels import gaussian_kernels
from eval.cli import main
from eval.kernels.estimates import (
    Estimate,
    Geometry,
    invariant_estimate,
    params_estimate,
    taps_estimate,
)
from eval.kernels.maps import write_maps
from eval.kernels.methods import KernelImage, parse_kernel_method
from eval.kernels.metrics import score_image
from eval.kernels.run import KernelSet, score_kernel_set, shard_kernel_set
from eval.metrics.cache import ScoreCache
from ssr_core.errors import ConfigError, InputError
from tests.reference import gaussian_kernel_direct, gaussian_param_errors_direct, kernel_scores_direct

GEO = Geometry(kernel_size=9, delta=1.5, scale=4)


def smooth_field(h: int, w: int, lo: float, hi: float, seed: int) -> np.ndarray:
    """A (3, h, w) field whose size follows a ramp ("depth") from lo to hi HR px."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(lo, hi, h * w).reshape(h, w)
    s2 = ramp * rng.uniform(0.6, 1.0, (h, w))
    theta = rng.uniform(0, math.pi, (h, w))
    return np.stack([ramp, s2, theta]).astype(np.float32)


def test_param_metrics_match_the_direct_reference() -> None:
    true, est = smooth_field(4, 5, 0.7, 1.6, 0), smooth_field(4, 5, 0.9, 1.3, 1)
    got = score_image(params_estimate(est, (4, 5)), true, GEO)
    ref = kernel_scores_direct(lambda i, j: gaussian_kernel_direct(*est[:, i, j].astype(float), 9, 1.5),
                               true, 9, 1.5)
    # float32 taps (the package) vs float64 (the reference): MSE agrees to ~1e-6 relative
    assert got.values["kernel_psnr"] == pytest.approx(ref["kernel_psnr"], abs=1e-4)
    assert got.values["kernel_l1"] == pytest.approx(ref["kernel_l1"], rel=1e-5)
    params = gaussian_param_errors_direct(est, true)
    for m in ("sigma_mae", "size_mae", "theta_err"):
        assert got.values[m] == pytest.approx(params[m], rel=1e-6, abs=1e-9), m
    assert "redeg_psnr" in got.why_na and "kernel_l1" in got.maps


def test_tap_and_invariant_estimates_match_the_direct_reference() -> None:
    true = smooth_field(3, 4, 0.8, 1.4, 2)
    rng = np.random.default_rng(3)
    taps = rng.random((3, 4, 9, 9)) + 0.01
    taps /= taps.sum((-2, -1), keepdims=True)
    got = score_image(taps_estimate(taps, 9, 1.5, GEO), true, GEO)
    ref = kernel_scores_direct(lambda i, j: taps[i, j], true, 9, 1.5)
    assert got.values["kernel_psnr"] == pytest.approx(ref["kernel_psnr"], abs=1e-4)
    assert got.values["kernel_l1"] == pytest.approx(ref["kernel_l1"], rel=1e-5)
    assert "sigma_mae" in got.why_na and "taps" in got.why_na["sigma_mae"]
    one = taps[1, 2]
    inv = Estimate("invariant", one)
    got = score_image(inv, true, GEO)
    ref = kernel_scores_direct(lambda i, j: one, true, 9, 1.5)
    assert got.values["kernel_psnr"] == pytest.approx(ref["kernel_psnr"], abs=1e-4)


def test_true_field_scores_zero_error_and_infinite_kernel_psnr() -> None:
    true = smooth_field(4, 4, 0.7, 2.0, 4)
    got = score_image(params_estimate(true, (4, 4)), true, GEO)
    assert got.values["kernel_psnr"] == math.inf
    assert got.values["kernel_l1"] == 0 and got.values["sigma_mae"] == 0
    assert got.values["size_mae"] == 0 and got.values["theta_err"] == 0


def test_theta_is_modulo_pi_and_swapped_axes_are_the_same_gaussian() -> None:
    true = np.array([2.0, 1.0, 0.1], np.float32).reshape(3, 1, 1)
    turned = np.array([2.0, 1.0, 0.1 + math.pi], np.float32).reshape(3, 1, 1)
    swapped = np.array([1.0, 2.0, 0.1 + math.pi / 2], np.float32).reshape(3, 1, 1)
    for est in (turned, swapped):
        got = score_image(params_estimate(est, (1, 1)), true, GEO).values
        assert got["theta_err"] == pytest.approx(0, abs=1e-4)
        assert got["sigma_mae"] == pytest.approx(0, abs=1e-6)
    iso = np.ones((3, 1, 1), np.float32)
    assert "isotropic" in score_image(params_estimate(iso, (1, 1)), iso, GEO).why_na["theta_err"]


def test_conversions_are_explicit_and_refused_when_inexact() -> None:
    field = smooth_field(2, 2, 1.0, 1.2, 5)
    k = gaussian_kernels(torch.from_numpy(field).permute(1, 2, 0).double(), 11, 0.5).numpy()
    # delta 0.5 -> 1.5: one whole tap; K 11 -> 9: a crop
    est = taps_estimate(k, 11, 0.5, GEO)
    want = gaussian_kernels(torch.from_numpy(field).permute(1, 2, 0).double(), 9, 1.5).numpy()
    assert np.allclose(est.data.reshape(2, 2, 9, 9), want, atol=2e-3)
    assert any("moved by 1 tap" in c for c in est.conversions)
    with pytest.raises(ConfigError, match=r"delta 0 .* 1.5 taps is not a whole number"):
        taps_estimate(k, 11, 0.0, GEO)
    wide = gaussian_kernels(torch.tensor([4.0, 4.0, 0.0]).double(), 21, 0.0).numpy()
    with pytest.raises(ConfigError, match=r"drops up to .*% of a kernel's mass"):
        taps_estimate(wide[None, None], 21, 1.5, GEO)
    # variances are square-rooted
    v = params_estimate(field ** np.array([2, 2, 1], np.float32)[:, None, None], (2, 2), variance=True)
    assert np.allclose(v.data, field, atol=1e-6)


def test_invariant_kernels_are_centred_by_centre_of_mass() -> None:
    # a KernelGAN-style estimate centred on tap R (delta 0) equals the set's kernel once centred
    p = torch.tensor([1.3, 0.9, 0.4], dtype=torch.float64)
    est = invariant_estimate(gaussian_kernels(p, 13, 0.0).numpy(), GEO)
    true = np.broadcast_to(p.numpy().astype(np.float32)[:, None, None], (3, 2, 2)).copy()
    assert score_image(est, true, GEO).values["kernel_psnr"] > 60  # a cubic-spline move of 1.5 taps
    with pytest.raises(ConfigError, match="mass lies outside"):
        invariant_estimate(gaussian_kernels(torch.tensor([6.0, 6.0, 0.0]).double(), 41, 0.0).numpy(), GEO)


def _memory_set(fields: list[np.ndarray], name: str = "mem") -> KernelSet:
    images = [KernelImage(f"k{i}", np.zeros((*f.shape[1:], 3), np.uint8),
                          np.zeros((4 * f.shape[1], 4 * f.shape[2], 3), np.uint8), None, f)
              for i, f in enumerate(fields)]
    return KernelSet(name, "", GEO, [im.key for im in images], name, "test set in memory", {},
                     lambda: iter(images))


def test_invariant_oracle_beats_the_mean_kernel_on_a_depth_varying_set() -> None:
    kset = _memory_set([smooth_field(6, 6, 0.6, 1.0, 6), smooth_field(6, 6, 2.0, 2.8, 7)])
    methods = [parse_kernel_method(m) for m in ("true", "oracle", "mean")]
    true, oracle, mean = score_kernel_set(kset, methods)
    assert true.mean("kernel_psnr") == math.inf
    assert oracle.mean("kernel_psnr") > mean.mean("kernel_psnr") + 3
    assert oracle.mean("kernel_l1") < mean.mean("kernel_l1")
    assert "no Gaussian parameters" in mean.why_na["sigma_mae"]


@pytest.fixture(scope="module")
def clean_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A noise-free shard set built by the engine: two 64 x 64 crops of the sample photos."""
    from degrade.build import BuildConfig, build
    from degrade.recipes import load_recipe

    out = tmp_path_factory.mktemp("kernels") / "clean"
    config = BuildConfig(recipe=load_recipe("ssr-clean"), source="sample", crop=(64, 64),
                         max_images=2, depth="prior")
    build(config, out, preview=False)
    return out


def test_redegradation_of_the_true_field_meets_the_engine_bound(clean_set: Path) -> None:
    kset = shard_kernel_set(clean_set)
    assert kset.redeg_reason is None and kset.geometry == Geometry(21, 1.5, 4)
    (true,) = score_kernel_set(kset, [parse_kernel_method("true")])
    # rounded like the build, the true field gives the LR byte for byte: PSNR = inf
    assert all(v["redeg_psnr"] == math.inf for v in true.per_image.values())
    for image in kset.images():  # unrounded: within half a level + the engine's float32 bound
        hr = torch.from_numpy(image.hr).permute(2, 0, 1)[None].float() / 255
        lr = apply_kernel_field(hr, torch.from_numpy(image.kernel_field)[None], 4, 21, 1.5)
        diff = (lr[0].permute(1, 2, 0).numpy() - image.lr / 255.0)
        assert np.abs(diff).max() <= 0.5 / 255 + 2e-6


def test_folder_method_validates_files(tmp_path: Path, clean_set: Path) -> None:
    kset = shard_kernel_set(clean_set)
    folder = tmp_path / "est"
    folder.mkdir()
    first, second = kset.keys
    np.save(folder / f"{first}.npy", np.ones((3, 5, 5), np.float32))
    method = parse_kernel_method(f"Folder={folder}")
    (scores,) = score_kernel_set(kset, [method])
    assert scores.unsupported and second in scores.unsupported
    np.save(folder / f"{second}.npy", np.ones((3, 5, 5), np.float32))
    with pytest.raises(InputError, match=r"expected \(3, 16, 16\) Gaussian parameters.*got \(3, 5, 5\)"):
        score_kernel_set(kset, [parse_kernel_method(f"Folder={folder}")])
    (folder / "conventions.json").write_text(json.dumps({"sigmma": "std"}))
    with pytest.raises(ConfigError, match="did you mean 'sigma'"):
        parse_kernel_method(f"Folder={folder}")


def test_dkenet_run_folder_and_baselines_with_cache_and_maps(tmp_path: Path, clean_set: Path) -> None:
    from tests.ssr_models.test_infer import write_stage

    write_stage(tmp_path / "run" / "kernel", "kernel", "dkenet-tiny")
    kset = shard_kernel_set(clean_set)
    folder = tmp_path / "fields"
    folder.mkdir()
    for image in kset.images():  # a folder of (h, w, K, K) taps equal to the truth
        k = gaussian_kernels(torch.from_numpy(image.kernel_field).permute(1, 2, 0).double(), 21, 1.5)
        np.save(folder / f"{image.key}.npy", k.numpy())
    methods = [parse_kernel_method(m) for m in (f"DKENet={tmp_path / 'run'}", f"F={folder}", "oracle")]
    with ScoreCache(tmp_path / "cache") as cache:
        first = score_kernel_set(kset, methods, cache=cache, map_keys={kset.keys[0]})
        again = score_kernel_set(kset, methods, cache=cache)
    dke, fields, oracle = first
    assert 0 < dke.mean("kernel_psnr") < oracle.mean("kernel_psnr") < fields.mean("kernel_psnr")
    assert fields.mean("kernel_l1") < 1e-5 and fields.mean("redeg_psnr") > 50
    assert all(r.computed == 0 and r.cached > 0 for r in again)
    assert [r.per_image for r in again] == [r.per_image for r in first]
    page = write_maps(tmp_path / "maps", [(kset, first)])
    assert page.is_file() and "DKENet-kernel_l1.png" in page.read_text()
    assert (page.parent / "clean" / kset.keys[0] / "true_size.png").is_file()


def test_cli_scores_a_set_and_prints_the_table(tmp_path: Path, clean_set: Path) -> None:
    result = CliRunner().invoke(main, ["kernels", "--set", str(clean_set), "--cache",
                                       str(tmp_path / "cache"),
                                       "--format", "markdown", "--maps", str(tmp_path / "maps"),
                                       "--map-images", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "maps" / "index.html").is_file()
    assert "Kernel PSNR" in result.output and "Invariant oracle" in result.output
    assert "| True field (sanity) | **inf** |" in result.output  # bold: the best of its column
    # no paper prints these numbers: one column per metric, no paper/delta columns
    assert "| Test set | Method | Kernel PSNR↑ | Kernel L1↓ |" in result.output
    for fmt, absent in (("latex", "paper"), ("html", "<th>paper</th>")):  # from the cache
        cached = CliRunner().invoke(main, ["kernels", "--set", str(clean_set), "--cache",
                                           str(tmp_path / "cache"), "--format", fmt])
        assert cached.exit_code == 0 and "Kernel PSNR" in cached.output
        assert absent not in cached.output.split("provenance")[0].lower(), fmt


def test_cli_errors_are_one_line(tmp_path: Path, clean_set: Path) -> None:
    result = CliRunner().invoke(main, ["kernels", "--set", str(clean_set), "--method", "x=orcale"])
    assert result.exit_code != 0 and "did you mean the baseline 'oracle'" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(main, ["score", "--pred", str(tmp_path), "--metrics", "kernel_psnr"])
    assert result.exit_code == 2 and "use `ssr-eval kernels`" in result.output


def test_sets_whose_kernel_is_not_the_gaussian_field_are_refused(tmp_path: Path, clean_set: Path) -> None:
    from degrade.recipes import load_recipe

    manifest = json.loads((clean_set / "manifest.json").read_text())
    manifest["recipe"] = load_recipe("div2krk").to_dict()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="one K x K array of taps per sample"):
        shard_kernel_set(tmp_path)
