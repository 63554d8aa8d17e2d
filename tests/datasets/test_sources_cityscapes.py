"""Tests for the cityscapes source: layout, counts, and depth from disparity and camera."""

from __future__ import annotations

import json

import numpy as np
import pytest
from layouts import cityscapes, cityscapes_camera, rgb

from ssr_core.errors import ConfigError, InputError, MissingAssetError
from ssr_datasets.sources import list_items, load_item


@pytest.fixture(scope="module")
def val_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    ids = cityscapes(root, "val", 500, real=2)
    return root, ids


def test_val_lists_500_images_over_cities(val_root):
    root, ids = val_root
    items = list_items("cityscapes", root, split="val")
    assert [it.image_id for it in items] == ids and len(items) == 500
    first = items[0]
    assert first.image_id == "aachen_000000_000019"
    assert first.rel_path == "leftImg8bit/val/aachen/aachen_000000_000019_leftImg8bit.png"
    assert first.depth_path == str(root / "disparity/val/aachen/aachen_000000_000019_disparity.png")


def test_depth_is_baseline_fx_over_disparity_with_p0_invalid(val_root):
    root, _ = val_root
    item = list_items("cityscapes", root, split="val")[0]
    loaded = load_item(item)
    np.testing.assert_array_equal(loaded.rgb, rgb(0))
    p = np.random.default_rng(0).integers(0, 20000, (24, 32), dtype=np.uint16)  # as written
    p[0, 0] = 0
    cam = cityscapes_camera()
    disparity = (p.astype(np.float64) - 1.0) / 256.0
    valid = (p > 0) & (disparity > 0)
    expected = cam["extrinsic"]["baseline"] * cam["intrinsic"]["fx"] / disparity[valid]
    np.testing.assert_allclose(loaded.depth_m[valid], expected, rtol=1e-6)
    assert np.isfinite(loaded.depth_m).all() and (loaded.depth_m > 0).all()
    n_invalid = int((~valid).sum())
    assert n_invalid >= 1
    assert loaded.conversions[-1] == f"depth: filled {n_invalid} unknown pixels (nearest valid)"
    assert loaded.conversions[0].startswith("depth: from Cityscapes disparity (d = (p - 1) / 256")


def test_missing_disparity_or_camera_fails_at_load_naming_the_file(tmp_path):
    cityscapes(tmp_path, "val", 500, real=1)
    item = list_items("cityscapes", tmp_path, split="val")[0]
    camera = tmp_path / "camera/val/aachen/aachen_000000_000019_camera.json"
    camera.write_text(json.dumps({"extrinsic": {}, "intrinsic": {"fx": 2000}}))
    with pytest.raises(InputError, match="cannot read extrinsic.baseline and intrinsic.fx"):
        load_item(item)
    camera.unlink()
    with pytest.raises(InputError, match=f"{camera}: missing camera file"):
        load_item(item)
    disparity = tmp_path / "disparity/val/aachen/aachen_000000_000019_disparity.png"
    disparity.unlink()
    with pytest.raises(InputError, match=f"{disparity}: missing disparity file"):
        load_item(item)


def test_split_counts_and_choices(tmp_path):
    cityscapes(tmp_path, "val", 499, real=0)
    with pytest.raises(MissingAssetError, match=r"missing 1 of 500 Cityscapes val images .* "
                                                r"\(found 499 of 500\): put it in .*leftImg8bit/val"):
        list_items("cityscapes", tmp_path, split="val")
    with pytest.raises(MissingAssetError, match=r"missing folder leftImg8bit/train/<city>/ with "
                                                r"2975 images.*login required"):
        list_items("cityscapes", tmp_path)  # default split: train
    with pytest.raises(ConfigError, match="choose one of: train, val, test, train_extra"):
        list_items("cityscapes", tmp_path, split="valid")
