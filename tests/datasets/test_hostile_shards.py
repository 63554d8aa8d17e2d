"""Issue 10, findings 5 and 8 (reader side): shard folders whose manifest or tars are hostile."""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import degrade.cli as cli
from ssr_core.errors import InputError
from ssr_datasets.manifest import MANIFEST_NAME
from ssr_datasets.reader import open_shards
from ssr_datasets.shards import MAX_MEMBER_BYTES, ShardInfo, index_shard, iter_shard

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


def test_oversized_member_is_refused_before_it_is_read(shard_set, tmp_path: Path) -> None:
    # A header claiming 300 MB; the data is a sparse hole, so the file costs no disk or time
    # unless a reader pulls the member into memory (WebDataset's expander did: 3.5 GB RSS for a
    # 1.5 GB member).
    size = 300 << 20
    assert size > MAX_MEMBER_BYTES
    info = tarfile.TarInfo("sample-a-000.hr.png")
    info.size = size
    header = info.tobuf(tarfile.PAX_FORMAT)
    shard = tmp_path / "train-000000.tar"
    with open(shard, "wb") as f:
        f.write(header)
        f.truncate(len(header) + -(-size // 512) * 512 + 1024)  # data, end-of-archive: zeros
    why = (r"member 'sample-a-000\.hr\.png' is 314572800 bytes, over the readers' limit of "
           rf"{MAX_MEMBER_BYTES} bytes")
    with pytest.raises(InputError, match=why):
        list(open_shards(str(shard)))
    with pytest.raises(InputError, match=why):
        list(iter_shard(shard))
    with pytest.raises(InputError, match=why):
        index_shard(shard)
    # The limit is the caller's to lower: a real shard's 8x12 PNG members exceed 100 bytes.
    folder, _ = shard_set(n_shards=1, per_shard=1)
    assert len(list(open_shards(folder))) == 1
    with pytest.raises(InputError, match="over the readers' limit of 100 bytes"):
        list(open_shards(folder, max_member_bytes=100))
