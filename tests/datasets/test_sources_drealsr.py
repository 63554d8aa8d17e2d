"""Tests for the drealsr source: HR/LR pairing, load_pair, and refusal as a build source."""

from __future__ import annotations

import numpy as np
import pytest
from layouts import drealsr, rgb, write_png

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_datasets.sources import get_source, list_items, load_item, require_build_source
from ssr_datasets.sources.drealsr import load_pair, pair_stem


def test_pairs_match_by_stem_without_scale_suffix(tmp_path):
    drealsr(tmp_path)
    items = list_items("drealsr", tmp_path)  # default split x4
    assert [it.image_id for it in items] == ["DSC_1454", "DSC_1460"]
    assert items[0].rel_path == "DRealSR/Test_x4/test_HR/DSC_1454_x1.png"
    assert all(it.depth_path is None for it in items)
    hr, lr = load_pair(items[1])
    np.testing.assert_array_equal(hr, rgb(1, 24, 32))
    np.testing.assert_array_equal(lr, rgb(101, 6, 8))
    np.testing.assert_array_equal(load_item(items[1]).rgb, hr)
    assert pair_stem("DSC_1454_x1.png") == pair_stem("DSC_1454_x4.png") == "DSC_1454"


def test_root_may_be_the_drealsr_folder_and_other_scales(tmp_path):
    drealsr(tmp_path, scale=2)
    items = list_items("drealsr", tmp_path / "DRealSR", split="x2")
    assert items[0].rel_path == "Test_x2/test_HR/DSC_1454_x1.png"
    assert load_pair(items[0])[1].shape == (12, 16, 3)


def test_per_scale_folder_layout(tmp_path):
    drealsr(tmp_path / "DRealSR" / "x4" / "_")  # -> DRealSR/x4/_/DRealSR/Test_x4: not accepted
    with pytest.raises(MissingAssetError, match="save it as DRealSR.zip in " + str(tmp_path)):
        list_items("drealsr", tmp_path)
    drealsr(tmp_path / "tmp")
    (tmp_path / "tmp/DRealSR/Test_x4").rename(tmp_path / "DRealSR/x4/Test_x4")
    items = list_items("drealsr", tmp_path)
    assert items[0].rel_path == "DRealSR/x4/Test_x4/test_HR/DSC_1454_x1.png"
    assert load_pair(items[0])[1].shape == (6, 8, 3)


def test_unpaired_files_are_named(tmp_path):
    drealsr(tmp_path)
    write_png(tmp_path / "DRealSR/Test_x4/test_HR/DSC_2000_x1.png", rgb(5))
    with pytest.raises(MissingAssetError, match=r"missing LR partners of 1 of 3 HR images "
                                                r"\(found 2 of 3 pairs; unpaired: DSC_2000_x1.png\)"
                                                r": put it in .*test_LR"):
        list_items("drealsr", tmp_path)


def test_lr_of_the_wrong_size_is_refused_at_load(tmp_path):
    drealsr(tmp_path, stems=("DSC_1",))
    write_png(tmp_path / "DRealSR/Test_x4/test_LR/DSC_1_x4.png", rgb(0, 12, 16))
    (item,) = list_items("drealsr", tmp_path)
    with pytest.raises(InputError, match="LR 16x12 is not HR 32x24 / 4"):
        load_pair(item)


def test_drealsr_is_real_pairs_and_refused_by_the_build(tmp_path):
    assert get_source("drealsr").real_pairs is True
    with pytest.raises(ConfigError, match="drealsr holds real LR/HR pairs: score them with "
                                          "ssr-eval; it is not a degrade build source"):
        require_build_source("drealsr")
    with pytest.raises(MissingAssetError, match="looked for .*DRealSR/Test_x3/test_HR"):
        list_items("drealsr", tmp_path, split="x3")


def test_pairs_are_reached_through_the_registry(tmp_path):
    from ssr_datasets.sources import pair_source

    drealsr(tmp_path)
    items = list_items("drealsr", tmp_path)
    source = pair_source("drealsr")
    assert source.lr_partner(items[1]) == tmp_path / "DRealSR/Test_x4/test_LR/DSC_1460_x4.png"
    hr, lr = source.load_pair(items[1])
    np.testing.assert_array_equal(hr, rgb(1, 24, 32))
    np.testing.assert_array_equal(lr, rgb(101, 6, 8))
    (tmp_path / "DRealSR/Test_x4/test_LR/DSC_1460_x4.png").unlink()
    with pytest.raises(InputError, match="no LR partner DSC_1460_x<s>.png in"):
        source.lr_partner(items[1])
    with pytest.raises(ConfigError, match="set5 holds no real LR/HR pairs"):
        pair_source("set5")
