"""Tests for ssr_models.batch and ssr_models.data on a shard set built by the real pipeline."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from ssr_core.errors import ConfigError, InputError
from ssr_datasets.schema import Sample, decode_sample
from ssr_models.batch import collate
from ssr_models.data import (
    TrainingStream,
    aligned_crop,
    center_crop,
    random_crop,
    validation_batches,
)
from ssr_models.loader import worker_share

from .batches import assert_same, take
from .conftest import CROP

S = 4  # the ssr recipe's scale


def find_offset(sample: Sample, hr_crop: np.ndarray) -> tuple[int, int]:
    """Locate a crop by brute force over every HR offset (random images: unique match)."""
    hits = [(y, x) for y in range(sample.hr.shape[0] - CROP + 1)
            for x in range(sample.hr.shape[1] - CROP + 1)
            if np.array_equal(sample.hr[y:y + CROP, x:x + CROP], hr_crop)]
    assert len(hits) == 1
    return hits[0]


def test_collate_shapes_ranges_and_to(samples: dict[str, Sample]) -> None:
    batch = collate([center_crop(s, CROP) for s in list(samples.values())[:3]])
    assert batch.hr.shape == (3, 3, CROP, CROP) and batch.lr.shape == (3, 3, 4, 4)
    assert batch.nearness.shape == (3, 1, CROP, CROP) and batch.kernel_field.shape == (3, 3, 4, 4)
    for t in (batch.hr, batch.lr, batch.nearness):
        assert t.dtype == torch.float32 and 0 <= t.min() and t.max() <= 1
    assert (batch.scale, batch.kernel_size, batch.delta) == (4, 21, 1.5)
    moved = batch.to("cpu")
    assert torch.equal(moved.hr, batch.hr) and len(moved) == 3 and moved.keys == batch.keys


def test_collate_errors(samples: dict[str, Sample]) -> None:
    raw = list(samples.values())[:2]
    a, b = (center_crop(s, CROP) for s in raw)
    with pytest.raises(InputError, match="empty"):
        collate([])
    for name, value in (("delta", 0.0), ("scale", 2), ("kernel_size", 15)):
        odd = Sample(b.key, b.hr, b.lr, b.nearness, b.kernel_field, dict(b.meta, **{name: value}))
        with pytest.raises(InputError, match=f"{name} .* differs"):
            collate([a, odd])
    with pytest.raises(InputError, match="HR size"):
        collate([a, center_crop(raw[1], 2 * CROP)])
    no_k = Sample(b.key, b.hr, b.lr, b.nearness, b.kernel_field,
                  {k: v for k, v in b.meta.items() if k != "kernel_size"})
    with pytest.raises(InputError, match="no 'kernel_size'"):
        collate([no_k])


def test_crop_is_aligned(samples: dict[str, Sample]) -> None:
    rng = np.random.default_rng(0)
    for sample in samples.values():
        crop = random_crop(sample, CROP, rng)
        y, x = crop.meta["crop_in_sample"]["top"], crop.meta["crop_in_sample"]["left"]
        assert y % S == 0 and x % S == 0
        np.testing.assert_array_equal(crop.hr, sample.hr[y:y + CROP, x:x + CROP])
        np.testing.assert_array_equal(crop.nearness, sample.nearness[y:y + CROP, x:x + CROP])
        np.testing.assert_array_equal(crop.lr, sample.lr[y // S:(y + CROP) // S,
                                                         x // S:(x + CROP) // S])
        np.testing.assert_array_equal(crop.kernel_field, sample.kernel_field[:, y // S:(y + CROP) // S,
                                                                 x // S:(x + CROP) // S])


def test_stream_crops_match_shards(shard_dir: Path, samples: dict[str, Sample]) -> None:
    """Each batch item equals the shard sample at an aligned offset, in every field."""
    offsets = set()
    for batch in take(TrainingStream(shard_dir, CROP, 3, seed=1), 4):
        for i, key in enumerate(batch.keys):
            sample = samples[key]
            hr = (batch.hr[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            y, x = find_offset(sample, hr)
            assert y % S == 0 and x % S == 0
            offsets.add((y, x))
            ref = collate([aligned_crop(sample, CROP, y // S, x // S)])
            for name in ("hr", "lr", "nearness", "kernel_field"):
                assert torch.equal(getattr(batch, name)[i], getattr(ref, name)[0]), name
    assert len(offsets) > 3  # the offsets really are random


def test_crop_errors(samples: dict[str, Sample]) -> None:
    sample = next(iter(samples.values()))
    with pytest.raises(ConfigError, match="multiple of the scale 4"):
        center_crop(sample, 18)
    with pytest.raises(InputError, match="smaller than the 64 px crop"):
        center_crop(sample, 64)
    with pytest.raises(InputError, match="does not fit"):
        aligned_crop(sample, CROP, 9, 0)


def test_stream_deterministic(shard_dir: Path) -> None:
    a = take(TrainingStream(shard_dir, CROP, 2, seed=7), 5)
    b = take(TrainingStream(shard_dir, CROP, 2, seed=7), 5)
    assert_same(a, b)
    c = take(TrainingStream(shard_dir, CROP, 2, seed=8), 5)
    assert any(not torch.equal(x.hr, y.hr) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("resampled", [True, False])
@pytest.mark.parametrize("cut", [1, 4])  # mid-epoch, and after crossing an epoch boundary
def test_stream_resume_equals_uninterrupted(shard_dir: Path, resampled: bool, cut: int) -> None:
    def make() -> TrainingStream:
        return TrainingStream(shard_dir, CROP, 2, seed=3, resampled=resampled, epoch_samples=6)

    straight = take(make(), 7)
    first = make()
    head = take(first, cut)
    state = first.state_dict()
    assert state["samples"] == state["batch"] * 2
    second = make()
    second.load_state_dict(state)
    assert_same(head + take(second, 7 - cut), straight)


def test_epochs_change_order_and_crops(shard_dir: Path) -> None:
    stream = TrainingStream(shard_dir, CROP, 6, seed=0, resampled=False, shuffle_buffer=0)
    e0, e1 = take(stream, 2)
    assert sorted(e0.keys) == sorted(e1.keys) and len(set(e0.keys)) == 6
    assert e0.keys != e1.keys and stream.state_dict()["epoch"] == 1


@pytest.mark.parametrize(("workers", "crops"), [(1, 1), (2, 1), (2, 2)])
def test_workers_give_the_same_batches(shard_dir: Path, workers: int, crops: int) -> None:
    plain = take(TrainingStream(shard_dir, CROP, 2, seed=5, crops_per_image=crops), 5)
    stream = TrainingStream(shard_dir, CROP, 2, seed=5, num_workers=workers,
                            crops_per_image=crops)
    assert_same(take(stream, 5), plain)
    per_epoch = 6 // (2 // crops)  # 6 samples, batch_size / crops_per_image images per batch
    assert stream.state_dict()["batch"] == 5 % per_epoch
    assert stream.state_dict()["epoch"] == 5 // per_epoch


def test_streamed_urls_give_the_same_batches(shard_dir: Path) -> None:
    """pipe: URLs (no seeking: raw bytes in the plan) and local shards (header index) agree."""
    tars = sorted(shard_dir.glob("*.tar"))
    local = take(TrainingStream([str(p) for p in tars], CROP, 2, seed=9, epoch_samples=6), 4)
    piped = TrainingStream([f"pipe:cat {p}" for p in tars], CROP, 2, seed=9, epoch_samples=6)
    assert_same(take(piped, 4), local)


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every key the stream decodes, in order (the shard decoder, wrapped)."""
    from ssr_models import data

    log: list[str] = []

    def counting(key: str, members: dict) -> Sample:
        log.append(key)
        return decode_sample(key, members)

    monkeypatch.setattr(data, "decode_sample", counting)
    return log


