"""Tests for the nyuv2 source: the v7.3 .mat layout (transposed), splits.mat, depth filling."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest
import scipy.io
from layouts import nyu_mat

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_datasets.sources import list_items, load_item


@pytest.fixture(scope="module")
def nyu(tmp_path_factory):
    root = tmp_path_factory.mktemp("nyu")
    images, depths = nyu_mat(root / "nyu_depth_v2_labeled.mat")
    return root, images, depths


def _official_like_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(1449) + 1
    return np.sort(order[:795]), np.sort(order[795:])


def test_all_split_lists_1449_ids_and_loads_transposed(nyu):
    root, images, depths = nyu
    items = list_items("nyuv2", root)  # default split: all
    assert len(items) == 1449
    assert (items[0].image_id, items[-1].image_id) == ("nyu_0001", "nyu_1449")
    assert items[0].rel_path == "nyu_depth_v2_labeled.mat#0001"
    assert pickle.loads(pickle.dumps(items)) == items
    loaded = load_item(items[2])
    # h5py reads MATLAB's (480, 640, 3) image as (3, 640, 480): undo with a full transpose.
    assert loaded.rgb.shape == (6, 8, 3) and loaded.rgb.dtype == np.uint8
    np.testing.assert_array_equal(loaded.rgb, np.transpose(images[2], (2, 1, 0)))
    np.testing.assert_array_equal(loaded.depth_m, depths[2].T)
    assert loaded.depth_m.dtype == np.float32
    assert loaded.rgb[1, 5, 2] == images[2, 2, 5, 1]  # row 1, column 5, blue


def test_zero_depth_is_filled_and_recorded(nyu):
    root, _, depths = nyu
    loaded = load_item(list_items("nyuv2", root)[0])
    assert depths[0, 0, 0] == 0.0
    assert loaded.depth_m[0, 0] > 0
    assert loaded.conversions[-1] == "depth: filled 1 unknown pixels (nearest valid)"


def test_train_test_need_splits_mat(nyu):
    root, _, _ = nyu
    with pytest.raises(MissingAssetError) as info:
        list_items("nyuv2", root, split="test")
    msg = str(info.value)
    assert msg.startswith(f"missing splits.mat: put it in {root}; download it from "
                          "http://horatio.cs.nyu.edu/mit/silberman/indoor_seg_sup/splits.mat")
    assert "split 'all' works without it" in msg
    with pytest.raises(ConfigError, match="choose one of: all, train, test"):
        list_items("nyuv2", root, split="val")


@pytest.mark.parametrize("version", ["v5", "v7.3"])
def test_splits_mat_in_both_matlab_versions(tmp_path, nyu, version):
    root, images, _ = nyu
    (tmp_path / "nyu_depth_v2_labeled.mat").symlink_to(root / "nyu_depth_v2_labeled.mat")
    train, test = _official_like_split()
    if version == "v5":
        scipy.io.savemat(tmp_path / "splits.mat",
                         {"trainNdxs": train[:, None].astype(np.float64),
                          "testNdxs": test[:, None].astype(np.float64)})
    else:  # MATLAB v7.3 stores the (795, 1) column transposed: (1, 795)
        with h5py.File(tmp_path / "splits.mat", "w") as f:
            f.create_dataset("trainNdxs", data=train[None, :].astype(np.float64))
            f.create_dataset("testNdxs", data=test[None, :].astype(np.float64))
    items = list_items("nyuv2", tmp_path, split="test")
    assert [it.image_id for it in items] == [f"nyu_{i:04d}" for i in test]
    assert len(list_items("nyuv2", tmp_path, split="train")) == 795
    loaded = load_item(items[0])
    np.testing.assert_array_equal(loaded.rgb, np.transpose(images[test[0] - 1], (2, 1, 0)))


def test_bad_splits_and_bad_mat_are_named(tmp_path):
    images, _ = nyu_mat(tmp_path / "NYUv2" / "nyu_depth_v2_labeled.mat", n=3)
    with pytest.raises(InputError, match="expected the 1449 images of the labeled NYU Depth V2 "
                                         "set, found 3"):
        list_items("nyuv2", tmp_path)
    (tmp_path / "nyu_depth_v2_labeled.mat").write_bytes(b"MATLAB 5.0 MAT-file")
    with pytest.raises(InputError, match="not an HDF5 \\(MATLAB v7.3\\) file"):
        list_items("nyuv2", tmp_path)


def test_wrong_split_sizes_are_refused(tmp_path, nyu):
    root, _, _ = nyu
    (tmp_path / "nyu_depth_v2_labeled.mat").symlink_to(root / "nyu_depth_v2_labeled.mat")
    train, test = _official_like_split()
    scipy.io.savemat(tmp_path / "splits.mat", {"trainNdxs": train[:-1], "testNdxs": test})
    with pytest.raises(InputError, match="trainNdxs must hold 795 integer indices, got 794"):
        list_items("nyuv2", tmp_path, split="train")


def test_missing_mat_names_the_file_and_url(tmp_path):
    with pytest.raises(MissingAssetError, match=r"missing nyu_depth_v2_labeled.mat: put it in .*; "
                                                r"download it from http://horatio.cs.nyu.edu/.*"
                                                r"degrade datasets download nyuv2"):
        list_items("nyuv2", tmp_path)
