"""Tests for degrade.depth.cache: keys, precision, atomic writes, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest

from degrade.depth import cache as cache_mod
from degrade.depth.cache import DepthCache, DepthKey, default_cache_dir, quantize
from ssr_core.errors import ConfigError
from ssr_datasets.schema import nearness_to_u16

SHA = "ab" + "0" * 62
TAG = "Intel/dpt-hybrid-midas@" + "1" * 40 + "|relative inverse depth, percentiles 2/98 -> [0, 1], clipped"


def _near(h: int = 12, w: int = 17, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)).astype(np.float32)


def test_round_trip_is_the_shard_uint16_grid(tmp_path: Path) -> None:
    cache = DepthCache(tmp_path)
    near = _near()
    path = cache.put(DepthKey(SHA, TAG), near)
    stored = np.load(path)
    assert stored.dtype == np.uint16 and stored.shape == near.shape
    np.testing.assert_array_equal(stored, nearness_to_u16(near))  # what depth.png holds
    got = cache.get(DepthKey(SHA, TAG))
    assert got is not None and got.dtype == np.float32
    np.testing.assert_array_equal(got, quantize(near))
    assert np.abs(got - near).max() <= 0.5 / 65535 + 1e-7  # half a uint16 step
    np.testing.assert_array_equal(nearness_to_u16(got), stored)  # re-quantizing is lossless


def test_layout_and_keying(tmp_path: Path) -> None:
    cache = DepthCache(tmp_path)
    path = cache.put(DepthKey(SHA, TAG), _near())
    assert path.relative_to(tmp_path).parts[1:] == ("ab", f"{SHA}.npy")
    assert path.parent.parent.name.startswith("Intel--dpt-hybrid-midas-")
    assert (path.parent.parent / "model.txt").read_text().strip() == TAG
    assert cache.get(DepthKey(SHA, TAG.replace("2/98", "1/99"))) is None  # other normalization
    assert cache.get(DepthKey(SHA, TAG.replace("@1", "@2"))) is None  # other revision
    assert cache.get(DepthKey("cd" + "0" * 62, TAG)) is None  # other image


def test_key_and_value_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="64 lower-case hex"):
        DepthKey("ABC", TAG)
    with pytest.raises(ConfigError, match="non-empty"):
        DepthKey(SHA, "")
    with pytest.raises(ConfigError, match=r"finite \(H, W\) array"):
        DepthCache(tmp_path).put(DepthKey(SHA, TAG), np.full((2, 2), np.nan))


def test_corrupt_file_is_a_miss_and_gets_replaced(tmp_path: Path) -> None:
    cache = DepthCache(tmp_path)
    key = DepthKey(SHA, TAG)
    cache.path(key).parent.mkdir(parents=True)
    cache.path(key).write_bytes(b"\x93NUMPY garbage")
    assert cache.get(key) is None
    cache.put(key, _near())
    assert cache.get(key) is not None


def test_failed_write_leaves_neither_file_nor_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = DepthCache(tmp_path)
    key = DepthKey(SHA, TAG)

    def broken_save(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.put(key, _near())
    assert not cache.path(key).exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def _writer(folder: str, seed: int, rounds: int) -> None:
    cache = DepthCache(folder)
    for _ in range(rounds):
        cache.put(DepthKey(SHA, TAG), _near(64, 64, seed=0))


def test_concurrent_writers_of_one_key(tmp_path: Path) -> None:
    # Same key from several processes (workers that met the same image): readers see either no
    # file or a complete one, never a torn write, and no temp file survives.
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), i, 25)) for i in range(3)]
    for p in procs:
        p.start()
    cache, expected = DepthCache(tmp_path), quantize(_near(64, 64, seed=0))
    seen = 0
    while any(p.is_alive() for p in procs):
        got = cache.get(DepthKey(SHA, TAG))
        if got is not None:
            np.testing.assert_array_equal(got, expected)
            seen += 1
    for p in procs:
        p.join()
        assert p.exitcode == 0
    np.testing.assert_array_equal(cache.get(DepthKey(SHA, TAG)), expected)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_default_folder_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSR_BENCH_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "depth"
    assert DepthCache().folder == tmp_path / "c" / "depth"
    monkeypatch.delenv("SSR_BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "ssr-bench" / "depth"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "ssr-bench" / "depth"
