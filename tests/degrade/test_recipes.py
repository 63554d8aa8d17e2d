"""Recipes: the built-in files, validation messages, the resolved hash and CLI overrides."""

from __future__ import annotations

import dataclasses
import re

import pytest
import yaml

from degrade.recipes import (
    BUILTIN_RECIPES,
    BlurSpec,
    JpegSpec,
    NoiseSpec,
    Recipe,
    load_recipe,
    recipe_from_dict,
    recipe_path,
)
from ssr_core.errors import ConfigError
from ssr_manifests import RECIPES_DIR


def _ssr_dict() -> dict:
    return yaml.safe_load(recipe_path("ssr").read_text())


def _set(data: dict, dotted: str, value) -> dict:
    *parents, last = dotted.split(".")
    node = data
    for p in parents:
        node = node[p]
    node[last] = value
    return data


@pytest.mark.parametrize("name", BUILTIN_RECIPES)
def test_every_builtin_has_a_file_and_loads(name):
    assert recipe_path(name).is_file()
    r = load_recipe(name)
    assert isinstance(r, Recipe) and r.name == name
    assert r == load_recipe(recipe_path(name))  # by name and by path: same recipe
    assert re.fullmatch(r"[0-9a-f]{64}", r.hash)


def test_builtin_list_matches_the_recipe_folder():
    assert sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")) == sorted(BUILTIN_RECIPES)


def test_builtin_hashes_are_distinct():
    assert len({load_recipe(n).hash for n in BUILTIN_RECIPES}) == len(BUILTIN_RECIPES)


def test_ssr_ranges_are_the_design_ones():
    r = load_recipe("ssr")
    assert (r.scale, r.kernel_size, r.delta, r.downsampler) == (4, 21, "centered", "direct")
    assert r.delta_px == 1.5
    assert r.blur.model == "defocus"
    assert r.blur.sigma_range_px == (0.6, 3.5)
    assert r.noise == NoiseSpec(sigma_range_255=(1.0, 25.0), gray_prob=0.4)
    assert r.jpeg == JpegSpec(quality_range=(30, 95))


@pytest.mark.parametrize("name,stage", [("ssr-nonoise", "noise"), ("ssr-nojpeg", "jpeg")])
def test_ablations_equal_ssr_except_the_missing_stage(name, stage):
    ssr, other = load_recipe("ssr"), load_recipe(name)
    assert getattr(other, stage) is None and getattr(ssr, stage) is not None
    expected = dataclasses.replace(ssr, name=name, description=other.description, **{stage: None})
    assert other == expected
    # the CLI switch gives the same recipe up to its name
    flag = {"noise": "no_noise", "jpeg": "no_jpeg"}[stage]
    assert dataclasses.replace(ssr.with_overrides(**{flag: True}), name=name,
                               description=other.description) == other


def test_ssr_clean_is_ssr_without_noise_and_jpeg():
    ssr, clean = load_recipe("ssr"), load_recipe("ssr-clean")
    assert clean.noise is None and clean.jpeg is None
    assert dataclasses.replace(ssr.with_overrides(no_noise=True, no_jpeg=True), name="ssr-clean",
                               description=clean.description) == clean


def test_ssr_wide_uses_k31_and_the_wide_range():
    ssr, wide = load_recipe("ssr"), load_recipe("ssr-wide")
    assert wide.kernel_size == 31 and wide.blur.sigma_range_px == (0.6, 5.0)
    assert wide.noise == ssr.noise and wide.jpeg == ssr.jpeg and wide.scale == ssr.scale


def test_defaults_of_the_dataclasses_are_the_ssr_recipe():
    # A file that sets only a name gets the ssr settings.
    r = recipe_from_dict({"name": "ssr"})
    ssr = load_recipe("ssr")
    assert dataclasses.replace(r, description=ssr.description) == ssr
    assert r.blur == BlurSpec()


