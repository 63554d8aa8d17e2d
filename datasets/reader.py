"""Read shards back as ``Sample`` objects through a WebDataset pipeline.

WebDataset's default image decoders go through Pillow and reduce ``depth.png``
(uint16) to 8 bits, so the pipeline decodes raw member bytes with
``schema.decode_sample`` instead, which keeps all 16 bits.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import webdataset as wds

from .errors import InputError
from .manifest import MANIFEST_NAME, manifest_shards, read_manifest
from .schema import Sample, decode_sample
from .shards import sha256_file


def shard_urls(path: str | Path) -> list[str]:
    """Turn a shard-folder path, a brace pattern or a single ``.tar`` into shard URLs.

    A folder must hold ``manifest.json``; its shards come back in manifest order.
    Brace patterns (``train-{000000..000009}.tar``) pass through unexpanded.

    Raises:
        InputError: A folder without a readable manifest.
    """
    text = str(path)
    if Path(text).is_dir():
        manifest = read_manifest(Path(text))
        return [str(Path(text) / info.name) for info in manifest_shards(Path(text), manifest)]
    return [text]


def _expand(urls: Iterable[str]) -> list[str]:
    """Expand brace patterns into individual shard paths."""
    import braceexpand  # a webdataset dependency

    return [u for url in urls for u in braceexpand.braceexpand(url)]


def check_shard_checksums(urls: Iterable[str]) -> None:
    """Check each local shard's sha256 against the manifest in its folder.

    Raises:
        InputError: A shard has no manifest beside it, is not listed, or its sha256
            differs from the recorded one.
    """
    manifests: dict[Path, dict[str, str]] = {}
    for url in _expand(urls):
        path = Path(url)
        folder = path.parent
        if folder not in manifests:
            manifest = read_manifest(folder)
            manifests[folder] = {i.name: i.sha256 for i in manifest_shards(folder, manifest)}
        expected = manifests[folder].get(path.name)
        if expected is None:
            raise InputError(path, f"not listed in {folder / MANIFEST_NAME}; cannot verify")
        if not path.is_file():
            raise InputError(path, "shard listed in the manifest is missing")
        got = sha256_file(path)
        if got != expected:
            raise InputError(path, f"sha256 mismatch: file {got[:16]}..., manifest "
                                   f"{expected[:16]}... (corrupt or replaced shard)")


def _to_sample(raw: Mapping[str, Any]) -> Sample:
    """Decode one WebDataset raw sample dict into a validated ``Sample``."""
    return decode_sample(raw["__key__"], raw)


def _reraise_as_input_error(exn: Exception) -> bool:
    """WebDataset error handler: re-raise read failures as InputError naming the shard."""
    if isinstance(exn, InputError):
        raise exn
    candidates = [getattr(exn, "filename", None), *reversed(exn.args)]
    url = next((a for a in candidates if isinstance(a, str) and ".tar" in a), "<shard>")
    raise InputError(url, f"cannot read shard: {exn}") from exn


def open_shards(
    path_or_urls: str | Path | Iterable[str],
    *,
    verify_checksums: bool = False,
    shuffle: int = 0,
    seed: int = 0,
    resampled: bool = False,
) -> wds.WebDataset:
    """Open shards as an iterable of ``Sample`` (hr, lr, uint16 nearness, kernel, meta).

    Args:
        path_or_urls: Shard folder (with manifest), brace pattern, one ``.tar``, or a
            list of shard paths/URLs.
        verify_checksums: Hash every shard against its folder's manifest before
            anything is yielded (local files only).
        shuffle: Sample shuffle buffer size; 0 keeps file order. When > 0 the shard
            order is shuffled too. Both are seeded by ``seed``.
        seed: Seed for shard and sample shuffling.
        resampled: Draw shards with replacement forever (for step-based training).

    Returns:
        A ``webdataset.WebDataset`` pipeline yielding ``Sample`` objects; usable with
        ``torch.utils.data.DataLoader`` (it splits shards by worker). An empty
        result is not an error here (a worker may get no shard); check counts
        against the manifest instead.

    Raises:
        InputError: No shards, a folder without manifest, or a checksum mismatch.
    """
    if isinstance(path_or_urls, (str, Path)):
        urls = shard_urls(path_or_urls)
    else:
        urls = [str(u) for u in path_or_urls]
    # Expand here: webdataset expands braces in a single string but not inside a list.
    urls = _expand(urls)
    if not urls:
        raise InputError(str(path_or_urls), "no shards to read")
    if shuffle < 0:
        raise InputError(str(path_or_urls), f"shuffle buffer must be >= 0, got {shuffle}")
    if verify_checksums:
        check_shard_checksums(urls)
    shardshuffle: int | bool = False
    if shuffle > 0 and not resampled:
        shardshuffle = len(urls)
    dataset = wds.WebDataset(urls, handler=_reraise_as_input_error, shardshuffle=shardshuffle,
                             detshuffle=True, seed=seed, resampled=resampled,
                             empty_check=False)
    if shuffle > 0:
        dataset = dataset.shuffle(shuffle, rng=random.Random(seed))
    return dataset.map(_to_sample)
