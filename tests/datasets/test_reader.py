"""Tests for ssr_datasets.reader: the WebDataset pipeline and its 16-bit depth decoding."""

from __future__ import annotations

import numpy as np
import pytest
import webdataset as wds

from ssr_core.errors import InputError
from ssr_datasets.reader import open_shards, shard_urls
from ssr_datasets.schema import Sample
from ssr_datasets.shards import write_shard


def test_shard_urls(shard_set, tmp_path):
    out, infos = shard_set()
    assert shard_urls(out) == [str(out / i.name) for i in infos]
    assert shard_urls(out / infos[0].name) == [str(out / infos[0].name)]
    pattern = str(out / "train-{000000..000001}.tar")
    assert shard_urls(pattern) == [pattern]
    with pytest.raises(InputError, match="no manifest"):
        shard_urls(tmp_path)


def test_open_shards_yields_samples_in_order(shard_set, make_sample):
    out, infos = shard_set()
    samples = list(open_shards(out))
    assert [s.key for s in samples] == [k for i in infos for k in i.keys]
    assert all(isinstance(s, Sample) for s in samples)
    ref = make_sample(infos[0].keys[0], seed=0)
    np.testing.assert_array_equal(samples[0].hr, ref.hr)
    np.testing.assert_array_equal(samples[0].kernel_field, ref.kernel_field)
    pattern = str(out / "train-{000000..000001}.tar")
    assert [s.key for s in open_shards(pattern)] == [s.key for s in samples]


def test_depth_stays_16_bit_where_webdataset_default_loses_it(tmp_path, make_sample):
    sample = make_sample("sample-depth-000")
    nearness = sample.nearness.copy()
    nearness[0, :4] = (300, 1000, 40000, 65535)  # all > 255: not representable in 8 bits
    sample = Sample(sample.key, sample.hr, sample.lr, nearness, sample.kernel_field, sample.meta)
    path = tmp_path / "t.tar"
    write_shard(path, [sample])

    (ours,) = list(open_shards(path))
    assert ours.nearness.dtype == np.uint16
    np.testing.assert_array_equal(ours.nearness, nearness)

    # webdataset's stock image decoders (via Pillow) reduce the same member to 8 bits.
    (rgb8,) = list(wds.WebDataset(str(path), shardshuffle=False).decode("rgb8"))
    assert rgb8["depth.png"].dtype == np.uint8
    assert not np.array_equal(rgb8["depth.png"][..., 0].astype(np.uint16), nearness)
    (pil,) = list(wds.WebDataset(str(path), shardshuffle=False).decode("pil"))
    assert np.asarray(pil["depth.png"]).max() <= 255 < nearness.max()


def test_verify_checksums_rejects_modified_shard(shard_set):
    out, infos = shard_set()
    assert len(list(open_shards(out, verify_checksums=True))) == 4
    path = out / infos[1].name
    data = bytearray(path.read_bytes())
    data[-2000] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sha256 mismatch"):
        open_shards(out, verify_checksums=True)


def test_verify_checksums_needs_a_manifest(tmp_path, make_sample):
    write_shard(tmp_path / "t.tar", [make_sample("sample-a-000")])
    with pytest.raises(InputError, match="no manifest"):
        open_shards(tmp_path / "t.tar", verify_checksums=True)


def test_shuffle_is_seeded_permutation(shard_set):
    out, infos = shard_set(n_shards=3, per_shard=3)
    plain = [s.key for s in open_shards(out)]
    a = [s.key for s in open_shards(out, shuffle=5, seed=3)]
    b = [s.key for s in open_shards(out, shuffle=5, seed=3)]
    assert a == b and sorted(a) == sorted(plain)


def test_resampled_repeats_forever(shard_set):
    out, infos = shard_set()
    stream = iter(open_shards(out, resampled=True))
    keys = [next(stream).key for _ in range(10)]
    assert len(keys) == 10 and set(keys) <= {k for i in infos for k in i.keys}


def test_missing_shard_raises_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read shard"):
        list(open_shards(tmp_path / "missing.tar"))
