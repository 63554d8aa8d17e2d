"""Protocol recipes against independent references written from each protocol's published code.

The references (tests/reference.py) restate the authors' formulas: IKC/DAN/DCLS's kernels and
BatchBlur, KernelGAN's generator kernel with scipy's correlate, MATLAB's imresize. Expected
values never come from our own output.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from scipy import ndimage

from degrade.cli import main
from degrade.fields import draw_degradation
from degrade.ops.bsrgan import bsrgan_kernel, shift_pixel
from degrade.ops.downsample import blur_downsample, correlate_taps, mirror_indices
from degrade.ops.quantize import to_uint8
from degrade.ops.second_order import (
    apply_realesrgan,
    kernel_from_params,
    mixed_kernel,
    sinc_kernel,
    usm_sharpen,
)
from degrade.protocols import list_protocols, load_protocol, settle_ties
from degrade.recipes import BUILTIN_RECIPES, load_recipe, recipe_from_dict
from degrade.second_order import draw_bsrgan, draw_realesrgan
from ssr_core.errors import ConfigError
from tests.reference import (
    basicsr_circular_lowpass,
    basicsr_mixed_kernel,
    basicsr_usm,
    blindsr_generator_kernel,
    bsrgan_anisotropic_gaussian,
    correlate_reflect_full,
    dcls_disturbed_kernel,
    direct_degradation,
    ikc_isotropic_kernel,
    imresize_bicubic_down_matlab_chw,
    matlab_fspecial_gaussian,
)


def _hr(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((3, h, w))


# ---------------------------------------------------------------- gaussian8 (IKC/DAN/DCLS setting 1)


def test_gaussian8_widths_kernel_and_bicubic_match_the_released_script() -> None:
    recipe = load_recipe("gaussian8")
    # DCLS-SR generate_mod_blur_LR_bic.py: for sig in np.linspace(1.8, 3.2, 8)
    widths = [draw_degradation(recipe, np.zeros((8, 8)), np.random.default_rng(0), v).kernel_field[0, 0, 0]
              for v in range(8)]
    np.testing.assert_allclose(widths, np.linspace(1.8, 3.2, 8), rtol=0, atol=1e-6)
    assert recipe.delta_px == 0.0 and recipe.downsampler == "bicubic" and recipe.kernel_size == 21
    hr = _hr(24, 28)
    for v in (0, 7):  # the narrowest and the widest width
        draw = draw_degradation(recipe, np.zeros((24, 28)), np.random.default_rng(0), v)
        got, _ = blur_downsample(torch.from_numpy(hr)[None], 4, 21, 0.0, "bicubic",
                                 kernel_field=torch.from_numpy(draw.kernel_field.astype(np.float64))[None],
                                 backend="torch")
        sigma = float(np.linspace(1.8, 3.2, 8)[v])
        ref = imresize_bicubic_down_matlab_chw(correlate_reflect_full(hr, ikc_isotropic_kernel(sigma)), 4)
        # float64 engine vs loops: the field stores sigma in float32 (1e-7 relative)
        np.testing.assert_allclose(got[0].numpy(), ref, rtol=0, atol=1e-6)


def test_bicubic_after_a_variant_field_blurs_each_block_with_its_own_kernel() -> None:
    # A field with two different sigmas: every HR pixel of LR pixel (i, j)'s block is blurred by
    # (i, j)'s kernel, then the MATLAB resize runs.
    hr = _hr(16, 16, seed=2)
    field = np.zeros((3, 4, 4))
    field[0], field[1] = 0.8, 0.8
    field[:2, :, 2:] = 2.0
    got, _ = blur_downsample(torch.from_numpy(hr)[None], 4, 9, 0.0, "bicubic",
                             kernel_field=torch.from_numpy(field)[None], backend="torch")
    left = correlate_reflect_full(hr, ikc_isotropic_kernel(0.8, 9))
    right = correlate_reflect_full(hr, ikc_isotropic_kernel(2.0, 9))
    blurred = np.concatenate([left[:, :, :8], right[:, :, 8:]], axis=2)
    np.testing.assert_allclose(got[0].numpy(), imresize_bicubic_down_matlab_chw(blurred, 4),
                               rtol=0, atol=1e-12)


# ---------------------------------------------------------------- dcls-aniso (DCLS/DAN setting 2)


def test_dcls_aniso_taps_follow_their_kernel_formula_and_draw_order() -> None:
    recipe = load_recipe("dcls-aniso")
    draw = draw_degradation(recipe, np.zeros((8, 8)), np.random.default_rng(11))
    rng = np.random.default_rng(11)  # the documented order: s1, s2, theta, then K x K factors
    sx, sy = rng.uniform(0.6, 5.0), rng.uniform(0.6, 5.0)
    radians = rng.uniform(-math.pi, math.pi)
    disturb = rng.uniform(0.0, 0.25, size=(31, 31))
    np.testing.assert_allclose(draw.taps, dcls_disturbed_kernel(sx, sy, radians, disturb),
                               rtol=0, atol=1e-15)
    assert draw.kernel_field[:, 0, 0] == pytest.approx([sx, sy, radians % math.pi], abs=1e-6)


def test_dcls_aniso_parameter_ranges() -> None:
    recipe = load_recipe("dcls-aniso")
    rng = np.random.default_rng(3)
    draws = [draw_degradation(recipe, np.zeros((4, 4)), rng) for _ in range(60)]
    s = np.array([d.kernel_field[:2, 0, 0] for d in draws])
    assert s.min() >= 0.6 and s.max() <= 5.0 and s.max() - s.min() > 3.0
    for d in draws[:5]:  # taps / noiseless Gaussian lies in [1, 1.25] up to one common factor
        g = dcls_disturbed_kernel(*(float(v) for v in d.kernel_field[:, 0, 0]), np.zeros((31, 31)))
        ratio = (d.taps / g)[g > 1e-6 * g.max()]  # kernel.npy's float32 sigmas: tails drift
        assert 1.2 < ratio.max() / ratio.min() <= 1.25 * (1 + 1e-4)


def test_dcls_aniso_blur_is_a_reflect_correlation_then_matlab_bicubic() -> None:
    recipe = load_recipe("dcls-aniso")
    draw = draw_degradation(recipe, np.zeros((8, 8)), np.random.default_rng(5))
    hr = _hr(32, 36, seed=5)
    got, how = blur_downsample(torch.from_numpy(hr)[None], 4, 31, 0.0, "bicubic",
                               kernel_taps=torch.from_numpy(draw.taps)[None])
    ref = imresize_bicubic_down_matlab_chw(correlate_reflect_full(hr, draw.taps), 4)
    assert how == "conv2d"
    np.testing.assert_allclose(got[0].numpy(), ref, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- div2krk (KernelGAN)


def test_div2krk_taps_follow_the_generator_kernel() -> None:
    recipe = load_recipe("div2krk")
    draw = draw_degradation(recipe, np.zeros((8, 8)), np.random.default_rng(21))
    rng = np.random.default_rng(21)  # gen_kernel's order: lambda_1, lambda_2, theta, noise
    l1, l2 = rng.uniform(0.6, 5.0), rng.uniform(0.6, 5.0)
    theta = rng.uniform(0.0, math.pi)
    noise = rng.uniform(-0.25, 0.25, size=(11, 11))
    np.testing.assert_allclose(draw.taps, blindsr_generator_kernel(l1, l2, theta, noise),
                               rtol=0, atol=1e-15)
    # kernel.npy records standard deviations: sqrt of the covariance's eigenvalues
    assert draw.kernel_field[:, 0, 0] == pytest.approx([math.sqrt(l1), math.sqrt(l2), theta], abs=1e-6)
    assert draw.passes == 2  # x4 = the x2 kernel twice (KernelGAN issues 52, 59)


def test_div2krk_x4_is_scipy_correlate_and_subsample_twice() -> None:
    recipe = load_recipe("div2krk")
    draw = draw_degradation(recipe, np.zeros((8, 8)), np.random.default_rng(2))
    hr = _hr(24, 32, seed=7)

    def x2(img: np.ndarray) -> np.ndarray:  # BlindSR_dataset_generator.downscale at sf = 2
        out = np.stack([ndimage.correlate(c, draw.taps) for c in img])  # scipy mode 'reflect'
        return out[:, ::2, ::2]

    got, _ = blur_downsample(torch.from_numpy(hr)[None], 4, 11, 0.0, "direct",
                             kernel_taps=torch.from_numpy(draw.taps)[None], passes=2,
                             padding="symmetric")
    np.testing.assert_allclose(got[0].numpy(), x2(x2(hr)), rtol=0, atol=1e-12)


def test_correlate_taps_borders_and_checks() -> None:
    # numpy's pad modes are the reference for both border rules
    for mode in ("reflect", "symmetric"):
        np.testing.assert_array_equal(
            np.arange(7)[mirror_indices(7, 3, mode)],
            np.pad(np.arange(7), 3, mode=mode))
    with pytest.raises(ConfigError, match="K odd"):
        correlate_taps(torch.zeros(1, 1, 4, 4), torch.zeros(2, 2))
    with pytest.raises(ConfigError, match="dividing the image size 5x4"):
        correlate_taps(torch.zeros(1, 1, 5, 4), torch.zeros(3, 3), stride=2)
    with pytest.raises(ConfigError, match="exactly one of"):
        blur_downsample(torch.zeros(1, 3, 8, 8), 4, 3, 0.0)
    with pytest.raises(ConfigError, match="equal integer steps"):
        blur_downsample(torch.zeros(1, 3, 8, 8), 4, 3, 0.0, kernel_taps=torch.ones(1, 3, 3), passes=3)


# ---------------------------------------------------------------- cmos-defocus ties


def test_cmos_defocus_ties_are_rounded_by_the_float64_formula() -> None:
    # Focus on a flat nearness: sigma clips to 0.3 px everywhere, so the four central taps of
    # the centred kernel carry equal weight and LR values land on .5 ties of the 0-255 scale.
    base = load_recipe("cmos-defocus")
    recipe = dataclasses.replace(base, blur=dataclasses.replace(base.blur, focus_range=(0.5, 0.5)))
    hr = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    draw = draw_degradation(recipe, np.full((64, 64), 0.5), np.random.default_rng(0))
    assert float(draw.kernel_field[0].max()) == pytest.approx(0.3)
    hr_t = torch.from_numpy(hr).permute(2, 0, 1).float().div(255.0)[None]
    lr_t, _ = blur_downsample(hr_t, 4, 21, recipe.delta_px,
                              kernel_field=torch.from_numpy(draw.kernel_field)[None])
    exact = direct_degradation(hr.transpose(2, 0, 1) / 255.0, draw.kernel_field.astype(np.float64), 4, 21,
                               recipe.delta_px)
    want = np.clip(np.rint(exact * 255.0), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    lr = to_uint8(lr_t[0])
    off_before = float((lr != want).mean())
    settled = settle_ties(lr, lr_t[0], hr, draw, recipe)
    print(f"cmos-defocus sigma 0.3: {off_before:.2%} of LR values one level off before, "
          f"{settled} recomputed")
    assert off_before > 0  # the float32 engine alone misses ties (0.32% of values on DIV2K)
    assert np.array_equal(lr, want)


# ---------------------------------------------------------------- registry-wide and CLI


def test_every_builtin_recipe_documents_its_protocol() -> None:
    infos = list_protocols()
    assert [p.name for p in infos] == list(BUILTIN_RECIPES)
    for p in infos:
        assert p.title and p.paper and p.kernel and p.downsampler and p.exact and p.not_exact
        recipe = load_recipe(p.name)  # the protocol block is not part of the recipe or its hash
        assert "protocol" not in recipe.to_dict()
    claims = {p.name: p.title for p in infos}
    assert "not IKC/DAN/DCLS setting 1" in claims["iso"]
    assert "not DAN/DCLS setting 2" in claims["aniso"]


def test_unknown_protocol_names_come_back_with_the_registry_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown recipe 'gausian8'.*gaussian8"):
        load_protocol("gausian8")


def test_new_recipe_fields_leave_older_hashes_alone() -> None:
    ssr = load_recipe("ssr").to_dict()
    assert "padding" not in ssr and "sigma_list_px" not in ssr["blur"]
    assert "padding" in load_recipe("div2krk").to_dict()
    with pytest.raises(ConfigError, match="padding 'symmetric' needs a taps blur model"):
        recipe_from_dict({"name": "x", "padding": "symmetric"})
    with pytest.raises(ConfigError, match="needs blur.sigma_list_px"):
        recipe_from_dict({"name": "x", "blur": {"model": "iso-list"}})
    with pytest.raises(ConfigError, match="scale 2 or 4"):
        recipe_from_dict({"name": "x", "scale": 3, "kernel_size": 11, "padding": "symmetric",
                          "blur": {"model": "div2krk"}})


def test_degrade_protocols_lists_every_recipe_as_a_table_and_json() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["protocols"])
    assert res.exit_code == 0, res.output
    for name in BUILTIN_RECIPES:
        assert name in res.output
    assert "Set5" in res.output and "DIV2KRK" in res.output
    res = runner.invoke(main, ["protocols", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [d["name"] for d in data] == list(BUILTIN_RECIPES)
    assert data[BUILTIN_RECIPES.index("gaussian8")]["test_sets"][0] == "Set5"


# ---------------------------------------------------------------- realesrgan (second order)


@pytest.mark.parametrize("kind", ["iso", "aniso", "generalized_iso", "generalized_aniso",
                                  "plateau_iso", "plateau_aniso"])
def test_realesrgan_kernels_follow_basicsr(kind: str) -> None:
    got = mixed_kernel(kind, 13, 1.7, 0.9, 0.6, 1.6)
    np.testing.assert_allclose(got, basicsr_mixed_kernel(kind, 13, 1.7, 0.9, 0.6, 1.6),
                               rtol=0, atol=1e-15)


def test_realesrgan_sinc_and_usm_follow_basicsr() -> None:
    np.testing.assert_allclose(sinc_kernel(1.3, 11, 21), basicsr_circular_lowpass(1.3, 11, 21),
                               rtol=0, atol=1e-15)
    img = np.random.default_rng(9).random((3, 30, 34))
    got = usm_sharpen(torch.from_numpy(img)[None])[0].numpy()
    np.testing.assert_allclose(got, basicsr_usm(img), rtol=0, atol=1e-12)


def test_realesrgan_draws_stay_in_the_released_ranges() -> None:
    rng = np.random.default_rng(4)
    draws = [draw_realesrgan(rng, (256, 256), 4) for _ in range(300)]
    kinds = [d["rounds"][0]["blur"]["kind"] for d in draws]
    assert set(kinds) >= {"sinc", "iso", "aniso", "generalized_iso", "plateau_iso"}
    assert 0.35 < kinds.count("iso") / len(kinds) < 0.5  # 0.9 * 0.45 = 0.405
    for d in draws:
        b1, r1, r2 = d["rounds"][0]["blur"], d["rounds"][0], d["rounds"][1]
        assert 7 <= b1["size"] <= 21 and b1["size"] % 2 == 1
        if "sig_x" in b1:
            assert 0.2 <= b1["sig_x"] <= 3.0 and 0.2 <= b1["sig_y"] <= 3.0
        if r2["blur"] is not None and "sig_x" in r2["blur"]:
            assert 0.2 <= r2["blur"]["sig_x"] <= 1.5
        assert 0.15 <= r1["resize"]["scale"] <= 1.5 and 30 <= r1["jpeg_quality"] <= 95
        n = r1["noise"]
        assert (1 <= n["sigma_255"] <= 30) if n["type"] == "gaussian" else (0.05 <= n["scale"] <= 3)
        assert 0.3 * 64 - 1 <= r2["resize"]["size"][0] <= 1.2 * 64
    assert 0.7 < np.mean([d["rounds"][1]["blur"] is not None for d in draws]) < 0.9  # 0.8
    assert 0.7 < np.mean([d["final"]["sinc"]["kind"] == "sinc" for d in draws]) < 0.9  # 0.8


def test_realesrgan_chain_matches_a_stage_by_stage_reference() -> None:
    # One fixed draw, replayed with the reference ops: USM, correlate, torch resize, noise from
    # the same generator sequence, OpenCV JPEG, final resize + sinc.
    import cv2

    params = draw_realesrgan(np.random.default_rng(8), (64, 64), 4)
    params["rounds"][0]["noise"] = {"type": "gaussian", "sigma_255": 5.0, "gray": False}
    params["rounds"][1]["noise"] = {"type": "gaussian", "sigma_255": 3.0, "gray": True}
    hr = np.random.default_rng(2).random((3, 64, 64))
    got = apply_realesrgan(torch.from_numpy(hr)[None], params, 4, np.random.default_rng(1))[0].numpy()

    rng = np.random.default_rng(1)

    def jpeg(x: np.ndarray, q: float) -> np.ndarray:
        u8 = np.clip(np.rint(np.clip(x, 0, 1).transpose(1, 2, 0) * 255), 0, 255).astype(np.uint8)
        _, buf = cv2.imencode(".jpg", u8[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, int(round(q))])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1].transpose(2, 0, 1) / 255.0

    def resize(x: np.ndarray, r: dict) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x))[None]
        kw = {"size": tuple(r["size"])} if "size" in r else {"scale_factor": r["scale"]}
        return F.interpolate(t, mode=r["mode"], **kw)[0].numpy()

    x = basicsr_usm(hr)
    for r in params["rounds"]:
        if r["blur"] is not None:
            x = correlate_reflect_full(x, kernel_from_params(r["blur"]))
        x = resize(x, r["resize"])
        planes = 1 if r["noise"]["gray"] else 3
        x = np.clip(x + rng.standard_normal((planes,) + x.shape[1:]) * r["noise"]["sigma_255"] / 255, 0, 1)
        if "jpeg_quality" in r:
            x = jpeg(x, r["jpeg_quality"])
    fin = params["final"]
    size = {"size": (16, 16), "mode": fin["mode"]}
    sinc = kernel_from_params(fin["sinc"])
    if fin["order"] == "resize-sinc-jpeg":
        x = jpeg(correlate_reflect_full(resize(x, size), sinc), fin["jpeg_quality"])
    else:
        x = correlate_reflect_full(resize(jpeg(x, fin["jpeg_quality"]), size), sinc)
    want = np.clip(x, 0, 1)
    assert got.shape == (3, 16, 16)
    # float64 on both sides; a JPEG block may flip where an 8-bit rounding sat on a tie
    assert np.mean(np.abs(got - want)) < 1e-4 and np.abs(got - want).max() <= 3 / 255


# ---------------------------------------------------------------- bsrgan


def test_bsrgan_kernels_follow_the_released_formulas() -> None:
    aniso = {"kind": "aniso", "size": 15, "theta": 1.1, "l1": 5.0, "l2": 0.8}
    np.testing.assert_allclose(bsrgan_kernel(aniso), bsrgan_anisotropic_gaussian(15, 1.1, 5.0, 0.8),
                               rtol=0, atol=1e-14)
    iso = {"kind": "iso", "size": 25, "sigma": 0.4}
    np.testing.assert_allclose(bsrgan_kernel(iso), matlab_fspecial_gaussian(25, 0.4), rtol=0, atol=1e-15)


def test_bsrgan_shift_pixel_moves_the_kernel_by_half_the_scale_minus_one() -> None:
    k = matlab_fspecial_gaussian(25, 1.0)
    got = shift_pixel(k, 2)  # half a pixel: the mean of each tap and its lower-right neighbours
    want = (k[:-1, :-1] + k[1:, :-1] + k[:-1, 1:] + k[1:, 1:]) / 4
    np.testing.assert_allclose(got[:-1, :-1], want, rtol=0, atol=1e-15)
    ax = np.arange(25)
    assert (got.sum(1) @ ax) / got.sum() == pytest.approx(12 - 0.5, abs=1e-9)


def test_bsrgan_draws_keep_the_released_rules() -> None:
    rng = np.random.default_rng(6)
    draws = [draw_bsrgan(rng, 4) for _ in range(300)]
    assert 0.18 < np.mean([d["down1"] is not None for d in draws]) < 0.32  # 0.25
    for d in draws:
        names = [op["op"] for op in d["ops"]]
        assert sorted(names) == ["blur", "blur", "down2", "down3", "isp", "jpeg", "noise"]
        assert names.index("down2") < names.index("down3")
        sf = 2 if d["down1"] is not None else 4
        for op in d["ops"]:
            if op["op"] == "blur":
                k = op["kernel"]
                assert 7 <= k["size"] <= 25 and k["size"] % 2 == 1
                if k["kind"] == "aniso":
                    assert 0 <= k["l1"] <= 4 + sf and 0 <= k["l2"] <= 4 + sf
                else:
                    assert 0 <= k["sigma"] <= 2 + 0.2 * sf
            if op["op"] == "down2" and "sf1" in op:
                assert 1 <= op["sf1"] <= 2 * sf
            if op["op"] == "noise":
                assert 2 <= op["level"] <= 25
        assert 30 <= d["final_jpeg_quality"] <= 95
    kinds = [op["kind"] for d in draws for op in d["ops"] if op["op"] == "noise"]
    assert 0.3 < kinds.count("gray") / len(kinds) < 0.5 and "correlated" in kinds


def test_bsrgan_chain_gives_the_lr_size_and_records_its_draws(tmp_path) -> None:
    from degrade.build import build
    from tests.helpers import make_config, samples_by_key, write_folder

    root = tmp_path / "in"
    write_folder(root, ["a", "b"], h=96, w=128)
    res = build(make_config(root, "bsrgan", depth="prior"), tmp_path / "o", command="t", preview=False)
    for smp in samples_by_key(res.out_dir).values():
        assert smp.lr.shape == (24, 32, 3)
        assert smp.meta["kernel_family"] == "second-order-bsrgan"
        assert smp.meta["exact_at_lr_positions"] is False
        assert len(smp.meta["second_order"]["ops"]) == 7


def test_bsrgan_blur_is_scipy_convolve_with_mirror_borders() -> None:
    # An asymmetric kernel checks the flip (convolution, not correlation) and the anchor.
    from degrade.ops.bsrgan import _convolve

    rng = np.random.default_rng(0)
    img = rng.random((20, 26, 3)).astype(np.float32)
    k = rng.random((9, 9))
    k /= k.sum()
    want = ndimage.convolve(img.astype(np.float64), k[:, :, None], mode="mirror")
    np.testing.assert_allclose(_convolve(img, k), want, rtol=0, atol=1e-6)  # float32 output
