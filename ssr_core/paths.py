"""Where the project keeps its per-user caches (depth maps, scores)."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(kind: str) -> Path:
    """Return ``$SSR_BENCH_CACHE/<kind>``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` + ``ssr-bench/<kind>``.

    Nothing is created; callers make the folder when they first write.
    """
    if os.environ.get("SSR_BENCH_CACHE"):
        return Path(os.environ["SSR_BENCH_CACHE"]).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ssr-bench" / kind
