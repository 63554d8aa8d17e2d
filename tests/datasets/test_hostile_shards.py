"""Issue 10, findings 5 and 8 (reader side): shard folders whose manifest or tars are hostile."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import degrade.cli as cli
from ssr_datasets.errors import InputError
from ssr_datasets.manifest import MANIFEST_NAME
from ssr_datasets.reader import open_shards
from ssr_datasets.shards import ShardInfo

ESCAPE = "../other/train-000000.tar"


def escaping_manifest(shard_set: Callable[..., tuple[Path, list[ShardInfo]]]) -> Path:
    """A valid shard set in ``other/`` and a folder whose manifest names ``../other/...``."""
    real, infos = shard_set(n_shards=1, per_shard=1)
    other = real.parent / "other"
    shutil.copytree(real, other)  # a legitimate shard set beside the folder, manifest and all
    manifest = json.loads((real / MANIFEST_NAME).read_text())
    manifest["shards"][0]["name"] = ESCAPE  # same sha256 and size: only the name lies
    (real / MANIFEST_NAME).write_text(json.dumps(manifest))
    (real / infos[0].name).unlink()
    return real


@pytest.mark.parametrize("verify", [True, False])
def test_manifest_shard_name_outside_the_folder_is_refused(shard_set, verify: bool) -> None:
    folder = escaping_manifest(shard_set)
    with pytest.raises(InputError, match=r"shards\[0\]: shard name '\.\./other/train-000000\.tar' "
                                         r"is not a shard file name: expected a bare") as info:
        list(open_shards(folder, verify_checksums=verify))
    assert info.value.path == str(folder / MANIFEST_NAME)


def test_verify_and_info_report_a_bad_shard_name_in_one_line(shard_set) -> None:
    folder = escaping_manifest(shard_set)
    for command in ("verify", "info"):
        res = CliRunner().invoke(cli.main, [command, str(folder)])
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert res.output == (f"Error: {folder / MANIFEST_NAME}: shards[0]: shard name {ESCAPE!r} "
                              "is not a shard file name: expected a bare {split}-{index:06d}.tar "
                              "such as train-000000.tar\n")
