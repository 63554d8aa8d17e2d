"""The dataset catalog (manifests/datasets) and the sources agree on names and splits."""

from __future__ import annotations

import pytest

from ssr_datasets.catalog import DATASET_NAMES, load_dataset
from ssr_datasets.sources import SOURCE_NAMES, splits_of


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_every_catalogued_dataset_has_a_source_with_the_same_splits(name: str) -> None:
    assert name in SOURCE_NAMES
    spec = load_dataset(name)
    source = splits_of(name)
    if source:
        # verify lists each split with the source: a split only one side knows is never checked
        assert list(spec.splits) == list(source)
    else:
        assert len(spec.splits) == 1  # one informational split for split-less sources


def test_every_dataset_source_is_catalogued() -> None:
    assert set(SOURCE_NAMES) - {"sample", "folder"} == set(DATASET_NAMES)
