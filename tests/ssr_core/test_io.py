"""ssr_core.io: the one temp-then-rename (fsynced), the JSON writer and sha256_file."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

import ssr_core.io as io
from ssr_core.io import atomic_file, dump_json, sha256_file, write_bytes_atomic, write_json_atomic


def test_atomic_file_replaces_whole_with_mode_0644_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_file(target) as f:
        f.write(b"new bytes")
        # until the block ends, readers see the old file; the bytes sit in a hidden temp
        assert target.read_bytes() == b"old"
        [temp] = [p for p in tmp_path.iterdir() if p.name != "out.bin"]
        assert temp.name.startswith(f".out.bin.{io.writer_tag()}.") and temp.name.endswith(".tmp")
    assert target.read_bytes() == b"new bytes"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_failure_inside_the_block_leaves_the_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_file(target) as f:
        f.write(b"half")
        raise RuntimeError("boom")
    with pytest.raises(ValueError, match="Out of range float values"):
        write_json_atomic(target, {"psnr": float("nan")})  # strict JSON: the write never starts
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_atomic_json_and_bytes(tmp_path):
    path = tmp_path / "m.json"
    write_json_atomic(path, {"b": 1, "a": [1, 2]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    write_bytes_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    with pytest.raises(ValueError):
        write_json_atomic(path, {"x": float("nan")})
    assert path.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_file_and_folder_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(io.os, "fsync", spy)
    write_bytes_atomic(tmp_path / "a.bin", b"x")
    # the file before the rename (its bytes), the folder after it (the rename itself)
    assert synced == ["file", "dir"]


def test_json_writer_format(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "m.json", {"b": [1, 2], "a": "é"})
    assert (tmp_path / "m.json").read_bytes() == dump_json({"a": "é", "b": [1, 2]})
    want = '{\n  "a": "\\u00e9",\n  "b": [\n    1,\n    2\n  ]\n}\n'  # indent 2, sorted, ASCII
    assert (tmp_path / "m.json").read_text("utf-8") == want


def test_sha256_file_matches_hashlib_across_blocks(tmp_path: Path) -> None:
    data = os.urandom((1 << 20) + 12345)  # more than one 1 MiB read
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(str(tmp_path / "empty")) == \
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256 of b""
    with pytest.raises(FileNotFoundError):
        sha256_file(tmp_path / "missing")


def test_link_atomic_links_or_copies_and_leaves_no_temp(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = tmp_path / "ckpt-0000002.pt", tmp_path / "last.pt"
    src.write_bytes(b"step 2")
    dst.write_bytes(b"step 1")
    io.link_atomic(src, dst)
    assert dst.read_bytes() == b"step 2" and os.path.samefile(src, dst)  # a hard link, no copy

    def no_links(a: object, b: object) -> None:
        raise OSError("links not supported here")

    monkeypatch.setattr(io.os, "link", no_links)
    other = tmp_path / "ckpt-0000003.pt"
    other.write_bytes(b"step 3" * 300_000)  # > 1 MiB: the copy goes block by block
    io.link_atomic(other, dst)
    assert dst.read_bytes() == other.read_bytes() and not os.path.samefile(other, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-0000002.pt", "ckpt-0000003.pt",
                                                          "last.pt"]
