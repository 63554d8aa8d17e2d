"""An on-disk cache of learned nearness maps, so the same image never goes through a model twice.

Key: (pixel sha256 of the decoded input image, model tag). The model tag names the checkpoint
(``model_id@commit``, or ``@sha256:...`` of the weights when the commit is unknown) and the
normalization, so a different model, revision or percentile range never reads a stale map, while
rebuilding the same images with another recipe, crop or seed reuses every map.

Layout: ``<folder>/<model slug>/<sha[:2]>/<sha>.npy`` with ``<model slug>/model.txt`` holding
the full tag. Default folder: ``$SSR_BENCH_CACHE/depth``, else ``$XDG_CACHE_HOME/ssr-bench/depth``,
else ``~/.cache/ssr-bench/depth``.

Precision: maps are stored as uint16 nearness (``round(n * 65535)``), exactly what the shards
store (``depth.png``), at the same size as float16 but with a uniform step of 1.5e-5 over [0, 1]
(float16 steps are up to 4.9e-4 near 1, i.e. coarser than the shard format). The depth providers
return the quantized map on a miss too, so a build gives the same bytes with or without the cache.

Writes go through ``ssr_core.io.atomic_file`` (a unique temp file in the target folder, fsynced,
moved into place with ``os.replace``), so readers never see a partial file and several processes
writing the same key simply race to install identical content.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from ssr_core.errors import ConfigError
from ssr_core.io import atomic_file
from ssr_core.paths import user_cache_dir
from ssr_datasets.schema import nearness_to_u16

NEARNESS_MAX = 65535
_SHA = re.compile(r"^[0-9a-f]{64}$")


def default_cache_dir() -> Path:
    """Return the default depth cache folder (see the module docstring); nothing is created."""
    return user_cache_dir("depth")


@dataclass(frozen=True)
class DepthKey:
    """Cache key of one nearness map.

    Attributes:
        pixel_sha256: lower-case hex sha256 of the decoded input (``imageio.pixel_sha256``).
        model_tag: the model and normalization, e.g.
            ``"Intel/dpt-hybrid-midas@<commit>|relative inverse depth, percentiles 2/98 ..."``.
    """

    pixel_sha256: str
    model_tag: str

    def __post_init__(self) -> None:
        if not isinstance(self.pixel_sha256, str) or not _SHA.match(self.pixel_sha256):
            raise ConfigError(f"pixel_sha256 must be 64 lower-case hex digits, got {self.pixel_sha256!r}")
        if not self.model_tag:
            raise ConfigError("model_tag must be a non-empty string")

    @property
    def model_slug(self) -> str:
        """Return a readable, filesystem-safe, collision-free folder name for the model tag."""
        readable = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_tag.split("@")[0].replace("/", "--"))
        return f"{readable[:60]}-{hashlib.sha256(self.model_tag.encode()).hexdigest()[:16]}"

    @property
    def relpath(self) -> Path:
        """Return the map's path relative to the cache folder."""
        return Path(self.model_slug) / self.pixel_sha256[:2] / f"{self.pixel_sha256}.npy"


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Run ``write(file)`` into ``ssr_core.io.atomic_file(path)``, creating the folders first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as fh:
        write(fh)


class DepthCache:
    """Nearness maps on disk, keyed by :class:`DepthKey`.

    Args:
        folder: cache folder; None means :func:`default_cache_dir`. Created on first write.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_cache_dir()

    def path(self, key: DepthKey) -> Path:
        """Return where the map of ``key`` lives (it may not exist)."""
        return self.folder / key.relpath

    def get(self, key: DepthKey) -> np.ndarray | None:
        """Return the cached nearness (H, W) float32 in [0, 1] (multiples of 1/65535), or None.

        An unreadable or malformed file counts as a miss (the next put replaces it).
        """
        path = self.path(key)
        try:
            u16 = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None
        if u16.dtype != np.uint16 or u16.ndim != 2:
            return None
        return u16.astype(np.float32) / np.float32(NEARNESS_MAX)

    def put(self, key: DepthKey, nearness: np.ndarray) -> Path:
        """Store nearness (H, W) in [0, 1] as uint16, atomically; return the file's path.

        Raises:
            ConfigError: nearness not a finite 2-D array.
        """
        if not isinstance(nearness, np.ndarray) or nearness.ndim != 2 or not np.isfinite(nearness).all():
            got = getattr(nearness, "shape", type(nearness).__name__)
            raise ConfigError(f"nearness must be a finite (H, W) array, got {got}")
        u16 = nearness_to_u16(nearness)
        tag_file = self.folder / key.model_slug / "model.txt"
        if not tag_file.exists():
            _atomic_write(tag_file, lambda fh: fh.write(key.model_tag.encode() + b"\n"))
        path = self.path(key)
        _atomic_write(path, lambda fh: np.save(fh, u16, allow_pickle=False))
        return path


def quantize(nearness: np.ndarray) -> np.ndarray:
    """Round nearness (H, W) to the cache's (and the shards') uint16 grid; return float32.

    Example:
        >>> int(round(float(quantize(np.array([[0.25]]))[0, 0]) * 65535))  # 0.25 * 65535 = 16383.75
        16384
    """
    return nearness_to_u16(nearness).astype(np.float32) / np.float32(NEARNESS_MAX)
