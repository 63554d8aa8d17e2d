"""The build (degrade/build/) end to end on tiny folder sources.

Contracts under test: DESIGN.md section 4 (sample schema, manifest) and section 5 (determinism,
shard assignment, atomic writes, resumption), plus the input-robustness promises of the folder
source. Every build writes under ``tmp_path``; images are 48 x 64, so a build takes ~0.1 s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_info

import degrade
import degrade.build.run as build_run
import degrade.build.shard as build_shard
from degrade.build import PARTIAL_NAME, BuildConfig, build
from degrade.recipes import load_recipe
from ssr_core.errors import ConfigError, InputError
from ssr_datasets.imageio import pixel_sha256
from ssr_datasets.manifest import MANIFEST_NAME, verify_shard_set
from ssr_datasets.reader import open_shards
from ssr_datasets.shards import iter_shard
from tests.faults import dead_pid, temp_of
from tests.helpers import (
    NAMES,
    H,
    W,
    make_config,
    samples_by_key,
    shard_bytes,
    tmp_files,
    write_folder,
    write_rgb,
)

SORTED = sorted(NAMES)


def keys(names: list[str], variants: int = 1) -> list[str]:
    return [f"folder-{n}-{v:03d}" for n in names for v in range(variants)]


# ---------------------------------------------------------------- determinism (DESIGN.md 5)


def test_same_build_twice_gives_identical_bytes(image_folder: Path, tmp_path: Path) -> None:
    config = make_config(image_folder)
    a = build(config, tmp_path / "a", command="t")
    b = build(config, tmp_path / "b", command="t")
    assert len(shard_bytes(a.out_dir)) == 3
    assert shard_bytes(a.out_dir) == shard_bytes(b.out_dir)
    assert a.manifest["shards"] == b.manifest["shards"]
    assert (a.out_dir / "preview.png").read_bytes() == (b.out_dir / "preview.png").read_bytes()
    assert a.manifest["complete"] is True
    assert not (a.out_dir / PARTIAL_NAME).exists()
    assert verify_shard_set(a.out_dir).ok


def test_shards_do_not_depend_on_where_the_data_lives(image_folder: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "deeper" / "copy"
    shutil.copytree(image_folder, moved)
    a = build(make_config(image_folder), tmp_path / "a", command="t", preview=False)
    b = build(make_config(moved), tmp_path / "b", command="t", preview=False)
    assert shard_bytes(a.out_dir) == shard_bytes(b.out_dir)
    meta = next(iter(samples_by_key(a.out_dir).values())).meta
    assert meta["input"]["path"] == "alpha.png"  # relative to --root, never absolute


def test_worker_count_does_not_change_bytes(image_folder: Path, tmp_path: Path) -> None:
    config = make_config(image_folder)
    one = build(config, tmp_path / "w1", workers=1, command="t", preview=False)
    two = build(config, tmp_path / "w2", workers=2, command="t", preview=False)
    assert two.built_shards == 3  # three shards, two processes: the parallel path ran
    assert shard_bytes(one.out_dir) == shard_bytes(two.out_dir)
    assert one.manifest["shards"] == two.manifest["shards"]
    assert one.manifest["config_hash"] == two.manifest["config_hash"]


def test_seed_changes_lr_but_not_hr(image_folder: Path, tmp_path: Path) -> None:
    a = build(make_config(image_folder, seed=0), tmp_path / "s0", command="t", preview=False)
    b = build(make_config(image_folder, seed=1), tmp_path / "s1", command="t", preview=False)
    sa, sb = samples_by_key(a.out_dir), samples_by_key(b.out_dir)
    assert list(sa) == list(sb) == keys(SORTED)
    for key in sa:
        assert np.array_equal(sa[key].hr, sb[key].hr), key
        assert np.array_equal(sa[key].nearness, sb[key].nearness), key  # prior depth: no randomness
        assert not np.array_equal(sa[key].lr, sb[key].lr), key
        assert not np.array_equal(sa[key].kernel_field, sb[key].kernel_field), key
        assert (sa[key].meta["seed"], sb[key].meta["seed"]) == (0, 1)


def test_build_leaves_the_callers_thread_settings_alone(image_folder: Path, tmp_path: Path) -> None:
    # The in-process path runs single-threaded like a worker, but must not keep the caller there.
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        build(make_config(image_folder, max_images=2), tmp_path / "o", command="t", preview=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_in_process_build_runs_one_blas_thread_and_restores_it(
        image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenBLAS threads spin between calls: a "one-thread" build used 1.6 cores before.
    def blas_threads() -> list[int]:
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

    seen: list[list[int]] = []
    original = build_run.run_shard

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(build_run, "run_shard", recording)
    before = blas_threads()
    build(make_config(image_folder, max_images=2), tmp_path / "o", command="t", preview=False)
    assert seen and all(counts == [1] * len(before) for counts in seen)
    assert blas_threads() == before


# ---------------------------------------------------------------- shard assignment


def test_shards_follow_the_sorted_input_list(tmp_path: Path) -> None:
    names = ["delta", "alpha", "golf", "echo", "charlie", "foxtrot", "bravo"]  # created unsorted
    root = tmp_path / "in"
    write_folder(root, names)
    res = build(make_config(root, shard_size=3, split="val"), tmp_path / "o", command="t",
                preview=False)
    ordered = sorted(names)
    expected = [keys(ordered[0:3]), keys(ordered[3:6]), keys(ordered[6:7])]
    assert [s["name"] for s in res.manifest["shards"]] == [
        "val-000000.tar", "val-000001.tar", "val-000002.tar"]
    assert [s["keys"] for s in res.manifest["shards"]] == expected
    assert [s["count"] for s in res.manifest["shards"]] == [3, 3, 1]
    for entry in res.manifest["shards"]:  # file order inside each tar is the manifest's order
        assert [s.key for s in iter_shard(res.out_dir / entry["name"])] == entry["keys"]
    assert sorted(p.name for p in res.out_dir.glob("*.tar")) == [
        s["name"] for s in res.manifest["shards"]]


def test_variants_have_own_keys_crops_and_draws(tmp_path: Path) -> None:
    root = tmp_path / "in"
    images = write_folder(root)
    # shard_size 7 with 3 variants: whole images per shard, so 2 images = 6 samples per shard.
    config = make_config(root, samples_per_image=3, shard_size=7, crop=(32, 32))
    res = build(config, tmp_path / "o", command="t", preview=False)
    shards = res.manifest["shards"]
    assert [s["keys"] for s in shards] == [keys(SORTED[i:i + 2], 3) for i in (0, 2, 4)]
    assert all(s["count"] <= 7 for s in shards)
    samples = samples_by_key(res.out_dir)
    for name in SORTED:
        variants = [samples[f"folder-{name}-{v:03d}"] for v in range(3)]
        for smp in variants:
            c = smp.meta["crop"]
            assert (c["height"], c["width"]) == (32, 32) and smp.hr.shape == (32, 32, 3)
            assert c["top"] % 4 == 0 and c["left"] % 4 == 0  # on the LR grid
            want = images[name][c["top"]:c["top"] + 32, c["left"]:c["left"] + 32]
            assert np.array_equal(smp.hr, want)  # the recorded crop is the crop taken
        for a, b in [(0, 1), (0, 2), (1, 2)]:
            assert not np.array_equal(variants[a].kernel_field, variants[b].kernel_field)
            assert variants[a].meta["blur"] != variants[b].meta["blur"]
        assert len({(v.meta["crop"]["top"], v.meta["crop"]["left"]) for v in variants}) > 1


def test_max_images_takes_the_first_sorted_inputs(image_folder: Path, tmp_path: Path) -> None:
    res = build(make_config(image_folder, max_images=4, shard_size=64), tmp_path / "o",
                command="t", preview=False)
    assert [s["keys"] for s in res.manifest["shards"]] == [keys(SORTED[:4])]
    assert res.manifest["totals"]["images"] == 4
    assert res.manifest["config"]["max_images"] == 4


# ---------------------------------------------------------------- resumption and interruption


def test_rerun_rebuilds_exactly_the_damaged_shards(image_folder: Path, tmp_path: Path) -> None:
    config = make_config(image_folder)
    out = tmp_path / "o"
    first = build(config, out, command="t", preview=False)
    original = shard_bytes(out)
    again = build(config, out, command="t", preview=False)
    assert (again.reused_shards, again.built_shards) == (3, 0)

    (out / "train-000000.tar").unlink()
    damaged = bytearray(original["train-000002.tar"])
    damaged[len(damaged) // 2] ^= 0xFF
    (out / "train-000002.tar").write_bytes(bytes(damaged))
    leftover = temp_of(out, "train-000001.tar", dead_pid())  # what a killed writer leaves
    leftover.write_bytes(b"half a shard")
    kept_mtime = (out / "train-000001.tar").stat().st_mtime_ns

    fixed = build(config, out, command="t", preview=False)
    assert (fixed.reused_shards, fixed.built_shards) == (1, 2)
    assert (out / "train-000001.tar").stat().st_mtime_ns == kept_mtime  # not rewritten
    assert shard_bytes(out) == original
    assert fixed.manifest["shards"] == first.manifest["shards"]
    assert tmp_files(out) == []
    assert verify_shard_set(out).ok


def test_rerun_after_the_input_list_changed_keeps_every_image_once(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_folder(root)
    config = make_config(root)
    out = tmp_path / "o"
    build(config, out, command="t", preview=False)
    # A new image that sorts first shifts every shard's inputs: old shards must not be reused.
    write_folder(root, ["aardvark"], seed=1)
    grown = build(config, out, command="t", preview=False)
    want = keys(sorted([*NAMES, "aardvark"]))
    assert [k for s in grown.manifest["shards"] for k in s["keys"]] == want
    fresh = build(config, tmp_path / "fresh", command="t", preview=False)
    assert shard_bytes(out) == shard_bytes(fresh.out_dir)
    assert verify_shard_set(out).ok
    # Fewer images, fewer shards: the old last shard must not linger unlisted.
    for name in ["aardvark", "alpha", "bravo"]:
        (root / f"{name}.png").unlink()
    shrunk = build(config, out, command="t", preview=False)
    assert sorted(shard_bytes(out)) == ["train-000000.tar", "train-000001.tar"]
    assert [k for s in shrunk.manifest["shards"] for k in s["keys"]] == keys(SORTED[2:])
    assert verify_shard_set(out).ok


@pytest.mark.parametrize("where", ["before-shard", "mid-write"])
def test_interrupted_build_is_resumable(image_folder: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    config = make_config(image_folder)
    reference = build(config, tmp_path / "ref", command="t", preview=False)
    out = tmp_path / "o"
    calls = []
    saw_tmp = []
    if where == "before-shard":
        real_run_shard = build_run.run_shard

        def run_shard(task, *args, **kw):  # type: ignore[no-untyped-def]
            calls.append(task.index)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real_run_shard(task, *args, **kw)

        monkeypatch.setattr(build_run, "run_shard", run_shard)
    else:
        class CutWriter(build_shard.ShardWriter):  # the second shard stops at its second sample
            def __init__(self, path):  # type: ignore[no-untyped-def]
                super().__init__(path)
                calls.append(path)
                self.path, self.n = path, 0

            def add(self, key, members):  # type: ignore[no-untyped-def]
                if len(calls) == 2 and self.n == 1:
                    saw_tmp.extend(tmp_files(self.path.parent))  # the half-written temp file
                    raise KeyboardInterrupt
                self.n += 1
                super().add(key, members)

        monkeypatch.setattr(build_shard, "ShardWriter", CutWriter)

    with pytest.raises(KeyboardInterrupt):
        build(config, out, command="t", preview=False)
    if where == "mid-write":
        assert len(saw_tmp) == 1  # the interrupt really hit an open temp shard
    partial = json.loads((out / PARTIAL_NAME).read_text())
    assert partial["complete"] is False
    assert [s["name"] for s in partial["shards"]] == ["train-000000.tar"]
    assert partial["shards"][0] == reference.manifest["shards"][0]
    assert not (out / MANIFEST_NAME).exists()
    assert tmp_files(out) == []
    assert sorted(shard_bytes(out)) == ["train-000000.tar"]

    monkeypatch.undo()
    resumed = build(config, out, command="t", preview=False)
    assert (resumed.reused_shards, resumed.built_shards) == (1, 2)
    assert shard_bytes(out) == shard_bytes(reference.out_dir)
    assert resumed.manifest["shards"] == reference.manifest["shards"]
    assert not (out / PARTIAL_NAME).exists()


# ---------------------------------------------------------------- refuse to clobber


def test_other_build_needs_overwrite_and_unrelated_files_survive(image_folder: Path,
                                                                 tmp_path: Path) -> None:
    out = tmp_path / "o"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "sub" / "keep.tar").write_bytes(b"not ours")
    # A folder holding only unrelated files is not another build: no --overwrite needed.
    build(make_config(image_folder, seed=0), out, command="t", preview=False)
    before = shard_bytes(out)

    other = make_config(image_folder, seed=1, shard_size=6)
    with pytest.raises(ConfigError, match="--overwrite"):
        build(other, out, command="t", preview=False)
    assert shard_bytes(out) == before  # refused before touching anything

    replaced = build(other, out, overwrite=True, command="t", preview=False)
    assert replaced.manifest["config"]["seed"] == 1
    assert sorted(shard_bytes(out)) == ["train-000000.tar"]  # the old 3-shard set is gone
    fresh = build(other, tmp_path / "fresh", command="t", preview=False)
    assert shard_bytes(out) == shard_bytes(fresh.out_dir)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "sub" / "keep.tar").read_bytes() == b"not ours"
    assert verify_shard_set(out).ok

    redone = build(other, out, overwrite=True, command="t", preview=False)
    assert (redone.reused_shards, redone.built_shards) == (0, 1)  # --overwrite never resumes


# ---------------------------------------------------------------- bad inputs and depth


def _bad_folder(root: Path) -> dict[str, np.ndarray]:
    images = write_folder(root, ["good"])
    rng = np.random.default_rng(5)
    gray = rng.integers(0, 256, (H, W), dtype=np.uint8)
    cv2.imwrite(str(root / "gray.png"), gray)
    rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
    cv2.imwrite(str(root / "rgba.png"), rgba[..., [2, 1, 0, 3]])
    deep = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    write_rgb(root / "deep.png", deep)
    write_rgb(root / "tiny.png", rng.integers(0, 256, (10, 10, 3), dtype=np.uint8))
    (root / "empty.png").write_bytes(b"")
    whole = (root / "good.png").read_bytes()
    (root / "trunc.png").write_bytes(whole[: len(whole) // 2])
    return {"good": images["good"], "gray": gray, "rgba": rgba, "deep": deep}


def test_bad_inputs_are_converted_or_skipped_with_a_reason(tmp_path: Path) -> None:
    root = tmp_path / "in"
    pixels = _bad_folder(root)
    res = build(make_config(root, shard_size=64), tmp_path / "o", command="t", preview=False)
    samples = samples_by_key(res.out_dir)
    assert sorted(samples) == keys(["deep", "good", "gray", "rgba"])
    conversions = {k.split("-")[1]: s.meta["input"]["conversions"] for k, s in samples.items()}
    assert conversions == {"good": [], "gray": ["grayscale->rgb"],
                           "rgba": ["rgba->rgb (alpha dropped)"],
                           "deep": ["16-bit->8-bit (rounded)"]}
    hr = {k.split("-")[1]: s.hr for k, s in samples.items()}
    assert np.array_equal(hr["good"], pixels["good"])
    assert np.array_equal(hr["gray"], np.repeat(pixels["gray"][..., None], 3, axis=2))
    assert np.array_equal(hr["rgba"], pixels["rgba"][..., :3])
    # v / 257 is never exactly k + 0.5 for integer v, so rint has no ties to break here.
    assert np.array_equal(hr["deep"], np.rint(pixels["deep"] / 257.0).astype(np.uint8))
    assert samples["folder-good-000"].meta["input"]["pixel_sha256"] == pixel_sha256(pixels["good"])

    skipped = {s["image_id"]: s["reason"] for s in res.manifest["skipped"]}
    assert sorted(skipped) == ["empty", "tiny", "trunc"]
    assert "empty file (0 bytes)" in skipped["empty"]
    assert "smaller than the 21x21 kernel" in skipped["tiny"]
    assert "truncated" in skipped["trunc"].lower()
    assert res.manifest["totals"] == {"samples": 4, "images": 7, "skipped": 3, "shards": 1}
    assert any("skipped" in w and "tiny" in w for w in res.warnings)
    assert verify_shard_set(res.out_dir).ok


def test_strict_turns_a_skip_into_an_error_also_on_rerun(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_folder(root, ["good", "zulu"])
    (root / "empty.png").write_bytes(b"")  # the only bad input, and it sorts first
    config = make_config(root, shard_size=1)
    out = tmp_path / "o"
    with pytest.raises(InputError, match=r"empty\.png: empty file .*--strict"):
        build(config, out, strict=True, command="t", preview=False)
    assert not (out / MANIFEST_NAME).exists()
    # The failed shard was recorded in the partial manifest; a rerun must not accept it silently.
    with pytest.raises(InputError, match=r"empty\.png: empty file .*--strict"):
        build(config, out, strict=True, command="t", preview=False)
    assert not (out / MANIFEST_NAME).exists()
    # Without --strict the same folder builds, listing the skip.
    res = build(config, out, command="t", preview=False)
    assert [s["image_id"] for s in res.manifest["skipped"]] == ["empty"]
    assert res.manifest["totals"]["samples"] == 2


def test_depth_beside_an_image_is_used_or_refused(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_folder(root, ["near", "plain", "wide", "half"])
    z = np.tile(np.linspace(1.0, 4.0, W, dtype=np.float32), (H, 1))  # metres, far to the right
    np.save(root / "near.depth.npy", z)
    np.save(root / "wide.depth.npy", np.ones((H, H), np.float32))  # aspect 1:1 vs 3:4
    np.save(root / "half.depth.npy", z[::2, ::2].copy())  # same aspect, half size
    res = build(make_config(root, shard_size=64, depth="auto"), tmp_path / "o", command="t",
                preview=False)
    samples = samples_by_key(res.out_dir)
    assert sorted(samples) == keys(["half", "near", "plain"])
    assert [s["image_id"] for s in res.manifest["skipped"]] == ["wide"]
    assert "does not match image" in res.manifest["skipped"][0]["reason"]
    assert res.manifest["depth_providers"] == {"gt": 2, "prior": 1}
    providers = {k: s.meta["depth"]["provider"] for k, s in samples.items()}
    assert providers == {"folder-half-000": "gt", "folder-near-000": "gt",
                         "folder-plain-000": "prior"}
    assert "depth: resized 32x24 -> 64x48 (nearest)" in (
        samples["folder-half-000"].meta["input"]["conversions"])

    # Nearness follows DESIGN.md section 3: 1/z = 1/z_max + n (1/z_min - 1/z_max).
    near = samples["folder-near-000"]
    info = near.meta["depth"]
    assert (info["z_min_m"], info["z_max_m"]) == (1.0, 4.0)
    n = (1.0 / z - 1.0 / 4.0) / (1.0 / 1.0 - 1.0 / 4.0)
    want = np.rint(n.astype(np.float64) * 65535)
    assert np.abs(near.nearness.astype(np.int64) - want).max() <= 1  # float32 depth, 1 level


# ---------------------------------------------------------------- sample json and LR


def test_sample_json_records_everything_needed(image_folder: Path, tmp_path: Path) -> None:
    recipe = load_recipe("ssr")
    res = build(make_config(image_folder, seed=7), tmp_path / "o", command="t", preview=False)
    lo, hi = recipe.blur.sigma_range_px
    for key, smp in samples_by_key(res.out_dir).items():
        m = smp.meta
        assert m["key"] == key
        assert (m["scale"], m["kernel_size"], m["delta"]) == (4, 21, 1.5)
        assert (m["recipe"], m["recipe_hash"], m["seed"]) == ("ssr", recipe.hash, 7)
        assert m["downsampler"] == "direct" and m["delta_mode"] == "centered"
        assert 1.0 <= m["noise"]["sigma_255"] <= 25.0
        assert m["noise"]["channels"] in ("gray", "rgb")
        q = m["jpeg"]["quality"]
        assert isinstance(q, int) and 30 <= q <= 95
        assert m["depth"]["provider"] == "prior" and m["depth"]["choice"]
        t = m["truncated_mass"]
        assert 0.0 <= t["mean"] <= t["max"] < 1.0 and t["warn"] == (t["max"] > 0.01)
        assert smp.hr.shape == (H, W, 3) and smp.lr.shape == (H // 4, W // 4, 3)
        assert smp.kernel_field.shape == (3, H // 4, W // 4) and smp.kernel_field.dtype == np.float32
        s12 = smp.kernel_field[:2]
        assert lo - 1e-6 <= s12.min() and s12.max() <= hi + 1e-6
        assert 0.0 <= smp.kernel_field[2].min() and smp.kernel_field[2].max() < math.pi
        s1 = smp.kernel_field[0]
        assert m["kernel_range"]["s1"] == pytest.approx([s1.min(), s1.max()])
    assert res.manifest["recipe_hash"] == recipe.hash


def test_lr_is_the_engine_applied_to_the_stored_hr_and_field(image_folder: Path,
                                                             tmp_path: Path) -> None:
    config = make_config(image_folder, no_noise=True, no_jpeg=True)
    res = build(config, tmp_path / "o", command="t", preview=False)
    for smp in samples_by_key(res.out_dir).values():
        assert smp.meta["noise"] is None and smp.meta["jpeg"] is None
        assert smp.meta["recipe_hash"] == config.recipe.hash != load_recipe("ssr").hash
        hr = torch.from_numpy(smp.hr).permute(2, 0, 1)[None].float() / 255.0
        field = torch.from_numpy(smp.kernel_field)[None]
        lr = degrade.apply_kernel_field(hr, field, 4, 21, smp.meta["delta"])[0]
        want = np.clip(np.rint(lr.permute(1, 2, 0).numpy() * 255.0), 0, 255).astype(np.uint8)
        # Same float32 inputs (uint8 HR, stored float32 field), same op, one process: the
        # rounding sees identical values, so the match is exact, not within a level.
        assert np.array_equal(smp.lr, want)
        # and the blur did something: LR is not plain decimation of HR
        assert not np.array_equal(smp.lr, smp.hr[1::4, 1::4])


# ---------------------------------------------------------------- reader


def test_reader_yields_every_sample_with_uint16_nearness(image_folder: Path,
                                                         tmp_path: Path) -> None:
    res = build(make_config(image_folder), tmp_path / "o", command="t", preview=False)
    direct = samples_by_key(res.out_dir)
    read = list(open_shards(res.out_dir, verify_checksums=True))
    assert [s.key for s in read] == [k for s in res.manifest["shards"] for k in s["keys"]]
    assert len(read) == res.manifest["totals"]["samples"] == 6
    for smp in read:
        assert smp.nearness.dtype == np.uint16 and smp.nearness.shape == (H, W)
        assert np.array_equal(smp.nearness, direct[smp.key].nearness)
        assert np.array_equal(smp.lr, direct[smp.key].lr)


def test_depth_gt_skips_images_without_depth_and_keeps_going(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_folder(root, ("with", "without"))
    np.save(root / "with.depth.npy", np.full((H, W), 2.5, np.float32))
    result = build(make_config(root, depth="gt"), tmp_path / "o", command="t", preview=False)
    assert [s["image_id"] for s in result.manifest["skipped"]] == ["without"]
    assert result.manifest["skipped"][0]["reason"] == "no ground-truth depth (asked for --depth gt)"
    assert result.manifest["totals"]["samples"] == 1
    assert result.manifest["depth_providers"] == {"gt": 1}


def test_split_selects_the_source_split_and_names_the_shards(tmp_path: Path) -> None:
    from tests.datasets.layouts import div2k_valid

    root = div2k_valid(tmp_path / "data")  # the full 0801-0900 listing; the first two decode
    rec = load_recipe("ssr")
    config = BuildConfig(recipe=rec, source="div2k", root=str(root), split="valid", max_images=2)
    result = build(config, tmp_path / "o", command="t", preview=False)
    assert [s["name"] for s in result.manifest["shards"]] == ["valid-000000.tar"]
    assert result.manifest["shards"][0]["keys"] == ["div2k-0801-000", "div2k-0802-000"]
    assert result.manifest["split"] == "valid"
    with pytest.raises(ConfigError, match="split"):
        build(dataclasses.replace(config, split="test"), tmp_path / "o2", command="t")


def test_real_pair_sources_are_refused_before_any_work(tmp_path: Path) -> None:
    from tests.datasets.layouts import drealsr

    root = drealsr(tmp_path / "data")
    config = BuildConfig(recipe=load_recipe("ssr"), source="drealsr", root=str(root))
    with pytest.raises(ConfigError, match="real LR/HR pairs: score them with ssr-eval"):
        build(config, tmp_path / "o", command="t")
    assert not (tmp_path / "o").exists()
