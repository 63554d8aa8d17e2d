"""ssr_datasets.storage and everything that writes or reads through it with an fsspec URL.

``memory://`` stands in for an object store: it goes through exactly the fsspec calls that
``s3://`` or ``gs://`` would (put, move, ls, open), in this process. Each test uses its own
bucket name because the memory filesystem is one dict per process.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import numpy as np
import pytest
from click.testing import CliRunner

import degrade.cli as cli
from degrade.build import PARTIAL_NAME, build
from ssr_core.errors import ConfigError, InputError
from ssr_core.io import dump_json
from ssr_datasets.manifest import MANIFEST_NAME, describe, read_manifest, verify_shard_set
from ssr_datasets.reader import open_shards, shard_urls
from ssr_datasets.shards import iter_shard, write_shard
from ssr_datasets.storage import Storage, is_remote, local_path
from tests.helpers import make_config, samples_by_key, shard_bytes, write_folder


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh ``memory://`` folder, removed afterwards."""
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    yield f"memory://{bucket}/out"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{bucket}"):
        fs.rm(f"/{bucket}", recursive=True)


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, memory_url: str) -> Storage:
    """The same folder API on a local directory and on an fsspec URL."""
    s = Storage(tmp_path / "out" if request.param == "local" else memory_url)
    s.makedirs()
    return s


def _memory_files(url: str) -> dict[str, bytes]:
    storage = Storage(url)
    return {name: storage.read_bytes(name) for name in storage.listdir()}


# ---------------------------------------------------------------- locations


def test_locations_split_into_local_paths_and_urls(tmp_path: Path) -> None:
    assert is_remote("s3://bucket/set") and is_remote("memory://b/x") and is_remote("gs://b")
    assert not is_remote(str(tmp_path)) and not is_remote("out/run") and not is_remote("pipe:cat x")
    assert not is_remote(f"file://{tmp_path}")
    assert local_path(f"file://{tmp_path}/a b") == tmp_path / "a b"
    assert local_path("memory://b/x") is None
    assert Storage(f"file://{tmp_path}").local == tmp_path
    assert Storage("memory://b/x/").url("a.tar") == "memory://b/x/a.tar"
    with pytest.raises(ConfigError, match="nosuchproto"):
        Storage("nosuchproto://bucket/x")


# ---------------------------------------------------------------- the folder API, both backends


def test_atomic_writes_listing_and_checksums(storage: Storage) -> None:
    assert storage.is_folder() and not storage.is_file()
    assert storage.listdir() == []
    data = bytes(range(256)) * 5000  # > 1 MiB: the sha256 is streamed in several blocks
    storage.write_bytes_atomic("b.tar", data)
    storage.write_json_atomic("a.json", {"z": 1, "a": [1, 2]})
    assert storage.listdir() == ["a.json", "b.tar"]  # sorted, no temp name left behind
    assert storage.exists("b.tar") and not storage.exists("c.tar")
    assert storage.size("b.tar") == len(data)
    assert storage.sha256("b.tar") == hashlib.sha256(data).hexdigest()
    assert storage.read_bytes("a.json") == dump_json({"a": [1, 2], "z": 1})
    assert json.loads(storage.read_bytes("a.json")) == {"a": [1, 2], "z": 1}
    with storage.open_read("b.tar") as f:
        f.seek(len(data) - 3)
        assert f.read() == data[-3:]
    storage.write_bytes_atomic("b.tar", b"new")  # replaces as a whole
    assert storage.read_bytes("b.tar") == b"new"
    storage.remove("b.tar")
    storage.remove("b.tar")  # missing_ok by default
    with pytest.raises(FileNotFoundError):
        storage.remove("b.tar", missing_ok=False)
    with pytest.raises(FileNotFoundError):
        storage.size("b.tar")
    assert storage.listdir() == ["a.json"]
    assert storage.url("a.json").endswith("/a.json")
    with pytest.raises(ValueError, match="bare file name"):
        storage.url("sub/a.json")


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(storage: Storage,
                                                              tmp_path: Path) -> None:
    storage.write_bytes_atomic("m.json", b"old")
    with pytest.raises(RuntimeError, match="cut"):
        with storage.atomic_writer("m.json") as f:
            f.write(b"half of the new")
            raise RuntimeError("cut")
    with pytest.raises(ValueError):
        storage.write_json_atomic("m.json", {"x": float("nan")})
    assert storage.read_bytes("m.json") == b"old"
    assert storage.listdir() == ["m.json"]
    src = tmp_path / "upload.bin"
    src.write_bytes(b"payload")
    storage.put_file_atomic(src, "up.bin")
    assert storage.read_bytes("up.bin") == b"payload" and storage.listdir() == ["m.json", "up.bin"]


def test_missing_folder_lists_empty(tmp_path: Path, memory_url: str) -> None:
    for location in (tmp_path / "nope", memory_url + "/nope"):
        s = Storage(location)
        assert s.listdir() == [] and not s.is_folder() and not s.is_file()


