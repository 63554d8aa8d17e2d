"""bench/learning.py --quick on six tiny generated photos: every row of its report is there."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

# bench/ is a folder of scripts, not a package: load the file under its own name
_SPEC = importlib.util.spec_from_file_location(
    "bench_learning", Path(__file__).resolve().parents[2] / "bench" / "learning.py")
assert _SPEC is not None and _SPEC.loader is not None
learning = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = learning  # its dataclass looks its module up there
_SPEC.loader.exec_module(learning)

ROWS = ("bicubic", "NBSR, true kernel field", "NBSR, mean training kernel",
        "SVKR (DKENet + NBSR, 3 iterations)", "pixel diffusion (ssr-pixel-tiny, full): one sample",
        "pixel diffusion (ssr-pixel-tiny, full): x0 estimate at T (1 step)",
        "latent backbone alone (tiny, fitted here)", "latent SSR (ssr-latent-tiny on that backbone)",
        "mean", "DKENet")
# Table 2 rows: one sample and the x0 estimate at T, each with its delta vs bicubic
ABLATION_ROWS = ("di-kernel-only", "depth-only", "no-svkr", "full (kernel + depth + SVKR)")


def _photos(folder: Path, n: int = 6, size: int = 64) -> Path:
    """Write ``n`` smooth random-texture RGB PNGs (blurred noise: edges for the SR to restore)."""
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(n):
        coarse = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        smooth = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f"p{i}.png"), smooth)
    return folder


def test_split_is_seeded_and_disjoint(tmp_path: Path) -> None:
    """80/20 of the images, no image in both halves, the same split for the same seed."""
    data = _photos(tmp_path / "data", n=10, size=16)
    train, test = learning.split_images(data, seed=0)
    assert (len(train), len(test)) == (8, 2) and not set(train) & set(test)
    assert learning.split_images(data, seed=0) == (train, test)
    assert learning.split_images(data, seed=1) != (train, test)


def test_quick_run_prints_every_row(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--quick`` builds, trains every stage and scores every method; the report lists them all."""
    data = _photos(tmp_path / "data")
    out = tmp_path / "report.md"
    assert learning.main(["--data", str(data), "--quick", "--threads", "1",
                          "--work", str(tmp_path / "work"),
                          "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text
    for row in ROWS:
        m = re.search(rf"^\| {re.escape(row)} \| (\S+) \| (\S+) \|$", text, re.M)
        assert m is not None, row
        assert np.isfinite(float(m.group(1))), row
    for row in ABLATION_ROWS:
        m = re.search(rf"^\| {re.escape(row)} \| (\S+) \| \S+ \| (\S+) \| \S+ \|$", text, re.M)
        assert m is not None, row
        assert np.isfinite(float(m.group(1))) and np.isfinite(float(m.group(2))), row
    m = re.search(r"^\| latent SSR \(ssr-latent-tiny on that backbone\) \| (\S+) \| ([+-]\S+)% \|$",
                  text, re.M)
    assert m is not None and np.isfinite(float(m.group(1))) and np.isfinite(float(m.group(2)))
    assert "5 train / 1 test images" in text and "load average" in text
    assert re.search(r"latent backbone: fitted here on the training split in \d+ s \(VQ-f4 "
                     r"autoencoder 1 steps", text)
    assert re.search(r"VQ round trip of the test HR crops .*: \d+\.\d\d dB; latent SSR vs "
                     r"backbone alone: [+-]\d+\.\d\d dB", text)
    # --reuse keeps the shards and the trained stages: nothing trains, the scores are the same
    args = ["--data", str(data), "--quick", "--threads", "1", "--work", str(tmp_path / "work")]
    assert learning.main([*args, "--reuse"]) == 0
    again = capsys.readouterr().out
    assert "--reuse: shards and the stages trained before kept" in again
    assert again.split("budget:")[0] == text.split("budget:")[0]
    assert re.search(r"wall: build \d+ s, training none, scoring", again)
