"""Read shards back as ``Sample`` objects through a WebDataset pipeline.

WebDataset's default image decoders go through Pillow and reduce ``depth.png``
(uint16) to 8 bits, so the pipeline decodes raw member bytes with
``schema.decode_sample`` instead, which keeps all 16 bits.

Shards are read from local paths, ``pipe:`` commands (WebDataset's own opener) and any
fsspec URL (``memory://``, ``s3://``, ``gs://``, ...: the pipeline's URL opener is
swapped for one that opens those through fsspec).
"""

from __future__ import annotations

import random
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import webdataset as wds
from webdataset import cache, tariterators
from webdataset.filters import FilterFunction
from webdataset.gopen import gopen_schemes

from ssr_core.errors import InputError

from .manifest import MANIFEST_NAME, manifest_shards, read_manifest
from .schema import Sample, decode_sample
from .shards import MAX_MEMBER_BYTES, check_member_size
from .storage import Storage, is_remote


def shard_urls(path: str | Path) -> list[str]:
    """Turn a shard folder, a brace pattern or a single ``.tar`` into shard URLs.

    A folder (local path, or an fsspec URL that does not end in ``.tar``) must hold
    ``manifest.json``; its shards come back in manifest order. Brace patterns
    (``train-{000000..000009}.tar``) and ``pipe:`` URLs pass through unexpanded.

    Raises:
        InputError: A folder without a readable manifest.
    """
    text = str(path)
    if is_remote(text) and not text.endswith(".tar") and "{" not in text:
        storage = Storage(text)
        return [storage.url(info.name) for info in manifest_shards(storage, read_manifest(storage))]
    if not text.startswith("pipe:") and Path(text).is_dir():
        manifest = read_manifest(Path(text))
        return [str(Path(text) / info.name) for info in manifest_shards(Path(text), manifest)]
    return [text]


def expand_urls(urls: Iterable[str]) -> list[str]:
    """Expand brace patterns (``train-{000000..000009}.tar``) into individual shard paths/URLs."""
    import braceexpand  # a webdataset dependency

    return [u for url in urls for u in braceexpand.braceexpand(url)]


def check_shard_checksums(urls: Iterable[str]) -> None:
    """Check each shard's sha256 (local path or fsspec URL) against its folder's manifest.

    Raises:
        InputError: A ``pipe:`` URL (no folder to find a manifest in), a shard with no
            manifest beside it, not listed, or whose sha256 differs from the recorded one.
    """
    manifests: dict[str, dict[str, str]] = {}
    for url in expand_urls(urls):
        if url.startswith("pipe:"):
            raise InputError(url, "cannot verify checksums of a pipe: URL; open the shard "
                                  "folder or the shard's path/URL instead")
        storage, name = Storage.of_file(url)
        folder = storage.location
        if folder not in manifests:
            manifest = read_manifest(storage)
            manifests[folder] = {i.name: i.sha256 for i in manifest_shards(storage, manifest)}
        expected = manifests[folder].get(name)
        if expected is None:
            raise InputError(url, f"not listed in {storage.url(MANIFEST_NAME)}; cannot verify")
        if not storage.exists(name):
            raise InputError(url, "shard listed in the manifest is missing")
        got = storage.sha256(name)
        if got != expected:
            raise InputError(url, f"sha256 mismatch: file {got[:16]}..., manifest "
                                  f"{expected[:16]}... (corrupt or replaced shard)")


def _opens_with_fsspec(url: str) -> bool:
    """Return True for URLs fsspec should open: remote, not ``pipe:``, and not a scheme
    WebDataset handles itself unless fsspec has a backend for it (``gs`` via gcsfs beats
    shelling out to gsutil; ``http`` without aiohttp stays with WebDataset's curl)."""
    if not is_remote(url):
        return False
    scheme = urlparse(url).scheme
    if scheme not in gopen_schemes:
        return True
    import fsspec

    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError):
        return False
    return True


class _FsspecOpen(cache.StreamingOpen):
    """WebDataset's URL-opener stage, opening fsspec URLs through fsspec (others as before)."""

    def __call__(self, urls: Iterable[Any]) -> Iterator[dict[str, Any]]:
        for url in urls:
            url = url["url"] if isinstance(url, dict) else url
            if not _opens_with_fsspec(url):
                yield from super().__call__([url])
                continue
            try:
                storage, name = Storage.of_file(url)
                stream = storage.open_read(name)
            except Exception as exn:  # same contract as StreamingOpen: the handler decides
                if self.handler(exn):
                    continue
                break
            yield {"url": url, "stream": stream}