def test_shard_written_to_a_url_is_the_local_shard(tmp_path: Path, memory_url: str,
                                                   make_sample) -> None:  # type: ignore[no-untyped-def]
    samples = [make_sample(f"sample-k{i}-000", seed=i) for i in range(3)]
    Storage(memory_url).makedirs()
    local = write_shard(tmp_path / "train-000000.tar", samples)
    remote = write_shard(f"{memory_url}/train-000000.tar", samples)
    assert remote == local
    assert _memory_files(memory_url) == {"train-000000.tar": (tmp_path / "train-000000.tar").read_bytes()}
    got = list(iter_shard(f"{memory_url}/train-000000.tar"))
    assert [s.key for s in got] == list(local.keys)
    np.testing.assert_array_equal(got[2].nearness, samples[2].nearness)
    with pytest.raises(InputError, match="cannot open shard"):
        list(iter_shard(f"{memory_url}/missing.tar"))


# ---------------------------------------------------------------- a whole build into memory://


def test_build_into_a_url_equals_the_local_build(tmp_path: Path, memory_url: str) -> None:
    root = tmp_path / "in"
    write_folder(root)
    config = make_config(root)
    local = build(config, tmp_path / "local", command="t")
    remote = build(config, memory_url, command="t")
    assert remote.out_dir == memory_url and remote.preview == f"{memory_url}/preview.png"
    files = _memory_files(memory_url)
    assert sorted(files) == ["manifest.json", "preview.png", "train-000000.tar",
                             "train-000001.tar", "train-000002.tar"]  # no partial, no temp
    assert {n: b for n, b in files.items() if n.endswith(".tar")} == shard_bytes(local.out_dir)
    assert files["preview.png"] == (tmp_path / "local" / "preview.png").read_bytes()
    assert remote.manifest["shards"] == local.manifest["shards"]
    assert read_manifest(memory_url)["config_hash"] == local.manifest["config_hash"]
    assert "shards      3" in describe(memory_url)

    # The reader takes the folder URL, verifies checksums through fsspec and decodes 16 bits.
    direct = samples_by_key(local.out_dir)
    assert shard_urls(memory_url) == [f"{memory_url}/train-00000{i}.tar" for i in range(3)]
    read = list(open_shards(memory_url, verify_checksums=True))
    assert [s.key for s in read] == list(direct)
    for smp in read:
        assert smp.nearness.dtype == np.uint16
        np.testing.assert_array_equal(smp.nearness, direct[smp.key].nearness)
        np.testing.assert_array_equal(smp.lr, direct[smp.key].lr)

    runner = CliRunner()
    ok = runner.invoke(cli.main, ["verify", memory_url])
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == f"OK: 3 shard(s), 6 sample(s) in {memory_url}"
    info = runner.invoke(cli.main, ["info", memory_url])
    assert info.exit_code == 0 and f"shard set   {memory_url}" in info.output

    # Resumption works the same way: a removed shard is rebuilt, a damaged one is caught.
    storage = Storage(memory_url)
    storage.remove("train-000001.tar")
    again = build(config, memory_url, command="t", preview=False)
    assert (again.reused_shards, again.built_shards) == (2, 1)
    assert {n: b for n, b in _memory_files(memory_url).items() if n.endswith(".tar")} == (
        shard_bytes(local.out_dir))
    assert not storage.exists(PARTIAL_NAME)
    damaged = bytearray(storage.read_bytes("train-000002.tar"))
    damaged[1000] ^= 0xFF
    storage.write_bytes_atomic("train-000002.tar", bytes(damaged))
    report = verify_shard_set(memory_url)
    assert not report.ok and any("train-000002.tar: sha256" in p for p in report.problems)
    with pytest.raises(InputError, match="sha256 mismatch"):
        open_shards(memory_url, verify_checksums=True)
    bad = runner.invoke(cli.main, ["verify", "--no-decode", memory_url])
    assert bad.exit_code == 1 and "train-000002.tar: sha256" in bad.output


def test_cli_builds_into_a_url(tmp_path: Path, memory_url: str) -> None:
    root = tmp_path / "in"
    write_folder(root, ["alpha", "bravo"])
    res = CliRunner().invoke(cli.main, ["build", "--source", "folder", "--root", str(root),
                                        "--shard-size", "1", "--no-preview", "--out", memory_url])
    assert res.exit_code == 0, res.output
    assert f"manifest: {memory_url}/manifest.json" in res.output
    assert Storage(memory_url).listdir() == ["manifest.json", "train-000000.tar", "train-000001.tar"]
    assert verify_shard_set(memory_url).ok


def test_verify_a_missing_url_folder_says_no_manifest(memory_url: str) -> None:
    res = CliRunner().invoke(cli.main, ["verify", memory_url])
    assert res.exit_code == 1 and "no manifest" in res.output
    with pytest.raises(InputError, match=f"{MANIFEST_NAME}: no manifest"):
        read_manifest(memory_url)


# ---------------------------------------------------------------- pipe: URLs


def test_pipe_url_reads_a_shard(shard_set) -> None:  # type: ignore[no-untyped-def]
    out, infos = shard_set()
    url = f"pipe:cat {out / infos[1].name}"
    assert shard_urls(url) == [url]
    assert [s.key for s in open_shards(url)] == list(infos[1].keys)
    assert [s.key for s in open_shards([url, str(out / infos[0].name)])] == [
        *infos[1].keys, *infos[0].keys]
    with pytest.raises(InputError, match="cannot verify checksums of a pipe"):
        open_shards(url, verify_checksums=True)
