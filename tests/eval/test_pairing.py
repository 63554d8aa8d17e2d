"""eval.metrics.pairing: which files are paired, in which order, and what is refused (no CLI).

The shard-set cases (HR of a ``--gt`` set, LR of a ``--pred`` set) run through the CLI tests in
test_cli.py, which build a real shard set; here tiny folders are enough.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.metrics.pairing import check_sizes, list_images, match_inputs
from ssr_core.errors import ConfigError
from tests.eval.conftest import random_rgb
from tests.helpers import write_rgb


def _folders(tmp_path: Path, gt_names: list[str], pred_names: list[str]) -> tuple[Path, Path]:
    """gt/ and pred/ holding 6x5 images; the pixels of a stem are random_rgb(ord(stem[0]))."""
    for side, names in (("gt", gt_names), ("pred", pred_names)):
        for name in names:
            write_rgb(tmp_path / side / name, random_rgb(ord(name[0]), 6, 5))
    return tmp_path / "gt", tmp_path / "pred"


def test_stems_pair_across_suffixes_in_gt_order_and_decode_lazily(tmp_path: Path) -> None:
    gt, pred = _folders(tmp_path, ["b.png", "a.png"], ["a.bmp", "b.PNG"])
    (pred / "sub").mkdir()
    write_rgb(pred / "sub" / "c.png", random_rgb(1, 6, 5))  # subfolders are other runs
    write_rgb(pred / ".c.png", random_rgb(1, 6, 5))  # hidden files are not outputs
    (pred / "notes.txt").write_text("not an image")
    inputs = match_inputs(gt, pred)
    assert (inputs.count, inputs.scale, inputs.warning) == (2, None, None)
    assert inputs.describe == f"{pred} vs {gt}"
    pairs = list(inputs.pairs())
    assert [p.stem for p in pairs] == ["a", "b"]  # gt files sorted by name
    for p in pairs:
        np.testing.assert_array_equal(p.pred, random_rgb(ord(p.stem), 6, 5))
        np.testing.assert_array_equal(p.gt, random_rgb(ord(p.stem), 6, 5))
    assert pairs[1].pred_name == str(pred / "b.PNG") and pairs[1].gt_name == str(gt / "b.png")


def test_names_on_one_side_are_listed_unless_allowed(tmp_path: Path) -> None:
    gt, pred = _folders(tmp_path, ["a.png", "b.png", "c.png"], ["a.png", "b.png", "z.png"])
    with pytest.raises(ConfigError, match=r"1 in --gt .* only: c; 1 in --pred .* only: z "
                                          r"\(pass --allow-missing"):
        match_inputs(gt, pred)
    inputs = match_inputs(gt, pred, allow_missing=True)
    assert [p.stem for p in inputs.pairs()] == ["a", "b"] and inputs.count == 2
    assert inputs.warning == "scoring 2 common image(s); 1 only in --gt, 1 only in --pred"


def test_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    gt, pred = _folders(tmp_path, ["a.png"], ["b.png"])
    with pytest.raises(ConfigError, match="no image name is common"):
        match_inputs(gt, pred, allow_missing=True)
    write_rgb(pred / "b.jpg", random_rgb(0, 6, 5))
    with pytest.raises(ConfigError, match=r"ambiguous .* \(b\.jpg and b\.png\)"):
        list_images(pred)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no images in"):
        list_images(tmp_path / "empty")
    (tmp_path / "shards" / "manifest.json").parent.mkdir()
    (tmp_path / "shards" / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="is a shard set: that means its LR images"):
        match_inputs(gt, tmp_path / "shards")  # refused before the manifest is read


def test_sizes_are_checked_from_headers(tmp_path: Path) -> None:
    gt, pred = _folders(tmp_path, ["a.png", "b.png"], ["a.png"])
    write_rgb(pred / "b.png", random_rgb(2, 6, 7))
    with pytest.raises(ConfigError, match=rf"1 pair\(s\): {gt / 'b.png'} is 5x6 but "
                                          rf"{pred / 'b.png'} is 7x6$"):
        match_inputs(gt, pred)
    (pred / "b.png").write_bytes(b"not a png")  # unreadable: left to read_image when decoding
    check_sizes({"b": gt / "b.png"}, {"b": pred / "b.png"})


def test_a_folder_alone_is_rated_without_reference(tmp_path: Path) -> None:
    _, pred = _folders(tmp_path, [], ["x.png", "y.png"])
    inputs = match_inputs(None, pred)
    assert (inputs.describe, inputs.count, inputs.scale) == (str(pred), 2, None)
    pairs = list(inputs.pairs())
    assert [p.stem for p in pairs] == ["x", "y"] and all(p.gt is None for p in pairs)
