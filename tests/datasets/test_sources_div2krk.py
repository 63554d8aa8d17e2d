"""Tests for the div2krk source: the released DIV2KRK layout, pairs, and the true kernels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from layouts import div2krk, div2krk_kernel, rgb, write_png

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_datasets.sources import get_source, list_items, load_item, pair_source, require_build_source
from ssr_datasets.sources.div2krk import load_kernel


def test_lists_the_hundred_images_and_pairs_them_per_scale(tmp_path):
    div2krk(tmp_path, scales=(2, 4))
    items = list_items("div2krk", tmp_path)  # default split x4
    assert len(items) == 100 and items[0].image_id == "im_1"
    assert sorted(it.image_id for it in items) == sorted(f"im_{n}" for n in range(1, 101))
    assert items[0].rel_path == "DIV2KRK/gt/img_1_gt.png" and items[0].depth_path is None
    source = pair_source("div2krk")
    assert source.lr_partner(items[0]) == tmp_path / "DIV2KRK/lr_x4/im_1.png"
    hr, lr = source.load_pair(items[0])
    np.testing.assert_array_equal(hr, rgb(1, 24, 32))
    np.testing.assert_array_equal(lr, rgb(101, 6, 8))
    np.testing.assert_array_equal(load_item(items[0]).rgb, hr)
    (x2,) = [it for it in list_items("div2krk", tmp_path, "x2") if it.image_id == "im_2"]
    assert source.lr_partner(x2) == tmp_path / "DIV2KRK/lr_x2/im_2.png"
    np.testing.assert_array_equal(source.load_pair(x2)[1], rgb(102, 12, 16))


def test_true_kernels_are_the_released_taps(tmp_path):
    div2krk(tmp_path, scales=(2, 4))
    source = get_source("div2krk")
    x4 = list_items("div2krk", tmp_path, "x4")[0]
    k4 = source.true_kernel(x4)
    assert k4.dtype == np.float64 and k4.shape == (31, 31)
    np.testing.assert_array_equal(k4, div2krk_kernel(31, 1))  # float64 saved and read back as is
    x2 = list_items("div2krk", tmp_path, "x2")[0]
    np.testing.assert_array_equal(source.true_kernel(x2), div2krk_kernel(11, 1))
    # A float32 copy is accepted (its sum is 1 within float32 rounding) and read as float64.
    path = tmp_path / "single.mat"
    scipy.io.savemat(path, {"Kernel": div2krk_kernel(11, 3).astype(np.float32)})
    np.testing.assert_allclose(load_kernel(path, 11), div2krk_kernel(11, 3), rtol=1e-6)


@pytest.mark.parametrize("folder,root_rel,rel_path", [
    ("DIV2KRK_public/DIV2KRK", "", "DIV2KRK_public/DIV2KRK/gt/img_1_gt.png"),
    ("DIV2KRK", "DIV2KRK", "gt/img_1_gt.png"),
])
def test_other_accepted_folders(tmp_path, folder, root_rel, rel_path):
    div2krk(tmp_path, folder=folder)
    items = list_items("div2krk", tmp_path / root_rel if root_rel else tmp_path)
    assert items[0].rel_path == rel_path


def test_missing_folders_and_files_are_named(tmp_path):
    with pytest.raises(MissingAssetError, match=r"missing folders gt/, lr_x4/ and gt_k_x4/ of "
                                                r"DIV2KRK: put it in .*/DIV2KRK; download it from "
                                                r"http://www.wisdom.weizmann.ac.il/~vision/"
                                                r"kernelgan/DIV2KRK_public.zip; looked for .*"
                                                r"DIV2KRK_public/DIV2KRK/gt.*; run `degrade "
                                                r"datasets download div2krk --root "):
        list_items("div2krk", tmp_path)
    div2krk(tmp_path, scales=(4,))
    with pytest.raises(MissingAssetError, match=r"missing folder\(s\) lr_x2/, gt_k_x2/ of DIV2KRK "
                                                r"\(beside gt/\): put it in .*/DIV2KRK; download"):
        list_items("div2krk", tmp_path, "x2")
    (tmp_path / "DIV2KRK/gt_k_x4/kernel_7.mat").unlink()
    with pytest.raises(MissingAssetError, match=r"missing 1 of 100 DIV2KRK x4 kernels \(found 99 "
                                                r"of 100; absent: kernel_7.mat\): put it in "
                                                r".*DIV2KRK/gt_k_x4"):
        list_items("div2krk", tmp_path)


def test_stray_files_are_refused(tmp_path):
    div2krk(tmp_path)
    (tmp_path / "DIV2KRK/lr_x4/im_101.png").touch()
    with pytest.raises(ConfigError, match=r"lr_x4: 1 files that are not DIV2KRK x4 LR images: "
                                          r"im_101.png"):
        list_items("div2krk", tmp_path)


@pytest.mark.parametrize("content,message", [
    ({"Kernel": div2krk_kernel(11, 1)}, r"Kernel has shape \(11, 11\); expected \(31, 31\)"),
    ({"Kernel": 2 * div2krk_kernel(31, 1)}, r"Kernel sums to 2, not 1"),
    ({"ker": div2krk_kernel(31, 1)}, r"no variable 'Kernel' \(the file holds \['ker'\]\)"),
    ({"Kernel": np.full((31, 31), np.nan)}, r"Kernel holds 961 non-finite taps"),
    ({"Kernel": np.ones((31, 31), np.int32)}, r"Kernel is of MATLAB class 'int32'"),
])
def test_a_bad_kernel_file_is_refused_with_its_name(tmp_path, content, message):
    div2krk(tmp_path)
    path = tmp_path / "DIV2KRK/gt_k_x4/kernel_1.mat"
    scipy.io.savemat(path, content)
    item = list_items("div2krk", tmp_path)[0]
    with pytest.raises(InputError, match=r"DIV2KRK/gt_k_x4/kernel_1.mat: " + message):
        get_source("div2krk").true_kernel(item)


def test_a_file_that_is_not_a_mat_file_is_refused(tmp_path):
    path = tmp_path / "kernel_1.mat"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(InputError, match=r"kernel_1.mat: not a MATLAB v5 .mat kernel file"):
        load_kernel(path, 11)
    path.write_bytes(bytes(2 << 20))
    with pytest.raises(InputError, match=r"kernel_1.mat: 2097152 bytes: a DIV2KRK kernel file "
                                         r"is under 10 KB"):
        load_kernel(path)
    even = tmp_path / "even.mat"
    scipy.io.savemat(even, {"Kernel": np.full((4, 4), 1 / 16)})
    with pytest.raises(InputError, match=r"shape \(4, 4\); expected \(K, K\) with K odd"):
        load_kernel(even)


def test_lr_of_the_wrong_size_is_refused_at_load(tmp_path):
    div2krk(tmp_path)
    write_png(tmp_path / "DIV2KRK/lr_x4/im_1.png", rgb(0, 12, 16))
    item = list_items("div2krk", tmp_path)[0]
    with pytest.raises(InputError, match="LR 16x12 is not HR 32x24 / 4"):
        pair_source("div2krk").load_pair(item)


def test_div2krk_is_real_pairs_and_refused_by_the_build():
    assert get_source("div2krk").real_pairs is True
    with pytest.raises(ConfigError, match="div2krk holds real LR/HR pairs: score them with "
                                          "ssr-eval; it is not a degrade build source"):
        require_build_source("div2krk")
