"""Where the workplace's read-only benchmark images are: ``../shared/bench-data`` beside the repo.

CI clones the repository with ``../shared`` beside it (the developers' guide), so the path is
derived from this file, never hard-coded; a missing folder fails the tests that need it, loudly.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DATA = Path(__file__).resolve().parents[2] / "shared" / "bench-data"


def bench_data() -> Path:
    """Return the bench-data folder, or fail naming where it was expected."""
    if not BENCH_DATA.is_dir():
        raise FileNotFoundError(f"bench-data not found at {BENCH_DATA}: clone the repository with "
                                "the workplace's shared/ folder beside it")
    return BENCH_DATA