def _expand_tars(sources: Iterable[dict[str, Any]], limit: int) -> Iterator[dict[str, Any]]:
    """WebDataset's tar-expander stage, refusing a member over ``limit`` bytes before reading it.

    WebDataset's own expander reads every member whole, whatever size its header claims (a
    1.5 GB member cost 3.5 GB of memory). Yields ``{"fname", "data", "__url__"}`` per member
    and ``{}`` after each shard (so that samples of two shards never merge), as it does.
    """
    for source in sources:
        url = source["url"]
        try:
            with tarfile.open(fileobj=source["stream"], mode="r|*") as tar:
                for info in tar:
                    if not info.isreg():
                        continue
                    check_member_size(info, url, limit)
                    yield {"fname": info.name, "data": tar.extractfile(info).read(),
                           "__url__": url}
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InputError(url, f"cannot read shard: {exc}") from exc
        finally:
            source["stream"].close()
        yield {}


def _our_stage(stage: Any, max_member_bytes: int) -> Any:
    """Swap WebDataset's URL opener and tar expander for ours; keep every other stage."""
    if type(stage) is cache.StreamingOpen:
        return _FsspecOpen(handler=_reraise_as_input_error)
    if getattr(stage, "f", None) is tariterators.tar_file_expander:
        return FilterFunction(_expand_tars, max_member_bytes)
    return stage


def _to_sample(raw: Mapping[str, Any]) -> Sample:
    """Decode one WebDataset raw sample dict into a validated ``Sample``."""
    return decode_sample(raw["__key__"], raw)


def _reraise_as_input_error(exn: Exception) -> bool:
    """WebDataset error handler: re-raise read failures as InputError naming the shard."""
    if isinstance(exn, InputError):
        raise exn
    filename = getattr(exn, "filename", None)  # an OSError names the path it failed on
    candidates = [a for a in reversed(exn.args) if isinstance(a, str) and ".tar" in a]
    url = filename if isinstance(filename, str) else next(iter(candidates), "shard (unnamed)")
    raise InputError(url, f"cannot read shard: {exn}") from exn


def open_shards(
    path_or_urls: str | Path | Iterable[str],
    *,
    verify_checksums: bool = False,
    shuffle: int = 0,
    seed: int = 0,
    resampled: bool = False,
    decode: bool = True,
    max_member_bytes: int = MAX_MEMBER_BYTES,
) -> wds.WebDataset:
    """Open shards as an iterable of ``Sample`` (hr, lr, uint16 nearness, kernel, meta).

    Args:
        path_or_urls: Shard folder (with manifest; a path or fsspec URL), brace
            pattern, one ``.tar``, a ``pipe:cmd`` URL, or a list of shard paths/URLs.
        verify_checksums: Hash every shard against its folder's manifest before
            anything is yielded (local paths and fsspec URLs; not ``pipe:``).
        shuffle: Sample shuffle buffer size; 0 keeps file order. When > 0 the shard
            order is shuffled too. Both are seeded by ``seed``.
        seed: Seed for shard and sample shuffling.
        resampled: Draw shards with replacement forever (for step-based training).
        decode: Yield decoded ``Sample`` objects; False yields WebDataset's raw member
            dicts (``__key__`` plus member name -> bytes) for ``decode_sample`` later, so
            that a loader can order, shuffle and skip samples without decoding them.
        max_member_bytes: A tar member larger than this is refused before it is read.

    Returns:
        A ``webdataset.WebDataset`` pipeline yielding ``Sample`` objects; usable with
        ``torch.utils.data.DataLoader`` (it splits shards by worker). An empty
        result is not an error here (a worker may get no shard); check counts
        against the manifest instead.

    Raises:
        InputError: No shards, a folder without manifest, or a checksum mismatch; while
            iterating, a corrupt shard or a member over ``max_member_bytes``.
    """
    if isinstance(path_or_urls, (str, Path)):
        urls = shard_urls(path_or_urls)
    else:
        urls = [str(u) for u in path_or_urls]
    # Expand here: webdataset expands braces in a single string but not inside a list.
    urls = expand_urls(urls)
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
    dataset.pipeline = [_our_stage(stage, max_member_bytes) for stage in dataset.pipeline]
    if not any(getattr(stage, "f", None) is _expand_tars for stage in dataset.pipeline):
        raise RuntimeError("webdataset's pipeline has no tar_file_expander stage to replace; "
                           "the member size limit would not apply (webdataset version?)")
    if shuffle > 0:
        dataset = dataset.shuffle(shuffle, rng=random.Random(seed))
    return dataset.map(_to_sample) if decode else dataset
