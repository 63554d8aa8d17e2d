"""Tests for ssr_datasets.shards: deterministic tar bytes, atomic writes, plain reading."""

from __future__ import annotations

import hashlib
import json
import tarfile

import numpy as np
import pytest

from ssr_core.errors import InputError
from ssr_core.io import sha256_file
from ssr_datasets.schema import MEMBERS, SchemaError, decode_sample
from ssr_datasets.shards import (
    ShardInfo,
    index_shard,
    iter_shard,
    read_members,
    shard_name,
    write_shard,
)


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_shard_name():
    assert shard_name("train", 0) == "train-000000.tar"
    assert shard_name("val", 123456) == "val-123456.tar"


def test_write_twice_gives_identical_bytes(tmp_path, make_sample):
    keys = ["sample-a-000", "sample-b-000", "sample-b-001"]
    paths = []
    for run in ("one", "two"):
        (tmp_path / run).mkdir()
        path = tmp_path / run / "train-000000.tar"
        info = write_shard(path, (make_sample(k, seed=i) for i, k in enumerate(keys)))
        paths.append(path)
    data = paths[0].read_bytes()
    assert data == paths[1].read_bytes()
    assert info == ShardInfo(name="train-000000.tar", sha256=hashlib.sha256(data).hexdigest(),
                             bytes=len(data), count=3, keys=tuple(keys))
    assert sha256_file(paths[0]) == info.sha256
    assert ShardInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


def test_encoding_threads_change_no_byte_and_keep_failures_atomic(tmp_path, make_sample):
    # Device builds encode PNGs on threads ahead of the writer (at most 2 * threads pending).
    keys = [f"sample-{c}-000" for c in "abcdefg"]
    one = write_shard(tmp_path / "one.tar", [make_sample(k, seed=i) for i, k in enumerate(keys)])
    three = write_shard(tmp_path / "three.tar", [make_sample(k, seed=i) for i, k in enumerate(keys)],
                        threads=3)
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "three.tar").read_bytes()
    assert one.sha256 == three.sha256 and three.keys == tuple(keys)
    bad = make_sample("sample-z-000")
    bad = type(bad)(bad.key, bad.hr, bad.lr[:1], bad.nearness, bad.kernel_field, bad.meta)
    with pytest.raises(SchemaError, match="lr shape"):
        write_shard(tmp_path / "bad.tar", [make_sample(k) for k in keys[:4]] + [bad], threads=3)
    assert not (tmp_path / "bad.tar").exists() and _leftovers(tmp_path) == []


def test_tar_headers_are_fixed(tmp_path, make_sample):
    long_key = "folder-" + "x" * 120 + "-000"  # longer than USTAR's 100-char name field
    path = tmp_path / "t.tar"
    write_shard(path, [make_sample("sample-a-000"), make_sample(long_key)])
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == [f"{k}.{m}" for k in ("sample-a-000", long_key)
                                         for m in MEMBERS]
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname, m.mode, m.type) == (
            0, 0, 0, "", "", 0o644, tarfile.REGTYPE)
    assert path.stat().st_size % 512 == 0
    assert path.stat().st_mode & 0o777 == 0o644


def test_exception_mid_iteration_leaves_nothing(tmp_path, make_sample):
    def samples():
        yield make_sample("sample-a-000")
        raise RuntimeError("worker died")

    path = tmp_path / "train-000000.tar"
    with pytest.raises(RuntimeError, match="worker died"):
        write_shard(path, samples())
    assert not path.exists() and _leftovers(tmp_path) == []


def test_invalid_sample_aborts_and_keeps_previous_file(tmp_path, make_sample):
    path = tmp_path / "train-000000.tar"
    write_shard(path, [make_sample("sample-a-000")])
    before = path.read_bytes()
    bad = make_sample("sample-b-000")
    bad = type(bad)(bad.key, bad.hr, bad.lr[:1], bad.nearness, bad.kernel_field, bad.meta)
    with pytest.raises(SchemaError, match="lr shape"):
        write_shard(path, [make_sample("sample-a-000"), bad])
    assert path.read_bytes() == before and _leftovers(tmp_path) == []


def test_duplicate_keys_are_rejected(tmp_path, make_sample):
    with pytest.raises(SchemaError, match="duplicate key"):
        write_shard(tmp_path / "t.tar", [make_sample("sample-a-000")] * 2)
    assert list(tmp_path.iterdir()) == []


