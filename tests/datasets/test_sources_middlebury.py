"""Tests for the PFM reader and the middlebury source."""

from __future__ import annotations

import numpy as np
import pytest
from layouts import MIDDLEBURY_CALIB, middlebury, pfm_bytes, rgb

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_datasets.sources import list_items, load_item
from ssr_datasets.sources.middlebury import SCENES, read_calib
from ssr_datasets.sources.pfm import read_pfm


@pytest.mark.parametrize("little_endian", [True, False])
def test_pfm_gray_rows_are_flipped_to_top_first(tmp_path, little_endian):
    top_first = np.arange(12, dtype=np.float32).reshape(3, 4)
    top_first[1, 2] = np.inf
    path = tmp_path / "d.pfm"
    path.write_bytes(pfm_bytes(top_first, little_endian))
    got = read_pfm(path)
    assert got.dtype == np.float32 and got.shape == (3, 4)
    np.testing.assert_array_equal(got, top_first)
    # The first stored row is the image's bottom row.
    raw = path.read_bytes()
    first = np.frombuffer(raw[-48:-32], "<f4" if little_endian else ">f4")
    np.testing.assert_array_equal(first, top_first[2])


@pytest.mark.parametrize("little_endian", [True, False])
def test_pfm_colour(tmp_path, little_endian):
    top_first = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    (tmp_path / "c.pfm").write_bytes(pfm_bytes(top_first, little_endian, scale=2.5))
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), top_first)


def test_pfm_bad_header_and_truncation(tmp_path):
    (tmp_path / "a.pfm").write_bytes(b"P6\n4 3\n255\n" + bytes(36))
    with pytest.raises(InputError, match="not a PFM file"):
        read_pfm(tmp_path / "a.pfm")
    (tmp_path / "b.pfm").write_bytes(pfm_bytes(np.zeros((3, 4), np.float32))[:-4])
    with pytest.raises(InputError, match="truncated PFM: 4x3x1 needs 48 bytes of samples, found 44"):
        read_pfm(tmp_path / "b.pfm")


def test_calib_parses_cam0_doffs_baseline(tmp_path):
    (tmp_path / "calib.txt").write_text(MIDDLEBURY_CALIB)
    calib = read_calib(tmp_path / "calib.txt")
    assert (calib.f_px, calib.doffs_px, calib.baseline_mm) == (1000.5, 10.25, 176.252)
    (tmp_path / "calib.txt").write_text("cam0=[1 0 0; 0 1 0; 0 0 1]\nbaseline=1\n")
    with pytest.raises(InputError, match="no 'doffs=<number>' line"):
        read_calib(tmp_path / "calib.txt")


def test_middlebury_lists_23_scenes_and_depth_follows_formula(tmp_path):
    middlebury(tmp_path, SCENES)
    items = list_items("middlebury", tmp_path)
    assert [it.image_id for it in items] == sorted(SCENES) and len(items) == 23
    item = items[0]
    assert item.rel_path == "Adirondack-perfect/im0.png"
    loaded = load_item(item)
    np.testing.assert_array_equal(loaded.rgb, rgb(0))
    disp = np.random.default_rng(0).uniform(5, 60, (24, 32)).astype(np.float32)  # as written
    expected_m = 176.252 * 1000.5 / (disp.astype(np.float64) + 10.25) / 1000.0
    known = np.ones((24, 32), bool)
    known[0, :3] = False
    depth = loaded.depth_m
    assert depth.dtype == np.float32 and depth.shape == (24, 32)
    np.testing.assert_allclose(depth[known], expected_m[known], rtol=1e-6)
    assert np.isfinite(depth).all() and (depth > 0).all()
    np.testing.assert_array_equal(depth[0, :3], depth[1, :3])  # filled from the row below
    assert loaded.conversions == (
        "depth: from Middlebury disparity (baseline 176.252 mm, f 1000.5 px, doffs 10.25 px)",
        "depth: filled 3 unknown pixels (nearest valid)")


def test_middlebury_missing_scenes_and_files(tmp_path):
    middlebury(tmp_path, SCENES[:21])
    with pytest.raises(MissingAssetError, match=r"missing 2 of 23 Middlebury 2014 scene folders "
                       r"<Scene>-perfect \(found 21 of 23; absent: Umbrella-perfect, "
                       r"Vintage-perfect\)"):
        list_items("middlebury", tmp_path)
    middlebury(tmp_path, SCENES[21:])
    (tmp_path / "Vintage-perfect" / "calib.txt").unlink()
    with pytest.raises(MissingAssetError, match="missing calib.txt: put it in .*Vintage-perfect"):
        list_items("middlebury", tmp_path)
    with pytest.raises(ConfigError, match="choose one of: perfect, imperfect"):
        list_items("middlebury", tmp_path, split="quarter")


def test_middlebury_imperfect_split(tmp_path):
    middlebury(tmp_path, SCENES, split="imperfect")
    items = list_items("middlebury", tmp_path, split="imperfect")
    assert items[-1].rel_path == "Vintage-imperfect/im0.png"
