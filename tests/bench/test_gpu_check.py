"""bench/gpu_check.py's plumbing on a CPU (--smoke): sections, isolation, failures, the report.

The GPU figures themselves come from running the script on a GPU (see its docstring); here the
build, shard training, inference and step-timing sections run for real at tiny sizes on the CPU,
and a failing section must neither stop the others nor lose its error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_check.py"


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--device", "cpu", *args],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)


def test_smoke_sections_run_and_report(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    proc = run(tmp_path, "--only", "b,c,d,e,g,h,i", "--work", str(tmp_path / "w"),
               "--out", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert [k for k, r in sections.items() if r["status"] == "ok"] == ["b", "c", "d", "e", "g", "h"]
    assert sections["i"]["status"] == "skipped" and "GPU only" in sections["i"]["error"]
    assert sections["b"]["figures"]["byte_identical"] is True  # two builds, same bytes
    assert sections["e"]["summary"].startswith("1 image(s)")
    assert set(sections["h"]["figures"]["kernel"]) == {"fp32"}  # autocast variants: GPU only
    assert 0 <= sections["g"]["figures"]["kernel"]["data_wait_fraction"] <= 1
    for run_dir in ("run/kernel", "run/nbsr", "run/diffusion", "run-online/kernel"):
        assert (tmp_path / "w" / run_dir / "last.pt").is_file()  # the CLIs really trained
    # the CLIs' own imports are in the package list the lead carries wheels for
    assert {"torch", "click", "webdataset", "numpy"} <= set(report["third_party"])
    assert "| b | degrade build --device DEV | ok |" in proc.stdout


def test_a_failing_section_is_reported_and_the_others_run(tmp_path: Path) -> None:
    """Section f needs section c's run; alone, in its own process (--isolate), its CLI exits 1:
    the report keeps the command's last lines, b still runs, and the exit code says so."""
    out = tmp_path / "report.md"
    proc = run(tmp_path, "--only", "f,b", "--isolate", "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = out.read_text()
    row_f = next(line for line in table.splitlines() if line.startswith("| f |"))
    assert "| FAIL |" in row_f and "-> exit 1:" in row_f
    assert "Error: --method 'SSR=" in row_f and "no such file or folder" in row_f
    assert "| b | degrade build --device DEV | ok |" in table
