"""Tests for ssr_datasets.manifest: reading, verifying and describing a shard folder."""

from __future__ import annotations

import json

import pytest

from ssr_core.errors import InputError
from ssr_datasets.manifest import MANIFEST_NAME, describe, read_manifest, verify_shard_set


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="no manifest") as info:
        read_manifest(tmp_path)
    assert info.value.path == str(tmp_path / MANIFEST_NAME)
    path = tmp_path / MANIFEST_NAME
    path.write_text("{not json")
    with pytest.raises(InputError, match="invalid JSON"):
        read_manifest(tmp_path)
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(InputError, match="format: expected 'ssr-bench-shards', got 'something"):
        read_manifest(tmp_path)
    path.write_text(json.dumps({"format": "ssr-bench-shards", "schema_version": 3}))
    with pytest.raises(InputError, match="this reader knows 1, 2, got 3"):
        read_manifest(tmp_path)


def test_verify_ok(shard_set):
    out, infos = shard_set()
    report = verify_shard_set(out)
    assert report.ok and report.problems == []
    assert (report.shards, report.samples) == (2, 4)


def test_verify_detects_flipped_byte(shard_set):
    out, infos = shard_set()
    path = out / infos[1].name
    data = bytearray(path.read_bytes())
    data[700] ^= 0x01  # inside the first member's data
    path.write_bytes(bytes(data))
    report = verify_shard_set(out)
    assert not report.ok
    assert any(p.startswith(f"{infos[1].name}: sha256") for p in report.problems)
    # Without checksums the decode still catches it (PNG CRC).
    assert not verify_shard_set(out, checksums=False).ok


def test_verify_reports_every_problem_at_once(shard_set, make_manifest):
    out, infos = shard_set(n_shards=3)
    (out / infos[0].name).unlink()
    (out / "train-000099.tar").write_bytes(b"\0" * 1024)
    entry = infos[2].to_dict()
    entry["count"] = 3
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    manifest["shards"][2] = entry
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    report = verify_shard_set(out)
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"{infos[0].name}: missing" in text
    assert "train-000099.tar: tar file not listed in the manifest" in text
    assert f"{infos[2].name}: manifest count 3 but 2 keys" in text
    assert "totals.samples is 6 but shards list 7" in text


def test_verify_detects_key_mismatch_and_size(shard_set, make_manifest):
    out, infos = shard_set()
    changed = [infos[0], type(infos[0])(infos[0].name, infos[0].sha256, infos[0].bytes + 1,
                                        2, ("sample-other-000", infos[0].keys[1]))]
    make_manifest(out, [changed[1], infos[1]])
    report = verify_shard_set(out, checksums=False)
    assert any("size" in p and "manifest says" in p for p in report.problems)
    assert any("keys differ from the manifest" in p for p in report.problems)


def test_describe(shard_set):
    out, infos = shard_set()
    text = describe(out)
    for expected in ("shards      2", "samples     4", "recipe      ssr", "scale       2",
                     "kernel size 21", "seed        7", "skipped     1 input(s)",
                     "folder/bad: corrupt or truncated image", "python 3.11", "MB"):
        assert expected in text, expected
