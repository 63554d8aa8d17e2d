"""The `degrade` CLI: exit codes and message text (click's CliRunner), plus one real run of the
installed console script with the README's first command on the offline sample source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import get_args

import cv2
import pytest
from click.testing import CliRunner, Result

import degrade.build.run as build_run
import degrade.cli as cli
from degrade.depth import DepthRequest
from degrade.preview import shard_preview_rows
from degrade.recipes import BUILTIN_RECIPES, recipe_path
from ssr_datasets.shards import iter_shard
from ssr_datasets.sources import SOURCE_NAMES
from tests.helpers import samples_by_key
from tests.reference import gaussian_outside_box_scipy


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args))


def build_folder(root: Path, out: Path, *extra: str) -> Result:
    return invoke("build", "--source", "folder", "--root", str(root), "--shard-size", "2",
                  "--no-preview", "--out", str(out), *extra)


# ---------------------------------------------------------------- help and listings


def test_help_texts_state_units_and_commands() -> None:
    top = invoke("--help")
    assert top.exit_code == 0
    for command in ("build", "info", "verify", "recipes"):
        assert command in top.output
    assert "degrade build --out out/sample" in top.output
    res = invoke("build", "--help")
    assert res.exit_code == 0
    text = " ".join(res.output.split())  # help is wrapped; compare on single spaces
    assert "Odd kernel window K in HR px" in text
    assert "Random HR crop of H x W px (multiples of the scale)" in text
    assert "Downsampling factor s" in text
    assert "Samples per shard" in text
    assert "(seed, recipe, key)" in text
    assert "Output is identical for any number" in text


def test_recipes_lists_every_builtin_recipe() -> None:
    res = invoke("recipes")
    assert res.exit_code == 0
    lines = res.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN_RECIPES)
    for name, line in zip(BUILTIN_RECIPES, lines, strict=True):
        assert line.split()[-1] == str(recipe_path(name)) and recipe_path(name).is_file()
    ssr = lines[BUILTIN_RECIPES.index("ssr")]
    assert "x4 K=21" in ssr and "sigma 0.6-3.5 px" in ssr and "noise+jpeg" in ssr
    # Worst case: sigma 3.5 isotropic; the 21 unit cells around the taps span [-12, 9] px about
    # the kernel centre on the centred x4 grid (delta 1.5).
    lost = gaussian_outside_box_scipy(3.5, 3.5, 0.0, -10.5 - 1.5, 10.5 - 1.5)
    assert f"lost <= {lost:6.2%}" in ssr


def test_cli_choices_mirror_the_registries() -> None:
    assert cli._SOURCES == SOURCE_NAMES
    assert cli._DEPTH == get_args(DepthRequest)


# ---------------------------------------------------------------- build, info, verify


def test_build_info_verify_and_resume(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = build_folder(image_folder, out)
    assert res.exit_code == 0, res.output
    assert ("recipe ssr (x4, K=21), seed 0: 6 samples from 6 images in 3 shard(s)"
            in res.stdout)
    assert "(0 shard(s) reused)" in res.stdout
    assert "depth: prior: 6 image(s)" in res.stdout
    assert f"shards:   {out}/train-000000.tar ... train-000002.tar" in res.stdout
    assert f"manifest: {out}/manifest.json" in res.stdout
    assert "preview:" not in res.stdout and not (out / "preview.png").exists()

    again = build_folder(image_folder, out)
    assert again.exit_code == 0 and "(3 shard(s) reused)" in again.stdout

    info = invoke("info", str(out))
    assert info.exit_code == 0
    assert "samples     6" in info.stdout
    assert "shards      3" in info.stdout
    assert "recipe      ssr (hash" in info.stdout
    assert "seed        0" in info.stdout

    ok = invoke("verify", str(out))
    assert ok.exit_code == 0 and f"OK: 3 shard(s), 6 sample(s) in {out}" in ok.stdout

    shard = out / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    (out / "train-000002.tar").unlink()
    bad = invoke("verify", str(out))
    assert bad.exit_code == 1
    problems = [ln for ln in bad.stderr.splitlines() if ln.startswith("problem: ")]
    assert any(ln.startswith("problem: train-000001.tar: sha256") for ln in problems)
    assert "problem: train-000002.tar: missing" in problems
    assert f"FAILED: {len(problems)} problem(s) in {out}" in bad.stderr


def test_flags_reach_the_recipe_and_the_samples(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    res = build_folder(image_folder, out, "--no-noise", "--no-jpeg", "--scale", "2", "--seed", "5",
                       "--samples-per-image", "2", "--crop", "24", "24", "--max-images", "2")
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["recipe"]["noise"] is None and manifest["recipe"]["jpeg"] is None
    assert manifest["recipe"]["scale"] == 2
    samples = samples_by_key(out)
    assert sorted(samples) == ["folder-alpha-000", "folder-alpha-001", "folder-bravo-000",
                               "folder-bravo-001"]
    for smp in samples.values():
        assert (smp.meta["noise"], smp.meta["jpeg"], smp.meta["seed"]) == (None, None, 5)
        assert smp.meta["scale"] == 2 and smp.meta["delta"] == 0.5
        assert smp.hr.shape == (24, 24, 3) and smp.lr.shape == (12, 12, 3)


def test_other_build_in_out_needs_overwrite(image_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert build_folder(image_folder, out).exit_code == 0
    refused = build_folder(image_folder, out, "--seed", "1")
    assert refused.exit_code == 1
    assert "holds a different build" in refused.output and "--overwrite" in refused.output
    replaced = build_folder(image_folder, out, "--seed", "1", "--overwrite")
    assert replaced.exit_code == 0 and "seed 1:" in replaced.stdout


def test_interrupt_says_how_to_resume(image_folder: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(build_run, "run_shard", interrupted)
    res = build_folder(image_folder, tmp_path / "o")
    assert res.exit_code == 1
    assert "interrupted" in res.output and "rerun the same command to resume" in res.output
    assert not (tmp_path / "o" / "manifest.json").exists()


# ---------------------------------------------------------------- option errors


def test_allow_download_reaches_the_depth_check(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # The missing-weights message tells users to pass --allow-download: the flag must exist and
    # reach the learned provider (here the check is replaced: no network in tests).
    seen: list[bool] = []

    def check(provider: str, **kw: object) -> None:
        seen.append(bool(kw["allow_download"]))
        raise build_run.ConfigError("stop here")

    monkeypatch.setattr(build_run, "check_depth_provider", check)
    for extra in ((), ("--allow-download",)):
        res = invoke("build", "--depth", "midas", *extra, "--out", str(tmp_path / "o"))
        assert res.exit_code != 0 and "stop here" in res.output
    assert seen == [False, True]


def test_unknown_recipe_suggests_the_closest_name(tmp_path: Path) -> None:
    res = invoke("build", "--recipe", "ssr-wid", "--out", str(tmp_path / "o"))
    assert res.exit_code == 1
    assert "unknown recipe 'ssr-wid' (did you mean 'ssr-wide'?)" in res.output
    assert not (tmp_path / "o").exists()


def test_crop_must_be_a_multiple_of_the_scale(image_folder: Path, tmp_path: Path) -> None:
    res = build_folder(image_folder, tmp_path / "o", "--crop", "30", "32")
    assert res.exit_code == 1
    assert "--crop 30 32: both sides must be multiples of the scale 4" in res.output
    assert not (tmp_path / "o").exists()


def test_bad_choice_is_a_usage_error(tmp_path: Path) -> None:
    res = invoke("build", "--depth", "lidar", "--out", str(tmp_path / "o"))
    assert res.exit_code == 2
    assert "Invalid value for '--depth'" in res.output and "'auto'" in res.output


# ---------------------------------------------------------------- the README's first command


def _fitted_height(h: int, w: int, tile: int = 256) -> int:
    return max(1, min(tile, round(h * min(tile / h, tile / w))))


def test_readme_default_command_with_the_installed_script(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("degrade")
    assert script.is_file(), f"console script not installed at {script}"
    out = tmp_path / "out" / "sample"
    run = subprocess.run([str(script), "build", "--out", str(out)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "5 samples from 5 images in 1 shard(s)" in run.stdout
    assert "depth: gt: 1 image(s), prior: 4 image(s)" in run.stdout
    assert f"shards:   {out}/train-000000.tar" in run.stdout
    assert f"manifest: {out}/manifest.json" in run.stdout
    assert f"preview:  {out}/preview.png" in run.stdout

    verify = subprocess.run([str(script), "verify", str(out)], capture_output=True, text=True,
                            timeout=120)
    assert verify.returncode == 0, verify.stderr
    assert "OK: 1 shard(s), 5 sample(s)" in verify.stdout

    samples = list(iter_shard(out / "train-000000.tar"))
    providers = {s.meta["image_id"]: s.meta["depth"]["provider"] for s in samples}
    assert providers == {"astronaut": "prior", "chelsea": "prior", "coffee": "prior",
                         "motorcycle": "gt", "rocket": "prior"}

    preview = cv2.imread(str(out / "preview.png"), cv2.IMREAD_COLOR)
    assert preview is not None and preview.shape[1] == 4 * 256 + 5 * 8
    # Rows hold all 5 samples (the fifth used to be left out), each fitted into a 256 px box, plus
    # a header and a key line per row (together well under 256 px).
    rows = sum(_fitted_height(*s.hr.shape[:2]) for s in samples)
    assert rows < preview.shape[0] < rows + 256
    captions = {r.key: r.caption for r in shard_preview_rows(out / "train-000000.tar", 8)}
    assert len(captions) == 5
    motorcycle = next(s for s in samples if s.meta["image_id"] == "motorcycle")
    assert captions[motorcycle.key] == (
        f"depth gt | focus nearness {motorcycle.meta['blur']['focus']:.2f} | noise sigma "
        f"{motorcycle.meta['noise']['sigma_255']:.2f}/255 {motorcycle.meta['noise']['channels']} "
        f"| JPEG q{motorcycle.meta['jpeg']['quality']}")
