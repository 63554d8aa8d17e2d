"""How a build encodes its members (schema v2): the input PNG carried over as hr.png, HR and
depth encoded once per image, chunks of one shard split over workers; pixels never change."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from degrade.build import build
from ssr_core.errors import ConfigError
from ssr_datasets.imageio import decode_png, encode_png, minimal_png
from ssr_datasets.manifest import MANIFEST_NAME
from tests.helpers import make_config, samples_by_key, shard_bytes, write_folder, write_rgb


def members(out: Path) -> dict[str, bytes]:
    """Every member of every shard in ``out`` as name -> bytes."""
    found = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                found[m.name] = tar.extractfile(m).read()  # type: ignore[union-attr]
    return found


def test_hr_png_is_the_input_png_when_the_pixels_are_the_whole_input(tmp_path: Path) -> None:
    root = tmp_path / "in"
    images = write_folder(root, ["a", "b"])
    for name, rgb in images.items():  # another encoder than ours, and a text chunk
        info = PngInfo()
        info.add_text("Comment", "written by Pillow")
        Image.fromarray(rgb).save(root / f"{name}.png", compress_level=9, pnginfo=info)
    # A JPEG input and a size that is not a multiple of the scale are encoded again.
    rng = np.random.default_rng(3)
    cv2.imwrite(str(root / "c.jpg"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    write_rgb(root / "d.png", odd := rng.integers(0, 256, (50, 66, 3), dtype=np.uint8))
    build(make_config(root, shard_size=8), tmp_path / "o", command="t", preview=False)
    got = members(tmp_path / "o")
    for name in ("a", "b"):
        hr = got[f"folder-{name}-000.hr.png"]
        assert hr == minimal_png((root / f"{name}.png").read_bytes(), (48, 64))
        assert hr != encode_png(images[name])  # carried over, not encoded again
        assert np.array_equal(decode_png(hr), images[name])
    samples = samples_by_key(tmp_path / "o")
    assert np.array_equal(samples["folder-d-000"].hr, odd[:48, :64])  # mod-cropped, re-encoded
    jpeg = cv2.imread(str(root / "c.jpg"))[..., ::-1]
    assert np.array_equal(samples["folder-c-000"].hr, jpeg)


def test_variants_share_hr_and_depth_members_and_crops_are_encoded(tmp_path: Path) -> None:
    root = tmp_path / "in"
    images = write_folder(root, ["a"])
    build(make_config(root, samples_per_image=2, depth="prior"), tmp_path / "full",
          command="t", preview=False)
    got = members(tmp_path / "full")
    for member in ("hr.png", "depth.png"):
        assert got[f"folder-a-000.{member}"] == got[f"folder-a-001.{member}"]
    assert got["folder-a-000.lr.png"] != got["folder-a-001.lr.png"]  # other draws
    build(make_config(root, samples_per_image=2, crop=(32, 32)), tmp_path / "crop",
          command="t", preview=False)
    for key, smp in samples_by_key(tmp_path / "crop").items():
        c = smp.meta["crop"]
        want = images["a"][c["top"]:c["top"] + 32, c["left"]:c["left"] + 32]
        assert np.array_equal(smp.hr, want), key


def test_one_shard_is_split_over_workers_with_the_same_bytes(tmp_path: Path) -> None:
    # --workers used to split by shard (64 images): below that it did nothing.
    root = tmp_path / "in"
    write_folder(root, [f"im{i}" for i in range(6)])
    config = make_config(root, shard_size=64, depth="prior")
    one = build(config, tmp_path / "w1", workers=1, command="t", preview=False)
    two = build(config, tmp_path / "w2", workers=2, command="t", preview=False)
    assert two.built_shards == 1 and len(two.manifest["shards"][0]["keys"]) == 6
    assert shard_bytes(tmp_path / "w1") == shard_bytes(tmp_path / "w2")
    assert one.manifest["shards"] == two.manifest["shards"]


def test_a_build_of_another_schema_version_is_another_build(tmp_path: Path) -> None:
    root, out = tmp_path / "in", tmp_path / "o"
    write_folder(root, ["a", "b"])
    config = make_config(root)
    build(config, out, command="t", preview=False)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    manifest["schema_version"] = 1  # the same command run by the previous release
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="--overwrite"):
        build(config, out, command="t", preview=False)
    again = build(config, out, overwrite=True, command="t", preview=False)
    assert again.reused_shards == 0 and again.manifest["schema_version"] == 2