@pytest.mark.parametrize(
    "dotted,value,message",
    [
        ("kernal_size", 21, r"unknown key recipe\.kernal_size \(did you mean 'kernel_size'\?\)"),
        ("blur.sigma_rang_px", [1, 2],
         r"unknown key blur\.sigma_rang_px \(did you mean 'sigma_range_px'\?\)"),
        ("noise.grey_prob", 0.5, r"unknown key noise\.grey_prob \(did you mean 'gray_prob'\?\)"),
        ("jpeg.quality", [30, 90], r"unknown key jpeg\.quality \(did you mean 'quality_range'\?\)"),
    ],
)
def test_unknown_keys_suggest_the_closest(dotted, value, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(_set(_ssr_dict(), dotted, value))


@pytest.mark.parametrize(
    "dotted,value,message",
    [
        ("blur.sigma_range_px", [3.0, 1.0], r"blur\.sigma_range_px must satisfy"),
        ("blur.sigma_range_px", [-1.0, 1.0], r"blur\.sigma_range_px must satisfy"),
        ("blur.max_blur_range_px", [2.0, 1.0], r"blur\.max_blur_range_px must satisfy"),
        ("blur.focus_range", [0.2, 1.5], r"blur\.focus_range must satisfy"),
        ("blur.anisotropy_range", [0.5, 2.0], r"blur\.anisotropy_range must satisfy"),
        ("blur.coc_max_range_px", [-2.0, 9.0], r"blur\.coc_max_range_px must satisfy"),
        ("blur.sigma_range_px", [1.0], r"blur\.sigma_range_px must be a \[low, high\] pair"),
        ("blur.sigma_range_px", "0.6-3.5", r"blur\.sigma_range_px must be a \[low, high\] pair"),
        ("blur.field_cells", 0, r"blur\.field_cells must be an integer in \[1, 1024\]"),
        ("blur.model", "gaussian", r"blur\.model must be one of 'defocus'"),
        ("noise.sigma_range_255", [-1.0, 5.0], r"noise\.sigma_range_255 must satisfy"),
        ("noise.sigma_range_255", [10.0, 5.0], r"noise\.sigma_range_255 must satisfy"),
        ("noise.gray_prob", 1.5, r"noise\.gray_prob must be a finite number in \[0, 1\]"),
        ("jpeg.quality_range", [0, 95], r"jpeg\.quality_range must satisfy"),
        ("jpeg.quality_range", [30, 101], r"jpeg\.quality_range must satisfy"),
        ("jpeg.quality_range", [30.5, 90], r"jpeg\.quality_range must hold integers"),
        ("kernel_size", 20, r"kernel_size must be an odd integer in \[1, 99\]"),
        ("scale", 0, r"scale must be an integer in \[1, 16\]"),
        ("delta", "middle", r"delta must be one of 'centered', 'topleft'"),
        ("downsampler", "lanczos", r"downsampler must be one of 'direct', 'bicubic'"),
        ("name", "", r"name must be a non-empty string"),
        ("blur", [1, 2], r"blur must be a mapping"),
    ],
)
def test_bad_values_raise_naming_the_key(dotted, value, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(_set(_ssr_dict(), dotted, value))


def test_missing_name_raises():
    with pytest.raises(ConfigError, match="a recipe needs a 'name'"):
        recipe_from_dict({"scale": 4})


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nscale: 4\nkernel_size: 20\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: kernel_size must be an odd integer"):
        load_recipe(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=r"list\.yaml: a recipe must be a mapping, got list"):
        load_recipe(lst)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_recipe(broken)
    with pytest.raises(ConfigError, match=r"missing\.yaml does not exist"):
        load_recipe(tmp_path / "missing.yaml")


@pytest.mark.parametrize("typo,closest", [("ssr-nojepg", "ssr-nojpeg"), ("sr", "ssr"), ("anisso", "aniso"),
                                          ("cmos_defocus", "cmos-defocus")])
def test_unknown_recipe_name_suggests_the_closest(typo, closest):
    with pytest.raises(ConfigError, match=rf"unknown recipe '{typo}' \(did you mean '{closest}'\?\)"):
        load_recipe(typo)


def test_hash_ignores_key_order_and_comments(tmp_path):
    data = _ssr_dict()

    def reverse(d):
        return {k: reverse(v) if isinstance(v, dict) else v for k, v in reversed(list(d.items()))}

    text = "# a comment that is not part of the recipe\n" + yaml.safe_dump(reverse(data), sort_keys=False)
    text = text.replace("blur:\n", "blur:   # trailing comment\n")
    path = tmp_path / "reordered.yaml"
    path.write_text(text)
    assert text.index("jpeg") < text.index("name")  # the order really differs
    assert load_recipe(path).hash == load_recipe("ssr").hash
    assert load_recipe(str(path)) == load_recipe("ssr")


def test_hash_ignores_int_versus_float_spelling(tmp_path):
    # `[1, 25]` and `[1.0, 25.0]` mean the same range; the resolved recipe must hash the same.
    path = tmp_path / "ints.yaml"
    path.write_text(recipe_path("ssr").read_text().replace("[1.0, 25.0]", "[1, 25]")
                    .replace("[0.0, 1.0]", "[0, 1]"))
    assert "[1, 25]" in path.read_text()
    r = load_recipe(path)
    assert r.noise.sigma_range_255 == (1.0, 25.0) and isinstance(r.noise.sigma_range_255[0], float)
    assert r.hash == load_recipe("ssr").hash
    q = recipe_from_dict(_set(_ssr_dict(), "jpeg.quality_range", [30.0, 95.0]))
    assert q.jpeg.quality_range == (30, 95) and isinstance(q.jpeg.quality_range[0], int)
    assert q.hash == load_recipe("ssr").hash


@pytest.mark.parametrize(
    "dotted,value",
    [("name", "ssr2"), ("description", "other"), ("version", 2), ("scale", 2), ("kernel_size", 23),
     ("delta", "topleft"), ("blur.model", "thin-lens"), ("blur.sigma_range_px", [0.6, 3.4]),
     ("blur.max_blur_range_px", [1.5, 3.0]), ("blur.focus_range", [0.0, 0.9]),
     ("blur.anisotropy_range", [1.0, 2.0]), ("blur.field_cells", 5), ("blur.coc_max_range_px", [9.0, 14.0]),
     ("noise.sigma_range_255", [1.0, 24.0]), ("noise.gray_prob", 0.5), ("noise", None),
     ("jpeg.quality_range", [31, 95]), ("jpeg", None)],
)
def test_hash_changes_with_any_value(dotted, value):
    base = recipe_from_dict(_ssr_dict())
    assert base.hash == load_recipe("ssr").hash
    changed = recipe_from_dict(_set(_ssr_dict(), dotted, value))
    assert changed.hash != base.hash


def test_with_overrides():
    ssr = load_recipe("ssr")
    assert ssr.with_overrides() == ssr and ssr.with_overrides().hash == ssr.hash
    both = ssr.with_overrides(no_noise=True, no_jpeg=True)
    assert both.noise is None and both.jpeg is None and both.blur == ssr.blur
    assert len({ssr.hash, both.hash, ssr.with_overrides(no_noise=True).hash}) == 3
    r = ssr.with_overrides(scale=2, kernel_size=31)
    assert (r.scale, r.kernel_size, r.delta_px) == (2, 31, 0.5)
    assert r.hash != ssr.hash and ssr.scale == 4  # the original is untouched (frozen)
    with pytest.raises(ConfigError, match="kernel_size must be an odd integer"):
        ssr.with_overrides(kernel_size=20)
    with pytest.raises(ConfigError, match=r"scale must be an integer in \[1, 16\]"):
        ssr.with_overrides(scale=0)


def test_topleft_delta_is_zero():
    assert recipe_from_dict(_set(_ssr_dict(), "delta", "topleft")).delta_px == 0.0


def test_user_recipe_file_by_path(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text(
        "name: mine\nscale: 2\nkernel_size: 15\nblur:\n  model: aniso\n  sigma_range_px: [0.5, 2.0]\n"
        "noise:\n  sigma_range_255: [0, 5]\n  gray_prob: 1\njpeg: null\n"
    )
    for arg in (path, str(path)):
        r = load_recipe(arg)
        assert (r.name, r.scale, r.kernel_size, r.blur.model) == ("mine", 2, 15, "aniso")
        assert r.blur.sigma_range_px == (0.5, 2.0)
        assert r.noise == NoiseSpec(sigma_range_255=(0.0, 5.0), gray_prob=1.0) and r.jpeg is None
    # the same recipe spelled as a dict resolves to the same hash
    assert load_recipe(path).hash == recipe_from_dict(yaml.safe_load(path.read_text())).hash


def test_to_dict_is_plain_data():
    d = load_recipe("ssr-nonoise").to_dict()
    assert d["noise"] is None and d["blur"]["sigma_range_px"] == [0.6, 3.5]
    assert recipe_from_dict(d) == load_recipe("ssr-nonoise")  # round trip


@pytest.mark.parametrize(
    "dotted,value,message",
    [
        ("blur.sigma_range_px", [0.6, float("inf")],
         r"blur\.sigma_range_px must satisfy 0\.05 <= low <= high <= 50 \(finite numbers\), "
         r"got \[0\.6, inf\]"),
        ("blur.max_blur_range_px", [float("nan"), 2.0], r"blur\.max_blur_range_px must satisfy"),
        ("blur.anisotropy_range", [1.0, float("inf")], r"blur\.anisotropy_range must satisfy 1 "),
        ("blur.coc_max_range_px", [9.0, 1e9], r"blur\.coc_max_range_px must satisfy .* <= 400"),
        ("noise.sigma_range_255", [float("-inf"), 5.0], r"noise\.sigma_range_255 must satisfy"),
        ("noise.gray_prob", float("nan"), r"noise\.gray_prob must be a finite number in \[0, 1\]"),
        ("noise.gray_prob", "0.5", r"noise\.gray_prob must be a finite number in \[0, 1\]"),
        ("blur.field_cells", float("inf"), r"blur\.field_cells must be an integer in \[1, 1024\]"),
        ("kernel_size", 1001, r"kernel_size must be an integer in \[1, 99\]"),
        ("version", 0, r"version must be an integer in \[1, 1e\+06\]"),
    ],
)
def test_non_finite_and_out_of_range_numbers_are_refused(dotted, value, message):
    with pytest.raises(ConfigError, match=message):
        recipe_from_dict(_set(_ssr_dict(), dotted, value))


def test_yaml_inf_is_refused_at_load(tmp_path):
    # The reported file: YAML's .inf used to pass, write a shard, then fail on the manifest.
    text = recipe_path("ssr").read_text().replace("sigma_range_px: [0.6, 3.5]",
                                                  "sigma_range_px: [0.6, .inf]")
    (tmp_path / "inf.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"inf\.yaml: blur\.sigma_range_px must satisfy .*inf"):
        load_recipe(tmp_path / "inf.yaml")


def test_a_recipe_cannot_be_made_invalid_by_replace():
    ssr = load_recipe("ssr")
    with pytest.raises(ConfigError, match=r"blur\.sigma_range_px must satisfy"):
        dataclasses.replace(ssr, blur=BlurSpec(sigma_range_px=(0.6, float("inf"))))


def test_sigma_span_and_worst_truncation_follow_the_design() -> None:
    from degrade.recipes import sigma_span_px, worst_truncated_mass

    # DESIGN section 3: ssr at x4 draws s1, s2 in [0.6, 3.5] with K = 21, which keeps 99% of
    # the widest kernel; sigma 5 in a 21x21 window loses about 9%.
    ssr = load_recipe("ssr")
    assert sigma_span_px(ssr) == (0.6, 3.5)
    assert 0.0 < worst_truncated_mass(ssr) <= 0.011
    wide = load_recipe("ssr").with_overrides(kernel_size=21)
    wide = dataclasses.replace(wide, blur=dataclasses.replace(wide.blur, sigma_range_px=(0.6, 5.0)))
    assert 0.08 < worst_truncated_mass(wide) < 0.10
