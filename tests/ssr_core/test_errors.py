"""The project's error types: one root, each kind's message naming what to do."""

from __future__ import annotations

import pytest

from ssr_core.errors import (
    ConfigError,
    DownloadError,
    InputError,
    MissingAssetError,
    NothingBuiltError,
    ShardsFailedError,
    SsrError,
)


def test_one_root_and_config_errors_are_value_errors() -> None:
    for kind in (ConfigError, InputError, MissingAssetError, DownloadError, ShardsFailedError,
                 NothingBuiltError):
        assert issubclass(kind, SsrError)
    assert issubclass(ConfigError, ValueError)  # callers that catch ValueError keep working


def test_input_error_carries_path_and_reason() -> None:
    exc = InputError("/data/a.png", "not an image")
    assert (exc.path, exc.reason, str(exc)) == ("/data/a.png", "not an image", "/data/a.png: not an image")


@pytest.mark.parametrize("kwargs, text", [
    ({}, "missing w.pth: put it in /w"),
    ({"url": "https://x/w.pth", "sha256": "ab12", "hint": "or pass --allow-download"},
     "missing w.pth: put it in /w; download it from https://x/w.pth; sha256 ab12; "
     "or pass --allow-download"),
])
def test_missing_asset_names_file_folder_url_and_checksum(kwargs: dict, text: str) -> None:
    exc = MissingAssetError("w.pth", "/w", **kwargs)
    assert str(exc) == text and exc.folder == "/w" and exc.file == "w.pth"


def test_nothing_built_lists_twenty_reasons_then_counts() -> None:
    skipped = [{"path": f"img{i:02d}.png", "reason": "too small"} for i in range(23)]
    lines = str(NothingBuiltError("out/skipped.json", skipped)).splitlines()
    assert lines[0] == ("no sample was built: all 23 input(s) were skipped (reasons also in "
                        "out/skipped.json):")
    assert lines[1:3] == ["  img00.png: too small", "  img01.png: too small"]
    assert len(lines) == 1 + 20 + 1 and lines[-1] == "  ... and 3 more"


def test_shards_failed_lists_each_shard_sorted() -> None:
    exc = ShardsFailedError("out", {"train-000001.tar": "disk full", "train-000000.tar": "killed"})
    assert str(exc).splitlines()[1:] == ["  train-000000.tar: killed", "  train-000001.tar: disk full"]
    assert str(exc).startswith("2 shard(s) failed (after a retry); the finished shards in out")
