"""Helpers for tests that compare training batches (shard stream, online stream, prefetch)."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch

from ssr_models.batch import Batch


def take(stream: Iterable[Batch], n: int) -> list[Batch]:
    """Return the first ``n`` batches of ``stream`` (a fresh iterator of it)."""
    return list(itertools.islice(iter(stream), n))


def assert_same(a: list[Batch], b: list[Batch]) -> None:
    """Assert two batch lists are bitwise equal: keys, HR, LR, nearness and kernel field."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys == y.keys
        for name in ("hr", "lr", "nearness", "kernel_field"):
            assert torch.equal(getattr(x, name), getattr(y, name)), name
