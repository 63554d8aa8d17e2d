"""Issue 10, finding 8 (inputs): a tiny file whose header declares a huge image is skipped by a
build before it is decoded, with the reason recorded in the manifest."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

import degrade.cli as cli
from ssr_core.errors import InputError
from ssr_datasets.formats import DEFAULT_MAX_PIXELS
from ssr_datasets.imageio import check_pixel_count
from tests.helpers import write_folder


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(path: Path, width: int, height: int) -> Path:
    """Write a valid all-black 1-bit grayscale PNG: a few kB on disk for any size."""
    row = b"\0" * (1 + (width + 7) // 8)  # filter byte 0, then packed bits
    idat = zlib.compressobj(9)
    data = b"".join(idat.compress(row) for _ in range(height)) + idat.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n"
                     + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + _chunk(b"IDAT", data) + _chunk(b"IEND", b""))
    return path


def test_default_cap_passes_the_supported_sets_and_refuses_a_bomb(tmp_path: Path) -> None:
    for width, height in ((2040, 2040), (3000, 2000), (2048, 1024)):  # DIV2K, Middlebury, Cityscapes
        assert width * height <= DEFAULT_MAX_PIXELS
    png = tmp_path / "b.png"
    bilevel_png(png, 48, 64)
    check_pixel_count(png, 48 * 64)  # at the limit: fine
    with pytest.raises(InputError, match=r"48x64 = 3072 pixels, over --max-pixels 3071"):
        check_pixel_count(png, 48 * 64 - 1)
    # Over twice Pillow's own bomb limit, Pillow refuses to open it at all: still our error.
    data = bytearray(png.read_bytes())
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    png.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"too many pixels .*limit is --max-pixels 16000000"):
        check_pixel_count(png)
    check_pixel_count(tmp_path / "not-an-image.mat")  # a missing/other file: the decoder's job


def test_build_skips_a_huge_header_before_decoding_it(tmp_path: Path) -> None:
    root = tmp_path / "images"
    write_folder(root, names=("a",))
    bomb = bilevel_png(root / "bomb.png", 9000, 9000)  # 81 MP, under Pillow's bomb limit
    assert bomb.stat().st_size < 30_000
    out = tmp_path / "out"
    res = CliRunner().invoke(cli.main, ["build", "--source", "folder", "--root", str(root),
                                        "--no-preview", "--out", str(out)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["max_pixels"] == DEFAULT_MAX_PIXELS
    assert manifest["totals"]["samples"] == 1
    assert [(s["image_id"], s["reason"]) for s in manifest["skipped"]] == [
        ("bomb", "9000x9000 = 81000000 pixels, over --max-pixels 16000000; raise --max-pixels "
                 "to use it")]
    # The limit is the user's: the 64x48 input is exactly at --max-pixels 3072 and kept.
    out2 = tmp_path / "out2"
    res = CliRunner().invoke(cli.main, ["build", "--source", "folder", "--root", str(root),
                                        "--no-preview", "--max-pixels", "3072", "--out", str(out2)])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out2 / "manifest.json").read_text())
    assert manifest["config"]["max_pixels"] == 3072 and manifest["totals"]["samples"] == 1
    assert [s["reason"] for s in manifest["skipped"]] == [
        "9000x9000 = 81000000 pixels, over --max-pixels 3072; raise --max-pixels to use it"]