def test_each_sample_decoded_once_by_one_worker(shard_dir: Path, decodes: list[str]) -> None:
    """Two workers' shares: disjoint decodes, together exactly the delivered samples."""
    stream = TrainingStream(shard_dir, CROP, 2, seed=4)  # shuffle buffer 64, resampled
    reference = take(TrainingStream(shard_dir, CROP, 2, seed=4), 8)
    decodes.clear()
    shares = []
    for worker in (0, 1):
        start = len(decodes)
        made = list(itertools.islice(worker_share(stream, 0, 0, worker, 2), 4))
        assert [b for _, b, _ in made] == [(2 * k + worker) % 3 for k in range(4)]
        assert len(decodes) - start == 4 * 2  # its own samples only, each once
        shares.append([batch for _, _, batch in made])
    merged = [shares[k % 2][k // 2] for k in range(8)]  # the DataLoader's round robin
    assert_same(merged, reference)


def test_decodes_equal_samples_with_crops_and_resume(shard_dir: Path,
                                                     decodes: list[str]) -> None:
    """No re-decodes in the shuffle buffer, one decode per image for 2 crops, none on replay."""
    first = TrainingStream(shard_dir, CROP, 4, seed=6, crops_per_image=2)
    batches = take(first, 5)
    assert len(decodes) == 5 * 2
    for batch in batches:  # two crops of each decoded image, side by side
        assert batch.keys[0] == batch.keys[1] and batch.keys[2] == batch.keys[3]
    assert any(not torch.equal(b.hr[0], b.hr[1]) for b in batches)
    decodes.clear()
    second = TrainingStream(shard_dir, CROP, 4, seed=6, crops_per_image=2)
    second.load_state_dict(first.state_dict())
    take(second, 2)
    assert len(decodes) == 2 * 2  # replaying to the position decoded nothing
    with pytest.raises(ConfigError, match="divide batch_size"):
        TrainingStream(shard_dir, CROP, 4, seed=6, crops_per_image=3)


def one_epoch_keys(stream: TrainingStream) -> list[str]:
    keys: list[str] = []
    for batch in stream:
        if stream.state_dict()["epoch"] > 0:
            return keys
        keys.extend(batch.keys)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("world_size", [2, 4])  # 3 shards: split by shard, then by sample
def test_rank_split_is_disjoint(shard_dir: Path, samples: dict[str, Sample],
                                world_size: int) -> None:
    per_rank = [one_epoch_keys(TrainingStream(shard_dir, CROP, 1, seed=2, resampled=False,
                                              rank=r, world_size=world_size))
                for r in range(world_size)]
    flat = [k for keys in per_rank for k in keys]
    assert len(flat) == len(set(flat)) == len(samples)
    assert all(per_rank)
    assert TrainingStream(shard_dir, CROP, 1, 0, world_size=world_size).split == (
        "shards" if world_size <= 3 else "samples")


def test_state_mismatch_and_bad_args(shard_dir: Path) -> None:
    state = TrainingStream(shard_dir, CROP, 2, seed=0).state_dict()
    with pytest.raises(ConfigError, match="batch_size"):
        TrainingStream(shard_dir, CROP, 3, seed=0).load_state_dict(state)
    with pytest.raises(ConfigError, match="rank"):
        TrainingStream(shard_dir, CROP, 2, seed=0, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="epoch_samples"):
        TrainingStream([str(p) for p in sorted(shard_dir.glob("*.tar"))], CROP, 2, seed=0)
    with pytest.raises(InputError, match="fewer than batch_size"):
        take(TrainingStream(shard_dir, CROP, 7, seed=0, resampled=False), 1)


def test_validation_batches(shard_dir: Path, samples: dict[str, Sample]) -> None:
    val = validation_batches(shard_dir, CROP, 4)
    a, b = list(val), list(val)
    assert [len(x) for x in a] == [4, 2]
    assert_same(a, b)
    assert [k for x in a for k in x.keys] == sorted(samples)  # manifest order
    first = samples[a[0].keys[0]]
    ref = collate([aligned_crop(first, CROP, (12 - 4) // 2, (16 - 4) // 2)])
    assert torch.equal(a[0].kernel_field[0], ref.kernel_field[0]) and torch.equal(a[0].hr[0], ref.hr[0])
    whole = list(validation_batches(shard_dir, None, 6))
    assert whole[0].hr.shape == (6, 3, 48, 64)
