"""The released DIV2KRK set as a table's real-pair test set (the div2krk source, read in place)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from eval.metrics.cache import ScoreCache
from eval.tables.runner import RunOptions, run_table
from eval.tables.spec import table_from_dict
from eval.tables.testsets import Roots
from ssr_core.errors import ConfigError
from ssr_datasets.imageio import read_image
from tests.datasets.layouts import div2krk
from tests.reference import bicubic_up_matlab_u8, psnr_y_direct


def spec(split: str = "x4", scale: int = 4) -> dict:
    return {"name": "krk", "title": "DIV2KRK", "paper": "test", "scale": scale,
            "metrics": ["psnr"], "group_title": "Datasets",
            "groups": [{"id": "krk", "label": "DIV2KRK", "source": "div2krk", "split": split}],
            "rows": [{"id": "bicubic", "label": "Bicubic", "builtin": "bicubic"}]}


def test_bicubic_on_released_pairs_equals_direct_computation(tmp_path: Path) -> None:
    # ids sort as strings (im_1, im_10, im_100, ...): the first two are the decodable ones
    div2krk(tmp_path / "data", scales=(4,), real=(1, 10))
    with ScoreCache(tmp_path / "cache") as cache:
        options = RunOptions(roots=Roots(None, {"krk": tmp_path / "data"}),
                             work_dir=tmp_path / "work", cache=cache, max_images=2)
        result = run_table(table_from_dict(spec()), options)
    (group,) = result.groups
    assert group.status == "ok" and group.testset["kind"] == "real-pairs"
    assert group.testset["source"] == "div2krk" and group.testset["count"] == 2
    base = tmp_path / "data" / "DIV2KRK"
    want = np.mean([psnr_y_direct(read_image(base / "gt" / f"img_{n}_gt.png").rgb,
                                  bicubic_up_matlab_u8(read_image(base / "lr_x4" / f"im_{n}.png").rgb),
                                  4)
                    for n in (1, 10)])
    (row,) = group.rows
    assert row.n_images == 2 and row.cells["psnr"].ours == pytest.approx(want, abs=1e-9)


def test_a_split_of_another_scale_is_refused() -> None:
    with pytest.raises(ConfigError, match="group krk: split x2 of div2krk holds x2 pairs but "
                                          "table krk is x4"):
        table_from_dict(spec(split="x2"))
    table_from_dict(spec(split="x2", scale=2))
