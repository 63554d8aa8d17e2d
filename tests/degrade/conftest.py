"""Fixtures for the build-pipeline and CLI tests (their helpers live in tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import write_folder


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A folder source of six 48x64 random RGB PNGs named out of sorted order."""
    root = tmp_path / "images"
    write_folder(root)
    return root
