"""Tests for the source registry, the sample source, the folder source and depth helpers."""

from __future__ import annotations

import pickle
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.sources import (
    SOURCE_NAMES,
    SourceItem,
    get_source,
    list_items,
    load_item,
    sanitize_id,
    unique_ids,
)
from ssr_datasets.sources.depth import fill_unknown, resize_nearest


def test_registry_lists_every_source_and_rejects_unknown():
    assert SOURCE_NAMES[:2] == ("sample", "folder")  # the full list: test_sources_registry.py
    for name in SOURCE_NAMES:
        assert get_source(name).name == name
    with pytest.raises(ConfigError, match="unknown source .div9k. \\(did you mean .div2k.\\?\\); "
                                          "choose one of: sample, folder, div2k"):
        get_source("div9k")


def test_ids_are_sanitized_and_unique():
    assert sanitize_id("a dir/IMG-01.v2") == "a_dir_IMG_01_v2"
    assert sanitize_id("---") == "_"
    assert unique_ids(["x.y", "x-y", "x y", "x_y_2"]) == ["x_y", "x_y_3", "x_y_4", "x_y_2"]


# ---------------------------------------------------------------- sample source

@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection."""
    def refuse(*args, **kwargs):
        raise AssertionError("the sample source tried to use the network")
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_sample_source_lists_bundled_photos_offline(no_network):
    items = list_items("sample")
    assert [it.image_id for it in items] == ["astronaut", "chelsea", "coffee", "motorcycle",
                                             "rocket"]
    assert all(Path(it.path).is_file() for it in items)
    assert [it.image_id for it in items if it.depth_path] == ["motorcycle"]
    loaded = load_item(items[0])
    assert loaded.rgb.shape == (512, 512, 3) and loaded.depth_m is None
    assert loaded.conversions == ()


def test_sample_source_refuses_root(tmp_path):
    with pytest.raises(ConfigError, match="takes no root folder"):
        list_items("sample", tmp_path)


def test_motorcycle_depth_follows_middlebury_formula(no_network):
    item = next(it for it in list_items("sample") if it.image_id == "motorcycle")
    loaded = load_item(item)
    with np.load(item.depth_path) as npz:
        disp = npz["arr_0"].astype(np.float64)
    valid = np.isfinite(disp)
    expected_m = 193.001 * 994.978 / (disp[valid] + 31.086) / 1000.0
    depth = loaded.depth_m
    assert depth.shape == loaded.rgb.shape[:2] == (500, 741) and depth.dtype == np.float32
    np.testing.assert_allclose(depth[valid], expected_m, rtol=1e-6)
    assert np.isfinite(depth).all() and (depth > 0).all()
    # Filled pixels take values of valid ones, so they stay inside the valid range.
    valid_f32 = depth[valid]
    assert depth[~valid].min() >= valid_f32.min() and depth[~valid].max() <= valid_f32.max()
    n_unknown = int((~valid).sum())
    assert f"depth: filled {n_unknown} unknown pixels (nearest valid)" in loaded.conversions


# ---------------------------------------------------------------- depth helpers

def test_fill_unknown_uses_nearest_valid_and_keeps_valid_pixels():
    depth = np.array([[1.0, np.nan, np.nan, 4.0],
                      [np.inf, 2.0, -1.0, 0.0],
                      [3.0, np.nan, 5.0, np.nan]], np.float32)
    filled, notes = fill_unknown("d", depth)
    valid = np.isfinite(depth) & (depth > 0)
    np.testing.assert_array_equal(filled[valid], depth[valid])
    assert notes == ["depth: filled 7 unknown pixels (nearest valid)"]
    # Brute force: every filled pixel equals a valid pixel at the minimum distance.
    vr, vc = np.nonzero(valid)
    for r, c in zip(*np.nonzero(~valid), strict=True):
        d2 = (vr - r) ** 2 + (vc - c) ** 2
        nearest = {float(depth[vr[i], vc[i]]) for i in np.flatnonzero(d2 == d2.min())}
        assert float(filled[r, c]) in nearest


def test_fill_unknown_rejects_all_unknown():
    with pytest.raises(InputError, match="no valid pixel"):
        fill_unknown("d.npy", np.full((3, 3), np.nan, np.float32))


def test_resize_nearest_on_pixel_centres():
    depth = np.arange(4, dtype=np.float32).reshape(2, 2)
    np.testing.assert_array_equal(resize_nearest(depth, 4, 4),
                                  np.kron(depth, np.ones((2, 2), np.float32)))


# ---------------------------------------------------------------- folder source

def _png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)


@pytest.fixture
def tree(tmp_path, rgb) -> Path:
    """A folder with nested, oddly named, hidden and depth-carrying images."""
    root = tmp_path / "imgs"
    _png(root / "b" / "img 1.PNG", rgb)
    _png(root / "a.png", rgb)
    Image.fromarray(rgb).save(root / "a.jpg", "JPEG")
    _png(root / "c" / "x.png", rgb)
    depth_mm = np.full((6, 8), 2500, np.uint16)
    depth_mm[0, 0] = 0  # unknown
    depth_mm[5, 7] = 40000  # > 255: must survive 16-bit decoding
    cv2.imwrite(str(root / "c" / "x_depth.png"), depth_mm)
    _png(root / "d.png", rgb)
    np.save(root / "d.depth.npy", np.full((3, 4), 1.5, np.float32))  # same aspect, half size
    _png(root / "solo_depth.png", rgb)  # no partner image: an ordinary image
    _png(root / ".hidden.png", rgb)
    _png(root / ".cache" / "z.png", rgb)
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_lists_sorted_unique_ids_and_depth_beside(tree):
    items = list_items("folder", tree)
    by_id = {it.image_id: it for it in items}
    # a.jpg sorts before a.png, so it keeps the plain id.
    assert [it.image_id for it in items] == ["a", "a_2", "b_img_1", "c_x", "d", "solo_depth"]
    assert by_id["a"].path.endswith("a.jpg") and by_id["a_2"].path.endswith("a.png")
    assert by_id["c_x"].depth_path.endswith("x_depth.png")
    assert by_id["d"].depth_path.endswith("d.depth.npy")
    assert by_id["a"].depth_path is None
    assert list_items("folder", tree) == items
    assert pickle.loads(pickle.dumps(items)) == items


def test_folder_png_depth_is_millimetres_with_holes_filled(tree, rgb):
    item = next(it for it in list_items("folder", tree) if it.image_id == "c_x")
    loaded = load_item(item)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    assert loaded.depth_m.dtype == np.float32
    assert loaded.depth_m[0, 0] == pytest.approx(2.5)  # filled from a neighbour
    assert loaded.depth_m[5, 7] == pytest.approx(40.0)
    assert loaded.conversions == ("depth: filled 1 unknown pixels (nearest valid)",)


def test_folder_npy_depth_resized_when_aspect_agrees(tree):
    loaded = load_item(next(it for it in list_items("folder", tree) if it.image_id == "d"))
    assert loaded.depth_m.shape == (6, 8)
    np.testing.assert_array_equal(loaded.depth_m, 1.5)
    assert loaded.conversions == ("depth: resized 4x3 -> 8x6 (nearest)",)


def test_folder_depth_with_other_aspect_is_rejected(tmp_path, rgb):
    _png(tmp_path / "e.png", rgb)
    np.save(tmp_path / "e.depth.npy", np.ones((6, 6), np.float32))
    (item,) = list_items("folder", tmp_path)
    with pytest.raises(InputError, match="aspect ratios differ by 33.3% > 1%"):
        load_item(item)


def test_folder_all_unknown_depth_is_rejected(tmp_path, rgb):
    _png(tmp_path / "e.png", rgb)
    np.save(tmp_path / "e.depth.npy", np.full((6, 8), -1.0, np.float32))
    (item,) = list_items("folder", tmp_path)
    with pytest.raises(InputError, match="no valid pixel"):
        load_item(item)


def test_folder_two_depth_files_are_rejected(tmp_path, rgb):
    _png(tmp_path / "e.png", rgb)
    np.save(tmp_path / "e.depth.npy", np.ones((6, 8), np.float32))
    cv2.imwrite(str(tmp_path / "e_depth.png"), np.ones((6, 8), np.uint16))
    (item,) = list_items("folder", tmp_path)
    with pytest.raises(InputError, match="two depth files"):
        load_item(item)


def test_folder_8bit_depth_png_is_rejected(tmp_path, rgb):
    _png(tmp_path / "e.png", rgb)
    _png(tmp_path / "e_depth.png", rgb[..., 0])
    (item,) = list_items("folder", tmp_path)
    with pytest.raises(InputError, match="16-bit single-channel millimetres"):
        load_item(item)


def test_folder_bad_image_raises_on_load_not_on_list(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"")
    (item,) = list_items("folder", tmp_path)
    assert item == SourceItem("folder", "bad", str(tmp_path / "bad.png"), None, "bad.png")
    with pytest.raises(InputError, match="empty file"):
        load_item(item)


def test_folder_root_is_required(tmp_path):
    with pytest.raises(ConfigError, match="needs a root folder"):
        list_items("folder")
    with pytest.raises(ConfigError, match="is not a directory"):
        list_items("folder", tmp_path / "missing")
