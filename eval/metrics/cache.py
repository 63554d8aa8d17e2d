"""An on-disk cache of per-image metric values, so rescoring computes only what is new.

Key: (pixel sha256 of the prediction, pixel sha256 of the ground truth or ``"-"`` for a
no-reference metric, metric name, metric version, options hash). The pixel hashes are those of
``ssr_datasets.imageio.pixel_sha256`` (decoded pixels, not file bytes, so re-encoding a PNG
reuses its scores); the metric version is ``MetricSpec.version`` (bumped whenever an
implementation change can move a value); the options hash covers the options the metric was
created with and its own ``conventions()`` (package versions of learned metrics among them), so a
different crop, channel or pyiqa release never reads a stale value.

Storage: one SQLite file, ``<folder>/scores.sqlite3``, default folder ``$SSR_BENCH_CACHE/scores``,
else ``$XDG_CACHE_HOME/ssr-bench/scores``, else ``~/.cache/ssr-bench/scores``. SQLite makes each
write an atomic transaction and serializes concurrent writers with file locks (a busy database is
waited on for up to a minute), so several ``ssr-eval`` processes may share one cache; rows are
``INSERT OR REPLACE``d, and two processes computing the same key store the same value. SQLite
stores +inf/-inf as REAL; NaN (which it cannot store) is never cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

from ssr_core.errors import ConfigError
from ssr_core.paths import user_cache_dir

FILE_NAME = "scores.sqlite3"
NO_GT = "-"  # the gt hash of a no-reference metric's key
_BUSY_TIMEOUT_S = 60.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    pred_sha TEXT NOT NULL,
    gt_sha TEXT NOT NULL,
    metric TEXT NOT NULL,
    version TEXT NOT NULL,
    options_hash TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (pred_sha, gt_sha, metric, version, options_hash)
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """Return the default score cache folder (see the module docstring); nothing is created."""
    return user_cache_dir("scores")


def options_hash(options: Mapping[str, Any]) -> str:
    """Hash a JSON-serializable mapping canonically (sorted keys): 16 hex digits.

    >>> options_hash({"b": 1, "a": True}) == options_hash({"a": True, "b": 1})
    True
    """
    text = json.dumps(options, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class CacheKey(NamedTuple):
    """The key of one cached per-image value (see the module docstring)."""

    pred_sha: str
    gt_sha: str  # NO_GT for no-reference metrics
    metric: str
    version: str
    options_hash: str


class ScoreCache:
    """Per-image metric values in one SQLite file; opened on first use, usable as a context.

    Args:
        folder: Cache folder (created on first use); None = ``default_cache_dir()``.
    """

    def __init__(self, folder: str | Path | None = None) -> None:
        self.folder = Path(folder).expanduser() if folder is not None else default_cache_dir()
        self.path = self.folder / FILE_NAME
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
                with conn:
                    conn.execute(_SCHEMA)
            except (OSError, sqlite3.Error) as exc:
                raise ConfigError(f"score cache {self.path} is unusable ({exc}); delete it, pass "
                                  "another folder with --cache DIR, or --no-cache") from exc
            self._conn = conn
        return self._conn

    def get(self, key: CacheKey) -> float | None:
        """Return the cached value of ``key``, or None."""
        try:
            row = self._connect().execute(
                "SELECT value FROM scores WHERE pred_sha=? AND gt_sha=? AND metric=? AND "
                "version=? AND options_hash=?", tuple(key)).fetchone()
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot read score cache {self.path}: {exc}") from exc
        return None if row is None else float(row[0])

    def put_many(self, items: Iterable[tuple[CacheKey, float]]) -> int:
        """Store values in one transaction (NaN is skipped); return how many were stored."""
        rows = [(*key, float(value)) for key, value in items if not math.isnan(value)]
        if not rows:
            return 0
        try:
            conn = self._connect()
            with conn:
                conn.executemany("INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot write score cache {self.path}: {exc}") from exc
        return len(rows)

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM scores").fetchone()[0])

    def close(self) -> None:
        """Close the database connection (a later use reopens it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
