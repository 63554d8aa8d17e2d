"""Tests for degrade.preview: sheet layout, determinism, atomic write, orientation ticks."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from degrade.preview import PreviewRow, describe_sample, render_preview, with_colour_bar, write_preview
from ssr_core.errors import ConfigError


def _row(key: str, h: int, w: int, s: int, s1: float, s2: float, theta: float) -> PreviewRow:
    rng = np.random.default_rng(h * 1000 + w)
    hr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    nearness = np.tile(np.linspace(0, 1, h, dtype=np.float32)[:, None], (1, w))
    kernel = np.stack([np.full((h // s, w // s), v, dtype=np.float32) for v in (s1, s2, theta)])
    lr = np.ascontiguousarray(hr[::s, ::s])
    return PreviewRow(key, hr, nearness, kernel, lr)


def _blur_cell(sheet: np.ndarray, tile: int, top: int, height: int) -> np.ndarray:
    pad = max(4, tile // 32)
    x0 = pad + 2 * (tile + pad)
    return sheet[top : top + height, x0 : x0 + tile]


def _white(cell: np.ndarray) -> np.ndarray:
    return np.all(cell > 200, axis=2)


def test_shape_for_n_rows() -> None:
    rows = [_row("a", 64, 64, 4, 2.0, 1.0, 0.0), _row("b", 48, 96, 4, 1.0, 1.0, 0.0)]
    one = render_preview(rows[:1], tile=128)
    two = render_preview(rows, tile=128)
    pad = 4
    assert one.dtype == np.uint8 and one.ndim == 3 and one.shape[2] == 3
    assert one.shape[1] == two.shape[1] == 4 * 128 + 5 * pad
    three = render_preview([rows[0]] * 3, tile=128)
    row_h = (three.shape[0] - one.shape[0]) // 2
    assert three.shape[0] == one.shape[0] + 2 * row_h
    # the second (2:1) photograph is fitted into 128 x 64, so its row is 64 px shorter
    assert two.shape[0] - one.shape[0] == row_h - 64


def test_deterministic_bytes(tmp_path: Path) -> None:
    rows = [_row("k-000", 32, 40, 4, 3.0, 1.0, 0.5)]
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_preview(rows, a, tile=96)
    write_preview(rows, b, tile=96)
    assert a.read_bytes() == b.read_bytes()
    assert np.array_equal(render_preview(rows, 96), render_preview(rows, 96))


def test_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    rows = [_row("k", 32, 32, 4, 2.0, 1.0, 0.0)]
    out = tmp_path / "preview.png"
    out.write_bytes(b"old")
    write_preview(rows, out, tile=64)
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]
    decoded = cv2.imread(str(out))[..., ::-1]
    assert np.array_equal(decoded, render_preview(rows, 64))


def test_failed_write_keeps_old_file_and_no_temp(tmp_path: Path) -> None:
    out = tmp_path / "preview.png"
    out.write_bytes(b"old")
    bad = _row("bad", 32, 32, 4, 2.0, 1.0, 0.0)
    bad = PreviewRow(bad.key, bad.hr, bad.nearness[:-1], bad.kernel_field, bad.lr)
    with pytest.raises(ConfigError, match=r"nearness must be \(32, 32\), got \(31, 32\)"):
        write_preview([bad], out, tile=64)
    assert out.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


@pytest.mark.parametrize(
    "s1,s2,theta,expect",
    [
        (3.0, 1.0, 0.0, "horizontal"),  # s1 is the major axis, along +x
        (1.0, 3.0, 0.0, "vertical"),  # s2 is the major axis, theta + pi/2
        (3.0, 1.0, math.pi / 2, "vertical"),
    ],
)
def test_orientation_ticks(s1: float, s2: float, theta: float, expect: str) -> None:
    tile = 128
    sheet = render_preview([_row("t", 64, 64, 4, s1, s2, theta)], tile=tile)
    top = sheet.shape[0] - 4 - tile  # the single row's cells end one pad above the bottom
    ticks = _white(_blur_cell(sheet, tile, top, tile))
    assert ticks.any()
    per_row, per_col = ticks.sum(axis=1).max(), ticks.sum(axis=0).max()
    # a horizontal tick puts many white pixels in one row and at most a couple in each column
    if expect == "horizontal":
        assert per_row > 3 * per_col
    else:
        assert per_col > 3 * per_row


def test_isotropic_field_has_no_ticks() -> None:
    tile = 128
    sheet = render_preview([_row("iso", 64, 64, 4, 2.0, 2.0, 1.0)], tile=tile)
    top = sheet.shape[0] - 4 - tile
    assert not _white(_blur_cell(sheet, tile, top, tile)).any()


def test_tiny_sample() -> None:
    sheet = render_preview([_row("tiny", 24, 24, 4, 3.0, 1.0, 0.0)], tile=256)
    assert sheet.shape[1] == 4 * 256 + 5 * 8
    lr_cell = sheet[-8 - 256 : -8, 8 + 3 * (256 + 8) : 8 + 4 * 264 - 8]
    assert len(np.unique(lr_cell.reshape(-1, 3), axis=0)) <= 36  # 6x6 LR pixels, enlarged


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"tile": 8}, "tile must be an int >= 32"),
        ({"rows": []}, "at least one row"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"rows": [_row("k", 32, 32, 4, 2.0, 1.0, 0.0)], "tile": 64, **kwargs}
    with pytest.raises(ConfigError, match=match):
        render_preview(args["rows"], tile=args["tile"])


def test_mismatched_shapes() -> None:
    row = _row("k", 32, 32, 4, 2.0, 1.0, 0.0)
    with pytest.raises(ConfigError, match="integer multiple s of LR"):
        render_preview([PreviewRow("k", row.hr, row.nearness, row.kernel_field, row.lr[:, :7])])
    with pytest.raises(ConfigError, match=r"kernel must be \(3, 8, 8\)"):
        render_preview([PreviewRow("k", row.hr, row.nearness, row.kernel_field[:2], row.lr)])
    with pytest.raises(ConfigError, match=r"hr must be \(H, W, 3\) uint8"):
        render_preview(
            [PreviewRow("k", row.hr.astype(np.float32), row.nearness, row.kernel_field, row.lr)]
        )


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must end in one of"):
        write_preview([_row("k", 32, 32, 4, 2.0, 1.0, 0.0)], tmp_path / "p.bmp")


def test_caption_names_depth_focus_noise_and_jpeg() -> None:
    meta = {"depth": {"provider": "midas", "model": "Intel/dpt-hybrid-midas"},
            "blur": {"model": "random"}, "noise": None, "jpeg": {"quality": 70, "codec": "opencv"}}
    assert describe_sample(meta) == "depth midas (Intel/dpt-hybrid-midas) | no noise | JPEG q70"
    row = _row("k-000", 64, 64, 4, 2.0, 1.0, 0.0)
    captioned = PreviewRow(*[getattr(row, f) for f in ("key", "hr", "nearness", "kernel_field", "lr")],
                           caption=describe_sample(meta))
    plain, with_caption = render_preview([row], 128), render_preview([captioned], 128)
    assert plain.shape == with_caption.shape
    rows = np.nonzero(np.any(plain != with_caption, axis=(1, 2)))[0]
    assert rows.size and rows.max() < plain.shape[0] - 128 - 4  # the key line, not the images


def test_doctests_of_the_preview_module() -> None:
    import doctest

    import degrade.preview

    assert doctest.testmod(degrade.preview).failed == 0


def test_with_colour_bar_keeps_the_map_and_adds_the_whole_colour_map_below() -> None:
    heat = np.random.default_rng(0).integers(0, 256, (20, 300, 3), dtype=np.uint8)
    sheet = with_colour_bar(heat, cv2.COLORMAP_VIRIDIS, ("0 far", "1 near"), "nearness")
    assert sheet.shape[1] == 300 and sheet.shape[0] > 20 and np.array_equal(sheet[:20], heat)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[None], cv2.COLORMAP_VIRIDIS)[0, :, ::-1]
    strip = {tuple(c) for c in sheet[20:].reshape(-1, 3).tolist()}
    assert {tuple(lut[0].tolist()), tuple(lut[255].tolist())} <= strip
    narrow = with_colour_bar(heat[:, :40], cv2.COLORMAP_VIRIDIS, ("0", "1"), "n")
    assert narrow.shape[1] == 256 and np.array_equal(narrow[:20, :40], heat[:, :40])
    with pytest.raises(ConfigError, match=r"uint8 \(H, W, 3\)"):
        with_colour_bar(heat[..., 0], cv2.COLORMAP_VIRIDIS, ("0", "1"), "n")