def test_iter_shard_round_trip(tmp_path, make_sample):
    originals = [make_sample(f"sample-i{i}-000", seed=i) for i in range(3)]
    write_shard(tmp_path / "t.tar", originals)
    decoded = list(iter_shard(tmp_path / "t.tar"))
    assert [s.key for s in decoded] == [s.key for s in originals]
    for a, b in zip(decoded, originals, strict=True):
        np.testing.assert_array_equal(a.nearness, b.nearness)
        np.testing.assert_array_equal(a.kernel_field, b.kernel_field)
        np.testing.assert_array_equal(a.hr, b.hr)
        assert a.meta == b.meta


@pytest.fixture
def shard(tmp_path, make_sample):
    path = tmp_path / "t.tar"
    write_shard(path, [make_sample(f"sample-i{i}-000", seed=i) for i in range(2)])
    return path


@pytest.mark.parametrize("cut", [0.5, "boundary"])
def test_iter_shard_detects_truncation(shard, cut):
    data = shard.read_bytes()
    if cut == "boundary":
        # Cut right after the first sample's last member: a clean 512-byte boundary.
        with tarfile.open(shard) as tar:
            json_member = tar.getmember("sample-i0-000.json")
        n = json_member.offset_data + ((json_member.size + 511) // 512) * 512
    else:
        n = int(len(data) * cut) // 512 * 512 + 100
    shard.write_bytes(data[:n])
    with pytest.raises(InputError, match="truncated"):
        list(iter_shard(shard))


def test_iter_shard_reports_corrupt_member(shard):
    data = bytearray(shard.read_bytes())
    with tarfile.open(shard) as tar:
        member = tar.getmember("sample-i1-000.hr.png")
    data[member.offset_data + member.size // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(SchemaError, match="sample-i1-000.*hr.png.*cannot decode"):
        list(iter_shard(shard))


def test_index_and_read_members_match_iter_shard(shard):
    """Header index + ranged reads give the same samples as the streaming reader."""
    index = index_shard(shard)
    assert [k for k, _ in index] == ["sample-i0-000", "sample-i1-000"]
    assert all(sorted(ranges) == sorted(MEMBERS) for _, ranges in index)
    for (key, ranges), sample in zip(index, iter_shard(shard), strict=True):
        again = decode_sample(key, read_members(shard, ranges))
        np.testing.assert_array_equal(again.hr, sample.hr)
        np.testing.assert_array_equal(again.kernel_field, sample.kernel_field)
        assert again.meta == sample.meta


def test_index_shard_errors(shard, tmp_path):
    index = index_shard(shard)
    data = shard.read_bytes()
    offset, _ = index[1][1]["hr.png"]
    shard.write_bytes(data[: offset // 512 * 512 + 512])  # cut inside the second sample's HR
    with pytest.raises(InputError, match="truncated"):
        index_shard(shard)
    with pytest.raises(InputError, match="ends early"):  # the shard changed since indexing
        read_members(shard, index[1][1])
    with pytest.raises(InputError, match="cannot read shard"):
        read_members(tmp_path / "missing.tar", index[0][1])
    odd = tmp_path / "odd.tar"
    with tarfile.open(odd, "w") as tar:
        tar.addfile(tarfile.TarInfo("noext"))
    with pytest.raises(InputError, match="unexpected tar entry 'noext'"):
        index_shard(odd)


def test_iter_shard_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot open shard"):
        list(iter_shard(tmp_path / "missing.tar"))


def test_shard_info_from_dict_rejects_bad_entries():
    good = {"name": "a.tar", "sha256": "0" * 64, "bytes": 10, "count": 1, "keys": ["k"]}
    with pytest.raises(InputError, match="field 'count': expected int"):
        ShardInfo.from_dict({**good, "count": "1"})
    with pytest.raises(InputError, match="must be an object"):
        ShardInfo.from_dict([good])


def test_temp_file_is_hidden_beside_target(tmp_path, make_sample, monkeypatch):
    import os

    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((os.path.dirname(src), os.path.basename(src), dst))
        real_replace(src, dst)

    monkeypatch.setattr("ssr_datasets.shards.os.replace", spy)
    path = tmp_path / "train-000000.tar"
    write_shard(path, [make_sample("sample-a-000")])
    ((folder, name, dst),) = seen
    assert folder == str(tmp_path) and name.startswith(".") and name.endswith(".tmp")
    assert dst == path
