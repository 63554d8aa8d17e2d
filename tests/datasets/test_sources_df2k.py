"""Tests for the div2k and flickr2k sources (DF2K family of numbered HR PNGs)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
from layouts import div2k_valid, flickr2k, rgb, touch_all, write_png

from ssr_core.errors import ConfigError, MissingAssetError
from ssr_datasets.dataset_verify import verify_dataset
from ssr_datasets.sources import list_items, load_item


@pytest.mark.parametrize("folder", ["DIV2K_valid_HR", "DIV2K/DIV2K_valid_HR"])
def test_div2k_valid_lists_0801_to_0900_in_both_layouts(tmp_path, folder):
    div2k_valid(tmp_path, folder)
    items = list_items("div2k", tmp_path, split="valid")
    assert [it.image_id for it in items] == [f"{i:04d}" for i in range(801, 901)]
    assert items[0].rel_path == f"{folder}/0801.png"
    assert items[0].path == str(tmp_path / folder / "0801.png") and items[0].depth_path is None
    assert pickle.loads(pickle.dumps(items)) == items
    loaded = load_item(items[1])
    np.testing.assert_array_equal(loaded.rgb, rgb(1))
    assert loaded.depth_m is None and loaded.conversions == ()


def test_div2k_default_split_is_train(tmp_path):
    touch_all(tmp_path / "DIV2K_train_HR", [f"{i:04d}.png" for i in range(1, 801)])
    items = list_items("div2k", tmp_path)
    assert len(items) == 800 and items[0].image_id == "0001" and items[-1].image_id == "0800"


def test_div2k_missing_files_are_named_with_counts(tmp_path):
    names = [f"{i:04d}.png" for i in range(1, 801) if i not in (4, 10, 123)]
    touch_all(tmp_path / "DIV2K_train_HR", names)
    folder = tmp_path / "DIV2K_train_HR"
    with pytest.raises(MissingAssetError) as info:
        list_items("div2k", tmp_path, split="train")
    assert str(info.value) == (
        "missing 3 of 800 DIV2K train HR images 0001.png..0800.png (found 797 of 800; "
        f"absent: 0004.png, 0010.png, 0123.png): put it in {folder}; "
        f"run `degrade datasets download div2k --root {tmp_path}`; or use the 797 image(s) there "
        f"as they are: `--source folder --root {folder}`")


def test_partial_div2k_names_a_way_out_that_works(tmp_path):
    # A partial copy (6 of 100) used to be refused with no way to use it; the suggested
    # folder source lists exactly the images present.
    folder = tmp_path / "DIV2K_valid_HR"
    for i in range(801, 807):
        write_png(folder / f"{i:04d}.png", rgb(i, 8, 8))
    with pytest.raises(MissingAssetError) as info:
        list_items("div2k", tmp_path, split="valid")
    suggested = re.search(r"`--source (\w+) --root (.+)`$", str(info.value))
    assert suggested is not None and "or use the 6 image(s) there as they are" in str(info.value)
    items = list_items(suggested[1], Path(suggested[2]))
    assert [it.image_id for it in items] == [f"{i:04d}" for i in range(801, 807)]
    np.testing.assert_array_equal(load_item(items[2]).rgb, rgb(803, 8, 8))


def test_verify_div2k_reads_image_sizes_from_headers(tmp_path):
    # Names and counts alone let an LR image or a broken file pass for a DIV2K photo.
    folder = tmp_path / "DIV2K_valid_HR"
    strip = np.zeros((16, 2040, 3), np.uint8)  # a 2K long side, cheap to write
    for i in range(801, 901):
        write_png(folder / f"{i:04d}.png", strip if i % 2 else strip.transpose(1, 0, 2))
    assert not [p for p in verify_dataset("div2k", tmp_path).problems if p.startswith("sizes")]
    write_png(folder / "0805.png", np.zeros((339, 510, 3), np.uint8))  # the x4 LR of a photo
    (folder / "0807.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    sizes = [p for p in verify_dataset("div2k", tmp_path).problems if p.startswith("sizes")]
    assert len(sizes) == 1 and sizes[0].startswith(
        "sizes (valid): 2 of 100 DIV2K image(s) are not DIV2K HR photos (long side 1900-2048 px "
        "expected): DIV2K_valid_HR/0805.png: 510x339 px, DIV2K_valid_HR/0807.png: not a readable "
        "image (")


def test_div2k_missing_many_lists_the_first_five(tmp_path):
    touch_all(tmp_path / "DIV2K_valid_HR", ["0801.png"])
    with pytest.raises(MissingAssetError, match=r"missing 99 of 100 .*found 1 of 100; absent: "
                       r"0802.png, 0803.png, 0804.png, 0805.png, 0806.png and 94 more\)"):
        list_items("div2k", tmp_path, split="valid")


def test_div2k_absent_folder_names_every_accepted_layout(tmp_path):
    with pytest.raises(MissingAssetError) as info:
        list_items("div2k", tmp_path, split="valid")
    msg = str(info.value)
    assert msg.startswith("missing folder with 100 DIV2K valid HR images 0801.png..0900.png")
    assert f"looked for {tmp_path / 'DIV2K_valid_HR'}, {tmp_path / 'DIV2K/DIV2K_valid_HR'}" in msg
    assert "degrade datasets download div2k" in msg


def test_div2k_foreign_png_is_refused(tmp_path):
    div2k_valid(tmp_path, real=0)
    write_png(tmp_path / "DIV2K_valid_HR" / "0801x4.png", rgb(0))
    (tmp_path / "DIV2K_valid_HR" / ".DS_Store").touch()  # hidden files are ignored
    with pytest.raises(ConfigError, match=r"1 files that are not DIV2K valid HR images .*: 0801x4.png"):
        list_items("div2k", tmp_path, split="valid")


def test_div2k_unknown_split_lists_choices(tmp_path):
    with pytest.raises(ConfigError, match=r"source 'div2k' has no split 'test'; choose one of: "
                                          r"train, valid \(default train\)"):
        list_items("div2k", tmp_path, split="test")


def test_div2k_needs_root():
    with pytest.raises(ConfigError, match="source 'div2k' needs --root"):
        list_items("div2k")


@pytest.mark.parametrize("folder", ["Flickr2K/Flickr2K_HR", "Flickr2K_HR"])
def test_flickr2k_lists_2650_in_both_layouts(tmp_path, folder):
    flickr2k(tmp_path, folder)
    items = list_items("flickr2k", tmp_path)
    assert len(items) == 2650
    assert (items[0].image_id, items[-1].image_id) == ("000001", "002650")
    assert items[0].rel_path == f"{folder}/000001.png"
    np.testing.assert_array_equal(load_item(items[0]).rgb, rgb(0))


def test_flickr2k_refuses_a_split_and_names_missing(tmp_path):
    with pytest.raises(ConfigError, match="source 'flickr2k' has no splits; got split='train'"):
        list_items("flickr2k", tmp_path, split="train")
    flickr2k(tmp_path, real=0)
    (tmp_path / "Flickr2K" / "Flickr2K_HR" / "002650.png").unlink()
    with pytest.raises(MissingAssetError, match=r"missing 1 of 2650 Flickr2K HR images .*"
                                                r"found 2649 of 2650; absent: 002650.png\)"):
        list_items("flickr2k", tmp_path)
