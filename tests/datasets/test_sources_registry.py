"""Registry-wide contract tests: every source is registered, splits are checked, items load."""

from __future__ import annotations

import numpy as np
import pytest
from layouts import (
    bench_set,
    cityscapes,
    div2k_valid,
    div2krk,
    drealsr,
    flickr2k,
    middlebury,
    nyu_mat,
    urban100,
)

from ssr_core.errors import ConfigError
from ssr_datasets.sources import (
    SOURCE_NAMES,
    SOURCES,
    get_source,
    list_items,
    load_item,
    require_build_source,
    splits_of,
)
from ssr_datasets.sources.middlebury import SCENES

#: name -> (build a miniature layout under root, split to list, whether items carry depth).
LAYOUTS = {
    "div2k": (div2k_valid, "valid", False),
    "flickr2k": (flickr2k, None, False),
    "set5": (lambda r: bench_set(r, "set5", "Set5", 5), None, False),
    "set14": (lambda r: bench_set(r, "set14", "Set14", 14, "HR"), None, False),
    "bsds100": (lambda r: bench_set(r, "bsd100", "B100", 100), None, False),
    "urban100": (urban100, None, False),
    "drealsr": (drealsr, "x4", False),
    "div2krk": (div2krk, "x4", False),
    "nyuv2": (lambda r: nyu_mat(r / "nyu_depth_v2_labeled.mat", w=4, h=3), "all", True),
    "cityscapes": (lambda r: cityscapes(r, "val", 500), "val", True),
    "middlebury": (lambda r: middlebury(r, SCENES), "perfect", True),
}


def test_every_source_is_registered_once():
    assert SOURCE_NAMES == ("sample", "folder", *LAYOUTS)
    assert SOURCES.names() == SOURCE_NAMES
    for name in SOURCE_NAMES:
        assert get_source(name).name == name


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_every_public_source_lists_and_loads_its_miniature(tmp_path, name):
    build, split, has_depth = LAYOUTS[name]
    build(tmp_path)
    items = list_items(name, tmp_path, split)
    assert items and items == sorted(items, key=lambda it: it.image_id)
    assert all(it.source == name and it.rel_path and not it.rel_path.startswith("/")
               for it in items)
    loaded = load_item(items[0])
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.ndim == 3 and loaded.rgb.shape[2] == 3
    if has_depth:
        assert loaded.depth_m.dtype == np.float32
        assert loaded.depth_m.shape == loaded.rgb.shape[:2]
        assert np.isfinite(loaded.depth_m).all() and (loaded.depth_m > 0).all()
    else:
        assert loaded.depth_m is None


@pytest.mark.parametrize("name", ["sample", "folder", "set5", "flickr2k"])
def test_sources_without_splits_refuse_one(tmp_path, name):
    assert splits_of(name) == ()
    with pytest.raises(ConfigError, match=f"source '{name}' has no splits; got split='train'"):
        list_items(name, tmp_path, split="train")


def test_splits_default_first():
    assert splits_of("div2k") == ("train", "valid")
    assert splits_of("nyuv2")[0] == "all" and splits_of("cityscapes")[0] == "train"


def test_only_the_real_pair_sources_are_refused_as_build_sources():
    for name in SOURCE_NAMES:
        if name not in ("drealsr", "div2krk"):
            require_build_source(name)
            assert getattr(get_source(name), "real_pairs", False) is False
