"""Tests for the set5, set14, bsds100 and urban100 sources on the real bench-data images."""

from __future__ import annotations

import numpy as np
import pytest
from layouts import BENCH, bench_set, rgb, touch_all, urban100, write_png
from PIL import Image

from ssr_core.errors import ConfigError, MissingAssetError
from ssr_datasets.sources import list_items, load_item
from ssr_datasets.sources.benchmarks import SET5_NAMES, SET14_NAMES, normalize_id

# (sub-folder, file suffix) of every accepted layout; "" = images directly in the set folder.
LAYOUTS = [("", ""), ("HR", ""), ("original", ""), ("GTmod12", ""), ("image_SRF_4", "_SRF_4_HR")]


@pytest.mark.parametrize(("sub", "suffix"), LAYOUTS)
def test_set5_every_layout_gives_the_same_ids(tmp_path, sub, suffix):
    bench_set(tmp_path, "set5", "Set5", 5, sub, suffix)
    if sub == "image_SRF_4":  # SelfExSR's LR files beside the HR ones are ignored
        write_png(tmp_path / "Set5" / sub / "img_001_SRF_4_LR.png", rgb(0, 4, 4))
    items = list_items("set5", tmp_path)
    assert [it.image_id for it in items] == list(SET5_NAMES)
    rel = "/".join(p for p in ("Set5", sub, f"img_001{suffix}.png") if p)
    assert items[0].rel_path == rel and items[0].depth_path is None
    loaded = load_item(items[1])  # bird: 288 x 288 RGB, the real image in tests/data
    assert loaded.rgb.shape == (288, 288, 3) and loaded.rgb.dtype == np.uint8
    np.testing.assert_array_equal(loaded.rgb, np.asarray(Image.open(BENCH / "set5/img_002.png")))


def test_set5_named_files_and_gt_suffix(tmp_path):
    touch_all(tmp_path / "Set5", [f"{n}_GT.bmp" for n in SET5_NAMES])
    assert [it.image_id for it in list_items("set5", tmp_path)] == list(SET5_NAMES)


def test_set14_grayscale_bridge_is_converted_and_recorded(tmp_path):
    bench_set(tmp_path, "set14", "Set14", 14, "GTmod12")
    items = list_items("set14", tmp_path)
    assert [it.image_id for it in items] == sorted(SET14_NAMES)
    bridge = load_item(next(it for it in items if it.image_id == "bridge"))
    gray = np.asarray(Image.open(BENCH / "set14/img_003.png"))
    assert bridge.rgb.shape == (*gray.shape, 3) and bridge.conversions == ("grayscale->rgb",)
    for c in range(3):
        np.testing.assert_array_equal(bridge.rgb[..., c], gray)


@pytest.mark.parametrize("folder", ["BSDS100", "B100", "BSD100"])
def test_bsds100_folder_names(tmp_path, folder):
    bench_set(tmp_path, "bsd100", folder, 100)
    items = list_items("bsds100", tmp_path)
    assert [it.image_id for it in items] == [f"img_{i:03d}" for i in range(1, 101)]
    assert items[0].rel_path == f"{folder}/img_001.png"
    assert load_item(items[1]).rgb.shape == (480, 320, 3)  # img_002, real (tests/data)


def test_urban100_normalizes_img001(tmp_path):
    urban100(tmp_path)
    items = list_items("urban100", tmp_path)
    assert items[0].image_id == "img_001" and items[-1].image_id == "img_100"
    np.testing.assert_array_equal(load_item(items[6]).rgb, rgb(7, 8, 8))


def test_too_few_images_name_the_folder_counts_and_absent_names(tmp_path):
    bench_set(tmp_path, "set5", "Set5", 3, "HR")
    folder = tmp_path / "Set5" / "HR"
    with pytest.raises(MissingAssetError) as info:
        list_items("set5", tmp_path)
    assert str(info.value) == (
        f"missing 2 of 5 Set5 images (found 3 of 5; absent: head, woman): put it in {folder}; "
        f"put the Set5 HR images in {tmp_path / 'Set5'} and check them with "
        f"`degrade datasets verify set5 --root {tmp_path}`")


def test_too_many_images_and_duplicate_ids_are_refused(tmp_path):
    touch_all(tmp_path / "Urban100", [f"img_{i:03d}.png" for i in range(1, 102)])
    with pytest.raises(ConfigError, match="found 101 Urban100 images, expected 100"):
        list_items("urban100", tmp_path)
    touch_all(tmp_path / "Set5", ["baby.png", "baby.bmp"])
    with pytest.raises(ConfigError, match="baby.bmp and baby.png are the same image 'baby'"):
        list_items("set5", tmp_path)


def test_absent_set_folder_lists_accepted_names(tmp_path):
    with pytest.raises(MissingAssetError, match=r"missing folder with the 100 BSDS100 images: .*"
                                                r"looked for .*BSDS100, .*B100, .*BSD100"):
        list_items("bsds100", tmp_path)


def test_normalize_id_variants():
    assert normalize_id("img_001_SRF_4_HR") == "img_001"
    assert normalize_id("img_014_SRF_2_HR", SET14_NAMES) == "zebra"
    assert normalize_id("Lenna", SET14_NAMES) == "lenna"
    assert normalize_id("img099") == "img_099"
    assert normalize_id("3096") == "3096"


@pytest.mark.parametrize(("name", "folder", "count"),
                         [("set5", "set5", 5), ("set14", "set14", 14), ("bsds100", "bsd100", 100)])
def test_lower_case_set_folders_are_accepted(tmp_path, name, folder, count):
    bench_set(tmp_path, folder, folder, count)  # e.g. set5/, bsd100/ as some collections ship
    items = list_items(name, tmp_path)
    assert len(items) == count and items[0].rel_path == f"{folder}/img_001.png"
