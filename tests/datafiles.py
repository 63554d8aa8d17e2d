"""The test suite's real files: ``tests/data`` inside the repository (see its README.md).

Tests never read outside the clone, so this is the one place that names the folder; a missing
file fails its test naming the path (a broken checkout, not something to skip).
"""

from __future__ import annotations

from pathlib import Path

#: ``tests/data``: a few benchmark images and the paper-table transcription, with provenance.
DATA = Path(__file__).resolve().parent / "data"
#: the independent transcription of the SSR paper's Tables 1-3
PAPER_TABLES = DATA / "ssr-tables.json"
#: set name in ``tests/data`` -> the real ``img_NNN`` numbers held there (the others are not)
REAL_IMAGES = {"set5": (2,), "set14": (3,), "bsd100": (2,)}


def data_file(rel: str) -> Path:
    """Return ``tests/data/<rel>``, or fail naming where it was expected."""
    path = DATA / rel
    if not path.is_file():
        raise FileNotFoundError(f"test data file missing: {path} (see {DATA / 'README.md'})")
    return path
